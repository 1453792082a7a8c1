package stream

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bytebasket/bytebasket/internal/event"
	"github.com/bytebasket/bytebasket/internal/model"
	"github.com/bytebasket/bytebasket/internal/sim"
	"github.com/bytebasket/bytebasket/internal/stateful"
	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
)

var rules = Rules{AllowedLateness: 2 * time.Minute, SessionGap: 30 * time.Minute}

type rec struct {
	topic string
	e     *pb.Envelope
}

// records simulates n events of one partition's users, in the order Kafka would hold them.
func records(t testing.TB, n int) []rec {
	t.Helper()
	s, err := sim.New(sim.Config{Seed: 11, Start: time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC), Rate: 20, Users: 2000})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]rec, n)
	for i := range out {
		e, _ := s.Next()
		out[i] = rec{event.TopicOf(event.KindOf(e)), e}
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
	// A user's session rows, by start (unix ms), as the stores key them: the batch's
	// replaced spans go first.
	for _, sp := range b.ReplacedSessions {
		if rows, ok := tb["s"+sp.UserID].(map[int64]model.Session); ok {
			for start := range rows {
				if start >= sp.From.UnixMilli() && start <= sp.Through.UnixMilli() {
					delete(rows, start)
				}
			}
			if len(rows) == 0 {
				delete(tb, "s"+sp.UserID)
			}
		}
	}
	for _, x := range b.Sessions {
		rows, ok := tb["s"+x.UserID].(map[int64]model.Session)
		if !ok {
			rows = map[int64]model.Session{}
			tb["s"+x.UserID] = rows
		}
		rows[x.Start.UnixMilli()] = x
	}
	for _, x := range b.SessionWindows {
		tb[fmt.Sprint("sw", x.Key)] = x
	}
	for _, x := range b.TxFeeds {
		tb[fmt.Sprint("f", x.Kind, x.Partition)] = x
	}
}

func sameTable(t *testing.T, what string, got, want table) {
	t.Helper()
	if len(got) != len(want) {
		var extra []string
		for k := range got {
			if _, ok := want[k]; !ok && len(extra) < 5 {
				extra = append(extra, k)
			}
		}
		t.Fatalf("%s: %d rows, want %d; e.g. %q", what, len(got), len(want), extra)
	}
	for k, w := range want {
		if !reflect.DeepEqual(got[k], w) {
			t.Fatalf("%s: row %s differs:\n got %+v\nwant %+v", what, k, got[k], w)
		}
	}
}

// checkpoint is what the loop stores of one checkpoint in this test: the encoded entries,
// the watermark inputs, and where to resume reading.
type checkpoint struct {
	entries  [][]byte
	maxEvent map[string]int64
	next     int // index of the first record not covered
	full     bool
}

// driver feeds records to a partition state as the loop does: the watermark is the lower of
// the topics' highest event times, output is drained every drainEvery records (Full every
// third time), and every ckptEvery records the Full output is written and a checkpoint
// taken (every fourth a full snapshot).
type driver struct {
	st                    *partitionState
	maxEvent              map[string]int64
	drainEvery, ckptEvery int
	chain                 []checkpoint
	n                     int
	noFinal               bool // leave the end as it is, not all written (to compare states)
}

func newDriver(st *partitionState, drainEvery, ckptEvery int) *driver {
	return &driver{st: st, maxEvent: map[string]int64{}, drainEvery: drainEvery, ckptEvery: ckptEvery}
}

func (d *driver) watermark() int64 {
	wm := int64(-1)
	for _, t := range event.Topics {
		m, ok := d.maxEvent[t]
		if !ok {
			return 0
		}
		if wm < 0 || m < wm {
			wm = m
		}
	}
	return wm
}

func (d *driver) flush(tb table, i int, level stateful.Level) {
	d.st.Advance(d.watermark())
	tb.write(d.st.Drain(time.UnixMilli(int64(i)), level))
}

