package embedded

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/bytebasket/bytebasket/internal/batch/batchtest"
	"github.com/bytebasket/bytebasket/internal/model"
	"github.com/bytebasket/bytebasket/internal/store/storetest"
)

var base = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func minute(i int) time.Time { return base.Add(time.Duration(i) * time.Minute) }

func open(t testing.TB, dir string, retention time.Duration) *Store {
	t.Helper()
	s, err := Open(dir, retention)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// fences holds each test store's claim, so writes share one owner.
var fences sync.Map // *Store -> model.Fence

func fence(t testing.TB, s *Store) model.Fence {
	t.Helper()
	if f, ok := fences.Load(s); ok {
		return f.(model.Fence)
	}
	f := storetest.Claim(t, s)
	fences.Store(s, f)
	return f
}

func write(t testing.TB, s *Store, b model.Batch) {
	t.Helper()
	if err := s.Write(context.Background(), fence(t, s), b); err != nil {
		t.Fatal(err)
	}
}

func eq(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got  %+v\n want %+v", what, got, want)
	}
}

func window(g model.Granularity, start time.Time, platform string, part int32, pv int64) model.WindowMetrics {
	return model.WindowMetrics{
		Key:       model.WindowKey{Granularity: g, Start: start, Platform: platform, Partition: part},
		PageViews: pv, ProductViews: 2, Searches: 3, CartAdds: 4, Checkouts: 5, Orders: 6,
		PaymentsFailed: 7, Refunds: 8, Chargebacks: -9,
		Revenue:          map[string]int64{"USD": 12345, "EUR": 1 << 40},
		OrdersByCurrency: map[string]int64{"USD": 3, "EUR": 1},
		ActiveUsers:      10, FunnelViewers: 11, FunnelCarters: 12, FunnelCheckout: 13, FunnelBuyers: 14,
		UpdatedAt: start.Add(61 * time.Second),
	}
}

func sessionWindow(g model.Granularity, start time.Time, platform string, part int32, n int64) model.SessionWindow {
	return model.SessionWindow{
		Key:      model.WindowKey{Granularity: g, Start: start, Platform: platform, Partition: part},
		Sessions: n, Browsed: 1, AbandonedCart: 2, AbandonedCheckout: 3, Purchased: 4, DurationSumMillis: 99999,
	}
}

func session(user, id string, start time.Time, part int32) model.Session {
	return model.Session{
		UserID: user, SessionID: id, Platform: "ios", Start: start, End: start.Add(7 * time.Minute),
		Events: 20, PageViews: 9, CartAdds: 2, Checkouts: 1, Orders: 1,
		Revenue: map[string]int64{"GBP": 4999}, Outcome: model.OutcomePurchased, Closed: true, Partition: part,
		Recent: []model.UserEvent{
			{Time: start.Add(7 * time.Minute), Kind: "order_placed", AmountMinor: 4999, Currency: "GBP"},
			{Time: start.Add(time.Minute), Kind: "cart_add", ProductID: "sku-1", AmountMinor: 2 * 2499, Currency: "GBP"},
			{Time: start, Kind: "page_view"},
		},
	}
}

