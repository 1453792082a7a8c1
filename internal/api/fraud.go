package api

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/bytebasket/bytebasket/internal/fraud/evaluate"
	"github.com/bytebasket/bytebasket/internal/model"
	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
)

// FraudStore is what the fraud queries read: the alerts and labels the fraud role's sink
// wrote.
type FraudStore interface {
	FraudAlerts(ctx context.Context, from, to time.Time, limit int) ([]model.FraudAlert, error)
	FraudAlertsByUser(ctx context.Context, userID string, limit int) ([]model.FraudAlert, error)
	FraudLabels(ctx context.Context, from, to time.Time, limit int) ([]model.FraudLabel, error)
}

// Bounds of the fraud queries (docs/api.md).
const (
	defaultFraudHours, maxFraudHours = 24, 24 * 31
	defaultFraudLimit, maxFraudLimit = 50, 500
	// maxStatsAlerts bounds the alerts one stats answer reads; past it the answer covers the
	// newest ones and says so (truncated).
	maxStatsAlerts = 20_000
)

// Alert kinds of the kind parameter: decisions on orders and payments, or monitoring.
var fraudKinds = []string{"all", "decision", "monitoring"}

// FraudAlert is one review or block decision, or a transaction-monitoring alert.
type FraudAlert struct {
	EventID      string        `json:"event_id"`
	Kind         string        `json:"kind"` // order_placed, payment_authorized, payment_failed, monitoring
	OrderID      string        `json:"order_id,omitempty"`
	PaymentID    string        `json:"payment_id,omitempty"`
	UserID       string        `json:"user_id,omitempty"`
	Action       string        `json:"action"` // review or block
	Score        int32         `json:"score"`
	Reasons      []FraudReason `json:"reasons"`
	AmountMinor  int64         `json:"amount_minor"`
	Currency     string        `json:"currency"`
	RulesVersion int64         `json:"rules_version"`
	// The model that scored the order (orders only; 0 and omitted when none did) and its
	// probability of fraud.
	ModelVersion     int64            `json:"model_version,omitempty"`
	ModelProbability float64          `json:"model_probability,omitempty"`
	EventTime        time.Time        `json:"event_time"`
	DecidedAt        time.Time        `json:"decided_at"`
	Monitoring       *FraudMonitoring `json:"monitoring,omitempty"`
}

// FraudReason is a rule (or a monitoring signal) that fired, with what it measured.
type FraudReason struct {
	Rule       string           `json:"rule"`
	Weight     int32            `json:"weight"`
	Action     string           `json:"action"`
	Value      float64          `json:"value"`
	Limit      float64          `json:"limit"`
	Conditions []FraudCondition `json:"conditions"`
}

// FraudCondition is one condition of a rule as it held.
type FraudCondition struct {
	Measure string  `json:"measure"`
	Value   float64 `json:"value"`
	Compare string  `json:"compare"`
	Limit   float64 `json:"limit"`
}

// FraudMonitoring is the segment minute a monitoring alert is about.
type FraudMonitoring struct {
	PaymentMethod    string    `json:"payment_method"`
	Currency         string    `json:"currency"`
	Country          string    `json:"country"`
	Minute           time.Time `json:"minute"`
	Orders           int64     `json:"orders"`
	Attempts         int64     `json:"attempts"`
	Authorized       int64     `json:"authorized"`
	Failed           int64     `json:"failed"`
	Refunds          int64     `json:"refunds"`
	Chargebacks      int64     `json:"chargebacks"`
	AuthorizedMinor  int64     `json:"authorized_minor"`
	BaselineAttempts float64   `json:"baseline_attempts"`
	BaselineFailed   float64   `json:"baseline_failed"`
}

// FraudAlertsQuery selects alerts: the last Hours (default 24) or one user's (then Hours
// does not apply), of a kind (default all), at most Limit (default 50).
type FraudAlertsQuery struct {
	Hours  int
	UserID string
	Kind   string
	Limit  int
}

// FraudAlertsResult is the answer of /api/v1/fraud/alerts, newest first (by the time of the
// event decided on).
type FraudAlertsResult struct {
	From   time.Time    `json:"from,omitzero"`
	To     time.Time    `json:"to,omitzero"`
	Alerts []FraudAlert `json:"alerts"`
	// Truncated: a kind filter read the newest maxStatsAlerts alerts and found fewer than
	// the limit among them; older ones of that kind may exist.
	Truncated bool `json:"truncated"`
}

