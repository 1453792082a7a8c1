// Package stream is `bytebasket stream`: a consumer group over user-activity and
// transactions that computes event-time windows (1 minute with 5-minute and 1-hour rollups),
// the funnel, top-N products and categories, and per-user sessions, into the serving store.
//
// Exactness under failure: each Kafka partition (of both topics: they are co-partitioned by
// user) is aggregated on its own. Rows are whole values per (window, platform, partition),
// written by upsert. Every checkpoint interval the partition's state is snapshotted into the
// store together with the offsets it covers, after the rows; Kafka offsets are committed only
// then. A restarted processor restores the snapshot and replays from its offsets, which
// rewrites the same values: a kill -9 at any moment changes nothing in the final numbers.
package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bytebasket/bytebasket/internal/bus"
	"github.com/bytebasket/bytebasket/internal/config"
	"github.com/bytebasket/bytebasket/internal/event"
	"github.com/bytebasket/bytebasket/internal/model"
	"github.com/bytebasket/bytebasket/internal/retry"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/plugin/kprom"
	"golang.org/x/time/rate"
)

// Sink is the serving store as the processor needs it.
type Sink interface {
	// Write upserts the batch's rows and then, if present, its checkpoint.
	Write(ctx context.Context, b model.Batch) error
	// LoadCheckpoint returns the partition's last checkpoint, nil if there is none.
	LoadCheckpoint(ctx context.Context, group string, partition int32) (*model.Checkpoint, error)
}

// Config tunes the processor.
type Config struct {
	Group              string
	Rules              Rules
	FlushInterval      time.Duration // how often changed rows are written (freshness)
	CheckpointInterval time.Duration // how often state is snapshotted (replay after a crash)
	MaxFuture          time.Duration // events further ahead of the wall clock are dead letters
	IdleTimeout        time.Duration // a topic partition silent this long does not hold the watermark back
	WriteRateLimit     float64       // rows per second to the store; 0 = unlimited
}

// DefaultConfig is what `bytebasket stream` runs with unless told otherwise.
func DefaultConfig() Config {
	return Config{
		Group:              "bytebasket-stream",
		Rules:              Rules{AllowedLateness: 2 * time.Minute, SessionGap: 30 * time.Minute},
		FlushInterval:      250 * time.Millisecond,
		CheckpointInterval: 5 * time.Second,
		MaxFuture:          time.Hour,
		IdleTimeout:        10 * time.Second,
	}
}

// fullDrainInterval is how often each partition's rollup windows, rankings longer than a
// minute and sessions are written; minute windows go out at every flush.
const fullDrainInterval = time.Second

// Processor consumes and aggregates. Create with New, then Run.
type Processor struct {
	cfg     Config
	prefix  string
	sink    Sink
	client  *kgo.Client
	limiter *rate.Limiter
	m       metrics

	mu       sync.Mutex // guards everything below; rebalance callbacks take it too
	parts    map[int32]*partitionState
	lastSeen map[string]time.Time // "topic/partition" -> wall time of the last record
	eventsM  []int64              // event times since the last flush, for latency
	lastFull time.Time            // last flush that gave a partition a full drain
	fullTurn int                  // index of the partition whose full drain was last

	ckptMu   sync.Mutex          // guards lastCkpt and ckptBusy: checkpoint writers run beside the loop
	lastCkpt map[int32]time.Time // per partition: checkpoints are staggered
	ckptBusy map[int32]bool      // a checkpoint of the partition is being written
	ckptWG   sync.WaitGroup

	assigned  atomic.Bool
	dlqFailed atomic.Int64
}

