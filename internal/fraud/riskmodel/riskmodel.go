// Package riskmodel is the fraud role's learned score: a logistic regression over a few
// features of an order and its user's history, trained in batch over the lake (labels from
// chargebacks, internal/batch FraudFeaturesJob) and applied online by the fraud role's first
// stage. Both sides fill the same Order, so the features are defined once, here.
package riskmodel

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/bytebasket/bytebasket/internal/fraud/evaluate"
	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
)

// Order is what an order's features are computed from: its own fields and what its user did
// before it. Counts exclude the order itself; "first seen" times include it.
type Order struct {
	AmountMinor     int64
	Currency        string
	PaymentMethod   string
	AddressMismatch bool  // billing and shipping countries both given and different
	PriorOrders     int64 // the user's orders before this one (within the profile retention)
	Orders1h        int64 // the user's other orders in the hour up to it
	Failed1h        int64 // the user's failed payments in the hour up to it
	// Since the user's first event, and since the first event from the order's device
	// (0 when the order names no device), both within the profile retention.
	AccountAge, DeviceAge time.Duration
	Countries24h          int64 // distinct countries the user's shopper events came from in the 24 h up to it
}

// Window is how far back Orders1h and Failed1h look; CountriesWindow Countries24h.
const (
	Window          = time.Hour
	CountriesWindow = 24 * time.Hour
)

// numeric are the features every model has, in order; categorical ones follow them, named
// "currency=EUR" and "method=card" for each value seen often enough in training.
var numeric = []struct {
	name string
	fn   func(Order) float64
}{
	{"log_amount", func(o Order) float64 { return math.Log1p(float64(max(o.AmountMinor, 0))) }},
	{"address_mismatch", func(o Order) float64 { return indicator(o.AddressMismatch) }},
	{"log_prior_orders", func(o Order) float64 { return math.Log1p(float64(max(o.PriorOrders, 0))) }},
	{"orders_1h", func(o Order) float64 { return float64(o.Orders1h) }},
	{"failed_1h", func(o Order) float64 { return float64(o.Failed1h) }},
	{"log_account_age_h", func(o Order) float64 { return math.Log1p(max(o.AccountAge.Hours(), 0)) }},
	{"log_device_age_h", func(o Order) float64 { return math.Log1p(max(o.DeviceAge.Hours(), 0)) }},
	{"countries_24h", func(o Order) float64 { return float64(o.Countries24h) }},
}

// extractor is feature name's raw value, false for a name this release does not know.
func extractor(name string) (func(Order) float64, bool) {
	for _, f := range numeric {
		if f.name == name {
			return f.fn, true
		}
	}
	if v, ok := strings.CutPrefix(name, "currency="); ok {
		return func(o Order) float64 { return indicator(o.Currency == v) }, true
	}
	if v, ok := strings.CutPrefix(name, "method="); ok {
		return func(o Order) float64 { return indicator(o.PaymentMethod == v) }, true
	}
	return nil, false
}

// extractors are names' extractors, or the first name not known.
func extractors(names []string) ([]func(Order) float64, error) {
	fns := make([]func(Order) float64, len(names))
	for i, f := range names {
		fn, ok := extractor(f)
		if !ok {
			return nil, fmt.Errorf("unknown feature %q (a newer release's model?)", f)
		}
		fns[i] = fn
	}
	return fns, nil
}

