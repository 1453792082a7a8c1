package cassandra

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"github.com/bytebasket/bytebasket/internal/config"
	"github.com/bytebasket/bytebasket/internal/model"
	"github.com/bytebasket/bytebasket/internal/store/storetest"
	"github.com/bytebasket/bytebasket/internal/testenv"
)

const testRetention = 48 * time.Hour

// newTestStore applies the schema to a fresh keyspace of the real Cassandra and opens a
// Store on it; the keyspace is dropped when the test ends.
func newTestStore(t testing.TB) (*Store, *gocql.Session, config.Cassandra) {
	t.Helper()
	cfg := config.Default().Cassandra
	cfg.Hosts = []string{testenv.Addr(t, testenv.Cassandra)}
	cfg.Keyspace = fmt.Sprintf("it_%d", time.Now().UnixNano())
	ctx := context.Background()
	s, err := Connect(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = s.Query("DROP KEYSPACE IF EXISTS " + cfg.Keyspace).Exec()
		s.Close()
	})
	if _, err := ApplySchema(ctx, s, cfg, testRetention); err != nil {
		t.Fatal(err)
	}
	st, err := NewStore(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st, s, cfg
}

// midnight is a UTC day boundary: test windows straddle it, so reads span two day buckets.
var midnight = time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)

// testBatch has rows of every type, sub-millisecond times (stored as ms),
// non-UTC times (read back as UTC) and nil maps.
func testBatch() model.Batch {
	var b model.Batch
	cet := time.FixedZone("CET", 3600)
	for i, m := range []int{-2, -1, 0, 1} { // 23:58, 23:59, 00:00, 00:01
		for _, platform := range []string{"web", "ios"} {
			for p := range int32(2) {
				start := midnight.Add(time.Duration(m) * time.Minute).In(cet)
				w := model.WindowMetrics{
					Key:       model.WindowKey{Granularity: model.Minute, Start: start, Platform: platform, Partition: p},
					PageViews: int64(100*i) + int64(p), ProductViews: 2, Searches: 3, CartAdds: 4, Checkouts: 5, Orders: 6,
					PaymentsFailed: 7, Refunds: 8, Chargebacks: 9,
					Revenue: map[string]int64{"EUR": 1234, "USD": int64(i)}, OrdersByCurrency: map[string]int64{"EUR": 1, "USD": 2},
					ActiveUsers: 10, FunnelViewers: 11, FunnelCarters: 12, FunnelCheckout: 13, FunnelBuyers: 14,
					UpdatedAt: start.Add(time.Minute + 1234567*time.Nanosecond),
				}
				if p == 1 {
					w.Revenue, w.OrdersByCurrency = nil, nil // a window without orders
				}
				b.Windows = append(b.Windows, w)
				b.SessionWindows = append(b.SessionWindows, model.SessionWindow{
					Key: w.Key, Sessions: int64(i + 1), Browsed: 1, AbandonedCart: 2, AbandonedCheckout: 3, Purchased: 4, DurationSumMillis: 56789,
				})
			}
		}
	}
	for _, start := range []time.Time{midnight, midnight.Add(time.Minute)} {
		for _, dim := range []model.TopDimension{model.TopProductViews, model.TopCategoryOrders} {
			for p := range int32(3) {
				counts := map[string]int64{"p-1": 5, "p-2": int64(p)}
				if p == 2 {
					counts = nil
				}
				b.Tops = append(b.Tops, model.TopItems{Granularity: model.Minute, Start: start, Dimension: dim, Partition: p, Counts: counts})
			}
		}
	}
	for i := range 3 {
		start := midnight.Add(time.Duration(i)*time.Hour + 500*time.Microsecond).In(cet)
		b.Sessions = append(b.Sessions, model.Session{
			UserID: "u-1", SessionID: fmt.Sprintf("s-%d", i), Platform: "web", Start: start, End: start.Add(10 * time.Minute),
			Events: 10, PageViews: 5, CartAdds: 2, Checkouts: 1, Orders: 1, Revenue: map[string]int64{"EUR": 999},
			Outcome: model.OutcomePurchased, Closed: true, Partition: 3,
			Recent: []model.UserEvent{
				{Time: start.Add(10 * time.Minute), Kind: "order_placed", AmountMinor: 999, Currency: "EUR"},
				{Time: start.Add(time.Minute + time.Microsecond), Kind: "product_view", ProductID: "p-1", AmountMinor: 499, Currency: "EUR"},
				{Time: start, Kind: "page_view"},
			},
		})
	}
	early := midnight.Add(-time.Hour) // older than all of u-1's, so readBack's order is newest first
	b.Sessions = append(b.Sessions, model.Session{UserID: "u-2", SessionID: "s-open", Platform: "ios", Start: early, End: early, Events: 1, PageViews: 1})
	return b
}