func TestRoundTrip(t *testing.T) {
	s := open(t, t.TempDir(), time.Hour)
	ctx := context.Background()

	// Sub-millisecond and non-UTC inputs come back truncated to ms, in UTC.
	paris := time.FixedZone("CET", 3600)
	fine := base.Add(1234567 * time.Nanosecond).In(paris)
	w := window(model.Minute, fine, "web", 2, 1)
	w.UpdatedAt = fine.Add(time.Nanosecond)
	bare := model.WindowMetrics{Key: model.WindowKey{Granularity: model.Hour, Start: base, Platform: "", Partition: 0}}
	top := model.TopItems{Granularity: model.FiveMinute, Start: base, Dimension: model.TopProductRevenue, Partition: 3,
		Counts: map[string]int64{"sku-1": 10, "sku-2": 20, "": 0}}
	sess := session("user-1", "s-1", fine, 1)
	live := model.Session{UserID: "user-2", SessionID: "s-2", Start: base, Platform: "web", Events: 1}
	sw := sessionWindow(model.Minute, base, "android", 0, 5)
	write(t, s, model.Batch{Windows: []model.WindowMetrics{w, bare}, Tops: []model.TopItems{top},
		Sessions: []model.Session{sess, live}, SessionWindows: []model.SessionWindow{sw}})

	ms := base.Add(time.Millisecond)
	wantW := w
	wantW.Key.Start, wantW.UpdatedAt = ms, ms
	gotW, err := s.Windows(ctx, model.Minute, base, base.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "windows", gotW, []model.WindowMetrics{wantW})
	if gotW[0].Key.Start.Location() != time.UTC {
		t.Fatalf("start not UTC: %v", gotW[0].Key.Start.Location())
	}
	bare.UpdatedAt = time.Time{}.UTC()
	gotBare, err := s.Windows(ctx, model.Hour, base, base.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "bare window", gotBare, []model.WindowMetrics{bare})

	gotT, err := s.Tops(ctx, model.FiveMinute, base, model.TopProductRevenue)
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "tops", gotT, []model.TopItems{top})

	wantS := sess
	wantS.Start, wantS.End = ms, base.Add(7*time.Minute+time.Millisecond)
	wantS.Recent = slices.Clone(sess.Recent)
	for i := range wantS.Recent {
		wantS.Recent[i].Time = wantS.Recent[i].Time.UTC().Truncate(time.Millisecond)
	}
	gotS, err := s.SessionsByUser(ctx, "user-1", 10)
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "sessions", gotS, []model.Session{wantS})
	gotS, err = s.SessionsByUser(ctx, "user-2", 10)
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "open session", gotS, []model.Session{live})

	gotSW, err := s.SessionWindows(ctx, model.Minute, base, base.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "session windows", gotSW, []model.SessionWindow{sw})
}

func TestWindowsNewestFirstAndRange(t *testing.T) {
	s := open(t, t.TempDir(), time.Hour)
	ctx := context.Background()
	var b model.Batch
	for m := range 10 {
		for _, p := range []string{"web", "ios"} {
			for part := range int32(2) {
				b.Windows = append(b.Windows, window(model.Minute, minute(m), p, part, int64(m)))
				b.SessionWindows = append(b.SessionWindows, sessionWindow(model.Minute, minute(m), p, part, int64(m)))
			}
		}
		// Other granularities and tables must not leak into the scan.
		b.Windows = append(b.Windows, window(model.FiveMinute, minute(m), "web", 0, 100))
	}
	write(t, s, b)

	starts := func(ws []model.WindowMetrics) (out []int) {
		for _, w := range ws {
			out = append(out, int(w.Key.Start.Sub(base)/time.Minute))
			if w.Key.Granularity != model.Minute || w.PageViews != int64(out[len(out)-1]) {
				t.Fatalf("wrong row %+v", w.Key)
			}
		}
		return out
	}
	cases := []struct {
		name     string
		from, to time.Time
		want     []int
	}{
		{"half-open", minute(3), minute(7), []int{6, 5, 4, 3}},
		{"from just after a start", minute(3).Add(time.Nanosecond), minute(5), []int{4}},
		{"to just after a start", minute(3), minute(4).Add(500 * time.Microsecond), []int{4, 3}},
		{"all", minute(-100), minute(100), []int{9, 8, 7, 6, 5, 4, 3, 2, 1, 0}},
		{"before all", minute(-10), minute(0), nil},
		{"empty", minute(5), minute(5), nil},
		{"reversed", minute(7), minute(3), nil},
	}
	for _, c := range cases {
		got, err := s.Windows(ctx, model.Minute, c.from, c.to)
		if err != nil {
			t.Fatal(err)
		}
		var want []int
		for _, m := range c.want {
			want = append(want, m, m, m, m) // 2 platforms x 2 partitions
		}
		eq(t, c.name, starts(got), want)
	}

	sws, err := s.SessionWindows(ctx, model.Minute, minute(8), minute(10))
	if err != nil {
		t.Fatal(err)
	}
	if len(sws) != 8 || sws[0].Sessions != 9 || sws[7].Sessions != 8 {
		t.Fatalf("session windows: %+v", sws)
	}
	five, err := s.Windows(ctx, model.FiveMinute, minute(0), minute(10))
	if err != nil {
		t.Fatal(err)
	}
	if len(five) != 10 || !five[0].Key.Start.Equal(minute(9)) {
		t.Fatalf("5m windows: %d rows, first %v", len(five), five[0].Key.Start)
	}
}

