package stream

import (
	"slices"
	"sort"
	"time"

	"github.com/bytebasket/bytebasket/internal/event"
	"github.com/bytebasket/bytebasket/internal/model"
	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
)

// Sessions are cut by event time alone, as session windows that merge: an event joins every
// open session of its user it is within the gap of (one that bridges two joins them into
// one), or starts a new one. A session is closed only once no event can extend it any more
// (the minute its gap ends in is final, so any such event would be late). Which events
// share a session therefore depends neither on when flushes happen nor on the order the
// user's events arrive in across topics.

// session is one open session of a user.
type session struct {
	S     model.Session
	dirty bool // changed since its row was last written
	// moved: its start, the row's key, moved (or it absorbed a later session) since its row
	// was last written, so rows under its old keys must go.
	moved bool
	// unwrittenInCkpt: the last checkpoint recorded the session as not yet written; once
	// it is, the next checkpoint must say so.
	unwrittenInCkpt bool
	// writtenAtM is the wall time (unix ms) the open session was last written: open
	// sessions change with nearly every event, so each is rewritten at most once per
	// openSessionEvery. It paces writes only; values do not depend on it.
	writtenAtM int64
}

// userSessions is a user's open sessions, earliest first: disjoint, each more than the gap
// before the next.
type userSessions struct {
	open    []*session
	changed bool // since the last checkpoint
}

func (s *partitionState) applySession(e *pb.Envelope, kind event.Kind, t time.Time, platform string) {
	user := e.GetUserId()
	us := s.sessions[user]
	if us == nil {
		us = &userSessions{}
		s.sessions[user] = us
	}
	us.changed = true
	gap := s.rules.SessionGap
	// The sessions the event is within the gap of are neighbours: open[lo:hi].
	lo := sort.Search(len(us.open), func(i int) bool { return !t.After(us.open[i].S.End.Add(gap)) })
	hi := lo
	for hi < len(us.open) && !t.Before(us.open[hi].S.Start.Add(-gap)) {
		hi++
	}
	var ss *session
	if lo == hi {
		ss = &session{S: model.Session{
			UserID: user, SessionID: e.GetSessionId(), Platform: platform, Start: t, End: t,
			Revenue: map[string]int64{}, Partition: s.partition,
		}}
		us.open = slices.Insert(us.open, lo, ss)
	} else {
		ss = us.open[lo]
		for _, later := range us.open[lo+1 : hi] {
			ss.absorb(later)
		}
		us.open = slices.Delete(us.open, lo+1, hi)
		if t.Before(ss.S.Start) {
			ss.S.Start, ss.S.SessionID, ss.S.Platform = t, e.GetSessionId(), platform
			ss.moved = true
		}
	}
	ss.dirty = true
	m := &ss.S
	if t.After(m.End) {
		m.End = t
	}
	m.Events++
	m.Recent, _ = insertNewest(m.Recent, userEventOf(e, kind, t), eventTime, model.SessionRecentLen)
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

// absorb merges a later session, which an event bridged to this one, into it.
func (ss *session) absorb(later *session) {
	m, o := &ss.S, &later.S
	m.End = maxTime(m.End, o.End)
	m.Events += o.Events
	m.PageViews += o.PageViews
	m.CartAdds += o.CartAdds
	m.Checkouts += o.Checkouts
	m.Orders += o.Orders
	for c, v := range o.Revenue {
		m.Revenue[c] += v
	}
	for _, u := range o.Recent {
		m.Recent, _ = insertNewest(m.Recent, u, eventTime, model.SessionRecentLen)
	}
	ss.dirty, ss.moved = true, true
}

func eventTime(u model.UserEvent) time.Time { return u.Time }

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// span is the starts a session's row may have been written under: its events' times. Rows
// of other sessions of the user never start in it (sessions are more than the gap apart).
func span(m *model.Session) model.SessionSpan {
	return model.SessionSpan{UserID: m.UserID, From: m.Start, Through: m.End}
}

// openAround is the user's open session that t is within the gap of, or nil.
func (s *partitionState) openAround(user string, t time.Time) *session {
	us := s.sessions[user]
	if us == nil {
		return nil
	}
	gap := s.rules.SessionGap
	for _, ss := range us.open {
		if !t.Before(ss.S.Start.Add(-gap)) && !t.After(ss.S.End.Add(gap)) {
			return ss
		}
	}
	return nil
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

// closeIdleSessions closes the sessions no event can extend any more: an event within the
// gap of the session's last one would fall in a minute that is final. It runs when a
// minute becomes final, in user order.
func (s *partitionState) closeIdleSessions() {
	idle := func(ss *session) bool {
		return minuteStart(ss.S.End.Add(s.rules.SessionGap).UnixMilli()) < s.closedBefore
	}
	var users []string
	for u, us := range s.sessions {
		if idle(us.open[0]) {
			users = append(users, u)
		}
	}
	sort.Strings(users)
	for _, u := range users {
		us := s.sessions[u]
		for len(us.open) > 0 && idle(us.open[0]) {
			s.closeSession(us.open[0].S)
			us.open = us.open[1:]
		}
		us.changed = true
		if len(us.open) == 0 {
			delete(s.sessions, u)
			s.gone.sessions = append(s.gone.sessions, u)
		}
	}
}

// closeSession makes a session final and counts it in the session windows of its last
// event.
func (s *partitionState) closeSession(m model.Session) {
	m.Closed, m.Outcome = true, outcome(&m)
	s.closed = append(s.closed, m)
	for _, g := range model.Granularities {
		start := m.End.Truncate(g.Duration())
		k := winKey{g, start.UnixMilli(), m.Platform}
		sw := s.sessionWindows[k]
		if sw == nil {
			sw = &sessionWin{W: model.SessionWindow{Key: model.WindowKey{Granularity: g, Start: start, Platform: m.Platform, Partition: s.partition}}}
			s.sessionWindows[k] = sw
		}
		sw.dirty, sw.changed = true, true
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

// sessionWindowFinal reports whether no more sessions can end in the window: every session
// that did is closed, which happens once the minute its gap ends in is final.
func (s *partitionState) sessionWindowFinal(k winKey) bool {
	lastEnd := k.start + k.g.Duration().Milliseconds() - 1
	return minuteStart(lastEnd+s.rules.SessionGap.Milliseconds()) < s.closedBefore
}
