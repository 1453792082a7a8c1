package stream

import (
	"bytes"
	"encoding/gob"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/bytebasket/bytebasket/internal/event"
	"github.com/bytebasket/bytebasket/internal/model"
	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
)

// Rules are the event-time rules of the aggregation.
type Rules struct {
	// AllowedLateness is how long after a window's end (by watermark) events are still added.
	AllowedLateness time.Duration
	// SessionGap is the inactivity that ends a session (and, with no order, abandons a cart).
	SessionGap time.Duration
}

// window is one open window of one platform: its counters and the user sets behind its
// distinct counts (kept until the window closes, so a restart can continue them exactly).
type window struct {
	M         model.WindowMetrics
	Active    map[string]struct{}
	Viewers   map[string]struct{}
	Carters   map[string]struct{}
	Checkout  map[string]struct{}
	Buyers    map[string]struct{}
	Dirty     bool
	ClosesAtM int64 // watermark (unix ms) at which the window is final
}

type tops struct {
	T         model.TopItems
	Dirty     bool
	ClosesAtM int64
}

type sessionWin struct {
	W         model.SessionWindow
	Dirty     bool
	ClosesAtM int64
}

type session struct {
	S     model.Session
	Dirty bool
	// WrittenAtM is the wall time (unix ms) the open session was last written: open
	// sessions change with nearly every event, so each is rewritten at most once per
	// openSessionEvery. It paces writes only; values do not depend on it.
	WrittenAtM int64
}

// txFeed is the partition's newest transactions of one kind, newest first.
type txFeed struct {
	Events []model.TxEvent // at most model.TxFeedLen
	Dirty  bool
}

// openSessionEvery is how often an open session that keeps changing is rewritten.
const openSessionEvery = 5 * time.Second

// drainLevel says which changed rows a drain returns.
type drainLevel int

const (
	// drainLive: minute windows and minute rankings (the live rows) and final rows.
	drainLive drainLevel = iota
	// drainFull: also rollups, longer rankings, closed sessions, session windows, the
	// transaction feeds and the open sessions not written for openSessionEvery. Rows left
	// dirty stay dirty in the snapshot, so a checkpoint never loses them.
	drainFull
	// drainAll: every changed row; before the partition is given up.
	drainAll
)

// partitionState is everything one Kafka partition (of both topics) has aggregated and not
// yet made final. It is deterministic in the records it is given: the same records from the
// same snapshot give the same rows.
type partitionState struct {
	Partition int32
	Offsets   map[string]int64 // logical topic -> next offset to read
	// MaxEventM is the highest event time seen per topic; the watermark is their minimum,
	// so a topic that is consumed ahead of the other cannot make the other's events late.
	MaxEventM map[string]int64
	// ClosedBeforeM: 1-minute windows starting before it are final; later events for them
	// are late. It only moves forward.
	ClosedBeforeM  int64
	Windows        map[string]*window
	Tops           map[string]*tops
	Sessions       map[string]*session // open session per user
	SessionWindows map[string]*sessionWin
	Feeds          map[string]*txFeed // transaction kind -> feed
	Late           int64              // events that arrived after their window was final, counted not added
	Processed      int64

	// Not part of the snapshot: closed sessions waiting for the next flush.
	closed []model.Session
}

func newPartitionState(p int32) *partitionState {
	return &partitionState{
		Partition: p, Offsets: map[string]int64{}, MaxEventM: map[string]int64{},
		Windows: map[string]*window{}, Tops: map[string]*tops{}, Sessions: map[string]*session{},
		SessionWindows: map[string]*sessionWin{}, Feeds: map[string]*txFeed{},
	}
}

// watermark is the event time (unix ms) all topics of the partition have reached; 0 until
// both have data (idle topics are excluded by the caller through active).
func (s *partitionState) watermark(active map[string]bool) int64 {
	var wm int64 = -1
	for t, m := range s.MaxEventM {
		if active != nil && !active[t] {
			continue
		}
		if wm < 0 || m < wm {
			wm = m
		}
	}
	if wm < 0 {
		return 0
	}
	return wm
}

