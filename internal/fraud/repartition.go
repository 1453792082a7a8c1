package fraud

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/bytebasket/bytebasket/internal/event"
	"github.com/bytebasket/bytebasket/internal/fraud/rules"
	"github.com/bytebasket/bytebasket/internal/model"
	"github.com/bytebasket/bytebasket/internal/stateful"
	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
)

// The repartition stage. Rules grouped by a card fingerprint, device, IP or country need
// that key's events across users, and the input is partitioned by user; so, as Kafka Streams
// does, the first stage re-keys the events those rules are fed to the internal
// fraud-repartition topic, in the same transaction as its input offsets, and a second
// consumer group (this stage) keeps the per-key histories. An event being decided travels
// with its decision so far: each key it carries adds the reasons of its rules, then passes it
// on to the next key (record key: that key's value) or, at the last one, settles it. An event
// only fed to the rules goes to each key once, directly. Every hop is a Kafka transaction, so
// each decision is still produced exactly once.

// Headers of a re-keyed record; its value is the event, its key the attribute's value.
const (
	headerRoute   = "fraud-route"   // the attribute the record is keyed by
	headerPending = "fraud-pending" // the decision so far (FraudDecision), if one is being made
	headerChain   = "fraud-chain"   // the attributes still to visit, comma-separated
)

// keyOrder is the order a decision visits its keys in.
var keyOrder = []rules.Attribute{rules.Card, rules.Device, rules.IP, rules.Country}

// routes are the keys of e whose rules are fed e's kind, in keyOrder.
func (c *compiled) routes(e *pb.Envelope) []rules.Attribute {
	kind := event.KindOf(e)
	var out []rules.Attribute
	for _, a := range keyOrder {
		if !slices.ContainsFunc(c.byKey[a], func(r *rules.Rule) bool { return slices.Contains(r.On, kind) }) {
			continue
		}
		if _, ok := rules.Of(e, a); ok {
			out = append(out, a)
		}
	}
	return out
}

// rekeyed is e as a record of the repartition topic keyed by its attribute a, carrying
// pending (nil for an event only fed to the rules) and the keys still to visit.
func (r *role) rekeyed(e *pb.Envelope, a rules.Attribute, pending *pb.FraudDecision, chain []rules.Attribute) *kgo.Record {
	v, _ := rules.Of(e, a)
	value, err := event.AppendEncode(nil, e)
	if err != nil { // an event that was decoded and validated: cannot fail
		panic(err)
	}
	rec := &kgo.Record{Topic: r.cfg.Repartition, Key: []byte(v), Value: value,
		Headers: []kgo.RecordHeader{{Key: headerRoute, Value: []byte(a)}}}
	if pending != nil {
		b := mustMarshal(pending)
		names := make([]string, len(chain))
		for i, c := range chain {
			names[i] = string(c)
		}
		rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: headerPending, Value: b},
			kgo.RecordHeader{Key: headerChain, Value: []byte(strings.Join(names, ","))})
	}
	return rec
}

func header(r *kgo.Record, key string) ([]byte, bool) {
	for _, h := range r.Headers {
		if h.Key == key {
			return h.Value, true
		}
	}
	return nil, false
}

// keyRole is the repartition stage as internal/stateful drives it; it shares the rule set
// in force with the first stage.
type keyRole struct{ *role }

func (k keyRole) Name() string { return "fraud_keys" }
func (k keyRole) NewTask(partition int32, emit stateful.Emit) stateful.Task {
	return &keyTask{role: k.role, emit: emit, keys: map[keyID]*history{}, deleted: map[keyID]bool{},
		segments: map[string]*pb.FraudSegmentState{}, dirtySegments: map[string]bool{}, deletedSegments: map[string]bool{}}
}

// keyLoopConfig is the repartition stage's loop: its own group and transactional id,
// partitioned by the record key, a duplicate being the same event on the same route.
func keyLoopConfig(users stateful.Config, repartition string) stateful.Config {
	c := users
	c.Group = users.Group + "-keys"
	c.Topics = []string{repartition}
	c.TransactionalID = users.TransactionalID + "-keys"
	c.KeyOf = func(r *kgo.Record, _ *pb.Envelope) string { return string(r.Key) }
	c.DedupID = func(r *kgo.Record, e *pb.Envelope) string {
		route, _ := header(r, headerRoute)
		return string(route) + "/" + e.GetEventId()
	}
	return c
}

// keyID is one key of the stage: an attribute and its value.
type keyID struct {
	attr  rules.Attribute
	value string
}

// keyTask is one partition of the repartition stage: each key's events, and the segments
// of transaction monitoring (monitoring.go).
type keyTask struct {
	emitsOnly
	role      *role
	emit      stateful.Emit
	keys      map[keyID]*history
	deleted   map[keyID]bool
	expiredAt int64

	segments                       map[string]*pb.FraudSegmentState
	dirtySegments, deletedSegments map[string]bool
}

