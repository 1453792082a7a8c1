package batch

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/bytebasket/bytebasket/internal/fraud/riskmodel"
)

// FraudFeaturesJob computes, for every order placed in [From, To), the inputs of its
// riskmodel.Order from the lake, and its label: fraud when a chargeback for fraud (or a
// refund marked as fraud) of it came within the label window. It is the batch twin of what
// the fraud role's first stage computes online from a user's history and profile (see
// riskmodel.Order): counts exclude the order itself, "first seen" times include it, history
// reaches back Lookback seconds (the profile retention). One text for both engines.
var FraudFeaturesJob = Job{Name: "fraud-features", Text: `
WITH o AS (
  SELECT event_id, order_id, user_id, event_time, amount_minor, currency, payment_method,
    billing_country, shipping_country, device_id
  FROM transactions
  WHERE event_type = 'order_placed' AND {{template "range" .}}
), ev AS (
  SELECT user_id, event_id, event_time, event_type, device_id, country
  FROM activity WHERE {{template "history" .}}
  UNION ALL
  SELECT user_id, event_id, event_time, event_type, device_id, CAST(NULL AS STRING) AS country
  FROM transactions WHERE {{template "history" .}}
), f AS (
  SELECT o.event_id,
    CAST(SUM(CASE WHEN e.event_type = 'order_placed' AND e.event_id <> o.event_id THEN 1 ELSE 0 END) AS BIGINT) AS prior_orders,
    CAST(SUM(CASE WHEN e.event_type = 'order_placed' AND e.event_id <> o.event_id
      AND e.event_time > o.event_time - INTERVAL {{.WindowS}} SECONDS THEN 1 ELSE 0 END) AS BIGINT) AS orders_1h,
    CAST(SUM(CASE WHEN e.event_type = 'payment_failed'
      AND e.event_time > o.event_time - INTERVAL {{.WindowS}} SECONDS THEN 1 ELSE 0 END) AS BIGINT) AS failed_1h,
    MIN(e.event_time) AS first_seen,
    MIN(CASE WHEN e.device_id = o.device_id THEN e.event_time END) AS device_first_seen,
    CAST(COUNT(DISTINCT CASE WHEN e.event_time > o.event_time - INTERVAL {{.CountriesS}} SECONDS THEN e.country END) AS BIGINT) AS countries_24h
  FROM o JOIN ev e ON e.user_id = o.user_id
    AND e.event_time <= o.event_time AND e.event_time > o.event_time - INTERVAL {{.LookbackS}} SECONDS
  GROUP BY o.event_id
), labelled AS (
  SELECT o.order_id, MIN(o.event_time) AS placed
  FROM o JOIN transactions t ON t.order_id = o.order_id
  WHERE ((t.event_type = 'chargeback' AND t.reason = 'fraudulent') OR (t.event_type = 'refund' AND t.reason = 'fraud'))
    AND t.date >= DATE '{{.FirstDate}}' AND t.date <= DATE '{{.LabelLastDate}}'
    AND t.event_time >= TIMESTAMP '{{.From}}' AND t.event_time < TIMESTAMP '{{.LabelTo}}'
    AND t.event_time <= o.event_time + INTERVAL {{.LabelS}} SECONDS
  GROUP BY o.order_id
)
SELECT o.event_id, o.order_id, o.event_time, o.amount_minor, o.currency, o.payment_method,
  CAST(CASE WHEN o.billing_country <> '' AND o.shipping_country <> '' AND o.billing_country <> o.shipping_country THEN 1 ELSE 0 END AS BIGINT) AS address_mismatch,
  f.prior_orders, f.orders_1h, f.failed_1h, f.first_seen, f.device_first_seen, f.countries_24h,
  CAST(CASE WHEN l.order_id IS NULL THEN 0 ELSE 1 END AS BIGINT) AS fraud
FROM o JOIN f ON f.event_id = o.event_id
LEFT JOIN labelled l ON l.order_id = o.order_id
ORDER BY o.event_time, o.event_id`}

// featureTmpl restricts the history scans: from Lookback before From.
const featureTmpl = `{{define "history"}}date >= DATE '{{.HistFirstDate}}' AND date <= DATE '{{.LastDate}}' ` +
	`AND event_time >= TIMESTAMP '{{.HistFrom}}' AND event_time < TIMESTAMP '{{.To}}'{{end}}`

