// Package embedded is the serving store of embedded mode: the same tables, ordering and expiry
// as the Cassandra backend, kept in a BadgerDB directory inside the process.
//
// Every row is a whole value under a deterministic key (see codec.go), written with a TTL of
// the retention (batch history: the history retention), so replaying a batch rewrites the
// same state. Checkpoints never expire; claims fence the writers (state.go).
package embedded

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/bytebasket/bytebasket/internal/config"
	"github.com/bytebasket/bytebasket/internal/model"
)

// gcInterval is how often the value log is compacted. Values here are small and mostly live in
// the LSM tree (badger's default value threshold is 1 MiB), so this rarely finds work.
const gcInterval = time.Minute

// Store is the embedded serving store. It is safe for concurrent use.
type Store struct {
	db        *badger.DB
	retention time.Duration
	history   time.Duration // TTL of batch history (trends)

	fenceMu sync.Mutex         // serializes claims, row writes and head commits
	epochs  map[fenceKey]int64 // newest claimed epoch per partition, as loaded or claimed

	stop      chan struct{}
	gcDone    chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// Option adjusts an opened Store.
type Option func(*Store)

// WithHistory sets how long batch history (trend rows) lives: retention.history_days.
// Without it, trend rows get the default history retention.
func WithHistory(d time.Duration) Option { return func(s *Store) { s.history = d } }

// Open opens (or creates) the store in dir. Rows expire retention after they were last
// written (trend rows: WithHistory); a duration <= 0 keeps them forever.
func Open(dir string, retention time.Duration, options ...Option) (*Store, error) {
	opts := badger.DefaultOptions(dir).
		WithLogger(slogLogger{slog.Default().With("component", "badger")}).
		// Durability comes from an explicit Sync when a claim or checkpoint head is written
		// (state.go): syncing every row batch would cost an fsync per flush for nothing.
		WithSyncWrites(false).
		// Writers only do blind whole-value upserts, so conflict tracking is pure overhead.
		WithDetectConflicts(false).
		// The process exports Prometheus metrics; badger's expvar counters go unread.
		WithMetricsEnabled(false).
		// Embedded mode shares one machine with the broker, the lake and DuckDB: memory is
		// bounded here, not by badger's server-sized defaults (5 memtables of 64 MiB).
		WithMemTableSize(16 << 20).
		WithNumMemtables(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(8).
		WithBlockCacheSize(32 << 20).
		WithIndexCacheSize(32 << 20)
	db, err := badger.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded: open %s: %w", dir, err)
	}
	s := &Store{db: db, retention: retention, history: config.Default().Retention.HistoryDuration(),
		epochs: map[fenceKey]int64{}, stop: make(chan struct{}), gcDone: make(chan struct{})}
	// Whole-state checkpoints of earlier versions are not read any more: the stream
	// restarts from the topics (docs/operations.md).
	if err := db.DropPrefix([]byte{tagOldCheckpoint}); err != nil {
		db.Close()
		return nil, fmt.Errorf("embedded: drop old checkpoints: %w", err)
	}
	for _, o := range options {
		o(s)
	}
	go s.gcLoop()
	return s, nil
}

func (s *Store) gcLoop() {
	defer close(s.gcDone)
	t := time.NewTicker(gcInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			// Each successful run rewrites one file; repeat until nothing is worth it.
			for s.db.RunValueLogGC(0.5) == nil {
				select {
				case <-s.stop:
					return
				default:
				}
			}
		}
	}
}

// Close stops the value-log GC and closes the database. It is safe to call more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.stop)
		<-s.gcDone
		if err := s.db.Close(); err != nil {
			s.closeErr = fmt.Errorf("embedded: close: %w", err)
		}
	})
	return s.closeErr
}

