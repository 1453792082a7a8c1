// Package archive is `bytebasket archive`: a consumer group over the event topics that
// writes every event, flattened, into Parquet files in the lake, partitioned by event time.
//
// Exactly once: a file holds the records of one Kafka partition, in one offset range, whose
// event time falls in its directory, and is named by that range. It is written under a
// temporary name and renamed into place; Kafka offsets are committed only up to the first
// record still in memory. After a crash the archiver re-reads from the committed offset and
// skips every record that a file in its directory already covers (the directory is listed
// once, when the partition first writes there), so nothing is lost and nothing is written
// twice, and a half-written file is never visible.
package archive

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
	"github.com/bytebasket/bytebasket/internal/lake"
	"github.com/parquet-go/parquet-go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/plugin/kprom"
)

// Config is how the archiver buffers and names its work.
type Config struct {
	Group            string
	RollBytes        int64         // write a buffer once its records reach this many bytes
	RollInterval     time.Duration // ... or once its first record has waited this long
	MaxBufferedBytes int64         // over all buffers; past it the largest is written early
	Compression      string        // zstd | snappy
	MaxFuture        time.Duration // events further ahead of their Kafka timestamp are invalid
	// DedupHorizon: a record whose event id is already archived in its hour directory is
	// dropped, for directories whose hour ended less than this long ago (0: off).
	DedupHorizon time.Duration
}

// FromConfig maps the configuration onto the archiver's.
func FromConfig(cfg config.Config) Config {
	a := cfg.Archive
	return Config{Group: a.Group, RollBytes: a.RollBytes, RollInterval: a.RollInterval,
		MaxBufferedBytes: a.MaxBufferedBytes, Compression: a.Compression, MaxFuture: cfg.Stream.MaxFuture,
		DedupHorizon: a.DedupHorizon}
}

// Archiver consumes and writes. Create with New, then Run.
type Archiver struct {
	cfg      Config
	prefix   string
	lake     Lake
	codec    parquet.WriterOption
	client   *kgo.Client
	m        metrics
	mu       sync.Mutex // partitions: the poll loop and the rebalance callbacks
	parts    map[partKey]*partition
	fenced   map[partKey]bool // claimed by a newer archiver: skipped until assigned here again
	owned    map[partKey]bool // assigned by the group, for the lag gauges
	buffered int64
	assigned atomic.Bool
}

// New builds an archiver; with kafka nil it has no consumer (Handle, Roll and Flush drive
// it directly, as benchmarks do). reg may be nil.
func New(cfg Config, kafka *config.Kafka, lk Lake, reg prometheus.Registerer) (*Archiver, error) {
	a := &Archiver{cfg: cfg, lake: lk, parts: map[partKey]*partition{}, fenced: map[partKey]bool{}, owned: map[partKey]bool{}, m: newMetrics(reg)}
	switch cfg.Compression {
	case "zstd":
		a.codec = parquet.Compression(&parquet.Zstd)
	case "snappy":
		a.codec = parquet.Compression(&parquet.Snappy)
	default:
		return nil, fmt.Errorf("archive: compression %q is not one of zstd, snappy", cfg.Compression)
	}
	if kafka == nil {
		return a, nil
	}
	a.prefix = kafka.TopicPrefix
	opts, err := bus.ClientOptions(*kafka)
	if err != nil {
		return nil, err
	}
	opts = append(opts,
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(kafka.Topic(event.TopicUserActivity), kafka.Topic(event.TopicTransactions)),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(), // offsets move only past records that are in renamed files
		kgo.BlockRebalanceOnPoll(),
		kgo.SessionTimeout(10*time.Second),
		kgo.HeartbeatInterval(time.Second),
		kgo.OnPartitionsAssigned(a.onAssigned),
		kgo.OnPartitionsRevoked(a.onRevoked),
		kgo.OnPartitionsLost(a.onRevoked),
		kgo.FetchMaxBytes(32<<20),
	)
	if reg != nil {
		opts = append(opts, kgo.WithHooks(kprom.NewMetrics("bytebasket_archive_kafka", kprom.Registerer(reg))))
	}
	if a.client, err = kgo.NewClient(opts...); err != nil {
		return nil, fmt.Errorf("archive consumer: %w", err)
	}
	return a, nil
}

