package app

import (
	"context"
	"testing"
	"time"

	"github.com/bytebasket/bytebasket/internal/bus"
	"github.com/bytebasket/bytebasket/internal/config"
	"github.com/bytebasket/bytebasket/internal/event"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func embeddedKafka(t *testing.T) config.Config {
	t.Helper()
	b, err := bus.StartEmbedded("127.0.0.1:0", t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	cfg := config.Default()
	cfg.Kafka.Brokers = []string{b.Addr()}
	if err := TopicsCreate(context.Background(), cfg, testWriter{t}); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// endOffsets sums the high watermarks of each topic: what the broker holds.
func endOffsets(t *testing.T, cfg config.Config, topics ...string) int64 {
	t.Helper()
	opts, _ := bus.ClientOptions(cfg.Kafka)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(context.Background(), topics...)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

func TestProduceExactCount(t *testing.T) {
	cfg := embeddedKafka(t)
	p, err := bus.NewProducer(cfg.Kafka, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	sum, err := Produce(context.Background(), p, ProduceOptions{Count: 20_000, Users: 500, Seed: 7, Labels: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Sent != 20_000 {
		t.Fatalf("sent %d, want 20000", sum.Sent)
	}
	if got := endOffsets(t, cfg, event.Topics...); got != 20_000 {
		t.Fatalf("broker holds %d events, want 20000", got)
	}
	if got := endOffsets(t, cfg, event.TopicSimLabels); got != sum.Labels || got == 0 {
		t.Fatalf("broker holds %d labels, summary says %d", got, sum.Labels)
	}
}

// A throttled backfill cannot be faster than its bound (a lower bound on elapsed time: a
// slow machine only makes it longer).
func TestProduceThrottle(t *testing.T) {
	cfg := embeddedKafka(t)
	p, err := bus.NewProducer(cfg.Kafka, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	start := time.Now()
	sum, err := Produce(context.Background(), p, ProduceOptions{Count: 3000, Users: 500, Seed: 7, Throttle: 2000}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// 3000 events at 2000/s with a burst of 20: at least 1.49 s.
	if took := time.Since(start); sum.Sent != 3000 || took < 1490*time.Millisecond {
		t.Fatalf("sent %d in %s, want 3000 in at least 1.49 s", sum.Sent, took)
	}
}

// Cancelling (what SIGTERM does) stops generation but every event handed to the producer
// is flushed: the broker holds exactly what the summary reports as sent.
func TestProduceFlushesOnCancel(t *testing.T) {
	cfg := embeddedKafka(t)
	p, err := bus.NewProducer(cfg.Kafka, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	go func() { // cancel mid-stream, once events are flowing
		for p.Acked() < 1000 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	sum, err := Produce(ctx, p, ProduceOptions{Rate: 0, Users: 500, Seed: 9}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Sent == 0 {
		t.Fatal("nothing produced before cancel")
	}
	if got := endOffsets(t, cfg, event.Topics...); got != sum.Sent {
		t.Fatalf("broker holds %d events, summary says %d were sent", got, sum.Sent)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }
