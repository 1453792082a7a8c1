package riskmodel

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
)

// A population where fraud follows new accounts with large orders and declines: the fitted
// model ranks it well on the held-out newest fifth, and its weights point the right way.
func TestTrainLearnsAndMeasures(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	var ex []Example
	for i := range 6000 {
		fraud := rng.Float64() < 0.05
		o := Order{AmountMinor: int64(2000 + rng.IntN(8000)), Currency: []string{"EUR", "USD"}[i%2], PaymentMethod: "card",
			PriorOrders: int64(rng.IntN(6)), AccountAge: time.Duration(24+rng.IntN(2000)) * time.Hour}
		o.DeviceAge = o.AccountAge / 2
		if fraud {
			o.AmountMinor *= 4
			o.PriorOrders, o.AccountAge, o.DeviceAge = 0, time.Duration(rng.IntN(30))*time.Minute, 0
			o.Failed1h = int64(rng.IntN(3))
		}
		if rng.Float64() < 0.02 { // label noise: a chargeback for no fraud, and fraud never disputed
			fraud = !fraud
		}
		ex = append(ex, Example{Order: o, Time: base.Add(time.Duration(i) * time.Minute), Fraud: fraud})
	}
	m, err := Train(ex, DefaultTrainConfig())
	if err != nil {
		t.Fatal(err)
	}
	h := m.GetHoldout()
	t.Logf("holdout %+v", h)
	// A quarter of the held-out "fraud" are flipped labels that look honest: recall and AUC
	// cannot reach 1.
	if h.GetOrders() != 1200 || h.GetAuc() < 0.85 || h.GetAuprc() < 0.6 || h.GetRecall() < 0.6 || h.GetHonestFlagged() > 0.02 {
		t.Errorf("holdout %+v: the model did not learn the signal", h)
	}
	w := map[string]float64{}
	for i, f := range m.GetFeatures() {
		w[f] = m.GetWeights()[i]
	}
	if w["log_amount"] <= 0 || w["log_account_age_h"] >= 0 {
		t.Errorf("weights %v: amount should raise the risk and account age lower it", w)
	}
	if _, ok := w["method=card"]; !ok {
		t.Errorf("features %v: method=card is seen in every order", m.GetFeatures())
	}
}

func TestTrainNeedsBothClasses(t *testing.T) {
	ex := []Example{{Order: Order{AmountMinor: 1}}, {Order: Order{AmountMinor: 2}}}
	if _, err := Train(ex, DefaultTrainConfig()); err == nil {
		t.Fatal("trained on no fraud at all")
	}
}

// Measure by hand: probabilities 0.9 (fraud), 0.8 (honest), 0.7 (fraud), 0.1 (honest) at
// review 0.5: precision 2/3, recall 1, honest flagged 1/2, AP (1/1 + 2/3)/2, AUC 3/4.
func TestMeasureByHand(t *testing.T) {
	m, err := FromProto(&pb.FraudModel{Features: []string{"orders_1h"}, Means: []float64{0}, Scales: []float64{1},
		Weights: []float64{1}, ReviewAt: 0.5, BlockAt: 0.95})
	if err != nil {
		t.Fatal(err)
	}
	logit := func(p float64) int64 { return int64(math.Round(math.Log(p/(1-p)) * 1000)) }
	// orders_1h is the raw value: scale 1000 to reach the probabilities wanted.
	m.pb.Weights[0] = 0.001
	ex := []Example{
		{Order: Order{Orders1h: logit(0.9)}, Fraud: true}, {Order: Order{Orders1h: logit(0.8)}},
		{Order: Order{Orders1h: logit(0.7)}, Fraud: true}, {Order: Order{Orders1h: logit(0.1)}},
	}
	got := Measure(m, ex)
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	if !near(got.GetPrecision(), 2.0/3) || !near(got.GetRecall(), 1) || !near(got.GetHonestFlagged(), 0.5) ||
		!near(got.GetAuprc(), (1+2.0/3)/2) || !near(got.GetAuc(), 0.75) {
		t.Errorf("metrics %+v", got)
	}
	if m.Action(0.96) != pb.FraudAction_FRAUD_ACTION_BLOCK || m.Action(0.6) != pb.FraudAction_FRAUD_ACTION_REVIEW ||
		m.Action(0.2) != pb.FraudAction_FRAUD_ACTION_ALLOW {
		t.Error("actions do not follow the thresholds")
	}
}

