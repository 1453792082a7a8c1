package stream

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bytebasket/bytebasket/internal/bus"
	"github.com/bytebasket/bytebasket/internal/bus/bustest"
	"github.com/bytebasket/bytebasket/internal/config"
	"github.com/bytebasket/bytebasket/internal/event"
	"github.com/bytebasket/bytebasket/internal/model"
	"github.com/bytebasket/bytebasket/internal/store/embedded"
	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
)

// flakyStore fails every row write while down: an unavailable store.
type flakyStore struct {
	*embedded.Store
	down     atomic.Bool
	failures atomic.Int64
}

func (f *flakyStore) Write(ctx context.Context, fence model.Fence, b model.Batch) error {
	if f.down.Load() {
		f.failures.Add(1)
		return errors.New("store unavailable")
	}
	return f.Store.Write(ctx, fence, b)
}

// setup starts an embedded broker with the topics and returns its config and a producer
// keyed like ByteBasket's (Kafka's default partitioner).
func setup(t *testing.T) (config.Config, *kgo.Client) {
	cfg, cl, _ := setupBounded(t, 0)
	return cfg, cl
}

// setupBounded is setup with a broker whose partitions keep partitionBytes (0: unbounded).
func setupBounded(t *testing.T, partitionBytes int64) (config.Config, *kgo.Client, *bus.EmbeddedBroker) {
	br, cfg, cl := bustest.Embedded(t, partitionBytes)
	cfg.Stream.Group = fmt.Sprintf("test-%d", time.Now().UnixNano())
	return cfg, cl, br
}

