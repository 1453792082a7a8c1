package stream

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bytebasket/bytebasket/internal/model"
	"github.com/bytebasket/bytebasket/internal/retry"
)

// slowLane writes one partition's slow rows (rollups, sessions, session windows, feeds)
// beside the loop, one batch at a time and in order, so that a big write never holds up the
// minute rows readers watch. Its rows share no key with the live rows (DrainLive,
// DrainSlow), so the two lanes never replace each other's values whatever order their
// writes land in. A failed write is retried until it succeeds, the partition is claimed by
// another owner (the error sticks) or the lane is closed.
type slowLane struct {
	ctx      context.Context
	cancel   context.CancelFunc
	failures prometheus.Counter

	mu   sync.Mutex
	done chan struct{} // closed when the batch in flight is written; nil when idle
	err  error         // why the lane stopped (model.ErrFenced, or closed)
}

func newSlowLane(failures prometheus.Counter) *slowLane {
	ctx, cancel := context.WithCancel(context.Background())
	return &slowLane{ctx: ctx, cancel: cancel, failures: failures}
}

// busy reports whether a batch is being written.
func (l *slowLane) busy() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.done != nil
}

// failed is why the lane stopped, or nil.
func (l *slowLane) failed() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// start writes a batch beside the caller; the lane must be idle.
func (l *slowLane) start(partition int32, rows int, timeout time.Duration, write func(ctx context.Context) error) {
	done := make(chan struct{})
	l.mu.Lock()
	l.done = done
	l.mu.Unlock()
	go func() {
		err := retry.Until(l.ctx, retry.Backoff{Initial: 100 * time.Millisecond, Max: 10 * time.Second}, func() error {
			ctx, cancel := context.WithTimeout(l.ctx, timeout)
			defer cancel()
			err := write(ctx)
			if errors.Is(err, model.ErrFenced) {
				return retry.Stop(err)
			}
			return err
		}, func(err error, wait time.Duration) {
			l.failures.Inc()
			slog.Warn("slow rows not written; retrying", "partition", partition, "rows", rows, "in", wait, "err", err)
		})
		l.mu.Lock()
		l.done = nil
		if err != nil && l.err == nil {
			l.err = err
		}
		l.mu.Unlock()
		close(done)
	}()
}

// waiter returns a wait for the batch in flight now (if any) to be written.
func (l *slowLane) waiter() func(ctx context.Context) error {
	l.mu.Lock()
	done := l.done
	l.mu.Unlock()
	return func(ctx context.Context) error {
		if done != nil {
			select {
			case <-done:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return l.failed()
	}
}

// close stops the lane: a batch in flight is abandoned (the partition is gone).
func (l *slowLane) close() { l.cancel() }
