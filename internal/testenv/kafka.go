package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ReadCommitted returns every committed record of topic on the brokers at addr, as a
// read_committed consumer sees them, reading until each partition's last stable offset at
// the call (transaction markers included in the count, not returned).
func ReadCommitted(t testing.TB, addr, topic string, d time.Duration) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.KeepControlRecords()) // so the position reaches the end offset past the last marker
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListCommittedOffsets(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var out []*kgo.Record
	pos := map[int32]int64{} // next offset per partition
	for {
		done := true
		ends.Each(func(o kadm.ListedOffset) {
			if pos[o.Partition] < o.Offset {
				done = false
			}
		})
		if done {
			return out
		}
		if ctx.Err() != nil {
			t.Fatalf("%s not read to its end within %s: ends %v, at %v", topic, d, ends, pos)
		}
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			pos[r.Partition] = r.Offset + 1
			if !r.Attrs.IsControl() {
				out = append(out, r)
			}
		})
	}
}
