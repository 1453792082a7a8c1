// Package fraud is `bytebasket fraud`: it scores every order and payment attempt against the
// rule set (internal/fraud/rules) and produces a FraudDecision for each one it reviews or
// blocks to the fraud-alerts topic, exactly once: a role of internal/stateful in
// transactional mode, so decisions commit in one Kafka transaction with the offsets of the
// events they were made on, and a restored partition replays what an earlier owner
// committed without deciding again.
//
// A scored event is decided under every rule: a rule fires when each of its conditions
// holds, an aggregate over the events of its `on` kinds within its window ending at the
// scored event's time (the scored event included when its kind is one of them), or a signal
// of the event against the user's profile (profile.go), compared with its limit. The fired
// rules' weights add up to the 0-100 score; the decision is the strongest action they ask
// for (allow if none fires).
//
// The rule set in force is the newest in the compacted fraud-rules topic (Publish puts one
// there; with none, the configured set is published first, so every instance agrees), and a
// newer one takes over without a restart: each decision records the version it was made
// under.
//
// This package keeps state per user (the input partitions are by user). Rules grouped by
// card, device or IP need those keys' events across users, so a repartition by that key
// first; until that stage exists they are not evaluated, and the role says so.
package fraud

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
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
	Rules  *rules.Set // the set in force at the start (see InForce)
	Alerts string     // the physical fraud-alerts topic
	// RulesFrom is the fraud-rules offset newer sets are followed from; negative: the
	// topic is not followed (tests that give the set directly).
	RulesFrom int64
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
	return Config{Loop: loop, Rules: rs, Alerts: cfg.Kafka.Topic(event.TopicFraudAlerts), RulesFrom: -1}
}

// Processor is the fraud role. Create with New, then Run.
type Processor struct {
	*stateful.Loop
	role  *role
	kafka config.Kafka
	from  int64
}

// New connects the consumer group; store keeps the checkpoints. reg may be nil.
func New(cfg Config, kafka config.Kafka, store stateful.Store, reg prometheus.Registerer) (*Processor, error) {
	if cfg.Rules == nil {
		return nil, fmt.Errorf("fraud: no rule set")
	}
	r := &role{cfg: cfg, m: newMetrics(reg)}
	r.swap(cfg.Rules)
	loop, err := stateful.New(cfg.Loop, kafka, r, store, reg)
	if err != nil {
		return nil, err
	}
	return &Processor{Loop: loop, role: r, kafka: kafka, from: cfg.RulesFrom}, nil
}

// Run scores until ctx ends, switching to every newer rule set published meanwhile.
func (p *Processor) Run(ctx context.Context) error {
	if p.from >= 0 {
		fctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go func() {
			if err := follow(fctx, p.kafka, p.from, p.role.swap); err != nil {
				slog.Error("fraud rules not followed; the set in force stays", "err", err)
			}
		}()
	}
	return p.Loop.Run(ctx)
}

// RulesVersion is the version of the rule set in force.
func (p *Processor) RulesVersion() int64 { return p.role.set.Load().set.Version }

// role is the fraud role as internal/stateful drives it.
type role struct {
	cfg Config
	set atomic.Pointer[compiled] // the rule set in force; swapped by follow
	m   metrics
}

// compiled is a rule set as the role evaluates it.
type compiled struct {
	set     *rules.Set
	rules   []*rules.Rule // the rules evaluated (grouped by user)
	skipped []string
	horizon time.Duration // the longest window: how far back a user's events are kept
	// retention: how long a user's profile outlives the user's last event.
	retention time.Duration
}

