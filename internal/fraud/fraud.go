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
// The first stage keeps state per user (the input partitions are by user). Rules grouped by
// card, device, IP or country need those keys' events across users: the repartition stage
// (repartition.go) keeps them, fed through an internal topic inside the same exactly-once
// transactions.
package fraud

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bytebasket/bytebasket/internal/config"
	"github.com/bytebasket/bytebasket/internal/event"
	"github.com/bytebasket/bytebasket/internal/fraud/riskmodel"
	"github.com/bytebasket/bytebasket/internal/fraud/rules"
	"github.com/bytebasket/bytebasket/internal/model"
	"github.com/bytebasket/bytebasket/internal/stateful"
	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
)

// stateVersion is the version of the meaning of the fraud role's checkpoint entries.
// 2: profiles, typical amounts, the repartition stage's keys and segments (a version 1
// checkpoint still restores: profiles are rebuilt from the events it holds).
const stateVersion = 2

// Config tunes the fraud role.
type Config struct {
	Loop  stateful.Config
	Rules *rules.Set // the set in force at the start (see InForce)
	// Model scores orders beside the rules (nil: none yet); a newer one published to
	// fraud-rules takes over as rule sets do.
	Model  *riskmodel.Model
	Alerts string // the physical fraud-alerts topic
	// DeadLetters is the physical dead-letter topic: events a rule they are fed cannot be
	// evaluated on (a field it needs is missing) go there too, and are scored by the rest.
	DeadLetters string
	// Repartition is the physical fraud-repartition topic; Keys is the repartition stage's
	// loop (KeyLoopConfig of Loop).
	Repartition string
	Keys        stateful.Config
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
	return Config{Loop: loop, Keys: keyLoopConfig(loop, event.TopicFraudRepartition), Rules: rs,
		Alerts: cfg.Kafka.Topic(event.TopicFraudAlerts), Repartition: cfg.Kafka.Topic(event.TopicFraudRepartition),
		DeadLetters: cfg.Kafka.Topic(event.TopicDeadLetters), RulesFrom: -1}
}

// Processor is the fraud role: the first stage's loop (by user) and the repartition
// stage's (by card, device, IP, country). Create with New, then Run.
type Processor struct {
	users, keys *stateful.Loop
	role        *role
	kafka       config.Kafka
	from        int64
}

// New connects the two consumer groups; store keeps the checkpoints. reg may be nil.
func New(cfg Config, kafka config.Kafka, store stateful.Store, reg prometheus.Registerer) (*Processor, error) {
	if cfg.Rules == nil {
		return nil, fmt.Errorf("fraud: no rule set")
	}
	r := &role{cfg: cfg, m: newMetrics(reg)}
	r.swap(cfg.Rules)
	if cfg.Model != nil {
		r.swapModel(cfg.Model)
	}
	users, err := stateful.New(cfg.Loop, kafka, r, store, reg)
	if err != nil {
		return nil, err
	}
	keys, err := stateful.New(cfg.Keys, kafka, keyRole{r}, store, reg)
	if err != nil {
		users.Close()
		return nil, err
	}
	return &Processor{users: users, keys: keys, role: r, kafka: kafka, from: cfg.RulesFrom}, nil
}

// Run scores until ctx ends, switching to every newer rule set published meanwhile. Either
// stage failing stops both.
func (p *Processor) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if p.from >= 0 {
		go func() {
			if err := follow(ctx, p.kafka, p.from, p.role.swap, p.role.swapModel); err != nil {
				slog.Error("fraud rules not followed; the set in force stays", "err", err)
			}
		}()
	}
	keysDone := make(chan error, 1)
	go func() {
		err := p.keys.Run(ctx)
		cancel()
		keysDone <- err
	}()
	err := p.users.Run(ctx)
	cancel()
	return cmp.Or(ignoreCanceled(err), ignoreCanceled(<-keysDone), err)
}