func platformOf(e *pb.Envelope) string { return event.Platform(e.GetSource()) }

func add(set map[string]struct{}, u string, n *int64) {
	if _, ok := set[u]; !ok {
		set[u] = struct{}{}
		*n++
	}
}

// Apply adds one valid event, read from topic at offset. It reports whether the event was
// late (its minute was already final) and therefore only counted.
func (s *partitionState) Apply(topic string, offset int64, e *pb.Envelope, r Rules) (late bool) {
	s.Offsets[topic] = offset + 1
	s.Processed++
	t := e.GetEventTime().AsTime().UTC()
	tm := t.UnixMilli()
	if tm > s.MaxEventM[topic] {
		s.MaxEventM[topic] = tm
	}
	platform, user, kind := platformOf(e), e.GetUserId(), event.KindOf(e)
	// The feed is a log by event time, not a window: a late transaction still takes its
	// place (and falls off at once if it is older than the whole feed).
	if tx, ok := txEventOf(e, kind, t, platform, s.Partition); ok {
		s.addTx(tx)
	}
	if t.Truncate(time.Minute).UnixMilli() < s.ClosedBeforeM {
		s.Late++
		return true
	}
	for _, g := range model.Granularities {
		w := s.window(g, t, platform, r)
		m := &w.M
		w.Dirty = true
		add(w.Active, user, &m.ActiveUsers)
		switch kind {
		case event.KindPageView:
			m.PageViews++
		case event.KindProductView:
			m.ProductViews++
			add(w.Viewers, user, &m.FunnelViewers)
			pv := e.GetProductView()
			s.top(g, t, model.TopProductViews, r)[pv.GetProductId()]++
			s.top(g, t, model.TopCategoryViews, r)[pv.GetCategoryId()]++
		case event.KindSearch:
			m.Searches++
		case event.KindCartAdd:
			m.CartAdds++
			add(w.Carters, user, &m.FunnelCarters)
			ca := e.GetCartAdd()
			s.top(g, t, model.TopProductCarts, r)[ca.GetProductId()] += int64(max(ca.GetQuantity(), 1))
		case event.KindCheckoutStarted:
			m.Checkouts++
			add(w.Checkout, user, &m.FunnelCheckout)
		case event.KindOrderPlaced:
			o := e.GetOrderPlaced()
			m.Orders++
			add(w.Buyers, user, &m.FunnelBuyers)
			cur := o.GetTotal().GetCurrency()
			m.Revenue[cur] += o.GetTotal().GetAmountMinor()
			m.OrdersByCurrency[cur]++
			rev, cat := s.top(g, t, model.TopProductRevenue, r), s.top(g, t, model.TopCategoryOrders, r)
			for _, li := range o.GetItems() {
				rev[li.GetProductId()] += int64(li.GetQuantity()) * li.GetUnitPriceMinor()
				cat[li.GetCategoryId()] += int64(li.GetQuantity())
			}
		case event.KindPaymentFailed:
			m.PaymentsFailed++
		case event.KindRefund:
			m.Refunds++
		case event.KindChargeback:
			m.Chargebacks++
		}
	}
	// Server-side events (payments, refunds) are not shopper activity: they do not extend
	// or open sessions.
	if e.GetSource() != pb.Source_SOURCE_BACKEND {
		s.applySession(e, kind, t, platform, r)
	}
	return false
}

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

func (s *partitionState) addTx(tx model.TxEvent) {
	f := s.Feeds[tx.Kind]
	if f == nil {
		f = &txFeed{}
		s.Feeds[tx.Kind] = f
	}
	var added bool
	f.Events, added = insertNewest(f.Events, tx, func(x model.TxEvent) time.Time { return x.Time }, model.TxFeedLen)
	f.Dirty = f.Dirty || added
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
	case len(list) < cap(list):
		list = list[:len(list)+1]
	case len(list) < bound:
		// Grow to at most bound: append's doubling would overshoot it for every session.
		grown := make([]T, len(list)+1, min(max(2*cap(list), 4), bound))
		copy(grown, list)
		list = grown
	}
	copy(list[i+1:], list[i:])
	list[i] = v
	return list, true
}

