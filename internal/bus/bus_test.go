package bus

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bytebasket/bytebasket/internal/config"
	"github.com/bytebasket/bytebasket/internal/event"
	"github.com/bytebasket/bytebasket/internal/testenv"
	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func embeddedConfig(t *testing.T, dir string) (config.Config, *EmbeddedBroker) {
	t.Helper()
	b, err := StartEmbedded("127.0.0.1:0", dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Kafka.Brokers = []string{b.Addr()}
	return cfg, b
}

// realKafka points at deploy/local's Kafka with topics of this test's own, deleted after.
func realKafka(t *testing.T) config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.Kafka.Brokers = []string{testenv.Addr(t, testenv.Kafka)}
	cfg.Kafka.TopicPrefix = fmt.Sprintf("it-%s-%d-", t.Name(), time.Now().UnixNano())
	cfg.Kafka.TopicPrefix = strings.NewReplacer("/", "-", "_", "-").Replace(cfg.Kafka.TopicPrefix)
	t.Cleanup(func() {
		var names []string
		for _, s := range TopicSpecs(cfg) {
			names = append(names, s.Name)
		}
		if _, err := admin(t, cfg).DeleteTopics(context.Background(), names...); err != nil {
			t.Logf("delete test topics: %v", err)
		}
	})
	return cfg
}

// onBrokers runs fn against the embedded broker and against a real Kafka.
func onBrokers(t *testing.T, fn func(t *testing.T, cfg config.Config)) {
	t.Run("embedded", func(t *testing.T) {
		cfg, b := embeddedConfig(t, t.TempDir())
		defer b.Close()
		fn(t, cfg)
	})
	t.Run("kafka", func(t *testing.T) { fn(t, realKafka(t)) })
}

func admin(t *testing.T, cfg config.Config) *kadm.Client {
	t.Helper()
	opts, err := ClientOptions(cfg.Kafka)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

func TestEnsureTopicsIsIdempotentAndAppliesRetention(t *testing.T) {
	onBrokers(t, testEnsureTopics)
}

func testEnsureTopics(t *testing.T, cfg config.Config) {
	cfg.Retention.Days = 3
	ctx := context.Background()
	adm := admin(t, cfg)
	for range 2 {
		if err := EnsureTopics(ctx, adm, TopicSpecs(cfg)); err != nil {
			t.Fatal(err)
		}
	}
	infos, err := DescribeTopics(ctx, adm, TopicSpecs(cfg))
	if err != nil {
		t.Fatal(err)
	}
	for _, ti := range infos {
		parts, retention, policy := int32(4), fmt.Sprint(3*24*time.Hour.Milliseconds()), "delete"
		if strings.HasSuffix(ti.Name, event.TopicFraudRules) { // configuration: one partition, compacted, kept
			parts, retention, policy = 1, "-1", "compact"
		}
		if ti.Partitions != parts {
			t.Errorf("%s: %d partitions, want %d", ti.Name, ti.Partitions, parts)
		}
		if got := ti.Configs["retention.ms"]; got != retention {
			t.Errorf("%s: retention.ms %q, want %q", ti.Name, got, retention)
		}
		if got := ti.Configs["cleanup.policy"]; got != policy {
			t.Errorf("%s: cleanup.policy %q, want %q", ti.Name, got, policy)
		}
	}
	// A topic with too few partitions breaks key placement: it must be refused.
	short := TopicSpecs(cfg)[:1]
	short[0].Partitions = 8
	if err := EnsureTopics(ctx, adm, short); err == nil {
		t.Fatal("EnsureTopics accepted a topic with fewer partitions than wanted")
	}
}

// testEvents makes n events for users round-robin, alternating topics; the event id carries
// the user's sequence number so order can be checked after consuming.
func testEvents(n, users int) []*pb.Envelope {
	out := make([]*pb.Envelope, 0, n)
	seq := map[string]int{}
	t0 := time.Now().Add(-time.Hour)
	for i := range n {
		u := fmt.Sprintf("u-%d", i%users)
		e := &pb.Envelope{
			EventId: fmt.Sprintf("%s#%d", u, seq[u]), EventTime: timestamppb.New(t0.Add(time.Duration(i) * time.Millisecond)),
			SchemaVersion: event.SchemaVersion, Source: pb.Source_SOURCE_WEB, UserId: u, SessionId: "s",
		}
		if i%3 == 0 {
			e.Payload = &pb.Envelope_OrderPlaced{OrderPlaced: &pb.OrderPlaced{OrderId: e.EventId, Total: &pb.Money{AmountMinor: 100, Currency: "USD"}}}
		} else {
			e.Payload = &pb.Envelope_PageView{PageView: &pb.PageView{Url: "/"}}
		}
		seq[u]++
		out = append(out, e)
	}
	return out
}

type consumed struct {
	partition int32
	topic     string
	env       *pb.Envelope
}

// consumeAll reads want records from the event topics with a consumer group.
func consumeAll(t *testing.T, cfg config.Config, group string, want int) []consumed {
	t.Helper()
	opts, _ := ClientOptions(cfg.Kafka)
	var topics []string
	for _, n := range event.Topics {
		topics = append(topics, cfg.Kafka.Topic(n))
	}
	opts = append(opts, kgo.ConsumerGroup(group), kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []consumed
	for len(out) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d before timeout", len(out), want)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			e, err := event.Decode(r.Value)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if string(r.Key) != e.GetUserId() {
				t.Fatalf("key %q is not the user id %q", r.Key, e.GetUserId())
			}
			out = append(out, consumed{r.Partition, strings.TrimPrefix(r.Topic, cfg.Kafka.TopicPrefix), e})
		})
	}
	// Nothing beyond what was produced may show up.
	extra, cancel2 := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel2()
	if n := cl.PollFetches(extra).NumRecords(); n > 0 {
		t.Fatalf("%d records beyond the %d produced", n, want)
	}
	return out
}

