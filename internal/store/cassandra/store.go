package cassandra

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/apache/cassandra-gocql-driver/v2"
	"github.com/bytebasket/bytebasket/internal/config"
	"github.com/bytebasket/bytebasket/internal/model"
)

// writeParallelism bounds the INSERTs one Write keeps in flight: enough to hide the round
// trips, few enough not to flood the coordinators' request queues.
const writeParallelism = 32

// retry re-sends a statement that timed out or found a replica down. Every statement of the
// Store is idempotent (whole-value upserts and reads), so a retry cannot double-count.
var retry = &gocql.ExponentialBackoffRetryPolicy{NumRetries: 3, Min: 100 * time.Millisecond, Max: 2 * time.Second}

// Column lists, in the order the args and scan helpers below use them.
const (
	windowCols = "granularity, day, window_start, platform, partition, page_views, product_views, searches, " +
		"cart_adds, checkouts, orders, payments_failed, refunds, chargebacks, revenue, orders_by_currency, " +
		"active_users, funnel_viewers, funnel_carters, funnel_checkout, funnel_buyers, updated_at"
	topCols     = "granularity, window_start, dimension, partition, counts"
	sessionCols = "user_id, session_id, platform, session_start, session_end, events, page_views, cart_adds, " +
		"checkouts, orders, revenue, outcome, closed, partition, recent"
	sessionWindowCols = "granularity, day, window_start, platform, partition, sessions, browsed, abandoned_cart, " +
		"abandoned_checkout, purchased, duration_sum_millis"
	trendCols = "granularity, month, bucket_start, platform, active_users, product_viewers, buyers, " +
		"page_views, product_views, searches, cart_adds, checkouts, orders, payments_failed, refunds, chargebacks, " +
		"revenue, orders_by_currency"
	trendTopCols = "granularity, bucket_start, dimension, platform, item_ids, item_values"
	txFeedCols   = "kind, partition, events"
)

// Store is the serving store on Cassandra: the stream's rows (internal/model) in the
// query-shaped tables of schema/0002_stream.cql and 0004_feeds.cql. It is safe for
// concurrent use.
type Store struct {
	s        *gocql.Session
	keyspace string

	insWindow, insTop, insSession, insSessionWindow                          string
	delSessions                                                              string
	selWindows, selTops, selSessions, selSessionsLimit, selSessionWindows    string
	insTrend, insTrendTop, selTrends, selTrendTops                           string
	insTxFeed, selTxFeeds                                                    string
	insFraudAlert, insFraudAlertByUser, selFraudAlerts, selFraudAlertsByUser string
	insFraudLabel, selFraudLabels                                            string

	// Checkpoints and fencing (state.go).
	selHead, claimHead, claimNewHead, renewLease, commitHead string
	insLog, selLog, trimLogEpochs, trimLogSeqs               string
	leaseMu                                                  sync.Mutex
	leases                                                   map[leaseKey]*lease
}

