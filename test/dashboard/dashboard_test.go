// Package dashboard_test drives the live dashboard of `bytebasket run` in Debian's headless
// Chromium, as a person would use it, and checks what the page shows against the API it reads.
package dashboard_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/bytebasket/bytebasket/internal/testenv"
)

var binary string

func TestMain(m *testing.M) { testenv.MainWithBinary(m, &binary) }

func chromiumPath(t *testing.T) string {
	p := os.Getenv("BYTEBASKET_CHROMIUM")
	if p == "" {
		p = "/usr/bin/chromium"
	}
	if _, err := os.Stat(p); err != nil {
		testenv.Missing(t, "no Chromium at %s (%v): `apt-get install chromium` (Debian) or set BYTEBASKET_CHROMIUM", p, err)
	}
	return p
}

// artifactDir is where screenshots go: the test's artifact directory, kept under the output
// directory with `go test -artifacts -outputdir DIR`.
func artifactDir(t *testing.T) string {
	if d := os.Getenv("BYTEBASKET_TEST_ARTIFACTS"); d != "" {
		d = filepath.Join(d, t.Name())
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.ArtifactDir()
}

// startRun starts embedded mode on free ports and returns its HTTP base URL once /healthz
// answers; the process is stopped with SIGTERM at the end of the test.
func startRun(t *testing.T) string {
	t.Helper()
	cmd := exec.Command(binary, "run", "--data-dir", t.TempDir(), "--http", "127.0.0.1:0",
		"--kafka-listen", "127.0.0.1:0", "--grpc", "127.0.0.1:0", "--rate", "2000")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	addr := make(chan string, 1)
	go func() {
		defer close(done)
		defer cmd.Wait()
		re := regexp.MustCompile(`http://(\S+)`)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case addr <- "http://" + m[1]:
				default:
				}
			}
		}
		// Keep draining if a line was too long for the scanner, so the process never blocks.
		io.Copy(io.Discard, stdout)
	}()
	var base string
	select {
	case base = <-addr:
	case <-done:
		t.Fatal("bytebasket run exited before printing its HTTP address")
	case <-time.After(30 * time.Second):
		t.Fatal("bytebasket run did not print its HTTP address within 30s")
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/healthz not 200 within 30s", base)
		}
	}
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", u, resp.Status, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v: %s", u, err, b)
	}
}

// window is the part of an /api/v1/live window the page shows for the latest complete minute.
type window struct {
	Start       time.Time        `json:"start"`
	End         time.Time        `json:"end"`
	Orders      int64            `json:"orders"`
	ActiveUsers int64            `json:"active_users"`
	PageViews   int64            `json:"page_views"`
	Revenue     map[string]int64 `json:"revenue"`
}

type live struct {
	Windows []window `json:"windows"`
}

// pageMinute is what the page shows for its latest complete minute, read from the data-*
// attributes that hold the raw values behind the formatted text.
type pageMinute struct {
	Start       string `json:"start"`
	Orders      string `json:"orders"`
	ActiveUsers string `json:"users"`
	PageViews   string `json:"pageViews"`
	Revenue     string `json:"revenue"`
}

const readMinute = `(() => {
  const d = (id) => document.getElementById(id).dataset;
  return {start: d('latest-minute').start, orders: d('latest-orders').value, users: d('latest-active-users').value,
    pageViews: d('latest-page-views').value, revenue: d('latest-revenue').value || '{}'};
})()`

// sameMinute reports whether the page's minute equals the API's window of the same start,
// and if not, why.
func sameMinute(p pageMinute, l live) (bool, string) {
	start, err := time.Parse(time.RFC3339, p.Start)
	if err != nil {
		return false, fmt.Sprintf("page shows no minute yet (start %q)", p.Start)
	}
	var rev map[string]int64
	if err := json.Unmarshal([]byte(p.Revenue), &rev); err != nil {
		return false, fmt.Sprintf("page revenue %q: %v", p.Revenue, err)
	}
	for _, w := range l.Windows {
		if !w.Start.Equal(start) {
			continue
		}
		api := fmt.Sprintf("orders=%d users=%d page_views=%d", w.Orders, w.ActiveUsers, w.PageViews)
		page := fmt.Sprintf("orders=%s users=%s page_views=%s", p.Orders, p.ActiveUsers, p.PageViews)
		if api != page || !maps.Equal(rev, w.Revenue) {
			return false, fmt.Sprintf("minute %s: page %s revenue=%v, API %s revenue=%v", p.Start, page, rev, api, w.Revenue)
		}
		return true, page
	}
	return false, fmt.Sprintf("API has no window starting %s", p.Start)
}