// partKey names a partition of a logical topic.
type partKey struct {
	stream string
	id     int32
}

// Ready reports whether the archiver owns partitions.
func (a *Archiver) Ready() bool { return a.assigned.Load() }

// Run consumes until ctx is cancelled, then writes every buffer, commits and leaves.
func (a *Archiver) Run(ctx context.Context) error {
	defer a.client.Close()
	lagCtx, stopLag := context.WithCancel(ctx)
	lagDone := make(chan struct{})
	go func() { defer close(lagDone); a.watchLag(lagCtx) }()
	defer func() { stopLag(); <-lagDone }()
	for {
		// Wake at least every second so time-based rolls happen without new records.
		pollCtx, cancel := context.WithTimeout(ctx, time.Second)
		fetches := a.client.PollRecords(pollCtx, 10_000)
		cancel()
		if ctx.Err() != nil || fetches.IsClientClosed() {
			break
		}
		fetches.EachError(func(t string, part int32, err error) {
			if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				slog.Warn("fetch error", "topic", t, "partition", part, "err", err)
			}
		})
		a.mu.Lock()
		fetches.EachPartition(a.checkTrimmed)
		var err error
		fetches.EachRecord(func(r *kgo.Record) {
			if err == nil {
				err = a.Handle(ctx, Record{Stream: strings.TrimPrefix(r.Topic, a.prefix), Partition: r.Partition,
					Offset: r.Offset, Timestamp: r.Timestamp, Value: r.Value})
			}
		})
		if err == nil {
			err = a.Roll(ctx, time.Now(), false)
		}
		if err == nil {
			a.commit(ctx)
		}
		a.mu.Unlock()
		a.client.AllowRebalance()
		if err != nil && ctx.Err() == nil {
			return err
		}
	}
	// Graceful stop: what was read goes into files and is committed before leaving.
	stopCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a.mu.Lock()
	err := a.Roll(stopCtx, time.Now(), true)
	if err == nil {
		a.commit(stopCtx)
	}
	a.parts = map[partKey]*partition{}
	a.assigned.Store(false)
	a.mu.Unlock()
	a.client.AllowRebalance()
	return err
}

// watchLag sets, every second, how many records of each owned partition are not yet in a
// lake file: the group's committed offset (moved only past written records) to the end.
func (a *Archiver) watchLag(ctx context.Context) {
	adm := kadm.NewClient(a.client)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		lags, err := adm.Lag(ctx, a.cfg.Group)
		if err != nil {
			continue
		}
		a.mu.Lock()
		for _, l := range lags {
			for t, parts := range l.Lag {
				for id, pl := range parts {
					stream := strings.TrimPrefix(t, a.prefix)
					if a.owned[partKey{stream, id}] && pl.Lag >= 0 {
						a.m.lag.WithLabelValues(stream, strconv.Itoa(int(id))).Set(float64(pl.Lag))
					}
				}
			}
		}
		a.mu.Unlock()
	}
}

// checkTrimmed counts the records a fetch skipped because retention removed them before the
// archiver read them (bus.Trimmed).
func (a *Archiver) checkTrimmed(fp kgo.FetchTopicPartition) {
	if len(fp.Records) == 0 {
		return
	}
	key := partKey{strings.TrimPrefix(fp.Topic, a.prefix), fp.Partition}
	next := int64(-1)
	if p := a.parts[key]; p != nil && p.next >= 0 {
		next = p.next
	} else if c, ok := a.client.CommittedOffsets()[fp.Topic][fp.Partition]; ok {
		next = c.Offset
	}
	if n := bus.Trimmed(next, fp.Records[0].Offset, fp.LogStartOffset); n > 0 {
		a.m.expired.WithLabelValues(key.stream).Add(float64(n))
		slog.Error("records removed by retention before they were archived; they are missing from the lake",
			"topic", key.stream, "partition", key.id, "records", n, "log_start", fp.LogStartOffset,
			"fix", "raise retention (kafka.embedded_log_bytes in embedded mode) or add capacity")
	}
}

