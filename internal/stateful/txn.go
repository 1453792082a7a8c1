package stateful

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// txnOutput is a transactional loop's output (Config.TransactionalID): what tasks emit is
// produced in a transaction of franz-go's group transact session, which commits with the
// group offsets of what was applied, never of what was only fetched (records wait in the
// partitions' queues for the event-time merge). A transaction is open only from the first
// record applied after a flush to the next flush; rebalances are allowed only between
// transactions, so no transaction spans one.
type txnOutput struct {
	s        *kgo.GroupTransactSession
	prefix   string
	topicIDs map[string][16]byte // physical topic -> id, for commit requests that need one

	open       bool
	rebalanced atomic.Bool // a rebalance callback ran: the session's abort flag is reset first
	// committed is what this instance last committed: partition -> logical topic -> offset.
	committed map[int32]map[string]int64

	mu         sync.Mutex
	produceErr error // the first failed produce of the open transaction
}

// commitTimeout bounds one attempt to end a transaction (milliseconds when all is well).
const commitTimeout = 5 * time.Second

// begin opens a transaction if none is. After a rebalance the session would abort the next
// transaction (it cannot know that none was open across it), so its flags are reset by
// ending the empty one first.
func (t *txnOutput) begin(ctx context.Context) error {
	if t.open {
		return nil
	}
	if t.rebalanced.Swap(false) {
		if _, err := t.s.End(ctx, kgo.TryAbort); err != nil {
			return fmt.Errorf("reset transact session: %w", err)
		}
	}
	if err := t.s.Begin(); err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	t.open = true
	return nil
}

// emit produces r in the open transaction; ctx bounds a wait for room in the buffer.
func (t *txnOutput) emit(ctx context.Context, r *kgo.Record) {
	t.s.Produce(ctx, r, func(_ *kgo.Record, err error) {
		if err != nil {
			t.mu.Lock()
			if t.produceErr == nil {
				t.produceErr = err
			}
			t.mu.Unlock()
		}
	})
}

// commit ends the open transaction, committing offsets (partition -> logical topic -> next
// offset), none below what is committed. It reports whether the transaction
// committed; false with a nil error means there was none open.
func (t *txnOutput) commit(ctx context.Context, offsets map[int32]map[string]int64) (bool, error) {
	if !t.open {
		return false, nil
	}
	t.open = false
	t.mu.Lock()
	failed := t.produceErr
	t.produceErr = nil
	t.mu.Unlock()
	if failed != nil {
		_, err := t.s.End(ctx, kgo.TryAbort)
		return false, errors.Join(fmt.Errorf("output not produced: %w", failed), err)
	}
	commit := t.toCommit(offsets)
	ctx = kgo.PreTxnCommitFnContext(ctx, func(req *kmsg.TxnOffsetCommitRequest) error {
		req.Topics = t.request(req, commit)
		return nil
	})
	// A member the group dropped while it was paused waits in End for a heartbeat that
	// cannot come before the loop lets the rebalance through: bound it, then end the
	// transaction as an abort with a fresh deadline so the client can begin the next one.
	cctx, cancel := context.WithTimeout(ctx, commitTimeout)
	committed, err := t.s.End(cctx, kgo.TryCommit)
	cancel()
	if err != nil {
		// The outcome may be unconfirmed and the client still in the transaction: end it
		// as an abort before anything else (a restore reads the offsets it may hold).
		if aerr := t.abort(ctx); aerr != nil {
			return false, errors.Join(fmt.Errorf("end transaction: %w", err), aerr)
		}
		return false, fmt.Errorf("end transaction: %w", err)
	}
	if !committed {
		return false, errors.New("transaction aborted (a rebalance or a fenced member)")
	}
	for id, offs := range commit {
		if t.committed[id] == nil {
			t.committed[id] = map[string]int64{}
		}
		maps.Copy(t.committed[id], offs)
	}
	return true, nil
}

// abort ends the transaction as an abort, retried a few times with fresh deadlines; an
// error means the transactional producer is unusable.
func (t *txnOutput) abort(ctx context.Context) error {
	var err error
	for range 5 {
		actx, cancel := context.WithTimeout(ctx, commitTimeout)
		_, err = t.s.End(actx, kgo.TryAbort)
		cancel()
		if err == nil || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("abort transaction: %w", err)
	}
	return nil
}

