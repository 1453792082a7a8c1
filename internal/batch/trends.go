package batch

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/template"
	"time"

	"github.com/bytebasket/bytebasket/internal/model"
)

// Job is one SQL text over the views, run once per granularity. The text is a
// text/template: {{.Unit}} is the date_trunc unit, {{template "range" .}} restricts a view to
// the time range (and, through the Hive date column, to the files that can hold it), and
// {{explode "col"}} is the engine's list unnesting. Every count and sum is cast to BIGINT:
// DuckDB's SUM returns HUGEINT.
type Job struct {
	Name string
	Text string
}

// rangeTmpl prunes by the partition date (files outside the range are never opened) and
// then filters exact event times. Literals are UTC: both engines run with UTC sessions.
const rangeTmpl = `{{define "range"}}date >= DATE '{{.FirstDate}}' AND date <= DATE '{{.LastDate}}' ` +
	`AND event_time >= TIMESTAMP '{{.From}}' AND event_time < TIMESTAMP '{{.To}}'{{end}}`

// tsLayout is how a job's text spells a timestamp literal.
const tsLayout = "2006-01-02 15:04:05.999999"

// rangeParams fill rangeTmpl for [from, to), with more parameters of a job's own.
func rangeParams(from, to time.Time, more map[string]any) map[string]any {
	from, to = from.UTC(), to.UTC()
	p := map[string]any{"From": from.Format(tsLayout), "To": to.Format(tsLayout),
		"FirstDate": from.Format(time.DateOnly), "LastDate": to.Add(-time.Microsecond).Format(time.DateOnly)}
	maps.Copy(p, more)
	return p
}

// MetricsJob counts per bucket and platform, and per bucket over all platforms (distinct
// users do not add up across platforms). Users are distinct over both streams.
var MetricsJob = Job{Name: "metrics", Text: `
WITH ev AS (
  SELECT date_trunc('{{.Unit}}', event_time) AS bucket, platform, user_id, event_type
  FROM activity WHERE {{template "range" .}}
  UNION ALL
  SELECT date_trunc('{{.Unit}}', event_time) AS bucket, platform, user_id, event_type
  FROM transactions WHERE {{template "range" .}}
)
SELECT bucket, COALESCE(platform, '{{.All}}') AS plat,
  CAST(COUNT(DISTINCT user_id) AS BIGINT) AS active_users,
  CAST(COUNT(DISTINCT CASE WHEN event_type = 'product_view' THEN user_id END) AS BIGINT) AS product_viewers,
  CAST(COUNT(DISTINCT CASE WHEN event_type = 'order_placed' THEN user_id END) AS BIGINT) AS buyers,
  CAST(SUM(CASE WHEN event_type = 'page_view' THEN 1 ELSE 0 END) AS BIGINT) AS page_views,
  CAST(SUM(CASE WHEN event_type = 'product_view' THEN 1 ELSE 0 END) AS BIGINT) AS product_views,
  CAST(SUM(CASE WHEN event_type = 'search' THEN 1 ELSE 0 END) AS BIGINT) AS searches,
  CAST(SUM(CASE WHEN event_type = 'cart_add' THEN 1 ELSE 0 END) AS BIGINT) AS cart_adds,
  CAST(SUM(CASE WHEN event_type = 'checkout_started' THEN 1 ELSE 0 END) AS BIGINT) AS checkouts,
  CAST(SUM(CASE WHEN event_type = 'order_placed' THEN 1 ELSE 0 END) AS BIGINT) AS orders,
  CAST(SUM(CASE WHEN event_type = 'payment_failed' THEN 1 ELSE 0 END) AS BIGINT) AS payments_failed,
  CAST(SUM(CASE WHEN event_type = 'refund' THEN 1 ELSE 0 END) AS BIGINT) AS refunds,
  CAST(SUM(CASE WHEN event_type = 'chargeback' THEN 1 ELSE 0 END) AS BIGINT) AS chargebacks
FROM ev
GROUP BY GROUPING SETS ((bucket, platform), (bucket))
ORDER BY bucket, plat`}

// RevenueJob sums order totals and counts orders per currency.
var RevenueJob = Job{Name: "revenue", Text: `
WITH o AS (
  SELECT date_trunc('{{.Unit}}', event_time) AS bucket, platform, currency, amount_minor
  FROM transactions WHERE event_type = 'order_placed' AND {{template "range" .}}
)
SELECT bucket, COALESCE(platform, '{{.All}}') AS plat, currency,
  CAST(COUNT(*) AS BIGINT) AS orders, CAST(SUM(amount_minor) AS BIGINT) AS revenue
FROM o
GROUP BY GROUPING SETS ((bucket, platform, currency), (bucket, currency))
ORDER BY bucket, plat, currency`}