// NewStore connects and prepares the Store's statements, so a missing schema fails here
// rather than at the first write. It does not apply the schema: `bytebasket schema apply` does.
func NewStore(ctx context.Context, cfg config.Cassandra) (*Store, error) {
	if !keyspaceName.MatchString(cfg.Keyspace) {
		return nil, fmt.Errorf("cassandra: keyspace name %q must match %s", cfg.Keyspace, keyspaceName)
	}
	s, err := Connect(ctx, cfg)
	if err != nil {
		return nil, err
	}
	ks := cfg.Keyspace
	// Reads leave out the day bucket: it is derived from window_start.
	windowRead := strings.Replace(windowCols, "day, ", "", 1)
	sessionWindowRead := strings.Replace(sessionWindowCols, "day, ", "", 1)
	st := &Store{
		s:                s,
		keyspace:         ks,
		leases:           map[leaseKey]*lease{},
		insWindow:        insert(ks, "window_metrics", windowCols),
		insTop:           insert(ks, "top_items", topCols),
		insSession:       insert(ks, "sessions_by_user", sessionCols),
		insSessionWindow: insert(ks, "session_windows", sessionWindowCols),
		delSessions: "DELETE FROM " + ks + ".sessions_by_user" +
			" WHERE user_id = ? AND session_start >= ? AND session_start <= ?",
		selWindows: "SELECT " + windowRead + " FROM " + ks + ".window_metrics" +
			" WHERE granularity = ? AND day = ? AND window_start >= ? AND window_start < ? LIMIT ?",
		selTops: "SELECT " + topCols + " FROM " + ks + ".top_items" +
			" WHERE granularity = ? AND window_start = ? AND dimension = ?",
		selSessions:      "SELECT " + sessionCols + " FROM " + ks + ".sessions_by_user WHERE user_id = ?",
		selSessionsLimit: "SELECT " + sessionCols + " FROM " + ks + ".sessions_by_user WHERE user_id = ? LIMIT ?",
		selSessionWindows: "SELECT " + sessionWindowRead + " FROM " + ks + ".session_windows" +
			" WHERE granularity = ? AND day = ? AND window_start >= ? AND window_start < ? LIMIT ?",
		insTrend:    insert(ks, "trend_metrics", trendCols),
		insTrendTop: insert(ks, "trend_tops", trendTopCols),
		selTrends: "SELECT " + strings.Replace(trendCols, "month, ", "", 1) + " FROM " + ks + ".trend_metrics" +
			" WHERE granularity = ? AND month = ? AND bucket_start >= ? AND bucket_start < ?",
		selTrendTops: "SELECT " + trendTopCols + " FROM " + ks + ".trend_tops" +
			" WHERE granularity = ? AND bucket_start = ? AND dimension = ?",
		insTxFeed:  insert(ks, "tx_feeds", txFeedCols),
		selTxFeeds: "SELECT " + txFeedCols + " FROM " + ks + ".tx_feeds WHERE kind = ?",
	}
	for _, stmt := range append([]string{st.insWindow, st.insTop, st.insSession, st.insSessionWindow, st.delSessions,
		st.selWindows, st.selTops, st.selSessions, st.selSessionsLimit, st.selSessionWindows,
		st.insTrend, st.insTrendTop, st.selTrends, st.selTrendTops, st.insTxFeed, st.selTxFeeds},
		append(st.prepareState(ks), st.prepareFraud(ks)...)...) {
		// Keyspace "" matches the prepared-statement cache key queries use (they name the
		// keyspace in their text), so this also warms the cache.
		if _, err := s.StatementMetadata(ctx, stmt, ""); err != nil {
			s.Close()
			return nil, fmt.Errorf("cassandra: prepare (has `bytebasket schema apply` run on keyspace %s?): %w\n%s", ks, err, stmt)
		}
	}
	return st, nil
}

// insert builds an INSERT of cols with one bind marker per column.
func insert(keyspace, table, cols string) string {
	marks := strings.Repeat(", ?", strings.Count(cols, ",")+1)[2:]
	return fmt.Sprintf("INSERT INTO %s.%s (%s) VALUES (%s)", keyspace, table, cols, marks)
}

// Close closes the session. It returns an error only to fit the store interfaces.
func (st *Store) Close() error {
	st.s.Close()
	return nil
}

// query is a statement marked idempotent, so the driver may retry it.
func (st *Store) query(stmt string, args ...any) *gocql.Query {
	return st.s.Query(stmt, args...).Idempotent(true).RetryPolicy(retry)
}

// row is one statement of a batch, with what it writes for error messages.
type row struct {
	what, stmt string
	args       []any
}

// Write upserts every row of b, up to writeParallelism at a time, stamped with a write
// timestamp inside f's lease (state.go): once a newer owner has claimed the partition, its
// rows win over anything f writes, in whatever order the writes land. Every INSERT writes a
// whole value, so writing a batch again (a replay after a crash) leaves the same rows. On
// error some rows may be written; nil means all are durable at the configured consistency.
func (st *Store) Write(ctx context.Context, f model.Fence, b model.Batch) error {
	ts, err := st.stamp(ctx, f)
	if err != nil {
		return err
	}
	rows := make([]row, 0, b.Len())
	for _, sp := range b.ReplacedSessions {
		rows = append(rows, row{fmt.Sprintf("sessions of %s from %s", sp.UserID, sp.From.Format(time.RFC3339Nano)),
			st.delSessions, []any{sp.UserID, sp.From, sp.Through}})
	}
	for i := range b.Windows {
		w := &b.Windows[i]
		rows = append(rows, row{"window " + keyString(w.Key), st.insWindow, windowArgs(w)})
	}
	for i := range b.Tops {
		t := &b.Tops[i]
		rows = append(rows, row{fmt.Sprintf("top %s %s %s p%d", t.Granularity, t.Start.UTC().Format(time.RFC3339), t.Dimension, t.Partition),
			st.insTop, []any{string(t.Granularity), t.Start, string(t.Dimension), t.Partition, nonNil(t.Counts)}})
	}
	for i := range b.Sessions {
		ss := &b.Sessions[i]
		rows = append(rows, row{fmt.Sprintf("session %s/%s", ss.UserID, ss.SessionID), st.insSession, sessionArgs(ss)})
	}
	for i := range b.SessionWindows {
		w := &b.SessionWindows[i]
		rows = append(rows, row{"session window " + keyString(w.Key), st.insSessionWindow, []any{
			string(w.Key.Granularity), utcDay(w.Key.Start), w.Key.Start, w.Key.Platform, w.Key.Partition,
			w.Sessions, w.Browsed, w.AbandonedCart, w.AbandonedCheckout, w.Purchased, w.DurationSumMillis}})
	}
	for i := range b.TxFeeds {
		f := &b.TxFeeds[i]
		rows = append(rows, row{fmt.Sprintf("tx feed %s p%d", f.Kind, f.Partition), st.insTxFeed,
			[]any{f.Kind, f.Partition, txEventUDTs(f.Events)}})
	}
	return st.writeAll(ctx, rows, ts, len(b.ReplacedSessions))
}

