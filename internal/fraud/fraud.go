// Package fraud is `bytebasket fraud`: it scores every order and payment attempt against the
// rule set (internal/fraud/rules) and produces a FraudDecision for each one it reviews or
// blocks to the fraud-alerts topic, exactly once: a role of internal/stateful in
// transactional mode, so decisions commit in one Kafka transaction with the offsets of the
// events they were made on, and a restored partition replays what an earlier owner
// committed without deciding again.
//
// A scored event is decided under every rule: each rule's aggregate over the events of its
// `on` kinds within its window ending at the scored event's time (the scored event included
// when its kind is one of them), compared with its limit. The fired rules' weights add up to
// the 0-100 score; the decision is the strongest action they ask for (allow if none fires).
//
// This package keeps state per user (the input partitions are by user). Rules grouped by
// card, device or IP need those keys' events across users, so a repartition by that key
// first; until that stage exists they are not evaluated, and the role says so at start.
package fraud

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bytebasket/bytebasket/internal/config"
	"github.com/bytebasket/bytebasket/internal/event"
	"github.com/bytebasket/bytebasket/internal/fraud/rules"
	"github.com/bytebasket/bytebasket/internal/model"
	"github.com/bytebasket/bytebasket/internal/stateful"
	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
)

// stateVersion is the version of the meaning of the fraud role's checkpoint entries.
const stateVersion = 1

// Config tunes the fraud role.
type Config struct {
	Loop   stateful.Config
	Rules  *rules.Set
	Alerts string // the physical fraud-alerts topic
}

// FromConfig maps the configuration onto the role's; rs is the rule set in force.
func FromConfig(cfg config.Config, rs *rules.Set, instance string) Config {
	f := cfg.Fraud
	loop := stateful.DefaultConfig()
	loop.Group, loop.Topics, loop.Partitions = f.Group, event.Topics, cfg.Kafka.Partitions
	loop.FlushInterval, loop.CheckpointInterval = f.CommitInterval, f.CheckpointInterval
	loop.FullInterval = f.CheckpointInterval
	loop.MaxClockSkew = cfg.Stream.MaxFuture
	loop.DedupHorizon = 24 * time.Hour // a client retry is not scored twice
	loop.ShutdownTimeout = cfg.Stream.ShutdownTimeout
	loop.TransactionalID = f.Group + "-" + instance
	return Config{Loop: loop, Rules: rs, Alerts: cfg.Kafka.Topic(event.TopicFraudAlerts)}
}

// Processor is the fraud role. Create with New, then Run.
type Processor struct {
	*stateful.Loop
}

// New connects the consumer group; store keeps the checkpoints. reg may be nil.
func New(cfg Config, kafka config.Kafka, store stateful.Store, reg prometheus.Registerer) (*Processor, error) {
	if cfg.Rules == nil {
		return nil, fmt.Errorf("fraud: no rule set")
	}
	r := &role{cfg: cfg, m: newMetrics(reg)}
	for i := range cfg.Rules.Rules {
		rule := &cfg.Rules.Rules[i]
		if rule.GroupBy == rules.User {
			r.rules = append(r.rules, rule)
			r.horizon = max(r.horizon, rule.Window)
		} else {
			r.skipped = append(r.skipped, rule.Name)
		}
	}
	if len(r.skipped) > 0 {
		slog.Warn("fraud rules grouped by card, device or IP are not evaluated: they need the repartition stage, not built yet",
			"rules", r.skipped, "version", cfg.Rules.Version)
	}
	r.m.skippedRules.Set(float64(len(r.skipped)))
	loop, err := stateful.New(cfg.Loop, kafka, r, store, reg)
	if err != nil {
		return nil, err
	}
	return &Processor{loop}, nil
}

// role is the fraud role as internal/stateful drives it.
type role struct {
	cfg     Config
	rules   []*rules.Rule // the rules evaluated (grouped by user)
	skipped []string
	horizon time.Duration
	m       metrics
}

func (r *role) Name() string         { return "fraud" }
func (r *role) StateVersion() uint32 { return stateVersion }
func (r *role) NewTask(partition int32, emit stateful.Emit) stateful.Task {
	return &task{role: r, partition: partition, emit: emit, st: newUserState(r.horizon)}
}

