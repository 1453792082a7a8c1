package cassandra

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/apache/cassandra-gocql-driver/v2"

	"github.com/bytebasket/bytebasket/internal/model"
	"github.com/bytebasket/bytebasket/internal/stateful"
	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
)

// Fencing on Cassandra. A partition's owner holds an epoch, claimed with a lightweight
// transaction, and every row it writes carries a write timestamp (USING TIMESTAMP, in
// microseconds like Cassandra's own) inside its lease: [epoch, lease_until). A new owner
// claims an epoch at or after the old lease's end, so every one of its timestamps is higher
// than any the old owner can use, and Cassandra's last-write-wins keeps the new owner's rows
// whatever order the writes arrive in. Leases are extended by the owner (again a lightweight
// transaction that fails once someone else has claimed), so timestamps stay close to real
// time; a checkpoint head is committed only IF epoch = the writer's.

// leaseLength is how far ahead of its epoch an owner may stamp rows; renewLead is how long
// before the lease ends it is extended.
const (
	leaseLength = 30 * time.Second
	renewLead   = 10 * time.Second
)

// lease is this process's view of one claimed partition.
type lease struct {
	mu    sync.Mutex
	epoch int64 // microseconds
	until int64 // exclusive: no row timestamp reaches it
	last  int64 // the last timestamp used
}

type leaseKey struct {
	group     string
	partition int32
}

func nowMicros() int64 { return time.Now().UnixMicro() }

var _ stateful.Store = (*Store)(nil)

// Claim makes the caller the partition's owner (see the fencing note above).
func (st *Store) Claim(ctx context.Context, group string, partition int32) (model.Fence, []byte, error) {
	for {
		var epoch, until int64
		var head []byte
		found := true
		err := st.s.Query(st.selHead, group, partition).Consistency(gocql.LocalSerial).
			ScanContext(ctx, &epoch, &until, &head)
		if errors.Is(err, gocql.ErrNotFound) {
			found, err = false, nil
		}
		if err != nil {
			return model.Fence{}, nil, fmt.Errorf("cassandra: read state head %s/%d: %w", group, partition, err)
		}
		newEpoch := max(nowMicros(), until, epoch+1)
		newUntil := newEpoch + leaseLength.Microseconds()
		// The claim holds only if the row is still as read: an owner that renewed its lease
		// since would stamp rows past the new epoch (its lease end is the new epoch's floor).
		q := st.s.Query(st.claimNewHead, group, partition, newEpoch, newUntil)
		if found {
			q = st.s.Query(st.claimHead, newEpoch, newUntil, group, partition, epoch, until)
		}
		applied, err := q.MapScanCASContext(ctx, map[string]any{})
		if err != nil {
			return model.Fence{}, nil, fmt.Errorf("cassandra: claim %s/%d: %w", group, partition, err)
		}
		if !applied {
			continue // another claimant came first: read again and outbid it
		}
		// The old owner may have committed a head between the read and the claim (a commit
		// does not touch the epoch or the lease); from the claim on it can commit none, so
		// the head read now is the one to restore.
		var e2, u2 int64
		if err := st.s.Query(st.selHead, group, partition).Consistency(gocql.LocalSerial).
			ScanContext(ctx, &e2, &u2, &head); err != nil {
			return model.Fence{}, nil, fmt.Errorf("cassandra: read claimed state head %s/%d: %w", group, partition, err)
		}
		if e2 != newEpoch {
			continue // claimed again already
		}
		st.leaseMu.Lock()
		st.leases[leaseKey{group, partition}] = &lease{epoch: newEpoch, until: newUntil, last: newEpoch - 1}
		st.leaseMu.Unlock()
		if len(head) == 0 {
			head = nil
		}
		return model.Fence{Group: group, Partition: partition, Epoch: newEpoch}, head, nil
	}
}

