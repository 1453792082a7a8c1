package stateful

import (
	"context"
	"maps"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bytebasket/bytebasket/internal/model"
	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
)

// partition is the loop's state of one owned partition number (of every input topic).
type partition struct {
	id    int32
	fence model.Fence
	task  Task

	offsets map[string]int64 // logical topic -> next offset to apply: what a checkpoint covers
	// replayUntil: a transactional loop's group offsets at the restore; output of records
	// before them was committed by an earlier owner. silent: the record being applied is one.
	replayUntil map[string]int64
	silent      bool
	maxEvent    map[string]int64 // logical topic -> highest bounded event time (unix ms)
	// Records fetched and not yet applied, per topic in offset order, and the offset after
	// the last one fetched (see Loop.drain).
	queues  map[string][]pending
	fetched map[string]int64
	paused  map[string]bool
	// lso is each topic's last stable offset as last seen, after the assignment; a topic
	// is caught up when its next offset reached it.
	lso        map[string]int64
	created    time.Time
	dedup      *dedup
	dedupFrom  int64 // buckets before it are expired (unix ms)
	duplicates int64

	// The checkpoint chain: the head's segments as of the newest checkpoint started.
	segments  []*pb.LogSegment
	seq       int64 // newest checkpoint sequence number under fence.Epoch
	baseBytes int64
	logBytes  int64

	// ctx ends the partition's background checkpoint writes when it is lost or fenced.
	ctx    context.Context
	cancel context.CancelFunc

	ckptMu   sync.Mutex // guards the fields below: checkpoints are written beside the loop
	lastCkpt time.Time
	inFlight chan struct{} // closed when the checkpoint being written finishes; nil if none
	ckptErr  error         // why the last checkpoint write gave up, if it did
}

// newPartition makes the state of a claimed partition. Its context is not the loop's: the
// final flush and checkpoint on shutdown run after the loop was told to stop.
func newPartition(id int32, f model.Fence, task Task) *partition {
	ctx, cancel := context.WithCancel(context.Background())
	return &partition{
		id: id, fence: f, task: task, offsets: map[string]int64{}, maxEvent: map[string]int64{},
		queues: map[string][]pending{}, fetched: map[string]int64{}, paused: map[string]bool{},
		lso: map[string]int64{}, created: time.Now(), dedup: newDedup(), ctx: ctx, cancel: cancel,
	}
}

// pending is a fetched record waiting for its turn, checked (Loop.check).
type pending struct {
	r       *kgo.Record
	e       *pb.Envelope // nil for control records and dead letters
	err     error        // why it is a dead letter
	control bool         // a transaction marker: only moves the offset
	key     int64        // event time (unix ms); a dead letter's record timestamp
	bound   int64        // the earlier of the record's timestamp and its receipt (unix ms)
}

// enqueue queues a fetched record (one fetched again after a restore is skipped).
func (p *partition) enqueue(topic string, pd pending) {
	next, ok := p.fetched[topic]
	if !ok {
		next = p.offsets[topic]
	}
	if pd.r.Offset < next {
		return
	}
	p.fetched[topic] = pd.r.Offset + 1
	p.queues[topic] = append(p.queues[topic], pd)
}

func (p *partition) queued(topic string) int { return len(p.queues[topic]) }

func (p *partition) pop(topic string) pending {
	q := p.queues[topic]
	pd := q[0]
	q[0] = pending{}
	if len(q) == 1 {
		p.queues[topic] = q[:0] // reuse the array
	} else {
		p.queues[topic] = q[1:]
	}
	return pd
}

// next picks the topic whose queued record comes next: a transaction marker at once,
// otherwise the earliest head, unless a topic with nothing queued is not caught up (it may
// still have earlier records).
func (p *partition) next(topics []string) (string, bool) {
	pick, best := "", int64(0)
	for _, t := range topics {
		q := p.queues[t]
		if len(q) == 0 {
			if !p.caughtUp(t) {
				return "", false
			}
			continue
		}
		if q[0].control {
			return t, true
		}
		if pick == "" || q[0].key < best {
			pick, best = t, q[0].key
		}
	}
	return pick, pick != ""
}

// caughtUp reports whether everything in topic up to its last stable offset, as last seen,
// has been fetched.
func (p *partition) caughtUp(topic string) bool {
	lso, ok := p.lso[topic]
	if !ok {
		return false
	}
	return p.position(topic) >= lso
}