// Apply is never called: the loop hands a RecordTask the record (ApplyRecord); an event
// without its record has no route and is counted as such.
func (t *keyTask) Apply(topic string, e *pb.Envelope) bool {
	return t.ApplyRecord(topic, &kgo.Record{}, e)
}

// ApplyRecord adds the event to its key's history and, when it carries a decision, adds the
// reasons of the key's rules and passes the decision on.
func (t *keyTask) ApplyRecord(_ string, r *kgo.Record, e *pb.Envelope) bool {
	route, _ := header(r, headerRoute)
	if string(route) == routeSegment {
		t.monitor(string(r.Key), e)
		return false
	}
	attr := rules.Attribute(route)
	if !slices.Contains(keyOrder, attr) {
		// Only this role writes the topic; a record without a known route is not ours.
		t.role.m.badRekeyed.Inc()
		t.emit(stateful.DeadLetter(t.role.cfg.DeadLetters, r, fmt.Errorf("fraud-repartition record with an unknown route %q", route)))
		return false
	}
	c := t.role.set.Load()
	id := keyID{attr, string(r.Key)}
	h := t.keys[id]
	if h == nil {
		h = &history{}
		t.keys[id] = h
		delete(t.deleted, id)
	}
	rec := eventState(e)
	rec.UserId = e.GetUserId()
	// The first stage's partitions reach a key out of event-time order (each progresses on
	// its own): a history keeps keyLateness beyond the longest window for the laggards.
	insertByTime(h, rec, c.keyHorizon[attr]+keyLateness)
	raw, ok := header(r, headerPending)
	if !ok {
		return false
	}
	d := &pb.FraudDecision{}
	if err := proto.Unmarshal(raw, d); err != nil {
		t.role.m.badRekeyed.Inc()
		t.emit(stateful.DeadLetter(t.role.cfg.DeadLetters, r, fmt.Errorf("fraud-repartition record with an unreadable decision: %w", err)))
		return false
	}
	at := e.GetEventTime().AsTime().UnixMilli()
	kind := event.KindOf(e)
	for _, rule := range c.byKey[attr] {
		if !slices.Contains(rule.On, kind) {
			continue
		}
		if held := holds(rule, e, h, nil, c.set, at); held != nil {
			t.role.fired(d, rule, held)
		}
	}
	var chain []rules.Attribute
	if names, _ := header(r, headerChain); len(names) > 0 {
		for _, n := range strings.Split(string(names), ",") {
			chain = append(chain, rules.Attribute(n))
		}
	}
	if len(chain) > 0 {
		t.emit(t.role.rekeyed(e, chain[0], d, chain[1:]))
		return false
	}
	t.role.settle(d, t.emit)
	return false
}

// keyLateness: how far behind a key's newest event another of its events may arrive and
// still be counted.
const keyLateness = time.Hour

// Flush frees the keys whose newest event no rule looks back to from expiryMargin before
// the watermark, once a minute of event time.
func (t *keyTask) Flush(_ context.Context, _ model.Fence, wm int64, _ time.Time, _ stateful.Level) error {
	if wm <= 0 || wm-t.expiredAt < time.Minute.Milliseconds() {
		return nil
	}
	t.expiredAt = wm
	c := t.role.set.Load()
	wm -= expiryMargin.Milliseconds()
	t.expireSegments(wm, c.retention)
	for id, h := range t.keys {
		if n := len(h.events); n == 0 || h.events[n-1].GetTimeMs() < wm-(c.keyHorizon[id.attr]+keyLateness).Milliseconds() {
			delete(t.keys, id)
			t.deleted[id] = true
		}
	}
	return nil
}

func (t *keyTask) Changes(full bool, emit func(*pb.StateEntry)) {
	t.segmentChanges(full, emit)
	for id := range t.deleted {
		if !full {
			emit(&pb.StateEntry{Entry: &pb.StateEntry_FraudKey{FraudKey: &pb.FraudKeyState{Attribute: string(id.attr), Value: id.value, Deleted: true}}})
		}
	}
	clear(t.deleted)
	for id, h := range t.keys {
		if full || h.dirty {
			emit(&pb.StateEntry{Entry: &pb.StateEntry_FraudKey{FraudKey: &pb.FraudKeyState{Attribute: string(id.attr), Value: id.value, Events: h.events}}})
		}
		h.dirty = false
	}
}

func (t *keyTask) Restore(e *pb.StateEntry) error {
	if s := e.GetFraudSegment(); s != nil {
		if s.GetDeleted() {
			delete(t.segments, s.GetKey())
		} else {
			t.segments[s.GetKey()] = s
		}
		return nil
	}
	k := e.GetFraudKey()
	if k == nil {
		return fmt.Errorf("fraud: checkpoint entry %T is not the repartition stage's", e.GetEntry())
	}
	id := keyID{rules.Attribute(k.GetAttribute()), k.GetValue()}
	if k.GetDeleted() {
		delete(t.keys, id)
		return nil
	}
	t.keys[id] = &history{events: k.GetEvents()}
	return nil
}