// FraudAlerts returns the newest alerts of the period or of a user.
func (s *Service) FraudAlerts(ctx context.Context, q FraudAlertsQuery) (*FraudAlertsResult, error) {
	from, to, ds, truncated, err := s.fraudAlerts(ctx, q)
	if err != nil {
		return nil, err
	}
	r := &FraudAlertsResult{From: from, To: to, Alerts: make([]FraudAlert, 0, len(ds)), Truncated: truncated}
	for _, d := range ds {
		r.Alerts = append(r.Alerts, alertOf(d))
	}
	return r, nil
}

// fraudAlerts is what FraudAlerts answers, as the decisions themselves (the gRPC answer),
// and the period (zero for a user's alerts).
func (s *Service) fraudAlerts(ctx context.Context, q FraudAlertsQuery) (from, to time.Time, _ []*pb.FraudDecision, truncated bool, _ error) {
	kind := cmp.Or(q.Kind, "all")
	if !slices.Contains(fraudKinds, kind) {
		return from, to, nil, false, &ParamError{"kind", "must be one of " + strings.Join(fraudKinds, ", ")}
	}
	limit, err := intParam("limit", q.Limit, defaultFraudLimit, maxFraudLimit)
	if err != nil {
		return from, to, nil, false, err
	}
	hours, err := intParam("hours", q.Hours, defaultFraudHours, maxFraudHours)
	if err != nil {
		return from, to, nil, false, err
	}
	if len(q.UserID) > maxUserIDLen {
		return from, to, nil, false, &ParamError{"user", fmt.Sprintf("must be a user id of 1..%d bytes", maxUserIDLen)}
	}
	// A kind filter reads more rows than it returns: up to the stats bound.
	read := limit
	if kind != "all" {
		read = maxStatsAlerts
	}
	var rows []model.FraudAlert
	if q.UserID != "" {
		rows, err = s.store.FraudAlertsByUser(ctx, q.UserID, read)
	} else {
		to = s.now().UTC().Truncate(time.Second).Add(time.Second)
		from = to.Add(-time.Duration(hours) * time.Hour)
		rows, err = s.store.FraudAlerts(ctx, from, to, read)
	}
	if err != nil {
		return from, to, nil, false, storeErr(err)
	}
	out := []*pb.FraudDecision{}
	for _, d := range decodeAlerts(rows) {
		if len(out) == limit {
			break
		}
		if kind == "all" || (kind == "monitoring") == (d.GetKind() == "monitoring") {
			out = append(out, d)
		}
	}
	return from, to, out, kind != "all" && len(rows) == read && len(out) < limit, nil
}

// FraudStatsQuery selects the period of /api/v1/fraud/stats: the last Hours (default 24).
type FraudStatsQuery struct{ Hours int }

// FraudStatsResult summarises the alerts of a period.
type FraudStatsResult struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Decisions: review and block decisions, by action and by scored kind.
	Decisions int            `json:"decisions"`
	ByAction  map[string]int `json:"by_action"`
	ByKind    map[string]int `json:"by_kind"`
	// RuleHits: how often each rule fired in them, most first.
	RuleHits []Item `json:"rule_hits"`
	// Scores: decisions by score, in buckets of ten (0-9, ..., 90-100).
	Scores []int `json:"scores"`
	// Monitoring: transaction-monitoring alerts, by signal.
	MonitoringAlerts int            `json:"monitoring_alerts"`
	BySignal         map[string]int `json:"by_signal"`
	// Decision latency, from the event's arrival in Kafka to the decision, over the
	// decisions that carry both times.
	LatencyP50Ms float64 `json:"latency_p50_ms"`
	LatencyP99Ms float64 `json:"latency_p99_ms"`
	// Truncated: the period holds more alerts than one answer reads; the figures are the
	// newest maxStatsAlerts'.
	Truncated bool `json:"truncated"`
	// GroundTruth: the period's alerts against its labelled orders; absent without labels.
	GroundTruth *FraudGroundTruth `json:"ground_truth,omitempty"`
}

// FraudGroundTruth holds the review and block decisions of a period against the labelled
// fraud orders placed in it (the simulator's sim-labels, or a shop's own labels, copied by
// the alerts sink): how many flagged orders were fraud, how much fraud was flagged. With
// truncated alerts, only the labels as new as the oldest alert read count.
type FraudGroundTruth struct {
	// From is where the period held against the labels starts: the period's, or later when
	// the alerts or labels were more than one answer reads (Truncated).
	From             time.Time          `json:"from"`
	Truncated        bool               `json:"truncated"`
	FraudOrders      int                `json:"fraud_orders"`
	FlaggedOrders    int                `json:"flagged_orders"`
	TruePositives    int                `json:"true_positives"`
	Precision        float64            `json:"precision"`
	Recall           float64            `json:"recall"`
	RecallByScenario map[string]float64 `json:"recall_by_scenario"`
}

// FraudStats summarises the alerts of the last hours.
func (s *Service) FraudStats(ctx context.Context, q FraudStatsQuery) (*FraudStatsResult, error) {
	hours, err := intParam("hours", q.Hours, defaultFraudHours, maxFraudHours)
	if err != nil {
		return nil, err
	}
	to := s.now().UTC().Truncate(time.Second).Add(time.Second)
	r := &FraudStatsResult{From: to.Add(-time.Duration(hours) * time.Hour), To: to, ByAction: map[string]int{},
		ByKind: map[string]int{}, BySignal: map[string]int{}, Scores: make([]int, 10), RuleHits: []Item{}}
	rows, err := s.store.FraudAlerts(ctx, r.From, r.To, maxStatsAlerts+1)
	if err != nil {
		return nil, storeErr(err)
	}
	if len(rows) > maxStatsAlerts {
		rows, r.Truncated = rows[:maxStatsAlerts], true
	}
	hits := map[string]int64{}
	var lat []time.Duration
	var decisions []*pb.FraudDecision
	for _, d := range decodeAlerts(rows) {
		a := alertOf(d)
		if a.Kind == "monitoring" {
			r.MonitoringAlerts++
			for _, reason := range a.Reasons {
				r.BySignal[reason.Rule]++
			}
			continue
		}
		r.Decisions++
		decisions = append(decisions, d)
		r.ByAction[a.Action]++
		r.ByKind[a.Kind]++
		r.Scores[min(max(int(a.Score), 0)/10, 9)]++ // a stored row is outside data: clamped
		for _, reason := range a.Reasons {
			hits[reason.Rule]++
		}
		if l := latencyOf(d); l > 0 {
			lat = append(lat, l)
		}
	}
	for _, rule := range slices.Sorted(maps.Keys(hits)) {
		r.RuleHits = append(r.RuleHits, Item{ID: rule, Value: hits[rule]})
	}
	slices.SortStableFunc(r.RuleHits, func(a, b Item) int { return cmp.Compare(b.Value, a.Value) })
	if len(lat) > 0 {
		slices.Sort(lat)
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		r.LatencyP50Ms, r.LatencyP99Ms = ms(lat[len(lat)*50/100]), ms(lat[min(len(lat)*99/100, len(lat)-1)])
	}
	from := r.From
	if r.Truncated {
		from = rows[len(rows)-1].EventTime
	}
	if r.GroundTruth, err = s.groundTruth(ctx, from, r.To, r.Truncated, decisions); err != nil {
		return nil, err
	}
	return r, nil
}

