package stream

import (
	"cmp"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/bytebasket/bytebasket/internal/event"
	"github.com/bytebasket/bytebasket/internal/model"
	"github.com/bytebasket/bytebasket/internal/sim"
	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

var rules = Rules{AllowedLateness: 2 * time.Minute, SessionGap: 30 * time.Minute}

type rec struct {
	topic  string
	offset int64
	e      *pb.Envelope
}

// records simulates n events and numbers them per topic, as one partition would see them.
func records(t testing.TB, n int) []rec {
	t.Helper()
	s, err := sim.New(sim.Config{Seed: 11, Start: time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC), Rate: 20, Users: 2000})
	if err != nil {
		t.Fatal(err)
	}
	offs := map[string]int64{}
	out := make([]rec, n)
	for i := range out {
		e, _ := s.Next()
		tp := event.TopicOf(event.KindOf(e))
		out[i] = rec{tp, offs[tp], e}
		offs[tp]++
	}
	return out
}

// table is an in-memory stand-in for the store's upsert semantics: last whole value wins.
type table map[string]any

func (tb table) write(b model.Batch) {
	for _, w := range b.Windows {
		w.UpdatedAt = time.Time{}
		tb[fmt.Sprint("w", w.Key)] = w
	}
	for _, x := range b.Tops {
		tb[fmt.Sprint("t", x.Granularity, x.Start, x.Dimension, x.Partition)] = x
	}
	for _, x := range b.Sessions {
		tb[fmt.Sprint("s", x.UserID, x.Start)] = x
	}
	for _, x := range b.SessionWindows {
		tb[fmt.Sprint("sw", x.Key)] = x
	}
	for _, x := range b.TxFeeds {
		tb[fmt.Sprint("f", x.Kind, x.Partition)] = x
	}
}