// userEventOf is how a session's recent events show e.
func userEventOf(e *pb.Envelope, kind event.Kind, t time.Time) model.UserEvent {
	u := model.UserEvent{Time: t.Truncate(time.Millisecond), Kind: string(kind)}
	switch kind {
	case event.KindProductView:
		pv := e.GetProductView()
		u.ProductID, u.AmountMinor, u.Currency = pv.GetProductId(), pv.GetPriceMinor(), pv.GetCurrency()
	case event.KindCartAdd:
		ca := e.GetCartAdd()
		u.ProductID, u.AmountMinor, u.Currency = ca.GetProductId(), int64(max(ca.GetQuantity(), 1))*ca.GetUnitPriceMinor(), ca.GetCurrency()
	case event.KindCartRemove:
		u.ProductID = e.GetCartRemove().GetProductId()
	case event.KindCartQuantityChange:
		u.ProductID = e.GetCartQuantityChange().GetProductId()
	case event.KindWishlistAdd:
		u.ProductID = e.GetWishlistAdd().GetProductId()
	case event.KindWishlistRemove:
		u.ProductID = e.GetWishlistRemove().GetProductId()
	case event.KindCheckoutStarted:
		c := e.GetCheckoutStarted()
		u.AmountMinor, u.Currency = c.GetSubtotalMinor(), c.GetCurrency()
	case event.KindOrderPlaced:
		tot := e.GetOrderPlaced().GetTotal()
		u.AmountMinor, u.Currency = tot.GetAmountMinor(), tot.GetCurrency()
	}
	return u
}

func winKey(g model.Granularity, start time.Time, platform string) string {
	return fmt.Sprintf("%s|%d|%s", g, start.UnixMilli(), platform)
}

func (s *partitionState) window(g model.Granularity, t time.Time, platform string, r Rules) *window {
	start := t.Truncate(g.Duration())
	k := winKey(g, start, platform)
	w := s.Windows[k]
	if w == nil {
		w = &window{
			M: model.WindowMetrics{
				Key:     model.WindowKey{Granularity: g, Start: start, Platform: platform, Partition: s.Partition},
				Revenue: map[string]int64{}, OrdersByCurrency: map[string]int64{},
			},
			Active: map[string]struct{}{}, Viewers: map[string]struct{}{}, Carters: map[string]struct{}{},
			Checkout: map[string]struct{}{}, Buyers: map[string]struct{}{},
			ClosesAtM: start.Add(g.Duration() + r.AllowedLateness).UnixMilli(),
		}
		s.Windows[k] = w
	}
	return w
}

func (s *partitionState) top(g model.Granularity, t time.Time, dim model.TopDimension, r Rules) map[string]int64 {
	start := t.Truncate(g.Duration())
	k := fmt.Sprintf("%s|%d|%s", g, start.UnixMilli(), dim)
	tp := s.Tops[k]
	if tp == nil {
		tp = &tops{
			T:         model.TopItems{Granularity: g, Start: start, Dimension: dim, Partition: s.Partition, Counts: map[string]int64{}},
			ClosesAtM: start.Add(g.Duration() + r.AllowedLateness).UnixMilli(),
		}
		s.Tops[k] = tp
	}
	tp.Dirty = true
	return tp.T.Counts
}