// position is the next offset of topic to fetch: records queued are in memory, not lost.
func (p *partition) position(topic string) int64 {
	if next, ok := p.fetched[topic]; ok {
		return next
	}
	return p.offsets[topic]
}

// idle reports whether a topic has nothing left to apply: caught up and nothing queued.
func (p *partition) idle(topic string) bool { return len(p.queues[topic]) == 0 && p.caughtUp(topic) }

// observeLSO records a last stable offset seen at time at; one seen before the partition
// was restored says nothing about this assignment.
func (p *partition) observeLSO(topic string, lso int64, at time.Time) {
	if at.Before(p.created) {
		return
	}
	if old, ok := p.lso[topic]; !ok || lso > old {
		p.lso[topic] = lso
	}
}

// watermark is the event time (unix ms) every topic of the partition has reached: the
// lowest maximum over the topics that still have records to apply. An idle topic (caught
// up, nothing queued) holds nothing back; a topic not yet read holds everything back; with
// every topic idle it is the highest maximum (everything in Kafka is applied). 0: not
// known yet.
func (p *partition) watermark(topics []string) int64 {
	wm, behind, highest := int64(-1), false, int64(0)
	for _, t := range topics {
		m, seen := p.maxEvent[t]
		highest = max(highest, m)
		if p.idle(t) {
			continue
		}
		behind = true
		if !seen {
			return 0
		}
		if wm < 0 || m < wm {
			wm = m
		}
	}
	if !behind {
		return highest
	}
	return wm
}

// lag is the records behind the last stable offset; ok is false until this assignment has
// seen that offset (a probe or a fetch after the restore), when lag is not known.
func (p *partition) lag(topic string) (n int64, ok bool) {
	lso, ok := p.lso[topic]
	if !ok {
		return 0, false
	}
	return max(lso-p.offsets[topic], 0), true
}

// checkpointJob is one checkpoint, built in the loop and written beside it.
type checkpointJob struct {
	fence   model.Fence
	seq     int64
	chunks  [][]byte
	bytes   int64
	head    []byte
	full    bool
	offsets map[string]int64
	durable func(ctx context.Context) error // the task's output before the checkpoint is written
}

// nextCheckpoint collects the changes since the previous checkpoint (or, when the log has
// grown past the compaction threshold, the whole state), advances the chain and returns
// what to write. The caller has just flushed the task's output (level Full or All).
func (p *partition) nextCheckpoint(role Role, cfg Config, now time.Time) (*checkpointJob, error) {
	full := len(p.segments) == 0 || p.logBytes > max(cfg.CompactBytes, 2*p.baseBytes)
	c := chunker{limit: cfg.ChunkBytes}
	p.dedup.changes(full, c.add)
	p.task.Changes(full, c.add)
	chunks, n, err := c.finish()
	if err != nil {
		return nil, err
	}
	p.seq++
	switch last := len(p.segments) - 1; {
	case full:
		p.segments = []*pb.LogSegment{{Epoch: p.fence.Epoch, FirstSeq: p.seq, LastSeq: p.seq}}
		p.baseBytes, p.logBytes = n, 0
	case p.segments[last].GetEpoch() == p.fence.Epoch:
		p.segments[last].LastSeq = p.seq
		p.logBytes += n
	default: // the first checkpoint of this owner continues the previous owner's chain
		p.segments = append(p.segments, &pb.LogSegment{Epoch: p.fence.Epoch, FirstSeq: p.seq, LastSeq: p.seq})
		p.logBytes += n
	}
	segs := make([]*pb.LogSegment, len(p.segments))
	for i, s := range p.segments {
		segs[i] = proto.Clone(s).(*pb.LogSegment)
	}
	head, err := proto.Marshal(&pb.CheckpointHead{
		FormatVersion: FormatVersion, Role: role.Name(), RoleVersion: role.StateVersion(),
		Partitions: cfg.Partitions, Offsets: maps.Clone(p.offsets), MaxEventMs: maps.Clone(p.maxEvent),
		Segments: segs, BaseBytes: p.baseBytes, LogBytes: p.logBytes, UpdatedAt: timestamppb.New(now),
		Duplicates: p.duplicates,
	})
	if err != nil {
		return nil, err
	}
	return &checkpointJob{fence: p.fence, seq: p.seq, chunks: chunks, bytes: n, head: head, full: full,
		offsets: maps.Clone(p.offsets), durable: p.task.Durable()}, nil
}