// New connects the consumer group. reg may be nil.
func New(cfg Config, kafka config.Kafka, sink Sink, reg prometheus.Registerer) (*Processor, error) {
	p := &Processor{cfg: cfg, prefix: kafka.TopicPrefix, sink: sink, parts: map[int32]*partitionState{}, lastSeen: map[string]time.Time{}, lastCkpt: map[int32]time.Time{}, ckptBusy: map[int32]bool{}}
	p.limiter = rate.NewLimiter(rate.Inf, 0)
	if cfg.WriteRateLimit > 0 {
		p.limiter = rate.NewLimiter(rate.Limit(cfg.WriteRateLimit), int(max(cfg.WriteRateLimit, 1)))
	}
	p.m = newMetrics(reg)
	opts, err := bus.ClientOptions(kafka)
	if err != nil {
		return nil, err
	}
	opts = append(opts,
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(kafka.Topic(event.TopicUserActivity), kafka.Topic(event.TopicTransactions)),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.DisableAutoCommit(), // offsets move only after the store has the checkpoint
		kgo.BlockRebalanceOnPoll(),
		// A crashed member's partitions move after 10s instead of the default 45s.
		kgo.SessionTimeout(10*time.Second),
		kgo.HeartbeatInterval(time.Second),
		// Range assignment gives one member the same partition numbers of both topics: a
		// user's activity and transactions meet in one partition state.
		kgo.Balancers(kgo.RangeBalancer()),
		kgo.OnPartitionsAssigned(p.onAssigned),
		kgo.AdjustFetchOffsetsFn(p.adjustOffsets),
		kgo.OnPartitionsRevoked(p.onRevoked),
		kgo.OnPartitionsLost(p.onLost),
		kgo.FetchMaxBytes(16<<20),
		kgo.ProducerLinger(5*time.Millisecond), // dead letters
	)
	if reg != nil {
		opts = append(opts, kgo.WithHooks(kprom.NewMetrics("bytebasket_stream_kafka", kprom.Registerer(reg))))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("stream consumer: %w", err)
	}
	p.client = cl
	return p, nil
}

// Ready reports whether the processor owns partitions and is consuming.
func (p *Processor) Ready() bool { return p.assigned.Load() }

// Run consumes until ctx is cancelled, then writes a final checkpoint and leaves the group.
func (p *Processor) Run(ctx context.Context) error {
	defer p.client.Close()
	lastFlush := time.Now()
	for {
		// Poll no longer than until the next flush is due: rows must reach the store (and
		// windows close) even when no new records arrive.
		pollCtx, cancel := context.WithDeadline(ctx, lastFlush.Add(p.cfg.FlushInterval))
		fetches := p.client.PollRecords(pollCtx, 20_000)
		cancel()
		if ctx.Err() != nil || fetches.IsClientClosed() {
			break
		}
		fetches.EachError(func(t string, part int32, err error) {
			if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				slog.Warn("fetch error", "topic", t, "partition", part, "err", err)
			}
		})
		p.mu.Lock()
		fetches.EachRecord(p.handle)
		var err error
		if time.Since(lastFlush) >= p.cfg.FlushInterval {
			err = p.flushLocked(ctx, false, nil)
			lastFlush = time.Now()
		}
		p.mu.Unlock()
		p.client.AllowRebalance()
		if err != nil && ctx.Err() == nil {
			return err
		}
	}
	// Graceful stop: everything processed becomes durable and committed before leaving.
	stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p.mu.Lock()
	err := p.flushLocked(stopCtx, true, nil)
	p.parts = map[int32]*partitionState{} // checkpointed: nothing left for the revoke callback
	p.assigned.Store(false)
	p.mu.Unlock()
	// Leaving the group revokes our partitions, which waits for the rebalance to be allowed.
	p.client.AllowRebalance()
	return err
}

func (p *Processor) logical(topic string) string { return strings.TrimPrefix(topic, p.prefix) }

func (p *Processor) handle(r *kgo.Record) {
	st := p.parts[r.Partition]
	if st == nil { // not ours any more (revoked while buffered)
		return
	}
	topic := p.logical(r.Topic)
	now := time.Now()
	p.lastSeen[topic+"/"+strconv.Itoa(int(r.Partition))] = now
	e, err := event.Decode(r.Value)
	if err == nil {
		err = event.Validate(e, now, p.cfg.MaxFuture)
	}
	if err != nil {
		st.Offsets[topic] = r.Offset + 1
		p.deadLetter(r, err)
		return
	}
	kind := string(event.KindOf(e))
	p.m.events.WithLabelValues(topic, kind).Inc()
	if st.Apply(topic, r.Offset, e, p.cfg.Rules) {
		p.m.late.Inc()
	}
	p.eventsM = append(p.eventsM, e.GetEventTime().AsTime().UnixMilli())
}