// run applies recs[from:to]; at the end it writes everything, as before giving a
// partition up.
func (d *driver) run(t testing.TB, recs []rec, from, to int, tb table) {
	t.Helper()
	for i := from; i < to; i++ {
		r := recs[i]
		tm := r.e.GetEventTime().AsTime().UnixMilli()
		d.maxEvent[r.topic] = max(d.maxEvent[r.topic], tm)
		d.st.Apply(r.e)
		d.n++
		switch {
		case d.ckptEvery > 0 && d.n%d.ckptEvery == 0:
			d.flush(tb, i, stateful.Full) // as the loop does: open sessions stay paced
			full := len(d.chain) == 0 || len(d.chain)%4 == 3
			c := checkpoint{maxEvent: clone(d.maxEvent), next: i + 1, full: full}
			d.st.Changes(full, func(e *pb.StateEntry) {
				b, err := proto.Marshal(e)
				if err != nil {
					t.Fatal(err)
				}
				c.entries = append(c.entries, b)
			})
			d.chain = append(d.chain, c)
		case d.n%d.drainEvery == 0:
			level := stateful.Live
			if (d.n/d.drainEvery)%3 == 0 {
				level = stateful.Full
			}
			d.flush(tb, i, level)
		}
	}
	if !d.noFinal {
		d.flush(tb, to, stateful.All)
	}
}

// restore rebuilds a state from the chain up to checkpoint k: its last full snapshot and
// the changes after it, as the loop reads them back.
func restore(t *testing.T, chain []checkpoint, k int) (*partitionState, map[string]int64) {
	t.Helper()
	base := k
	for !chain[base].full {
		base--
	}
	st := newPartitionState(0, rules)
	for _, c := range chain[base : k+1] {
		for _, raw := range c.entries {
			e := &pb.StateEntry{}
			if err := proto.Unmarshal(raw, e); err != nil {
				t.Fatal(err)
			}
			if err := st.Restore(e); err != nil {
				t.Fatal(err)
			}
		}
	}
	return st, clone(chain[k].maxEvent)
}

// snapshot is the state's full checkpoint in a canonical form, for comparing states: the
// entries one key was split into are merged, members and entries sorted.
func snapshot(t *testing.T, st *partitionState) []string {
	t.Helper()
	windows := map[string]*pb.WindowState{}
	tops := map[string]*pb.TopState{}
	var out []string
	st.Changes(true, func(e *pb.StateEntry) {
		switch x := e.GetEntry().(type) {
		case *pb.StateEntry_Window:
			w := x.Window
			k := fmt.Sprint(w.GetGranularity(), w.GetStartMs(), w.GetPlatform())
			if m := windows[k]; m != nil {
				m.ActiveAdded = append(m.ActiveAdded, w.ActiveAdded...)
				m.ViewersAdded = append(m.ViewersAdded, w.ViewersAdded...)
				m.CartersAdded = append(m.CartersAdded, w.CartersAdded...)
				m.CheckoutAdded = append(m.CheckoutAdded, w.CheckoutAdded...)
				m.BuyersAdded = append(m.BuyersAdded, w.BuyersAdded...)
				return
			}
			windows[k] = proto.Clone(w).(*pb.WindowState)
			return
		case *pb.StateEntry_Top:
			k := fmt.Sprint(x.Top.GetGranularity(), x.Top.GetStartMs(), x.Top.GetDimension())
			if m := tops[k]; m != nil {
				for it, n := range x.Top.GetCounts() {
					m.Counts[it] = n
				}
				return
			}
			tops[k] = proto.Clone(x.Top).(*pb.TopState)
			return
		}
		out = append(out, canonical(t, e))
	})
	for _, w := range windows {
		for _, s := range []*[]uint64{&w.ActiveAdded, &w.ViewersAdded, &w.CartersAdded, &w.CheckoutAdded, &w.BuyersAdded} {
			slices.Sort(*s)
		}
		out = append(out, canonical(t, &pb.StateEntry{Entry: &pb.StateEntry_Window{Window: w}}))
	}
	for _, tp := range tops {
		out = append(out, canonical(t, &pb.StateEntry{Entry: &pb.StateEntry_Top{Top: tp}}))
	}
	sort.Strings(out)
	return out
}

