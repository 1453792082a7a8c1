package stateful

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/plugin/kprom"

	"github.com/bytebasket/bytebasket/internal/bus"
	"github.com/bytebasket/bytebasket/internal/config"
	"github.com/bytebasket/bytebasket/internal/event"
	"github.com/bytebasket/bytebasket/internal/model"
	"github.com/bytebasket/bytebasket/internal/retry"
	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
)

// Loop consumes a role's input topics in a consumer group and drives one Task per owned
// partition. Create with New, then Run.
type Loop struct {
	cfg    Config
	role   Role
	store  Store
	prefix string
	client *kgo.Client
	adm    *kadm.Client
	dlq    *deadLetters
	txn    *txnOutput // nil unless transactional
	// unrestored: partitions a transactional loop rewound, restored once the group confirms
	// they are still this member's.
	unrestored map[int32]bool
	m          *metrics
	router     kgo.TopicPartitioner

	// runCtx ends when Run is told to stop or a callback hits a fatal error (stop's cause).
	runCtx context.Context
	stop   context.CancelCauseFunc

	mu       sync.Mutex // the partitions; the poll loop and the rebalance callbacks take it
	parts    map[int32]*partition
	eventsM  []int64 // event times applied since the last flush, for the latency histogram
	fullTurn int
	lastFull time.Time

	stallErr   error // why the last flush failed; polling waits until a flush succeeds
	stallWait  time.Duration
	stallUntil time.Time

	// built is closed once New has set every field: the group is joined as the client is
	// made, so an assignment can arrive before New returns.
	built    chan struct{}
	probe    atomic.Pointer[lsoProbe]
	ready    atomic.Bool
	ckptWG   sync.WaitGroup
	commitWG sync.WaitGroup // offset commits in flight: the last ones land before leaving
	// held: between a poll and the loop letting a rebalance through (guarded by mu), when
	// no rebalance can run: the only time a transaction may begin.
	held     bool
	lastPoll atomic.Int64 // unix ms, for /readyz of a loop that stopped polling
}

// lsoProbe is the last stable offsets of every input partition, listed at one time.
type lsoProbe struct {
	at   time.Time
	lsos map[string]map[int32]int64 // logical topic -> partition -> offset
}

// New builds the loop and its consumer-group client. reg may be nil.
func New(cfg Config, kafka config.Kafka, role Role, store Store, reg prometheus.Registerer) (*Loop, error) {
	if cfg.Group == "" || len(cfg.Topics) == 0 || cfg.Partitions < 1 {
		return nil, errors.New("stateful: a group, input topics and a partition count are required")
	}
	l := &Loop{cfg: cfg, role: role, store: store, prefix: kafka.TopicPrefix, parts: map[int32]*partition{}, unrestored: map[int32]bool{}, built: make(chan struct{}),
		m: newMetrics(role.Name(), reg), router: kgo.StickyKeyPartitioner(nil).ForTopic("")}
	l.runCtx, l.stop = context.WithCancelCause(context.Background())
	opts, err := bus.ClientOptions(kafka)
	if err != nil {
		return nil, err
	}
	topics := make([]string, len(cfg.Topics))
	for i, t := range cfg.Topics {
		topics[i] = kafka.Topic(t)
	}
	opts = append(opts,
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(topics...),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Transaction markers come back as records, so a partition's next offset reaches its
		// last stable offset exactly when everything before it has been read.
		kgo.KeepControlRecords(),
		kgo.DisableAutoCommit(), // the store's checkpoint is the truth; Kafka's is for tools
		kgo.BlockRebalanceOnPoll(),
		kgo.SessionTimeout(10*time.Second),
		kgo.HeartbeatInterval(time.Second),
		// Range assignment gives one member the same partition numbers of every topic: a
		// user's events of all topics meet in one state.
		kgo.Balancers(kgo.RangeBalancer()),
		kgo.OnPartitionsAssigned(l.onAssigned),
		kgo.AdjustFetchOffsetsFn(l.adjustOffsets),
		kgo.OnPartitionsRevoked(l.onRevoked),
		kgo.OnPartitionsLost(l.onLost),
		kgo.FetchMaxBytes(16<<20),
		kgo.ProducerLinger(5*time.Millisecond), // dead letters
	)
	if reg != nil {
		opts = append(opts, kgo.WithHooks(kprom.NewMetrics("bytebasket_"+role.Name()+"_kafka", kprom.Registerer(reg))))
	}
	dlqClient := (*kgo.Client)(nil)
	if cfg.TransactionalID == "" {
		if l.client, err = kgo.NewClient(opts...); err != nil {
			return nil, fmt.Errorf("%s consumer: %w", role.Name(), err)
		}
		dlqClient = l.client
		l.adm = kadm.NewClient(l.client)
	} else {
		if err := l.newTransactional(kafka, opts); err != nil {
			return nil, err
		}
		l.adm = kadm.NewClient(l.client)
		// Dead letters are not the role's output: an idempotent producer of their own,
		// outside the transactions.
		dopts, _ := bus.ClientOptions(kafka)
		if dlqClient, err = kgo.NewClient(append(dopts, kgo.ProducerLinger(5*time.Millisecond))...); err != nil {
			close(l.built) // (nothing owned yet: the callbacks have nothing to do)
			l.client.Close()
			return nil, fmt.Errorf("%s dead-letter producer: %w", role.Name(), err)
		}
	}
	l.dlq = &deadLetters{client: dlqClient, topic: kafka.Topic(event.TopicDeadLetters)}
	close(l.built)
	return l, nil
}