// ms is how Cassandra keeps a time: UTC, milliseconds.
func ms(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Millisecond)
}

func emptyNil(m map[string]int64) map[string]int64 {
	if len(m) == 0 {
		return nil
	}
	return m
}

// expected is what reading b back should return: times as stored, empty maps as nil, and
// each kind of row in read order (newest first).
func expected(b model.Batch) model.Batch {
	var e model.Batch
	for _, w := range b.Windows {
		w.Key.Start, w.UpdatedAt = ms(w.Key.Start), ms(w.UpdatedAt)
		w.Revenue, w.OrdersByCurrency = emptyNil(w.Revenue), emptyNil(w.OrdersByCurrency)
		e.Windows = append(e.Windows, w)
	}
	slices.SortFunc(e.Windows, func(a, b model.WindowMetrics) int { return compareKeys(a.Key, b.Key) })
	for _, w := range b.SessionWindows {
		w.Key.Start = ms(w.Key.Start)
		e.SessionWindows = append(e.SessionWindows, w)
	}
	slices.SortFunc(e.SessionWindows, func(a, b model.SessionWindow) int { return compareKeys(a.Key, b.Key) })
	for _, t := range b.Tops {
		t.Start, t.Counts = ms(t.Start), emptyNil(t.Counts)
		e.Tops = append(e.Tops, t)
	}
	for _, s := range b.Sessions {
		s.Start, s.End, s.Revenue = ms(s.Start), ms(s.End), emptyNil(s.Revenue)
		s.Recent = slices.Clone(s.Recent)
		for i := range s.Recent {
			s.Recent[i].Time = ms(s.Recent[i].Time)
		}
		e.Sessions = append(e.Sessions, s)
	}
	slices.SortFunc(e.Sessions, func(a, b model.Session) int { return b.Start.Compare(a.Start) })
	return e
}

// compareKeys is the clustering order of the window tables: newest first, then platform,
// then partition.
func compareKeys(a, b model.WindowKey) int {
	if c := b.Start.Compare(a.Start); c != 0 {
		return c
	}
	if c := strings.Compare(a.Platform, b.Platform); c != 0 {
		return c
	}
	return int(a.Partition - b.Partition)
}

// readBack reads everything testBatch wrote, in the shape of expected.
func readBack(t *testing.T, st *Store) model.Batch {
	t.Helper()
	ctx := context.Background()
	var got model.Batch
	var err error
	from, to := midnight.Add(-time.Hour), midnight.Add(time.Hour)
	if got.Windows, err = st.Windows(ctx, model.Minute, from, to); err != nil {
		t.Fatal(err)
	}
	if got.SessionWindows, err = st.SessionWindows(ctx, model.Minute, from, to); err != nil {
		t.Fatal(err)
	}
	for _, start := range []time.Time{midnight, midnight.Add(time.Minute)} {
		for _, dim := range []model.TopDimension{model.TopProductViews, model.TopCategoryOrders} {
			tops, err := st.Tops(ctx, model.Minute, start, dim)
			if err != nil {
				t.Fatal(err)
			}
			got.Tops = append(got.Tops, tops...)
		}
	}
	for _, u := range []string{"u-1", "u-2"} {
		ss, err := st.SessionsByUser(ctx, u, 0)
		if err != nil {
			t.Fatal(err)
		}
		got.Sessions = append(got.Sessions, ss...)
	}
	// u-1's sessions are all newer than u-2's, so the per-user reads concatenate in order.
	return got
}

// diffBatch reports, per kind of row, the first row that differs.
func diffBatch(t *testing.T, got, want model.Batch) {
	t.Helper()
	for _, f := range []string{"Windows", "SessionWindows", "Tops", "Sessions"} {
		g, w := reflect.ValueOf(got).FieldByName(f), reflect.ValueOf(want).FieldByName(f)
		for i := range max(g.Len(), w.Len()) {
			if i >= g.Len() || i >= w.Len() {
				t.Errorf("%s: read back %d rows, want %d", f, g.Len(), w.Len())
				break
			}
			if gi, wi := g.Index(i).Interface(), w.Index(i).Interface(); !reflect.DeepEqual(gi, wi) {
				t.Errorf("%s[%d] read back differs:\n got %+v\nwant %+v", f, i, gi, wi)
				break
			}
		}
	}
}