func indicator(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Model is a trained FraudModel ready to score: its features' extractors resolved once.
type Model struct {
	pb  *pb.FraudModel
	fns []func(Order) float64
}

// FromProto checks m and returns it as a Model.
func FromProto(m *pb.FraudModel) (*Model, error) {
	n := len(m.GetFeatures())
	if n == 0 || len(m.GetMeans()) != n || len(m.GetScales()) != n || len(m.GetWeights()) != n {
		return nil, fmt.Errorf("fraud model v%d: %d features with %d means, %d scales, %d weights",
			m.GetVersion(), n, len(m.GetMeans()), len(m.GetScales()), len(m.GetWeights()))
	}
	fns, err := extractors(m.GetFeatures())
	if err != nil {
		return nil, fmt.Errorf("fraud model v%d: %w", m.GetVersion(), err)
	}
	for i, f := range m.GetFeatures() {
		for _, x := range []float64{m.GetMeans()[i], m.GetScales()[i], m.GetWeights()[i]} {
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return nil, fmt.Errorf("fraud model v%d: feature %q has a non-finite parameter", m.GetVersion(), f)
			}
		}
		if m.GetScales()[i] <= 0 {
			return nil, fmt.Errorf("fraud model v%d: feature %q has scale %v", m.GetVersion(), f, m.GetScales()[i])
		}
	}
	if err := checkThresholds(m); err != nil {
		return nil, err
	}
	if math.IsNaN(m.GetIntercept()) || math.IsInf(m.GetIntercept(), 0) {
		return nil, fmt.Errorf("fraud model v%d: non-finite intercept", m.GetVersion())
	}
	return &Model{pb: m, fns: fns}, nil
}

// Proto is the model's message.
func (m *Model) Proto() *pb.FraudModel { return m.pb }

// Version is the model's version.
func (m *Model) Version() int64 { return m.pb.GetVersion() }

// Probability is the model's probability that o is fraud.
func (m *Model) Probability(o Order) float64 {
	z := m.pb.GetIntercept()
	for i, fn := range m.fns {
		z += m.pb.GetWeights()[i] * (fn(o) - m.pb.GetMeans()[i]) / m.pb.GetScales()[i]
	}
	return sigmoid(z)
}

// Action is what probability p asks for.
func (m *Model) Action(p float64) pb.FraudAction {
	switch {
	case p >= m.pb.GetBlockAt():
		return pb.FraudAction_FRAUD_ACTION_BLOCK
	case p >= m.pb.GetReviewAt():
		return pb.FraudAction_FRAUD_ACTION_REVIEW
	}
	return pb.FraudAction_FRAUD_ACTION_ALLOW
}

// ReviewAt is the probability from which an order is reviewed.
func (m *Model) ReviewAt() float64 { return m.pb.GetReviewAt() }

func sigmoid(z float64) float64 {
	if z >= 0 {
		return 1 / (1 + math.Exp(-z))
	}
	e := math.Exp(z)
	return e / (1 + e)
}

// Example is one labelled order.
type Example struct {
	Order Order
	Time  time.Time
	Fraud bool
}

// TrainConfig tunes Train.
type TrainConfig struct {
	// L2 penalty on the standardized weights (the intercept is not penalized).
	L2 float64
	// MinCategory: a currency or payment method gets its own feature once this many
	// training orders have it.
	MinCategory int
	// HoldoutShare: the newest share of the examples is held out to measure the model.
	HoldoutShare float64
	// ReviewAt and BlockAt are the probabilities from which the model reviews and blocks;
	// 0 chooses them from the budgets instead.
	ReviewAt, BlockAt float64
	// ReviewBudget and BlockBudget: the share of the training orders without a chargeback
	// the model may review (block) at most. Every honest order is among those (with the
	// fraud nobody disputed), so at most budget x undisputed orders flagged are honest: as
	// a share of the honest orders, budget x undisputed / honest.
	ReviewBudget, BlockBudget float64
}

// DefaultTrainConfig is what `batch fraud-train` uses unless told otherwise: thresholds
// that flag at most 0.3% (block 0.05%) of the orders nobody disputed, so that in a shop
// where fraud is a small share of orders, with the rules' 0.1% or so, the honest orders
// reviewed or blocked stay under 0.5%.
func DefaultTrainConfig() TrainConfig {
	return TrainConfig{L2: 1, MinCategory: 20, HoldoutShare: 0.2, ReviewBudget: 0.003, BlockBudget: 0.0005}
}