// newTransactional makes the loop's client a group transact session.
func (l *Loop) newTransactional(kafka config.Kafka, opts []kgo.Opt) error {
	s, err := kgo.NewGroupTransactSession(append(opts,
		kgo.TransactionalID(l.cfg.TransactionalID),
		kgo.TransactionTimeout(15*time.Second), // how long a frozen member's open transaction can hold up its partitions' next owner
	)...)
	if err != nil {
		return fmt.Errorf("%s transactional consumer: %w", l.role.Name(), err)
	}
	l.client = s.Client()
	l.txn = &txnOutput{s: s, prefix: kafka.TopicPrefix, topicIDs: map[string][16]byte{}, committed: map[int32]map[string]int64{}}
	return nil
}

// Close releases a loop that will not Run (Run releases its own).
func (l *Loop) Close() {
	l.client.Close()
	if l.txn != nil {
		l.dlq.client.Close()
	}
}

// Ready reports whether the loop owns partitions, writes succeed and it is not lagging past
// the configured bound.
func (l *Loop) Ready() bool { return l.ready.Load() }

// Run consumes until ctx ends, then writes and checkpoints what it owns, leaves the group
// and returns. A fatal error (an unreadable checkpoint, a changed partition count) ends it
// early with that error.
func (l *Loop) Run(ctx context.Context) error {
	defer l.client.Close()
	stopWatch := context.AfterFunc(ctx, func() { l.stop(nil) })
	defer stopWatch()
	if err := l.checkPartitionCounts(l.runCtx); err != nil {
		return err
	}
	if l.txn != nil {
		defer l.dlq.client.Close()
	}
	probeDone := make(chan struct{})
	go func() { defer close(probeDone); l.probeLoop() }()
	defer func() { <-probeDone }()

	lastFlush := time.Now()
	for l.runCtx.Err() == nil {
		if l.stalled() {
			l.retryStalled()
			continue
		}
		pollCtx, cancel := context.WithDeadline(l.runCtx, lastFlush.Add(l.cfg.FlushInterval))
		fetches := l.client.PollRecords(pollCtx, l.cfg.MaxPollRecords)
		cancel()
		l.lastPoll.Store(time.Now().UnixMilli())
		if fetches.IsClientClosed() {
			break
		}
		fetches.EachError(func(t string, part int32, err error) {
			if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				slog.Warn("fetch error", "topic", t, "partition", part, "err", err)
			}
		})
		l.mu.Lock()
		l.held = true
		l.apply(fetches)
		if time.Since(lastFlush) >= l.cfg.FlushInterval {
			l.flushLocked(time.Now())
			lastFlush = time.Now()
		}
		open := l.txn != nil && l.txn.open
		l.held = open
		l.mu.Unlock()
		if !open { // a transaction never spans a rebalance
			l.client.AllowRebalance()
		}
	}
	// Stopping: everything applied becomes durable and checkpointed before leaving, within
	// the shutdown timeout (a store that is down leaves it to the next owner's replay).
	l.mu.Lock()
	stopCtx, cancel := context.WithTimeout(context.Background(), l.cfg.ShutdownTimeout)
	if !l.commitTxnLocked(stopCtx) {
		// What the states applied was not committed: checkpointing it would skip its output.
		for _, p := range l.parts {
			l.forget(p)
		}
	}
	l.giveUpLocked(stopCtx, slices.Collect(maps.Keys(l.parts)), "shutdown")
	cancel()
	l.ready.Store(false)
	l.mu.Unlock()
	l.client.AllowRebalance()
	l.ckptWG.Wait()
	l.commitWG.Wait() // each bounded by its own timeout
	if cause := context.Cause(l.runCtx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return nil
}

// fatal ends Run with err (from a rebalance callback, which must not block on it).
func (l *Loop) fatal(err error) {
	slog.Error(l.role.Name()+" cannot continue", "err", err)
	l.stop(err)
}