func TestTopsAllPartitionsOfOneWindow(t *testing.T) {
	s := open(t, t.TempDir(), time.Hour)
	var b model.Batch
	for part := range int32(4) {
		for _, dim := range model.TopDimensions {
			for m := range 3 {
				b.Tops = append(b.Tops, model.TopItems{Granularity: model.Minute, Start: minute(m), Dimension: dim,
					Partition: part, Counts: map[string]int64{fmt.Sprintf("%s-%d-%d", dim, part, m): int64(part)}})
			}
		}
	}
	write(t, s, b)
	got, err := s.Tops(context.Background(), model.Minute, minute(1), model.TopCategoryViews)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 {
		t.Fatalf("got %d rows, want 4", len(got))
	}
	for i, r := range got {
		want := map[string]int64{fmt.Sprintf("%s-%d-1", model.TopCategoryViews, i): int64(i)}
		if r.Partition != int32(i) || !r.Start.Equal(minute(1)) || r.Dimension != model.TopCategoryViews {
			t.Fatalf("row %d: %+v", i, r)
		}
		eq(t, "counts", r.Counts, want)
	}
	none, err := s.Tops(context.Background(), model.Hour, minute(1), model.TopCategoryViews)
	if err != nil || len(none) != 0 {
		t.Fatalf("other granularity: %v %v", none, err)
	}
}

// Replaced session spans remove the rows a session had under earlier starts.
func TestReplacedSessions(t *testing.T) {
	s := open(t, t.TempDir(), time.Hour)
	storetest.CheckReplacedSessions(t, s, fence(t, s), time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC))
}

func TestSessionsByUserNewestFirst(t *testing.T) {
	s := open(t, t.TempDir(), time.Hour)
	ctx := context.Background()
	var b model.Batch
	for m := range 5 {
		b.Sessions = append(b.Sessions, session("ab", fmt.Sprint("ab-", m), minute(m), 0))
		b.Sessions = append(b.Sessions, session("abc", fmt.Sprint("abc-", m), minute(m), 1)) // "ab" is its prefix
	}
	write(t, s, b)
	ids := func(ss []model.Session) (out []string) {
		for _, x := range ss {
			out = append(out, x.SessionID)
		}
		return out
	}
	got, err := s.SessionsByUser(ctx, "ab", 0)
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "all", ids(got), []string{"ab-4", "ab-3", "ab-2", "ab-1", "ab-0"})
	got, err = s.SessionsByUser(ctx, "abc", 2)
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "limit", ids(got), []string{"abc-4", "abc-3"})
	got, err = s.SessionsByUser(ctx, "nobody", 10)
	if err != nil || got != nil {
		t.Fatalf("unknown user: %v %v", got, err)
	}
}

// dump reads every key and value, TTL included, to compare whole-store states.
func dump(t *testing.T, s *Store) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.DefaultIteratorOptions)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			out[string(it.Item().KeyCopy(nil))] = string(v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func fullBatch() model.Batch {
	return model.Batch{
		Windows:        []model.WindowMetrics{window(model.Minute, minute(1), "web", 0, 1), window(model.Hour, base, "ios", 3, 2)},
		Tops:           []model.TopItems{{Granularity: model.Minute, Start: minute(1), Dimension: model.TopProductViews, Counts: map[string]int64{"a": 1, "b": 2}}},
		Sessions:       []model.Session{session("u", "s", minute(1), 0)},
		SessionWindows: []model.SessionWindow{sessionWindow(model.Minute, minute(1), "web", 0, 3)},
	}
}

func TestRewriteSameBatchChangesNothing(t *testing.T) {
	s := open(t, t.TempDir(), time.Hour)
	write(t, s, fullBatch())
	before := dump(t, s)
	if len(before) != 6 { // five rows and the claim
		t.Fatalf("%d keys, want 6", len(before))
	}
	write(t, s, fullBatch())
	eq(t, "state after rewrite", dump(t, s), before)
}

func TestLaterWholeValueReplaces(t *testing.T) {
	s := open(t, t.TempDir(), time.Hour)
	ctx := context.Background()
	write(t, s, fullBatch())

	w := window(model.Minute, minute(1), "web", 0, 42)
	w.Revenue = map[string]int64{"USD": 1} // EUR must disappear, not linger
	w.OrdersByCurrency = nil
	top := model.TopItems{Granularity: model.Minute, Start: minute(1), Dimension: model.TopProductViews, Counts: map[string]int64{"c": 9}}
	sess := session("u", "s", minute(1), 0)
	sess.Closed, sess.Outcome, sess.Events = false, "", 99
	write(t, s, model.Batch{Windows: []model.WindowMetrics{w}, Tops: []model.TopItems{top},
		Sessions: []model.Session{sess}})

	ws, _ := s.Windows(ctx, model.Minute, minute(1), minute(2))
	eq(t, "window", ws, []model.WindowMetrics{w})
	ts, _ := s.Tops(ctx, model.Minute, minute(1), model.TopProductViews)
	eq(t, "top", ts, []model.TopItems{top})
	ss, _ := s.SessionsByUser(ctx, "u", 0)
	eq(t, "session", ss, []model.Session{sess})
}

func TestState(t *testing.T) { storetest.CheckState(t, open(t, t.TempDir(), time.Hour)) }

func TestSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, time.Hour)
	s0 := s
	write(t, s, fullBatch())
	before := dump(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil { // idempotent
		t.Fatal(err)
	}
	s = open(t, dir, time.Hour)
	eq(t, "state after reopen", dump(t, s), before)
	// Epochs survive too: a claim after reopening outbids the one before.
	before0, _ := fences.Load(s0)
	if f := storetest.Claim(t, s); f.Epoch <= before0.(model.Fence).Epoch {
		t.Fatalf("claim after reopen: epoch %d, before %d", f.Epoch, before0.(model.Fence).Epoch)
	}
	if err := s0.Write(context.Background(), before0.(model.Fence), fullBatch()); err == nil {
		t.Fatal("an old claim wrote after a newer one")
	}
}