func (s *partitionState) applySession(e *pb.Envelope, kind event.Kind, t time.Time, platform string, r Rules) {
	user := e.GetUserId()
	ss := s.Sessions[user]
	if ss != nil && t.After(ss.S.End.Add(r.SessionGap)) {
		s.closeSession(user, r)
		ss = nil
	}
	if ss == nil {
		ss = &session{S: model.Session{
			UserID: user, SessionID: e.GetSessionId(), Platform: platform, Start: t, End: t,
			Revenue: map[string]int64{}, Partition: s.Partition,
		}}
		s.Sessions[user] = ss
	}
	ss.Dirty = true
	m := &ss.S
	if t.Before(m.Start) {
		m.Start = t
	}
	if t.After(m.End) {
		m.End = t
	}
	m.Events++
	m.Recent, _ = insertNewest(m.Recent, userEventOf(e, kind, t), func(u model.UserEvent) time.Time { return u.Time }, model.SessionRecentLen)
	switch kind {
	case event.KindPageView:
		m.PageViews++
	case event.KindCartAdd:
		m.CartAdds++
	case event.KindCheckoutStarted:
		m.Checkouts++
	case event.KindOrderPlaced:
		m.Orders++
		tot := e.GetOrderPlaced().GetTotal()
		m.Revenue[tot.GetCurrency()] += tot.GetAmountMinor()
	}
}

func outcome(s *model.Session) model.SessionOutcome {
	switch {
	case s.Orders > 0:
		return model.OutcomePurchased
	case s.Checkouts > 0:
		return model.OutcomeAbandonedCheckout
	case s.CartAdds > 0:
		return model.OutcomeAbandonedCart
	default:
		return model.OutcomeBrowsed
	}
}

// closeSession makes the user's open session final and counts it in the session windows of
// its last event.
func (s *partitionState) closeSession(user string, r Rules) {
	ss := s.Sessions[user]
	delete(s.Sessions, user)
	m := ss.S
	m.Closed, m.Outcome = true, outcome(&m)
	s.closed = append(s.closed, m)
	for _, g := range model.Granularities {
		start := m.End.Truncate(g.Duration())
		k := winKey(g, start, m.Platform)
		sw := s.SessionWindows[k]
		if sw == nil {
			sw = &sessionWin{
				W: model.SessionWindow{Key: model.WindowKey{Granularity: g, Start: start, Platform: m.Platform, Partition: s.Partition}},
				// Sessions ending in this window close up to one gap after it ends.
				ClosesAtM: start.Add(g.Duration() + r.SessionGap + r.AllowedLateness).UnixMilli(),
			}
			s.SessionWindows[k] = sw
		}
		sw.Dirty = true
		w := &sw.W
		w.Sessions++
		w.DurationSumMillis += m.End.Sub(m.Start).Milliseconds()
		switch m.Outcome {
		case model.OutcomeBrowsed:
			w.Browsed++
		case model.OutcomeAbandonedCart:
			w.AbandonedCart++
		case model.OutcomeAbandonedCheckout:
			w.AbandonedCheckout++
		case model.OutcomePurchased:
			w.Purchased++
		}
	}
}

// Advance applies the watermark wm (unix ms): sessions idle for a gap close, and windows
// past their allowed lateness become final. Final rows are returned with the dirty ones.
func (s *partitionState) Advance(wm int64, r Rules) {
	if wm <= 0 {
		return
	}
	users := make([]string, 0)
	for u, ss := range s.Sessions {
		if ss.S.End.Add(r.SessionGap).UnixMilli() < wm {
			users = append(users, u)
		}
	}
	sort.Strings(users) // deterministic order of closing
	for _, u := range users {
		s.closeSession(u, r)
	}
	// A minute [m, m+1m) is final once wm >= m+1m+lateness, so every minute starting before
	// the one containing wm-lateness is final; later events for them are late.
	if b := time.UnixMilli(wm - r.AllowedLateness.Milliseconds()).Truncate(time.Minute).UnixMilli(); b > s.ClosedBeforeM {
		s.ClosedBeforeM = b
	}
}