// checkPartitionCounts refuses to start when an input topic does not have the configured
// partition count: the state is keyed by partition number.
func (l *Loop) checkPartitionCounts(ctx context.Context) error {
	md, err := l.adm.ListTopics(ctx, l.physical()...)
	if err != nil {
		return fmt.Errorf("%s: describe input topics: %w", l.role.Name(), err)
	}
	for _, t := range l.physical() {
		d, ok := md[t]
		if !ok || d.Err != nil {
			return fmt.Errorf("%s: input topic %s: not found (%v)", l.role.Name(), t, d.Err)
		}
		if n := int32(len(d.Partitions)); n != l.cfg.Partitions {
			return partitionCountError(t, n, l.cfg.Partitions)
		}
		if l.txn != nil {
			l.txn.topicIDs[t] = d.ID
		}
	}
	return nil
}

func partitionCountError(topic string, have, want int32) error {
	return fmt.Errorf("topic %s has %d partitions but the state is keyed by %d (kafka.partitions): a partition "+
		"count change moves users between partitions and would corrupt distinct counts and sessions; refusing to run "+
		"(recovery: docs/operations.md, \"Changing the partition count\")", topic, have, want)
}

func (l *Loop) physical() []string {
	out := make([]string, len(l.cfg.Topics))
	for i, t := range l.cfg.Topics {
		out[i] = l.prefix + t
	}
	return out
}

func (l *Loop) logical(topic string) string { return strings.TrimPrefix(topic, l.prefix) }

// probeLoop lists the inputs' last stable offsets every second: how a partition that gets no
// records is found caught up, and where lag comes from.
func (l *Loop) probeLoop() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		at := time.Now()
		ctx, cancel := context.WithTimeout(l.runCtx, 5*time.Second)
		listed, err := l.adm.ListCommittedOffsets(ctx, l.physical()...)
		cancel()
		if err == nil {
			p := &lsoProbe{at: at, lsos: map[string]map[int32]int64{}}
			listed.Each(func(o kadm.ListedOffset) {
				if o.Err == nil {
					t := l.logical(o.Topic)
					if p.lsos[t] == nil {
						p.lsos[t] = map[int32]int64{}
					}
					p.lsos[t][o.Partition] = o.Offset
				}
			})
			l.probe.Store(p)
		} else if l.runCtx.Err() == nil {
			slog.Debug("list last stable offsets", "err", err)
		}
		select {
		case <-l.runCtx.Done():
			return
		case <-t.C:
		}
	}
}

// apply queues every polled record in its partition and applies what is due.
func (l *Loop) apply(fetches kgo.Fetches) {
	now := time.Now()
	touched := map[int32]*partition{}
	fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
		p := l.parts[fp.Partition]
		if p == nil { // revoked or fenced while buffered
			return
		}
		topic := l.logical(fp.Topic)
		if len(fp.Records) > 0 {
			if n := bus.Trimmed(p.position(topic), fp.Records[0].Offset, fp.LogStartOffset); n > 0 {
				l.m.expired.WithLabelValues(topic).Add(float64(n))
				slog.Error("records removed by retention before they were read; they are lost to this role",
					"role", l.role.Name(), "topic", topic, "partition", p.id, "records", n, "log_start", fp.LogStartOffset,
					"fix", "raise retention (kafka.embedded_log_bytes in embedded mode) or add capacity")
			}
		}
		for _, r := range fp.Records {
			p.enqueue(topic, l.check(r, now))
		}
		lso := fp.LastStableOffset
		if lso < 0 {
			lso = fp.HighWatermark
		}
		if lso >= 0 && fp.Err == nil {
			p.observeLSO(topic, lso, now)
		}
		touched[p.id] = p
	})
	for _, p := range touched {
		l.drain(p)
	}
}

// check decodes and checks a record as it is fetched; what it finds is acted on when the
// record's turn comes (drain).
func (l *Loop) check(r *kgo.Record, now time.Time) pending {
	if r.Attrs.IsControl() {
		return pending{r: r, control: true}
	}
	// An event cannot have happened after Kafka (or this process) received it.
	bound := r.Timestamp
	if bound.IsZero() || bound.After(now) {
		bound = now
	}
	pd := pending{r: r, key: bound.UnixMilli(), bound: bound.UnixMilli()}
	e, err := event.Decode(r.Value)
	if err == nil {
		err = event.Validate(e, bound, l.cfg.MaxClockSkew)
	}
	if err == nil {
		if l.cfg.KeyOf == nil && l.routed(e.GetUserId()) != r.Partition {
			err = fmt.Errorf("%w: user %q belongs in partition %d (murmur2 of the user id, as Kafka's default partitioner), found in %d",
				errMisrouted, e.GetUserId(), l.routed(e.GetUserId()), r.Partition)
		} else if k := l.cfg.KeyOf; k != nil && l.routed(k(r, e)) != r.Partition {
			err = fmt.Errorf("%w: key %q belongs in partition %d (murmur2, as Kafka's default partitioner), found in %d",
				errMisrouted, k(r, e), l.routed(k(r, e)), r.Partition)
		}
	}
	if err != nil {
		pd.err = err
		return pd
	}
	pd.e, pd.key = e, e.GetEventTime().AsTime().UnixMilli()
	return pd
}

