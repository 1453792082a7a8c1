// Package soak runs embedded mode (`bytebasket run`) under load for a long time and
// records what it holds: resident memory, Go heap, and the disk of the broker, the store and
// the lake, over time. It is a benchmark, not a test: nothing is asserted on the figures;
// they go to docs/benchmarks.md.
//
//	BYTEBASKET_SOAK=1h go test -run '^$' -bench EmbeddedSoak -benchtime 1x -timeout 90m ./test/soak/
package soak

import (
	"bufio"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bytebasket/bytebasket/internal/testenv"
)

func BenchmarkEmbeddedSoak(b *testing.B) {
	d := time.Hour
	if v := os.Getenv("BYTEBASKET_SOAK"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			b.Fatal(err)
		}
	}
	rate := "3000"
	if v := os.Getenv("BYTEBASKET_SOAK_RATE"); v != "" {
		rate = v
	}
	// Built here, not in TestMain: `go test ./...` runs no benchmark and should not pay for it.
	binary, cleanup, err := testenv.BuildBinary()
	if err != nil {
		b.Fatal(err)
	}
	defer cleanup()
	for b.Loop() {
		soak(b, binary, d, rate)
	}
}

func soak(b *testing.B, binary string, d time.Duration, rate string) {
	dir := b.TempDir()
	c := exec.Command(binary, "run", "--data-dir", dir, "--rate", rate, "--seed", "7",
		"--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0", "--kafka-listen", "127.0.0.1:0")
	out, _ := c.StdoutPipe()
	c.Stderr = nil
	if err := c.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = c.Process.Kill(); _, _ = c.Process.Wait() }()
	base := ""
	re := regexp.MustCompile(`http:\s+http://(\S+)`)
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			base = "http://" + m[1]
			break
		}
	}
	if base == "" {
		b.Fatal("run did not say where it listens")
	}
	go func() {
		for sc.Scan() {
		}
	}()
	b.Logf("| elapsed | RSS MiB | Go heap MiB | events | broker MiB | store MiB | lake MiB |")
	b.Logf("| --- | --- | --- | --- | --- | --- | --- |")
	var maxRSS, storeHalf, storeEnd, brokerEnd, lakeEnd, events float64
	t0 := time.Now()
	for i := 0; ; i++ {
		elapsed := time.Since(t0)
		rss := rssMiB(b, c.Process.Pid)
		m := scrape(base)
		heap := m["go_memstats_heap_inuse_bytes"] / (1 << 20)
		events = 0
		for k, v := range m {
			if strings.HasPrefix(k, "bytebasket_stream_events_total{") {
				events += v
			}
		}
		broker, store, lake := du(filepath.Join(dir, "kafka")), du(filepath.Join(dir, "store")), du(filepath.Join(dir, "lake"))
		maxRSS = max(maxRSS, rss)
		if elapsed <= d/2 {
			storeHalf = store
		}
		storeEnd, brokerEnd, lakeEnd = store, broker, lake
		if i%4 == 0 || elapsed >= d {
			b.Logf("| %s | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f |", elapsed.Round(time.Second), rss, heap, events, broker, store, lake)
		}
		if elapsed >= d {
			break
		}
		time.Sleep(30 * time.Second)
	}
	_ = c.Process.Signal(syscall.SIGTERM)
	_, _ = c.Process.Wait()
	b.ReportMetric(maxRSS, "max-RSS-MiB")
	b.ReportMetric(storeEnd, "store-MiB")
	b.ReportMetric((storeEnd-storeHalf)/(d/2).Hours(), "store-growth-MiB/h-2nd-half")
	b.ReportMetric(brokerEnd, "broker-MiB")
	b.ReportMetric(lakeEnd, "lake-MiB")
	b.ReportMetric(events/time.Since(t0).Seconds(), "events/s")
}

func rssMiB(b *testing.B, pid int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// du is the bytes on disk below dir, in MiB.
func du(dir string) float64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			if info, err := e.Info(); err == nil {
				if st, ok := info.Sys().(*syscall.Stat_t); ok {
					n += st.Blocks * 512
				}
			}
		}
		return nil
	})
	return float64(n) / (1 << 20)
}

func scrape(base string) map[string]float64 {
	out := map[string]float64{}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "#") {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		if v, err := strconv.ParseFloat(l[i+1:], 64); err == nil {
			out[l[:i]] = v
		}
	}
	return out
}
