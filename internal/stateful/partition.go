package stateful

import (
	"context"
	"maps"
	"sync"
	"time"

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

	offsets  map[string]int64 // logical topic -> next offset to read
	maxEvent map[string]int64 // logical topic -> highest bounded event time (unix ms)
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
		lso: map[string]int64{}, created: time.Now(), dedup: newDedup(), ctx: ctx, cancel: cancel,
	}
}

// caughtUp reports whether everything in topic up to its last stable offset, as last seen,
// has been read.
func (p *partition) caughtUp(topic string) bool {
	lso, ok := p.lso[topic]
	return ok && p.offsets[topic] >= lso
}

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
// lowest maximum over the topics that still have records to read. A caught-up topic holds
// nothing back; a topic not yet read holds everything back; with every topic caught up it
// is the highest maximum (everything in Kafka has been read). 0: not known yet.
func (p *partition) watermark(topics []string) int64 {
	wm, behind, highest := int64(-1), false, int64(0)
	for _, t := range topics {
		m, seen := p.maxEvent[t]
		highest = max(highest, m)
		if p.caughtUp(t) {
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

// lag is the records behind the last stable offsets (unknown topics count as none).
func (p *partition) lag(topic string) int64 {
	lso, ok := p.lso[topic]
	if !ok {
		return 0
	}
	return max(lso-p.offsets[topic], 0)
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
}

// nextCheckpoint collects the changes since the previous checkpoint (or, when the log has
// grown past the compaction threshold, the whole state), advances the chain and returns
// what to write. The caller has just written all of the task's output.
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
	return &checkpointJob{fence: p.fence, seq: p.seq, chunks: chunks, bytes: n, head: head, full: full, offsets: maps.Clone(p.offsets)}, nil
}