// deadLetter sends a record that cannot be processed to the dead-letter topic with the
// reason and its origin in headers, and counts it. Processing goes on.
func (p *Processor) deadLetter(r *kgo.Record, cause error) {
	reason := deadLetterReason(cause)
	p.m.deadLetters.WithLabelValues(reason).Inc()
	dl := &kgo.Record{
		Topic: p.prefix + event.TopicDeadLetters, Key: r.Key, Value: r.Value,
		Headers: []kgo.RecordHeader{
			{Key: "reason", Value: []byte(cause.Error())},
			{Key: "reason-class", Value: []byte(reason)},
			{Key: "source-topic", Value: []byte(r.Topic)},
			{Key: "source-partition", Value: []byte(strconv.Itoa(int(r.Partition)))},
			{Key: "source-offset", Value: []byte(strconv.FormatInt(r.Offset, 10))},
		},
	}
	p.client.Produce(context.Background(), dl, func(_ *kgo.Record, err error) {
		if err != nil {
			p.dlqFailed.Add(1)
			slog.Error("dead letter not written", "source-topic", r.Topic, "offset", r.Offset, "err", err)
		}
	})
}

func deadLetterReason(err error) string {
	switch {
	case errors.Is(err, event.ErrNoPayload):
		return "unknown_payload"
	case errors.Is(err, event.ErrBadTime):
		return "bad_event_time"
	case errors.Is(err, event.ErrMissingField):
		return "missing_field"
	case errors.Is(err, event.ErrNegativeMoney):
		return "negative_amount"
	default:
		return "undecodable"
	}
}

func (p *Processor) activeTopics(part int32, now time.Time) map[string]bool {
	active := map[string]bool{}
	for _, t := range event.Topics {
		if seen, ok := p.lastSeen[t+"/"+strconv.Itoa(int(part))]; ok && now.Sub(seen) < p.cfg.IdleTimeout {
			active[t] = true
		}
	}
	return active
}

// flushLocked writes the changed rows of the given partitions (all when nil). Work is
// staggered so that a flush carries little more than the live rows, which is what keeps
// end-to-end latency low: each flush gives at most one partition a full drain (in turn, so
// each gets one about every fullDrainInterval) and at most one a checkpoint (the one
// checkpointed longest ago, once CheckpointInterval has passed). final (before partitions
// are given up) drains and checkpoints every partition. A failing store is retried with
// backoff until it succeeds or ctx ends: meanwhile nothing is polled, so Kafka holds the
// backlog, not our memory.
func (p *Processor) flushLocked(ctx context.Context, final bool, only []int32) error {
	t0 := time.Now()
	parts := only
	if parts == nil {
		for part := range p.parts {
			parts = append(parts, part)
		}
		sort.Slice(parts, func(i, j int) bool { return parts[i] < parts[j] })
	}
	if final {
		p.ckptWG.Wait() // an earlier checkpoint must not land after the final one
	}
	fullPart, ckptPart := int32(-1), int32(-1)
	if !final && len(parts) > 0 {
		if t0.Sub(p.lastFull) >= fullDrainInterval/time.Duration(len(parts)) {
			p.fullTurn = (p.fullTurn + 1) % len(parts)
			fullPart, p.lastFull = parts[p.fullTurn], t0
		}
		var oldest time.Time
		p.ckptMu.Lock()
		for _, part := range parts {
			last := p.lastCkpt[part]
			if !p.ckptBusy[part] && t0.Sub(last) >= p.cfg.CheckpointInterval && (ckptPart < 0 || last.Before(oldest)) {
				ckptPart, oldest = part, last
			}
		}
		p.ckptMu.Unlock()
	}
	if final || ckptPart >= 0 {
		// Dead letters must be durable before offsets move past their records.
		if err := p.client.Flush(ctx); err != nil {
			return fmt.Errorf("flush dead letters: %w", err)
		}
		if n := p.dlqFailed.Load(); n > 0 {
			return fmt.Errorf("%d dead letters could not be written; not checkpointing past them", n)
		}
	}
	kind := "live"
	commit := map[string]map[int32]kgo.EpochOffset{}
	for _, part := range parts {
		st := p.parts[part]
		if st == nil {
			continue
		}
		checkpoint := final || part == ckptPart
		level := drainLive
		switch {
		case final:
			level = drainAll
		case checkpoint || part == fullPart:
			level = drainFull // a checkpoint needs closed sessions written: they are not in the snapshot
		}
		if level >= drainFull && kind == "live" {
			kind = "full"
		}
		wm := st.watermark(p.activeTopics(part, t0))
		st.Advance(wm, p.cfg.Rules)
		b := st.Drain(wm, t0, level)
		var ckpt *model.Checkpoint
		if checkpoint {
			kind = "checkpoint"
			snap, err := st.Snapshot()
			if err != nil {
				return err
			}
			ckpt = &model.Checkpoint{Group: p.cfg.Group, Partition: part, Offsets: clone(st.Offsets), State: snap, UpdatedAt: t0}
		}
		if final {
			b.Checkpoint = ckpt // with the rows, and committed below
			p.addCommit(commit, ckpt)
		}
		if b.Len() > 0 {
			if err := p.throttle(ctx, b.Len()); err != nil {
				return err
			}
			if err := p.writeWithRetry(ctx, b); err != nil {
				return err
			}
			p.m.countRows(b)
		}
		switch {
		case final:
			p.ckptMu.Lock()
			p.lastCkpt[part] = time.Now()
			p.ckptMu.Unlock()
			p.m.checkpoints.Inc()
		case checkpoint:
			p.checkpointAsync(ctx, ckpt) // the rows it covers are written
		}
	}
	done := time.Now()
	for _, ms := range p.eventsM {
		p.m.latency.Observe(float64(done.UnixMilli()-ms) / 1000)
	}
	p.eventsM = p.eventsM[:0]
	p.m.flush.WithLabelValues(kind).Observe(done.Sub(t0).Seconds())
	p.commitOffsets(ctx, commit)
	return nil
}

