package duckdb

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bytebasket/bytebasket/internal/batch"
	"github.com/bytebasket/bytebasket/internal/batch/batchtest"
	"github.com/bytebasket/bytebasket/internal/lake/local"
	"github.com/bytebasket/bytebasket/internal/model"
	"github.com/bytebasket/bytebasket/internal/sim"
)

// start puts the simulated events across a UTC midnight, so both granularities have
// several buckets.
var start = time.Date(2026, 11, 24, 22, 10, 0, 0, time.UTC)

func buildLake(t *testing.T, events int) (string, *batchtest.Lake) {
	t.Helper()
	root := t.TempDir()
	be, err := local.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	l, err := batchtest.Build(context.Background(), batchtest.Options{
		Sim:    sim.Config{Seed: 7, Users: 1500, Start: start, Rate: 2},
		Events: events, MaxFileRows: 3000, Expect: true,
	}, be)
	if err != nil {
		t.Fatal(err)
	}
	return root, l
}

func open(t *testing.T, root string) *Engine {
	t.Helper()
	e, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	if err := e.RegisterViews(context.Background()); err != nil {
		t.Fatal(err)
	}
	return e
}

// DuckDB's trends over a lake written by Go equal the totals Go computed from the same
// simulated events: counts, distinct users, revenue per currency, rankings with ties.
func TestTrendsMatchSimulatedTotals(t *testing.T) {
	root, l := buildLake(t, 30_000)
	act, txs := l.Streams()
	if act == 0 || txs == 0 || l.Last.Sub(l.First) < 3*time.Hour {
		t.Fatalf("lake too small to test: %d activity, %d transactions, %s of events", act, txs, l.Last.Sub(l.First))
	}
	e := open(t, root)
	ctx := context.Background()
	for _, r := range []struct {
		name     string
		from, to time.Time
	}{
		{"everything", l.First, l.Last.Add(time.Nanosecond)},
		// Events outside the range exist on both sides: the filter and the pruning must
		// drop them, and alignment must widen the range to whole buckets.
		{"part", start.Add(80 * time.Minute), start.Add(170 * time.Minute)},
	} {
		t.Run(r.name, func(t *testing.T) {
			got, err := batch.Compute(ctx, e, r.from, r.to)
			if err != nil {
				t.Fatal(err)
			}
			want := l.Expected(r.from, r.to)
			compare(t, got, want)
		})
	}
}

func compare(t *testing.T, got, want model.Trends) {
	t.Helper()
	if len(want.Metrics) == 0 || len(want.Tops) == 0 {
		t.Fatal("expected nothing: the test would prove nothing")
	}
	var orders, ties int64
	for _, m := range want.Metrics {
		orders += m.Orders
	}
	for _, tp := range want.Tops {
		for i := 1; i < len(tp.Items); i++ {
			if tp.Items[i].Value == tp.Items[i-1].Value {
				ties++
			}
		}
	}
	if orders == 0 || ties == 0 {
		t.Fatalf("expected %d orders and %d ties in rankings: the test would miss revenue or tie-breaking", orders, ties)
	}
	if len(got.Metrics) != len(want.Metrics) {
		t.Errorf("%d metrics rows, want %d", len(got.Metrics), len(want.Metrics))
	}
	for i := range min(len(got.Metrics), len(want.Metrics)) {
		if !reflect.DeepEqual(got.Metrics[i], want.Metrics[i]) {
			t.Errorf("metrics %d:\n got  %+v\n want %+v", i, got.Metrics[i], want.Metrics[i])
		}
	}
	if len(got.Tops) != len(want.Tops) {
		t.Errorf("%d rankings, want %d", len(got.Tops), len(want.Tops))
	}
	for i := range min(len(got.Tops), len(want.Tops)) {
		if !reflect.DeepEqual(got.Tops[i], want.Tops[i]) {
			t.Errorf("ranking %d:\n got  %+v\n want %+v", i, got.Tops[i], want.Tops[i])
		}
	}
}

// A lake with no files, or files of one stream only, gives empty results, not errors.
func TestEmptyLake(t *testing.T) {
	ctx := context.Background()
	from, to := start, start.Add(48*time.Hour)
	e := open(t, t.TempDir())
	got, err := batch.Compute(ctx, e, from, to)
	if err != nil || got.Len() != 0 {
		t.Fatalf("empty lake: %d rows, err %v", got.Len(), err)
	}
	for _, j := range batch.Jobs {
		if _, rows, err := j.Run(ctx, e, model.TrendHour, from, to); err != nil || len(rows) != 0 {
			t.Errorf("job %s on an empty lake: %d rows, err %v", j.Name, len(rows), err)
		}
	}
}

// The rendered SQL is the same text for both engines but for the unnesting function.
func TestOneSQLTextPerJob(t *testing.T) {
	e := &Engine{}
	for _, j := range batch.Jobs {
		q, err := j.SQL(e, model.TrendDay, start, start.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(q, "{{") || !strings.Contains(q, "event_time >= TIMESTAMP '2026-11-24 22:10:00'") ||
			!strings.Contains(q, "date <= DATE '2026-11-24'") {
			t.Errorf("job %s renders to\n%s", j.Name, q)
		}
	}
}

// The partition columns have one type whatever hours the lake holds: DuckDB would infer
// hour=00 .. hour=09 as text.
func TestPartitionColumnTypes(t *testing.T) {
	root, _ := buildLake(t, 30_000) // 22:10 to past 02:00: hours 22, 23 and 00 to 02
	e := open(t, root)
	for _, view := range []string{batch.ViewActivity, batch.ViewTransactions} {
		_, rows, err := e.Query(context.Background(), "SELECT DISTINCT typeof(date), typeof(hour), min(hour) OVER (), max(hour) OVER () FROM "+view)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1 || rows[0][0] != "DATE" || rows[0][1] != "INTEGER" || rows[0][2] != int32(0) || rows[0][3] != int32(23) {
			t.Errorf("%s: date, hour types and hour range %v, want DATE, INTEGER, 0, 23", view, rows)
		}
	}
}