// FraudFeatures are the parameters of FraudFeaturesJob.
type FraudFeatures struct {
	From, To    time.Time     // orders placed in [From, To)
	Lookback    time.Duration // history before an order (the profile retention)
	LabelWindow time.Duration // how long after an order a chargeback still labels it
}

// FraudExample is one order's example and what identifies it.
type FraudExample struct {
	EventID, OrderID string
	riskmodel.Example
}

// SQL renders the job for eng.
func (ff FraudFeatures) SQL(eng Engine) (string, error) {
	to := ff.To.UTC()
	hist := ff.From.UTC().Add(-ff.Lookback)
	p := rangeParams(ff.From, ff.To, map[string]any{
		"HistFrom": hist.Format(tsLayout), "HistFirstDate": hist.Format(time.DateOnly),
		"LabelTo": to.Add(ff.LabelWindow).Format(tsLayout), "LabelLastDate": to.Add(ff.LabelWindow).Format(time.DateOnly),
		"WindowS": int64(riskmodel.Window.Seconds()), "CountriesS": int64(riskmodel.CountriesWindow.Seconds()),
		"LookbackS": int64(ff.Lookback.Seconds()), "LabelS": int64(ff.LabelWindow.Seconds()),
	})
	return render(eng, FraudFeaturesJob.Name, rangeTmpl+featureTmpl+FraudFeaturesJob.Text, p)
}

// Rows runs the job on eng (views registered) and returns its rows normalized, oldest
// order first.
func (ff FraudFeatures) Rows(ctx context.Context, eng Engine) ([][]any, error) {
	if !ff.From.Before(ff.To) || ff.Lookback <= 0 || ff.LabelWindow <= 0 {
		return nil, fmt.Errorf("batch: fraud features over [%s, %s), lookback %s, label window %s: want a range and positive durations",
			ff.From.Format(time.RFC3339), ff.To.Format(time.RFC3339), ff.Lookback, ff.LabelWindow)
	}
	q, err := ff.SQL(eng)
	if err != nil {
		return nil, err
	}
	_, rows, err := query(ctx, eng, FraudFeaturesJob.Name, q)
	return rows, err
}

// Examples runs the job on eng and reads its rows as examples.
func (ff FraudFeatures) Examples(ctx context.Context, eng Engine) ([]FraudExample, error) {
	rows, err := ff.Rows(ctx, eng)
	if err != nil {
		return nil, err
	}
	out := make([]FraudExample, 0, len(rows))
	for i, r := range rows {
		x, err := exampleOf(r)
		if err != nil {
			return nil, fmt.Errorf("batch: job %s on %s, row %d: %w", FraudFeaturesJob.Name, eng.Name(), i, err)
		}
		out = append(out, x)
	}
	return out, nil
}

// exampleOf reads one normalized row of FraudFeaturesJob.
func exampleOf(r []any) (FraudExample, error) {
	if len(r) != 14 {
		return FraudExample{}, fmt.Errorf("%d columns, want 14", len(r))
	}
	var x FraudExample
	var err error
	str := func(i int) string {
		s, e := String(r[i])
		err = cmp.Or(err, e)
		return s
	}
	num := func(i int) int64 {
		n, e := Int64(r[i])
		err = cmp.Or(err, e)
		return n
	}
	at := func(i int) time.Time {
		if r[i] == nil {
			return time.Time{}
		}
		t, e := Time(r[i])
		err = cmp.Or(err, e)
		return t
	}
	x.EventID, x.OrderID, x.Time = str(0), str(1), at(2)
	o := &x.Order
	o.AmountMinor, o.Currency, o.PaymentMethod = num(3), str(4), str(5)
	o.AddressMismatch = num(6) == 1
	o.PriorOrders, o.Orders1h, o.Failed1h = num(7), num(8), num(9)
	if first := at(10); !first.IsZero() {
		o.AccountAge = x.Time.Sub(first)
	}
	if dev := at(11); !dev.IsZero() {
		o.DeviceAge = x.Time.Sub(dev)
	}
	o.Countries24h = num(12)
	x.Fraud = num(13) == 1
	return x, err
}