// task is one partition's fraud state.
type task struct {
	role      *role
	partition int32
	emit      stateful.Emit
	st        *userState
}

func (t *task) Apply(_ string, e *pb.Envelope) bool {
	h := t.st.add(e)
	kind := event.KindOf(e)
	if !slices.Contains(scored, kind) {
		return false
	}
	d := t.role.decide(e, h)
	t.role.m.decisions.WithLabelValues(d.GetAction().String()).Inc()
	if d.GetAction() == pb.FraudAction_FRAUD_ACTION_REVIEW || d.GetAction() == pb.FraudAction_FRAUD_ACTION_BLOCK {
		b, err := proto.Marshal(d)
		if err != nil { // a message of our own: cannot fail
			panic(err)
		}
		t.emit(&kgo.Record{Topic: t.role.cfg.Alerts, Key: []byte(e.GetUserId()), Value: b})
	}
	return false
}

// decide scores e, the newest event of history h.
func (r *role) decide(e *pb.Envelope, h *history) *pb.FraudDecision {
	at := e.GetEventTime().AsTime().UnixMilli()
	d := &pb.FraudDecision{
		EventId: e.GetEventId(), Kind: string(event.KindOf(e)), UserId: e.GetUserId(),
		RulesVersion: r.cfg.Rules.Version, EventTime: e.GetEventTime(), DecidedAt: timestamppb.Now(),
		ReceivedAt: e.GetIngestTime(), Action: pb.FraudAction_FRAUD_ACTION_ALLOW,
	}
	switch p := e.GetPayload().(type) {
	case *pb.Envelope_OrderPlaced:
		d.OrderId = p.OrderPlaced.GetOrderId()
	case *pb.Envelope_PaymentAuthorized:
		d.OrderId, d.PaymentId = p.PaymentAuthorized.GetOrderId(), p.PaymentAuthorized.GetPaymentId()
	case *pb.Envelope_PaymentFailed:
		d.OrderId, d.PaymentId = p.PaymentFailed.GetOrderId(), p.PaymentFailed.GetPaymentId()
	}
	if m, ok := rules.AmountOf(e); ok {
		d.AmountMinor, d.Currency = m.GetAmountMinor(), m.GetCurrency()
	}
	strongest := rules.Allow
	for _, rule := range r.rules {
		v := aggregate(rule, e.GetUserId(), h, at)
		if !rule.Compare.Holds(v, rule.Limit) {
			continue
		}
		r.m.ruleHits.WithLabelValues(rule.Name).Inc()
		d.Score += int32(rule.Weight)
		d.Reasons = append(d.Reasons, &pb.FraudReason{Rule: rule.Name, Value: v, Limit: rule.Limit,
			Weight: int32(rule.Weight), Action: actionOf(rule.Action)})
		if rule.Action.Stronger(strongest) {
			strongest = rule.Action
		}
	}
	d.Score = min(d.Score, 100)
	d.Action = actionOf(strongest)
	return d
}

func actionOf(a rules.Action) pb.FraudAction {
	switch a {
	case rules.Review:
		return pb.FraudAction_FRAUD_ACTION_REVIEW
	case rules.Block:
		return pb.FraudAction_FRAUD_ACTION_BLOCK
	}
	return pb.FraudAction_FRAUD_ACTION_ALLOW
}

// Flush drops users the rules no longer look back to; decisions went out with Apply.
func (t *task) Flush(_ context.Context, _ model.Fence, wm int64, _ time.Time, _ stateful.Level) error {
	if wm > 0 {
		t.st.expire(wm)
	}
	return nil
}

func (t *task) Writing() bool { return false }
func (t *task) Durable() func(context.Context) error {
	return func(context.Context) error { return nil }
}
func (t *task) Close()                                       {}
func (t *task) Late() int64                                  { return 0 }
func (t *task) Changes(full bool, emit func(*pb.StateEntry)) { t.st.changes(full, emit) }
func (t *task) Restore(e *pb.StateEntry) error               { return t.st.restore(e) }
