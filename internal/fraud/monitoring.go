package fraud

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bytebasket/bytebasket/internal/event"
	"github.com/bytebasket/bytebasket/internal/fraud/rules"
	"github.com/bytebasket/bytebasket/internal/stateful"
	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
)

// Transaction monitoring. Every order, payment attempt, refund and chargeback is counted per
// minute of event time in its segment (payment method, currency, billing country; a payment
// is attributed to its order through the user's profile), in the repartition stage under the
// route "segment" keyed by the segment. A minute closes once the segment has seen an event
// monitorLateness later; it is then compared with the segment's trailing baseline (decaying
// means of attempts and failures per minute) and, when it departs from it, raises an alert
// into fraud-alerts: a FraudDecision of kind "monitoring" that names the segment and minute.
// Minutes close in record order, so a replay closes the same ones: alerts are exactly once.

const (
	routeSegment = "segment"
	// monitorLateness: how long a segment's minute stays open for events arriving late.
	monitorLateness = 2 * time.Minute
	// baselineMinutes: the baseline's memory (an exact mean until it has that many minutes).
	baselineMinutes = 30
	// A failure-rate alert needs this many attempts in the minute, a failure rate this many
	// times the baseline's and at least failureRateMargin above it.
	minAttempts       = 20
	failureRateFactor = 3.0
	failureRateMargin = 0.10
	// An attempts alert: this many times the baseline's attempts, and at least minSpike.
	attemptsFactor = 4.0
	minSpike       = 50
)

// recentOrders bounds the orders a profile remembers for attribution.
const recentOrders = 16

// monitored are the kinds transaction monitoring counts.
var monitored = []event.Kind{event.KindOrderPlaced, event.KindPaymentAuthorized, event.KindPaymentFailed,
	event.KindRefund, event.KindChargeback}

// remember keeps order e's method and billing country in p for attributing its payments.
func remember(p *pb.FraudProfile, e *pb.Envelope) {
	o := e.GetOrderPlaced()
	if o == nil {
		return
	}
	p.RecentOrders = append(p.RecentOrders, &pb.FraudRecentOrder{OrderId: o.GetOrderId(),
		PaymentMethod: o.GetPaymentMethod(), Country: o.GetBillingCountry()})
	if n := len(p.RecentOrders); n > recentOrders {
		p.RecentOrders = slices.Delete(p.RecentOrders, 0, n-recentOrders)
	}
}

// segmentOf is e's segment key (method|currency|country), false for an event monitoring does
// not count or cannot attribute.
func segmentOf(p *pb.FraudProfile, e *pb.Envelope) (string, bool) {
	if !slices.Contains(monitored, event.KindOf(e)) {
		return "", false
	}
	m, ok := rules.AmountOf(e)
	if !ok {
		return "", false
	}
	if o := e.GetOrderPlaced(); o != nil {
		return strings.Join([]string{o.GetPaymentMethod(), m.GetCurrency(), o.GetBillingCountry()}, "|"), true
	}
	orderID := rules.OrderIDOf(e)
	for _, o := range slices.Backward(p.GetRecentOrders()) {
		if o.GetOrderId() == orderID {
			return strings.Join([]string{o.GetPaymentMethod(), m.GetCurrency(), o.GetCountry()}, "|"), true
		}
	}
	return "", false // an order older than the profile remembers
}

// segmentRecord is e re-keyed by its segment for the repartition stage.
func (r *role) segmentRecord(e *pb.Envelope, segment string) *kgo.Record {
	value, err := event.AppendEncode(nil, e)
	if err != nil { // an event that was decoded and validated: cannot fail
		panic(err)
	}
	return &kgo.Record{Topic: r.cfg.Repartition, Key: []byte(segment), Value: value,
		Headers: []kgo.RecordHeader{{Key: headerRoute, Value: []byte(routeSegment)}}}
}

// monitor counts e in its segment's minute and closes the minutes it leaves behind.
func (t *keyTask) monitor(segment string, e *pb.Envelope) {
	s := t.segments[segment]
	if s == nil {
		s = &pb.FraudSegmentState{Key: segment}
		t.segments[segment] = s
		delete(t.deletedSegments, segment)
	}
	t.dirtySegments[segment] = true
	minute := e.GetEventTime().AsTime().Truncate(time.Minute).UnixMilli()
	if minute < s.GetNewestMinuteMs()-monitorLateness.Milliseconds() {
		t.role.m.monitorLate.Inc()
		return
	}
	s.NewestMinuteMs = max(s.GetNewestMinuteMs(), minute)
	i, found := slices.BinarySearchFunc(s.Open, minute, func(m *pb.FraudMinuteStats, t int64) int { return int(m.GetStartMs() - t) })
	if !found {
		s.Open = slices.Insert(s.Open, i, &pb.FraudMinuteStats{StartMs: minute})
	}
	count(s.Open[i], e)
	for len(s.Open) > 0 && s.Open[0].GetStartMs() < s.GetNewestMinuteMs()-monitorLateness.Milliseconds() {
		t.close(s, s.Open[0])
		s.Open = s.Open[1:]
	}
}

