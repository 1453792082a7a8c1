package cassandra

import (
	"context"
	"fmt"
	"time"

	"github.com/apache/cassandra-gocql-driver/v2"

	"github.com/bytebasket/bytebasket/internal/model"
)

// WriteTrends upserts every row of t whole (schema/0003_trends.cql): writing the same rows
// again leaves the same cells. On error some rows may be written; the caller re-runs.
func (st *Store) WriteTrends(ctx context.Context, t model.Trends) error {
	rows := make([]row, 0, t.Len())
	for i := range t.Metrics {
		m := &t.Metrics[i]
		k := m.Key
		rows = append(rows, row{"trend " + trendKeyString(k), st.insTrend, []any{
			string(k.Granularity), utcMonth(k.Start), k.Start, k.Platform, m.ActiveUsers, m.ProductViewers, m.Buyers,
			m.PageViews, m.ProductViews, m.Searches, m.CartAdds, m.Checkouts, m.Orders, m.PaymentsFailed, m.Refunds, m.Chargebacks,
			nonNil(m.Revenue), nonNil(m.OrdersByCurrency)}})
	}
	for i := range t.Tops {
		tp := &t.Tops[i]
		// Empty lists, not null: a null would write a tombstone.
		ids, values := make([]string, len(tp.Items)), make([]int64, len(tp.Items))
		for j, it := range tp.Items {
			ids[j], values[j] = it.ID, it.Value
		}
		rows = append(rows, row{"trend top " + trendKeyString(tp.Key) + " " + string(tp.Dimension), st.insTrendTop, []any{
			string(tp.Key.Granularity), tp.Key.Start, string(tp.Dimension), tp.Key.Platform, ids, values}})
	}
	return st.writeAll(ctx, rows, 0, 0)
}

// Trends returns the trend metrics of granularity g with Start in [from, to), every
// platform, newest first: one query per UTC month the range spans, newest month first.
func (st *Store) Trends(ctx context.Context, g model.TrendGranularity, from, to time.Time) ([]model.TrendMetrics, error) {
	from, to = ceilMillis(from), ceilMillis(to)
	if !from.Before(to) {
		return nil, nil
	}
	var out []model.TrendMetrics
	first := utcMonth(from)
	for month := utcMonth(to.Add(-time.Millisecond)); !month.Before(first); month = month.AddDate(0, -1, 0) {
		var err error
		out, err = readAll(ctx, st.query(st.selTrends, string(g), month, from, to), out, func(sc gocql.Scanner) (model.TrendMetrics, error) {
			var m model.TrendMetrics
			err := sc.Scan(&m.Key.Granularity, &m.Key.Start, &m.Key.Platform, &m.ActiveUsers, &m.ProductViewers, &m.Buyers,
				&m.PageViews, &m.ProductViews, &m.Searches, &m.CartAdds, &m.Checkouts, &m.Orders, &m.PaymentsFailed, &m.Refunds, &m.Chargebacks,
				&m.Revenue, &m.OrdersByCurrency)
			m.Key.Start = m.Key.Start.UTC()
			m.Revenue, m.OrdersByCurrency = nilIfEmpty(m.Revenue), nilIfEmpty(m.OrdersByCurrency)
			return m, err
		})
		if err != nil {
			return nil, fmt.Errorf("cassandra: trends %s month %s: %w", g, month.Format("2006-01"), err)
		}
	}
	return out, nil
}

// TrendTops returns the rankings dim of the bucket (g, start), one per platform, in
// platform order.
func (st *Store) TrendTops(ctx context.Context, g model.TrendGranularity, start time.Time, dim model.TopDimension) ([]model.TrendTop, error) {
	out, err := readAll(ctx, st.query(st.selTrendTops, string(g), start, string(dim)), nil, func(sc gocql.Scanner) (model.TrendTop, error) {
		var t model.TrendTop
		var ids []string
		var values []int64
		err := sc.Scan(&t.Key.Granularity, &t.Key.Start, &t.Dimension, &t.Key.Platform, &ids, &values)
		if err == nil && len(ids) != len(values) {
			err = fmt.Errorf("%d ids but %d values", len(ids), len(values))
		}
		t.Key.Start = t.Key.Start.UTC()
		for i := range ids {
			t.Items = append(t.Items, model.RankedItem{ID: ids[i], Value: values[i]})
		}
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("cassandra: trend tops %s %s %s: %w", g, start.UTC().Format(time.RFC3339), dim, err)
	}
	return out, nil
}

// utcMonth is the partition bucket of a trend row: the first day of its UTC month.
func utcMonth(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

func trendKeyString(k model.TrendKey) string {
	return fmt.Sprintf("%s %s %s", k.Granularity, k.Start.UTC().Format(time.RFC3339), k.Platform)
}
