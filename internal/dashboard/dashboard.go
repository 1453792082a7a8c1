// Package dashboard serves the live dashboard's static assets (index.html, app.js, style.css
// and the chart library that `make web` copies from web/node_modules into assets/vendor/).
// The page reads everything from the /api/v1/ endpoints of the same server.
package dashboard

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed assets
var assets embed.FS

// ChartLibrary is the vendored chart bundle the page loads; it is not committed, so a binary
// built without `make web` lacks it.
const ChartLibrary = "vendor/chart.umd.js"

// Handler serves the dashboard at /.
func Handler() http.Handler {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded tree always has assets/
	}
	return handler(sub)
}

func handler(fsys fs.FS) http.Handler {
	if _, err := fs.Stat(fsys, ChartLibrary); err != nil {
		return http.HandlerFunc(missingVendor)
	}
	files := http.FileServerFS(fsys)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Embedded files carry no modification time, so without this a browser could keep
		// the page of an older binary.
		w.Header().Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}

// missingVendorPage replaces every dashboard path: a page without its chart library would
// load but draw nothing and fail in the console, which says less than this.
const missingVendorPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ByteBasket: dashboard not built</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto; line-height: 1.5">
<h1 id="dashboard-missing">The dashboard was built without its chart library</h1>
<p>This binary does not contain <code>` + ChartLibrary + `</code>, which is installed from npm, not
committed. Run <code>make web</code> (or <code>make build</code>, which runs it) in the repository and
build the binary again.</p>
<p>The API under <a href="/api/v1/live">/api/v1/</a> works without it.</p>
</body></html>
`

func missingVendor(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusServiceUnavailable)
	if r.Method != http.MethodHead {
		w.Write([]byte(missingVendorPage))
	}
}
