package fraud

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bytebasket/bytebasket/internal/bus/bustest"
	"github.com/bytebasket/bytebasket/internal/config"
	"github.com/bytebasket/bytebasket/internal/event"
	"github.com/bytebasket/bytebasket/internal/fraud/rules"
	"github.com/bytebasket/bytebasket/internal/model"
	"github.com/bytebasket/bytebasket/internal/store/embedded"
	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
)

const testRules = `
version: 3
rules:
  - name: user-orders-1h
    on: [order_placed]
    group_by: user
    aggregate: count
    window: 1h
    compare: ">"
    limit: 2
    weight: 40
    action: review
  - name: user-spend-eur-1h
    on: [order_placed]
    group_by: user
    aggregate: sum
    field: amount
    currency: EUR
    window: 1h
    compare: ">="
    limit: 100000
    weight: 70
    action: block
  - name: card-shared
    on: [order_placed]
    group_by: card
    aggregate: distinct
    field: user
    window: 1h
    compare: ">"
    limit: 1
    weight: 50
    action: block
`

// noCheckpoints is a store whose checkpoint heads are never committed: every restart
// replays from the first offset, so only the transactions' offsets keep decisions single.
type noCheckpoints struct {
	*embedded.Store
	refused atomic.Int64
}

func (s *noCheckpoints) CommitHead(context.Context, model.Fence, []byte) error {
	s.refused.Add(1)
	return errors.New("checkpoints refused by the test")
}

// testSetAndStore is testRules parsed and an embedded store for the checkpoints, closed
// with the test.
func testSetAndStore(t *testing.T) (*rules.Set, *embedded.Store) {
	t.Helper()
	rs, err := rules.Parse([]byte(testRules))
	if err != nil {
		t.Fatal(err)
	}
	st, err := embedded.Open(t.TempDir(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return rs, st
}

// produceEvent writes e to transactions, keyed by its user.
func produceEvent(t *testing.T, cl *kgo.Client, e *pb.Envelope) {
	t.Helper()
	b, err := event.AppendEncode(nil, e)
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: event.TopicTransactions, Key: []byte(e.GetUserId()), Value: b}).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func order(id, user, card string, at time.Time, cents int64) *pb.Envelope {
	return &pb.Envelope{EventId: id, EventTime: timestamppb.New(at), SchemaVersion: 1, Source: pb.Source_SOURCE_WEB,
		UserId: user, SessionId: "s-" + user, Payload: &pb.Envelope_OrderPlaced{OrderPlaced: &pb.OrderPlaced{
			OrderId: "o-" + id, Total: &pb.Money{AmountMinor: cents, Currency: "EUR"}, PaymentFingerprint: card}}}
}

// Decisions are made by the user rules and by the card rule (through the repartition
// stage), reach fraud-alerts exactly once across restarts that replay everything (no
// checkpoint ever lands, in either stage), and say why and under which rule set.
func TestDecisionsExactlyOnceAcrossRestarts(t *testing.T) {
	br, cfg, cl := bustest.Embedded(t, 0)
	rs, st := testSetAndStore(t)
	store := &noCheckpoints{Store: st}

	now := time.Now().Add(-30 * time.Minute)
	orders := func(user, card string, from, n int, cents int64, after time.Duration) {
		for i := from; i < from+n; i++ {
			produceEvent(t, cl, order(fmt.Sprintf("%s-%d", user, i), user, card, now.Add(after+time.Duration(i)*time.Second), cents))
		}
	}
	run := func(instance string, until func() bool) {
		fc := FromConfig(cfg, rs, instance)
		fc.Loop.ShutdownTimeout, fc.Keys.ShutdownTimeout = 2*time.Second, 2*time.Second
		p, err := New(fc, cfg.Kafka, store, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx) }()
		for deadline := time.Now().Add(30 * time.Second); !until() && time.Now().Before(deadline); {
			time.Sleep(100 * time.Millisecond)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}

	orders("u-1", "card-1", 0, 5, 1000, 0)  // orders 3..5 of the hour: review
	orders("u-2", "card-2", 0, 2, 1000, 0)  // two: nothing
	orders("u-3", "card-3", 0, 1, 99999, 0) // under the spend limit
	orders("u-3", "card-3", 1, 1, 1, 0)     // reaches it: block
	orders("u-4", "card-4", 0, 1, 1000, time.Minute)
	orders("u-5", "card-4", 0, 1, 1000, 2*time.Minute) // a second account on u-4's card: block
	var got []*pb.FraudDecision
	run("a", func() bool { got = alerts(t, br.Addr()); return len(got) >= 5 })
	orders("u-1", "card-1", 5, 1, 1000, 0) // a sixth order: one more review
	run("b", func() bool { got = alerts(t, br.Addr()); return len(got) >= 6 })
	time.Sleep(time.Second) // any duplicate would be committed by now
	got = alerts(t, br.Addr())

	var ids []string
	for _, d := range got {
		ids = append(ids, d.GetOrderId())
		if d.GetRulesVersion() != 3 || len(d.GetReasons()) == 0 || d.GetDecidedAt() == nil {
			t.Errorf("decision %s: rules version %d, reasons %v", d.GetOrderId(), d.GetRulesVersion(), d.GetReasons())
		}
	}
	// u-4 and u-5 are in different partitions: whichever order reaches the card stage second
	// finds the other's account on the card (the stage counts a window either side).
	shared := "o-u-5-0"
	if slices.Contains(ids, "o-u-4-0") {
		shared = "o-u-4-0"
	}
	slices.Sort(ids)
	want := []string{"o-u-1-2", "o-u-1-3", "o-u-1-4", "o-u-1-5", "o-u-3-1", shared}
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Fatalf("decisions in fraud-alerts %v, want each of %v once", ids, want)
	}
	for _, d := range got {
		switch d.GetOrderId() {
		case "o-u-3-1":
			if d.GetAction() != pb.FraudAction_FRAUD_ACTION_BLOCK || d.GetScore() != 70 {
				t.Errorf("u-3's second order: %v score %d, want block 70", d.GetAction(), d.GetScore())
			}
		case shared:
			if d.GetAction() != pb.FraudAction_FRAUD_ACTION_BLOCK || d.GetScore() != 50 || d.GetReasons()[0].GetRule() != "card-shared" ||
				d.GetReasons()[0].GetValue() != 2 {
				t.Errorf("%s, one of two accounts on card-4: %v score %d reasons %v, want block 50 by card-shared (2 users)", shared, d.GetAction(), d.GetScore(), d.GetReasons())
			}
		default:
			if d.GetAction() != pb.FraudAction_FRAUD_ACTION_REVIEW || d.GetScore() != 40 {
				t.Errorf("%s: %v score %d, want review 40", d.GetOrderId(), d.GetAction(), d.GetScore())
			}
		}
	}
	if store.refused.Load() == 0 {
		t.Fatal("no checkpoint was attempted: the restarts did not replay")
	}
}

