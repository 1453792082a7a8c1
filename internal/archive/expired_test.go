package archive

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bytebasket/bytebasket/internal/bus/bustest"
	"github.com/bytebasket/bytebasket/internal/event"
	"github.com/bytebasket/bytebasket/internal/lake/local"
	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
)

// Records the broker's retention removed while the archiver was stopped are counted and
// reported as missing from the lake; the records after them are archived.
func TestRecordsTrimmedUnreadAreCounted(t *testing.T) {
	br, cfg, cl := bustest.Embedded(t, 1) // every batch is over the bound
	now := time.Now().Add(-time.Hour)
	view := func(prefix string, n int) {
		for i := range n { // one batch each
			e := &pb.Envelope{EventId: fmt.Sprintf("%s-%d", prefix, i), EventTime: timestamppb.New(now), SchemaVersion: 1,
				Source: pb.Source_SOURCE_WEB, UserId: "u-1", SessionId: "s", Payload: &pb.Envelope_PageView{PageView: &pb.PageView{Url: "/"}}}
			b, err := event.AppendEncode(nil, e)
			if err != nil {
				t.Fatal(err)
			}
			if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: event.TopicUserActivity, Key: []byte("u-1"), Value: b}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	lk, err := local.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	run := func(until func(a *Archiver) bool) *Archiver {
		a, err := New(FromConfig(cfg), &cfg.Kafka, lk, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- a.Run(ctx) }()
		deadline := time.Now().Add(20 * time.Second)
		for !until(a) && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		return a
	}
	events := func(a *Archiver) float64 {
		return testutil.ToFloat64(a.m.events.WithLabelValues(event.TopicUserActivity))
	}

	view("first", 5)
	if a := run(func(a *Archiver) bool { return events(a) == 5 }); events(a) != 5 {
		t.Fatalf("archived %v of the first 5 events", events(a))
	}
	view("unread", 40)
	br.ApplyRetention()
	view("after", 7)
	expired := func(a *Archiver) float64 {
		return testutil.ToFloat64(a.m.expired.WithLabelValues(event.TopicUserActivity))
	}
	a := run(func(a *Archiver) bool { return expired(a) == 40 && events(a) == 7 })
	if expired(a) != 40 || events(a) != 7 {
		t.Fatalf("records_expired_total %v, events %v; want the 40 trimmed unread, then the 7 after them", expired(a), events(a))
	}
}
