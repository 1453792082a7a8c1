package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bytebasket/bytebasket/internal/api"
	"github.com/bytebasket/bytebasket/internal/model"
	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
)

type alertWriter interface {
	api.Store
	WriteFraudAlerts(ctx context.Context, alerts []model.FraudAlert) error
	WriteFraudLabels(ctx context.Context, labels []model.FraudLabel) error
}

// fillFraud writes four decisions (u-1 twice, across midnight) and one monitoring alert.
func fillFraud(t *testing.T, st alertWriter) {
	t.Helper()
	reason := func(rule string, w int32, a pb.FraudAction) *pb.FraudReason {
		return &pb.FraudReason{Rule: rule, Weight: w, Action: a, Value: 3, Limit: 2,
			Conditions: []*pb.FraudCondition{{Measure: "count 1h0m0s", Value: 3, Compare: ">", Limit: 2}}}
	}
	review, block := pb.FraudAction_FRAUD_ACTION_REVIEW, pb.FraudAction_FRAUD_ACTION_BLOCK
	ds := []*pb.FraudDecision{
		{EventId: "e1", Kind: "order_placed", OrderId: "o1", UserId: "u-1", Score: 30, Action: review, Reasons: []*pb.FraudReason{reason("velocity", 30, review)}},
		{EventId: "e2", Kind: "payment_failed", OrderId: "o1", PaymentId: "p1", UserId: "u-1", Score: 100, Action: block,
			Reasons: []*pb.FraudReason{reason("velocity", 30, review), reason("declines", 60, block), reason("card", 40, review)}},
		{EventId: "e3", Kind: "order_placed", OrderId: "o3", UserId: "u-2", Score: 50, Action: review, Reasons: []*pb.FraudReason{reason("card", 50, review)}},
		{EventId: "m1", Kind: "monitoring", Action: review, Reasons: []*pb.FraudReason{{Rule: "failure-rate", Value: 0.5, Limit: 0.2}},
			Monitoring: &pb.FraudMonitoring{PaymentMethod: "card", Currency: "USD", Country: "US", Minute: timestamppb.New(midnight.Add(-2 * time.Minute)), Attempts: 30, Failed: 15}},
		{EventId: "old", Kind: "order_placed", OrderId: "o0", UserId: "u-1", Score: 90, Action: block, Reasons: []*pb.FraudReason{reason("card", 90, block)}},
	}
	at := []time.Time{midnight.Add(-10 * time.Minute), midnight.Add(-9 * time.Minute), midnight.Add(10 * time.Second), midnight.Add(-time.Minute), midnight.Add(-30 * time.Hour)}
	var alerts []model.FraudAlert
	for i, d := range ds {
		d.DecidedAt = timestamppb.New(at[i])
		d.ReceivedAt = timestamppb.New(at[i].Add(-time.Duration(10*(i+1)) * time.Millisecond))
		d.EventTime = d.ReceivedAt
		b, err := proto.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		alerts = append(alerts, model.FraudAlert{EventID: d.EventId, EventTime: d.EventTime.AsTime(), UserID: d.UserId, Decision: b})
	}
	if err := st.WriteFraudAlerts(context.Background(), alerts); err != nil {
		t.Fatal(err)
	}
}