// alerts reads every committed decision in fraud-alerts.
func alerts(t *testing.T, addr string) []*pb.FraudDecision {
	t.Helper()
	k := config.Default().Kafka
	k.Brokers = []string{addr}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := Decisions(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// A loop with nothing to apply opens no transaction: an idle one would cost a heartbeat and a
// round of requests every commit interval, and franz-go holds the session for 500 ms after a
// commit that carries no offsets (which stalled decisions at 20k events/s).
func TestIdleLoopCommitsNoTransactions(t *testing.T) {
	_, cfg, cl := bustest.Embedded(t, 0)
	cfg.Fraud.CommitInterval = 20 * time.Millisecond
	rs, st := testSetAndStore(t)
	reg := prometheus.NewRegistry()
	p, err := New(FromConfig(cfg, rs, "a"), cfg.Kafka, st, reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	now := time.Now().Add(-time.Minute)
	for i := range 3 {
		produceEvent(t, cl, order(fmt.Sprint("idle-", i), "u-1", "card-1", now.Add(time.Duration(i)*time.Second), 1000))
	}
	committed := func() (users, keys float64) {
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range families {
			for _, m := range f.GetMetric() {
				if len(m.GetLabel()) != 1 || m.GetLabel()[0].GetValue() != "committed" {
					continue
				}
				switch f.GetName() {
				case "bytebasket_fraud_transactions_total":
					users = m.GetCounter().GetValue()
				case "bytebasket_fraud_keys_transactions_total":
					keys = m.GetCounter().GetValue()
				}
			}
		}
		return users, keys
	}
	// Once the three orders and what they feed the repartition stage are committed, a second
	// of idling (50 commit intervals) must commit nothing more in either stage.
	for deadline := time.Now().Add(20 * time.Second); ; {
		u1, k1 := committed()
		time.Sleep(time.Second)
		u2, k2 := committed()
		if u1 > 0 && k1 > 0 && u1 == u2 && k1 == k2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("transactions committed while idle: first stage %v -> %v, repartition stage %v -> %v in a second", u1, u2, k1, k2)
		}
	}
}