func canonical(t *testing.T, e *pb.StateEntry) string {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A crash after any checkpoint of an incremental chain (changes on changes, full snapshots
// now and then), followed by restore and replay, ends with exactly the rows of an
// uninterrupted run, including the rows the crashed run wrote after its checkpoint; and the
// restored state is the state that was checkpointed.
func TestRestoreAndReplayGivesTheSameRows(t *testing.T) {
	recs := records(t, 60_000)
	want := table{}
	newDriver(newPartitionState(0, rules), 500, 0).run(t, recs, 0, len(recs), want)
	feeds, recent := 0, 0
	for _, v := range want {
		switch x := v.(type) {
		case model.TxFeed:
			feeds++
		case map[int64]model.Session:
			for _, ss := range x {
				recent += len(ss.Recent)
			}
		}
	}
	if feeds < 2 || recent == 0 {
		t.Fatalf("test data too thin: %d feeds, %d recent session events", feeds, recent)
	}

	for _, crashAt := range []int{13_777, 30_001, 59_999} {
		got := table{}
		d := newDriver(newPartitionState(0, rules), 500, 2000)
		d.run(t, recs, 0, crashAt, got) // writes beyond its last checkpoint, then dies
		k := len(d.chain) - 1
		if k < 2 {
			t.Fatalf("only %d checkpoints before %d", k+1, crashAt)
		}
		restored, maxEvent := restore(t, d.chain, k)

		// The checkpointed state, rebuilt: the uninterrupted state at that record.
		ref := newDriver(newPartitionState(0, rules), 500, 2000)
		ref.noFinal = true
		ref.run(t, recs, 0, d.chain[k].next, table{})
		if a, b := snapshot(t, restored), snapshot(t, ref.st); !slices.Equal(a, b) {
			var diff []string
			for _, x := range a {
				if !slices.Contains(b, x) && len(diff) < 3 {
					e := &pb.StateEntry{}
					_ = proto.Unmarshal([]byte(x), e)
					diff = append(diff, "restored only: "+e.String())
				}
			}
			for _, x := range b {
				if !slices.Contains(a, x) && len(diff) < 6 {
					e := &pb.StateEntry{}
					_ = proto.Unmarshal([]byte(x), e)
					diff = append(diff, "checkpointed only: "+e.String())
				}
			}
			t.Fatalf("crash at %d: state restored from %d checkpoints (%d entries) differs from the state it checkpointed (%d):\n%s",
				crashAt, k+1, len(a), len(b), strings.Join(diff, "\n"))
		}

		d2 := newDriver(restored, 500, 0)
		d2.maxEvent = maxEvent
		d2.run(t, recs, d.chain[k].next, len(recs), got)
		sameTable(t, fmt.Sprintf("crash at %d after checkpoint %d", crashAt, k+1), got, want)
	}
}

// A checkpoint's size follows what changed since the one before, not the state's size.
func TestCheckpointSizeFollowsChanges(t *testing.T) {
	recs := records(t, 40_000)
	st := newPartitionState(0, rules)
	d := newDriver(st, 500, 0)
	size := func(full bool) int {
		n := 0
		st.Changes(full, func(e *pb.StateEntry) { n += proto.Size(e) })
		return n
	}
	d.run(t, recs, 0, 30_000, table{})
	full := size(true)
	d.run(t, recs, 30_000, 30_100, table{})
	small := size(false)
	d.run(t, recs, 30_100, 31_100, table{})
	larger := size(false)
	t.Logf("full %d bytes; changes of 100 events %d bytes, of 1000 events %d bytes", full, small, larger)
	// 100 events are 1/300 of the state's events: their changes must be far below the whole
	// (a tenth leaves room for the entries every change rewrites whole: a window's counters,
	// a user's open sessions), and 1000 events' changes larger yet still well below it.
	if small*10 > full || larger <= small || larger*3 > full {
		t.Fatalf("checkpoint sizes do not follow the changes: full %d, 100 events %d, 1000 events %d", full, small, larger)
	}
	if none := size(false); none > 200 {
		t.Fatalf("a checkpoint with nothing changed has %d bytes", none)
	}
}

// Sessions are cut by event time: the same events, some arriving out of order within the
// allowed lateness, give the same sessions (and every other row) whether output is drained
// every few records or rarely.
func TestSessionsDoNotDependOnFlushTiming(t *testing.T) {
	short := Rules{AllowedLateness: 2 * time.Minute, SessionGap: 90 * time.Second} // gaps that occur often
	recs := records(t, 40_000)
	// Delay some events by up to a minute of arrival: the others of the partition overtake them.
	rng := rand.New(rand.NewPCG(7, 9))
	for i := range recs {
		if rng.IntN(20) == 0 {
			j := min(len(recs)-1, i+rng.IntN(600))
			recs[i], recs[j] = recs[j], recs[i]
		}
	}
	var tables []table
	for _, every := range []int{7, 3000} {
		tb := table{}
		d := newDriver(newPartitionState(0, short), every, 0)
		d.run(t, recs, 0, len(recs), tb)
		if d.st.late != 0 {
			t.Fatalf("%d late events: the test data is later than the allowed lateness", d.st.late)
		}
		tables = append(tables, tb)
	}
	sessions := 0
	for _, v := range tables[1] {
		if rows, ok := v.(map[int64]model.Session); ok {
			sessions += len(rows)
		}
	}
	if sessions < 1000 {
		t.Fatalf("test data too thin: %d sessions", sessions)
	}
	sameTable(t, "drained every 7 records vs every 3000", tables[0], tables[1])
}

// The topics of a partition arrive unevenly (a producer's batches of one topic are delayed
// behind the other's, as around a broker restart): sessions, session counts, tops and the
// all-platform windows are the same whichever topic runs ahead, within the allowed lateness.
// (Per-platform rows may differ: a payment counts under the platform of the session open
// when it arrives.)
func TestSessionsDoNotDependOnArrivalOrder(t *testing.T) {
	short := Rules{AllowedLateness: 2 * time.Minute, SessionGap: 90 * time.Second}
	recs := records(t, 40_000)
	// delayed returns recs with the records of topic held back by lag records of the other.
	delayed := func(topic string, lag int) []rec {
		var held, out []rec
		for _, r := range recs {
			if r.topic == topic {
				held = append(held, r)
				continue
			}
			out = append(out, r)
			if len(out) > lag && len(held) > 0 && (len(out)-lag)%10 != 0 {
				out, held = append(out, held[0]), held[1:]
			}
		}
		return append(out, held...)
	}
	keep := func(tb table) table {
		out := table{}
		for k, v := range tb {
			switch x := v.(type) {
			case model.WindowMetrics:
				if x.Key.Platform != model.AllPlatforms {
					continue
				}
			case model.TxFeed:
				continue // its events carry the arrival-time platform
			}
			out[k] = v
		}
		return out
	}
	run := func(rs []rec) table {
		tb := table{}
		d := newDriver(newPartitionState(0, short), 50, 0)
		d.run(t, rs, 0, len(rs), tb)
		if d.st.late != 0 {
			t.Fatalf("%d late events: the test's delays exceed the allowed lateness", d.st.late)
		}
		return keep(tb)
	}
	want := run(recs)
	merged := 0
	for _, v := range want {
		if rows, ok := v.(map[int64]model.Session); ok {
			merged += len(rows)
		}
	}
	if merged < 1000 {
		t.Fatalf("test data too thin: %d sessions", merged)
	}
	sameTable(t, "transactions 800 records behind", run(delayed(event.TopicTransactions, 800)), want)
	sameTable(t, "user activity 800 records behind", run(delayed(event.TopicUserActivity, 800)), want)
}

// Users active on two platforms count once in "all"; a payment counts under the platform of
// the payer's open session, a server event without one under backend.
func TestAllPlatformsAndServerEvents(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 9, 0, 10, 0, time.UTC)
	ev := func(id, user string, src pb.Source, at time.Duration, payload any) *pb.Envelope {
		e := &pb.Envelope{EventId: id, UserId: user, Source: src, EventTime: timestamppb.New(t0.Add(at))}
		switch p := payload.(type) {
		case *pb.PageView:
			e.Payload = &pb.Envelope_PageView{PageView: p}
		case *pb.PaymentFailed:
			e.Payload = &pb.Envelope_PaymentFailed{PaymentFailed: p}
		case *pb.Chargeback:
			e.Payload = &pb.Envelope_Chargeback{Chargeback: p}
		}
		return e
	}
	eur := &pb.Money{AmountMinor: 100, Currency: "EUR"}
	st := newPartitionState(0, rules)
	for _, e := range []*pb.Envelope{
		ev("1", "u1", pb.Source_SOURCE_WEB, 0, &pb.PageView{}),
		ev("2", "u1", pb.Source_SOURCE_IOS, time.Second, &pb.PageView{}),
		ev("3", "u2", pb.Source_SOURCE_ANDROID, 2*time.Second, &pb.PageView{}),
		ev("4", "u1", pb.Source_SOURCE_BACKEND, 3*time.Second, &pb.PaymentFailed{OrderId: "o1", Amount: eur}),
		ev("5", "u3", pb.Source_SOURCE_BACKEND, 4*time.Second, &pb.Chargeback{OrderId: "o0", Amount: eur}),
	} {
		st.Apply(e)
	}
	got := map[string]model.WindowMetrics{}
	for _, w := range st.Drain(t0, stateful.All).Windows {
		if w.Key.Granularity == model.Minute {
			got[w.Key.Platform] = w
		}
	}
	type counts struct{ active, pageViews, failed, chargebacks int64 }
	want := map[string]counts{
		"web": {1, 1, 1, 0}, "ios": {1, 1, 0, 0}, "android": {1, 1, 0, 0}, "backend": {1, 0, 0, 1},
		model.AllPlatforms: {3, 3, 1, 1},
	}
	for p, c := range want {
		w := got[p]
		if g := (counts{w.ActiveUsers, w.PageViews, w.PaymentsFailed, w.Chargebacks}); g != c {
			t.Errorf("%s: %+v, want %+v", p, g, c)
		}
	}
	if len(got) != len(want) {
		t.Errorf("platforms %v", slices.Sorted(func(yield func(string) bool) {
			for p := range got {
				if !yield(p) {
					return
				}
			}
		}))
	}
}

// Each feed is the newest model.TxFeedLen transactions of its kind by event time (later
// arrival first among equal times), written on full drains only, with no copies of one
// transaction; a session's Recent is its newest model.SessionRecentLen events.
func TestFeedsAndRecentEvents(t *testing.T) {
	recs := records(t, 30_000)
	st := newPartitionState(2, rules)
	type arrival struct {
		tx model.TxEvent
		i  int
	}
	byKind := map[string][]arrival{}
	for i, r := range recs {
		platform := st.platformOf(r.e, r.e.GetEventTime().AsTime().UTC().Truncate(time.Millisecond))
		st.Apply(r.e)
		kind := event.KindOf(r.e)
		if tx, ok := txEventOf(r.e, kind, r.e.GetEventTime().AsTime().UTC(), platform, 2); ok {
			byKind[tx.Kind] = append(byKind[tx.Kind], arrival{tx, i})
		}
		if i%1000 == 999 {
			if b := st.Drain(time.UnixMilli(int64(i)), stateful.Live); len(b.TxFeeds) != 0 {
				t.Fatalf("a live drain wrote %d feeds", len(b.TxFeeds))
			}
		}
	}
	// The simulator's refunds and chargebacks come hours after their orders: add some,
	// out of time order, with equal times, more than a feed holds; and a copy of one.
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
		st.Apply(e)
		if i == 299 {
			st.Apply(e) // a copy beyond the deduplication horizon
		}
		tx, _ := txEventOf(e, event.KindOf(e), e.GetEventTime().AsTime(), "backend", 2)
		byKind[tx.Kind] = append(byKind[tx.Kind], arrival{tx, len(recs) + i})
	}
	b := st.Drain(time.UnixMilli(int64(len(recs))), stateful.Full)
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
	if b := st.Drain(time.UnixMilli(int64(len(recs))), stateful.All); len(b.TxFeeds) != 0 {
		t.Fatalf("unchanged feeds written again: %d", len(b.TxFeeds))
	}

	sessions := 0
	for _, us := range st.sessions {
		if len(us.open) != 1 { // the records arrive in order: no session waits for a bridge
			t.Fatalf("user %s has %d open sessions", us.open[0].S.UserID, len(us.open))
		}
		s := us.open[0].S
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

// The minute windows add up to the events: every count, revenue per currency, per platform
// and (equally) over all platforms.
func TestMinuteWindowsReconcileWithEvents(t *testing.T) {
	recs := records(t, 50_000)
	tb := table{}
	newDriver(newPartitionState(0, rules), 500, 0).run(t, recs, 0, len(recs), tb)

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
	for _, all := range []bool{false, true} {
		got := map[event.Kind]int64{}
		gotRevenue := map[string]int64{}
		windows := 0
		for _, v := range tb {
			w, ok := v.(model.WindowMetrics)
			if !ok || w.Key.Granularity != model.Minute || (w.Key.Platform == model.AllPlatforms) != all {
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
				t.Errorf("all=%v %s: windows count %d, events %d", all, k, got[k], wantKinds[k])
			}
		}
		if !reflect.DeepEqual(gotRevenue, wantRevenue) {
			t.Errorf("all=%v revenue by currency: windows %v, events %v", all, gotRevenue, wantRevenue)
		}
		if wantKinds[event.KindOrderPlaced] == 0 || windows < 40 {
			t.Fatalf("test data too thin: %d orders, %d minute windows", wantKinds[event.KindOrderPlaced], windows)
		}
	}
}

// Events older than the allowed lateness behind the watermark are counted, not added.
func TestLateEventsAreCountedNotAdded(t *testing.T) {
	recs := records(t, 5000)
	d := newDriver(newPartitionState(0, rules), 500, 0)
	d.run(t, recs, 0, len(recs), table{})
	old := recs[0].e // minutes before the watermark
	if late := d.st.Apply(old); !late || d.st.late != 1 {
		t.Fatalf("an event %s behind the watermark was not late (late=%d)",
			time.UnixMilli(d.watermark()).Sub(old.GetEventTime().AsTime()), d.st.late)
	}
	if b := d.st.Drain(time.Time{}, stateful.All); len(b.Windows) != 0 {
		t.Fatalf("a late event changed %d windows", len(b.Windows))
	}
}

// Entries the stream did not write are an error, not silently skipped state.
func TestRestoreRejectsForeignEntries(t *testing.T) {
	st := newPartitionState(0, rules)
	if err := st.Restore(&pb.StateEntry{Entry: &pb.StateEntry_Dedup{Dedup: &pb.DedupBucket{}}}); err == nil {
		t.Fatal("the stream accepted another role's entry")
	}
	if err := st.Restore(&pb.StateEntry{Entry: &pb.StateEntry_Window{Window: &pb.WindowState{Granularity: "7m"}}}); err == nil {
		t.Fatal("a window of an unknown granularity was accepted")
	}
}

func BenchmarkApply(b *testing.B) {
	recs := records(b, 100_000)
	d := newDriver(newPartitionState(0, rules), 5000, 0)
	i := 0
	for b.Loop() {
		if i%len(recs) == 0 { // replaying old events would only measure the late path
			d = newDriver(newPartitionState(0, rules), 5000, 0)
		}
		r := recs[i%len(recs)]
		d.maxEvent[r.topic] = max(d.maxEvent[r.topic], r.e.GetEventTime().AsTime().UnixMilli())
		d.st.Apply(r.e)
		i++
		if i%5000 == 0 {
			d.flush(table{}, i, stateful.All)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// The live and slow drains never carry the same row: the slow lane's writes land beside the
// live ones in any order, so a shared key could be replaced by an older value.
func TestLiveAndSlowRowsShareNoKey(t *testing.T) {
	recs := records(t, 20_000)
	st := newPartitionState(0, rules)
	live, slow := map[string]bool{}, map[string]bool{}
	keys := func(b model.Batch, into map[string]bool) {
		for _, w := range b.Windows {
			into[fmt.Sprint("w", w.Key)] = true
		}
		for _, x := range b.Tops {
			into[fmt.Sprint("t", x.Granularity, x.Start, x.Dimension)] = true
		}
		for _, x := range b.Sessions {
			into[fmt.Sprint("s", x.UserID, x.Start)] = true
		}
		for _, x := range b.SessionWindows {
			into[fmt.Sprint("sw", x.Key)] = true
		}
		for _, x := range b.TxFeeds {
			into[fmt.Sprint("f", x.Kind)] = true
		}
	}
	maxEvent := int64(0)
	for i, r := range recs {
		st.Apply(r.e)
		maxEvent = max(maxEvent, r.e.GetEventTime().AsTime().UnixMilli())
		if i%200 == 0 {
			st.Advance(maxEvent)
			keys(st.DrainLive(time.UnixMilli(int64(i))), live)
		}
		if i%700 == 0 {
			keys(st.DrainSlow(time.UnixMilli(int64(i)), i%2100 == 0), slow)
		}
	}
	if len(live) < 50 || len(slow) < 500 {
		t.Fatalf("test data too thin: %d live keys, %d slow keys", len(live), len(slow))
	}
	for k := range live {
		if slow[k] {
			t.Fatalf("row %s is drained by both lanes", k)
		}
	}
}

// A big slow batch is written in bounded parts that keep every row once, replaced session
// spans before any session.
func TestSlowBatchSplitsInOrder(t *testing.T) {
	var b model.Batch
	for i := range 3000 {
		at := time.UnixMilli(int64(i))
		b.Sessions = append(b.Sessions, model.Session{UserID: fmt.Sprint("u", i), Start: at})
		if i%3 == 0 {
			b.ReplacedSessions = append(b.ReplacedSessions, model.SessionSpan{UserID: fmt.Sprint("u", i), From: at, Through: at})
		}
		if i%2 == 0 {
			b.Windows = append(b.Windows, model.WindowMetrics{Key: model.WindowKey{Start: at}})
		}
	}
	b.TxFeeds = []model.TxFeed{{Kind: "order_placed"}}
	parts := split(b, 700)
	total, sessionsSeen := 0, false
	for i, p := range parts {
		if p.Len() > 700 || p.Len() == 0 {
			t.Fatalf("part %d has %d rows", i, p.Len())
		}
		if len(p.ReplacedSessions) > 0 && sessionsSeen {
			t.Fatalf("part %d replaces spans after sessions were written", i)
		}
		sessionsSeen = sessionsSeen || len(p.Sessions) > 0
		total += p.Len()
	}
	if total != b.Len() || len(parts) != (b.Len()+699)/700 {
		t.Fatalf("%d parts of %d rows, want %d rows", len(parts), total, b.Len())
	}
	if one := split(model.Batch{TxFeeds: b.TxFeeds}, 700); len(one) != 1 || one[0].Len() != 1 {
		t.Fatalf("a small batch is split: %v", one)
	}
}