// drain applies the partition's queued records in event-time order across its topics, as
// long as no topic that may still have earlier records is waiting to be read: the order a
// partition's events are applied in depends on the events, not on how fetches interleave
// the topics. A topic with nothing queued holds the others back until it is caught up.
func (l *Loop) drain(p *partition) {
	for {
		t, ok := p.next(l.cfg.Topics)
		if !ok || !l.inTxn() { // a record is due: its offset moves in a transaction
			break
		}
		l.applyOne(p, t, p.pop(t))
	}
	l.pauseFull(p)
}

// applyOne applies one record in its turn: a dead letter, a duplicate, or an event.
func (l *Loop) applyOne(p *partition, topic string, pd pending) {
	p.offsets[topic] = pd.r.Offset + 1
	p.silent = pd.r.Offset < p.replayUntil[topic]
	switch {
	case pd.control:
		return
	case pd.err != nil:
		l.m.deadLetters.WithLabelValues(ReasonOf(pd.err)).Inc()
		l.dlq.send(pd.r, pd.err)
		return
	}
	e := pd.e
	id := e.GetEventId()
	if l.cfg.DedupID != nil {
		id = l.cfg.DedupID(pd.r, e)
	}
	if !p.dedup.firstSeen(event.Fingerprint(id), pd.key, p.dedupFrom) {
		p.duplicates++
		l.m.duplicates.Inc()
		return
	}
	if b := min(pd.key, pd.bound); b > p.maxEvent[topic] {
		p.maxEvent[topic] = b
	}
	var late bool
	if rt, ok := p.task.(RecordTask); ok {
		late = rt.ApplyRecord(topic, pd.r, e)
	} else {
		late = p.task.Apply(topic, e)
	}
	if late {
		l.m.late.Inc()
	}
	l.m.events.WithLabelValues(topic, string(event.KindOf(e))).Inc()
	l.eventsM = append(l.eventsM, pd.key)
}

// maxQueued bounds the records a topic partition may hold waiting for another topic:
// past it, fetching it pauses until half of them are applied.
const maxQueued = 20_000

func (l *Loop) pauseFull(p *partition) {
	for _, t := range l.cfg.Topics {
		n := p.queued(t)
		tp := map[string][]int32{l.prefix + t: {p.id}}
		switch {
		case n > maxQueued && !p.paused[t]:
			p.paused[t] = true
			l.client.PauseFetchPartitions(tp)
		case n < maxQueued/2 && p.paused[t]:
			p.paused[t] = false
			l.client.ResumeFetchPartitions(tp)
		}
	}
}

// routed is the partition Kafka's default partitioner gives records keyed by key.
func (l *Loop) routed(key string) int32 {
	return int32(l.router.Partition(&kgo.Record{Key: []byte(key)}, int(l.cfg.Partitions)))
}

// flushLocked writes every partition's due output. Work is staggered so that one flush
// carries little more than the live rows: at most one partition writes its Full output (in
// turn) and at most one, the one checkpointed longest ago, writes its Full output and
// checkpoints. A failed write stalls the loop (see retryStalled).
func (l *Loop) flushLocked(now time.Time) {
	ids := slices.Sorted(maps.Keys(l.parts))
	l.applyProbe()
	for _, id := range ids { // a topic found caught up may release the others' records
		l.drain(l.parts[id])
	}
	// The transaction commits what was applied before anything is checkpointed: a
	// checkpoint never covers output that is not committed.
	if !l.commitTxnLocked(l.runCtx) {
		return
	}
	l.restorePendingLocked()
	ids = slices.Sorted(maps.Keys(l.parts))
	fullPart, ckptPart := int32(-1), int32(-1)
	if n := len(ids); n > 0 {
		if now.Sub(l.lastFull) >= l.cfg.FullInterval/time.Duration(n) {
			l.fullTurn = (l.fullTurn + 1) % n
			fullPart, l.lastFull = ids[l.fullTurn], now
		}
		var oldest time.Time
		for _, id := range ids {
			p := l.parts[id]
			p.ckptMu.Lock()
			last, busy := p.lastCkpt, p.inFlight != nil
			p.ckptMu.Unlock()
			busy = busy || p.task.Writing() // its Full flush could not hand off every row due
			if !busy && now.Sub(last) >= l.cfg.CheckpointInterval && (ckptPart < 0 || last.Before(oldest)) {
				ckptPart, oldest = id, last
			}
		}
	}
	kind := "live"
	var lag int64
	known := true
	for _, id := range ids {
		p := l.parts[id]
		level := Live
		switch id {
		case ckptPart:
			level, kind = Full, "checkpoint"
		case fullPart:
			level = Full
			if kind == "live" {
				kind = "full"
			}
		}
		if err := l.flushPartition(p.ctx, p, now, level); err != nil {
			if errors.Is(err, model.ErrFenced) {
				l.dropFenced(p)
				continue
			}
			l.stall(err)
			return
		}
		if id == ckptPart {
			l.checkpointAsync(p, now)
		}
		for _, t := range l.cfg.Topics {
			n, ok := p.lag(t)
			if !ok { // a lag of 0 before the end is known would call a replay caught up
				known = false
				l.m.lag.DeleteLabelValues(t, strconv.Itoa(int(id)))
				continue
			}
			lag += n
			l.m.lag.WithLabelValues(t, strconv.Itoa(int(id))).Set(float64(n))
		}
		pl := strconv.Itoa(int(id))
		l.m.dedupIDs.WithLabelValues(pl).Set(float64(p.dedup.size))
		l.m.stateLate.WithLabelValues(pl).Set(float64(p.task.Late()))
		l.m.stateDups.WithLabelValues(pl).Set(float64(p.duplicates))
		l.m.stateBytes.WithLabelValues(pl).Set(float64(p.baseBytes + p.logBytes))
	}
	done := time.Now()
	for _, ms := range l.eventsM {
		l.m.latency.Observe(float64(done.UnixMilli()-ms) / 1000)
	}
	l.eventsM = l.eventsM[:0]
	l.m.flush.WithLabelValues(kind).Observe(done.Sub(now).Seconds())
	l.ready.Store(len(l.parts) > 0 && known && lag <= l.cfg.ReadyMaxLag)
}

