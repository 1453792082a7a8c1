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
	"google.golang.org/protobuf/proto"

	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
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

// --skip continues a run: the same seed and start with Skip N send exactly the events a run
// of more than N sent after its Nth, labels and duplicated copies included.
func TestProduceSkipContinues(t *testing.T) {
	start := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	opts := ProduceOptions{Count: 3000, Users: 200, Seed: 5, Start: start, Labels: true, FraudRate: 0.2, Duplicates: 0.1}
	run := func(opts ProduceOptions) (ProduceSummary, map[string]int) {
		cfg := embeddedKafka(t) // a broker of its own: what this run sent
		p, err := bus.NewProducer(cfg.Kafka, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close(context.Background())
		sum, err := Produce(context.Background(), p, opts, nil)
		if err != nil {
			t.Fatal(err)
		}
		return sum, readRecords(t, cfg, sum.Sent+sum.Labels)
	}
	whole, all := run(opts)
	opts.Skip, opts.Count = 1000, 2000
	rest, tail := run(opts)
	if !rest.Last.Equal(whole.Last) || !rest.First.After(whole.First) || rest.Duplicates == 0 {
		t.Fatalf("continuation: %s; whole run: %s", rest, whole)
	}
	// Every record of the continuation is one of the whole run's, as many times.
	for id, n := range tail {
		if all[id] != n {
			t.Fatalf("record %q sent %d times by the continuation, %d by the whole run", id, n, all[id])
		}
	}
	if len(tail) >= len(all) || len(tail) < len(all)/2 {
		t.Fatalf("%d distinct records continued of %d", len(tail), len(all))
	}
}

// readRecords counts the n records of the event and label topics by what they are: a label
// by its value, an event by its id (the producer stamps an ingest time).
func readRecords(t *testing.T, cfg config.Config, n int64) map[string]int {
	t.Helper()
	opt, _ := bus.ClientOptions(cfg.Kafka)
	cl, err := kgo.NewClient(append(opt, kgo.ConsumeTopics(append(event.Topics, event.TopicSimLabels)...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	seen := map[string]int{}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for got := int64(0); got < n && ctx.Err() == nil; {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			id := string(r.Value)
			var e pb.Envelope
			if r.Topic != event.TopicSimLabels && proto.Unmarshal(r.Value, &e) == nil {
				id = e.GetEventId()
			}
			seen[r.Topic+"/"+string(r.Key)+"/"+id]++
			got++
		})
	}
	return seen
}