func count(m *pb.FraudMinuteStats, e *pb.Envelope) {
	switch x := e.GetPayload().(type) {
	case *pb.Envelope_OrderPlaced:
		m.Orders++
	case *pb.Envelope_PaymentAuthorized:
		m.Attempts++
		m.Authorized++
		m.AuthorizedMinor += x.PaymentAuthorized.GetAmount().GetAmountMinor()
	case *pb.Envelope_PaymentFailed:
		m.Attempts++
		m.Failed++
	case *pb.Envelope_Refund:
		m.Refunds++
	case *pb.Envelope_Chargeback:
		m.Chargebacks++
	}
}

// close compares minute m of segment s with the baseline, raises what departs from it, and
// adds m to the baseline.
func (t *keyTask) close(s *pb.FraudSegmentState, m *pb.FraudMinuteStats) {
	t.role.m.monitorMinutes.Inc()
	if s.GetBaselineMinutes() >= baselineMinutes {
		var reasons []*pb.FraudReason
		expected := 0.0
		if s.GetBaselineAttempts() > 0 {
			expected = s.GetBaselineFailed() / s.GetBaselineAttempts()
		}
		if m.GetAttempts() >= minAttempts {
			rate := float64(m.GetFailed()) / float64(m.GetAttempts())
			// Capped at 1: a segment that usually fails half its attempts alerts when all fail.
			if limit := min(max(failureRateFactor*expected, expected+failureRateMargin), 1); rate >= limit {
				reasons = append(reasons, &pb.FraudReason{Rule: "failure-rate", Value: rate, Limit: limit, Action: pb.FraudAction_FRAUD_ACTION_REVIEW})
			}
		}
		if limit := max(attemptsFactor*s.GetBaselineAttempts(), minSpike); float64(m.GetAttempts()) >= limit {
			reasons = append(reasons, &pb.FraudReason{Rule: "attempts", Value: float64(m.GetAttempts()), Limit: limit, Action: pb.FraudAction_FRAUD_ACTION_REVIEW})
		}
		if len(reasons) > 0 {
			t.alert(s, m, reasons)
		}
	}
	s.BaselineMinutes++
	w := 1 / float64(min(s.GetBaselineMinutes(), baselineMinutes))
	s.BaselineAttempts += w * (float64(m.GetAttempts()) - s.GetBaselineAttempts())
	s.BaselineFailed += w * (float64(m.GetFailed()) - s.GetBaselineFailed())
}

func (t *keyTask) alert(s *pb.FraudSegmentState, m *pb.FraudMinuteStats, reasons []*pb.FraudReason) {
	parts := strings.SplitN(s.GetKey(), "|", 3)
	for len(parts) < 3 {
		parts = append(parts, "")
	}
	minute := time.UnixMilli(m.GetStartMs()).UTC()
	d := &pb.FraudDecision{
		EventId: fmt.Sprintf("monitoring/%s/%s", s.GetKey(), minute.Format(time.RFC3339)), Kind: "monitoring",
		Action: pb.FraudAction_FRAUD_ACTION_REVIEW, Reasons: reasons, RulesVersion: t.role.set.Load().set.Version,
		EventTime: timestamppb.New(minute), DecidedAt: timestamppb.Now(), Currency: parts[1], AmountMinor: m.GetAuthorizedMinor(),
		Monitoring: &pb.FraudMonitoring{PaymentMethod: parts[0], Currency: parts[1], Country: parts[2],
			Minute: timestamppb.New(minute), Orders: m.GetOrders(), Attempts: m.GetAttempts(), Authorized: m.GetAuthorized(),
			Failed: m.GetFailed(), Refunds: m.GetRefunds(), Chargebacks: m.GetChargebacks(), AuthorizedMinor: m.GetAuthorizedMinor(),
			BaselineAttempts: s.GetBaselineAttempts(), BaselineFailed: s.GetBaselineFailed()},
	}
	for _, r := range reasons {
		t.role.m.monitorAlerts.WithLabelValues(r.GetRule()).Inc()
	}
	t.emit(alertRecord(t.role.cfg.Alerts, s.GetKey(), d))
}

// expireSegments drops the segments with nothing for retention before wm: their baseline is
// stale, and their open minutes are too old to alert on.
func (t *keyTask) expireSegments(wm int64, retention time.Duration) {
	for k, s := range t.segments {
		if s.GetNewestMinuteMs() < wm-retention.Milliseconds() {
			delete(t.segments, k)
			delete(t.dirtySegments, k)
			t.deletedSegments[k] = true
		}
	}
}

func (t *keyTask) segmentChanges(full bool, emit func(*pb.StateEntry)) {
	for k := range t.deletedSegments {
		if !full {
			emit(&pb.StateEntry{Entry: &pb.StateEntry_FraudSegment{FraudSegment: &pb.FraudSegmentState{Key: k, Deleted: true}}})
		}
	}
	clear(t.deletedSegments)
	for k, s := range t.segments {
		if full || t.dirtySegments[k] {
			emit(&pb.StateEntry{Entry: &pb.StateEntry_FraudSegment{FraudSegment: s}})
		}
	}
	clear(t.dirtySegments)
}

// alertRecord is d on the alerts topic, keyed by key.
func alertRecord(topic, key string, d *pb.FraudDecision) *kgo.Record {
	return &kgo.Record{Topic: topic, Key: []byte(key), Value: mustMarshal(d)}
}

var _ stateful.RecordTask = (*keyTask)(nil)