func TestDashboardShowsLiveDataInChromium(t *testing.T) {
	testenv.Integration(t)
	chromium := chromiumPath(t)
	base := startRun(t)

	// The page and the API must both be there, or the rest of the test says nothing useful.
	resp, err := http.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusServiceUnavailable {
		testenv.Missing(t, "the binary was built without the chart library: run `make web` first (%s)", page)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /: %s", resp.Status)
	}
	if resp, err := http.Get(base + "/api/v1/live"); err != nil || resp.StatusCode == http.StatusNotFound {
		t.Fatalf("bytebasket run does not serve /api/v1/live (%v)", err)
	} else {
		resp.Body.Close()
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.WindowSize(1400, 1100),
		chromedp.DisableGPU,
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium refuses its sandbox as root
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	// The first Run starts the browser, which lives as long as ctx: no timeout on that one.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	do := func(what string, d time.Duration, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		c, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		if err := chromedp.Do(c, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	eval := func(expr string, v any) {
		t.Helper()
		c, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		raw, err := chromedp.Run(c, chromedp.Evaluate[[]byte](expr))
		if err != nil {
			t.Fatalf("evaluate %s: %v", expr, err)
		}
		if err := json.Unmarshal(raw, v); err != nil {
			t.Fatalf("evaluate %s: %v: %s", expr, err, raw)
		}
	}
	screenshot := func(name string) {
		t.Helper()
		c, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		png, err := chromedp.Run(c, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		p := filepath.Join(artifactDir(t), name)
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", p)
	}

	// A fresh data directory has its first complete minute up to a minute after the start.
	do("open the dashboard", 30*time.Second, chromedp.Navigate(base+"/"))
	do("live connection and a complete minute on the page", 150*time.Second,
		chromedp.Poll[chromedp.Void](`document.getElementById('connection').dataset.state === 'live' &&
			document.getElementById('latest-minute').dataset.start !== '' &&
			Number(document.getElementById('latest-orders').dataset.value) > 0`,
			chromedp.WithPollingInterval(200*time.Millisecond), chromedp.WithPollingTimeout(140*time.Second)))
	// Set on the page's window: a reload would lose it.
	do("mark the page", 5*time.Second, chromedp.Evaluate[chromedp.Void](`window.__noReload = true`))

	// The latest complete minute equals the API's window for that minute. Read the page first,
	// then the API; the minute may still take a late event, so retry until both agree.
	var why string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		var p pageMinute
		eval(readMinute, &p)
		var l live
		getJSON(t, base+"/api/v1/live?granularity=1m&windows=10&platform=all", &l)
		ok, msg := sameMinute(p, l)
		if ok {
			t.Logf("page and API agree on the minute starting %s: %s", p.Start, msg)
			break
		}
		if msg != why {
			t.Logf("not yet: %s", msg)
			why = msg
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page's latest complete minute never matched the API within 30s: %s", why)
		}
	}
	screenshot("overview.png")

	// New data reaches the page without a reload: the current minute's page views move, as
	// the API sees them, within seconds.
	var before string
	eval(`document.getElementById('current-page-views').dataset.value`, &before)
	var l live
	getJSON(t, base+"/api/v1/live?granularity=1m&windows=1&platform=all", &l)
	if len(l.Windows) == 0 {
		t.Fatal("/api/v1/live has no window while events flow")
	}
	t0 := time.Now()
	do("the page updates without reload", 20*time.Second,
		chromedp.PollFunction[chromedp.Void](`(before, start, views) => {
			const cm = document.getElementById('current-minute').dataset.start;
			const v = Number(document.getElementById('current-page-views').dataset.value);
			return window.__noReload === true && String(v) !== before &&
				(Date.parse(cm) > Date.parse(start) || v >= views);
		}`, chromedp.WithPollingArgs(before, l.Windows[0].Start.Format(time.RFC3339), l.Windows[0].PageViews),
			chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(10*time.Second)))
	t.Logf("the page showed the API's current count (%d page views, was %s) %v after the API did, without reload",
		l.Windows[0].PageViews, before, time.Since(t0).Round(time.Millisecond))

	// The other sections fill from the API too, in the same document.
	do("open products", 20*time.Second,
		chromedp.Click(chromedp.CSS(`[data-testid="nav-products"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#top-product-views tr[data-id]`)),
		chromedp.WaitVisible(chromedp.CSS(`#top-product-revenue tr[data-id]`)))
	screenshot("products.png")
	do("open transactions", 20*time.Second,
		chromedp.Click(chromedp.CSS(`[data-testid="nav-transactions"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#tx-feed tr[data-user]`)))
	screenshot("transactions.png")

	// The fraud page shows the committed alerts the API holds, with their reasons.
	do("open fraud", 90*time.Second,
		chromedp.Click(chromedp.CSS(`[data-testid="nav-fraud"]`)),
		chromedp.Poll[chromedp.Void](`document.querySelectorAll('#fraud-alerts tr[data-event]').length > 0 &&
			Number(document.getElementById('fraud-decisions').dataset.value) > 0 &&
			document.querySelectorAll('#fraud-rules tr[data-rule]').length > 0`,
			chromedp.WithPollingInterval(200*time.Millisecond), chromedp.WithPollingTimeout(80*time.Second)))
	type pageAlert struct {
		Event  string `json:"event"`
		Action string `json:"action"`
	}
	var onPage []pageAlert
	eval(`[...document.querySelectorAll('#fraud-alerts tr[data-event]')].map((e) => ({event: e.dataset.event, action: e.dataset.action}))`, &onPage)
	var pageDecisions string
	eval(`document.getElementById('fraud-decisions').dataset.value`, &pageDecisions)
	var inAPI struct {
		Alerts []struct {
			EventID string `json:"event_id"`
			Action  string `json:"action"`
			Reasons []any  `json:"reasons"`
		} `json:"alerts"`
	}
	getJSON(t, base+"/api/v1/fraud/alerts?kind=decision&limit=500", &inAPI)
	var stats struct {
		Decisions int `json:"decisions"`
	}
	getJSON(t, base+"/api/v1/fraud/stats", &stats)
	actions := map[string]string{}
	for _, a := range inAPI.Alerts {
		actions[a.EventID] = a.Action
		if len(a.Reasons) == 0 || (a.Action != "review" && a.Action != "block") {
			t.Errorf("API alert %s: action %q with %d reasons", a.EventID, a.Action, len(a.Reasons))
		}
	}
	for _, a := range onPage {
		if got, ok := actions[a.Event]; !ok || got != a.Action {
			t.Errorf("page alert %s (%s) is not the API's (%q, listed %v)", a.Event, a.Action, got, ok)
		}
	}
	if n, _ := strconv.Atoi(pageDecisions); n < 1 || n > stats.Decisions {
		t.Errorf("page shows %s decisions, the API %d a moment later", pageDecisions, stats.Decisions)
	}
	t.Logf("fraud page: %d alerts shown, all in the API's; %s decisions (API %d)", len(onPage), pageDecisions, stats.Decisions)
	// The simulator of `run` writes its ground truth: the page holds the alerts against it
	// as the API does.
	do("fraud ground truth", 60*time.Second, chromedp.Poll[chromedp.Void](`document.getElementById('fraud-truth').dataset.fraud !== ''`,
		chromedp.WithPollingInterval(200*time.Millisecond), chromedp.WithPollingTimeout(55*time.Second)))
	var truth struct {
		Fraud, Precision, Recall string
	}
	eval(`(() => { const d = document.getElementById('fraud-truth').dataset; return {Fraud: d.fraud, Precision: d.precision, Recall: d.recall}; })()`, &truth)
	var withTruth struct {
		GroundTruth *struct {
			FraudOrders int     `json:"fraud_orders"`
			Precision   float64 `json:"precision"`
			Recall      float64 `json:"recall"`
		} `json:"ground_truth"`
	}
	getJSON(t, base+"/api/v1/fraud/stats", &withTruth)
	pageFraud, _ := strconv.Atoi(truth.Fraud)
	p, errP := strconv.ParseFloat(truth.Precision, 64)
	r, errR := strconv.ParseFloat(truth.Recall, 64)
	if g := withTruth.GroundTruth; g == nil || pageFraud < 1 || pageFraud > g.FraudOrders || errP != nil || errR != nil || p < 0 || p > 1 || r < 0 || r > 1 {
		t.Errorf("ground truth on the page %+v, in the API a moment later %+v", truth, withTruth.GroundTruth)
	}
	t.Logf("fraud page against ground truth: %d fraud orders, precision %s, recall %s", pageFraud, truth.Precision, truth.Recall)
	// The monitoring chart plots the stream's transactions per minute: its orders are the
	// API's live windows'.
	var chartOrders int
	eval(`Chart.getChart(document.getElementById('chart-fraud-monitoring')).data.datasets[0].data.reduce((a, b) => a + b, 0)`, &chartOrders)
	if chartOrders < 1 {
		t.Errorf("the monitoring chart plots %d orders", chartOrders)
	}
	screenshot("fraud.png")

	// User lookup for a user who has ordered, from the API's transaction list.
	var txs struct {
		Transactions []struct {
			UserID string `json:"user_id"`
		} `json:"transactions"`
	}
	getJSON(t, base+"/api/v1/transactions?kind=order_placed&limit=1", &txs)
	if len(txs.Transactions) == 0 {
		t.Fatal("/api/v1/transactions lists no order while events flow")
	}
	user := txs.Transactions[0].UserID
	do("look up "+user, 20*time.Second,
		chromedp.Click(chromedp.CSS(`[data-testid="nav-user"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#user-id`)),
		chromedp.SendKeys(chromedp.CSS(`#user-id`), user),
		chromedp.Click(chromedp.CSS(`[data-testid="user-submit"]`)),
		chromedp.PollFunction[chromedp.Void](`(user) => {
			const r = document.getElementById('user-result');
			return r.dataset.user === user && Number(r.dataset.sessions) > 0;
		}`, chromedp.WithPollingArgs(user), chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(15*time.Second)))
	// The sessions on the page are the API's, newest first (retry: an active user's newest
	// session can change between the two reads).
	why = ""
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		var onPage []string
		eval(`[...document.querySelectorAll('#user-result [data-session]')].map((e) => e.dataset.session)`, &onPage)
		var u struct {
			UserID   string `json:"user_id"`
			Sessions []struct {
				SessionID string `json:"session_id"`
			} `json:"sessions"`
		}
		getJSON(t, base+"/api/v1/users/"+url.PathEscape(user)+"?limit=20", &u)
		var inAPI []string
		for _, s := range u.Sessions {
			inAPI = append(inAPI, s.SessionID)
		}
		if fmt.Sprint(onPage) == fmt.Sprint(inAPI) && len(inAPI) > 0 {
			t.Logf("user %s: page and API list the same %d sessions", user, len(inAPI))
			break
		}
		why = fmt.Sprintf("page %v, API %v", onPage, inAPI)
		if time.Now().After(deadline) {
			t.Fatalf("sessions of %s never matched within 20s: %s", user, why)
		}
	}
	screenshot("user.png")

	var errText string
	eval(`document.getElementById('error').hidden ? '' : document.getElementById('error').textContent`, &errText)
	if errText != "" {
		t.Errorf("the page shows an error: %s", errText)
	}
	var sameDocument bool
	eval(`window.__noReload === true`, &sameDocument)
	if !sameDocument {
		t.Error("the page reloaded during the test")
	}
}
