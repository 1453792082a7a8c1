// Package batch_test runs the trends jobs on both engines against the real servers of
// deploy/local: DuckDB over a local lake, Spark (Spark Connect) over the same lake on HDFS.
package batch_test

import (
	"context"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bytebasket/bytebasket/internal/batch"
	"github.com/bytebasket/bytebasket/internal/batch/batchtest"
	"github.com/bytebasket/bytebasket/internal/batch/duckdb"
	"github.com/bytebasket/bytebasket/internal/batch/spark"
	"github.com/bytebasket/bytebasket/internal/config"
	"github.com/bytebasket/bytebasket/internal/lake"
	"github.com/bytebasket/bytebasket/internal/lake/hdfs"
	"github.com/bytebasket/bytebasket/internal/lake/local"
	"github.com/bytebasket/bytebasket/internal/model"
	"github.com/bytebasket/bytebasket/internal/sim"
	"github.com/bytebasket/bytebasket/internal/testenv"
)

// openHDFS opens a lake under root on the real HDFS and returns the URI Spark reads it by.
func openHDFS(t testing.TB, root string) (*hdfs.FS, string) {
	t.Helper()
	addr := testenv.Addr(t, testenv.HDFS)
	cfg := config.Default().Lake
	cfg.Backend, cfg.Root, cfg.HDFS.Namenodes = "hdfs", root, []string{addr}
	fs, err := hdfs.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return fs, "hdfs://" + addr + root
}

func connectSpark(t testing.TB, lakeURI string) *spark.Engine {
	t.Helper()
	cfg := config.Default().Spark
	cfg.Remote, cfg.LakeURI = "sc://"+testenv.Addr(t, testenv.Spark), lakeURI
	e, err := spark.Connect(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// The same lake, written once to a local directory and once to HDFS: every job on DuckDB
// and on Spark returns the same rows, and the trends both compute equal the totals Go
// computed from the simulated events.
func TestEnginesAgree(t *testing.T) {
	ctx := context.Background()
	fs, uri := openHDFS(t, fmt.Sprintf("/it/batch-%d", time.Now().UnixNano()))
	defer func() { _ = fs.RemoveAll(ctx, "/"); fs.Close() }()
	dir := t.TempDir()
	loc, err := local.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer loc.Close()

	start := time.Date(2026, 11, 24, 21, 40, 0, 0, time.UTC) // across a UTC midnight
	l, err := batchtest.Build(ctx, batchtest.Options{
		Sim:    sim.Config{Seed: 11, Users: 2000, Start: start, Rate: 3},
		Events: 40_000, MaxFileRows: 4000, Expect: true,
	}, loc, fs)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("lake: %d events in %d files, %s .. %s", l.Events, l.Files, l.First.Format(time.RFC3339), l.Last.Format(time.RFC3339))

	duck, err := duckdb.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer duck.Close()
	sp := connectSpark(t, uri)
	engines := []batch.Engine{duck, sp}
	for _, e := range engines {
		if err := e.RegisterViews(ctx); err != nil {
			t.Fatal(err)
		}
	}

	from, to := start.Add(50*time.Minute), l.Last.Add(-30*time.Minute) // not aligned: both ends cut events
	for _, g := range model.TrendGranularities {
		gf, gt := batch.Align(g, from, to)
		for _, j := range batch.Jobs {
			_, want, err := j.Run(ctx, duck, g, gf, gt)
			if err != nil {
				t.Fatal(err)
			}
			_, got, err := j.Run(ctx, sp, g, gf, gt)
			if err != nil {
				t.Fatal(err)
			}
			if len(want) == 0 {
				t.Fatalf("job %s (%s): no rows on DuckDB: the comparison would prove nothing", j.Name, g)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("job %s (%s): Spark and DuckDB differ", j.Name, g)
				for i := range max(len(got), len(want)) {
					var a, b []any
					if i < len(got) {
						a = got[i]
					}
					if i < len(want) {
						b = want[i]
					}
					if !reflect.DeepEqual(a, b) {
						t.Logf("row %d:\n spark  %v\n duckdb %v", i, a, b)
					}
				}
			}
		}
	}

	want := l.Expected(from, to)
	for _, e := range engines {
		got, err := batch.Compute(ctx, e, from, to)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: trends differ from the simulated totals (%d/%d metrics, %d/%d rankings)",
				e.Name(), len(got.Metrics), len(want.Metrics), len(got.Tops), len(want.Tops))
		}
	}
}