// TopsJob ranks products and categories per bucket and platform: the top N by value, ties
// broken by id, so both engines agree on every rank. Revenue is per order line (quantity x
// unit price), all currencies summed as-is, like the stream's rankings.
var TopsJob = Job{Name: "tops", Text: `
WITH views AS (
  SELECT date_trunc('{{.Unit}}', event_time) AS bucket, platform, product_id, category_id
  FROM activity WHERE event_type = 'product_view' AND {{template "range" .}}
), lines AS (
  SELECT bucket, platform, it.product_id AS product_id, it.category_id AS category_id,
    CAST(it.quantity AS BIGINT) AS units, CAST(it.quantity AS BIGINT) * it.unit_price_minor AS revenue
  FROM (
    SELECT date_trunc('{{.Unit}}', event_time) AS bucket, platform, {{explode "items"}} AS it
    FROM transactions WHERE event_type = 'order_placed' AND {{template "range" .}}
  ) o
), scored AS (
  SELECT '{{.Dim.ProductViews}}' AS dimension, bucket, platform, product_id AS id, CAST(COUNT(*) AS BIGINT) AS value
  FROM views GROUP BY GROUPING SETS ((bucket, platform, product_id), (bucket, product_id))
  UNION ALL
  SELECT '{{.Dim.CategoryViews}}', bucket, platform, category_id, CAST(COUNT(*) AS BIGINT)
  FROM views GROUP BY GROUPING SETS ((bucket, platform, category_id), (bucket, category_id))
  UNION ALL
  SELECT '{{.Dim.ProductUnits}}', bucket, platform, product_id, CAST(SUM(units) AS BIGINT)
  FROM lines GROUP BY GROUPING SETS ((bucket, platform, product_id), (bucket, product_id))
  UNION ALL
  SELECT '{{.Dim.ProductRevenue}}', bucket, platform, product_id, CAST(SUM(revenue) AS BIGINT)
  FROM lines GROUP BY GROUPING SETS ((bucket, platform, product_id), (bucket, product_id))
  UNION ALL
  SELECT '{{.Dim.CategoryRevenue}}', bucket, platform, category_id, CAST(SUM(revenue) AS BIGINT)
  FROM lines GROUP BY GROUPING SETS ((bucket, platform, category_id), (bucket, category_id))
), ranked AS (
  SELECT dimension, bucket, COALESCE(platform, '{{.All}}') AS plat, id, value,
    ROW_NUMBER() OVER (PARTITION BY dimension, bucket, COALESCE(platform, '{{.All}}') ORDER BY value DESC, id ASC) AS rn
  FROM scored
)
SELECT dimension, bucket, plat, CAST(rn AS BIGINT) AS rank, id, value
FROM ranked WHERE rn <= {{.TopN}}
ORDER BY dimension, bucket, plat, rank`}

// Jobs lists every job of the trends run.
var Jobs = []Job{MetricsJob, RevenueJob, TopsJob}

// sqlParams fill a job's template.
type sqlParams struct {
	Unit                string
	From, To            string
	FirstDate, LastDate string
	All                 string
	TopN                int
	Dim                 struct{ ProductViews, CategoryViews, ProductUnits, ProductRevenue, CategoryRevenue model.TopDimension }
}

// SQL renders the job for an engine over [from, to), bucketed by g.
func (j Job) SQL(eng Engine, g model.TrendGranularity, from, to time.Time) (string, error) {
	unit := map[model.TrendGranularity]string{model.TrendHour: "hour", model.TrendDay: "day"}[g]
	if unit == "" {
		return "", fmt.Errorf("batch: unknown granularity %q", g)
	}
	from, to = from.UTC(), to.UTC()
	p := sqlParams{
		Unit: unit, From: from.Format(tsLayout), To: to.Format(tsLayout),
		FirstDate: from.Format(time.DateOnly), LastDate: to.Add(-time.Microsecond).Format(time.DateOnly),
		All: model.AllPlatforms, TopN: model.TrendTopN,
	}
	p.Dim.ProductViews, p.Dim.CategoryViews = model.TopProductViews, model.TopCategoryViews
	p.Dim.ProductUnits, p.Dim.ProductRevenue, p.Dim.CategoryRevenue = model.TopProductUnits, model.TopProductRevenue, model.TopCategoryRevenue
	return render(eng, j.Name, rangeTmpl+j.Text, p)
}