// Drain returns the rows changed since they were last drained and forgets windows that are
// final (their last value is in this batch); level says which (see drainLevel). The live
// rows go out at every flush; rollups, longer rankings and sessions are more and bigger rows
// and wait for a full drain, which the processor makes about once a second. now stamps
// UpdatedAt and paces open sessions.
func (s *partitionState) Drain(wm int64, now time.Time, level drainLevel) model.Batch {
	var b model.Batch
	full := level >= drainFull
	for k, w := range s.Windows {
		final := wm > 0 && w.ClosesAtM <= wm
		if !full && !final && w.M.Key.Granularity != model.Minute {
			continue
		}
		if w.Dirty {
			w.M.UpdatedAt = now
			b.Windows = append(b.Windows, w.M)
			w.Dirty = false
		}
		if final {
			delete(s.Windows, k)
		}
	}
	for k, t := range s.Tops {
		final := wm > 0 && t.ClosesAtM <= wm
		if !full && !final && t.T.Granularity != model.Minute {
			continue
		}
		if t.Dirty {
			b.Tops = append(b.Tops, t.T)
			t.Dirty = false
		}
		if final {
			delete(s.Tops, k)
		}
	}
	if !full {
		return cloneMaps(b)
	}
	for k, sw := range s.SessionWindows {
		final := wm > 0 && sw.ClosesAtM <= wm
		if sw.Dirty {
			b.SessionWindows = append(b.SessionWindows, sw.W)
			sw.Dirty = false
		}
		if final {
			delete(s.SessionWindows, k)
		}
	}
	// The feeds change with every transaction; once a second is fresh enough for a feed
	// and keeps them out of the live flushes.
	for _, kind := range model.TxKinds {
		if f := s.Feeds[kind]; f != nil && f.Dirty {
			b.TxFeeds = append(b.TxFeeds, model.TxFeed{Kind: kind, Partition: s.Partition, Events: f.Events})
			f.Dirty = false
		}
	}
	nowM, every := now.UnixMilli(), openSessionEvery.Milliseconds()
	for user, ss := range s.Sessions {
		if ss.WrittenAtM == 0 {
			// Spread first writes over the interval so sessions that start together are
			// not all rewritten in the same flush ever after.
			ss.WrittenAtM = nowM - int64(fnv32(user))%every
		}
		if ss.Dirty && (level == drainAll || nowM-ss.WrittenAtM >= every) {
			b.Sessions = append(b.Sessions, ss.S)
			ss.Dirty, ss.WrittenAtM = false, nowM
		}
	}
	b.Sessions = append(b.Sessions, s.closed...)
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

// Snapshot encodes the state for a checkpoint. Pending closed sessions must have been
// drained first (they are rows, not state).
func (s *partitionState) Snapshot() ([]byte, error) {
	var b bytes.Buffer
	if err := gob.NewEncoder(&b).Encode(s); err != nil {
		return nil, fmt.Errorf("snapshot partition %d: %w", s.Partition, err)
	}
	return b.Bytes(), nil
}

// restoreState decodes a snapshot.
func restoreState(p int32, data []byte) (*partitionState, error) {
	s := newPartitionState(p)
	if err := gob.NewDecoder(bytes.NewReader(data)).Decode(s); err != nil {
		return nil, fmt.Errorf("restore partition %d: %w", p, err)
	}
	// gob leaves nil maps for empty ones.
	for _, w := range s.Windows {
		for _, m := range []*map[string]struct{}{&w.Active, &w.Viewers, &w.Carters, &w.Checkout, &w.Buyers} {
			if *m == nil {
				*m = map[string]struct{}{}
			}
		}
		if w.M.Revenue == nil {
			w.M.Revenue = map[string]int64{}
		}
		if w.M.OrdersByCurrency == nil {
			w.M.OrdersByCurrency = map[string]int64{}
		}
	}
	for _, t := range s.Tops {
		if t.T.Counts == nil {
			t.T.Counts = map[string]int64{}
		}
	}
	for _, ss := range s.Sessions {
		if ss.S.Revenue == nil {
			ss.S.Revenue = map[string]int64{}
		}
	}
	if s.Offsets == nil {
		s.Offsets = map[string]int64{}
	}
	if s.MaxEventM == nil {
		s.MaxEventM = map[string]int64{}
	}
	if s.Feeds == nil { // also snapshots from before the feeds
		s.Feeds = map[string]*txFeed{}
	}
	return s, nil
}

// fnv32 is the FNV-1a hash of s.
func fnv32(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h = (h ^ uint32(s[i])) * 16777619
	}
	return h
}