// A batch of every row type reads back equal, newest first across two day buckets; writing
// it again changes nothing; a later whole value replaces the earlier one entirely.
func TestStoreWriteRead(t *testing.T) {
	st, _, _ := newTestStore(t)
	ctx := context.Background()
	b := testBatch()
	f := storetest.Claim(t, st)
	if err := st.Write(ctx, f, b); err != nil {
		t.Fatal(err)
	}
	want := expected(b)
	diffBatch(t, readBack(t, st), want)

	// Ranges: [23:59, 00:01) spans both days and leaves out 23:58 and 00:01.
	ws, err := st.Windows(ctx, model.Minute, midnight.Add(-time.Minute), midnight.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	var starts []string
	for _, w := range ws {
		if s := w.Key.Start.Format("15:04"); len(starts) == 0 || starts[len(starts)-1] != s {
			starts = append(starts, s)
		}
	}
	if !slices.Equal(starts, []string{"00:00", "23:59"}) || len(ws) != 8 {
		t.Errorf("windows in [23:59, 00:01): %d rows, starts %v; want 8 rows, [00:00 23:59]", len(ws), starts)
	}
	if ws, _ := st.Windows(ctx, model.Hour, midnight.Add(-time.Hour), midnight.Add(time.Hour)); len(ws) != 0 {
		t.Errorf("hour windows: %d rows, want none", len(ws))
	}
	if ws, _ := st.Windows(ctx, model.Minute, midnight, midnight); len(ws) != 0 {
		t.Errorf("empty range: %d rows", len(ws))
	}
	if ss, err := st.SessionsByUser(ctx, "u-1", 2); err != nil || len(ss) != 2 || ss[0].SessionID != "s-2" || ss[1].SessionID != "s-1" {
		t.Errorf("2 newest sessions of u-1: %+v, %v; want s-2, s-1", ss, err)
	}

	// Idempotent: the same batch again (a replay) leaves the same rows.
	if err := st.Write(ctx, f, b); err != nil {
		t.Fatal(err)
	}
	diffBatch(t, readBack(t, st), want)

	// A later value replaces the whole row: map keys it lacks are gone, not merged.
	b2 := testBatch()
	b2.Windows[0].Revenue = map[string]int64{"GBP": 1}
	b2.Windows[0].PageViews = 999
	b2.Tops[0].Counts = map[string]int64{"p-9": 1}
	b2.Sessions[0].Revenue, b2.Sessions[0].Outcome, b2.Sessions[0].Closed = nil, "", false
	if err := st.Write(ctx, f, b2); err != nil {
		t.Fatal(err)
	}
	diffBatch(t, readBack(t, st), expected(b2))
}

// A bad row fails the write with an error naming it.
func TestStoreBadRow(t *testing.T) {
	st, _, _ := newTestStore(t)
	b := testBatch()
	b.Sessions = append(b.Sessions, model.Session{UserID: "", SessionID: "bad", Start: midnight})
	err := st.Write(context.Background(), storetest.Claim(t, st), b)
	if err == nil || !strings.Contains(err.Error(), "session /bad") {
		t.Fatalf("write with a bad row: %v; want an error naming the row", err)
	}
}

func TestStoreState(t *testing.T) {
	st, _, _ := newTestStore(t)
	storetest.CheckState(t, st)
}

// Two processes: the one whose claim is older keeps writing after the newer owner did (a
// paused instance resuming), and loses on every row, whatever order the writes land in;
// its lease cannot be extended once the partition is claimed.
func TestStoreFencesAcrossProcesses(t *testing.T) {
	old, _, cfg := newTestStore(t)
	ctx := context.Background()
	newer, err := NewStore(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer newer.Close()
	fOld, _, err := old.Claim(ctx, "g", 1)
	if err != nil {
		t.Fatal(err)
	}
	b := testBatch()
	if err := old.Write(ctx, fOld, b); err != nil {
		t.Fatal(err)
	}
	fNew, _, err := newer.Claim(ctx, "g", 1)
	if err != nil {
		t.Fatal(err)
	}
	b2 := testBatch()
	for i := range b2.Windows {
		b2.Windows[i].PageViews += 1000
	}
	if err := newer.Write(ctx, fNew, b2); err != nil {
		t.Fatal(err)
	}
	stale := testBatch()
	for i := range stale.Windows {
		stale.Windows[i].PageViews = -1
	}
	if err := old.Write(ctx, fOld, stale); err != nil { // within its lease: not refused, but must lose
		t.Fatal(err)
	}
	diffBatch(t, readBack(t, old), expected(b2))
	if err := old.CommitHead(ctx, fOld, []byte("stale")); !errors.Is(err, model.ErrFenced) {
		t.Fatalf("stale commit: %v, want fenced", err)
	}
	// Once its lease runs out the old owner must extend it, which the newer claim refuses.
	old.leaseMu.Lock()
	l := old.leases[leaseKey{"g", 1}]
	old.leaseMu.Unlock()
	l.mu.Lock()
	l.last = l.until - 1
	l.mu.Unlock()
	if err := old.Write(ctx, fOld, stale); !errors.Is(err, model.ErrFenced) {
		t.Fatalf("write past the lease after a newer claim: %v, want fenced", err)
	}
	diffBatch(t, readBack(t, old), expected(b2))
}

// Rows of the data tables expire with the retention; checkpoints never do. Applying the
// schema again changes nothing.
func TestStoreTTL(t *testing.T) {
	st, s, cfg := newTestStore(t)
	ctx := context.Background()
	b := testBatch()
	b.TxFeeds = []model.TxFeed{{Kind: model.TxRefund, Events: []model.TxEvent{{Time: midnight, Kind: model.TxRefund}}}}
	f := storetest.Claim(t, st)
	if err := st.Write(ctx, f, b); err != nil {
		t.Fatal(err)
	}
	if err := st.AppendLog(ctx, f, 1, [][]byte{[]byte("state")}); err != nil {
		t.Fatal(err)
	}
	if err := st.CommitHead(ctx, f, []byte("head")); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"SELECT TTL(page_views) FROM %s.window_metrics LIMIT 1",
		"SELECT TTL(counts) FROM %s.top_items LIMIT 1",
		"SELECT TTL(platform) FROM %s.sessions_by_user LIMIT 1",
		"SELECT TTL(sessions) FROM %s.session_windows LIMIT 1",
		"SELECT TTL(events) FROM %s.tx_feeds LIMIT 1",
	} {
		var ttl int
		if err := s.Query(fmt.Sprintf(q, cfg.Keyspace)).ScanContext(ctx, &ttl); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if ttl <= 0 || ttl > int(testRetention/time.Second) {
			t.Errorf("%s = %d, want within the %s retention", q, ttl, testRetention)
		}
	}
	for _, q := range []string{"SELECT TTL(head) FROM %s.state_heads LIMIT 1", "SELECT TTL(data) FROM %s.state_log LIMIT 1"} {
		var ttl *int
		if err := s.Query(fmt.Sprintf(q, cfg.Keyspace)).ScanContext(ctx, &ttl); err != nil {
			t.Fatal(err)
		}
		if ttl != nil {
			t.Errorf("%s = %d, want none", q, *ttl)
		}
	}

	again, err := ApplySchema(ctx, s, cfg, testRetention)
	if err != nil || len(again) != 0 {
		t.Fatalf("second apply: applied %v, err %v; want nothing", again, err)
	}
	want := map[string]int{
		"window_metrics": 48 * 3600, "top_items": 48 * 3600, "sessions_by_user": 48 * 3600, "session_windows": 48 * 3600,
		"tx_feeds": 48 * 3600, "fraud_alerts_by_event_day": 48 * 3600, "fraud_alerts_by_event_user": 48 * 3600,
		"state_heads": 0, "state_log": 0, "schema_migrations": 0,
	}
	if got := tableTTLs(t, s, cfg.Keyspace); !mapContains(got, want) {
		t.Errorf("table TTLs %v, want %v", got, want)
	}
}

// Replaced session spans remove the rows a session had under earlier starts, by a range
// delete stamped just before the rows that replace them.
func TestReplacedSessions(t *testing.T) {
	st, _, _ := newTestStore(t)
	storetest.CheckReplacedSessions(t, st, storetest.Claim(t, st), midnight)
}

// The transaction feeds read back merged over partitions, newest first, per kind or all,
// at most limit; a later feed replaces the row whole.
func TestStoreRecentTransactions(t *testing.T) {
	st, _, _ := newTestStore(t)
	ctx := context.Background()
	if got, err := st.RecentTransactions(ctx, "all", 10); err != nil || len(got) != 0 {
		t.Fatalf("before any write: %v, %v", got, err)
	}
	feeds := storetest.TxFeeds(midnight)
	f := storetest.Claim(t, st)
	if err := st.Write(ctx, f, model.Batch{TxFeeds: feeds}); err != nil {
		t.Fatal(err)
	}
	storetest.CheckRecentTransactions(t, st, feeds)
	feeds[0].Events = feeds[0].Events[:1] // a later feed replaces the row whole
	if err := st.Write(ctx, f, model.Batch{TxFeeds: feeds[:1]}); err != nil {
		t.Fatal(err)
	}
	storetest.CheckRecentTransactions(t, st, feeds)
}

// Migration 0004 may run again (a concurrent apply, or after failing half-way): its ALTER
// must not fail on the column it added.
func TestFeedsMigrationReruns(t *testing.T) {
	_, s, cfg := newTestStore(t)
	migs, err := Migrations(cfg, testRetention)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range migs {
		if m.Version == 4 {
			if err := exec(context.Background(), s, m); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatal("no migration 4")
}

// tableTTLs reads default_time_to_live of every table in the keyspace.
func tableTTLs(t *testing.T, s *gocql.Session, keyspace string) map[string]int {
	t.Helper()
	got := map[string]int{}
	iter := s.Query("SELECT table_name, default_time_to_live FROM system_schema.tables WHERE keyspace_name = ?", keyspace).Iter()
	var name string
	var ttl int
	for iter.Scan(&name, &ttl) {
		got[name] = ttl
	}
	if err := iter.Close(); err != nil {
		t.Fatal(err)
	}
	return got
}

func mapContains(got, want map[string]int) bool {
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			return false
		}
	}
	return true
}

// NewStore refuses a keyspace without the schema, naming the fix.
func TestNewStoreNeedsSchema(t *testing.T) {
	cfg := config.Default().Cassandra
	cfg.Hosts = []string{testenv.Addr(t, testenv.Cassandra)}
	cfg.Keyspace = fmt.Sprintf("it_missing_%d", time.Now().UnixNano())
	st, err := NewStore(context.Background(), cfg)
	if err == nil {
		st.Close()
		t.Fatal("NewStore succeeded on a keyspace that does not exist")
	}
	if !strings.Contains(err.Error(), "schema apply") {
		t.Errorf("error %q does not say to apply the schema", err)
	}
}

// BenchmarkWrite writes batches shaped like one flush of one partition: 50 window rows,
// 30 top-N rows and 500 sessions.
func BenchmarkWrite(b *testing.B) {
	st, _, _ := newTestStore(b)
	ctx := context.Background()
	var batch model.Batch
	now := time.Now().UTC().Truncate(time.Minute)
	platforms := []string{"web", "ios", "android", "backend"}
	for i := range 50 {
		start := now.Add(-time.Duration(i/len(platforms)) * time.Minute)
		batch.Windows = append(batch.Windows, model.WindowMetrics{
			Key:       model.WindowKey{Granularity: model.Minute, Start: start, Platform: platforms[i%len(platforms)]},
			PageViews: 100, Orders: 3, Revenue: map[string]int64{"EUR": 10000, "USD": 5000}, OrdersByCurrency: map[string]int64{"EUR": 2, "USD": 1},
			ActiveUsers: 40, UpdatedAt: now,
		})
	}
	counts := map[string]int64{}
	for i := range 100 {
		counts[fmt.Sprintf("product-%05d", i)] = int64(i)
	}
	for i := range 30 {
		batch.Tops = append(batch.Tops, model.TopItems{Granularity: model.Minute, Start: now.Add(-time.Duration(i/5) * time.Minute),
			Dimension: model.TopDimensions[i%5], Counts: counts})
	}
	for i := range 500 {
		batch.Sessions = append(batch.Sessions, model.Session{UserID: fmt.Sprintf("user-%d", i), SessionID: fmt.Sprintf("s-%d", i),
			Platform: "web", Start: now.Add(-10 * time.Minute), End: now, Events: 12, PageViews: 8, Revenue: map[string]int64{"EUR": 999}})
	}
	f := storetest.Claim(b, st)
	rows := 0
	for b.Loop() {
		if err := st.Write(ctx, f, batch); err != nil {
			b.Fatal(err)
		}
		rows += batch.Len()
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
}

func TestStoreFraudAlerts(t *testing.T) {
	st, _, _ := newTestStore(t)
	storetest.CheckFraudAlerts(t, st, midnight.Add(3*time.Hour))
}

func TestStoreFraudLabels(t *testing.T) {
	st, _, _ := newTestStore(t)
	storetest.CheckFraudLabels(t, st, midnight.Add(5*time.Hour))
}
