// Package stream is `bytebasket stream`: over user-activity and transactions it computes
// event-time windows (1 minute with 5-minute and 1-hour rollups) per platform and over all
// platforms, the funnel, top-N products and categories, per-user sessions and the
// transactions feed, into the serving store.
//
// It is a role of internal/stateful, which owns the consumer group, the checkpoints and the
// fencing: this package is the per-partition state (state.go, sessions.go), how it is
// checkpointed (checkpoint.go) and how its rows reach the store (this file). Rows are whole
// values per (window, platform, partition) under deterministic keys, so a replay after a
// crash rewrites the same values, and the store fences them by the owner's claim.
package stream

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/bytebasket/bytebasket/internal/config"
	"github.com/bytebasket/bytebasket/internal/event"
	"github.com/bytebasket/bytebasket/internal/model"
	"github.com/bytebasket/bytebasket/internal/stateful"
	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
)

// Sink is the serving store as the stream writes it.
type Sink interface {
	// Write upserts every row of b. Rows are whole values under deterministic keys, so a
	// repeated or replayed batch leaves the same rows; a batch is not atomic (on error some
	// rows may be written) and nil means all are durable. A writer holding an older fence than
	// the partition's newest claim can never replace rows written under the newer one: the
	// store drops such writes or returns model.ErrFenced.
	Write(ctx context.Context, f model.Fence, b model.Batch) error
}

// Store is what the stream needs of a serving store: its rows and its checkpoints.
type Store interface {
	Sink
	stateful.Store
}

// Config tunes the stream.
type Config struct {
	Loop           stateful.Config
	Rules          Rules
	WriteRateLimit float64 // rows per second to the store; 0 = unlimited
}

// FromConfig maps the configuration onto the stream's.
func FromConfig(cfg config.Config) Config {
	s := cfg.Stream
	loop := stateful.DefaultConfig()
	loop.Group, loop.Topics, loop.Partitions = s.Group, event.Topics, cfg.Kafka.Partitions
	loop.FlushInterval, loop.CheckpointInterval = s.FlushInterval, s.CheckpointInterval
	if cfg.Store.Backend == "embedded" && s.EmbeddedFlushInterval > 0 {
		loop.FlushInterval = s.EmbeddedFlushInterval
	}
	loop.MaxClockSkew = s.MaxFuture
	// A copy of an event whose minute is final is late and not added anyway: ids need to
	// be remembered only while their minute is open (the archive keeps its own horizon).
	loop.DedupHorizon = s.AllowedLateness
	loop.ReadyMaxLag = s.ReadyMaxLag
	loop.ShutdownTimeout = s.ShutdownTimeout
	return Config{Loop: loop, Rules: Rules{AllowedLateness: s.AllowedLateness, SessionGap: s.SessionGap}, WriteRateLimit: s.WriteRateLimit}
}

// Processor is the stream role: a stateful loop over the stream's state. Create with New,
// then Run.
type Processor struct {
	*stateful.Loop
}

// New connects the consumer group. reg may be nil.
func New(cfg Config, kafka config.Kafka, store Store, reg prometheus.Registerer) (*Processor, error) {
	r := &role{rules: cfg.Rules, sink: store, limiter: newLimiter(cfg.WriteRateLimit), metrics: newRowMetrics(reg),
		writeTimeout: cfg.Loop.WriteTimeout, slowMaxBusy: cfg.Loop.CheckpointInterval}
	loop, err := stateful.New(cfg.Loop, kafka, r, store, reg)
	if err != nil {
		return nil, err
	}
	return &Processor{loop}, nil
}

// role is the stream as internal/stateful drives it.
type role struct {
	rules        Rules
	sink         Sink
	limiter      *rate.Limiter
	metrics      rowMetrics
	writeTimeout time.Duration // one attempt of a slow lane's write
	slowMaxBusy  time.Duration // a slow lane busy longer stalls the loop
}

func (r *role) Name() string         { return "stream" }
func (r *role) StateVersion() uint32 { return stateVersion }
func (r *role) NewTask(partition int32, _ stateful.Emit) stateful.Task {
	return &task{role: r, st: newPartitionState(partition, r.rules), slow: newSlowLane(r.metrics.slowFailures)}
}