func TestProducerKeysUsersToOnePartitionInOrder(t *testing.T) {
	onBrokers(t, func(t *testing.T, cfg config.Config) { produceAndCheck(t, cfg, 6000) })
}

// The embedded broker persists: after a restart on the same directory every event is there.
func TestEmbeddedBrokerPersists(t *testing.T) {
	dir := t.TempDir()
	cfg, b := embeddedConfig(t, dir)
	const n = 3000
	produceAndCheck(t, cfg, n)
	b.Close()
	b2, err := StartEmbedded("127.0.0.1:0", dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	cfg.Kafka.Brokers = []string{b2.Addr()}
	if again := consumeAll(t, cfg, "test-after-restart", n); len(again) != n {
		t.Fatalf("after restart %d events, want %d", len(again), n)
	}
}

// produceAndCheck produces n events of 97 users and reads them back with a consumer group:
// exactly n arrive, each user's events in one partition, in the order produced.
func produceAndCheck(t *testing.T, cfg config.Config, n int) {
	ctx := context.Background()
	if err := EnsureTopics(ctx, admin(t, cfg), TopicSpecs(cfg)); err != nil {
		t.Fatal(err)
	}
	p, err := NewProducer(cfg.Kafka, nil)
	if err != nil {
		t.Fatal(err)
	}
	const users = 97
	events := testEvents(n, users)
	for _, e := range events {
		if err := p.Send(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if p.Acked() != int64(n) {
		t.Fatalf("acked %d of %d", p.Acked(), n)
	}

	got := consumeAll(t, cfg, "test-order", n)
	partOf := map[string]int32{}
	nextSeq := map[string]map[string]int{} // topic -> user -> index into that user's events on that topic
	wantSeq := map[string]map[string][]string{}
	for _, e := range events {
		tp := event.TopicOf(event.KindOf(e))
		if wantSeq[tp] == nil {
			wantSeq[tp], nextSeq[tp] = map[string][]string{}, map[string]int{}
		}
		wantSeq[tp][e.UserId] = append(wantSeq[tp][e.UserId], e.EventId)
	}
	partitionsUsed := map[int32]bool{}
	for _, c := range got {
		u := c.env.GetUserId()
		if p, ok := partOf[u]; ok && p != c.partition {
			t.Fatalf("user %s in partitions %d and %d", u, p, c.partition)
		}
		partOf[u] = c.partition
		partitionsUsed[c.partition] = true
		i := nextSeq[c.topic][u]
		if want := wantSeq[c.topic][u][i]; c.env.GetEventId() != want {
			t.Fatalf("user %s on %s: event %d is %s, want %s", u, c.topic, i, c.env.GetEventId(), want)
		}
		nextSeq[c.topic][u]++
	}
	if len(partitionsUsed) != 4 {
		t.Fatalf("97 users spread over %d partitions, want 4", len(partitionsUsed))
	}
}

func TestSendRejectsEnvelopeWithoutPayload(t *testing.T) {
	cfg, b := embeddedConfig(t, "")
	defer b.Close()
	p, err := NewProducer(cfg.Kafka, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	if err := p.Send(context.Background(), &pb.Envelope{EventId: "x", UserId: "u"}); err == nil {
		t.Fatal("envelope without payload was sent")
	}
}

// The embedded log bound is shared evenly by every partition of every topic; 0 is no bound.
func TestEmbeddedPartitionBytes(t *testing.T) {
	cfg := config.Default()
	var parts int64
	for _, s := range TopicSpecs(cfg) {
		parts += int64(s.Partitions)
	}
	if got := EmbeddedPartitionBytes(cfg); got != cfg.Kafka.EmbeddedLogBytes/parts || got*parts > cfg.Kafka.EmbeddedLogBytes {
		t.Fatalf("%d bytes per partition for %d partitions under %d", got, parts, cfg.Kafka.EmbeddedLogBytes)
	}
	cfg.Kafka.EmbeddedLogBytes = 0
	if got := EmbeddedPartitionBytes(cfg); got != 0 {
		t.Fatalf("no bound gave %d bytes per partition", got)
	}
}

// Only records below the log start are lost; a gap above it (aborted transactional records,
// filtered under read_committed) is not.
func TestTrimmed(t *testing.T) {
	for _, c := range []struct {
		next, first, logStart, want int64
	}{
		{next: 5, first: 45, logStart: 45, want: 40}, // all of [5, 45) removed
		{next: 5, first: 60, logStart: 45, want: 40}, // removed up to 45; 45..59 aborted
		{next: 5, first: 30, logStart: 0, want: 0},   // a gap, nothing removed
		{next: 50, first: 50, logStart: 45, want: 0}, // retention behind the reader
		{next: -1, first: 45, logStart: 45, want: 0}, // position unknown
	} {
		if got := Trimmed(c.next, c.first, c.logStart); got != c.want {
			t.Errorf("Trimmed(%d, %d, %d) = %d, want %d", c.next, c.first, c.logStart, got, c.want)
		}
	}
}
