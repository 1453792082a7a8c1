package batch_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bytebasket/bytebasket/internal/batch"
	"github.com/bytebasket/bytebasket/internal/batch/batchtest"
	"github.com/bytebasket/bytebasket/internal/batch/duckdb"
	"github.com/bytebasket/bytebasket/internal/lake"
	"github.com/bytebasket/bytebasket/internal/lake/local"
	"github.com/bytebasket/bytebasket/internal/sim"
)

// Benchmark lake: 10M events of 100k shoppers at 20 events/s, about 5.8 days of history.
const (
	benchEvents = 10_000_000
	benchSeed   = 42
)

// completeMarker is written last: a lake without it was interrupted and is rebuilt. Its
// leading '_' hides it from both engines.
const completeMarker = "_COMPLETE"

// BenchmarkTrends runs the trends jobs over the same 10M-event lake on DuckDB (local copy)
// and on Spark (HDFS copy). Both copies are kept between runs, named by seed and size:
// $TMPDIR/bytebasket-bench-lake-<seed>-<events> and /bench/lake-<seed>-<events> on HDFS.
//
//	go test ./test/batch -run '^$' -bench Trends -benchtime 1x -timeout 60m
func BenchmarkTrends(b *testing.B) {
	ctx := context.Background()
	name := fmt.Sprintf("lake-%d-%d", benchSeed, benchEvents)
	dir := filepath.Join(os.TempDir(), "bytebasket-bench-"+name)
	loc, err := local.Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer loc.Close()
	fs, uri := openHDFS(b, "/bench/"+name)
	defer fs.Close()

	var missing []lake.Backend
	for _, be := range []lake.Backend{loc, fs} {
		if _, err := be.ReadFile(ctx, completeMarker); err != nil {
			if err := be.RemoveAll(ctx, "stream="+lake.StreamActivity); err != nil {
				b.Fatal(err)
			}
			if err := be.RemoveAll(ctx, "stream="+lake.StreamTransactions); err != nil {
				b.Fatal(err)
			}
			missing = append(missing, be)
		}
	}
	if len(missing) > 0 {
		start := time.Now()
		last := start
		l, err := batchtest.Build(ctx, batchtest.Options{
			Sim:    sim.Config{Seed: benchSeed, Users: 100_000, Start: time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC), Rate: 20},
			Events: benchEvents,
			Progress: func(n int) {
				if time.Since(last) > 10*time.Second {
					last = time.Now()
					el := time.Since(start)
					b.Logf("lake: %d/%d events, %.0f events/s, ETA %s", n, benchEvents, float64(n)/el.Seconds(),
						time.Duration(float64(el)*float64(benchEvents-n)/float64(max(n, 1))).Round(time.Second))
				}
			},
		}, missing...)
		if err != nil {
			b.Fatal(err)
		}
		for _, be := range missing {
			if err := be.WriteAtomic(ctx, completeMarker, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "%d events in %d files, %s .. %s\n", l.Events, l.Files, l.First.Format(time.RFC3339Nano), l.Last.Format(time.RFC3339Nano))
				return err
			}); err != nil {
				b.Fatal(err)
			}
		}
		b.Logf("lake: wrote %d events in %d files to %d backend(s) in %s", l.Events, l.Files, len(missing), time.Since(start).Round(time.Second))
	}
	info, err := loc.ReadFile(ctx, completeMarker)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("lake: %s", info)
	// Whole days around the data: every bucket of both granularities.
	from, to := time.Date(2026, 11, 19, 0, 0, 0, 0, time.UTC), time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

	duck, err := duckdb.Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer duck.Close()
	sp := connectSpark(b, uri)
	for _, e := range []batch.Engine{duck, sp} {
		b.Run(e.Name(), func(b *testing.B) {
			var rows int
			for b.Loop() {
				if err := e.RegisterViews(ctx); err != nil {
					b.Fatal(err)
				}
				t, err := batch.Compute(ctx, e, from, to)
				if err != nil {
					b.Fatal(err)
				}
				rows = t.Len()
			}
			sec := b.Elapsed().Seconds() / float64(b.N)
			b.ReportMetric(sec, "s/run")
			b.ReportMetric(benchEvents/sec, "events/s")
			b.Logf("%s: %d rows in %.1f s, %.0f events/s", e.Name(), rows, sec, benchEvents/sec)
		})
	}
}
