package app

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bytebasket/bytebasket/internal/config"
	"github.com/bytebasket/bytebasket/internal/model"
	"github.com/bytebasket/bytebasket/internal/store/embedded"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// Embedded mode end to end: it comes up healthy, produces, archives to the local lake,
// computes trends from it on a schedule, exposes metrics, and on cancellation (SIGTERM)
// drains and reports what it produced.
func TestRunEmbedded(t *testing.T) {
	cfg := embeddedDefaults(t)
	cfg.Archive.RollInterval = time.Second
	cfg.Batch.Interval = time.Second
	out := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, out) }()

	httpRe := regexp.MustCompile(`http://(\S+) `)
	var base string
	waitFor(t, 20*time.Second, func() bool {
		if m := httpRe.FindStringSubmatch(out.String()); m != nil {
			base = "http://" + m[1]
		}
		return base != "" && get(t, base+"/healthz") == 200 && get(t, base+"/readyz") == 200
	})
	produced := regexp.MustCompile(`(?m)^bytebasket_events_produced_total\{kind="page_view",topic="user-activity"\} (\d+)`)
	waitFor(t, 20*time.Second, func() bool {
		m := produced.FindStringSubmatch(body(t, base+"/metrics"))
		return m != nil && m[1] != "0"
	})
	// The API reads what the processor writes, beside the dashboard.
	waitFor(t, 30*time.Second, func() bool { return strings.Contains(body(t, base+"/api/v1/live"), `"page_views"`) })
	if code := get(t, base+"/"); code != 200 {
		t.Errorf("dashboard: %d", code)
	}
	// Lake files appear, then a trends run that started after them succeeds.
	lakeFiles := func() int {
		files, _ := filepath.Glob(filepath.Join(cfg.DataDir, "lake", "stream=*", "date=*", "hour=*", "*.parquet"))
		return len(files)
	}
	waitFor(t, 30*time.Second, func() bool { return lakeFiles() > 0 })
	trendRuns := regexp.MustCompile(`(?m)^bytebasket_trends_runs_total\{result="ok"\} (\d+)`)
	runs := func() int {
		m := trendRuns.FindStringSubmatch(body(t, base+"/metrics"))
		if m == nil {
			return 0
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}
	before := runs()
	waitFor(t, 60*time.Second, func() bool { return runs() >= before+2 })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run returned %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not shut down")
	}
	st, err := embedded.Open(filepath.Join(cfg.DataDir, "store"), cfg.Retention.Duration())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now()
	trends, err := st.Trends(context.Background(), model.TrendHour, now.Add(-2*time.Hour), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var active int64
	for _, tr := range trends {
		if tr.Key.Platform == "all" {
			active += tr.ActiveUsers
		}
	}
	if active == 0 {
		t.Fatalf("no hourly trend with active users after scheduled runs: %+v", trends)
	}
	m := regexp.MustCompile(`produced (\d+) events`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no summary in output:\n%s", out.String())
	}
	if n, _ := strconv.Atoi(m[1]); n == 0 {
		t.Fatal("summary says nothing was produced")
	}
}

func embeddedDefaults(t *testing.T) config.Config {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.GRPCAddr = "127.0.0.1:0"
	cfg.Kafka.EmbeddedListen = "127.0.0.1:0"
	cfg.Sim.Rate = 2000
	cfg.Sim.Users = 1000
	return cfg
}

func waitFor(t *testing.T, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func get(t *testing.T, url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func body(t *testing.T, url string) string {
	resp, err := http.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
