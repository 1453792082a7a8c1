package stream

import (
	"slices"
	"sort"
	"time"

	"github.com/bytebasket/bytebasket/internal/event"
	"github.com/bytebasket/bytebasket/internal/model"
	"github.com/bytebasket/bytebasket/internal/stateful"
	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
)

// Rules are the event-time rules of the aggregation.
type Rules struct {
	// AllowedLateness is how long after a window's end (by watermark) events are still added.
	AllowedLateness time.Duration
	// SessionGap is the inactivity that ends a session (and, with no order, abandons a cart).
	SessionGap time.Duration
}

// The user sets behind a window's distinct counts.
const (
	setActive = iota
	setViewers
	setCarters
	setCheckout
	setBuyers
	numSets
)

// window is one open window of one platform (or all platforms): its counters and the sets
// of user fingerprints behind its distinct counts.
type window struct {
	M     model.WindowMetrics
	sets  [numSets]map[uint64]struct{}
	added [numSets][]uint64 // members added since the last checkpoint
	dirty bool              // changed since last written
	// changed since the last checkpoint (counters; members are in added)
	changed bool
}

type winKey struct {
	g        model.Granularity
	start    int64 // unix ms
	platform string
}

type topKey struct {
	g     model.Granularity
	start int64
	dim   model.TopDimension
}

type tops struct {
	T       model.TopItems
	dirty   bool
	changed map[string]struct{} // items changed since the last checkpoint
}

type sessionWin struct {
	W       model.SessionWindow
	dirty   bool
	changed bool
}

// txFeed is the partition's newest transactions of one kind, newest first.
type txFeed struct {
	Events  []model.TxEvent // at most model.TxFeedLen
	dirty   bool
	changed bool
}

// openSessionEvery is how often an open session that keeps changing is rewritten.
const openSessionEvery = 5 * time.Second

// partitionState is everything one Kafka partition (of both topics) has aggregated and not
// yet made final. It is deterministic in the events it is given and the watermarks it is
// advanced to: the same from the same checkpoint gives the same rows.
type partitionState struct {
	partition int32
	rules     Rules
	// closedBefore: 1-minute windows starting before it (unix ms) are final, and events for
	// them are late. It only moves forward.
	closedBefore   int64
	late           int64
	windows        map[winKey]*window
	tops           map[topKey]*tops
	sessions       map[string]*userSessions // open sessions per user
	sessionWindows map[winKey]*sessionWin
	feeds          map[string]*txFeed // transaction kind -> feed

	closed []model.Session // closed sessions waiting to be written (their rows are final)

	// Checkpoint change tracking: what left the state since the last checkpoint.
	gone struct {
		windows        []winKey
		tops           []topKey
		sessions       []string
		sessionWindows []winKey
	}
	scalarsChanged bool
}

func newPartitionState(p int32, r Rules) *partitionState {
	return &partitionState{
		partition: p, rules: r, windows: map[winKey]*window{}, tops: map[topKey]*tops{},
		sessions: map[string]*userSessions{}, sessionWindows: map[winKey]*sessionWin{}, feeds: map[string]*txFeed{},
	}
}

func add(w *window, set int, u uint64, n *int64) {
	if _, ok := w.sets[set][u]; !ok {
		w.sets[set][u] = struct{}{}
		w.added[set] = append(w.added[set], u)
		*n++
	}
}

// platformOf is the platform an event counts under: its source's, except that a server-side
// event (a payment, a refund) at time t counts under the platform of the user's open session
// it falls within the gap of, where the shopper acted; otherwise it stays "backend". By event
// time, so when flushes close sessions does not matter.
func (s *partitionState) platformOf(e *pb.Envelope, t time.Time) string {
	if e.GetSource() == pb.Source_SOURCE_BACKEND {
		if ss := s.openAround(e.GetUserId(), t); ss != nil {
			return ss.S.Platform
		}
	}
	return event.Platform(e.GetSource())
}