// writeAll runs the statements with bounded parallelism, at write timestamp ts (0: the
// server's clock), and returns the first error; after an error it starts no more and
// cancels those in flight. The first early rows (deletes) are stamped ts-1: in whatever
// order they land, the rows written in their place win where they meet.
func (st *Store) writeAll(ctx context.Context, rows []row, ts int64, early int) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	sem := make(chan struct{}, writeParallelism)
loop:
	for i, r := range rows {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			break loop
		}
		wg.Go(func() {
			defer func() { <-sem }()
			q := st.query(r.stmt, r.args...)
			switch {
			case ts != 0 && i < early:
				q = q.WithTimestamp(ts - 1)
			case ts != 0:
				q = q.WithTimestamp(ts)
			}
			if err := q.ExecContext(ctx); err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = fmt.Errorf("cassandra: write %s: %w", r.what, err)
					cancel()
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err() // the caller's context ended before every row was sent
}

func windowArgs(w *model.WindowMetrics) []any {
	k := w.Key
	return []any{string(k.Granularity), utcDay(k.Start), k.Start, k.Platform, k.Partition,
		w.PageViews, w.ProductViews, w.Searches, w.CartAdds, w.Checkouts, w.Orders, w.PaymentsFailed, w.Refunds, w.Chargebacks,
		nonNil(w.Revenue), nonNil(w.OrdersByCurrency),
		w.ActiveUsers, w.FunnelViewers, w.FunnelCarters, w.FunnelCheckout, w.FunnelBuyers, w.UpdatedAt}
}

func sessionArgs(s *model.Session) []any {
	return []any{s.UserID, s.SessionID, s.Platform, s.Start, s.End, s.Events, s.PageViews, s.CartAdds,
		s.Checkouts, s.Orders, nonNil(s.Revenue), string(s.Outcome), s.Closed, s.Partition, userEventUDTs(s.Recent)}
}

// txEventUDT is the tx_event type; the kind and partition are the row's key.
type txEventUDT struct {
	Time        time.Time `cql:"event_time"`
	UserID      string    `cql:"user_id"`
	OrderID     string    `cql:"order_id"`
	AmountMinor int64     `cql:"amount_minor"`
	Currency    string    `cql:"currency"`
	Platform    string    `cql:"platform"`
	Reason      string    `cql:"reason"`
}

// userEventUDT is the user_event type.
type userEventUDT struct {
	Time        time.Time `cql:"event_time"`
	Kind        string    `cql:"kind"`
	ProductID   string    `cql:"product_id"`
	AmountMinor int64     `cql:"amount_minor"`
	Currency    string    `cql:"currency"`
}

// txEventUDTs converts for writing; never nil, as a null would write a tombstone.
func txEventUDTs(evs []model.TxEvent) []txEventUDT {
	out := make([]txEventUDT, len(evs))
	for i, e := range evs {
		out[i] = txEventUDT{e.Time, e.UserID, e.OrderID, e.AmountMinor, e.Currency, e.Platform, e.Reason}
	}
	return out
}

// userEventUDTs converts for writing; never nil, as a null would write a tombstone.
func userEventUDTs(evs []model.UserEvent) []userEventUDT {
	out := make([]userEventUDT, len(evs))
	for i, e := range evs {
		out[i] = userEventUDT{e.Time, e.Kind, e.ProductID, e.AmountMinor, e.Currency}
	}
	return out
}

// recentOf converts a session's recent events read back; none (also a row written before
// the column existed) is nil, as in the embedded store.
func recentOf(us []userEventUDT) []model.UserEvent {
	if len(us) == 0 {
		return nil
	}
	out := make([]model.UserEvent, len(us))
	for i, u := range us {
		out[i] = model.UserEvent{Time: u.Time.UTC(), Kind: u.Kind, ProductID: u.ProductID, AmountMinor: u.AmountMinor, Currency: u.Currency}
	}
	return out
}

// nonNil writes a missing map as an empty one: a null would write a tombstone.
func nonNil(m map[string]int64) map[string]int64 {
	if m == nil {
		return map[string]int64{}
	}
	return m
}

// nilIfEmpty reads an empty map as nil, so empty and missing maps read back alike (as in
// the embedded store).
func nilIfEmpty(m map[string]int64) map[string]int64 {
	if len(m) == 0 {
		return nil
	}
	return m
}

// utcDay is the day bucket of a window start.
func utcDay(t time.Time) time.Time {
	return t.UTC().Truncate(24 * time.Hour)
}

func keyString(k model.WindowKey) string {
	return fmt.Sprintf("%s %s %s p%d", k.Granularity, k.Start.UTC().Format(time.RFC3339), k.Platform, k.Partition)
}

// Windows returns the window metrics of granularity g with Start in [from, to), every
// platform and partition, newest first.
func (st *Store) Windows(ctx context.Context, g model.Granularity, from, to time.Time) ([]model.WindowMetrics, error) {
	out, err := readDays(ctx, st, st.selWindows, []any{string(g)}, from, to, 0, func(sc gocql.Scanner) (model.WindowMetrics, error) {
		var w model.WindowMetrics
		err := sc.Scan(&w.Key.Granularity, &w.Key.Start, &w.Key.Platform, &w.Key.Partition,
			&w.PageViews, &w.ProductViews, &w.Searches, &w.CartAdds, &w.Checkouts, &w.Orders, &w.PaymentsFailed, &w.Refunds, &w.Chargebacks,
			&w.Revenue, &w.OrdersByCurrency,
			&w.ActiveUsers, &w.FunnelViewers, &w.FunnelCarters, &w.FunnelCheckout, &w.FunnelBuyers, &w.UpdatedAt)
		w.Key.Start, w.UpdatedAt = w.Key.Start.UTC(), w.UpdatedAt.UTC()
		w.Revenue, w.OrdersByCurrency = nilIfEmpty(w.Revenue), nilIfEmpty(w.OrdersByCurrency)
		return w, err
	})
	if err != nil {
		return nil, fmt.Errorf("cassandra: windows %s: %w", g, err)
	}
	return out, nil
}

// SessionWindows returns the session counts of granularity g with Start in [from, to),
// every platform and partition, newest first.
func (st *Store) SessionWindows(ctx context.Context, g model.Granularity, from, to time.Time) ([]model.SessionWindow, error) {
	out, err := readDays(ctx, st, st.selSessionWindows, []any{string(g)}, from, to, 0, func(sc gocql.Scanner) (model.SessionWindow, error) {
		var w model.SessionWindow
		err := sc.Scan(&w.Key.Granularity, &w.Key.Start, &w.Key.Platform, &w.Key.Partition,
			&w.Sessions, &w.Browsed, &w.AbandonedCart, &w.AbandonedCheckout, &w.Purchased, &w.DurationSumMillis)
		w.Key.Start = w.Key.Start.UTC()
		return w, err
	})
	if err != nil {
		return nil, fmt.Errorf("cassandra: session windows %s: %w", g, err)
	}
	return out, nil
}

// readDays reads the rows of a day-bucketed table with a time in [from, to): one query per
// UTC day the range spans, newest day first, so the result is newest first overall. stmt
// takes key (the partition key before the day), the day, from, to and a row limit: at most
// limit rows are read overall (all if limit <= 0).
func readDays[T any](ctx context.Context, st *Store, stmt string, key []any, from, to time.Time, limit int, scan func(gocql.Scanner) (T, error)) ([]T, error) {
	// Timestamps are stored in milliseconds: round both bounds up, so a sub-millisecond
	// bound neither admits a row before from nor drops one before to.
	from, to = ceilMillis(from), ceilMillis(to)
	if !from.Before(to) {
		return nil, nil
	}
	var out []T
	first := utcDay(from)
	for day := utcDay(to.Add(-time.Millisecond)); !day.Before(first); day = day.Add(-24 * time.Hour) {
		n := 1 << 30
		if limit > 0 {
			if n = limit - len(out); n <= 0 {
				break
			}
		}
		var err error
		if out, err = readAll(ctx, st.query(stmt, append(slices.Clone(key), day, from, to, n)...), out, scan); err != nil {
			return nil, fmt.Errorf("day %s: %w", day.Format(time.DateOnly), err)
		}
	}
	return out, nil
}

func ceilMillis(t time.Time) time.Time {
	if r := t.Truncate(time.Millisecond); !r.Equal(t) {
		return r.Add(time.Millisecond)
	}
	return t
}

// Tops returns the ranking dim of the window (g, start): one row per stream partition.
func (st *Store) Tops(ctx context.Context, g model.Granularity, start time.Time, dim model.TopDimension) ([]model.TopItems, error) {
	out, err := readAll(ctx, st.query(st.selTops, string(g), start, string(dim)), nil, func(sc gocql.Scanner) (model.TopItems, error) {
		var t model.TopItems
		err := sc.Scan(&t.Granularity, &t.Start, &t.Dimension, &t.Partition, &t.Counts)
		t.Start, t.Counts = t.Start.UTC(), nilIfEmpty(t.Counts)
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("cassandra: tops %s %s %s: %w", g, start.UTC().Format(time.RFC3339), dim, err)
	}
	return out, nil
}

// SessionsByUser returns a user's sessions, newest start first, at most limit (all if
// limit <= 0).
func (st *Store) SessionsByUser(ctx context.Context, userID string, limit int) ([]model.Session, error) {
	q := st.query(st.selSessions, userID)
	if limit > 0 {
		q = st.query(st.selSessionsLimit, userID, limit)
	}
	out, err := readAll(ctx, q, nil, func(sc gocql.Scanner) (model.Session, error) {
		var s model.Session
		var recent []userEventUDT
		err := sc.Scan(&s.UserID, &s.SessionID, &s.Platform, &s.Start, &s.End, &s.Events, &s.PageViews, &s.CartAdds,
			&s.Checkouts, &s.Orders, &s.Revenue, &s.Outcome, &s.Closed, &s.Partition, &recent)
		s.Start, s.End, s.Revenue, s.Recent = s.Start.UTC(), s.End.UTC(), nilIfEmpty(s.Revenue), recentOf(recent)
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("cassandra: sessions of %q: %w", userID, err)
	}
	return out, nil
}

// RecentTransactions returns the newest transactions of kind (one of model.TxKinds; "" or
// "all": every kind), merged over the stream partitions, newest first, at most limit (all
// the feeds hold if limit <= 0). A kind without a feed has no transactions.
func (st *Store) RecentTransactions(ctx context.Context, kind string, limit int) ([]model.TxEvent, error) {
	kinds := []string{kind}
	if kind == "" || kind == "all" {
		kinds = model.TxKinds
	}
	var feeds []model.TxFeed
	for _, k := range kinds {
		var err error
		feeds, err = readAll(ctx, st.query(st.selTxFeeds, k), feeds, func(sc gocql.Scanner) (model.TxFeed, error) {
			var f model.TxFeed
			var evs []txEventUDT
			err := sc.Scan(&f.Kind, &f.Partition, &evs)
			for _, e := range evs {
				f.Events = append(f.Events, model.TxEvent{Time: e.Time.UTC(), Kind: f.Kind, UserID: e.UserID, OrderID: e.OrderID,
					AmountMinor: e.AmountMinor, Currency: e.Currency, Platform: e.Platform, Reason: e.Reason, Partition: f.Partition})
			}
			return f, err
		})
		if err != nil {
			return nil, fmt.Errorf("cassandra: transactions %s: %w", k, err)
		}
	}
	return model.MergeTxFeeds(feeds, limit), nil
}

// readAll runs q and appends one value per row, decoded by scan; the driver pages.
func readAll[T any](ctx context.Context, q *gocql.Query, out []T, scan func(gocql.Scanner) (T, error)) ([]T, error) {
	sc := q.IterContext(ctx).Scanner()
	for sc.Next() {
		v, err := scan(sc)
		if err != nil {
			_ = sc.Err() // closes the iterator
			return out, err
		}
		out = append(out, v)
	}
	return out, sc.Err()
}