// render fills template text (named name in errors) with p for eng.
func render(eng Engine, name, text string, p any) (string, error) {
	t, err := template.New(name).Option("missingkey=error").
		Funcs(template.FuncMap{"explode": eng.Explode, "micros": eng.Micros}).Parse(text)
	if err != nil {
		return "", fmt.Errorf("batch: job %s: %w", name, err)
	}
	var b strings.Builder
	if err := t.Execute(&b, p); err != nil {
		return "", fmt.Errorf("batch: job %s: %w", name, err)
	}
	return b.String(), nil
}

// query runs q on eng and returns its rows normalized (see Normalize); what names the job in
// errors.
func query(ctx context.Context, eng Engine, what, q string) ([]string, [][]any, error) {
	cols, rows, err := eng.Query(ctx, q)
	if err == nil {
		rows, err = Normalize(rows)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("batch: job %s on %s: %w", what, eng.Name(), err)
	}
	return cols, rows, nil
}

// Run runs the job on eng and returns its rows normalized (see Normalize). The views must
// be registered.
func (j Job) Run(ctx context.Context, eng Engine, g model.TrendGranularity, from, to time.Time) ([]string, [][]any, error) {
	q, err := j.SQL(eng, g, from, to)
	if err != nil {
		return nil, nil, err
	}
	return query(ctx, eng, fmt.Sprintf("%s (%s)", j.Name, g), q)
}

// Align widens [from, to) to whole buckets of g, so every bucket is computed from all of
// its events: a run over part of a day still rewrites that day's row whole.
func Align(g model.TrendGranularity, from, to time.Time) (time.Time, time.Time) {
	d := g.Duration()
	from, to = from.UTC().Truncate(d), to.UTC()
	if t := to.Truncate(d); t.Before(to) {
		to = t.Add(d)
	}
	return from, to
}