// Apply adds one event. It reports whether the event was late (its minute was already
// final) and therefore only counted.
func (s *partitionState) Apply(e *pb.Envelope) (late bool) {
	// Stores and checkpoints keep milliseconds: the state holds what they give back.
	t := e.GetEventTime().AsTime().UTC().Truncate(time.Millisecond)
	platform, user, kind := s.platformOf(e, t), e.GetUserId(), event.KindOf(e)
	// The feed is a log by event time, not a window: a late transaction still takes its
	// place (and falls off at once if it is older than the whole feed).
	if tx, ok := txEventOf(e, kind, t, platform, s.partition); ok {
		s.addTx(tx)
	}
	if minuteStart(t.UnixMilli()) < s.closedBefore {
		s.late++
		s.scalarsChanged = true
		return true
	}
	u := event.Fingerprint(user)
	for _, g := range model.Granularities {
		for _, pl := range [2]string{platform, model.AllPlatforms} {
			s.count(s.window(g, t, pl), e, kind, u)
		}
		s.countTops(g, t, e, kind)
	}
	// Server-side events (payments, refunds) are not shopper activity: they do not extend
	// or open sessions.
	if e.GetSource() != pb.Source_SOURCE_BACKEND {
		s.applySession(e, kind, t, platform)
	}
	return false
}

func (s *partitionState) count(w *window, e *pb.Envelope, kind event.Kind, u uint64) {
	m := &w.M
	w.dirty, w.changed = true, true
	add(w, setActive, u, &m.ActiveUsers)
	switch kind {
	case event.KindPageView:
		m.PageViews++
	case event.KindProductView:
		m.ProductViews++
		add(w, setViewers, u, &m.FunnelViewers)
	case event.KindSearch:
		m.Searches++
	case event.KindCartAdd:
		m.CartAdds++
		add(w, setCarters, u, &m.FunnelCarters)
	case event.KindCheckoutStarted:
		m.Checkouts++
		add(w, setCheckout, u, &m.FunnelCheckout)
	case event.KindOrderPlaced:
		o := e.GetOrderPlaced()
		m.Orders++
		add(w, setBuyers, u, &m.FunnelBuyers)
		cur := o.GetTotal().GetCurrency()
		m.Revenue[cur] += o.GetTotal().GetAmountMinor()
		m.OrdersByCurrency[cur]++
	case event.KindPaymentFailed:
		m.PaymentsFailed++
	case event.KindRefund:
		m.Refunds++
	case event.KindChargeback:
		m.Chargebacks++
	}
}

func (s *partitionState) countTops(g model.Granularity, t time.Time, e *pb.Envelope, kind event.Kind) {
	switch kind {
	case event.KindProductView:
		pv := e.GetProductView()
		s.top(g, t, model.TopProductViews).add(pv.GetProductId(), 1)
		s.top(g, t, model.TopCategoryViews).add(pv.GetCategoryId(), 1)
	case event.KindCartAdd:
		ca := e.GetCartAdd()
		s.top(g, t, model.TopProductCarts).add(ca.GetProductId(), int64(max(ca.GetQuantity(), 1)))
	case event.KindOrderPlaced:
		rev, cat := s.top(g, t, model.TopProductRevenue), s.top(g, t, model.TopCategoryOrders)
		for _, li := range e.GetOrderPlaced().GetItems() {
			rev.add(li.GetProductId(), int64(li.GetQuantity())*li.GetUnitPriceMinor())
			cat.add(li.GetCategoryId(), int64(li.GetQuantity()))
		}
	}
}

func (tp *tops) add(item string, n int64) {
	tp.T.Counts[item] += n
	tp.dirty = true
	tp.changed[item] = struct{}{}
}

func minuteStart(ms int64) int64 { return ms - ms%60_000 }

// txEventOf is the feed entry of a transaction event; ok is false for other kinds.
func txEventOf(e *pb.Envelope, kind event.Kind, t time.Time, platform string, part int32) (tx model.TxEvent, ok bool) {
	// Stores keep milliseconds: truncating here makes the state hold what readers get.
	tx = model.TxEvent{Time: t.Truncate(time.Millisecond), Kind: string(kind), UserID: e.GetUserId(), Platform: platform, Partition: part}
	var m *pb.Money
	switch kind {
	case event.KindOrderPlaced:
		o := e.GetOrderPlaced()
		tx.OrderID, m = o.GetOrderId(), o.GetTotal()
	case event.KindPaymentFailed:
		f := e.GetPaymentFailed()
		tx.OrderID, m, tx.Reason = f.GetOrderId(), f.GetAmount(), f.GetReason()
	case event.KindRefund:
		r := e.GetRefund()
		tx.OrderID, m, tx.Reason = r.GetOrderId(), r.GetAmount(), r.GetReason()
	case event.KindChargeback:
		c := e.GetChargeback()
		tx.OrderID, m, tx.Reason = c.GetOrderId(), c.GetAmount(), c.GetReason()
	default:
		return tx, false
	}
	tx.AmountMinor, tx.Currency = m.GetAmountMinor(), m.GetCurrency()
	return tx, true
}