// Write upserts every row of b with TTL = retention if f is the partition's newest claim,
// and returns model.ErrFenced otherwise. Rows share one transaction unless the batch
// exceeds badger's transaction size; then earlier rows commit first. Rows are made durable
// by the next checkpoint head's sync (CommitHead): a crash before it replays them.
func (s *Store) Write(ctx context.Context, f model.Fence, b model.Batch) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.fenceMu.Lock()
	defer s.fenceMu.Unlock()
	if err := s.checkFenceLocked(f); err != nil {
		return err
	}
	expiresAt := expiry(s.retention)
	return s.update(ctx, func(w *writer) {
		for i := range b.Windows {
			r := &b.Windows[i]
			w.set(windowKey(tagWindow, r.Key), encodeWindow(r), expiresAt)
		}
		for i := range b.Tops {
			r := &b.Tops[i]
			w.set(topKey(r), encodeTop(r), expiresAt)
		}
		for _, sp := range b.ReplacedSessions { // before the sessions that replace them
			w.delSessions(sp)
		}
		for i := range b.Sessions {
			r := &b.Sessions[i]
			w.set(sessionKey(r), encodeSession(r), expiresAt)
		}
		for i := range b.SessionWindows {
			r := &b.SessionWindows[i]
			w.set(windowKey(tagSessionWindow, r.Key), encodeSessionWindow(r), expiresAt)
		}
		for i := range b.TxFeeds {
			r := &b.TxFeeds[i]
			w.set(txFeedKey(r), encodeTxFeed(r), expiresAt)
		}
	})
}

// update runs fill on one writer and commits what it wrote (a writer commits on its own
// when a transaction grows too big), or returns the first error.
func (s *Store) update(ctx context.Context, fill func(w *writer)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	w := &writer{s: s, ctx: ctx, txn: s.db.NewTransaction(true)}
	defer func() { w.txn.Discard() }()
	fill(w)
	if w.err != nil {
		return w.err
	}
	if err := w.txn.Commit(); err != nil {
		return fmt.Errorf("embedded: commit: %w", err)
	}
	return nil
}

// expiry is badger's expiry for a row written now that must live ttl (0: never). One
// expiry serves a whole batch, rounded up to badger's 1 s resolution so a row lives at least
// ttl (Entry.WithTTL rounds down and can expire early).
func expiry(ttl time.Duration) uint64 {
	if ttl <= 0 {
		return 0
	}
	end := time.Now().Add(ttl)
	expiresAt := uint64(end.Unix())
	if end.Nanosecond() != 0 {
		expiresAt++
	}
	return expiresAt
}

// WriteTrends upserts every row of t whole, with TTL = the history retention, in as few
// transactions as fit.
func (s *Store) WriteTrends(ctx context.Context, t model.Trends) error {
	expiresAt := expiry(s.history)
	return s.update(ctx, func(w *writer) {
		for i := range t.Metrics {
			r := &t.Metrics[i]
			w.set(trendKey(r.Key), encodeTrend(r), expiresAt)
		}
		for i := range t.Tops {
			r := &t.Tops[i]
			w.set(trendTopKey(r), encodeTrendTop(r), expiresAt)
		}
	})
}