// Record is one Kafka record as the archiver takes it.
type Record struct {
	Stream    string // logical topic
	Partition int32
	Offset    int64
	Timestamp time.Time // the record's Kafka timestamp; zero: unknown
	Value     []byte
}

// Handle takes one record. Invalid records are counted and skipped (the stream role
// dead-letters them); records already in a lake file, and copies of an event already
// archived in its directory, are skipped. It fails only when ctx ends while the lake is
// unreachable.
func (a *Archiver) Handle(ctx context.Context, r Record) error {
	key := partKey{r.Stream, r.Partition}
	if a.fenced[key] {
		return nil
	}
	p := a.parts[key]
	if p == nil {
		var w *lake.PartitionWriter
		err := a.withRetry(ctx, "claim "+r.Stream, func() (err error) {
			w, err = lake.ClaimPartition(ctx, a.lake, r.Stream, r.Partition)
			return err
		})
		if err != nil {
			return err
		}
		p = newPartition(r.Stream, r.Partition, w)
		a.parts[key] = p
	}
	p.next = r.Offset + 1
	now := time.Now()
	bound := r.Timestamp
	if bound.IsZero() || bound.After(now) {
		bound = now
	}
	e, err := event.Decode(r.Value)
	if err != nil {
		a.m.skipped.WithLabelValues("undecodable").Inc()
		return nil
	}
	if err := event.Validate(e, bound, a.cfg.MaxFuture); err != nil {
		a.m.skipped.WithLabelValues("invalid").Inc()
		return nil
	}
	if !kindAllowed(r.Stream, event.KindOf(e)) {
		a.m.skipped.WithLabelValues("wrong_topic").Inc()
		return nil
	}
	t := e.GetEventTime().AsTime()
	dir := lake.PartitionDir(r.Stream, t)
	idx, err := a.index(ctx, p, dir, t.UTC().Truncate(time.Hour), now)
	if err != nil {
		return err
	}
	if idx.covers(r.Offset) {
		a.m.duplicates.Inc()
		return nil
	}
	if !idx.firstSeen(event.Fingerprint(e.GetEventId())) {
		a.m.dupEvents.Inc()
		return nil
	}
	b := p.buffers[dir]
	if b == nil {
		b = &buffer{dir: dir, opened: now}
		p.buffers[dir] = b
	}
	b.add(r.Stream, e, r.Partition, r.Offset, len(r.Value))
	a.buffered += int64(len(r.Value))
	a.m.events.WithLabelValues(r.Stream).Inc()
	if b.bytes >= a.cfg.RollBytes {
		if err := a.roll(ctx, p, b); err != nil {
			return a.fencedOr(p, err)
		}
	}
	a.m.buffered.Set(float64(a.buffered))
	return nil
}

// fencedOr drops a partition whose claim a newer archiver took (its records are that
// archiver's now) and returns nil; other errors are returned.
func (a *Archiver) fencedOr(p *partition, err error) error {
	if !errors.Is(err, lake.ErrFenced) {
		return err
	}
	slog.Warn("partition claimed by a newer archiver; dropping it", "stream", p.stream, "partition", p.id, "err", err)
	a.m.fenced.Inc()
	a.drop(partKey{p.stream, p.id})
	a.fenced[partKey{p.stream, p.id}] = true
	return nil
}