func openStore(t *testing.T) *embedded.Store {
	t.Helper()
	st, err := embedded.Open(t.TempDir(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func pageView(id, user string, at time.Time) *pb.Envelope {
	return &pb.Envelope{EventId: id, EventTime: timestamppb.New(at), SchemaVersion: 1, Source: pb.Source_SOURCE_WEB,
		UserId: user, SessionId: "s-" + user, Payload: &pb.Envelope_PageView{PageView: &pb.PageView{Url: "/"}}}
}

func order(id, user string, at time.Time, cents int64) *pb.Envelope {
	return &pb.Envelope{EventId: id, EventTime: timestamppb.New(at), SchemaVersion: 1, Source: pb.Source_SOURCE_WEB,
		UserId: user, SessionId: "s-" + user, Payload: &pb.Envelope_OrderPlaced{OrderPlaced: &pb.OrderPlaced{
			OrderId: "o-" + id, Total: &pb.Money{AmountMinor: cents, Currency: "EUR"}}}}
}

func encode(t *testing.T, e *pb.Envelope) []byte {
	b, err := event.AppendEncode(nil, e)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func produce(t *testing.T, cl *kgo.Client, recs ...*kgo.Record) {
	t.Helper()
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func eventRecord(t *testing.T, e *pb.Envelope) *kgo.Record {
	return &kgo.Record{Topic: event.TopicOf(event.KindOf(e)), Key: []byte(e.GetUserId()), Value: encode(t, e)}
}

// start runs a processor until the test ends; it returns the function that stops it and
// waits for Run's result.
func start(t *testing.T, cfg config.Config, st Store) (*Processor, func() error) {
	t.Helper()
	sc := FromConfig(cfg)
	sc.Loop.CheckpointInterval = 500 * time.Millisecond
	p, err := New(sc, cfg.Kafka, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var once atomic.Bool
	var result error
	stop := func() error {
		if once.CompareAndSwap(false, true) {
			cancel()
			select {
			case result = <-done:
			case <-time.After(30 * time.Second):
				result = errors.New("Run did not return within 30s of being stopped")
			}
		}
		return result
	}
	t.Cleanup(func() { _ = stop() })
	return p, stop
}

// allTotals sums the "all platforms" minute rows: page views, orders and EUR revenue.
func allTotals(t *testing.T, st *embedded.Store, around time.Time) (views, orders, eur int64) {
	t.Helper()
	rows, err := st.Windows(context.Background(), model.Minute, around.Add(-3*time.Hour), around.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range rows {
		if w.Key.Platform == model.AllPlatforms {
			views, orders, eur = views+w.PageViews, orders+w.Orders, eur+w.Revenue["EUR"]
		}
	}
	return
}

func awaitTotals(t *testing.T, st *embedded.Store, around time.Time, views, orders, eur int64) {
	t.Helper()
	var v, o, e int64
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if v, o, e = allTotals(t, st, around); v == views && o == orders && e == eur {
			return
		}
	}
	t.Fatalf("store has %d page views, %d orders, %d EUR; want %d, %d, %d", v, o, e, views, orders, eur)
}

// deadLetters reads the dead-letter topic: record value -> reason class.
func deadLetters(t *testing.T, cfg config.Config, want int) map[string]string {
	t.Helper()
	dl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Kafka.Brokers...), kgo.ConsumeTopics(event.TopicDeadLetters),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer dl.Close()
	reasons := map[string]string{}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for len(reasons) < want && ctx.Err() == nil {
		dl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			h := map[string]string{}
			for _, x := range r.Headers {
				h[x.Key] = string(x.Value)
			}
			if h["reason"] == "" || h["source-topic"] == "" || h["source-offset"] == "" {
				t.Errorf("dead letter without reason or origin: %v", h)
			}
			reasons[string(r.Value)] = h["reason-class"]
		})
	}
	return reasons
}

// Bad input goes to the dead-letter topic with its reason (a client clock far ahead of
// Kafka's, a record in another user's partition among them); a copy of an event id is
// dropped; processing goes on; a store that is down stalls the processor, which writes
// everything once the store is back.
func TestDeadLettersDuplicatesAndUnavailableStore(t *testing.T) {
	cfg, cl := setup(t)
	now := time.Now()
	good := encode(t, pageView("e-good", "u-1", now))
	unknown := protowire.AppendString(protowire.AppendTag(nil, 99, protowire.BytesType), "payload from the future")
	unknown = append(encode(t, &pb.Envelope{EventId: "e-u", EventTime: timestamppb.New(now), UserId: "u-1"}), unknown...)
	bad := map[string][]byte{
		"random bytes":    {0xff, 0x13, 0x37, 0x00, 0x42, 0xfe},
		"truncated":       good[:len(good)-3],
		"unknown payload": unknown,
		"clock ahead":     encode(t, pageView("e-future", "u-1", now.Add(50*time.Minute))),
		"ancient":         encode(t, pageView("e-old", "u-1", time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC))),
	}
	for _, v := range bad {
		produce(t, cl, &kgo.Record{Topic: event.TopicUserActivity, Key: []byte("u-1"), Value: v})
	}
	// Another producer's partitioner put u-2's event where u-1's belong.
	misrouted := encode(t, pageView("e-mis", "u-2", now))
	bad["misrouted"] = misrouted
	p1 := int32(kgo.StickyKeyPartitioner(nil).ForTopic("").Partition(&kgo.Record{Key: []byte("u-1")}, 4))
	p2 := int32(kgo.StickyKeyPartitioner(nil).ForTopic("").Partition(&kgo.Record{Key: []byte("u-2")}, 4))
	if p1 == p2 {
		t.Fatal("pick users of different partitions")
	}
	manual, err := kgo.NewClient(kgo.SeedBrokers(cfg.Kafka.Brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer manual.Close()
	produce(t, manual, &kgo.Record{Topic: event.TopicUserActivity, Partition: p1, Key: []byte("u-2"), Value: misrouted})

	const valid = 50
	for i := range valid {
		e := pageView(fmt.Sprint("e-", i), fmt.Sprint("u-", i%5), now.Add(time.Duration(i)*time.Millisecond))
		produce(t, cl, eventRecord(t, e))
		if i%10 == 0 { // a client's retry: the same event again
			produce(t, cl, eventRecord(t, e))
		}
	}

	st := &flakyStore{Store: openStore(t)}
	st.down.Store(true)
	p, stop := start(t, cfg, st)
	// The store is down: writes fail and are retried; nothing reaches it; not ready.
	for deadline := time.Now().Add(20 * time.Second); st.failures.Load() < 3 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if st.failures.Load() < 3 {
		t.Fatal("the processor did not retry the unavailable store")
	}
	if p.Ready() {
		t.Error("ready while the store is down")
	}
	st.down.Store(false)
	awaitTotals(t, st.Store, now, valid, 0, 0)
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	reasons := deadLetters(t, cfg, len(bad))
	want := map[string]string{"random bytes": "undecodable", "truncated": "undecodable", "unknown payload": "unknown_payload",
		"clock ahead": "clock_skew", "ancient": "bad_event_time", "misrouted": "misrouted"}
	for name, v := range bad {
		if reasons[string(v)] != want[name] {
			t.Errorf("%s: dead-letter reason %q, want %q", name, reasons[string(v)], want[name])
		}
	}
	if len(reasons) != len(bad) {
		t.Fatalf("%d dead letters, want %d", len(reasons), len(bad))
	}
}

// A dead letter that cannot be written is sent again until it is; meanwhile checkpoints
// wait for it, and once it is written they go on (one failure never fails them for good).
func TestDeadLetterRetriedUntilWritten(t *testing.T) {
	cfg, cl := setup(t)
	adm := kadm.NewClient(cl)
	if _, err := adm.DeleteTopics(context.Background(), event.TopicDeadLetters); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	produce(t, cl, &kgo.Record{Topic: event.TopicUserActivity, Key: []byte("u-1"), Value: []byte{0xff, 0x01}})
	st := openStore(t)
	_, stop := start(t, cfg, st)
	time.Sleep(3 * time.Second) // the dead letter fails while its topic is missing
	if err := bus.EnsureTopics(context.Background(), adm, bus.TopicSpecs(cfg)); err != nil {
		t.Fatal(err)
	}
	if got := deadLetters(t, cfg, 1); len(got) != 1 {
		t.Fatalf("the dead letter never arrived: %v", got)
	}
	// Later events still get checkpointed and written.
	produce(t, cl, eventRecord(t, pageView("e-after", "u-3", now)))
	awaitTotals(t, st, now, 1, 0, 0)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	commits, err := adm.FetchOffsets(context.Background(), cfg.Stream.Group)
	if err != nil {
		t.Fatal(err)
	}
	var committed int64
	commits.Each(func(o kadm.OffsetResponse) { committed += o.At })
	if committed < 2 { // the bad record and the later event, past both
		t.Fatalf("offsets committed after the dead letter: %d records", committed)
	}
}

// An unreadable checkpoint (written by a newer version) stops the processor with an error
// that says what to do; it neither hangs nor processes anything.
func TestUnreadableCheckpointStopsWithAClearError(t *testing.T) {
	cfg, cl := setup(t)
	st := openStore(t)
	f, _, err := st.Claim(context.Background(), cfg.Stream.Group, 0)
	if err != nil {
		t.Fatal(err)
	}
	head, _ := proto.Marshal(&pb.CheckpointHead{FormatVersion: 99, Role: "stream", RoleVersion: 1, Partitions: 4,
		Segments: []*pb.LogSegment{{Epoch: f.Epoch, FirstSeq: 1, LastSeq: 1}}})
	if err := st.CommitHead(context.Background(), f, head); err != nil {
		t.Fatal(err)
	}
	produce(t, cl, eventRecord(t, pageView("e-1", "u-1", time.Now())))
	sc := FromConfig(cfg)
	p, err := New(sc, cfg.Kafka, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(context.Background()) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "format version 99") || !strings.Contains(err.Error(), "docs/operations.md") {
			t.Fatalf("Run: %v; want an error naming the version and the recovery", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run hangs on an unreadable checkpoint")
	}
}

// After a restart with a backlog on both topics, the orders behind the activity are not
// late: a topic with records left to read holds the watermark back. A restart resumes from
// the checkpoint and replays exactly.
func TestRestartWithBacklogIsExact(t *testing.T) {
	cfg, cl := setup(t)
	st := openStore(t)
	base := time.Now().Add(-2 * time.Hour).Truncate(time.Minute)
	var views, orders, eur int64
	batch := func(from, n int) {
		var acts, txs []*kgo.Record
		for i := from; i < from+n; i++ {
			at := base.Add(time.Duration(i) * 100 * time.Millisecond)
			user := fmt.Sprint("u-", i%97)
			acts = append(acts, eventRecord(t, pageView(fmt.Sprint("v-", i), user, at)))
			views++
			if i%10 == 0 {
				txs = append(txs, eventRecord(t, order(fmt.Sprint("o-", i), user, at, int64(100+i))))
				orders++
				eur += int64(100 + i)
			}
		}
		// All activity first: the orders sit behind a long stretch of later activity.
		produce(t, cl, acts...)
		produce(t, cl, txs...)
	}
	batch(0, 12_000) // 20 minutes of event time
	_, stop := start(t, cfg, st)
	awaitTotals(t, st, base, views, orders, eur)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	batch(12_000, 12_000) // produced while it is down
	p, stop := start(t, cfg, st)
	awaitTotals(t, st, base, views, orders, eur)
	_ = p
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// The write rate limit holds for batches larger than its burst. rate.Limiter refuses at once
// a wait that would outlast the context, so no clock is measured: within 50ms, 300 rows at
// 1000 rows/s (burst 100) must be refused, while 100 rows pass.
func TestThrottleWaitsForEveryRow(t *testing.T) {
	r := &role{}
	r.limiter = newLimiter(1000)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := r.throttle(ctx, 300); err == nil {
		t.Fatal("300 rows passed a 1000 rows/s limit with burst 100 within 50ms")
	}
	r.limiter = newLimiter(1000)
	if err := r.throttle(context.Background(), 100); err != nil {
		t.Fatalf("a batch within the burst was refused: %v", err)
	}
	r.limiter = newLimiter(0)
	if err := r.throttle(ctx, 1_000_000); err != nil {
		t.Fatalf("no limit configured, yet throttled: %v", err)
	}
}

// slowFailingStore fails the batches that carry sessions (the slow lane's) while slowDown is
// set, and notes checkpoint heads committed while such a batch is still unwritten.
type slowFailingStore struct {
	*embedded.Store
	slowDown       atomic.Bool
	slowFailures   atomic.Int64
	owed           [4]atomic.Bool // per partition: a slow batch failed and none has been written since
	headsWhileOwed atomic.Int64
}

func (f *slowFailingStore) Write(ctx context.Context, fence model.Fence, b model.Batch) error {
	if len(b.Sessions) > 0 {
		if f.slowDown.Load() {
			f.slowFailures.Add(1)
			f.owed[fence.Partition].Store(true)
			return errors.New("sessions table unavailable")
		}
		defer f.owed[fence.Partition].Store(false)
	}
	return f.Store.Write(ctx, fence, b)
}

func (f *slowFailingStore) CommitHead(ctx context.Context, fence model.Fence, head []byte) error {
	if f.owed[fence.Partition].Load() {
		f.headsWhileOwed.Add(1)
	}
	return f.Store.CommitHead(ctx, fence, head)
}

// The slow rows (sessions, rollups) are written beside the poll loop: when their writes
// fail, the minute rows still reach the store, no checkpoint is committed over the unwritten
// rows, the role is not ready once the lane lags past its bound (polling stops), and once
// the writes succeed the sessions arrive.
func TestSlowRowsWrittenBesideTheLoop(t *testing.T) {
	cfg, cl := setup(t)
	now := time.Now()
	const users, views = 8, 40
	for i := range views {
		produce(t, cl, eventRecord(t, pageView(fmt.Sprint("e-", i), fmt.Sprint("u-", i%users), now.Add(time.Duration(i)*time.Millisecond))))
	}
	st := &slowFailingStore{Store: openStore(t)}
	st.slowDown.Store(true)
	p, stop := start(t, cfg, st)
	awaitTotals(t, st.Store, now, views, 0, 0) // minute rows, while the sessions fail
	for deadline := time.Now().Add(20 * time.Second); st.slowFailures.Load() < 3 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if st.slowFailures.Load() < 3 {
		t.Fatalf("%d failed slow writes: the lane did not retry", st.slowFailures.Load())
	}
	time.Sleep(time.Second) // two checkpoint intervals
	if n := st.headsWhileOwed.Load(); n != 0 {
		t.Fatalf("%d checkpoints committed while the sessions they cover were unwritten", n)
	}
	if p.Ready() {
		t.Error("ready while the slow rows lag")
	}
	st.slowDown.Store(false)
	for u := range users {
		user := fmt.Sprint("u-", u)
		var got []model.Session
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			var err error
			if got, err = st.SessionsByUser(context.Background(), user, 0); err != nil {
				t.Fatal(err)
			}
			if len(got) == 1 && got[0].PageViews == views/users {
				break
			}
		}
		if len(got) != 1 || got[0].PageViews != views/users {
			t.Fatalf("sessions of %s after the store recovered: %+v", user, got)
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// Records the broker's retention removed before the processor read them (it was stopped
// meanwhile) are counted and reported, not silently skipped; what is left is processed.
func TestRecordsTrimmedUnreadAreCounted(t *testing.T) {
	cfg, cl, br := setupBounded(t, 1) // every batch is over the bound: all go when trimmed
	now := time.Now().Add(-time.Hour)
	view := func(prefix string, n int) {
		for i := range n { // one batch each
			produce(t, cl, eventRecord(t, pageView(fmt.Sprintf("%s-%d", prefix, i), "u-1", now)))
		}
	}
	st := openStore(t)
	view("first", 5)
	_, stop := start(t, cfg, st)
	awaitTotals(t, st, now, 5, 0, 0)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	view("unread", 40)
	br.ApplyRetention()
	view("after", 7)

	reg := prometheus.NewRegistry()
	p, err := New(FromConfig(cfg), cfg.Kafka, st, reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() { cancel(); <-done }()
	awaitTotals(t, st, now, 12, 0, 0)
	var expired float64
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && expired < 40; time.Sleep(100 * time.Millisecond) {
		expired = counterValue(t, reg, "bytebasket_stream_records_expired_total")
	}
	if expired != 40 {
		t.Fatalf("records_expired_total %v, want the 40 trimmed unread", expired)
	}
}

// counterValue sums a counter family's series in reg.
func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var v float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				v += m.GetCounter().GetValue()
			}
		}
	}
	return v
}