// Trends returns the trend metrics of granularity g with Start in [from, to), every
// platform, newest first.
func (s *Store) Trends(ctx context.Context, g model.TrendGranularity, from, to time.Time) ([]model.TrendMetrics, error) {
	var out []model.TrendMetrics
	err := s.scanRange(ctx, tagTrend, string(g), from, to, func(k, v []byte) error {
		m, err := decodeTrend(k, v)
		out = append(out, m)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("embedded: trends %s: %w", g, err)
	}
	// Keys order platforms by length first (length-prefixed strings); Cassandra orders
	// them by name.
	slices.SortStableFunc(out, func(a, b model.TrendMetrics) int {
		return cmp.Or(b.Key.Start.Compare(a.Key.Start), strings.Compare(a.Key.Platform, b.Key.Platform))
	})
	return out, nil
}

// TrendTops returns the rankings dim of the bucket (g, start), one per platform, in
// platform order.
func (s *Store) TrendTops(ctx context.Context, g model.TrendGranularity, start time.Time, dim model.TopDimension) ([]model.TrendTop, error) {
	var out []model.TrendTop
	prefix := trendTopPrefix(g, start, dim)
	err := s.scan(ctx, prefix, prefix, 0, func(k, v []byte) (bool, error) {
		t, err := decodeTrendTop(k, v)
		out = append(out, t)
		return true, err
	})
	if err != nil {
		return nil, fmt.Errorf("embedded: trend tops %s %s: %w", g, dim, err)
	}
	slices.SortFunc(out, func(a, b model.TrendTop) int { return strings.Compare(a.Key.Platform, b.Key.Platform) })
	return out, nil
}

// writer fills a transaction, committing and starting another when it is full.
type writer struct {
	s   *Store
	ctx context.Context
	txn *badger.Txn
	err error
}

func (w *writer) set(key, val []byte, expiresAt uint64) {
	w.do(key, func(txn *badger.Txn) error {
		return txn.SetEntry(&badger.Entry{Key: key, Value: val, ExpiresAt: expiresAt})
	})
}

func (w *writer) del(key []byte) {
	w.do(key, func(txn *badger.Txn) error { return txn.Delete(key) })
}

// delSessions deletes the user's session rows that start in the span (newest first in key
// order, so from Through down to From).
func (w *writer) delSessions(sp model.SessionSpan) {
	if w.err != nil {
		return
	}
	prefix := keyPrefix(tagSession, sp.UserID)
	last := binary.BigEndian.AppendUint64(slices.Clone(prefix), invMillis(sp.From))
	opts := badger.DefaultIteratorOptions
	opts.Prefix, opts.PrefetchValues = prefix, false
	it := w.txn.NewIterator(opts)
	var keys [][]byte
	for it.Seek(binary.BigEndian.AppendUint64(slices.Clone(prefix), invMillis(sp.Through))); it.ValidForPrefix(prefix); it.Next() {
		k := it.Item().Key()
		if bytes.Compare(k[:len(last)], last) > 0 {
			break
		}
		keys = append(keys, it.Item().KeyCopy(nil))
	}
	it.Close()
	for _, k := range keys {
		w.del(k)
	}
}

// do applies op to the transaction, committing it and starting another when it is full.
func (w *writer) do(key []byte, op func(*badger.Txn) error) {
	if w.err != nil {
		return
	}
	err := op(w.txn)
	if errors.Is(err, badger.ErrTxnTooBig) {
		if err = w.ctx.Err(); err == nil {
			if err = w.txn.Commit(); err != nil {
				err = fmt.Errorf("embedded: commit: %w", err)
			} else {
				w.txn = w.s.db.NewTransaction(true)
				err = op(w.txn)
			}
		}
	}
	if err != nil && w.err == nil {
		w.err = fmt.Errorf("embedded: write %q: %w", key[:1], err)
	}
}

// Windows returns the window metrics of granularity g with Start in [from, to), every
// platform and partition, newest first.
func (s *Store) Windows(ctx context.Context, g model.Granularity, from, to time.Time) ([]model.WindowMetrics, error) {
	var out []model.WindowMetrics
	err := s.scanRange(ctx, tagWindow, string(g), from, to, func(k, v []byte) error {
		w, err := decodeWindow(k, v)
		out = append(out, w)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("embedded: windows %s: %w", g, err)
	}
	return out, nil
}

// SessionWindows returns the session counts of granularity g with Start in [from, to),
// every platform and partition, newest first.
func (s *Store) SessionWindows(ctx context.Context, g model.Granularity, from, to time.Time) ([]model.SessionWindow, error) {
	var out []model.SessionWindow
	err := s.scanRange(ctx, tagSessionWindow, string(g), from, to, func(k, v []byte) error {
		w, err := decodeSessionWindow(k, v)
		out = append(out, w)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("embedded: session windows %s: %w", g, err)
	}
	return out, nil
}

// scanRange visits the rows of a window or trend table (keys: tag, granularity, start^)
// with Start in [from, to), newest first.
func (s *Store) scanRange(ctx context.Context, tag byte, g string, from, to time.Time, fn func(k, v []byte) error) error {
	if !from.Before(to) {
		return ctx.Err()
	}
	prefix := keyPrefix(tag, g)
	startAt := len(prefix)
	// Keys of Start == to's millisecond sort first among those not after it; newer ones
	// sort before the seek key and are never visited.
	seek := binary.BigEndian.AppendUint64(bytes.Clone(prefix), invMillis(to))
	return s.scan(ctx, prefix, seek, 0, func(k, v []byte) (bool, error) {
		if len(k) < startAt+8 {
			return false, errCorrupt
		}
		start := fromInvMillis(binary.BigEndian.Uint64(k[startAt:]))
		if start.Before(from) {
			return false, nil
		}
		if !start.Before(to) { // same millisecond as to, but to is not truncated
			return true, nil
		}
		return true, fn(k, v)
	})
}

// Tops returns the ranking dim of the window (g, start): one row per partition.
func (s *Store) Tops(ctx context.Context, g model.Granularity, start time.Time, dim model.TopDimension) ([]model.TopItems, error) {
	var out []model.TopItems
	prefix := topPrefix(g, start, dim)
	err := s.scan(ctx, prefix, prefix, 0, func(k, v []byte) (bool, error) {
		t, err := decodeTop(k, v)
		out = append(out, t)
		return true, err
	})
	if err != nil {
		return nil, fmt.Errorf("embedded: tops %s %s: %w", g, dim, err)
	}
	return out, nil
}

// SessionsByUser returns a user's sessions, newest start first, at most limit (all if
// limit <= 0).
func (s *Store) SessionsByUser(ctx context.Context, userID string, limit int) ([]model.Session, error) {
	var out []model.Session
	prefix := keyPrefix(tagSession, userID)
	err := s.scan(ctx, prefix, prefix, limit, func(k, v []byte) (bool, error) {
		ss, err := decodeSession(k, v)
		out = append(out, ss)
		return limit <= 0 || len(out) < limit, err
	})
	if err != nil {
		return nil, fmt.Errorf("embedded: sessions of %q: %w", userID, err)
	}
	return out, nil
}

// RecentTransactions returns the newest transactions of kind (one of model.TxKinds; "" or
// "all": every kind), merged over the stream partitions, newest first, at most limit (all
// the feeds hold if limit <= 0). A kind without a feed has no transactions.
func (s *Store) RecentTransactions(ctx context.Context, kind string, limit int) ([]model.TxEvent, error) {
	prefix := txFeedPrefix(kind)
	if kind == "" || kind == "all" {
		prefix = []byte{tagTxFeed}
	}
	var feeds []model.TxFeed
	err := s.scan(ctx, prefix, prefix, 0, func(k, v []byte) (bool, error) {
		f, err := decodeTxFeed(k, v)
		feeds = append(feeds, f)
		return true, err
	})
	if err != nil {
		return nil, fmt.Errorf("embedded: transactions %q: %w", kind, err)
	}
	return model.MergeTxFeeds(feeds, limit), nil
}

// scan iterates keys with prefix from seek on, until fn returns false or an error. fn's
// slices are valid only during the call. prefetch > 0 bounds value prefetching.
func (s *Store) scan(ctx context.Context, prefix, seek []byte, prefetch int, fn func(k, v []byte) (bool, error)) error {
	return s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = prefix // also lets badger skip tables without the prefix
		if prefetch > 0 && prefetch < opts.PrefetchSize {
			opts.PrefetchSize = prefetch
		}
		it := txn.NewIterator(opts)
		defer it.Close()
		n := 0
		for it.Seek(seek); it.ValidForPrefix(prefix); it.Next() {
			if n++; n%256 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			item := it.Item()
			var more bool
			err := item.Value(func(v []byte) error {
				var err error
				more, err = fn(item.Key(), v)
				return err
			})
			if err != nil || !more {
				return err
			}
		}
		return ctx.Err()
	})
}

// slogLogger routes badger's warnings and errors to slog; its info and debug chatter
// (compactions, replays) is dropped.
type slogLogger struct{ l *slog.Logger }

func (s slogLogger) Errorf(f string, a ...any) {
	s.l.Error(strings.TrimSpace(fmt.Sprintf(f, a...)))
}

func (s slogLogger) Warningf(f string, a ...any) {
	s.l.Warn(strings.TrimSpace(fmt.Sprintf(f, a...)))
}

func (slogLogger) Infof(string, ...any)  {}
func (slogLogger) Debugf(string, ...any) {}