// addCommit adds a checkpoint's offsets to the Kafka commit being built.
func (p *Processor) addCommit(commit map[string]map[int32]kgo.EpochOffset, c *model.Checkpoint) {
	for t, off := range c.Offsets {
		if commit[p.prefix+t] == nil {
			commit[p.prefix+t] = map[int32]kgo.EpochOffset{}
		}
		commit[p.prefix+t][c.Partition] = kgo.EpochOffset{Epoch: -1, Offset: off}
	}
}

// commitOffsets commits to Kafka for lag monitoring and tools; restarts use the store's
// checkpoint.
func (p *Processor) commitOffsets(ctx context.Context, commit map[string]map[int32]kgo.EpochOffset) {
	if len(commit) == 0 {
		return
	}
	p.client.CommitOffsetsSync(ctx, commit, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, _ *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			slog.Warn("commit offsets", "err", err)
		}
	})
}

// checkpointAsync writes a checkpoint beside the poll loop. The snapshot is taken, and the
// rows it covers are written, in the loop; the state blob, the largest write of all, then no
// longer holds up the live rows (it was most of the stream's p99). One is in flight per
// partition and a final flush waits for them all, so a partition's checkpoints land in
// order. A failed one is retried at the partition's next turn; restores use the last one
// that landed, whose state and offsets belong together.
func (p *Processor) checkpointAsync(ctx context.Context, c *model.Checkpoint) {
	p.ckptMu.Lock()
	p.ckptBusy[c.Partition] = true
	p.ckptMu.Unlock()
	p.ckptWG.Add(1)
	go func() {
		defer p.ckptWG.Done()
		err := p.writeWithRetry(ctx, model.Batch{Checkpoint: c})
		p.ckptMu.Lock()
		delete(p.ckptBusy, c.Partition)
		if err == nil {
			p.lastCkpt[c.Partition] = time.Now()
		}
		p.ckptMu.Unlock()
		if err != nil {
			slog.Warn("checkpoint not written; retried at the partition's next turn", "partition", c.Partition, "err", err)
			return
		}
		p.m.countRows(model.Batch{Checkpoint: c})
		p.m.checkpoints.Inc()
		commit := map[string]map[int32]kgo.EpochOffset{}
		p.addCommit(commit, c)
		p.commitOffsets(ctx, commit)
	}()
}