// Train fits a model to examples: the oldest share by time to train, the newest to measure
// (FraudModel.holdout). Version and provenance fields are the caller's.
func Train(examples []Example, cfg TrainConfig) (*pb.FraudModel, error) {
	ex := slices.Clone(examples)
	slices.SortStableFunc(ex, func(a, b Example) int { return a.Time.Compare(b.Time) })
	cut := len(ex) - int(float64(len(ex))*cfg.HoldoutShare)
	train, hold := ex[:cut], ex[cut:]
	pos := 0
	for _, e := range train {
		if e.Fraud {
			pos++
		}
	}
	if pos == 0 || pos == len(train) {
		return nil, fmt.Errorf("fraud model: %d training orders, %d labelled fraud: both classes are needed (are chargebacks in the lake, and old enough?)", len(train), pos)
	}
	var features []string
	for _, f := range numeric {
		features = append(features, f.name)
	}
	features = append(features, categories(train, "currency=", func(o Order) string { return o.Currency }, cfg.MinCategory)...)
	features = append(features, categories(train, "method=", func(o Order) string { return o.PaymentMethod }, cfg.MinCategory)...)

	fns, err := extractors(features)
	if err != nil {
		return nil, err
	}
	// Standardize on the training examples.
	d := len(features)
	x := make([][]float64, len(train))
	means, scales := make([]float64, d), make([]float64, d)
	for i, e := range train {
		x[i] = make([]float64, d)
		for j, fn := range fns {
			x[i][j] = fn(e.Order)
			means[j] += x[i][j]
		}
	}
	for j := range means {
		means[j] /= float64(len(train))
	}
	for i := range x {
		for j := range d {
			scales[j] += (x[i][j] - means[j]) * (x[i][j] - means[j])
		}
	}
	for j := range scales {
		scales[j] = math.Sqrt(scales[j] / float64(len(train)))
		if scales[j] < 1e-9 { // constant in training: weight stays 0
			scales[j] = 1
		}
	}
	for i := range x {
		for j := range d {
			x[i][j] = (x[i][j] - means[j]) / scales[j]
		}
	}
	y := make([]float64, len(train))
	for i, e := range train {
		y[i] = indicator(e.Fraud)
	}
	w, err := newton(x, y, cfg.L2)
	if err != nil {
		return nil, err
	}
	m := &pb.FraudModel{Features: features, Means: means, Scales: scales, Weights: w[1:], Intercept: w[0],
		TrainOrders: int64(len(train)), TrainFraud: int64(pos), ReviewAt: 1, BlockAt: 1}
	mm, err := FromProto(m) // reads m: it measures with the thresholds set below
	if err != nil {
		return nil, err
	}
	// Thresholds are chosen on the training orders, scored as they will be served, and
	// measured on the held-out ones.
	var undisputed []float64
	for _, e := range train {
		if !e.Fraud {
			undisputed = append(undisputed, mm.Probability(e.Order))
		}
	}
	m.ReviewAt = cmp.Or(cfg.ReviewAt, threshold(undisputed, cfg.ReviewBudget))
	m.BlockAt = cmp.Or(cfg.BlockAt, threshold(undisputed, cfg.BlockBudget))
	if m.BlockAt < m.ReviewAt {
		return nil, fmt.Errorf("fraud model: block_at %.4f is below review_at %.4f (every order flagged would be blocked): "+
			"give a block threshold above the review one, or a block budget below the review budget", m.BlockAt, m.ReviewAt)
	}
	if err := checkThresholds(m); err != nil {
		return nil, err
	}
	m.Holdout = Measure(mm, hold)
	return m, nil
}

func checkThresholds(m *pb.FraudModel) error {
	if !(m.GetReviewAt() > 0 && m.GetReviewAt() <= m.GetBlockAt() && m.GetBlockAt() <= 1) {
		return fmt.Errorf("fraud model v%d: thresholds review_at %v, block_at %v: want 0 < review_at <= block_at <= 1",
			m.GetVersion(), m.GetReviewAt(), m.GetBlockAt())
	}
	return nil
}

// threshold is the lowest probability that at most budget of scores reach: just above the
// (k+1)th highest, so ties with it fall below. Probabilities that saturated at 1 cannot be
// told apart: the threshold is then 1, which they all reach.
func threshold(scores []float64, budget float64) float64 {
	s := slices.Clone(scores)
	slices.SortFunc(s, func(a, b float64) int { return cmp.Compare(b, a) }) // highest first
	k := int(budget * float64(len(s)))                                      // may reach it
	if k >= len(s) {
		return math.SmallestNonzeroFloat64
	}
	return min(1, math.Nextafter(s[k], 2))
}