// toCommit is offsets, each raised to what is committed: never less, since a restored
// partition replaying below the group's offsets must not move them back (a later owner would
// decide again what an earlier one committed). Every owned partition is sent, moved or not:
// franz-go takes a commit without offsets for one to a broker before KIP-447 and holds the
// session 500 ms after it, which the next commit would wait out.
func (t *txnOutput) toCommit(offsets map[int32]map[string]int64) map[int32]map[string]int64 {
	out := make(map[int32]map[string]int64, len(offsets))
	for id, offs := range offsets {
		out[id] = make(map[string]int64, len(offs))
		for topic, off := range offs {
			if prev, ok := t.committed[id][topic]; ok {
				off = max(off, prev)
			}
			out[id][topic] = off
		}
	}
	return out
}

// request replaces the session's offsets (what was polled) by the applied ones.
func (t *txnOutput) request(req *kmsg.TxnOffsetCommitRequest, offsets map[int32]map[string]int64) []kmsg.TxnOffsetCommitRequestTopic {
	byTopic := map[string][]kmsg.TxnOffsetCommitRequestTopicPartition{}
	for _, id := range slices.Sorted(maps.Keys(offsets)) {
		for topic, off := range offsets[id] {
			p := kmsg.NewTxnOffsetCommitRequestTopicPartition()
			p.Partition, p.Offset, p.LeaderEpoch, p.Metadata = id, off, -1, &req.MemberID
			byTopic[t.prefix+topic] = append(byTopic[t.prefix+topic], p)
		}
	}
	var topics []kmsg.TxnOffsetCommitRequestTopic
	for _, name := range slices.Sorted(maps.Keys(byTopic)) {
		rt := kmsg.NewTxnOffsetCommitRequestTopic()
		rt.Topic, rt.TopicID, rt.Partitions = name, t.topicIDs[name], byTopic[name]
		topics = append(topics, rt)
	}
	return topics
}

// committedOffsets reads the group's committed offsets of one partition of topics
// (physical names; logical topic -> offset, absent where none is committed). It asks for the
// partition by name so that a first commit still pending is seen, and waits for
// transactions in flight (an earlier owner's): a partition answering
// UNSTABLE_OFFSET_COMMIT is an error, to retry.
func committedOffsets(ctx context.Context, cl *kgo.Client, group string, partition int32, topics []string,
	ids map[string][16]byte, logical func(string) string) (map[string]int64, error) {
	req := kmsg.NewPtrOffsetFetchRequest()
	req.RequireStable = true
	rg := kmsg.NewOffsetFetchRequestGroup()
	rg.Group = group
	for _, t := range topics {
		rt := kmsg.NewOffsetFetchRequestGroupTopic()
		rt.Topic, rt.TopicID, rt.Partitions = t, ids[t], []int32{partition}
		rg.Topics = append(rg.Topics, rt)
	}
	req.Groups = append(req.Groups, rg)
	// v1+ topics: the same question in the older layout, for brokers before v8.
	for _, t := range topics {
		rt := kmsg.NewOffsetFetchRequestTopic()
		rt.Topic, rt.Partitions = t, []int32{partition}
		req.Topics = append(req.Topics, rt)
	}
	req.Group = group
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, fmt.Errorf("fetch committed offsets: %w", err)
	}
	out := map[string]int64{}
	take := func(topic string, code int16, off int64) error {
		if err := kerr.ErrorForCode(code); err != nil {
			return fmt.Errorf("committed offset of %s/%d: %w", topic, partition, err)
		}
		if off >= 0 {
			out[logical(topic)] = off
		}
		return nil
	}
	if len(resp.Groups) == 0 { // an older broker answered in the older layout
		if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
			return nil, fmt.Errorf("fetch committed offsets: %w", err)
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if err := take(t.Topic, p.ErrorCode, p.Offset); err != nil {
					return nil, err
				}
			}
		}
		return out, nil
	}
	for _, g := range resp.Groups {
		if err := kerr.ErrorForCode(g.ErrorCode); err != nil {
			return nil, fmt.Errorf("fetch committed offsets: %w", err)
		}
		for _, t := range g.Topics {
			name := t.Topic
			for n, id := range ids {
				if name == "" && id == t.TopicID {
					name = n
				}
			}
			for _, p := range t.Partitions {
				if err := take(name, p.ErrorCode, p.Offset); err != nil {
					return nil, err
				}
			}
		}
	}
	return out, nil
}