// flushPartition advances the partition's watermark and writes its output due at level,
// within parent (the partition's own context, or a give-up's deadline) and the write timeout.
func (l *Loop) flushPartition(parent context.Context, p *partition, now time.Time, level Level) error {
	wm := p.watermark(l.cfg.Topics)
	ctx, cancel := context.WithTimeout(parent, l.cfg.WriteTimeout)
	defer cancel()
	err := p.task.Flush(ctx, p.fence, wm, now, level)
	if err != nil {
		if !errors.Is(err, model.ErrFenced) {
			l.m.storeErrors.Inc()
		}
		return err
	}
	// Only now has the task advanced to wm: expiring ids earlier would let a copy of an
	// event whose minute is still open pass as new while a failed flush is retried.
	if wm > 0 {
		p.dedupFrom = wm - l.cfg.DedupHorizon.Milliseconds()
		p.dedup.expire(p.dedupFrom)
	}
	return nil
}

// applyProbe gives each partition the last stable offsets of the newest probe.
func (l *Loop) applyProbe() {
	pr := l.probe.Load()
	if pr == nil {
		return
	}
	for id, p := range l.parts {
		for t, parts := range pr.lsos {
			if lso, ok := parts[id]; ok {
				p.observeLSO(t, lso, pr.at)
			}
		}
	}
}

// stall stops polling after a failed write: the backlog stays in Kafka, not in memory.
// Nothing is held meanwhile, so a rebalance goes ahead (the partitions' output is then
// the next owner's to replay).
func (l *Loop) stall(err error) {
	if l.stallErr == nil {
		l.stallWait = 100 * time.Millisecond
		slog.Warn("store write failed; polling stops until it succeeds", "err", err)
	} else {
		l.stallWait = min(2*l.stallWait, 10*time.Second)
	}
	l.stallErr, l.stallUntil = err, time.Now().Add(l.stallWait)
	l.m.stalled.Set(1)
	l.ready.Store(false)
}

func (l *Loop) stalled() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stallErr != nil
}

