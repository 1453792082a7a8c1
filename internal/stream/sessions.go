package stream

import (
	"sort"
	"time"

	"github.com/bytebasket/bytebasket/internal/event"
	"github.com/bytebasket/bytebasket/internal/model"
	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
)

// Sessions are cut by event time alone: an event more than the gap after the user's last
// one starts a new session, and a session is closed only once no event can extend it any
// more (the minute its gap ends in is final, so any such event would be late). Whether two
// events share a session therefore never depends on when flushes happen.

func (s *partitionState) applySession(e *pb.Envelope, kind event.Kind, t time.Time, platform string) {
	user := e.GetUserId()
	ss := s.sessions[user]
	if ss != nil && t.After(ss.S.End.Add(s.rules.SessionGap)) {
		s.closeSession(user)
		ss = nil
	}
	if ss == nil {
		// The session's key is its first event's time: an earlier event that arrives later
		// joins the session without moving its key, so its row is never orphaned.
		ss = &session{S: model.Session{
			UserID: user, SessionID: e.GetSessionId(), Platform: platform, Start: t, End: t,
			Revenue: map[string]int64{}, Partition: s.partition,
		}}
		s.sessions[user] = ss
	}
	ss.dirty, ss.changed = true, true
	m := &ss.S
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
	var users []string
	for u, ss := range s.sessions {
		if minuteStart(ss.S.End.Add(s.rules.SessionGap).UnixMilli()) < s.closedBefore {
			users = append(users, u)
		}
	}
	sort.Strings(users)
	for _, u := range users {
		s.closeSession(u)
	}
}

// closeSession makes the user's open session final and counts it in the session windows of
// its last event.
func (s *partitionState) closeSession(user string) {
	ss := s.sessions[user]
	delete(s.sessions, user)
	s.gone.sessions = append(s.gone.sessions, user)
	m := ss.S
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