// commitTxnLocked commits the open transaction with every owned partition's applied
// offsets. When it does not commit, the output emitted since the last commit is gone while
// the states applied it: every owned partition is restored from its checkpoint again.
func (l *Loop) commitTxnLocked(ctx context.Context) bool {
	if l.txn == nil {
		return true
	}
	offsets := map[int32]map[string]int64{}
	for id, p := range l.parts {
		offsets[id] = maps.Clone(p.offsets)
	}
	committed, err := l.txn.commit(ctx, offsets)
	switch {
	case err == nil:
		if committed {
			l.m.txns.WithLabelValues("committed").Inc()
		}
		return true
	case ctx.Err() != nil: // shutting down: the next owner replays what was not committed
		return false
	}
	l.m.txns.WithLabelValues("aborted").Inc()
	slog.Warn("transaction not committed; owned partitions restart from their checkpoints", "role", l.role.Name(), "err", err)
	l.rewindLocked()
	return false
}

// rewindLocked drops every owned partition's state: it applied output that was not
// committed. They are restored from their checkpoints once the group confirms they are
// still this member's (restorePendingLocked); a member that was fenced out (a paused
// process) gets its partitions back, or not, from the rebalance instead of claiming them.
func (l *Loop) rewindLocked() {
	paused := map[string][]int32{}
	for _, id := range slices.Sorted(maps.Keys(l.parts)) {
		l.forget(l.parts[id])
		l.unrestored[id] = true
		for _, t := range l.physical() {
			paused[t] = append(paused[t], id)
		}
	}
	l.client.PauseFetchPartitions(paused)
	l.restorePendingLocked()
}

// restorePendingLocked restores the rewound partitions the group still assigns to this
// member, at their checkpoints' offsets; it is tried again at every flush until the group
// answers or a rebalance settles them.
func (l *Loop) restorePendingLocked() {
	if len(l.unrestored) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(l.runCtx, 5*time.Second)
	defer cancel()
	mine, err := l.assignedHere(ctx)
	if err != nil {
		slog.Warn("cannot confirm the partitions are still this member's; retrying", "role", l.role.Name(), "err", err)
		return
	}
	seek := map[string]map[int32]kgo.EpochOffset{}
	resume := map[string][]int32{}
	for _, id := range slices.Sorted(maps.Keys(l.unrestored)) {
		delete(l.unrestored, id)
		if !mine[id] {
			continue // the rebalance that took it tells this member
		}
		p, err := l.restore(l.runCtx, id)
		if err != nil {
			if l.runCtx.Err() == nil {
				l.fatal(fmt.Errorf("partition %d: %w", id, err))
			}
			return
		}
		l.parts[id] = p
		l.seedCommitted(p)
		for _, t := range l.cfg.Topics {
			if seek[l.prefix+t] == nil {
				seek[l.prefix+t] = map[int32]kgo.EpochOffset{}
			}
			seek[l.prefix+t][id] = kgo.EpochOffset{Epoch: -1, Offset: p.offsets[t]}
			resume[l.prefix+t] = append(resume[l.prefix+t], id)
		}
	}
	l.client.SetOffsets(seek)
	l.client.ResumeFetchPartitions(resume)
}

// assignedHere is the partition numbers the group's coordinator assigns to this member now.
func (l *Loop) assignedHere(ctx context.Context) (map[int32]bool, error) {
	member, _ := l.client.GroupMetadata()
	described, err := l.adm.DescribeGroups(ctx, l.cfg.Group)
	if err != nil {
		return nil, err
	}
	g, ok := described[l.cfg.Group]
	if !ok || g.Err != nil {
		return nil, fmt.Errorf("describe group %s: %v", l.cfg.Group, g.Err)
	}
	mine := map[int32]bool{}
	for _, m := range g.Members {
		if m.MemberID != member {
			continue
		}
		if a, ok := m.Assigned.AsConsumer(); ok {
			for _, t := range a.Topics {
				if slices.Contains(l.physical(), t.Topic) {
					for _, id := range t.Partitions {
						mine[id] = true
					}
				}
			}
		}
	}
	return mine, nil
}
