package batchtest

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bytebasket/bytebasket/internal/batch"
	"github.com/bytebasket/bytebasket/internal/model"
)

// TrendStore is a serving store as batch writes it and the API reads it.
type TrendStore interface {
	batch.Sink
	batch.TrendReader
}

// TestTrendStore checks a store's trend tables: SampleTrends read back by range (newest
// first, UTC, empty maps as nil) and by bucket; a rewrite of the same rows changes nothing;
// a rewrite with other values replaces whole rows, rankings included.
func TestTrendStore(t *testing.T, st TrendStore) {
	ctx := context.Background()
	rows := SampleTrends()
	if err := st.WriteTrends(ctx, rows); err != nil {
		t.Fatal(err)
	}
	check := func(what string, rows model.Trends) {
		t.Helper()
		for _, g := range model.TrendGranularities {
			for _, r := range [][2]time.Time{
				{time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
				// Both bounds inside the data; to is exclusive and not a bucket start.
				{time.Date(2026, 11, 30, 23, 0, 0, 0, time.UTC), time.Date(2026, 12, 1, 0, 0, 0, 1000, time.UTC)},
			} {
				got, err := st.Trends(ctx, g, r[0], r[1])
				if err != nil {
					t.Fatal(err)
				}
				if want := TrendsInRange(rows, g, r[0], r[1]); !reflect.DeepEqual(got, want) {
					t.Errorf("%s: trends %s [%s, %s):\n got  %+v\n want %+v", what, g, r[0], r[1], got, want)
				}
			}
		}
		for _, k := range rows.Metrics {
			for _, dim := range model.TrendTopDimensions {
				got, err := st.TrendTops(ctx, k.Key.Granularity, k.Key.Start, dim)
				if err != nil {
					t.Fatal(err)
				}
				if want := TopsOf(rows, k.Key.Granularity, k.Key.Start, dim); !reflect.DeepEqual(got, want) {
					t.Errorf("%s: tops %s %s %s:\n got  %+v\n want %+v", what, k.Key.Granularity, k.Key.Start, dim, got, want)
				}
			}
		}
	}
	check("first write", rows)
	if err := st.WriteTrends(ctx, rows); err != nil {
		t.Fatal(err)
	}
	check("same rows again", rows)

	// A re-run after more data: other values, shorter and longer rankings, orders where
	// there were none and none where there were some.
	changed := SampleTrends()
	for i := range changed.Metrics {
		m := &changed.Metrics[i]
		m.ActiveUsers += 1000
		m.Revenue, m.OrdersByCurrency = map[string]int64{"GBP": 1}, map[string]int64{"GBP": 1}
		if m.Key.Platform == model.AllPlatforms {
			m.Revenue, m.OrdersByCurrency = nil, nil
		}
	}
	for i := range changed.Tops {
		tp := &changed.Tops[i]
		if len(tp.Items) > 0 {
			tp.Items = tp.Items[:1]
		} else {
			tp.Items = []model.RankedItem{{ID: "new", Value: 1}}
		}
	}
	if err := st.WriteTrends(ctx, changed); err != nil {
		t.Fatal(err)
	}
	check("rewrite", changed)
}

// TrendsInRange is what a store's Trends returns after rows were written: the rows of g
// with Start in [from, to), newest first, then by platform, in UTC, empty maps as nil.
func TrendsInRange(rows model.Trends, g model.TrendGranularity, from, to time.Time) []model.TrendMetrics {
	var out []model.TrendMetrics
	for _, m := range rows.Metrics {
		if m.Key.Granularity == g && !m.Key.Start.Before(from) && m.Key.Start.Before(to) {
			m.Key.Start = m.Key.Start.UTC()
			if len(m.Revenue) == 0 {
				m.Revenue, m.OrdersByCurrency = nil, nil
			}
			out = append(out, m)
		}
	}
	slices.SortStableFunc(out, func(a, b model.TrendMetrics) int {
		if c := b.Key.Start.Compare(a.Key.Start); c != 0 {
			return c
		}
		return strings.Compare(a.Key.Platform, b.Key.Platform)
	})
	return out
}

// TopsOf is what a store's TrendTops returns after rows were written: the rankings of one
// bucket and dimension in platform order, empty rankings as nil.
func TopsOf(rows model.Trends, g model.TrendGranularity, start time.Time, dim model.TopDimension) []model.TrendTop {
	var out []model.TrendTop
	for _, tp := range rows.Tops {
		if tp.Key.Granularity == g && tp.Key.Start.Equal(start) && tp.Dimension == dim {
			tp.Key.Start = tp.Key.Start.UTC()
			if len(tp.Items) == 0 {
				tp.Items = nil
			}
			out = append(out, tp)
		}
	}
	slices.SortStableFunc(out, func(a, b model.TrendTop) int { return strings.Compare(a.Key.Platform, b.Key.Platform) })
	return out
}
