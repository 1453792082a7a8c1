package sink

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bytebasket/bytebasket/internal/bus/bustest"
	"github.com/bytebasket/bytebasket/internal/event"
	"github.com/bytebasket/bytebasket/internal/model"
	"github.com/bytebasket/bytebasket/internal/store/embedded"
	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
)

// flaky refuses its first writes, as a store that is down would.
type flaky struct {
	*embedded.Store
	refuse atomic.Int64
}

func (f *flaky) WriteFraudAlerts(ctx context.Context, alerts []model.FraudAlert) error {
	if f.refuse.Add(-1) >= 0 {
		return errors.New("store down (test)")
	}
	return f.Store.WriteFraudAlerts(ctx, alerts)
}

// Alerts reach the store through an outage, a record that is not a decision is skipped, and
// a restarted sink of the same group neither loses nor doubles any.
func TestAlertsReachTheStoreOnce(t *testing.T) {
	_, cfg, cl := bustest.Embedded(t, 0)
	st, err := embedded.Open(t.TempDir(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	store := &flaky{Store: st}
	store.refuse.Store(3)
	base := time.Now().Add(-time.Minute).Truncate(time.Millisecond).UTC()
	produce := func(from, n int) {
		for i := from; i < from+n; i++ {
			d := &pb.FraudDecision{EventId: fmt.Sprintf("e%d", i), UserId: fmt.Sprintf("u%d", i%2), Kind: "order_placed",
				Action: pb.FraudAction_FRAUD_ACTION_REVIEW, EventTime: timestamppb.New(base.Add(time.Duration(i) * time.Second)), DecidedAt: timestamppb.Now()}
			b, err := proto.Marshal(d)
			if err != nil {
				t.Fatal(err)
			}
			if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: event.TopicFraudAlerts, Key: []byte(d.UserId), Value: b}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	count := func() int {
		got, err := st.FraudAlerts(context.Background(), base.Add(-time.Hour), base.Add(time.Hour), 0)
		if err != nil {
			t.Fatal(err)
		}
		return len(got)
	}
	run := func(want int) {
		s, err := New(cfg.Kafka, "sink-test", store, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		for deadline := time.Now().Add(30 * time.Second); count() < want && time.Now().Before(deadline); {
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(300 * time.Millisecond) // offsets commit
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	produce(0, 5)
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: event.TopicFraudAlerts, Value: []byte("not a decision")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	run(5)
	if n := count(); n != 5 || store.refuse.Load() >= 0 {
		t.Fatalf("%d alerts in the store after the outage (refusals left %d), want 5", n, store.refuse.Load())
	}
	produce(5, 2)
	run(7)
	if n := count(); n != 7 {
		t.Fatalf("%d alerts after a restart, want 7", n)
	}
	byUser, err := st.FraudAlertsByUser(context.Background(), "u1", 0)
	if err != nil || len(byUser) != 3 || byUser[0].EventID != "e5" {
		t.Fatalf("alerts of u1: %v %v, want e5, e3, e1", byUser, err)
	}
}

// Ground truth reaches the store once per order: an order's label is kept, the labels of
// its payment and of a page view are not, and a label that does not decode is skipped.
func TestOrderLabelsReachTheStore(t *testing.T) {
	_, cfg, cl := bustest.Embedded(t, 0)
	st, err := embedded.Open(t.TempDir(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	at := time.Now().Add(-time.Minute).Truncate(time.Millisecond).UTC()
	for _, l := range []*pb.FraudLabel{
		{EventId: "e1", UserId: "u1", OrderId: "o1", Scenario: "account_takeover", Kind: "order_placed", EventTime: timestamppb.New(at)},
		{EventId: "e2", UserId: "u1", OrderId: "o1", Scenario: "account_takeover", Kind: "payment_authorized", EventTime: timestamppb.New(at.Add(time.Second))},
		{EventId: "e3", UserId: "u1", Scenario: "account_takeover", Kind: "page_viewed", EventTime: timestamppb.New(at.Add(-time.Second))},
		{EventId: "e4", UserId: "u2", OrderId: "o2", Scenario: "card_testing", Kind: "order_placed", EventTime: timestamppb.New(at.Add(2 * time.Second))},
	} {
		b, _ := proto.Marshal(l)
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: event.TopicSimLabels, Key: []byte(l.UserId), Value: b}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: event.TopicSimLabels, Value: []byte{0xff, 0xff}}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg.Kafka, "sink-labels", st, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var got []model.FraudLabel
	for deadline := time.Now().Add(30 * time.Second); len(got) < 2 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if got, err = st.FraudLabels(context.Background(), at.Add(-time.Hour), at.Add(time.Hour), 0); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(300 * time.Millisecond) // nothing more arrives
	got, _ = st.FraudLabels(context.Background(), at.Add(-time.Hour), at.Add(time.Hour), 0)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want := []model.FraudLabel{{OrderID: "o2", EventTime: at.Add(2 * time.Second), UserID: "u2", Scenario: "card_testing"},
		{OrderID: "o1", EventTime: at, UserID: "u1", Scenario: "account_takeover"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("labels in the store: %+v, want %+v", got, want)
	}
}