func TestFromProtoRefusesBrokenModels(t *testing.T) {
	good := func() *pb.FraudModel {
		return &pb.FraudModel{Version: 3, Features: []string{"log_amount", "currency=EUR"}, Means: []float64{1, 0},
			Scales: []float64{1, 1}, Weights: []float64{1, 1}, ReviewAt: 0.5, BlockAt: 0.9}
	}
	if _, err := FromProto(good()); err != nil {
		t.Fatal(err)
	}
	for name, breakIt := range map[string]func(*pb.FraudModel){
		"lengths":    func(m *pb.FraudModel) { m.Weights = m.Weights[:1] },
		"unknown":    func(m *pb.FraudModel) { m.Features[0] = "shoe_size" },
		"nan":        func(m *pb.FraudModel) { m.Weights[1] = math.NaN() },
		"scale":      func(m *pb.FraudModel) { m.Scales[0] = 0 },
		"thresholds": func(m *pb.FraudModel) { m.ReviewAt, m.BlockAt = 0.9, 0.5 },
		"empty":      func(m *pb.FraudModel) { m.Features, m.Means, m.Scales, m.Weights = nil, nil, nil, nil },
	} {
		m := good()
		breakIt(m)
		if _, err := FromProto(m); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// Thresholds from budgets: at most the budget of the scores reach them, ties included, and
// an explicit threshold wins over its budget.
func TestThresholdKeepsTheBudget(t *testing.T) {
	scores := []float64{0.9, 0.8, 0.8, 0.8, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05}
	for _, c := range []struct {
		budget float64
		reach  int
	}{{0, 0}, {0.1, 1}, {0.2, 1}, {0.3, 1}, {0.4, 4}, {0.99, 9}} {
		at := threshold(scores, c.budget)
		n := 0
		for _, s := range scores {
			if s >= at {
				n++
			}
		}
		if n != c.reach {
			t.Errorf("budget %v: threshold %v reached by %d, want %d", c.budget, at, n, c.reach)
		}
	}
	if at := threshold(scores, 1); at > 0.05 {
		t.Errorf("budget 1: threshold %v should let every score reach it", at)
	}
}

func TestTrainChoosesThresholdsFromBudgets(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	var ex []Example
	for i := range 20000 {
		fraud := rng.Float64() < 0.03
		o := Order{AmountMinor: int64(1000 + rng.IntN(9000)), Currency: "EUR", PaymentMethod: "card", AccountAge: time.Duration(1+rng.IntN(3000)) * time.Hour}
		if fraud {
			o.AmountMinor *= 1 + int64(rng.IntN(4))
			o.AccountAge /= time.Duration(1 + rng.IntN(20))
		}
		ex = append(ex, Example{Order: o, Time: base.Add(time.Duration(i) * time.Minute), Fraud: fraud})
	}
	cfg := DefaultTrainConfig()
	cfg.ReviewBudget, cfg.BlockBudget = 0.01, 0.002
	m, err := Train(ex, cfg)
	if err != nil {
		t.Fatal(err)
	}
	mm, _ := FromProto(m)
	var undisputed, review, block int
	for _, e := range ex[:len(ex)-int(float64(len(ex))*cfg.HoldoutShare)] {
		if e.Fraud {
			continue
		}
		undisputed++
		switch mm.Action(mm.Probability(e.Order)) {
		case pb.FraudAction_FRAUD_ACTION_BLOCK:
			block++
			review++
		case pb.FraudAction_FRAUD_ACTION_REVIEW:
			review++
		}
	}
	t.Logf("review_at %.4f block_at %.4f: %d reviewed, %d blocked of %d undisputed; holdout %+v", m.GetReviewAt(), m.GetBlockAt(), review, block, undisputed, m.GetHoldout())
	if float64(review) > cfg.ReviewBudget*float64(undisputed) || float64(block) > cfg.BlockBudget*float64(undisputed) ||
		float64(review) < cfg.ReviewBudget*float64(undisputed)/2 || m.GetBlockAt() < m.GetReviewAt() {
		t.Errorf("%d reviewed, %d blocked of %d: want near and within the budgets", review, block, undisputed)
	}
	if h := m.GetHoldout().GetHonestFlagged(); h > 3*cfg.ReviewBudget {
		t.Errorf("held out: %.4f of the undisputed flagged, far over the budget %v", h, cfg.ReviewBudget)
	}
	cfg.ReviewAt, cfg.BlockAt = 0.3, 0.6
	if m, err = Train(ex, cfg); err != nil || m.GetReviewAt() != 0.3 || m.GetBlockAt() != 0.6 {
		t.Errorf("explicit thresholds: %v %v, %v", m.GetReviewAt(), m.GetBlockAt(), err)
	}
	// A block threshold under the review one would block everything flagged: refused.
	cfg.ReviewAt, cfg.BlockAt = 0.99, 0
	if _, err = Train(ex, cfg); err == nil || !strings.Contains(err.Error(), "below review_at") {
		t.Errorf("block_at from its budget under an explicit review_at 0.99: %v, want a refusal", err)
	}
}