// groundTruth holds the decisions about events in [from, to) against the labels of the
// orders placed then, measured as `fraud evaluate` does (an order flagged and not labelled
// is an honest one flagged); nil without labels. truncated: from was moved up to the alerts
// read.
func (s *Service) groundTruth(ctx context.Context, from, to time.Time, truncated bool, decisions []*pb.FraudDecision) (*FraudGroundTruth, error) {
	labels, err := s.store.FraudLabels(ctx, from, to, maxStatsAlerts)
	if err != nil {
		return nil, storeErr(err)
	}
	if len(labels) == 0 {
		return nil, nil
	}
	if len(labels) == maxStatsAlerts { // more fraud than one answer reads: the newest labels' period
		from, truncated = labels[len(labels)-1].EventTime, true
	}
	var orders []evaluate.Order
	listed := map[string]bool{}
	for _, l := range labels {
		if !listed[l.OrderID] {
			listed[l.OrderID] = true
			orders = append(orders, evaluate.Order{ID: l.OrderID, Fraud: l.Scenario})
		}
	}
	var inPeriod []*pb.FraudDecision
	for _, d := range decisions {
		if id := d.GetOrderId(); id != "" && !d.GetEventTime().AsTime().Before(from) {
			inPeriod = append(inPeriod, d)
			if !listed[id] {
				listed[id] = true
				orders = append(orders, evaluate.Order{ID: id})
			}
		}
	}
	e := evaluate.Compute(orders, inPeriod)
	g := &FraudGroundTruth{From: from, Truncated: truncated, FraudOrders: e.FraudOrders, FlaggedOrders: e.Flagged,
		TruePositives: e.TruePositives, Precision: e.Precision, Recall: e.Recall, RecallByScenario: map[string]float64{}}
	for scenario, sc := range e.ByScenario {
		g.RecallByScenario[scenario] = sc.Recall
	}
	return g, nil
}

// decodeAlerts reads the decisions of rows; a row that does not decode is skipped and
// logged (the sink wrote only decisions that did).
func decodeAlerts(rows []model.FraudAlert) []*pb.FraudDecision {
	out := make([]*pb.FraudDecision, 0, len(rows))
	for _, row := range rows {
		d := &pb.FraudDecision{}
		if err := proto.Unmarshal(row.Decision, d); err != nil {
			slog.Error("api: a stored fraud alert does not decode; skipped", "event", row.EventID, "err", err)
			continue
		}
		out = append(out, d)
	}
	return out
}

func latencyOf(d *pb.FraudDecision) time.Duration {
	if d.GetReceivedAt() == nil || d.GetDecidedAt() == nil {
		return 0
	}
	return d.GetDecidedAt().AsTime().Sub(d.GetReceivedAt().AsTime())
}

func alertOf(d *pb.FraudDecision) FraudAlert {
	a := FraudAlert{EventID: d.GetEventId(), Kind: d.GetKind(), OrderID: d.GetOrderId(), PaymentID: d.GetPaymentId(),
		UserID: d.GetUserId(), Action: actionName(d.GetAction()), Score: d.GetScore(), AmountMinor: d.GetAmountMinor(),
		Currency: d.GetCurrency(), RulesVersion: d.GetRulesVersion(), EventTime: d.GetEventTime().AsTime().UTC(),
		DecidedAt: d.GetDecidedAt().AsTime().UTC(), Reasons: make([]FraudReason, 0, len(d.GetReasons())),
		ModelVersion: d.GetModelVersion(), ModelProbability: d.GetModelProbability()}
	for _, r := range d.GetReasons() {
		fr := FraudReason{Rule: r.GetRule(), Weight: r.GetWeight(), Action: actionName(r.GetAction()), Value: r.GetValue(),
			Limit: r.GetLimit(), Conditions: make([]FraudCondition, 0, len(r.GetConditions()))}
		for _, c := range r.GetConditions() {
			fr.Conditions = append(fr.Conditions, FraudCondition{Measure: c.GetMeasure(), Value: c.GetValue(), Compare: c.GetCompare(), Limit: c.GetLimit()})
		}
		a.Reasons = append(a.Reasons, fr)
	}
	if m := d.GetMonitoring(); m != nil {
		a.Monitoring = &FraudMonitoring{PaymentMethod: m.GetPaymentMethod(), Currency: m.GetCurrency(), Country: m.GetCountry(),
			Minute: m.GetMinute().AsTime().UTC(), Orders: m.GetOrders(), Attempts: m.GetAttempts(), Authorized: m.GetAuthorized(),
			Failed: m.GetFailed(), Refunds: m.GetRefunds(), Chargebacks: m.GetChargebacks(), AuthorizedMinor: m.GetAuthorizedMinor(),
			BaselineAttempts: m.GetBaselineAttempts(), BaselineFailed: m.GetBaselineFailed()}
	}
	return a
}

func actionName(a pb.FraudAction) string {
	return strings.ToLower(strings.TrimPrefix(a.String(), "FRAUD_ACTION_"))
}