// throttle waits until rows may be written under the configured write rate limit.
func (p *Processor) throttle(ctx context.Context, rows int) error {
	if p.limiter.Limit() == rate.Inf {
		return nil
	}
	for rows > 0 { // WaitN refuses more than the burst at once
		n := min(rows, p.limiter.Burst())
		if err := p.limiter.WaitN(ctx, n); err != nil {
			return fmt.Errorf("write rate limit: %w", err)
		}
		rows -= n
	}
	return nil
}

// storeBackoff paces retries of a failing store.
var storeBackoff = retry.Backoff{Initial: 100 * time.Millisecond, Max: 10 * time.Second}

func (p *Processor) writeWithRetry(ctx context.Context, b model.Batch) error {
	err := retry.Until(ctx, storeBackoff, func() error { return p.sink.Write(ctx, b) }, func(err error, wait time.Duration) {
		p.m.storeErrors.Inc()
		slog.Warn("store write failed; retrying", "rows", b.Len(), "backoff", wait, "err", err)
	})
	if err != nil {
		return fmt.Errorf("store write: %w", err)
	}
	return nil
}

func (p *Processor) onAssigned(ctx context.Context, _ *kgo.Client, assigned map[string][]int32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, parts := range assigned {
		for _, part := range parts {
			if p.parts[part] != nil {
				continue
			}
			st, err := p.restore(ctx, part)
			if err != nil {
				// Without its checkpoint the partition cannot be aggregated exactly; leave the
				// group rather than write wrong numbers.
				slog.Error("restore partition state", "partition", part, "err", err)
				p.client.LeaveGroup()
				return
			}
			p.parts[part] = st
		}
	}
	p.assigned.Store(true)
	slog.Info("partitions assigned", "assigned", assigned)
}

func (p *Processor) restore(ctx context.Context, part int32) (*partitionState, error) {
	var cp *model.Checkpoint
	err := retry.Until(ctx, storeBackoff, func() (err error) {
		cp, err = p.sink.LoadCheckpoint(ctx, p.cfg.Group, part)
		return err
	}, func(err error, _ time.Duration) {
		slog.Warn("load checkpoint; retrying", "partition", part, "err", err)
	})
	if err != nil {
		return nil, err
	}
	if cp == nil {
		return newPartitionState(part), nil
	}
	return restoreState(part, cp.State)
}

// adjustOffsets starts every assigned partition where its checkpoint says, or at the
// beginning when there is none: the store, not Kafka's committed offset, is the truth.
func (p *Processor) adjustOffsets(_ context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for topic, parts := range offsets {
		for part := range parts {
			st := p.parts[part]
			if st == nil {
				continue
			}
			if off, ok := st.Offsets[p.logical(topic)]; ok {
				parts[part] = kgo.NewOffset().At(off).WithEpoch(-1)
			} else {
				parts[part] = kgo.NewOffset().AtStart()
			}
		}
	}
	return offsets, nil
}

func (p *Processor) onRevoked(ctx context.Context, _ *kgo.Client, revoked map[string][]int32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	parts := partitionsOf(revoked)
	if err := p.flushLocked(ctx, true, parts); err != nil {
		slog.Error("checkpoint on revoke", "partitions", parts, "err", err)
	}
	for _, part := range parts {
		delete(p.parts, part)
		p.ckptMu.Lock()
		delete(p.lastCkpt, part)
		p.ckptMu.Unlock()
	}
}

func (p *Processor) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, part := range partitionsOf(lost) {
		delete(p.parts, part) // another member resumes from the last checkpoint
		p.ckptMu.Lock()
		delete(p.lastCkpt, part)
		p.ckptMu.Unlock()
	}
}

func partitionsOf(m map[string][]int32) []int32 {
	seen := map[int32]bool{}
	var out []int32
	for _, parts := range m {
		for _, part := range parts {
			if !seen[part] {
				seen[part] = true
				out = append(out, part)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