// TestExpiry checks what expires, not when: rows live at least the retention and at most a
// second more (badger's TTL resolution); the partition's claim and head never expire.
func TestExpiry(t *testing.T) {
	s := open(t, t.TempDir(), time.Second)
	write(t, s, fullBatch())
	if n := len(dump(t, s)); n != 6 {
		t.Fatalf("%d keys right after write, want 6", n)
	}
	time.Sleep(2100 * time.Millisecond)
	got := dump(t, s)
	if len(got) != 1 || got[string(stateHeadKey("storetest", 0))] == "" {
		t.Fatalf("after expiry: %d keys, want the claim only", len(got))
	}
}

// TestBatchLargerThanATransaction covers the split path: rows commit in pieces.
func TestBatchLargerThanATransaction(t *testing.T) {
	s := open(t, t.TempDir(), time.Hour)
	var b model.Batch
	const tops, items = 24, 25000 // ~11 MB, over badger's ~9.6 MB transaction limit
	for i := range tops {
		counts := make(map[string]int64, items)
		for j := range items {
			counts[fmt.Sprintf("product-%06d", j)] = int64(j)
		}
		b.Tops = append(b.Tops, model.TopItems{Granularity: model.Minute, Start: base, Dimension: model.TopProductViews,
			Partition: int32(i), Counts: counts})
	}
	write(t, s, b)
	got, err := s.Tops(context.Background(), model.Minute, base, model.TopProductViews)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != tops || len(got[tops-1].Counts) != items {
		t.Fatalf("got %d rows", len(got))
	}
}

