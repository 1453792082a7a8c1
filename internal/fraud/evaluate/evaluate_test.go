package evaluate

import (
	"math"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
)

func decision(order string, action pb.FraudAction, score int32, latency time.Duration) *pb.FraudDecision {
	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	return &pb.FraudDecision{OrderId: order, Action: action, Score: score,
		ReceivedAt: timestamppb.New(at), DecidedAt: timestamppb.New(at.Add(latency))}
}

// The measures of a small case worked out by hand.
func TestComputeByHand(t *testing.T) {
	orders := []Order{{"o1", "card_testing"}, {"o2", "account_takeover"}, {"o3", ""}, {"o4", ""}, {"o5", ""}}
	ds := []*pb.FraudDecision{
		decision("o1", pb.FraudAction_FRAUD_ACTION_REVIEW, 60, 10*time.Millisecond),
		decision("o3", pb.FraudAction_FRAUD_ACTION_REVIEW, 30, 20*time.Millisecond),
		decision("o4", pb.FraudAction_FRAUD_ACTION_ALLOW, 5, 30*time.Millisecond),  // the order: allowed
		decision("o4", pb.FraudAction_FRAUD_ACTION_BLOCK, 80, 40*time.Millisecond), // its payment: blocked
		decision("o9", pb.FraudAction_FRAUD_ACTION_BLOCK, 90, 50*time.Millisecond), // outside the period
	}
	r := Compute(orders, ds)
	near := func(name string, got, want float64) {
		if math.Abs(got-want) > 1e-9 {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if r.Orders != 5 || r.FraudOrders != 2 || r.Flagged != 3 || r.TruePositives != 1 || r.FalsePositives != 2 || r.Unmatched != 1 {
		t.Fatalf("counts %+v", r)
	}
	near("precision", r.Precision, 1.0/3)
	near("recall", r.Recall, 0.5)
	near("F1", r.F1, 0.4)
	near("false positive rate", r.FalsePositiveRate, 2.0/3)
	// Ranked by score: o4 80 (honest), o1 60 (fraud: P 1/2 at R 1/2), o3 30, then o2 and o5
	// tied at 0 (fraud among them: P 2/5 at R 1): 0.25 + 0.2.
	near("AUPRC", r.AUPRC, 0.45)
	if s := r.ByScenario["card_testing"]; s.Orders != 1 || s.Flagged != 1 || s.Recall != 1 {
		t.Errorf("card testing %+v", s)
	}
	if s := r.ByScenario["account_takeover"]; s.Orders != 1 || s.Flagged != 0 || s.Recall != 0 {
		t.Errorf("account takeover %+v", s)
	}
	if r.LatencyP50 != 30*time.Millisecond || r.LatencyP99 != 40*time.Millisecond {
		t.Errorf("latency p50 %s p99 %s, want 30ms and 40ms", r.LatencyP50, r.LatencyP99)
	}
}

func reasoned(order string, model int64, reasons ...*pb.FraudReason) *pb.FraudDecision {
	d := decision(order, pb.FraudAction_FRAUD_ACTION_ALLOW, 0, time.Millisecond)
	d.ModelVersion, d.Reasons = model, reasons
	for _, r := range reasons {
		d.Action = max(d.Action, r.GetAction())
	}
	return d
}

// What the rules and the model each flagged, by hand: o1 by both, o2 (fraud) by the model
// alone, o3 (honest) by a rule, o4 only by a rule that merely adds weight.
func TestComputeBySource(t *testing.T) {
	review := pb.FraudAction_FRAUD_ACTION_REVIEW
	rule := &pb.FraudReason{Rule: "user-attempts-1h", Weight: 30, Action: review}
	weightOnly := &pb.FraudReason{Rule: "new-device", Weight: 20, Action: pb.FraudAction_FRAUD_ACTION_ALLOW}
	model := &pb.FraudReason{Rule: SourceModel, Value: 0.9, Action: pb.FraudAction_FRAUD_ACTION_BLOCK}
	orders := []Order{{"o1", "card_testing"}, {"o2", "account_takeover"}, {"o3", ""}, {"o4", ""}, {"o5", ""}}
	r := Compute(orders, []*pb.FraudDecision{
		reasoned("o1", 1, rule, model), reasoned("o2", 1, model), reasoned("o3", 1, rule), reasoned("o4", 1, weightOnly),
	})
	rules, m := r.BySource[SourceRules], r.BySource[SourceModel]
	if rules.Flagged != 2 || rules.TruePositives != 1 || rules.Recall != 0.5 || rules.Precision != 0.5 || rules.Only != 0 ||
		math.Abs(rules.FalsePositiveRate-1.0/3) > 1e-9 {
		t.Errorf("rules %+v", rules)
	}
	if m.Flagged != 2 || m.TruePositives != 2 || m.Recall != 1 || m.Precision != 1 || m.Only != 1 || m.FalsePositiveRate != 0 {
		t.Errorf("model %+v", m)
	}
	if r.Recall != 1 || r.Flagged != 3 {
		t.Errorf("together: recall %v, %d flagged", r.Recall, r.Flagged)
	}
	if _, ok := Compute(orders, []*pb.FraudDecision{reasoned("o3", 0, rule)}).BySource[SourceModel]; ok {
		t.Error("a model source without a model")
	}
}