// run feeds recs[from:to] to st, draining every 500 records; it returns the snapshot taken
// at the drain nearest to snapAt (after the drain, as the processor does).
func run(t *testing.T, st *partitionState, recs []rec, from, to, snapAt int, tb table) []byte {
	t.Helper()
	var snap []byte
	for i := from; i < to; i++ {
		st.Apply(recs[i].topic, recs[i].offset, recs[i].e, rules)
		if (i+1)%500 == 0 || i == to-1 {
			wm := st.watermark(nil)
			st.Advance(wm, rules)
			// A record per millisecond of wall time: open sessions are paced by it. Live
			// drains mostly, full ones as the processor makes them (also at the checkpoint),
			// and everything at the end, as before giving the partition up.
			level := drainLive
			switch {
			case i == to-1:
				level = drainAll
			case i%1500 == 1499 || i+1 == snapAt:
				level = drainFull
			}
			tb.write(st.Drain(wm, time.UnixMilli(int64(i)), level))
			if i+1 == snapAt {
				var err error
				if snap, err = st.Snapshot(); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	return snap
}

// A crash after any checkpoint, followed by restore and replay, ends with exactly the rows
// of an uninterrupted run, including the rows the crashed run wrote after its checkpoint.
func TestRestoreAndReplayGivesTheSameRows(t *testing.T) {
	recs := records(t, 60_000)
	want := table{}
	run(t, newPartitionState(0), recs, 0, len(recs), -1, want)
	feeds, recent := 0, 0
	for _, v := range want {
		switch x := v.(type) {
		case model.TxFeed:
			feeds++
		case model.Session:
			recent += len(x.Recent)
		}
	}
	// The simulator's refunds and chargebacks come hours after the order: not in this hour.
	if feeds < 2 || recent == 0 {
		t.Fatalf("test data too thin: %d feeds, %d recent session events", feeds, recent)
	}

	for _, cut := range []struct{ snapAt, crashAt int }{{10_000, 13_777}, {30_000, 30_001}, {45_500, 59_999}} {
		got := table{}
		st := newPartitionState(0)
		snap := run(t, st, recs, 0, cut.crashAt, cut.snapAt, got) // writes beyond the snapshot, then dies
		if snap == nil {
			t.Fatalf("no snapshot at %d", cut.snapAt)
		}
		restored, err := restoreState(0, snap)
		if err != nil {
			t.Fatal(err)
		}
		// Replay starts at the snapshot's offsets: find the first record not covered.
		from := 0
		for from < len(recs) && recs[from].offset < restored.Offsets[recs[from].topic] {
			from++
		}
		if from != cut.snapAt {
			t.Fatalf("snapshot offsets resume at record %d, want %d", from, cut.snapAt)
		}
		run(t, restored, recs, from, len(recs), -1, got)
		if len(got) != len(want) {
			t.Fatalf("crash at %d after snapshot %d: %d rows, uninterrupted run has %d", cut.crashAt, cut.snapAt, len(got), len(want))
		}
		for k, w := range want {
			if !reflect.DeepEqual(got[k], w) {
				t.Fatalf("crash at %d after snapshot %d: row %s differs:\n got %+v\nwant %+v", cut.crashAt, cut.snapAt, k, got[k], w)
			}
		}
	}
}

// Each feed is the newest model.TxFeedLen transactions of its kind by event time (later
// arrival first among equal times), written on full drains only; a session's Recent is its
// newest model.SessionRecentLen events.
func TestFeedsAndRecentEvents(t *testing.T) {
	recs := records(t, 30_000)
	st := newPartitionState(2)
	type arrival struct {
		tx model.TxEvent
		i  int
	}
	byKind := map[string][]arrival{}
	for i, r := range recs {
		st.Apply(r.topic, r.offset, r.e, rules)
		kind := event.KindOf(r.e)
		if tx, ok := txEventOf(r.e, kind, r.e.GetEventTime().AsTime().UTC(), platformOf(r.e), 2); ok {
			byKind[tx.Kind] = append(byKind[tx.Kind], arrival{tx, i})
		}
		if i%1000 == 999 {
			if b := st.Drain(st.watermark(nil), time.UnixMilli(int64(i)), drainLive); len(b.TxFeeds) != 0 {
				t.Fatalf("a live drain wrote %d feeds", len(b.TxFeeds))
			}
		}
	}
	// The simulator's refunds and chargebacks come hours after their orders: add some,
	// out of time order, with equal times, more than a feed holds.
	t0 := recs[len(recs)-1].e.GetEventTime().AsTime()
	for i := range 300 {
		e := &pb.Envelope{
			EventId: fmt.Sprint("r", i), UserId: fmt.Sprint("u", i%7), Source: pb.Source_SOURCE_BACKEND,
			EventTime: timestamppb.New(t0.Add(time.Duration((i*7919)%250) * time.Second)),
		}
		money := &pb.Money{AmountMinor: int64(100 + i), Currency: "EUR"}
		if i%3 == 0 {
			e.Payload = &pb.Envelope_Chargeback{Chargeback: &pb.Chargeback{OrderId: fmt.Sprint("o", i), Amount: money, Reason: "fraud"}}
		} else {
			e.Payload = &pb.Envelope_Refund{Refund: &pb.Refund{OrderId: fmt.Sprint("o", i), Amount: money, Reason: "damaged"}}
		}
		recs = append(recs, rec{event.TopicTransactions, int64(100_000 + i), e})
		st.Apply(event.TopicTransactions, int64(100_000+i), e, rules)
		tx, _ := txEventOf(e, event.KindOf(e), e.GetEventTime().AsTime(), "backend", 2)
		byKind[tx.Kind] = append(byKind[tx.Kind], arrival{tx, len(recs) - 1})
	}
	wm := st.watermark(nil)
	b := st.Drain(wm, time.UnixMilli(int64(len(recs))), drainFull)
	if len(b.TxFeeds) != len(model.TxKinds) {
		t.Fatalf("full drain wrote %d feeds, want %d", len(b.TxFeeds), len(model.TxKinds))
	}
	for i, f := range b.TxFeeds {
		if f.Kind != model.TxKinds[i] || f.Partition != 2 {
			t.Fatalf("feed %d is %s/%d, want %s/2", i, f.Kind, f.Partition, model.TxKinds[i])
		}
		all := byKind[f.Kind]
		if f.Kind == model.TxRefund && len(f.Events) != model.TxFeedLen {
			t.Fatalf("refund feed holds %d of %d, want %d", len(f.Events), len(all), model.TxFeedLen)
		}
		slices.SortStableFunc(all, func(a, b arrival) int {
			return cmp.Or(b.tx.Time.Compare(a.tx.Time), b.i-a.i)
		})
		var want []model.TxEvent
		for _, a := range all[:min(len(all), model.TxFeedLen)] {
			want = append(want, a.tx)
		}
		if len(all) < 10 || !reflect.DeepEqual(f.Events, want) {
			t.Fatalf("feed %s (%d of %d transactions) is not the newest %d", f.Kind, len(f.Events), len(all), model.TxFeedLen)
		}
	}
	if b := st.Drain(wm, time.UnixMilli(int64(len(recs))), drainAll); len(b.TxFeeds) != 0 {
		t.Fatalf("unchanged feeds written again: %d", len(b.TxFeeds))
	}

	sessions := 0
	for _, ss := range st.Sessions {
		s := ss.S
		if int64(len(s.Recent)) != min(s.Events, model.SessionRecentLen) {
			t.Fatalf("session of %s: %d events, %d recent", s.UserID, s.Events, len(s.Recent))
		}
		if !s.Recent[0].Time.Equal(s.End.Truncate(time.Millisecond)) ||
			!slices.IsSortedFunc(s.Recent, func(a, b model.UserEvent) int { return b.Time.Compare(a.Time) }) {
			t.Fatalf("session of %s: recent events not newest first from its end: %+v", s.UserID, s.Recent)
		}
		sessions++
	}
	if sessions == 0 {
		t.Fatal("no open sessions")
	}
}

// The minute windows of all platforms add up to the events: every count, revenue per currency.
func TestMinuteWindowsReconcileWithEvents(t *testing.T) {
	recs := records(t, 50_000)
	tb := table{}
	run(t, newPartitionState(0), recs, 0, len(recs), -1, tb)

	wantKinds := map[event.Kind]int64{}
	wantRevenue := map[string]int64{}
	for _, r := range recs {
		k := event.KindOf(r.e)
		wantKinds[k]++
		if k == event.KindOrderPlaced {
			tot := r.e.GetOrderPlaced().GetTotal()
			wantRevenue[tot.GetCurrency()] += tot.GetAmountMinor()
		}
	}
	got := map[event.Kind]int64{}
	gotRevenue := map[string]int64{}
	windows := 0
	for _, v := range tb {
		w, ok := v.(model.WindowMetrics)
		if !ok || w.Key.Granularity != model.Minute {
			continue
		}
		windows++
		got[event.KindPageView] += w.PageViews
		got[event.KindProductView] += w.ProductViews
		got[event.KindSearch] += w.Searches
		got[event.KindCartAdd] += w.CartAdds
		got[event.KindCheckoutStarted] += w.Checkouts
		got[event.KindOrderPlaced] += w.Orders
		got[event.KindPaymentFailed] += w.PaymentsFailed
		got[event.KindRefund] += w.Refunds
		got[event.KindChargeback] += w.Chargebacks
		for c, v := range w.Revenue {
			gotRevenue[c] += v
		}
		if w.FunnelBuyers > w.ActiveUsers || w.FunnelViewers > w.ActiveUsers {
			t.Fatalf("window %v: funnel stage larger than active users", w.Key)
		}
	}
	for _, k := range []event.Kind{event.KindPageView, event.KindProductView, event.KindSearch, event.KindCartAdd,
		event.KindCheckoutStarted, event.KindOrderPlaced, event.KindPaymentFailed, event.KindRefund, event.KindChargeback} {
		if got[k] != wantKinds[k] {
			t.Errorf("%s: windows count %d, events %d", k, got[k], wantKinds[k])
		}
	}
	if !reflect.DeepEqual(gotRevenue, wantRevenue) {
		t.Errorf("revenue by currency: windows %v, events %v", gotRevenue, wantRevenue)
	}
	if wantKinds[event.KindOrderPlaced] == 0 || windows < 100 {
		t.Fatalf("test data too thin: %d orders, %d minute windows", wantKinds[event.KindOrderPlaced], windows)
	}
}

// Events older than the allowed lateness behind the watermark are counted, not added.
func TestLateEventsAreCountedNotAdded(t *testing.T) {
	st := newPartitionState(0)
	recs := records(t, 5000)
	for _, r := range recs {
		st.Apply(r.topic, r.offset, r.e, rules)
	}
	wm := st.watermark(nil)
	st.Advance(wm, rules)
	st.Drain(wm, time.Time{}, drainAll)
	old := recs[0].e // minutes before the watermark
	if late := st.Apply(event.TopicUserActivity, 99_999, old, rules); !late || st.Late != 1 {
		t.Fatalf("an event %s behind the watermark was not late (late=%d)", time.UnixMilli(wm).Sub(old.GetEventTime().AsTime()), st.Late)
	}
	if b := st.Drain(wm, time.Time{}, drainAll); len(b.Windows) != 0 {
		t.Fatalf("a late event changed %d windows", len(b.Windows))
	}
}

func BenchmarkApply(b *testing.B) {
	recs := records(b, 100_000)
	st := newPartitionState(0)
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if i%len(recs) == 0 { // replaying old events would only measure the late path
			st = newPartitionState(0)
		}
		r := recs[i%len(recs)]
		st.Apply(r.topic, r.offset, r.e, rules)
		i++
		if i%5000 == 0 {
			wm := st.watermark(nil)
			st.Advance(wm, rules)
			st.Drain(wm, time.Time{}, drainAll)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
