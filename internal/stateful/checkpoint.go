package stateful

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"google.golang.org/protobuf/encoding/protodelim"
	"google.golang.org/protobuf/proto"

	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
)

// FormatVersion is the version of the checkpoint framing this build writes and the newest
// it reads: the head, the chunks (length-delimited StateEntry messages) and the generic
// entries. Roles version their own entries (Role.StateVersion).
const FormatVersion = 1

// ErrUnreadable wraps every reason a checkpoint cannot be restored. It is never retried:
// the partition's state has to be rebuilt (see docs/operations.md, "Unreadable checkpoint").
var ErrUnreadable = errors.New("checkpoint unreadable")

// chunker packs entries into chunks of at most limit bytes (an entry larger than limit gets
// a chunk of its own; entries are bounded by their producers).
type chunker struct {
	limit  int
	chunks [][]byte
	cur    bytes.Buffer
	bytes  int64
	err    error
}

func (c *chunker) add(e *pb.StateEntry) {
	if c.err != nil {
		return
	}
	size := proto.Size(e)
	if c.cur.Len() > 0 && c.cur.Len()+size+10 > c.limit {
		c.cut()
	}
	if _, err := protodelim.MarshalTo(&c.cur, e); err != nil {
		c.err = fmt.Errorf("encode checkpoint entry: %w", err)
	}
}

func (c *chunker) cut() {
	c.chunks = append(c.chunks, bytes.Clone(c.cur.Bytes()))
	c.bytes += int64(c.cur.Len())
	c.cur.Reset()
}

// finish returns the chunks; a checkpoint has at least one, so every checkpoint in the
// head's segments can be checked for presence on restore.
func (c *chunker) finish() ([][]byte, int64, error) {
	if c.cur.Len() > 0 || len(c.chunks) == 0 {
		c.cut()
	}
	return c.chunks, c.bytes, c.err
}

// decodeHead parses a stored head and checks that this build can continue it.
func decodeHead(raw []byte, role Role, partitions int32) (*pb.CheckpointHead, error) {
	h := &pb.CheckpointHead{}
	if err := proto.Unmarshal(raw, h); err != nil {
		return nil, fmt.Errorf("%w: head does not decode: %v", ErrUnreadable, err)
	}
	switch {
	case h.GetFormatVersion() == 0 || h.GetFormatVersion() > FormatVersion:
		return nil, fmt.Errorf("%w: format version %d, this build reads 1..%d", ErrUnreadable, h.GetFormatVersion(), FormatVersion)
	case h.GetRole() != role.Name():
		return nil, fmt.Errorf("%w: written by role %q, not %q (two roles share a consumer group name?)", ErrUnreadable, h.GetRole(), role.Name())
	case h.GetRoleVersion() == 0 || h.GetRoleVersion() > role.StateVersion():
		return nil, fmt.Errorf("%w: %s state version %d, this build reads 1..%d", ErrUnreadable, role.Name(), h.GetRoleVersion(), role.StateVersion())
	case h.GetPartitions() != partitions:
		return nil, fmt.Errorf("%w: written for %d partitions per topic, the topics now have %d: state is keyed by partition, so it cannot continue", ErrUnreadable, h.GetPartitions(), partitions)
	case len(h.GetSegments()) == 0:
		return nil, fmt.Errorf("%w: head lists no checkpoints", ErrUnreadable)
	}
	return h, nil
}

// readState streams the checkpoints a head lists into apply, checking that every
// checkpoint is there with all its chunks. It returns the bytes read.
func readState(ctx context.Context, st Store, group string, part int32, h *pb.CheckpointHead, apply func(*pb.StateEntry) error) (int64, error) {
	type pos struct{ epoch, seq int64 }
	var (
		next   int32 // index of the next chunk of the current checkpoint
		cur    pos
		n      int64
		seen   = map[pos]bool{}
		reader = bytes.NewReader(nil)
	)
	err := st.ReadLog(ctx, group, part, h.GetSegments(), func(c LogChunk) error {
		p := pos{c.Epoch, c.Seq}
		if p != cur {
			if next != 0 {
				return fmt.Errorf("%w: checkpoint %d/%d has %d of its chunks", ErrUnreadable, cur.epoch, cur.seq, next)
			}
			cur = p
		}
		if c.Index != next {
			return fmt.Errorf("%w: checkpoint %d/%d: chunk %d where %d was due", ErrUnreadable, c.Epoch, c.Seq, c.Index, next)
		}
		next++
		if next == c.Count {
			seen[p], next = true, 0
		}
		n += int64(len(c.Data))
		reader.Reset(c.Data)
		for {
			e := &pb.StateEntry{}
			err := protodelim.UnmarshalFrom(reader, e)
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("%w: checkpoint %d/%d chunk %d: %v", ErrUnreadable, c.Epoch, c.Seq, c.Index, err)
			}
			if err := apply(e); err != nil {
				return err
			}
		}
	})
	if err != nil {
		return n, err
	}
	if next != 0 {
		return n, fmt.Errorf("%w: checkpoint %d/%d is missing chunks", ErrUnreadable, cur.epoch, cur.seq)
	}
	for _, s := range h.GetSegments() {
		for q := s.GetFirstSeq(); q <= s.GetLastSeq(); q++ {
			if !seen[pos{s.GetEpoch(), q}] {
				return n, fmt.Errorf("%w: checkpoint %d/%d listed by the head is missing from the log", ErrUnreadable, s.GetEpoch(), q)
			}
		}
	}
	return n, nil
}
