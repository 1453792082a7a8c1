package bus

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/bytebasket/bytebasket/internal/config"
)

// ReadAll calls fn with every committed record of topic (a physical name) up to each
// partition's last stable offset at the call, as a read_committed consumer sees them.
func ReadAll(ctx context.Context, kafka config.Kafka, topic string, fn func(*kgo.Record) error) error {
	opts, err := ClientOptions(kafka)
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(append(opts, kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.KeepControlRecords())...) // so a position reaches the end past the last marker
	if err != nil {
		return fmt.Errorf("read %s: %w", topic, err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListCommittedOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return fmt.Errorf("read %s: end offsets: %w", topic, err)
	}
	pos := map[int32]int64{} // next offset per partition
	for {
		done := true
		ends.Each(func(o kadm.ListedOffset) {
			if pos[o.Partition] < o.Offset {
				done = false
			}
		})
		if done {
			return nil
		}
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("read %s to its end %v (at %v): %w", topic, ends, pos, err)
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) { ferr = err })
		if ferr != nil {
			return fmt.Errorf("read %s: %w", topic, ferr)
		}
		var cbErr error
		fs.EachRecord(func(r *kgo.Record) {
			pos[r.Partition] = r.Offset + 1
			if !r.Attrs.IsControl() && cbErr == nil {
				cbErr = fn(r)
			}
		})
		if cbErr != nil {
			return cbErr
		}
	}
}