func checkFraud(t *testing.T, st alertWriter) {
	fillFraud(t, st)
	srv, _ := newServer(t, st, api.Options{})
	decode := func(path string, v any) {
		t.Helper()
		code, body := get(t, srv, path)
		if code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, code, body)
		}
		if err := json.Unmarshal(body, v); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(r api.FraudAlertsResult) []string {
		var out []string
		for _, a := range r.Alerts {
			out = append(out, a.EventID)
		}
		return out
	}
	var r api.FraudAlertsResult
	decode("/api/v1/fraud/alerts", &r)
	if got := ids(r); !slices.Equal(got, []string{"e3", "m1", "e2", "e1"}) {
		t.Errorf("alerts of the last 24 hours: %v, want e3 m1 e2 e1 (newest first, not the one of 30 hours ago)", got)
	}
	if a := r.Alerts[2]; a.Action != "block" || a.Score != 100 || len(a.Reasons) != 3 || a.Reasons[1].Rule != "declines" ||
		a.Reasons[1].Conditions[0].Measure != "count 1h0m0s" || a.PaymentID != "p1" || !a.DecidedAt.Equal(midnight.Add(-9*time.Minute)) {
		t.Errorf("e2 reads as %+v", a)
	}
	if m := r.Alerts[1].Monitoring; m == nil || m.PaymentMethod != "card" || m.Failed != 15 || r.Alerts[1].UserID != "" {
		t.Errorf("the monitoring alert reads as %+v", r.Alerts[1])
	}
	r = api.FraudAlertsResult{}
	decode("/api/v1/fraud/alerts?kind=monitoring", &r)
	if got := ids(r); !slices.Equal(got, []string{"m1"}) {
		t.Errorf("kind=monitoring: %v", got)
	}
	r = api.FraudAlertsResult{}
	decode("/api/v1/fraud/alerts?kind=decision&limit=2", &r)
	if got := ids(r); !slices.Equal(got, []string{"e3", "e2"}) {
		t.Errorf("kind=decision&limit=2: %v", got)
	}
	r = api.FraudAlertsResult{}
	decode("/api/v1/fraud/alerts?user=u-1", &r)
	if got := ids(r); !slices.Equal(got, []string{"e2", "e1", "old"}) {
		t.Errorf("user=u-1: %v (a user's alerts are not bounded by hours)", got)
	}
	r = api.FraudAlertsResult{}
	decode("/api/v1/fraud/alerts?hours=48", &r)
	if len(r.Alerts) != 5 {
		t.Errorf("hours=48: %v", ids(r))
	}

	var s api.FraudStatsResult
	decode("/api/v1/fraud/stats", &s)
	wantHits := []api.Item{{ID: "card", Value: 2}, {ID: "velocity", Value: 2}, {ID: "declines", Value: 1}}
	if s.Decisions != 3 || s.ByAction["review"] != 2 || s.ByAction["block"] != 1 || s.ByKind["order_placed"] != 2 ||
		!slices.Equal(s.RuleHits, wantHits) || s.Scores[3] != 1 || s.Scores[5] != 1 || s.Scores[9] != 1 ||
		s.MonitoringAlerts != 1 || s.BySignal["failure-rate"] != 1 || s.Truncated || s.LatencyP50Ms != 20 || s.LatencyP99Ms != 30 {
		t.Errorf("stats: %+v", s)
	}
	if s.GroundTruth != nil {
		t.Errorf("ground truth without labels: %+v", s.GroundTruth)
	}
	// Labels: o1 (flagged) and o5 (not) in the period, o0 30 hours ago: of the two orders
	// flagged (o1, o3) one is fraud, and one of the two fraud orders was flagged.
	if err := st.WriteFraudLabels(context.Background(), []model.FraudLabel{
		{OrderID: "o1", EventTime: midnight.Add(-10 * time.Minute), UserID: "u-1", Scenario: "account_takeover"},
		{OrderID: "o5", EventTime: midnight.Add(-5 * time.Minute), UserID: "u-5", Scenario: "card_testing"},
		{OrderID: "o0", EventTime: midnight.Add(-30 * time.Hour), UserID: "u-1", Scenario: "card_testing"},
	}); err != nil {
		t.Fatal(err)
	}
	s = api.FraudStatsResult{}
	decode("/api/v1/fraud/stats", &s)
	if g := s.GroundTruth; g == nil || g.FraudOrders != 2 || g.FlaggedOrders != 2 || g.TruePositives != 1 || g.Precision != 0.5 ||
		g.Recall != 0.5 || g.RecallByScenario["account_takeover"] != 1 || g.RecallByScenario["card_testing"] != 0 ||
		g.Truncated || !g.From.Equal(s.From) {
		t.Errorf("ground truth: %+v", s.GroundTruth)
	}
	for _, p := range []string{"/api/v1/fraud/alerts?kind=orders", "/api/v1/fraud/alerts?limit=501", "/api/v1/fraud/alerts?hours=0",
		"/api/v1/fraud/stats?hours=745"} {
		if code, body := get(t, srv, p); code != http.StatusBadRequest {
			t.Errorf("GET %s: %d %s, want 400", p, code, body)
		}
	}
}

func TestFraudEmbedded(t *testing.T)  { checkFraud(t, openEmbedded(t)) }
func TestFraudCassandra(t *testing.T) { checkFraud(t, openCassandra(t)) }
