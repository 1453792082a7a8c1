package streamtest

import (
	"bufio"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bytebasket/bytebasket/internal/testenv"
)

// Benchmarks of `bytebasket stream` on the real Kafka of deploy/local, with the Cassandra
// store and with the embedded store. Figures go to docs/benchmarks.md:
//
//	go test -run '^$' -bench . -benchtime 1x -timeout 30m ./test/stream/

// scrape reads the stream's /metrics into name{labels} -> value.
func scrape(b testing.TB, base string) map[string]float64 {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
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

func sumPrefix(m map[string]float64, prefix string) float64 {
	var s float64
	for k, v := range m {
		if strings.HasPrefix(k, prefix) {
			s += v
		}
	}
	return s
}

// quantile interpolates a Prometheus histogram's quantile from its cumulative buckets; labels
// selects one series of a vector (`kind="live"`), or is empty.
func quantile(m map[string]float64, name, labels string, q float64) float64 {
	prefix, count := name+`_bucket{le="`, name+"_count"
	if labels != "" {
		prefix, count = name+"_bucket{"+labels+`,le="`, name+"_count{"+labels+"}"
	}
	type bucket struct{ le, n float64 }
	var bs []bucket
	for k, v := range m {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		s := strings.TrimSuffix(strings.TrimPrefix(k, prefix), `"}`)
		le, err := strconv.ParseFloat(s, 64)
		if err != nil {
			continue // +Inf
		}
		bs = append(bs, bucket{le, v})
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].le < bs[j].le })
	total := m[count]
	rank := q * total
	prevLe, prevN := 0.0, 0.0
	for _, bk := range bs {
		if bk.n >= rank {
			if bk.n == prevN {
				return bk.le
			}
			return prevLe + (bk.le-prevLe)*(rank-prevN)/(bk.n-prevN)
		}
		prevLe, prevN = bk.le, bk.n
	}
	return prevLe
}

func storeArgs(store string, b *testing.B) []string {
	if store == "embedded" {
		return []string{"--store", "embedded", "--data-dir", b.TempDir()}
	}
	return nil
}

// BenchmarkStreamThroughput: a backlog of events is produced first, then one stream
// instance consumes it; events per second of wall time and per CPU-second of the process.
func BenchmarkStreamThroughput(b *testing.B) {
	for _, store := range []string{"cassandra", "embedded"} {
		b.Run(store, func(b *testing.B) {
			e := newEnv(b)
			const n = 1_000_000
			e.produce(n)
			c, base := e.startStream(storeArgs(store, b)...)
			start := time.Now()
			cpu0 := testenv.CPUSeconds(b, c.Process.Pid)
			for {
				m := scrape(b, base)
				if sumPrefix(m, "bytebasket_stream_events_total") >= n {
					break
				}
				if time.Since(start) > 10*time.Minute {
					b.Fatal("backlog not consumed in 10 minutes")
				}
				time.Sleep(100 * time.Millisecond)
			}
			wall := time.Since(start).Seconds()
			cpu := testenv.CPUSeconds(b, c.Process.Pid) - cpu0
			b.ReportMetric(n/wall, "events/s")
			b.ReportMetric(n/cpu, "events/cpu-s")
			b.ReportMetric(cpu/wall, "cores")
			_ = c.Process.Signal(syscall.SIGTERM)
			_, _ = c.Process.Wait()
		})
	}
}

// BenchmarkStreamLatency: a steady 20k events/s (BYTEBASKET_BENCH_RATE) for 70 s into a
// running stream instance; end-to-end latency from event time to the row being written, from
// the process's histogram, over the last 60 s (the first 10 s, while the producer warms up,
// are left out). Producer, stream and servers share the machine: where they cannot keep up
// with the rate, the latency measures the backlog (events/s reports what was applied).
func BenchmarkStreamLatency(b *testing.B) {
	rate := "20000"
	if v := os.Getenv("BYTEBASKET_BENCH_RATE"); v != "" {
		rate = v
	}
	for _, store := range []string{"cassandra", "embedded"} {
		b.Run(store, func(b *testing.B) {
			e := newEnv(b)
			c, base := e.startStream(storeArgs(store, b)...)
			waitReady(b, base)
			done := make(chan struct{})
			go func() {
				defer close(done)
				e.run("produce", "--rate", rate, "--flat", "--duration", "70s", "--labels=false", "--users", "20000")
			}()
			time.Sleep(10 * time.Second)
			before := scrape(b, base)
			<-done
			time.Sleep(time.Second)
			m := delta(scrape(b, base), before)
			name := "bytebasket_stream_end_to_end_seconds"
			b.ReportMetric(m[name+"_count"]/60, "events/s")
			b.ReportMetric(1000*quantile(m, name, "", 0.5), "p50-ms")
			b.ReportMetric(1000*quantile(m, name, "", 0.99), "p99-ms")
			for _, kind := range []string{"live", "full", "checkpoint"} {
				b.ReportMetric(1000*quantile(m, "bytebasket_stream_flush_seconds", `kind="`+kind+`"`, 0.99), kind+"-flush-p99-ms")
			}
			for _, table := range []string{"windows", "tops", "sessions", "session_windows", "tx_feeds"} {
				b.ReportMetric(m[`bytebasket_stream_rows_written_total{table="`+table+`"}`]/60, table+"-rows/s")
			}
			_ = c.Process.Signal(syscall.SIGTERM)
			_, _ = c.Process.Wait()
		})
	}
}

// delta is after - before for every series: counters and histogram buckets over an interval.
func delta(after, before map[string]float64) map[string]float64 {
	out := make(map[string]float64, len(after))
	for k, v := range after {
		out[k] = v - before[k]
	}
	return out
}
