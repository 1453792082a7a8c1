package streamtest

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bytebasket/bytebasket/internal/event"
	"github.com/bytebasket/bytebasket/internal/model"
	"github.com/bytebasket/bytebasket/internal/store/cassandra"
	"github.com/bytebasket/bytebasket/internal/testenv"
	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
)

// BenchmarkStreamMillionUsers: one million distinct users active within one hour (a page
// view and a product view each, a cart add for one in twenty), read by one stream instance
// on Kafka and Cassandra. It reports the state a restore reads, the checkpoints' sizes, the
// process's memory, and, after a kill -9, the time to restore every partition and catch up.
//
//	go test -run '^$' -bench MillionUsers -benchtime 1x -timeout 30m ./test/stream/
func BenchmarkStreamMillionUsers(b *testing.B) {
	for b.Loop() {
		millionUsers(b)
	}
}

func millionUsers(b *testing.B) {
	const users = 1_000_000
	e := newEnv(b)
	ctx := context.Background()
	cl, err := kgo.NewClient(kgo.SeedBrokers(testenv.Addr(b, testenv.Kafka)), kgo.ProducerLinger(20*time.Millisecond),
		kgo.MaxBufferedRecords(200_000))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	prefix := ""
	for _, v := range e.vars {
		if p, ok := cutPrefix(v, "BYTEBASKET_KAFKA_TOPIC_PREFIX="); ok {
			prefix = p
		}
	}
	e.run("topics", "create")
	// Users in time order across the hour that ended a minute ago: a window per minute.
	start := time.Now().Add(-61 * time.Minute).Truncate(time.Minute)
	t0 := time.Now()
	for i := range users {
		at := start.Add(time.Duration(i) * time.Hour / users)
		u := fmt.Sprintf("usr_%07d", i)
		evs := []*pb.Envelope{
			{EventId: u + "-pv", Payload: &pb.Envelope_PageView{PageView: &pb.PageView{Url: "/"}}},
			{EventId: u + "-prv", Payload: &pb.Envelope_ProductView{ProductView: &pb.ProductView{ProductId: fmt.Sprintf("prd_%05d", i%20_000), CategoryId: fmt.Sprintf("cat_%03d", i%300), PriceMinor: 1999, Currency: "EUR"}}},
		}
		if i%20 == 0 {
			evs = append(evs, &pb.Envelope{EventId: u + "-ca", Payload: &pb.Envelope_CartAdd{CartAdd: &pb.CartAdd{ProductId: fmt.Sprintf("prd_%05d", i%20_000), Quantity: 1, UnitPriceMinor: 1999, Currency: "EUR"}}})
		}
		for j, ev := range evs {
			ev.UserId, ev.SessionId, ev.Source, ev.SchemaVersion = u, u+"-s", pb.Source_SOURCE_WEB, 1
			ev.EventTime = timestamppb.New(at.Add(time.Duration(j) * time.Second))
			v, err := event.AppendEncode(nil, ev)
			if err != nil {
				b.Fatal(err)
			}
			cl.Produce(ctx, &kgo.Record{Topic: prefix + event.TopicUserActivity, Key: []byte(u), Value: v}, func(_ *kgo.Record, err error) {
				if err != nil {
					b.Error(err)
				}
			})
		}
	}
	if err := cl.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.Logf("produced %d users' events in %s", users, time.Since(t0).Round(time.Second))

	c, base := e.startStream()
	t1 := time.Now()
	awaitCaughtUp(b, base, 20*time.Minute)
	caughtUp := time.Since(t1)
	st, err := cassandra.NewStore(ctx, e.cfg.Cassandra)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	var active int64
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline) && active != users; time.Sleep(time.Second) {
		rows, err := st.Windows(ctx, model.Hour, start.Add(-time.Hour), start.Add(2*time.Hour))
		if err != nil {
			b.Fatal(err)
		}
		active = 0
		for _, w := range rows {
			if w.Key.Platform == model.AllPlatforms {
				active += w.ActiveUsers
			}
		}
	}
	if active < users {
		b.Fatalf("hour windows count %d distinct users, want %d", active, users)
	}
	time.Sleep(6 * time.Second) // every partition checkpoints what it holds
	m := scrape(b, base)
	stateBytes := sumPrefix(m, "bytebasket_stream_state_bytes{")
	rss := m["process_resident_memory_bytes"]
	ckptMax := quantile(m, "bytebasket_stream_checkpoint_bytes", "", 1)
	ckptP50 := quantile(m, "bytebasket_stream_checkpoint_bytes", "", 0.5)

	// kill -9 and restart: every partition claims, restores and catches up.
	if err := c.Process.Signal(syscall.SIGKILL); err != nil {
		b.Fatal(err)
	}
	_, _ = c.Process.Wait()
	t2 := time.Now()
	c2, base2 := e.startStream()
	awaitCaughtUp(b, base2, 10*time.Minute)
	restart := time.Since(t2)
	m2 := scrape(b, base2)
	restore := m2["bytebasket_stream_restore_seconds_sum"] / max(m2["bytebasket_stream_restore_seconds_count"], 1)
	restoreMax := quantile(m2, "bytebasket_stream_restore_seconds", "", 1)
	_ = c2.Process.Signal(syscall.SIGTERM)
	_, _ = c2.Process.Wait()

	b.ReportMetric(float64(users)/caughtUp.Seconds(), "users/s")
	b.ReportMetric(stateBytes/(1<<20), "state-MiB")
	b.ReportMetric(stateBytes/users, "state-B/user")
	b.ReportMetric(ckptP50/1024, "checkpoint-p50-KiB")
	b.ReportMetric(ckptMax/1024, "checkpoint-max-KiB")
	b.ReportMetric(rss/(1<<20), "RSS-MiB")
	b.ReportMetric(restore, "restore-s/partition")
	b.ReportMetric(restoreMax, "restore-max-s")
	b.ReportMetric(restart.Seconds(), "kill-to-caught-up-s")
}

func cutPrefix(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && s[:len(prefix)] == prefix {
		return s[len(prefix):], true
	}
	return "", false
}
