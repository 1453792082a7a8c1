package dashboard

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
)

func get(t *testing.T, h http.Handler, path string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec
}

func TestServesPageAndAssets(t *testing.T) {
	h := handler(fstest.MapFS{
		"index.html":   {Data: []byte("<!doctype html><title>ByteBasket</title>")},
		"app.js":       {Data: []byte("'use strict';")},
		ChartLibrary:   {Data: []byte("/* chart */")},
		"style.css":    {Data: []byte("body{}")},
		"vendor/x.txt": {Data: []byte("x")},
	})
	for path, want := range map[string]string{"/": "text/html", "/app.js": "javascript", "/style.css": "text/css", "/" + ChartLibrary: "javascript"} {
		rec := get(t, h, path)
		if rec.Code != http.StatusOK || !strings.Contains(rec.Header().Get("Content-Type"), want) {
			t.Errorf("GET %s: %d %q, want 200 %s", path, rec.Code, rec.Header().Get("Content-Type"), want)
		}
	}
	if rec := get(t, h, "/nope.js"); rec.Code != http.StatusNotFound {
		t.Errorf("GET /nope.js: %d, want 404", rec.Code)
	}
}

// Without the vendored chart library every path says to run `make web`, instead of a page
// that loads and draws nothing.
func TestMissingChartLibrarySaysRunMakeWeb(t *testing.T) {
	h := handler(fstest.MapFS{"index.html": {Data: []byte("<!doctype html>")}, "app.js": {Data: []byte("")}})
	for _, path := range []string{"/", "/app.js", "/" + ChartLibrary} {
		rec := get(t, h, path)
		if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "make web") {
			t.Errorf("GET %s: %d %q, want 503 saying to run make web", path, rec.Code, rec.Body.String())
		}
	}
}

// The committed page names every element app.js fills, and loads the files it needs.
func TestEmbeddedPageMatchesScript(t *testing.T) {
	page, err := fs.ReadFile(assets, "assets/index.html")
	if err != nil {
		t.Fatal(err)
	}
	script, err := fs.ReadFile(assets, "assets/app.js")
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{`src="` + ChartLibrary + `"`, `src="app.js"`, `href="style.css"`} {
		if !strings.Contains(string(page), ref) {
			t.Errorf("index.html does not load %s", ref)
		}
	}
	for _, id := range []string{"latest-minute", "latest-orders", "latest-active-users", "latest-revenue", "total-revenue",
		"current-page-views", "connection", "funnel-view-to-order", "top-product-views", "trends-table",
		"tx-feed", "user-form", "user-id", "user-result", "error", "fraud-decisions", "fraud-blocked", "fraud-latency",
		"fraud-rules", "fraud-alerts", "fraud-monitoring-alerts", "chart-fraud-scores"} {
		if !strings.Contains(string(page), `id="`+id+`"`) {
			t.Errorf("index.html has no element with id %q", id)
		}
		if !strings.Contains(string(script), `'`+id+`'`) {
			t.Errorf("app.js does not use %q", id)
		}
	}
}