func TestCanceledContext(t *testing.T) {
	s := open(t, t.TempDir(), time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Write(ctx, fence(t, s), fullBatch()); err == nil {
		t.Fatal("write with canceled context succeeded")
	}
	if _, err := s.Windows(ctx, model.Minute, minute(0), minute(5)); err == nil {
		t.Fatal("read with canceled context succeeded")
	}
}

// flushBatch is shaped like one flush of one stream partition.
func flushBatch(r *rand.Rand, n int) model.Batch {
	start := base.Add(time.Duration(n) * time.Minute)
	var b model.Batch
	for i := range 50 {
		g := model.Granularities[i%3]
		b.Windows = append(b.Windows, window(g, start.Truncate(g.Duration()).Add(-time.Duration(i/12)*g.Duration()),
			[]string{"web", "ios", "android", "backend"}[i%4], 1, int64(i)))
	}
	for i := range 30 {
		counts := make(map[string]int64, 200)
		for range 200 {
			counts[fmt.Sprintf("product-%05d", r.IntN(50000))] = r.Int64N(1000)
		}
		b.Tops = append(b.Tops, model.TopItems{Granularity: model.Granularities[i%3], Start: start,
			Dimension: model.TopDimensions[i%5], Partition: 1, Counts: counts})
	}
	for i := range 500 {
		b.Sessions = append(b.Sessions, session(fmt.Sprintf("user-%06d", r.IntN(100000)), fmt.Sprint("s-", n, "-", i),
			start.Add(-time.Duration(r.IntN(600))*time.Second), 1))
	}
	for i := range 12 {
		b.SessionWindows = append(b.SessionWindows, sessionWindow(model.Granularities[i%3], start, "web", 1, int64(i)))
	}
	return b
}

// BenchmarkWrite writes flush-shaped batches.
func BenchmarkWrite(b *testing.B) {
	s := open(b, b.TempDir(), time.Hour)
	r := rand.New(rand.NewPCG(1, 2))
	batches := make([]model.Batch, 16)
	for i := range batches {
		batches[i] = flushBatch(r, i)
	}
	ctx, f := context.Background(), fence(b, s)
	rows, i := 0, 0
	for b.Loop() {
		batch := batches[i%len(batches)]
		if err := s.Write(ctx, f, batch); err != nil {
			b.Fatal(err)
		}
		rows += batch.Len()
		i++
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
}

func TestTrends(t *testing.T) {
	batchtest.TestTrendStore(t, open(t, t.TempDir(), time.Hour))
}

// Trend rows expire with the history retention, not the retention of live rows.
func TestTrendsExpireWithHistory(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, time.Hour, WithHistory(1500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	rows := batchtest.SampleTrends()
	start := rows.Metrics[0].Key.Start
	if err := s.WriteTrends(ctx, rows); err != nil {
		t.Fatal(err)
	}
	write(t, s, model.Batch{Windows: []model.WindowMetrics{window(model.Minute, base, "web", 0, 1)}})
	span := func() (int, int) {
		tr, err := s.Trends(ctx, model.TrendHour, start.Add(-time.Hour), start.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		w, err := s.Windows(ctx, model.Minute, base, base.Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		return len(tr), len(w)
	}
	if tr, w := span(); tr == 0 || w != 1 {
		t.Fatalf("before expiry: %d trend rows, %d windows", tr, w)
	}
	time.Sleep(2600 * time.Millisecond) // badger expires at whole seconds
	if tr, w := span(); tr != 0 || w != 1 {
		t.Fatalf("after the history TTL: %d trend rows (want 0), %d windows (want 1)", tr, w)
	}
	// Without WithHistory, trend rows get the default history retention (a year), not an hour.
	d, err := Open(t.TempDir(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.history != 365*24*time.Hour {
		t.Fatalf("default history TTL %s", d.history)
	}
}

// The transaction feeds read back merged over partitions, newest first, per kind or all,
// at most limit; a later feed replaces the row whole; they survive a reopen.
func TestRecentTransactions(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, time.Hour)
	ctx := context.Background()
	if got, err := s.RecentTransactions(ctx, "all", 10); err != nil || len(got) != 0 {
		t.Fatalf("before any write: %v, %v", got, err)
	}
	feeds := storetest.TxFeeds(base)
	write(t, s, model.Batch{TxFeeds: feeds})
	storetest.CheckRecentTransactions(t, s, feeds)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir, time.Hour)
	storetest.CheckRecentTransactions(t, s, feeds)

	feeds[0].Events = feeds[0].Events[:1] // a later feed replaces the row whole
	write(t, s, model.Batch{TxFeeds: feeds[:1]})
	storetest.CheckRecentTransactions(t, s, feeds)
}

// Sessions written before recent events existed (value version 1) still read, without them.
func TestSessionVersion1StillDecodes(t *testing.T) {
	s := open(t, t.TempDir(), time.Hour)
	old := session("u", "s", base, 2)
	old.Recent = nil
	v2 := encodeSession(&old)
	// Version 1 is version 2 without the trailing count of recent events (0: one byte).
	v1 := append([]byte{1}, v2[1:len(v2)-1]...)
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(sessionKey(&old), v1) }); err != nil {
		t.Fatal(err)
	}
	got, err := s.SessionsByUser(context.Background(), "u", 0)
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "version 1 session", got, []model.Session{old})
	if _, err := decodeSession(sessionKey(&old), append([]byte{3}, v2[1:]...)); err == nil {
		t.Fatal("decoded an unknown session version")
	}
}

func TestFraudAlerts(t *testing.T) {
	storetest.CheckFraudAlerts(t, open(t, t.TempDir(), time.Hour), time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC))
}

func TestFraudLabels(t *testing.T) {
	storetest.CheckFraudLabels(t, open(t, t.TempDir(), time.Hour), time.Date(2026, 11, 25, 5, 0, 0, 0, time.UTC))
}
