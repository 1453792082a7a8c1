package batch_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"regexp"
	"testing"
	"time"

	"github.com/bytebasket/bytebasket/internal/app"
	"github.com/bytebasket/bytebasket/internal/batch"
	"github.com/bytebasket/bytebasket/internal/batch/batchtest"
	"github.com/bytebasket/bytebasket/internal/config"
	"github.com/bytebasket/bytebasket/internal/lake"
	"github.com/bytebasket/bytebasket/internal/lake/local"
	"github.com/bytebasket/bytebasket/internal/model"
	"github.com/bytebasket/bytebasket/internal/sim"
	"github.com/bytebasket/bytebasket/internal/store/cassandra"
	"github.com/bytebasket/bytebasket/internal/store/embedded"
	"github.com/bytebasket/bytebasket/internal/testenv"
)

var summaryLine = regexp.MustCompile(`^trends on (duckdb|spark) over \[.*\): wrote (\d+) rows \(\d+ metrics, \d+ rankings\) in \d+\.\ds\n$`)

var e2eStart = time.Date(2026, 11, 30, 22, 30, 0, 0, time.UTC) // across a month boundary

func buildE2ELake(t *testing.T, be lake.Backend) *batchtest.Lake {
	t.Helper()
	l, err := batchtest.Build(context.Background(), batchtest.Options{
		Sim:    sim.Config{Seed: 5, Users: 800, Start: e2eStart, Rate: 2},
		Events: 12_000, MaxFileRows: 2000, Expect: true,
	}, be)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// runTwice runs BatchTrends twice over the same range: both runs write the same number of
// rows, and the store then holds exactly what Go computed from the simulated events.
func runTwice(t *testing.T, cfg config.Config, l *batchtest.Lake, read func() batchtest.TrendStore) {
	t.Helper()
	ctx := context.Background()
	from, to := e2eStart.Add(40*time.Minute), e2eStart.Add(3*time.Hour)
	var rows []string
	for range 2 {
		var out bytes.Buffer
		if err := app.BatchTrends(ctx, cfg, from, to, &out); err != nil {
			t.Fatal(err)
		}
		m := summaryLine.FindStringSubmatch(out.String())
		if m == nil {
			t.Fatalf("summary %q", out.String())
		}
		rows = append(rows, m[2])
	}
	want := l.Expected(from, to)
	if rows[0] != rows[1] || rows[0] != fmt.Sprint(want.Len()) {
		t.Fatalf("runs wrote %v rows, want %d each", rows, want.Len())
	}
	st := read()
	for _, g := range model.TrendGranularities {
		gf, gt := batch.Align(g, from, to)
		got, err := st.Trends(ctx, g, gf, gt)
		if err != nil {
			t.Fatal(err)
		}
		if w := batchtest.TrendsInRange(want, g, gf, gt); len(w) == 0 || !reflect.DeepEqual(got, w) {
			t.Errorf("%s trends in the store:\n got  %+v\n want %+v", g, got, w)
		}
	}
	for _, m := range want.Metrics {
		for _, dim := range model.TrendTopDimensions {
			got, err := st.TrendTops(ctx, m.Key.Granularity, m.Key.Start, dim)
			if err != nil {
				t.Fatal(err)
			}
			if w := batchtest.TopsOf(want, m.Key.Granularity, m.Key.Start, dim); !reflect.DeepEqual(got, w) {
				t.Errorf("%s %s %s rankings in the store:\n got  %+v\n want %+v", m.Key.Granularity, m.Key.Start, dim, got, w)
			}
		}
	}
}

// localLake is the default configuration with a data directory of the test's, and the
// local lake inside it (closed with the test).
func localLake(t *testing.T) (config.Config, *local.Dir) {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	be, err := local.Open(filepath.Join(cfg.DataDir, cfg.Lake.Root))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { be.Close() })
	return cfg, be
}

// Embedded mode: DuckDB over the local lake into the embedded store.
func TestBatchTrendsEmbedded(t *testing.T) {
	cfg, be := localLake(t)
	l := buildE2ELake(t, be)
	runTwice(t, cfg, l, func() batchtest.TrendStore {
		st, err := embedded.Open(filepath.Join(cfg.DataDir, "store"), cfg.Retention.Duration())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	})
}

// Cluster mode: Spark over the lake on HDFS into Cassandra.
func TestBatchTrendsCluster(t *testing.T) {
	ctx := context.Background()
	cfg := config.Default()
	cfg.Store.Backend, cfg.Lake.Backend, cfg.Batch.Engine = "cassandra", "hdfs", "spark"
	cfg.Cassandra.Hosts = []string{testenv.Addr(t, testenv.Cassandra)}
	cfg.Cassandra.Keyspace = fmt.Sprintf("it_%d", time.Now().UnixNano())
	cfg.Spark.Remote = "sc://" + testenv.Addr(t, testenv.Spark)
	fs, uri := openHDFS(t, fmt.Sprintf("/it/batch-e2e-%d", time.Now().UnixNano()))
	defer func() { _ = fs.RemoveAll(ctx, "/"); fs.Close() }()
	cfg.Spark.LakeURI = uri

	s, err := cassandra.Connect(ctx, cfg.Cassandra)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	defer s.Query("DROP KEYSPACE IF EXISTS " + cfg.Cassandra.Keyspace).Exec()
	if _, err := cassandra.ApplySchema(ctx, s, cfg.Cassandra, cfg.Retention.Duration(), cassandra.WithHistory(cfg.Retention.HistoryDuration())); err != nil {
		t.Fatal(err)
	}

	l := buildE2ELake(t, fs)
	runTwice(t, cfg, l, func() batchtest.TrendStore {
		st, err := cassandra.NewStore(ctx, cfg.Cassandra)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	})
}

// DuckDB cannot read a lake on HDFS: the factory says so instead of reading nothing.
func TestDuckDBNeedsLocalLake(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Lake.Backend = "hdfs"
	err := app.BatchTrends(context.Background(), cfg, e2eStart, e2eStart.Add(time.Hour), &bytes.Buffer{})
	if err == nil || !regexp.MustCompile(`duckdb reads a local lake`).MatchString(err.Error()) {
		t.Fatalf("err %v", err)
	}
}
