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
// beside the loop, one batch at a time and in order (a big batch in parts of at most
// maxPartRows, each written within the write timeout), so that a big write never holds up the
// minute rows readers watch. Its rows share no key with the live rows (DrainLive,
// DrainSlow), so the two lanes never replace each other's values whatever order their
// writes land in. A failed write is retried until it succeeds, the partition is claimed by
// another owner (the error sticks) or the lane is closed.
type slowLane struct {
	ctx      context.Context
	cancel   context.CancelFunc
	failures prometheus.Counter

	mu    sync.Mutex
	done  chan struct{} // closed when the batch in flight is written; nil when idle
	since time.Time     // when the batch in flight started
	err   error         // why the lane stopped (model.ErrFenced, or closed)
}

func newSlowLane(failures prometheus.Counter) *slowLane {
	ctx, cancel := context.WithCancel(context.Background())
	return &slowLane{ctx: ctx, cancel: cancel, failures: failures}
}

// busy reports whether a batch is being written.
func (l *slowLane) busy() bool { return l.busyFor() > 0 }

// busyFor is how long the batch in flight has been written for (0: idle).
func (l *slowLane) busyFor() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done == nil {
		return 0
	}
	return max(time.Since(l.since), time.Nanosecond)
}

// failed is why the lane stopped, or nil.
func (l *slowLane) failed() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// start writes the parts of a batch one after another beside the caller, each attempt
// within timeout; the lane must be idle. throttle (the write rate limit) is waited for
// before each part, outside its attempts' timeout.
func (l *slowLane) start(partition int32, parts []model.Batch, timeout time.Duration,
	throttle func(ctx context.Context, rows int) error, write func(ctx context.Context, b model.Batch) error) {
	done := make(chan struct{})
	l.mu.Lock()
	l.done, l.since = done, time.Now()
	l.mu.Unlock()
	go func() {
		var err error
		for _, b := range parts {
			if err = throttle(l.ctx, b.Len()); err != nil {
				break
			}
			err = retry.Until(l.ctx, retry.Backoff{Initial: 100 * time.Millisecond, Max: 10 * time.Second}, func() error {
				ctx, cancel := context.WithTimeout(l.ctx, timeout)
				defer cancel()
				err := write(ctx, b)
				if errors.Is(err, model.ErrFenced) {
					return retry.Stop(err)
				}
				return err
			}, func(err error, wait time.Duration) {
				l.failures.Inc()
				slog.Warn("slow rows not written; retrying", "partition", partition, "rows", b.Len(), "in", wait, "err", err)
			})
			if err != nil {
				break
			}
		}
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

// maxPartRows bounds one write of the slow lane: a batch grows with a backlog (a replay
// after a restart applies events far faster than they arrived), and one write of it all
// could outlast every attempt's timeout.
const maxPartRows = 2000

// split cuts b into parts of at most n rows, replaced session spans first: a span's delete
// never lands after the row written in its place.
func split(b model.Batch, n int) []model.Batch {
	if b.Len() <= n {
		return []model.Batch{b}
	}
	var parts []model.Batch
	var cur model.Batch
	next := func() {
		if cur.Len() >= n {
			parts, cur = append(parts, cur), model.Batch{}
		}
	}
	for _, x := range b.ReplacedSessions {
		cur.ReplacedSessions = append(cur.ReplacedSessions, x)
		next()
	}
	for _, x := range b.Windows {
		cur.Windows = append(cur.Windows, x)
		next()
	}
	for _, x := range b.Tops {
		cur.Tops = append(cur.Tops, x)
		next()
	}
	for _, x := range b.Sessions {
		cur.Sessions = append(cur.Sessions, x)
		next()
	}
	for _, x := range b.SessionWindows {
		cur.SessionWindows = append(cur.SessionWindows, x)
		next()
	}
	for _, x := range b.TxFeeds {
		cur.TxFeeds = append(cur.TxFeeds, x)
		next()
	}
	if cur.Len() > 0 {
		parts = append(parts, cur)
	}
	return parts
}