// drop forgets a partition and its buffers: nothing of it was committed past its first
// buffered record, so the next owner reads them again.
func (a *Archiver) drop(key partKey) {
	if p := a.parts[key]; p != nil {
		for _, b := range p.buffers {
			a.buffered -= b.bytes
		}
		delete(a.parts, key)
	}
	a.m.buffered.Set(float64(a.buffered))
}

// Roll writes the buffers that are due at now: older than the roll interval, or the
// largest while over the memory bound; every buffer when all is set.
func (a *Archiver) Roll(ctx context.Context, now time.Time, all bool) error {
	type due struct {
		p *partition
		b *buffer
	}
	var list []due
	for _, p := range a.parts {
		for _, b := range p.buffers {
			list = append(list, due{p, b})
		}
	}
	// Largest first, so the memory bound is met with the fewest files.
	sort.Slice(list, func(i, j int) bool { return list[i].b.bytes > list[j].b.bytes })
	for _, d := range list {
		if a.parts[partKey{d.p.stream, d.p.id}] != d.p {
			continue // dropped (fenced) by an earlier roll
		}
		if all || now.Sub(d.b.opened) >= a.cfg.RollInterval || a.buffered > a.cfg.MaxBufferedBytes {
			if err := a.roll(ctx, d.p, d.b); err != nil {
				if err = a.fencedOr(d.p, err); err != nil {
					return err
				}
			}
		}
	}
	// Indexes of directories no longer written to go after a while (memory: their ids).
	for _, p := range a.parts {
		for dir, x := range p.indexes {
			if p.buffers[dir] == nil && now.Sub(x.lastUsed) > indexIdle {
				delete(p.indexes, dir)
			}
		}
	}
	return nil
}

// commit moves each partition's committed offset up to its first buffered record.
func (a *Archiver) commit(ctx context.Context) {
	offsets := map[string]map[int32]kgo.EpochOffset{}
	for _, p := range a.parts {
		off := p.commitOffset()
		if off <= p.committed || off < 0 {
			continue
		}
		t := a.prefix + p.stream
		if offsets[t] == nil {
			offsets[t] = map[int32]kgo.EpochOffset{}
		}
		offsets[t][p.id] = kgo.EpochOffset{Epoch: -1, Offset: off}
	}
	if len(offsets) == 0 {
		return
	}
	var failed bool
	a.client.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err == nil && resp != nil {
			for _, t := range resp.Topics {
				for _, pr := range t.Partitions {
					if pr.ErrorCode != 0 {
						err = fmt.Errorf("topic %s partition %d: error code %d", t.Topic, pr.Partition, pr.ErrorCode)
					}
				}
			}
		}
		if err != nil {
			failed = true
			slog.Warn("commit offsets; retried at the next roll", "err", err)
		}
	})
	if failed {
		return // records past the last commit are re-read and skipped as already written
	}
	for t, parts := range offsets {
		for id, off := range parts {
			if p := a.parts[partKey{strings.TrimPrefix(t, a.prefix), id}]; p != nil {
				p.committed = off.Offset
			}
		}
	}
}

// onAssigned lets partitions fenced here before be claimed again.
func (a *Archiver) onAssigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for t, ids := range assigned {
		for _, id := range ids {
			k := partKey{strings.TrimPrefix(t, a.prefix), id}
			delete(a.fenced, k)
			a.owned[k] = true
		}
	}
	a.assigned.Store(true)
}

// onRevoked forgets revoked partitions: their buffered records were never committed, so
// the next owner reads them again; its claim fences anything still in flight here, and
// its directory listings show what is already written.
func (a *Archiver) onRevoked(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for t, ids := range revoked {
		for _, id := range ids {
			k := partKey{strings.TrimPrefix(t, a.prefix), id}
			a.drop(k)
			delete(a.owned, k)
			a.m.lag.DeleteLabelValues(k.stream, strconv.Itoa(int(id)))
		}
	}
}