// categories are the feature names of the values of field seen at least min times.
func categories(ex []Example, prefix string, field func(Order) string, min int) []string {
	n := map[string]int{}
	for _, e := range ex {
		if v := field(e.Order); v != "" {
			n[v]++
		}
	}
	var out []string
	for v, c := range n {
		if c >= min {
			out = append(out, prefix+v)
		}
	}
	slices.Sort(out)
	return out
}

// newton fits logistic regression by Newton-Raphson (iteratively reweighted least squares)
// with an L2 penalty; w[0] is the intercept.
func newton(x [][]float64, y []float64, l2 float64) ([]float64, error) {
	d := len(x[0]) + 1
	w := make([]float64, d)
	row := make([]float64, d)
	for iter := 0; iter < 50; iter++ {
		grad := make([]float64, d)
		hess := make([][]float64, d)
		for i := range hess {
			hess[i] = make([]float64, d)
		}
		for i := range x {
			row[0] = 1
			copy(row[1:], x[i])
			z := 0.0
			for j := range d {
				z += w[j] * row[j]
			}
			p := sigmoid(z)
			r := p * (1 - p)
			for j := range d {
				grad[j] += (p - y[i]) * row[j]
				for k := j; k < d; k++ {
					hess[j][k] += r * row[j] * row[k]
				}
			}
		}
		for j := 1; j < d; j++ {
			grad[j] += l2 * w[j]
			hess[j][j] += l2
		}
		hess[0][0] += 1e-9
		for j := range d {
			for k := range j {
				hess[j][k] = hess[k][j]
			}
		}
		step, err := solve(hess, grad)
		if err != nil {
			return nil, err
		}
		change := 0.0
		for j := range d {
			w[j] -= step[j]
			change = max(change, math.Abs(step[j]))
		}
		if change < 1e-8 {
			break
		}
	}
	for _, v := range w {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("fraud model: training diverged")
		}
	}
	return w, nil
}

// solve solves a x = b for a symmetric positive definite a by Cholesky decomposition.
func solve(a [][]float64, b []float64) ([]float64, error) {
	n := len(b)
	l := make([][]float64, n)
	for i := range l {
		l[i] = make([]float64, n)
	}
	for i := range n {
		for j := 0; j <= i; j++ {
			s := a[i][j]
			for k := range j {
				s -= l[i][k] * l[j][k]
			}
			if i == j {
				if s <= 0 {
					return nil, fmt.Errorf("fraud model: the training problem is singular")
				}
				l[i][i] = math.Sqrt(s)
			} else {
				l[i][j] = s / l[j][j]
			}
		}
	}
	z := make([]float64, n)
	for i := range n {
		s := b[i]
		for k := range i {
			s -= l[i][k] * z[k]
		}
		z[i] = s / l[i][i]
	}
	out := make([]float64, n)
	for i := n - 1; i >= 0; i-- {
		s := z[i]
		for k := i + 1; k < n; k++ {
			s -= l[k][i] * out[k]
		}
		out[i] = s / l[i][i]
	}
	return out, nil
}

// Measure is how m does on examples: AUPRC (average precision), AUC, and precision, recall
// and honest orders flagged at its review threshold.
func Measure(m *Model, examples []Example) *pb.FraudModelMetrics {
	out := &pb.FraudModelMetrics{Orders: int64(len(examples))}
	scores, fraud := make([]float64, len(examples)), make([]bool, len(examples))
	var tp, fp int64
	for i, e := range examples {
		p := m.Probability(e.Order)
		scores[i], fraud[i] = p, e.Fraud
		if e.Fraud {
			out.Fraud++
		}
		if p >= m.ReviewAt() {
			if e.Fraud {
				tp++
			} else {
				fp++
			}
		}
	}
	if tp+fp > 0 {
		out.Precision = float64(tp) / float64(tp+fp)
	}
	if out.Fraud > 0 {
		out.Recall = float64(tp) / float64(out.Fraud)
	}
	if honest := out.Orders - out.Fraud; honest > 0 {
		out.HonestFlagged = float64(fp) / float64(honest)
	}
	out.Auprc, out.Auc = evaluate.Ranking(scores, fraud)
	return out
}
