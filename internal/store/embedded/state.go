package embedded

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/bytebasket/bytebasket/internal/model"
	"github.com/bytebasket/bytebasket/internal/stateful"
	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
)

// Fencing in the embedded store: the store lives in one process, so claims, row writes and
// head commits are serialized by one mutex, and a write whose fence is not the partition's
// newest claim is refused with model.ErrFenced. The newest epochs are kept in memory too
// (loaded on first use), so a row write costs no read.

var _ stateful.Store = (*Store)(nil)

// epochLocked returns the partition's newest claimed epoch (0: never claimed) and its head.
func (s *Store) epochLocked(group string, partition int32) (int64, []byte, error) {
	var epoch int64
	var head []byte
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(stateHeadKey(group, partition))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			if len(v) < 8 {
				return errCorrupt
			}
			epoch = int64(binary.BigEndian.Uint64(v))
			if len(v) > 8 {
				head = append([]byte(nil), v[8:]...)
			}
			return nil
		})
	})
	return epoch, head, err
}

func (s *Store) putHeadLocked(group string, partition int32, epoch int64, head []byte) error {
	v := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(head)), uint64(epoch))
	v = append(v, head...)
	err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(stateHeadKey(group, partition), v) })
	if err == nil {
		err = s.db.Sync() // a claim or a checkpoint must survive a crash before it is relied on
	}
	return err
}

// Claim makes the caller the partition's owner: the epoch goes up by one.
func (s *Store) Claim(ctx context.Context, group string, partition int32) (model.Fence, []byte, error) {
	if err := ctx.Err(); err != nil {
		return model.Fence{}, nil, err
	}
	s.fenceMu.Lock()
	defer s.fenceMu.Unlock()
	epoch, head, err := s.epochLocked(group, partition)
	if err != nil {
		return model.Fence{}, nil, fmt.Errorf("embedded: read state head %s/%d: %w", group, partition, err)
	}
	epoch++
	if err := s.putHeadLocked(group, partition, epoch, head); err != nil {
		return model.Fence{}, nil, fmt.Errorf("embedded: claim %s/%d: %w", group, partition, err)
	}
	s.epochs[fenceKey{group, partition}] = epoch
	return model.Fence{Group: group, Partition: partition, Epoch: epoch}, head, nil
}

type fenceKey struct {
	group     string
	partition int32
}

// checkFenceLocked returns model.ErrFenced unless f is the partition's newest claim.
func (s *Store) checkFenceLocked(f model.Fence) error {
	cur, ok := s.epochs[fenceKey{f.Group, f.Partition}]
	if !ok {
		var err error
		if cur, _, err = s.epochLocked(f.Group, f.Partition); err != nil {
			return fmt.Errorf("embedded: read state head %s/%d: %w", f.Group, f.Partition, err)
		}
		s.epochs[fenceKey{f.Group, f.Partition}] = cur
	}
	if cur != f.Epoch {
		return fmt.Errorf("embedded: %s/%d epoch %d (now %d): %w", f.Group, f.Partition, f.Epoch, cur, model.ErrFenced)
	}
	return nil
}

// AppendLog writes the chunks of checkpoint seq under f's epoch.
func (s *Store) AppendLog(ctx context.Context, f model.Fence, seq int64, chunks [][]byte) error {
	return s.update(ctx, func(w *writer) {
		for i, c := range chunks {
			v := binary.AppendUvarint(make([]byte, 0, 4+len(c)), uint64(len(chunks)))
			w.set(stateLogKey(f.Group, f.Partition, f.Epoch, seq, int32(i)), append(v, c...), 0)
		}
	})
}

// CommitHead replaces the head if f still owns the partition; it is synced to disk.
func (s *Store) CommitHead(ctx context.Context, f model.Fence, head []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.fenceMu.Lock()
	defer s.fenceMu.Unlock()
	if err := s.checkFenceLocked(f); err != nil {
		return err
	}
	if err := s.putHeadLocked(f.Group, f.Partition, f.Epoch, head); err != nil {
		return fmt.Errorf("embedded: commit state head %s/%d: %w", f.Group, f.Partition, err)
	}
	return nil
}

// ReadLog reads the chunks of each segment in order.
func (s *Store) ReadLog(ctx context.Context, group string, partition int32, segments []*pb.LogSegment, fn func(stateful.LogChunk) error) error {
	prefix := stateLogPrefix(group, partition)
	for _, sg := range segments {
		seek := stateLogKey(group, partition, sg.GetEpoch(), sg.GetFirstSeq(), 0)
		err := s.scan(ctx, prefix, seek, 4, func(k, v []byte) (bool, error) {
			if len(k) != len(prefix)+20 {
				return false, errCorrupt
			}
			c := stateful.LogChunk{
				Epoch: int64(binary.BigEndian.Uint64(k[len(prefix):])), Seq: int64(binary.BigEndian.Uint64(k[len(prefix)+8:])),
				Index: int32(binary.BigEndian.Uint32(k[len(prefix)+16:])),
			}
			if c.Epoch != sg.GetEpoch() || c.Seq > sg.GetLastSeq() {
				return false, nil
			}
			n, used := binary.Uvarint(v)
			if used <= 0 {
				return false, errCorrupt
			}
			c.Count, c.Data = int32(n), append([]byte(nil), v[used:]...)
			return true, fn(c)
		})
		if err != nil {
			return fmt.Errorf("embedded: read state log %s/%d: %w", group, partition, err)
		}
	}
	return nil
}

// TrimLog deletes the log rows before (epoch, seq).
func (s *Store) TrimLog(ctx context.Context, group string, partition int32, epoch, seq int64) error {
	prefix := stateLogPrefix(group, partition)
	end := stateLogKey(group, partition, epoch, seq, 0)
	var keys [][]byte
	err := s.scan(ctx, prefix, prefix, 0, func(k, _ []byte) (bool, error) {
		if string(k) >= string(end) {
			return false, nil
		}
		keys = append(keys, append([]byte(nil), k...))
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("embedded: trim state log %s/%d: %w", group, partition, err)
	}
	return s.update(ctx, func(w *writer) {
		for _, k := range keys {
			w.del(k)
		}
	})
}

// ResetState forgets a partition's checkpoint (its head and log), keeping its epoch, so the
// next owner starts empty at the topics' first offsets.
func (s *Store) ResetState(ctx context.Context, group string, partition int32) error {
	s.fenceMu.Lock()
	epoch, _, err := s.epochLocked(group, partition)
	if err == nil {
		err = s.putHeadLocked(group, partition, epoch, nil)
	}
	s.fenceMu.Unlock()
	if err != nil {
		return fmt.Errorf("embedded: reset state %s/%d: %w", group, partition, err)
	}
	return s.TrimLog(ctx, group, partition, 1<<62, 0)
}
