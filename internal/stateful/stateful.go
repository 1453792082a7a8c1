// Package stateful is the consumer-group loop the stateful roles share (stream, and the
// fraud role after it): co-partitioned input topics read with read_committed, one state per
// partition number, owned by exactly one writer at a time and checkpointed incrementally into
// the serving store.
//
// What it guarantees, and how:
//   - Exact after any crash: a partition's owner claims it in the store (a higher epoch than
//     every claim before), restores the last committed checkpoint and replays from its
//     offsets. Output is whole values under deterministic keys, so a replay rewrites them.
//   - Fenced: a writer that lost its partition (a paused process, an evicted member) can
//     commit no checkpoint and overwrite no row of the newer owner; the store enforces it.
//   - Checkpoints follow what changed: each one appends the changes since the last one to a
//     log, in bounded chunks, and replaces a small head by a conditional write; every so often
//     a full snapshot starts a new chain and the old log is trimmed.
//   - Event time is honest: an event's watermark input is its event time bounded by the
//     record's Kafka timestamp, so a client with a fast clock cannot close windows for
//     everyone; a topic partition stops holding the watermark back only when the consumer
//     has caught up with its last stable offset, never by wall clock.
//   - Bad input never stops it: undecodable, invalid, skewed and misrouted records go to the
//     dead-letter topic (retried until written) and duplicates of an event id are dropped.
//   - A store outage never blocks a rebalance: failed writes stall polling, not the group.
//   - Kafka to Kafka exactly once, for a role that emits records (Config.TransactionalID):
//     its output commits in one transaction with the offsets of what was applied; a restored
//     partition replays silently up to them (txn.go).
package stateful

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/bytebasket/bytebasket/internal/model"
	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
)

// Store keeps the partitions' checkpoints and decides who owns each one. Both serving stores
// implement it; the same store must also fence the role's own writes (see model.Fence).
type Store interface {
	// Claim makes the caller the owner of (group, partition) and returns its fence, whose
	// epoch is higher than every earlier claim's, and the last committed head (nil if none).
	// From then on an older fence can commit no head.
	Claim(ctx context.Context, group string, partition int32) (model.Fence, []byte, error)
	// AppendLog durably writes the chunks of checkpoint seq under f's epoch. It is
	// idempotent: writing the same (epoch, seq) again with the same chunks changes nothing.
	AppendLog(ctx context.Context, f model.Fence, seq int64, chunks [][]byte) error
	// CommitHead replaces the partition's head if f still owns the partition, and returns
	// model.ErrFenced otherwise. Nil means it is durable.
	CommitHead(ctx context.Context, f model.Fence, head []byte) error
	// ReadLog calls fn for every chunk of the given segments, in (epoch, seq, index) order.
	ReadLog(ctx context.Context, group string, partition int32, segments []*pb.LogSegment, fn func(LogChunk) error) error
	// TrimLog deletes the partition's log rows before (epoch, seq).
	TrimLog(ctx context.Context, group string, partition int32, epoch, seq int64) error
}

// LogChunk is one stored chunk of a checkpoint: Index of Count.
type LogChunk struct {
	Epoch, Seq   int64
	Index, Count int32
	Data         []byte
}

// Level says how much of its output a task writes in one flush.
type Level int

const (
	// Live: the rows readers watch second by second, and rows that became final.
	Live Level = iota
	// Full: also the slower-changing rows (rollups, sessions); about once a second, and
	// before every checkpoint. Output a task paces even here (open sessions) it must
	// checkpoint as still to be written.
	Full
	// All: every changed row; before a partition is given up.
	All
)

// Role is what a stateful role gives the loop: a name, the version of its checkpoint
// entries, and a task per partition.
type Role interface {
	// Name is the role's name in metrics and checkpoint heads ("stream").
	Name() string
	// StateVersion is the version of the meaning of the role's StateEntry cases; a head
	// written by a newer version is refused.
	StateVersion() uint32
	// NewTask returns the empty state of one partition. emit is nil unless the loop is
	// transactional (Config.TransactionalID).
	NewTask(partition int32, emit Emit) Task
}

// Emit produces one output record in the loop's current Kafka transaction, which commits
// together with the input offsets of what was applied: each output record is in Kafka
// exactly once. Records emitted while a restored partition replays what an earlier owner
// already committed are dropped. Only Apply (ApplyRecord) may emit: a transaction is open
// only while records are applied, and an emit outside one ends Run.
type Emit func(r *kgo.Record)