// retryStalled waits out the backoff, then tries the flush again.
func (l *Loop) retryStalled() {
	l.mu.Lock()
	wait := time.Until(l.stallUntil)
	l.mu.Unlock()
	select {
	case <-l.runCtx.Done():
		return
	case <-time.After(wait):
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	before := l.stallErr
	l.stallErr = nil
	l.flushLocked(time.Now())
	if l.stallErr == nil && before != nil {
		slog.Info("store writes succeed again; polling resumes")
		l.m.stalled.Set(0)
	}
}

// checkpointAsync starts writing the partition's next checkpoint beside the loop: its
// output is written (level Full; what a task paces, it records as unwritten). One is in
// flight per partition, so a partition's checkpoints land in order.
func (l *Loop) checkpointAsync(p *partition, now time.Time) {
	job, err := p.nextCheckpoint(l.role, l.cfg, now)
	if err != nil {
		l.fatal(fmt.Errorf("partition %d: build checkpoint: %w", p.id, err))
		return
	}
	done := make(chan struct{})
	p.ckptMu.Lock()
	p.inFlight = done
	p.ckptMu.Unlock()
	l.ckptWG.Add(1)
	go func() {
		defer l.ckptWG.Done()
		err := l.writeCheckpoint(p.ctx, job)
		p.ckptMu.Lock()
		p.inFlight, p.ckptErr = nil, err
		if err == nil {
			p.lastCkpt = time.Now()
		}
		p.ckptMu.Unlock()
		close(done)
		if errors.Is(err, model.ErrFenced) {
			l.mu.Lock()
			if l.parts[p.id] == p {
				l.dropFenced(p)
			}
			l.mu.Unlock()
		}
	}()
}

// writeCheckpoint makes a checkpoint durable: dead letters first (offsets must not pass a
// record that is in neither the state nor the dead-letter topic), then the log, then the
// head. A failed attempt is retried until it succeeds, the partition is fenced or ctx ends.
func (l *Loop) writeCheckpoint(ctx context.Context, j *checkpointJob) error {
	t0 := time.Now()
	err := retry.Until(ctx, retry.Backoff{Initial: 100 * time.Millisecond, Max: 10 * time.Second}, func() error {
		wctx, cancel := context.WithTimeout(ctx, l.cfg.WriteTimeout)
		defer cancel()
		if err := l.dlq.flush(wctx); err != nil {
			return err
		}
		// The output the checkpoint covers, written beside the loop, first.
		if err := j.durable(wctx); err != nil {
			if errors.Is(err, model.ErrFenced) {
				return retry.Stop(err)
			}
			return fmt.Errorf("output before the checkpoint: %w", err)
		}
		if err := l.store.AppendLog(wctx, j.fence, j.seq, j.chunks); err != nil {
			return fmt.Errorf("append checkpoint log: %w", err)
		}
		if err := l.store.CommitHead(wctx, j.fence, j.head); err != nil {
			if errors.Is(err, model.ErrFenced) {
				return retry.Stop(err)
			}
			return fmt.Errorf("commit checkpoint head: %w", err)
		}
		return nil
	}, func(err error, wait time.Duration) {
		l.m.storeErrors.Inc()
		slog.Warn("checkpoint not written; retrying", "partition", j.fence.Partition, "in", wait, "err", err)
	})
	if err != nil {
		return err
	}
	kind := "changes"
	if j.full {
		kind = "full"
		// The log before this snapshot is no longer read. Best effort: a failure leaves
		// rows that the next full snapshot's trim removes.
		if err := l.store.TrimLog(ctx, j.fence.Group, j.fence.Partition, j.fence.Epoch, j.seq); err != nil {
			slog.Warn("trim checkpoint log", "partition", j.fence.Partition, "err", err)
		}
	}
	l.m.checkpoints.WithLabelValues(kind).Inc()
	l.m.ckptBytes.Observe(float64(j.bytes))
	l.m.ckptSeconds.Observe(time.Since(t0).Seconds())
	if l.txn == nil { // a transactional loop's group offsets are its transactions'
		l.commitOffsets(j.fence.Partition, j.offsets)
	}
	return nil
}

// commitOffsets commits a checkpoint's offsets to Kafka for lag monitoring and tools;
// restarts use the store's checkpoint.
func (l *Loop) commitOffsets(part int32, offsets map[string]int64) {
	commit := map[string]map[int32]kgo.EpochOffset{}
	for t, off := range offsets {
		commit[l.prefix+t] = map[int32]kgo.EpochOffset{part: {Epoch: -1, Offset: off}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	l.commitWG.Add(1)
	l.client.CommitOffsets(ctx, commit, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, _ *kmsg.OffsetCommitResponse, err error) {
		defer l.commitWG.Done()
		cancel()
		if err != nil {
			slog.Debug("commit offsets", "err", err)
		}
	})
}

// dropFenced forgets a partition a newer owner claimed and stops fetching it until the
// group assigns it here again.
func (l *Loop) dropFenced(p *partition) {
	slog.Warn("partition claimed by a newer owner; dropping it", "partition", p.id, "epoch", p.fence.Epoch)
	l.m.fenced.Inc()
	l.forget(p)
	paused := map[string][]int32{}
	for _, t := range l.physical() {
		paused[t] = []int32{p.id}
	}
	l.client.PauseFetchPartitions(paused)
}

func (l *Loop) forget(p *partition) {
	p.cancel()
	p.task.Close()
	delete(l.parts, p.id)
	if l.txn != nil {
		delete(l.txn.committed, p.id)
	}
	l.m.forget(p.id, l.cfg.Topics)
	if len(l.parts) == 0 {
		l.ready.Store(false)
	}
}

// giveUpLocked writes and checkpoints the partitions before they leave (revoked, or on
// shutdown), within ctx; a partition that cannot is dropped, and its next owner replays from
// its last committed checkpoint.
func (l *Loop) giveUpLocked(ctx context.Context, ids []int32, why string) {
	for _, id := range ids {
		p := l.parts[id]
		if p == nil {
			continue
		}
		if err := l.finalCheckpoint(ctx, p); err != nil {
			slog.Warn("partition given up without a final checkpoint; its next owner replays from the last one",
				"partition", id, "why", why, "err", err)
		}
		l.forget(p)
	}
}

func (l *Loop) finalCheckpoint(ctx context.Context, p *partition) error {
	p.ckptMu.Lock()
	inFlight := p.inFlight
	p.ckptMu.Unlock()
	if inFlight != nil {
		select {
		case <-inFlight:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	p.ckptMu.Lock()
	failed := p.ckptErr
	p.ckptMu.Unlock()
	if failed != nil {
		return fmt.Errorf("an earlier checkpoint failed: %w", failed)
	}
	if err := l.flushPartition(ctx, p, time.Now(), All); err != nil {
		return err
	}
	job, err := p.nextCheckpoint(l.role, l.cfg, time.Now())
	if err != nil {
		return err
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	return l.writeCheckpoint(wctx, job)
}

// onAssigned claims and restores the new partitions, several at once, before fetching
// starts. A store that is down is retried until it answers or Run stops; an unreadable
// checkpoint or a partition beyond the configured count stops Run.
func (l *Loop) onAssigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	<-l.built
	l.rebalanced()
	ids := partitionsOf(assigned)
	for _, id := range ids {
		if id >= l.cfg.Partitions {
			for t := range assigned {
				l.fatal(partitionCountError(t, id+1, l.cfg.Partitions))
				return
			}
		}
	}
	l.mu.Lock()
	var todo []int32
	for _, id := range ids {
		delete(l.unrestored, id) // restored here, as any assigned partition
		if l.parts[id] == nil {
			todo = append(todo, id)
		}
	}
	l.mu.Unlock()
	restored := make([]*partition, len(todo))
	var wg sync.WaitGroup
	for i, id := range todo {
		wg.Go(func() {
			p, err := l.restore(l.runCtx, id)
			if err != nil {
				if l.runCtx.Err() == nil {
					l.fatal(fmt.Errorf("partition %d: %w", id, err))
				}
				return
			}
			restored[i] = p
		})
	}
	wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	resume := map[string][]int32{}
	for _, p := range restored {
		if p == nil {
			continue
		}
		l.parts[p.id] = p
		l.seedCommitted(p)
		for _, t := range l.physical() {
			resume[t] = append(resume[t], p.id)
		}
	}
	l.client.ResumeFetchPartitions(resume) // if fenced here before
	slog.Info("partitions assigned", "role", l.role.Name(), "partitions", ids)
}

// restore claims a partition and rebuilds its state from the last committed checkpoint;
// without one, it starts empty at the topics' first offsets.
func (l *Loop) restore(ctx context.Context, id int32) (*partition, error) {
	t0 := time.Now()
	backoff := retry.Backoff{Initial: 100 * time.Millisecond, Max: 10 * time.Second}
	warn := func(what string) func(error, time.Duration) {
		return func(err error, wait time.Duration) {
			l.m.storeErrors.Inc()
			slog.Warn(what+"; retrying", "partition", id, "in", wait, "err", err)
		}
	}
	var p *partition
	err := retry.Until(ctx, backoff, func() error {
		f, raw, err := l.store.Claim(ctx, l.cfg.Group, id)
		if err != nil {
			return err
		}
		p = newPartition(id, f, nil)
		p.task = l.role.NewTask(id, l.emitFor(p))
		if raw == nil {
			return nil
		}
		h, err := decodeHead(raw, l.role, l.cfg.Partitions)
		if err != nil {
			return retry.Stop(err)
		}
		n, err := readState(ctx, l.store, l.cfg.Group, id, h, func(e *pb.StateEntry) error {
			if d := e.GetDedup(); d != nil {
				p.dedup.restore(d)
				return nil
			}
			if err := p.task.Restore(e); err != nil {
				return retry.Stop(fmt.Errorf("%w: %v", ErrUnreadable, err))
			}
			return nil
		})
		if errors.Is(err, ErrUnreadable) {
			return retry.Stop(err)
		}
		if err != nil {
			return err
		}
		maps.Copy(p.offsets, h.GetOffsets())
		maps.Copy(p.maxEvent, h.GetMaxEventMs())
		p.segments, p.baseBytes, p.logBytes, p.duplicates = h.GetSegments(), h.GetBaseBytes(), h.GetLogBytes(), h.GetDuplicates()
		l.m.restoreBytes.Add(float64(n))
		return nil
	}, warn("restore partition state"))
	if err != nil {
		if errors.Is(err, ErrUnreadable) {
			return nil, fmt.Errorf("group %s: %w (recovery: docs/operations.md, \"Unreadable checkpoint\")", l.cfg.Group, err)
		}
		return nil, err
	}
	// Topics without a checkpointed offset start at their first offset, resolved now so
	// the partition's position (and so its lag and caught-up state) is always known.
	var missing []string
	for _, t := range l.cfg.Topics {
		if _, ok := p.offsets[t]; !ok {
			missing = append(missing, l.prefix+t)
		}
	}
	if len(missing) > 0 {
		err := retry.Until(ctx, backoff, func() error {
			starts, err := l.adm.ListStartOffsets(ctx, missing...)
			if err == nil {
				err = starts.Error()
			}
			if err != nil {
				return err
			}
			for _, t := range missing {
				o, ok := starts.Lookup(t, id)
				if !ok {
					return fmt.Errorf("no start offset for %s/%d", t, id)
				}
				p.offsets[l.logical(t)] = o.Offset
			}
			return nil
		}, warn("list start offsets"))
		if err != nil {
			return nil, err
		}
	}
	if l.txn != nil {
		// Output of what an earlier owner committed is in Kafka already: replay it silently.
		var committed map[string]int64
		err := retry.Until(ctx, backoff, func() (err error) {
			committed, err = committedOffsets(ctx, l.client, l.cfg.Group, id, l.physical(), l.txn.topicIDs, l.logical)
			return err
		}, warn("fetch committed offsets"))
		if err != nil {
			return nil, err
		}
		p.replayUntil = committed
	}
	d := time.Since(t0) // lastCkpt is zero: the partition checkpoints at its first turn
	l.m.restoreSecs.Observe(d.Seconds())
	l.m.stateBytes.WithLabelValues(strconv.Itoa(int(id))).Set(float64(p.baseBytes + p.logBytes))
	slog.Info("partition restored", "role", l.role.Name(), "partition", id, "epoch", p.fence.Epoch,
		"state_bytes", p.baseBytes+p.logBytes, "offsets", p.offsets, "took", d.Round(time.Millisecond))
	return p, nil
}

// adjustOffsets starts every assigned partition where its state says: the store, not
// Kafka's committed offset, is the truth.
func (l *Loop) adjustOffsets(_ context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for topic, parts := range offsets {
		for id := range parts {
			if p := l.parts[id]; p != nil {
				if off, ok := p.offsets[l.logical(topic)]; ok {
					parts[id] = kgo.NewOffset().At(off).WithEpoch(-1)
				}
			}
		}
	}
	return offsets, nil
}

func (l *Loop) onRevoked(ctx context.Context, _ *kgo.Client, revoked map[string][]int32) {
	l.rebalanced()
	l.mu.Lock()
	defer l.mu.Unlock()
	rctx, cancel := context.WithTimeout(ctx, l.cfg.RevokeTimeout)
	defer cancel()
	for _, id := range partitionsOf(revoked) {
		delete(l.unrestored, id)
	}
	l.giveUpLocked(rctx, partitionsOf(revoked), "revoked")
}

// onLost drops the partitions at once: another member may own them already, and its claim
// fences anything still in flight here.
func (l *Loop) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	l.rebalanced()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, id := range partitionsOf(lost) {
		delete(l.unrestored, id)
		if p := l.parts[id]; p != nil {
			slog.Warn("partition lost (session expired); dropping its state", "partition", id)
			l.forget(p)
		}
	}
}

// seedCommitted records, for a transactional loop, the group's offsets a restored partition
// found: commits never move them back.
func (l *Loop) seedCommitted(p *partition) {
	if l.txn != nil {
		l.txn.committed[p.id] = maps.Clone(p.replayUntil)
	}
}

// rebalanced notes, for a transactional loop, that the group changed (see txnOutput.begin).
func (l *Loop) rebalanced() {
	if l.txn != nil {
		l.txn.rebalanced.Store(true)
	}
}

// emitFor is p's Emit: nil unless transactional; silent while p replays committed output.
func (l *Loop) emitFor(p *partition) Emit {
	if l.txn == nil {
		return nil
	}
	return func(r *kgo.Record) {
		if p.silent {
			l.m.replayedOutput.Inc()
			return
		}
		if !l.txn.open { // only Apply emits, and drain opened one for it
			l.fatal(fmt.Errorf("%s emitted a record outside a transaction", l.role.Name()))
			return
		}
		l.txn.emit(l.runCtx, r)
	}
}

// inTxn opens a transaction, if none is, for a record about to be applied: one is open only
// while it has something to commit, so an idle loop commits none (each would cost a
// heartbeat and a round of requests). It reports false, and nothing more is applied, when
// Run is ending, when a rebalance may run (a stalled retry: a transaction must not span
// one), or when the transaction cannot begin (which ends Run).
func (l *Loop) inTxn() bool {
	if l.txn == nil {
		return true
	}
	if l.runCtx.Err() != nil {
		return false
	}
	if l.txn.open {
		return true
	}
	if !l.held {
		return false
	}
	if err := l.txn.begin(l.runCtx); err != nil {
		l.fatal(err)
		return false
	}
	return true
}

func partitionsOf(m map[string][]int32) []int32 {
	var out []int32
	for _, parts := range m {
		for _, id := range parts {
			if !slices.Contains(out, id) {
				out = append(out, id)
			}
		}
	}
	slices.Sort(out)
	return out
}