// addTx puts tx into its kind's feed. A copy of an entry already there (a duplicate event
// beyond the deduplication horizon) is not added twice.
func (s *partitionState) addTx(tx model.TxEvent) {
	f := s.feeds[tx.Kind]
	if f == nil {
		f = &txFeed{}
		s.feeds[tx.Kind] = f
	}
	if slices.Contains(f.Events, tx) {
		return
	}
	var added bool
	f.Events, added = insertNewest(f.Events, tx, func(x model.TxEvent) time.Time { return x.Time }, model.TxFeedLen)
	if added {
		f.dirty, f.changed = true, true
	}
}

// insertNewest puts v into list, which is newest first by at, keeping at most bound
// elements. Among equal times the later arrival goes first, so the order depends only on
// the records and their order, as the rest of the state does. It reports whether v was
// kept (false: older than a full list).
func insertNewest[T any](list []T, v T, at func(T) time.Time, bound int) ([]T, bool) {
	t := at(v)
	i := sort.Search(len(list), func(i int) bool { return !at(list[i]).After(t) })
	if i >= bound {
		return list, false
	}
	switch {
	case len(list) >= bound: // full: the oldest falls off below
	case len(list) < cap(list):
		list = list[:len(list)+1]
	default:
		// Grow to at most bound: append's doubling would overshoot it for every session.
		grown := make([]T, len(list)+1, min(max(2*cap(list), 4), bound))
		copy(grown, list)
		list = grown
	}
	copy(list[i+1:], list[i:])
	list[i] = v
	return list, true
}

func (s *partitionState) window(g model.Granularity, t time.Time, platform string) *window {
	start := t.Truncate(g.Duration())
	k := winKey{g, start.UnixMilli(), platform}
	w := s.windows[k]
	if w == nil {
		w = newWindow(model.WindowKey{Granularity: g, Start: start, Platform: platform, Partition: s.partition})
		s.windows[k] = w
	}
	return w
}

func newWindow(k model.WindowKey) *window {
	w := &window{M: model.WindowMetrics{Key: k, Revenue: map[string]int64{}, OrdersByCurrency: map[string]int64{}}}
	for i := range w.sets {
		w.sets[i] = map[uint64]struct{}{}
	}
	return w
}

func (s *partitionState) top(g model.Granularity, t time.Time, dim model.TopDimension) *tops {
	start := t.Truncate(g.Duration())
	k := topKey{g, start.UnixMilli(), dim}
	tp := s.tops[k]
	if tp == nil {
		tp = newTops(g, start, dim, s.partition)
		s.tops[k] = tp
	}
	return tp
}

func newTops(g model.Granularity, start time.Time, dim model.TopDimension, part int32) *tops {
	return &tops{
		T:       model.TopItems{Granularity: g, Start: start, Dimension: dim, Partition: part, Counts: map[string]int64{}},
		changed: map[string]struct{}{},
	}
}

// final reports whether a window of granularity g starting at start (unix ms) can get no
// more events: every minute in it is final.
func (s *partitionState) final(g model.Granularity, start int64) bool {
	return start+g.Duration().Milliseconds() <= s.closedBefore
}

// Advance applies the watermark wm (unix ms): minutes that ended more than the allowed
// lateness before it become final, and so do the sessions no event can extend any more.
func (s *partitionState) Advance(wm int64) {
	if wm <= 0 {
		return
	}
	// A minute [m, m+1m) is final once wm >= m+1m+lateness, so every minute starting before
	// the one containing wm-lateness is final; later events for them are late.
	b := minuteStart(wm - s.rules.AllowedLateness.Milliseconds())
	if b <= s.closedBefore {
		return
	}
	s.closedBefore, s.scalarsChanged = b, true
	s.closeIdleSessions()
}

// Drain returns the rows changed since they were last drained and forgets what became
// final (its last value is in this batch); level says which rows: Live the minute rows,
// Full and All also the slow ones (DrainSlow).
func (s *partitionState) Drain(now time.Time, level stateful.Level) model.Batch {
	b := s.DrainLive(now)
	if level >= stateful.Full {
		slow := s.DrainSlow(now, level == stateful.All)
		b.Windows, b.Tops = append(b.Windows, slow.Windows...), append(b.Tops, slow.Tops...)
		b.Sessions, b.SessionWindows, b.TxFeeds = slow.Sessions, slow.SessionWindows, slow.TxFeeds
		b.ReplacedSessions = slow.ReplacedSessions
	}
	return b
}