// swap puts rs in force if it is newer than the set in force.
func (r *role) swap(rs *rules.Set) {
	if cur := r.set.Load(); cur != nil && rs.Version <= cur.set.Version {
		return
	}
	c := &compiled{set: rs, retention: rs.Retention()}
	for i := range rs.Rules {
		rule := &rs.Rules[i]
		if rule.GroupBy == rules.User {
			c.rules = append(c.rules, rule)
			for _, cond := range rule.Conditions() {
				if cond.Aggregate != "" {
					c.horizon = max(c.horizon, cond.Window)
				}
			}
		} else {
			c.skipped = append(c.skipped, rule.Name)
		}
	}
	r.set.Store(c)
	r.m.rulesVersion.Set(float64(rs.Version))
	r.m.skippedRules.Set(float64(len(c.skipped)))
	slog.Info("fraud rule set in force", "version", rs.Version, "rules", len(rs.Rules))
	if len(c.skipped) > 0 {
		slog.Warn("fraud rules grouped by card, device or IP are not evaluated: they need the repartition stage, not built yet",
			"rules", c.skipped, "version", rs.Version)
	}
}

func (r *role) Name() string         { return "fraud" }
func (r *role) StateVersion() uint32 { return stateVersion }
func (r *role) NewTask(partition int32, emit stateful.Emit) stateful.Task {
	return &task{role: r, partition: partition, emit: emit, st: newUserState()}
}

// task is one partition's fraud state.
type task struct {
	role      *role
	partition int32
	emit      stateful.Emit
	st        *userState
	expiredAt int64 // the watermark of the last expiry pass
}

func (t *task) Apply(_ string, e *pb.Envelope) bool {
	c := t.role.set.Load()
	h := t.st.add(e, c.horizon)
	kind := event.KindOf(e)
	if !slices.Contains(scored, kind) {
		return false
	}
	d := t.role.decide(c, e, h, t.st.typical)
	// An order joins the user's and the partition's baselines after it was decided on.
	ordered(h.profile, e)
	t.st.typical.add(e)
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

// decide scores e, the newest event of history h, under c; typ is the partition's baseline.
func (r *role) decide(c *compiled, e *pb.Envelope, h *history, typ *typical) *pb.FraudDecision {
	at := e.GetEventTime().AsTime().UnixMilli()
	d := &pb.FraudDecision{
		EventId: e.GetEventId(), Kind: string(event.KindOf(e)), UserId: e.GetUserId(),
		RulesVersion: c.set.Version, EventTime: e.GetEventTime(), DecidedAt: timestamppb.Now(),
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
	for _, rule := range c.rules {
		held := holds(rule, e, h, typ, at)
		if held == nil {
			continue
		}
		r.m.ruleHits.WithLabelValues(rule.Name).Inc()
		d.Score += int32(rule.Weight)
		d.Reasons = append(d.Reasons, &pb.FraudReason{Rule: rule.Name, Value: held[0].GetValue(), Limit: rule.Limit,
			Weight: int32(rule.Weight), Action: actionOf(rule.Action), Conditions: held})
		if rule.Action.Stronger(strongest) {
			strongest = rule.Action
		}
	}
	d.Score = min(d.Score, 100)
	d.Action = actionOf(strongest)
	return d
}

// holds is what each condition of rule measured for e when all of them hold, nil when one
// does not. Conditions are tested in order and the first that fails ends the test.
func holds(rule *rules.Rule, e *pb.Envelope, h *history, typ *typical, at int64) []*pb.FraudCondition {
	var held []*pb.FraudCondition
	for _, c := range rule.Conditions() {
		var v float64
		if c.Signal != "" {
			v = signal(&c, e, h.profile, typ)
		} else {
			v = aggregate(rule.On, &c, e.GetUserId(), h, at)
		}
		if !c.Compare.Holds(v, c.Limit) {
			return nil
		}
		held = append(held, &pb.FraudCondition{Measure: c.Name(), Value: v, Compare: string(c.Compare), Limit: c.Limit})
	}
	return held
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

// Flush drops what the rules no longer look back to, once a minute of event time (a pass
// visits every user); decisions went out with Apply.
func (t *task) Flush(_ context.Context, _ model.Fence, wm int64, _ time.Time, _ stateful.Level) error {
	if wm > 0 && wm-t.expiredAt >= time.Minute.Milliseconds() {
		c := t.role.set.Load()
		t.st.expire(wm, c.horizon, c.retention)
		t.expiredAt = wm
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
