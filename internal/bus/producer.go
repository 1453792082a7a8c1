package bus

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bytebasket/bytebasket/internal/config"
	"github.com/bytebasket/bytebasket/internal/event"
	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Producer writes envelopes to their topics, keyed by user id. The franz-go client is
// idempotent with acks=all, so a retried batch is never written twice and an acknowledged
// record survives the loss of a broker (given min.insync.replicas).
type Producer struct {
	client *kgo.Client
	now    func() time.Time
	prefix string // topic prefix from config

	acked    atomic.Int64
	failed   atomic.Int64
	rejected atomic.Int64
	byTopic  sync.Map // topic -> *atomic.Int64 of acked records

	errMu   sync.Mutex
	lastErr error

	metrics producerMetrics
}

type producerMetrics struct {
	produced *prometheus.CounterVec
	failed   *prometheus.CounterVec
}

// NewProducer connects a producer. reg may be nil (no metrics); extra options go last
// (a partitioner, in tests of what other producers do).
func NewProducer(cfg config.Kafka, reg prometheus.Registerer, extra ...kgo.Opt) (*Producer, error) {
	opts, err := ClientOptions(cfg)
	if err != nil {
		return nil, err
	}
	opts = append(opts,
		kgo.RequiredAcks(kgo.AllISRAcks()), // also the franz-go default; stated because it is a contract
		kgo.ProducerBatchCompression(compressionCodecs(cfg.Compression)...),
		kgo.ProducerLinger(5*time.Millisecond),
		kgo.RecordRetries(20),
		kgo.MaxBufferedRecords(50_000), // Send blocks past this: bounded memory under a slow broker
	)
	p := &Producer{now: time.Now, prefix: cfg.TopicPrefix}
	if reg != nil {
		opts = append(opts, kgo.WithHooks(kprom.NewMetrics("bytebasket_kafka", kprom.Registerer(reg), kprom.WithClientLabel())))
		p.metrics = newProducerMetrics(reg)
	}
	cl, err := kgo.NewClient(append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka producer: %w", err)
	}
	p.client = cl
	return p, nil
}

func newProducerMetrics(reg prometheus.Registerer) producerMetrics {
	m := producerMetrics{
		produced: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bytebasket_events_produced_total", Help: "Events acknowledged by Kafka, by topic and kind.",
		}, []string{"topic", "kind"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bytebasket_events_produce_failed_total", Help: "Events Kafka did not acknowledge after retries.",
		}, []string{"topic"}),
	}
	reg.MustRegister(m.produced, m.failed)
	return m
}

// Partitioner returns the producer option for a partitioner by name: "kafka" (murmur2 of
// the key, Kafka's and ByteBasket's default) or "librdkafka" (crc32 of the key, librdkafka's
// consistent_random), which puts users in other partitions than ByteBasket expects.
func Partitioner(name string) (kgo.Opt, error) {
	switch name {
	case "", "kafka":
		return kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)), nil
	case "librdkafka":
		return kgo.RecordPartitioner(kgo.StickyKeyPartitioner(kgo.SaramaHasher(crc32.ChecksumIEEE))), nil
	}
	return nil, fmt.Errorf("partitioner %q is not one of kafka, librdkafka", name)
}

// Client exposes the underlying franz-go client (for pings and admin in the same connection pool).
func (p *Producer) Client() *kgo.Client { return p.client }

// Send stamps the ingest time, encodes e and produces it asynchronously to its topic.
// It blocks only while the client's buffer is full, until ctx ends. After Flush, every sent
// record is exactly one of Acked, Rejected (ctx ended before it was buffered) or failed (Err).
func (p *Producer) Send(ctx context.Context, e *pb.Envelope) error {
	e.IngestTime = timestamppb.New(p.now())
	kind := event.KindOf(e)
	if kind == event.KindUnknown {
		return fmt.Errorf("produce %s: %w", e.GetEventId(), event.ErrNoPayload)
	}
	val, err := event.AppendEncode(nil, e)
	if err != nil {
		return err
	}
	return p.produce(ctx, event.TopicOf(kind), string(kind), e.GetUserId(), val)
}

// SendLabel writes a simulator ground-truth label to the side channel, keyed like the event.
func (p *Producer) SendLabel(ctx context.Context, l *pb.FraudLabel) error {
	val, err := proto.Marshal(l)
	if err != nil {
		return fmt.Errorf("encode label: %w", err)
	}
	return p.produce(ctx, event.TopicSimLabels, "fraud_label", l.GetUserId(), val)
}

func (p *Producer) produce(ctx context.Context, topic, kind, key string, val []byte) error {
	rec := &kgo.Record{Topic: p.prefix + topic, Key: []byte(key), Value: val}
	p.client.Produce(ctx, rec, func(r *kgo.Record, err error) {
		// ctx ended while the record waited for buffer space: it was never buffered, so it is
		// the caller's shutdown, not a lost record.
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			p.rejected.Add(1)
			return
		}
		if err != nil {
			p.failed.Add(1)
			p.errMu.Lock()
			p.lastErr = fmt.Errorf("produce to %s: %w", r.Topic, err)
			p.errMu.Unlock()
			if p.metrics.failed != nil {
				p.metrics.failed.WithLabelValues(r.Topic).Inc()
			}
			return
		}
		p.acked.Add(1)
		c, _ := p.byTopic.LoadOrStore(topic, new(atomic.Int64))
		c.(*atomic.Int64).Add(1)
		if p.metrics.produced != nil {
			p.metrics.produced.WithLabelValues(r.Topic, kind).Inc()
		}
	})
	return nil
}

// Flush waits until every record sent so far is acknowledged or has failed.
func (p *Producer) Flush(ctx context.Context) error {
	if err := p.client.Flush(ctx); err != nil {
		return fmt.Errorf("flush producer: %w", err)
	}
	return p.Err()
}

// Err returns the last delivery error, if any record failed.
func (p *Producer) Err() error {
	p.errMu.Lock()
	defer p.errMu.Unlock()
	if p.lastErr != nil {
		return fmt.Errorf("%d records failed, last: %w", p.failed.Load(), p.lastErr)
	}
	return nil
}

// Acked is the number of records Kafka acknowledged.
func (p *Producer) Acked() int64 { return p.acked.Load() }

// Rejected is the number of records refused because ctx ended before they were buffered.
func (p *Producer) Rejected() int64 { return p.rejected.Load() }

// AckedByTopic returns acknowledged records per logical topic (without the prefix).
func (p *Producer) AckedByTopic() map[string]int64 {
	out := map[string]int64{}
	p.byTopic.Range(func(k, v any) bool {
		out[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	return out
}

// Close flushes what is buffered (bounded by ctx) and closes the connection.
func (p *Producer) Close(ctx context.Context) error {
	err := p.Flush(ctx)
	p.client.Close()
	return err
}