// Spark over a lake with no files, or files of one stream only, returns empty results.
func TestSparkEmptyLake(t *testing.T) {
	ctx := context.Background()
	root := fmt.Sprintf("/it/batch-empty-%d", time.Now().UnixNano())
	fs, uri := openHDFS(t, root)
	defer func() { _ = fs.RemoveAll(ctx, "/"); fs.Close() }()
	sp := connectSpark(t, uri)
	from := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)

	check := func(what string, wantMetrics bool) {
		t.Helper()
		if err := sp.RegisterViews(ctx); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		got, err := batch.Compute(ctx, sp, from, from.Add(24*time.Hour))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if (len(got.Metrics) > 0) != wantMetrics {
			t.Fatalf("%s: %d metrics rows", what, len(got.Metrics))
		}
	}
	check("no lake directory", false)

	// One stream's directory with only a hidden in-flight file: still no data.
	if err := fs.WriteAtomic(ctx, lake.PartitionDir(lake.StreamActivity, from)+"/_tmp.x.parquet", func(w io.Writer) error {
		_, err := w.Write([]byte("not parquet"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	check("hidden file only", false)

	// Activity only: metrics from it, and an empty transactions view.
	if _, err := batchtest.Build(ctx, batchtest.Options{
		Sim: sim.Config{Seed: 3, Users: 100, Start: from.Add(time.Hour), Rate: 5}, Events: 2000,
	}, onlyActivity{fs}); err != nil {
		t.Fatal(err)
	}
	check("activity only", true)
}

// onlyActivity is a lake that keeps the user-activity stream and drops the other.
type onlyActivity struct{ lake.Backend }

func (o onlyActivity) WriteAtomic(ctx context.Context, rel string, write func(io.Writer) error) error {
	if !strings.HasPrefix(rel, "stream="+lake.StreamActivity+"/") {
		return nil
	}
	return o.Backend.WriteAtomic(ctx, rel, write)
}

// The fraud model's training set (features and chargeback labels) is the same on both
// engines over the same lake, row for row.
func TestFraudFeaturesEnginesAgree(t *testing.T) {
	ctx := context.Background()
	fs, uri := openHDFS(t, fmt.Sprintf("/it/fraud-features-%d", time.Now().UnixNano()))
	defer func() { _ = fs.RemoveAll(ctx, "/"); fs.Close() }()
	dir := t.TempDir()
	loc, err := local.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer loc.Close()
	// Slow simulated time (about a day and a half), so chargebacks days after orders are in.
	l, err := batchtest.Build(ctx, batchtest.Options{
		Sim:    sim.Config{Seed: 5, Users: 500, Start: time.Date(2026, 11, 20, 22, 0, 0, 0, time.UTC), Rate: 0.4, FraudRate: 0.05},
		Events: 50_000, MaxFileRows: 5000,
	}, loc, fs)
	if err != nil {
		t.Fatal(err)
	}
	duck, err := duckdb.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer duck.Close()
	sp := connectSpark(t, uri)
	ff := batch.FraudFeatures{From: l.First.Add(6 * time.Hour), To: l.Last.Add(-6 * time.Hour), Lookback: 30 * 24 * time.Hour, LabelWindow: 7 * 24 * time.Hour}
	var results [][][]any
	for _, e := range []batch.Engine{duck, sp} {
		if err := e.RegisterViews(ctx); err != nil {
			t.Fatal(err)
		}
		rows, err := ff.Rows(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		results = append(results, rows)
	}
	want, got := results[0], results[1]
	fraud := 0
	for _, r := range want {
		if r[len(r)-1] == int64(1) {
			fraud++
		}
	}
	if len(want) < 200 || fraud == 0 {
		t.Fatalf("DuckDB: %d orders, %d labelled fraud: the comparison would prove little", len(want), fraud)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Spark (%d rows) and DuckDB (%d rows) differ", len(got), len(want))
		for i := range min(len(got), len(want)) {
			if !reflect.DeepEqual(got[i], want[i]) {
				t.Logf("row %d:\n spark  %v\n duckdb %v", i, got[i], want[i])
				break
			}
		}
	}
	t.Logf("%d orders, %d labelled fraud, same on both engines", len(want), fraud)
}