// stamp returns the write timestamp for f's next write, extending the lease first when it
// is about to run out; model.ErrFenced once another owner has claimed the partition.
func (st *Store) stamp(ctx context.Context, f model.Fence) (int64, error) {
	st.leaseMu.Lock()
	l := st.leases[leaseKey{f.Group, f.Partition}]
	st.leaseMu.Unlock()
	if l == nil || l.epoch != f.Epoch {
		return 0, fmt.Errorf("cassandra: %s/%d epoch %d: %w", f.Group, f.Partition, f.Epoch, model.ErrFenced)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	ts := max(nowMicros(), l.last+1)
	if ts >= l.until-renewLead.Microseconds() {
		until := max(ts, l.until) + leaseLength.Microseconds()
		cur := map[string]any{}
		applied, err := st.s.Query(st.renewLease, until, f.Group, f.Partition, f.Epoch).MapScanCASContext(ctx, cur)
		switch {
		case err == nil && !applied:
			return 0, fmt.Errorf("cassandra: %s/%d epoch %d (now %v): %w", f.Group, f.Partition, f.Epoch, cur["epoch"], model.ErrFenced)
		case err == nil:
			l.until = until
		case ts >= l.until:
			return 0, fmt.Errorf("cassandra: extend lease of %s/%d: %w", f.Group, f.Partition, err)
		}
		// A failed extension with time left on the lease: write now, extend next time.
	}
	l.last = ts
	return ts, nil
}

// AppendLog writes the chunks of checkpoint seq under f's epoch.
func (st *Store) AppendLog(ctx context.Context, f model.Fence, seq int64, chunks [][]byte) error {
	rows := make([]row, len(chunks))
	for i, c := range chunks {
		rows[i] = row{fmt.Sprintf("checkpoint %s/%d %d/%d chunk %d", f.Group, f.Partition, f.Epoch, seq, i),
			st.insLog, []any{f.Group, f.Partition, f.Epoch, seq, int32(i), int32(len(chunks)), c}}
	}
	return st.writeAll(ctx, rows, 0, 0)
}

// CommitHead replaces the head if f still owns the partition.
func (st *Store) CommitHead(ctx context.Context, f model.Fence, head []byte) error {
	cur := map[string]any{}
	applied, err := st.s.Query(st.commitHead, head, time.Now(), f.Group, f.Partition, f.Epoch).MapScanCASContext(ctx, cur)
	if err != nil {
		return fmt.Errorf("cassandra: commit state head %s/%d: %w", f.Group, f.Partition, err)
	}
	if !applied {
		return fmt.Errorf("cassandra: %s/%d epoch %d (now %v): %w", f.Group, f.Partition, f.Epoch, cur["epoch"], model.ErrFenced)
	}
	return nil
}

// ReadLog reads the chunks of each segment in order.
func (st *Store) ReadLog(ctx context.Context, group string, partition int32, segments []*pb.LogSegment, fn func(stateful.LogChunk) error) error {
	for _, s := range segments {
		// Chunks are up to a few hundred KiB: small pages keep the driver's memory bounded.
		iter := st.query(st.selLog, group, partition, s.GetEpoch(), s.GetFirstSeq(), s.GetLastSeq()).PageSize(8).IterContext(ctx)
		var c stateful.LogChunk
		for iter.Scan(&c.Epoch, &c.Seq, &c.Index, &c.Count, &c.Data) {
			if err := fn(c); err != nil {
				_ = iter.Close()
				return err
			}
			c.Data = nil // Scan would otherwise reuse the buffer fn may still hold
		}
		if err := iter.Close(); err != nil {
			return fmt.Errorf("cassandra: read state log %s/%d epoch %d: %w", group, partition, s.GetEpoch(), err)
		}
	}
	return nil
}

// TrimLog deletes the log rows before (epoch, seq): two range deletions.
func (st *Store) TrimLog(ctx context.Context, group string, partition int32, epoch, seq int64) error {
	if err := st.query(st.trimLogEpochs, group, partition, epoch).ExecContext(ctx); err != nil {
		return fmt.Errorf("cassandra: trim state log %s/%d: %w", group, partition, err)
	}
	if err := st.query(st.trimLogSeqs, group, partition, epoch, seq).ExecContext(ctx); err != nil {
		return fmt.Errorf("cassandra: trim state log %s/%d: %w", group, partition, err)
	}
	return nil
}

// stateStatements are the statements of the checkpoint tables.
func (st *Store) prepareState(ks string) []string {
	st.selHead = "SELECT epoch, lease_until, head FROM " + ks + ".state_heads WHERE group_name = ? AND partition = ?"
	st.claimHead = "UPDATE " + ks + ".state_heads SET epoch = ?, lease_until = ? WHERE group_name = ? AND partition = ? IF epoch = ? AND lease_until = ?"
	st.claimNewHead = "INSERT INTO " + ks + ".state_heads (group_name, partition, epoch, lease_until) VALUES (?, ?, ?, ?) IF NOT EXISTS"
	st.renewLease = "UPDATE " + ks + ".state_heads SET lease_until = ? WHERE group_name = ? AND partition = ? IF epoch = ?"
	st.commitHead = "UPDATE " + ks + ".state_heads SET head = ?, updated_at = ? WHERE group_name = ? AND partition = ? IF epoch = ?"
	st.insLog = insert(ks, "state_log", "group_name, partition, epoch, seq, chunk, chunks, data")
	st.selLog = "SELECT epoch, seq, chunk, chunks, data FROM " + ks + ".state_log" +
		" WHERE group_name = ? AND partition = ? AND epoch = ? AND seq >= ? AND seq <= ?"
	st.trimLogEpochs = "DELETE FROM " + ks + ".state_log WHERE group_name = ? AND partition = ? AND epoch < ?"
	st.trimLogSeqs = "DELETE FROM " + ks + ".state_log WHERE group_name = ? AND partition = ? AND epoch = ? AND seq < ?"
	return []string{st.selHead, st.claimHead, st.claimNewHead, st.renewLease, st.commitHead, st.insLog, st.selLog, st.trimLogEpochs, st.trimLogSeqs}
}

// ResetState forgets a partition's checkpoint (its head and log), keeping its epoch, so the
// next owner starts empty at the topics' first offsets. Stop the group's instances first.
func (st *Store) ResetState(ctx context.Context, group string, partition int32) error {
	if _, err := st.s.Query("UPDATE "+st.keyspace+".state_heads SET head = null WHERE group_name = ? AND partition = ? IF EXISTS",
		group, partition).MapScanCASContext(ctx, map[string]any{}); err != nil {
		return fmt.Errorf("cassandra: reset state head %s/%d: %w", group, partition, err)
	}
	if err := st.query("DELETE FROM "+st.keyspace+".state_log WHERE group_name = ? AND partition = ?", group, partition).ExecContext(ctx); err != nil {
		return fmt.Errorf("cassandra: reset state log %s/%d: %w", group, partition, err)
	}
	return nil
}