// Task is one partition's state. The loop calls it from one goroutine at a time.
type Task interface {
	// Apply adds one valid, correctly routed, first-seen event read from topic (a logical
	// name). It reports whether the event was late: counted, not added.
	Apply(topic string, e *pb.Envelope) (late bool)
	// Flush writes the output due at now under fence f, with wm the partition's watermark
	// (unix ms, 0 until known). A failed write is kept and retried first by the next Flush.
	// model.ErrFenced means the partition belongs to someone else now. A task may hand its
	// slower rows to a writer of its own beside the loop (see Writing and Durable); at All
	// everything is written before Flush returns.
	Flush(ctx context.Context, f model.Fence, wm int64, now time.Time, level Level) error
	// Writing reports whether output handed off by an earlier Flush is still being written.
	// A Full flush then leaves due rows unwritten, so the loop does not checkpoint the
	// partition until it is not.
	Writing() bool
	// Durable returns a wait for the output handed off so far to be written: the loop
	// commits a checkpoint only after it. It returns model.ErrFenced once a newer owner has
	// claimed the partition.
	Durable() func(ctx context.Context) error
	// Close stops the task's writes beside the loop: the partition is gone.
	Close()
	// Changes emits the entries that bring a restored state from the previous call's point to
	// now (with full, the whole state) and starts tracking changes afresh.
	Changes(full bool, emit func(*pb.StateEntry))
	// Restore applies one entry read back from a checkpoint, in the order they were emitted.
	Restore(e *pb.StateEntry) error
	// Late is the number of events counted late so far (restored with the state).
	Late() int64
}

// RecordTask is a Task that reads the record an event came in, its key and headers: a
// stage fed through a repartition topic (the loop calls ApplyRecord instead of Apply).
type RecordTask interface {
	Task
	ApplyRecord(topic string, r *kgo.Record, e *pb.Envelope) (late bool)
}

// Config is the loop's part of a role's configuration.
type Config struct {
	Group  string
	Topics []string // logical input topics, co-partitioned by user id (or by KeyOf)
	// KeyOf is what the input is partitioned by (nil: the event's user id, for the event
	// topics): a record outside the partition murmur2(KeyOf) gives is misrouted.
	KeyOf func(r *kgo.Record, e *pb.Envelope) string
	// DedupID is what a duplicate repeats (nil: the event id).
	DedupID func(r *kgo.Record, e *pb.Envelope) string
	// Partitions each input topic must have: state is keyed by partition number.
	Partitions         int32
	FlushInterval      time.Duration // how often output is written (freshness)
	FullInterval       time.Duration // how often each partition writes Full output
	CheckpointInterval time.Duration // how often each partition checkpoints
	// MaxClockSkew: an event whose time is further ahead of its record's Kafka timestamp
	// (and of the clock) is a dead letter ("clock_skew").
	MaxClockSkew time.Duration
	// DedupHorizon: event ids are remembered until the watermark passes their event time's
	// minute by this much; a later copy is not recognised (roles that drop late events set
	// it to their allowed lateness: a later copy is late anyway).
	DedupHorizon time.Duration
	// ChunkBytes bounds one stored chunk of a checkpoint.
	ChunkBytes int
	// CompactBytes: once the log since the last full snapshot is larger than this and than
	// twice the snapshot, the next checkpoint is a full snapshot and the log is trimmed.
	CompactBytes int64
	// ReadyMaxLag: /readyz is false while the records behind the last stable offsets, over
	// all owned partitions, are more than this.
	ReadyMaxLag int64
	// WriteTimeout bounds one attempt to write a flush or a checkpoint.
	WriteTimeout time.Duration
	// RevokeTimeout bounds the final flush and checkpoint of partitions being given up;
	// past it they are dropped (the next owner replays from the last checkpoint).
	RevokeTimeout time.Duration
	// ShutdownTimeout bounds the final flush and checkpoint on SIGTERM.
	ShutdownTimeout time.Duration
	// MaxPollRecords bounds one poll.
	MaxPollRecords int
	// TransactionalID, when set, makes the loop transactional (Kafka to Kafka exactly once):
	// what tasks emit is produced in a transaction that also commits the group's offsets of
	// what was applied, every FlushInterval; a restored partition replays from its
	// checkpoint without emitting until it passes those offsets. Unique per instance.
	TransactionalID string
}

// DefaultConfig holds the defaults; Group and Topics must be set.
func DefaultConfig() Config {
	return Config{
		Partitions:         4,
		FlushInterval:      250 * time.Millisecond,
		FullInterval:       time.Second,
		CheckpointInterval: 5 * time.Second,
		MaxClockSkew:       5 * time.Minute,
		DedupHorizon:       2 * time.Minute,
		ChunkBytes:         256 << 10,
		CompactBytes:       16 << 20,
		ReadyMaxLag:        1_000_000,
		WriteTimeout:       10 * time.Second,
		RevokeTimeout:      10 * time.Second,
		ShutdownTimeout:    20 * time.Second,
		MaxPollRecords:     20_000,
	}
}