func ignoreCanceled(err error) error {
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// Close releases a Processor that will not Run.
func (p *Processor) Close() {
	p.users.Close()
	p.keys.Close()
}

// Ready reports whether both stages are.
func (p *Processor) Ready() bool { return p.users.Ready() && p.keys.Ready() }

// RulesVersion is the version of the rule set in force.
func (p *Processor) RulesVersion() int64 { return p.role.set.Load().set.Version }

// ModelVersion is the version of the model in force, 0 if none.
func (p *Processor) ModelVersion() int64 {
	if m := p.role.model.Load(); m != nil {
		return m.Version()
	}
	return 0
}

// role is the fraud role as internal/stateful drives it.
type role struct {
	cfg   Config
	set   atomic.Pointer[compiled] // the rule set in force; swapped by follow
	model atomic.Pointer[riskmodel.Model]
	m     metrics
}

// swapModel puts m in force if it is newer than the model in force.
func (r *role) swapModel(m *riskmodel.Model) {
	if cur := r.model.Load(); cur != nil && m.Version() <= cur.Version() {
		return
	}
	r.model.Store(m)
	r.m.modelVersion.Set(float64(m.Version()))
	slog.Info("fraud model in force", "version", m.Version(), "features", len(m.Proto().GetFeatures()))
}

// compiled is a rule set as the role evaluates it.
type compiled struct {
	set   *rules.Set
	rules []*rules.Rule // grouped by user: the first stage's
	// byKey: grouped by another attribute, the repartition stage's; keyHorizon is each
	// attribute's longest window.
	byKey      map[rules.Attribute][]*rules.Rule
	keyHorizon map[rules.Attribute]time.Duration
	horizon    time.Duration // the longest window of the user rules: how far back a user's events are kept
	userKinds  []event.Kind  // the kinds the user rules aggregate: the only ones a history keeps
	// needs: by event kind, the fields each rule fed that kind evaluates it by.
	needs map[event.Kind][]need
	// retention: how long a user's profile outlives the user's last event.
	retention time.Duration
}

// swap puts rs in force if it is newer than the set in force.
func (r *role) swap(rs *rules.Set) {
	if cur := r.set.Load(); cur != nil && rs.Version <= cur.set.Version {
		return
	}
	c := &compiled{set: rs, retention: rs.Retention(), byKey: map[rules.Attribute][]*rules.Rule{},
		keyHorizon: map[rules.Attribute]time.Duration{}, needs: map[event.Kind][]need{}}
	for i := range rs.Rules {
		rule := &rs.Rules[i]
		var window time.Duration
		for _, cond := range rule.Conditions() {
			if cond.Aggregate != "" {
				window = max(window, cond.Window)
			}
		}
		for _, k := range slices.Compact(slices.Sorted(slices.Values(rule.On))) {
			c.needs[k] = append(c.needs[k], need{rule.Name, fieldsOf(rule)})
		}
		if rule.GroupBy == rules.User {
			c.rules = append(c.rules, rule)
			c.horizon = max(c.horizon, window)
			for _, k := range rule.On {
				if !slices.Contains(c.userKinds, k) {
					c.userKinds = append(c.userKinds, k)
				}
			}
		} else {
			c.byKey[rule.GroupBy] = append(c.byKey[rule.GroupBy], rule)
			c.keyHorizon[rule.GroupBy] = max(c.keyHorizon[rule.GroupBy], window)
		}
	}
	// The model's features count the user's orders and failed payments of the last hour:
	// kept whether or not a model is in force, so one published later finds that hour there
	// (the shipped rules keep those kinds that long anyway).
	c.horizon = max(c.horizon, riskmodel.Window)
	for _, k := range []event.Kind{event.KindOrderPlaced, event.KindPaymentFailed} {
		if !slices.Contains(c.userKinds, k) {
			c.userKinds = append(c.userKinds, k)
		}
	}
	r.set.Store(c)
	r.m.rulesVersion.Set(float64(rs.Version))
	slog.Info("fraud rule set in force", "version", rs.Version, "rules", len(rs.Rules))
}

func (r *role) Name() string         { return "fraud" }
func (r *role) StateVersion() uint32 { return stateVersion }
func (r *role) NewTask(partition int32, emit stateful.Emit) stateful.Task {
	return &task{role: r, partition: partition, emit: emit, st: newUserState()}
}

// task is one partition's fraud state.
type task struct {
	emitsOnly
	role      *role
	partition int32
	emit      stateful.Emit
	st        *userState
	expiredAt int64 // the watermark of the last expiry pass
}

// ApplyRecord is Apply, and an event missing a field that a rule it is fed needs is also a
// dead letter (in the transaction: once), saying which rules went without it.
func (t *task) ApplyRecord(topic string, r *kgo.Record, e *pb.Envelope) bool {
	c := t.role.set.Load()
	var missing []string
	for _, n := range c.needs[event.KindOf(e)] {
		for _, f := range n.fields {
			if !has(e, f) {
				missing = append(missing, fmt.Sprintf("rule %q needs the event's %s", n.rule, f))
				t.role.m.incomplete.WithLabelValues(string(f)).Inc()
			}
		}
	}
	if len(missing) > 0 {
		err := fmt.Errorf("%w: scored without these rules: %s", event.ErrMissingField, strings.Join(missing, "; "))
		t.emit(stateful.DeadLetter(t.role.cfg.DeadLetters, r, err))
	}
	return t.Apply(topic, e)
}

// need is what one rule reads of the events it is fed.
type need struct {
	rule   string
	fields []rules.Attribute
}

// fieldsOf is what rule reads of an event: the key it groups by, what a distinct counts,
// and the amount a sum, an avg or an amount signal needs.
func fieldsOf(rule *rules.Rule) []rules.Attribute {
	var out []rules.Attribute
	add := func(a rules.Attribute) {
		if a != "" && a != rules.User && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	add(rule.GroupBy)
	for _, c := range rule.Conditions() {
		switch {
		case c.Aggregate == rules.Distinct:
			add(c.Field)
		case c.Aggregate == rules.Sum, c.Aggregate == rules.Avg,
			c.Signal == rules.AmountVsTypical, c.Signal == rules.AmountVsOwn:
			add(rules.Amount)
		}
	}
	return out
}

// has reports whether e carries a.
func has(e *pb.Envelope, a rules.Attribute) bool {
	if a == rules.Amount {
		_, ok := rules.AmountOf(e)
		return ok
	}
	_, ok := rules.Of(e, a)
	return ok
}

// Apply adds e to its user's history; an order or payment attempt is decided under the user
// rules and, when rules grouped by its card, device, IP or country are fed it, passed on to
// the repartition stage with its decision so far; other events those rules are fed go there
// too, to each key once.
func (t *task) Apply(_ string, e *pb.Envelope) bool {
	c := t.role.set.Load()
	h := t.st.add(e, c.horizon, c.retention, slices.Contains(c.userKinds, event.KindOf(e)))
	remember(h.profile, e)
	if segment, ok := segmentOf(h.profile, e); ok { // transaction monitoring (monitoring.go)
		t.emit(t.role.segmentRecord(e, segment))
	}
	routes := c.routes(e)
	if !slices.Contains(scored, event.KindOf(e)) {
		for _, a := range routes {
			t.emit(t.role.rekeyed(e, a, nil, nil))
		}
		return false
	}
	d := t.role.decide(c, e, h, t.st)
	// An order joins the user's and the partition's baselines after it was decided on.
	ordered(h.profile, e)
	t.st.typical.add(e)
	if len(routes) > 0 {
		t.emit(t.role.rekeyed(e, routes[0], d, routes[1:]))
		return false
	}
	t.role.settle(d, t.emit)
	return false
}

// settle scores d from its reasons (their weights, capped at 100, or the model's probability
// in percent when higher; the strongest action they ask for) and produces it to
// fraud-alerts if it reviews or blocks.
func (r *role) settle(d *pb.FraudDecision, emit stateful.Emit) {
	var score int32
	strongest := pb.FraudAction_FRAUD_ACTION_ALLOW
	for _, reason := range d.GetReasons() {
		score += reason.GetWeight()
		strongest = max(strongest, reason.GetAction()) // the enum orders allow < review < block
	}
	score = max(min(score, 100), int32(math.Round(100*d.GetModelProbability())))
	d.Score, d.Action, d.DecidedAt = score, strongest, timestamppb.Now()
	r.m.decisions.WithLabelValues(d.GetAction().String()).Inc()
	if d.GetAction() == pb.FraudAction_FRAUD_ACTION_REVIEW || d.GetAction() == pb.FraudAction_FRAUD_ACTION_BLOCK {
		emit(alertRecord(r.cfg.Alerts, d.GetUserId(), d))
	}
}

func mustMarshal(m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil { // a message of our own: cannot fail
		panic(err)
	}
	return b
}

// fired adds rule's reason to d: what each of its conditions measured.
func (r *role) fired(d *pb.FraudDecision, rule *rules.Rule, held []*pb.FraudCondition) {
	r.m.ruleHits.WithLabelValues(rule.Name).Inc()
	d.Reasons = append(d.Reasons, &pb.FraudReason{Rule: rule.Name, Value: held[0].GetValue(), Limit: rule.Limit,
		Weight: int32(rule.Weight), Action: actionOf(rule.Action), Conditions: held})
}

// decide is the first stage's decision on e, the newest event of history h, under c: the
// reasons of the user rules; st is the partition's state (its baseline, its age).
func (r *role) decide(c *compiled, e *pb.Envelope, h *history, st *userState) *pb.FraudDecision {
	at := e.GetEventTime().AsTime().UnixMilli()
	d := &pb.FraudDecision{
		EventId: e.GetEventId(), Kind: string(event.KindOf(e)), UserId: e.GetUserId(),
		RulesVersion: c.set.Version, EventTime: e.GetEventTime(), ReceivedAt: e.GetIngestTime(),
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
	for _, rule := range c.rules {
		if held := holds(rule, e, h, st, c.set, at); held != nil {
			r.fired(d, rule, held)
		}
	}
	if m := r.model.Load(); m != nil && e.GetOrderPlaced() != nil {
		p := m.Probability(orderFeatures(e, h, at))
		d.ModelVersion, d.ModelProbability = m.Version(), p
		if a := m.Action(p); a != pb.FraudAction_FRAUD_ACTION_ALLOW {
			r.m.ruleHits.WithLabelValues(modelReason).Inc()
			d.Reasons = append(d.Reasons, &pb.FraudReason{Rule: modelReason, Value: p, Limit: m.ReviewAt(), Action: a,
				Conditions: []*pb.FraudCondition{{Measure: "probability", Value: p, Compare: ">=", Limit: m.ReviewAt()}}})
		}
	}
	return d
}

// modelReason is the rule name of a decision's reason when the model asked for it.
const modelReason = rules.ModelReason

// holds is what each condition of rule measured for e when all of them hold, nil when one
// does not. Conditions are tested in order and the first that fails ends the test. st is the
// first stage's partition state, nil in the repartition stage (whose aggregates look around
// the event: see aggregate).
func holds(rule *rules.Rule, e *pb.Envelope, h *history, st *userState, set *rules.Set, at int64) []*pb.FraudCondition {
	var held []*pb.FraudCondition
	for _, c := range rule.Conditions() {
		var v float64
		if c.Signal != "" {
			v = signal(&c, e, h.profile, st, set)
		} else {
			v = aggregate(rule.On, &c, e.GetUserId(), h, at, st == nil)
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

// emitsOnly is the part of stateful.Task a fraud stage has nothing to do for: its output is
// the transaction's records, no rows, and it drops no event as late.
type emitsOnly struct{}

func (emitsOnly) Writing() bool { return false }
func (emitsOnly) Durable() func(context.Context) error {
	return func(context.Context) error { return nil }
}
func (emitsOnly) Close()      {}
func (emitsOnly) Late() int64 { return 0 }

func (t *task) Changes(full bool, emit func(*pb.StateEntry)) { t.st.changes(full, emit) }
func (t *task) Restore(e *pb.StateEntry) error               { return t.st.restore(e) }
