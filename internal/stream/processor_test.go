package stream

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bytebasket/bytebasket/internal/bus"
	"github.com/bytebasket/bytebasket/internal/config"
	"github.com/bytebasket/bytebasket/internal/event"
	"github.com/bytebasket/bytebasket/internal/model"
	"github.com/bytebasket/bytebasket/internal/store/embedded"
	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/time/rate"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// flakySink fails every write until healthy is set: an unavailable store.
type flakySink struct {
	*embedded.Store
	healthy  atomic.Bool
	failures atomic.Int64
}

func (f *flakySink) Write(ctx context.Context, b model.Batch) error {
	if !f.healthy.Load() {
		f.failures.Add(1)
		return errors.New("store unavailable")
	}
	return f.Store.Write(ctx, b)
}

func setup(t *testing.T) (config.Config, *kgo.Client) {
	t.Helper()
	br, err := bus.StartEmbedded("127.0.0.1:0", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(br.Close)
	cfg := config.Default()
	cfg.Kafka.Brokers = []string{br.Addr()}
	opts, _ := bus.ClientOptions(cfg.Kafka)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	if err := bus.EnsureTopics(context.Background(), kadm.NewClient(cl), bus.TopicSpecs(cfg)); err != nil {
		t.Fatal(err)
	}
	return cfg, cl
}

func validEvent(id string, at time.Time) *pb.Envelope {
	return &pb.Envelope{EventId: id, EventTime: timestamppb.New(at), SchemaVersion: 1, Source: pb.Source_SOURCE_WEB,
		UserId: "u-1", SessionId: "s-1", Payload: &pb.Envelope_PageView{PageView: &pb.PageView{Url: "/"}}}
}

func encode(t *testing.T, e *pb.Envelope) []byte {
	b, err := event.AppendEncode(nil, e)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Bad input goes to the dead-letter topic with its reason; processing goes on; a store that
// is down for a while is retried until it is back, and nothing is lost.
func TestDeadLettersAndUnavailableStore(t *testing.T) {
	cfg, cl := setup(t)
	now := time.Now()
	good := encode(t, validEvent("e-good", now))
	unknown := protowire.AppendString(protowire.AppendTag(nil, 99, protowire.BytesType), "payload from the future")
	unknown = append(encode(t, &pb.Envelope{EventId: "e-u", EventTime: timestamppb.New(now), UserId: "u-1"}), unknown...)
	bad := map[string][]byte{
		"random bytes":    {0xff, 0x13, 0x37, 0x00, 0x42, 0xfe},
		"truncated":       good[:len(good)-3],
		"unknown payload": unknown,
		"far future":      encode(t, validEvent("e-future", now.Add(72*time.Hour))),
	}
	ctx := context.Background()
	for _, v := range bad {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: event.TopicUserActivity, Key: []byte("u-1"), Value: v}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	const valid = 50
	for i := range valid {
		e := validEvent("e-"+string(rune('a'+i%26))+time.Now().String(), now.Add(time.Duration(i)*time.Millisecond))
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: event.TopicUserActivity, Key: []byte("u-1"), Value: encode(t, e)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	st, err := embedded.Open(t.TempDir(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sink := &flakySink{Store: st}
	pcfg := DefaultConfig()
	pcfg.Group = "test-dlq"
	p, err := New(pcfg, cfg.Kafka, sink, nil)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()

	// The store is down: writes fail and are retried; nothing reaches it.
	deadline := time.Now().Add(20 * time.Second)
	for sink.failures.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if sink.failures.Load() < 3 {
		t.Fatal("the processor did not retry the unavailable store")
	}
	sink.healthy.Store(true)

	var pageViews int64
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		rows, err := st.Windows(ctx, model.Minute, now.Add(-time.Hour), now.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		pageViews = 0
		for _, w := range rows {
			pageViews += w.PageViews
		}
		if pageViews == valid {
			break
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if pageViews != valid {
		t.Fatalf("store has %d page views after the outage, want %d", pageViews, valid)
	}

	// Every bad record is in the dead-letter topic with a reason; nothing else is.
	dl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Kafka.Brokers...), kgo.ConsumeTopics(event.TopicDeadLetters),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer dl.Close()
	reasons := map[string]string{}
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for len(reasons) < len(bad) && fctx.Err() == nil {
		dl.PollFetches(fctx).EachRecord(func(r *kgo.Record) {
			h := map[string]string{}
			for _, x := range r.Headers {
				h[x.Key] = string(x.Value)
			}
			if h["reason"] == "" || h["source-topic"] != event.TopicUserActivity {
				t.Errorf("dead letter without reason or origin: %v", h)
			}
			reasons[string(r.Value)] = h["reason-class"]
		})
	}
	want := map[string]string{"random bytes": "undecodable", "truncated": "undecodable", "unknown payload": "unknown_payload", "far future": "bad_event_time"}
	for name, v := range bad {
		if reasons[string(v)] != want[name] {
			t.Errorf("%s: dead-letter reason %q, want %q", name, reasons[string(v)], want[name])
		}
	}
	if len(reasons) != len(bad) {
		t.Fatalf("%d dead letters, want %d", len(reasons), len(bad))
	}
}

// The write rate limit holds for batches larger than its burst. rate.Limiter refuses at once
// a wait that would outlast the context, so no clock is measured: within 50ms, 300 rows at
// 1000 rows/s (burst 100) must be refused, while 100 rows pass.
func TestThrottleWaitsForEveryRow(t *testing.T) {
	p := &Processor{limiter: rate.NewLimiter(1000, 100)}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := p.throttle(ctx, 300); err == nil {
		t.Fatal("300 rows passed a 1000 rows/s limit with burst 100 within 50ms")
	}
	p = &Processor{limiter: rate.NewLimiter(1000, 100)}
	if err := p.throttle(context.Background(), 100); err != nil {
		t.Fatalf("a batch within the burst was refused: %v", err)
	}
	unlimited := &Processor{limiter: rate.NewLimiter(rate.Inf, 0)}
	if err := unlimited.throttle(ctx, 1_000_000); err != nil {
		t.Fatalf("no limit configured, yet throttled: %v", err)
	}
}
