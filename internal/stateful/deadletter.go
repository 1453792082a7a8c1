package stateful

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/bytebasket/bytebasket/internal/event"
	"github.com/bytebasket/bytebasket/internal/retry"
)

// Reasons a record becomes a dead letter (the reason-class header and the metric label).
const (
	ReasonUndecodable    = "undecodable"
	ReasonUnknownPayload = "unknown_payload"
	ReasonBadEventTime   = "bad_event_time"
	ReasonMissingField   = "missing_field"
	ReasonNegativeAmount = "negative_amount"
	ReasonClockSkew      = "clock_skew"
	ReasonMisrouted      = "misrouted"
)

// ReasonOf classifies a decoding or validation error.
func ReasonOf(err error) string {
	switch {
	case errors.Is(err, event.ErrNoPayload):
		return ReasonUnknownPayload
	case errors.Is(err, event.ErrBadTime):
		return ReasonBadEventTime
	case errors.Is(err, event.ErrMissingField):
		return ReasonMissingField
	case errors.Is(err, event.ErrNegativeMoney):
		return ReasonNegativeAmount
	case errors.Is(err, event.ErrClockSkew):
		return ReasonClockSkew
	case errors.Is(err, errMisrouted):
		return ReasonMisrouted
	default:
		return ReasonUndecodable
	}
}

var errMisrouted = errors.New("record is not in its user's partition")

// deadLetters writes records that cannot be processed to the dead-letter topic, with the
// reason and their origin in headers. A failed send is kept and sent again until it is
// written: Flush returns only when every dead letter sent so far is durable, so a checkpoint
// that follows it never moves offsets past a record that is neither processed nor in the
// dead-letter topic. One failure never fails a later flush once its retry succeeds.
type deadLetters struct {
	client *kgo.Client
	topic  string

	mu     sync.Mutex
	failed []*kgo.Record
	// resending: failed dead letters a flush has taken to send again and not yet handed to
	// the client; a concurrent flush must not take their absence for success.
	resending int
}

func (d *deadLetters) send(r *kgo.Record, cause error) {
	d.produce(DeadLetter(d.topic, r, cause))
}

// DeadLetter is r as a record of the dead-letter topic (physical name topic): its key and
// value, the reason and its class, and where it came from, in headers. A transactional role
// may emit one itself (an event it could handle only in part).
func DeadLetter(topic string, r *kgo.Record, cause error) *kgo.Record {
	return &kgo.Record{
		Topic: topic, Key: r.Key, Value: r.Value,
		Headers: []kgo.RecordHeader{
			{Key: "reason", Value: []byte(cause.Error())},
			{Key: "reason-class", Value: []byte(ReasonOf(cause))},
			{Key: "source-topic", Value: []byte(r.Topic)},
			{Key: "source-partition", Value: []byte(strconv.Itoa(int(r.Partition)))},
			{Key: "source-offset", Value: []byte(strconv.FormatInt(r.Offset, 10))},
		},
	}
}

func (d *deadLetters) produce(dl *kgo.Record) {
	d.client.Produce(context.Background(), dl, func(r *kgo.Record, err error) {
		if err == nil {
			return
		}
		slog.Warn("dead letter not written yet; retried", "source-offset", string(headerValue(r, "source-offset")), "err", err)
		d.mu.Lock()
		d.failed = append(d.failed, r)
		d.mu.Unlock()
	})
}

// flush waits until every dead letter sent so far is written, sending failed ones again
// with backoff, until ctx ends.
func (d *deadLetters) flush(ctx context.Context) error {
	return retry.Until(ctx, retry.Backoff{Initial: 100 * time.Millisecond, Max: 5 * time.Second}, func() error {
		if err := d.client.Flush(ctx); err != nil {
			return fmt.Errorf("flush dead letters: %w", err)
		}
		d.mu.Lock()
		again, busy := d.failed, d.resending > 0
		d.failed = nil
		d.resending += len(again)
		d.mu.Unlock()
		if len(again) == 0 {
			if busy {
				return errors.New("dead letters are being sent again")
			}
			return nil
		}
		for _, r := range again {
			d.produce(r)
		}
		d.mu.Lock()
		d.resending -= len(again)
		d.mu.Unlock()
		return fmt.Errorf("%d dead letters were not written; sending them again", len(again))
	}, nil)
}

func headerValue(r *kgo.Record, key string) []byte {
	for _, h := range r.Headers {
		if h.Key == key {
			return h.Value
		}
	}
	return nil
}