// DrainLive returns the minute windows and minute rankings changed since they were last
// drained (the rows readers watch second by second) and forgets the final ones. now stamps
// UpdatedAt. Its rows and DrainSlow's never share a key, so the two may be written apart.
func (s *partitionState) DrainLive(now time.Time) model.Batch {
	var b model.Batch
	for k, w := range s.windows {
		if k.g == model.Minute {
			s.drainWindow(&b, k, w, now)
		}
	}
	for k, t := range s.tops {
		if k.g == model.Minute {
			s.drainTops(&b, k, t)
		}
	}
	return cloneMaps(b)
}

func (s *partitionState) drainWindow(b *model.Batch, k winKey, w *window, now time.Time) {
	if w.dirty {
		w.M.UpdatedAt = now
		b.Windows = append(b.Windows, w.M)
		w.dirty = false
	}
	if s.final(k.g, k.start) {
		delete(s.windows, k)
		s.gone.windows = append(s.gone.windows, k)
	}
}

func (s *partitionState) drainTops(b *model.Batch, k topKey, t *tops) {
	if t.dirty {
		b.Tops = append(b.Tops, t.T)
		t.dirty = false
	}
	if s.final(k.g, k.start) {
		delete(s.tops, k)
		s.gone.tops = append(s.gone.tops, k)
	}
}

// DrainSlow returns the slower-changing rows changed since they were last drained: rollup
// windows and rankings, session windows, the feeds, closed sessions, and open sessions (each
// at most every openSessionEvery, unless all), and forgets the final ones.
func (s *partitionState) DrainSlow(now time.Time, all bool) model.Batch {
	var b model.Batch
	for k, w := range s.windows {
		if k.g != model.Minute {
			s.drainWindow(&b, k, w, now)
		}
	}
	for k, t := range s.tops {
		if k.g != model.Minute {
			s.drainTops(&b, k, t)
		}
	}
	for k, sw := range s.sessionWindows {
		if sw.dirty {
			b.SessionWindows = append(b.SessionWindows, sw.W)
			sw.dirty = false
		}
		if s.sessionWindowFinal(k) {
			delete(s.sessionWindows, k)
			s.gone.sessionWindows = append(s.gone.sessionWindows, k)
		}
	}
	// The feeds change with every transaction; once a second is fresh enough for a feed
	// and keeps them out of the live flushes.
	for _, kind := range model.TxKinds {
		if f := s.feeds[kind]; f != nil && f.dirty {
			b.TxFeeds = append(b.TxFeeds, model.TxFeed{Kind: kind, Partition: s.partition, Events: f.Events})
			f.dirty = false
		}
	}
	nowM, every := now.UnixMilli(), openSessionEvery.Milliseconds()
	for user, us := range s.sessions {
		for _, ss := range us.open {
			if ss.writtenAtM == 0 {
				// Spread first writes over the interval so sessions that start together are
				// not all rewritten in the same flush ever after.
				ss.writtenAtM = nowM - int64(event.Fingerprint(user)%uint64(every))
			}
			if !ss.dirty || (!all && nowM-ss.writtenAtM < every) {
				continue
			}
			b.Sessions = append(b.Sessions, ss.S)
			if ss.moved {
				b.ReplacedSessions = append(b.ReplacedSessions, span(&ss.S))
			}
			ss.dirty, ss.moved, ss.writtenAtM = false, false, nowM
			us.changed = us.changed || ss.unwrittenInCkpt
		}
	}
	// A closed session's row replaces any its start had before: also those written before
	// a crash, under an arrival order the replay did not repeat.
	for i := range s.closed {
		b.Sessions = append(b.Sessions, s.closed[i])
		b.ReplacedSessions = append(b.ReplacedSessions, span(&s.closed[i]))
	}
	s.closed = s.closed[:0]
	return cloneMaps(b)
}

// cloneMaps copies the batch's maps and slices: the batch is written while the state keeps
// changing.
func cloneMaps(b model.Batch) model.Batch {
	for i := range b.Windows {
		b.Windows[i].Revenue = clone(b.Windows[i].Revenue)
		b.Windows[i].OrdersByCurrency = clone(b.Windows[i].OrdersByCurrency)
	}
	for i := range b.Tops {
		b.Tops[i].Counts = clone(b.Tops[i].Counts)
	}
	for i := range b.Sessions {
		b.Sessions[i].Revenue = clone(b.Sessions[i].Revenue)
		b.Sessions[i].Recent = slices.Clone(b.Sessions[i].Recent)
	}
	for i := range b.TxFeeds {
		b.TxFeeds[i].Events = slices.Clone(b.TxFeeds[i].Events)
	}
	return b
}

func clone(m map[string]int64) map[string]int64 {
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