// Compute runs every job at every granularity over [from, to) (aligned per granularity, see
// Align) and assembles the rows to store, ordered by granularity, start, platform and
// dimension. The views must be registered. Every bucket and
// platform with metrics gets a ranking of each dimension, empty when nothing was ranked, so
// a re-run replaces every ranking it ever wrote.
func Compute(ctx context.Context, eng Engine, from, to time.Time) (model.Trends, error) {
	var out model.Trends
	if !from.Before(to) {
		return out, fmt.Errorf("batch: empty range [%s, %s)", from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	for _, g := range model.TrendGranularities {
		gf, gt := Align(g, from, to)
		t, err := computeOne(ctx, eng, g, gf, gt)
		if err != nil {
			return out, err
		}
		out.Metrics = append(out.Metrics, t.Metrics...)
		out.Tops = append(out.Tops, t.Tops...)
	}
	// A stable order makes results of two engines, or two runs, comparable as they are.
	slices.SortFunc(out.Metrics, func(a, b model.TrendMetrics) int { return compareKeys(a.Key, b.Key) })
	slices.SortFunc(out.Tops, func(a, b model.TrendTop) int {
		if c := compareKeys(a.Key, b.Key); c != 0 {
			return c
		}
		return strings.Compare(string(a.Dimension), string(b.Dimension))
	})
	return out, nil
}

// topKey names one ranking.
type topKey struct {
	model.TrendKey
	dim model.TopDimension
}

func computeOne(ctx context.Context, eng Engine, g model.TrendGranularity, from, to time.Time) (model.Trends, error) {
	var out model.Trends
	metrics := map[model.TrendKey]*model.TrendMetrics{}
	_, rows, err := MetricsJob.Run(ctx, eng, g, from, to)
	if err != nil {
		return out, err
	}
	for _, r := range rows {
		var m model.TrendMetrics
		if m.Key, err = trendKey(g, r[0], r[1]); err != nil {
			return out, fmt.Errorf("batch: metrics row %v: %w", r, err)
		}
		ints := []*int64{&m.ActiveUsers, &m.ProductViewers, &m.Buyers, &m.PageViews, &m.ProductViews, &m.Searches,
			&m.CartAdds, &m.Checkouts, &m.Orders, &m.PaymentsFailed, &m.Refunds, &m.Chargebacks}
		if len(r) != 2+len(ints) {
			return out, fmt.Errorf("batch: metrics row has %d columns, want %d", len(r), 2+len(ints))
		}
		for i, p := range ints {
			if *p, err = Int64(r[2+i]); err != nil {
				return out, fmt.Errorf("batch: metrics row %v: %w", r, err)
			}
		}
		metrics[m.Key] = &m
	}

	_, rows, err = RevenueJob.Run(ctx, eng, g, from, to)
	if err != nil {
		return out, err
	}
	for _, r := range rows {
		k, err := trendKey(g, r[0], r[1])
		if err != nil {
			return out, fmt.Errorf("batch: revenue row %v: %w", r, err)
		}
		if len(r) != 5 {
			return out, fmt.Errorf("batch: revenue row has %d columns, want 5", len(r))
		}
		cur, err1 := String(r[2])
		orders, err2 := Int64(r[3])
		revenue, err3 := Int64(r[4])
		if err := errors.Join(err1, err2, err3); err != nil {
			return out, fmt.Errorf("batch: revenue row %v: %w", r, err)
		}
		m := metrics[k]
		if m == nil { // an order is an event of the bucket: metrics must have it
			return out, fmt.Errorf("batch: revenue for %s %s %s without metrics", g, k.Start.Format(time.RFC3339), k.Platform)
		}
		if m.Revenue == nil {
			m.Revenue, m.OrdersByCurrency = map[string]int64{}, map[string]int64{}
		}
		m.OrdersByCurrency[cur] += orders
		m.Revenue[cur] += revenue
	}

	tops := map[topKey]*model.TrendTop{}
	for k := range metrics {
		for _, dim := range model.TrendTopDimensions {
			tops[topKey{k, dim}] = &model.TrendTop{Key: k, Dimension: dim}
		}
	}
	_, rows, err = TopsJob.Run(ctx, eng, g, from, to)
	if err != nil {
		return out, err
	}
	for _, r := range rows {
		if len(r) != 6 {
			return out, fmt.Errorf("batch: tops row has %d columns, want 6", len(r))
		}
		dim, err1 := String(r[0])
		k, err2 := trendKey(g, r[1], r[2])
		rank, err3 := Int64(r[3])
		id, err4 := String(r[4])
		value, err5 := Int64(r[5])
		if err := errors.Join(err1, err2, err3, err4, err5); err != nil {
			return out, fmt.Errorf("batch: tops row %v: %w", r, err)
		}
		tk := topKey{k, model.TopDimension(dim)}
		t := tops[tk]
		if t == nil {
			t = &model.TrendTop{Key: k, Dimension: tk.dim}
			tops[tk] = t
		}
		// Rows come ordered by rank; the rank column checks that none is missing.
		if rank != int64(len(t.Items)+1) {
			return out, fmt.Errorf("batch: ranking %s %s %s %s: rank %d after %d items", g, k.Start.Format(time.RFC3339), k.Platform, dim, rank, len(t.Items))
		}
		t.Items = append(t.Items, model.RankedItem{ID: id, Value: value})
	}

	for _, m := range metrics {
		out.Metrics = append(out.Metrics, *m)
	}
	for _, t := range tops {
		out.Tops = append(out.Tops, *t)
	}
	return out, nil
}

func trendKey(g model.TrendGranularity, start, platform any) (model.TrendKey, error) {
	t, err := Time(start)
	if err != nil {
		return model.TrendKey{}, err
	}
	p, err := String(platform)
	if err != nil {
		return model.TrendKey{}, err
	}
	return model.TrendKey{Granularity: g, Start: t, Platform: p}, nil
}

func compareKeys(a, b model.TrendKey) int {
	if c := strings.Compare(string(a.Granularity), string(b.Granularity)); c != 0 {
		return c
	}
	if c := a.Start.Compare(b.Start); c != 0 {
		return c
	}
	return strings.Compare(a.Platform, b.Platform)
}

// Summary is what one trends run did.
type Summary struct {
	Engine   string
	From, To time.Time // as requested; each granularity widens it to whole buckets
	Metrics  int       // metrics rows written
	Tops     int       // rankings written
	Elapsed  time.Duration
}

// Rows is the number of rows written.
func (s Summary) Rows() int { return s.Metrics + s.Tops }

func (s Summary) String() string {
	return fmt.Sprintf("trends on %s over [%s, %s): wrote %d rows (%d metrics, %d rankings) in %.1fs",
		s.Engine, s.From.UTC().Format(time.RFC3339), s.To.UTC().Format(time.RFC3339), s.Rows(), s.Metrics, s.Tops, s.Elapsed.Seconds())
}

// Run registers the views, computes the trends over [from, to) and writes them to sink.
// Running it again over the same range (with the same lake) writes the same rows.
func Run(ctx context.Context, eng Engine, sink Sink, from, to time.Time) (Summary, error) {
	start := time.Now()
	s := Summary{Engine: eng.Name(), From: from, To: to}
	if err := eng.RegisterViews(ctx); err != nil {
		return s, err
	}
	t, err := Compute(ctx, eng, from, to)
	if err != nil {
		return s, err
	}
	if err := sink.WriteTrends(ctx, t); err != nil {
		return s, fmt.Errorf("batch: write trends: %w", err)
	}
	s.Metrics, s.Tops, s.Elapsed = len(t.Metrics), len(t.Tops), time.Since(start)
	return s, nil
}