// task is one partition: its state, the live batch that last failed to be written, and
// the lane its slow rows are written in.
type task struct {
	role    *role
	st      *partitionState
	pending *model.Batch
	slow    *slowLane
}

func (t *task) Apply(_ string, e *pb.Envelope) bool { return t.st.Apply(e) }
func (t *task) Late() int64                         { return t.st.late }

func (t *task) Changes(full bool, emit func(*pb.StateEntry)) { t.st.Changes(full, emit) }
func (t *task) Restore(e *pb.StateEntry) error               { return t.st.Restore(e) }

func (t *task) Writing() bool                            { return t.slow.busy() }
func (t *task) Durable() func(ctx context.Context) error { return t.slow.waiter() }
func (t *task) Close()                                   { t.slow.close() }

// Flush writes the live batch that failed last time, if any, then the minute rows due now;
// at Full it hands the slow rows to the slow lane (when the lane is idle; otherwise they
// wait for a later Full flush). All, before a partition is given up, writes everything here
// after the slow batch in flight.
func (t *task) Flush(ctx context.Context, f model.Fence, wm int64, now time.Time, level stateful.Level) error {
	if err := t.slow.failed(); err != nil {
		return err
	}
	// Backpressure: while the slow rows lag this far, the loop stalls (polling stops, not
	// ready) rather than let the state they are drained from grow.
	if d := t.slow.busyFor(); level != stateful.All && d > t.role.slowMaxBusy {
		return fmt.Errorf("partition %d: slow rows being written for %s", t.st.partition, d.Round(time.Millisecond))
	}
	if t.pending != nil {
		if err := t.write(ctx, f, *t.pending); err != nil {
			return err
		}
		t.pending = nil
	}
	t.st.Advance(wm)
	if level == stateful.All {
		if err := t.slow.waiter()(ctx); err != nil {
			return err
		}
		return t.writeOrKeep(ctx, f, t.st.Drain(now, stateful.All))
	}
	if err := t.writeOrKeep(ctx, f, t.st.DrainLive(now)); err != nil {
		return err
	}
	if level == stateful.Full && !t.slow.busy() {
		if b := t.st.DrainSlow(now, false); b.Len() > 0 {
			t.slow.start(t.st.partition, split(b, maxPartRows), t.role.writeTimeout, t.role.throttle,
				func(ctx context.Context, b model.Batch) error { return t.store(ctx, f, b) })
		}
	}
	return nil
}

// writeOrKeep writes b, keeping it to be written first by the next Flush if that fails.
func (t *task) writeOrKeep(ctx context.Context, f model.Fence, b model.Batch) error {
	if err := t.write(ctx, f, b); err != nil {
		t.pending = &b
		return err
	}
	return nil
}

func (t *task) write(ctx context.Context, f model.Fence, b model.Batch) error {
	if b.Len() == 0 {
		return nil
	}
	if err := t.role.throttle(ctx, b.Len()); err != nil {
		return err
	}
	return t.store(ctx, f, b)
}

// store writes b without waiting for the write rate limit.
func (t *task) store(ctx context.Context, f model.Fence, b model.Batch) error {
	if err := t.role.sink.Write(ctx, f, b); err != nil {
		return fmt.Errorf("store write (%d rows): %w", b.Len(), err)
	}
	countRows(t.role.metrics.rows, b)
	return nil
}

// newLimiter paces rowsPerSec (0: unlimited) in bursts of a tenth of a second.
func newLimiter(rowsPerSec float64) *rate.Limiter {
	if rowsPerSec <= 0 {
		return rate.NewLimiter(rate.Inf, 0)
	}
	return rate.NewLimiter(rate.Limit(rowsPerSec), int(max(rowsPerSec/10, 1)))
}

// throttle waits until rows may be written under the configured write rate limit.
func (r *role) throttle(ctx context.Context, rows int) error {
	if r.limiter.Limit() == rate.Inf {
		return nil
	}
	for rows > 0 { // WaitN refuses more than the burst at once
		n := min(rows, r.limiter.Burst())
		if err := r.limiter.WaitN(ctx, n); err != nil {
			return fmt.Errorf("write rate limit: %w", err)
		}
		rows -= n
	}
	return nil
}
