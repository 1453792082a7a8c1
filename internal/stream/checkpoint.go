package stream

import (
	"fmt"
	"maps"
	"time"

	"github.com/bytebasket/bytebasket/internal/model"
	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
)

// stateVersion is the meaning of the stream's checkpoint entries (StreamScalars, WindowState,
// TopState, UserSessionsState, SessionWindowState, FeedState in proto/bytebasket/v1/state.proto).
const stateVersion = 1

// maxEntryItems bounds the members or items of one entry, so entries (and so chunks) stay
// small however large a window grows.
const maxEntryItems = 4096

// Changes emits what changed since the previous call: the scalars, what left the state,
// and the windows, rankings, sessions and feeds that changed. With full it emits the whole
// state. Distinct-user sets only grow while a window is open, so a window's entry carries
// the members added since the last checkpoint, not the set.
func (s *partitionState) Changes(full bool, emit func(*pb.StateEntry)) {
	if full || s.scalarsChanged {
		emit(&pb.StateEntry{Entry: &pb.StateEntry_StreamScalars{StreamScalars: &pb.StreamScalars{ClosedBeforeMs: s.closedBefore, Late: s.late}}})
	}
	if !full {
		for _, k := range s.gone.windows {
			emit(&pb.StateEntry{Entry: &pb.StateEntry_Window{Window: &pb.WindowState{Granularity: string(k.g), StartMs: k.start, Platform: k.platform, Deleted: true}}})
		}
		for _, k := range s.gone.tops {
			emit(&pb.StateEntry{Entry: &pb.StateEntry_Top{Top: &pb.TopState{Granularity: string(k.g), StartMs: k.start, Dimension: string(k.dim), Deleted: true}}})
		}
		for _, u := range s.gone.sessions {
			emit(&pb.StateEntry{Entry: &pb.StateEntry_UserSessions{UserSessions: &pb.UserSessionsState{UserId: u}}})
		}
		for _, k := range s.gone.sessionWindows {
			emit(&pb.StateEntry{Entry: &pb.StateEntry_SessionWindow{SessionWindow: &pb.SessionWindowState{Granularity: string(k.g), StartMs: k.start, Platform: k.platform, Deleted: true}}})
		}
	}
	s.gone.windows, s.gone.tops, s.gone.sessions, s.gone.sessionWindows = s.gone.windows[:0], s.gone.tops[:0], s.gone.sessions[:0], s.gone.sessionWindows[:0]
	s.scalarsChanged = false
	for k, w := range s.windows {
		if full || w.changed {
			emitWindow(k, w, full, emit)
		}
		w.changed = false
		w.added = [numSets][]uint64{}
	}
	for k, t := range s.tops {
		if full || len(t.changed) > 0 {
			emitTop(k, t, full, emit)
		}
		clear(t.changed)
	}
	for u, us := range s.sessions {
		if full || us.changed {
			e := &pb.UserSessionsState{UserId: u, Open: make([]*pb.SessionState, len(us.open))}
			for i, ss := range us.open {
				e.Open[i] = sessionState(u, &ss.S)
				e.Open[i].Unwritten, ss.unwrittenInCkpt = ss.dirty, ss.dirty
			}
			emit(&pb.StateEntry{Entry: &pb.StateEntry_UserSessions{UserSessions: e}})
		}
		us.changed = false
	}
	for k, sw := range s.sessionWindows {
		if full || sw.changed {
			w := &sw.W
			emit(&pb.StateEntry{Entry: &pb.StateEntry_SessionWindow{SessionWindow: &pb.SessionWindowState{
				Granularity: string(k.g), StartMs: k.start, Platform: k.platform, Sessions: w.Sessions, Browsed: w.Browsed,
				AbandonedCart: w.AbandonedCart, AbandonedCheckout: w.AbandonedCheckout, Purchased: w.Purchased,
				DurationSumMillis: w.DurationSumMillis,
			}}})
		}
		sw.changed = false
	}
	for kind, f := range s.feeds {
		if full || f.changed {
			fs := &pb.FeedState{Kind: kind, Events: make([]*pb.TxEventState, len(f.Events))}
			for i, e := range f.Events {
				fs.Events[i] = &pb.TxEventState{TimeMs: e.Time.UnixMilli(), UserId: e.UserID, OrderId: e.OrderID,
					AmountMinor: e.AmountMinor, Currency: e.Currency, Platform: e.Platform, Reason: e.Reason}
			}
			emit(&pb.StateEntry{Entry: &pb.StateEntry_Feed{Feed: fs}})
		}
		f.changed = false
	}
}

// emitWindow emits a window's counters and its new members (all of them with full), split
// into entries of at most maxEntryItems members; each carries the counters.
func emitWindow(k winKey, w *window, full bool, emit func(*pb.StateEntry)) {
	var members [numSets][]uint64
	for i := range members {
		if full {
			members[i] = make([]uint64, 0, len(w.sets[i]))
			for u := range w.sets[i] {
				members[i] = append(members[i], u)
			}
		} else {
			members[i] = w.added[i]
		}
	}
	for first := true; first || anyLeft(members); first = false {
		m := &w.M
		ws := &pb.WindowState{
			Granularity: string(k.g), StartMs: k.start, Platform: k.platform,
			PageViews: m.PageViews, ProductViews: m.ProductViews, Searches: m.Searches, CartAdds: m.CartAdds,
			Checkouts: m.Checkouts, Orders: m.Orders, PaymentsFailed: m.PaymentsFailed, Refunds: m.Refunds,
			Chargebacks: m.Chargebacks, Revenue: maps.Clone(m.Revenue), OrdersByCurrency: maps.Clone(m.OrdersByCurrency),
		}
		room := maxEntryItems
		take := func(i int) []uint64 {
			n := min(room, len(members[i]))
			out := members[i][:n]
			members[i], room = members[i][n:], room-n
			return out
		}
		ws.ActiveAdded, ws.ViewersAdded, ws.CartersAdded = take(setActive), take(setViewers), take(setCarters)
		ws.CheckoutAdded, ws.BuyersAdded = take(setCheckout), take(setBuyers)
		emit(&pb.StateEntry{Entry: &pb.StateEntry_Window{Window: ws}})
	}
}

func anyLeft(sets [numSets][]uint64) bool {
	for _, s := range sets {
		if len(s) > 0 {
			return true
		}
	}
	return false
}

// emitTop emits a ranking's changed items (all with full), at most maxEntryItems an entry.
func emitTop(k topKey, t *tops, full bool, emit func(*pb.StateEntry)) {
	items := t.changed
	if full {
		items = make(map[string]struct{}, len(t.T.Counts))
		for it := range t.T.Counts {
			items[it] = struct{}{}
		}
	}
	ts := &pb.TopState{Granularity: string(k.g), StartMs: k.start, Dimension: string(k.dim), Counts: map[string]int64{}}
	for it := range items {
		ts.Counts[it] = t.T.Counts[it]
		if len(ts.Counts) == maxEntryItems {
			emit(&pb.StateEntry{Entry: &pb.StateEntry_Top{Top: ts}})
			ts = &pb.TopState{Granularity: string(k.g), StartMs: k.start, Dimension: string(k.dim), Counts: map[string]int64{}}
		}
	}
	if len(ts.Counts) > 0 || full {
		emit(&pb.StateEntry{Entry: &pb.StateEntry_Top{Top: ts}})
	}
}

func restoreSession(x *pb.SessionState, partition int32) model.Session {
	m := model.Session{UserID: x.GetUserId(), SessionID: x.GetSessionId(), Platform: x.GetPlatform(),
		Start: time.UnixMilli(x.GetStartMs()).UTC(), End: time.UnixMilli(x.GetEndMs()).UTC(), Events: x.GetEvents(),
		PageViews: x.GetPageViews(), CartAdds: x.GetCartAdds(), Checkouts: x.GetCheckouts(), Orders: x.GetOrders(),
		Revenue: maps.Clone(x.GetRevenue()), Partition: partition}
	if m.Revenue == nil {
		m.Revenue = map[string]int64{}
	}
	for _, u := range x.GetRecent() {
		m.Recent = append(m.Recent, model.UserEvent{Time: time.UnixMilli(u.GetTimeMs()).UTC(), Kind: u.GetKind(),
			ProductID: u.GetProductId(), AmountMinor: u.GetAmountMinor(), Currency: u.GetCurrency()})
	}
	return m
}

func sessionState(user string, m *model.Session) *pb.SessionState {
	ss := &pb.SessionState{UserId: user, SessionId: m.SessionID, Platform: m.Platform, StartMs: m.Start.UnixMilli(),
		EndMs: m.End.UnixMilli(), Events: m.Events, PageViews: m.PageViews, CartAdds: m.CartAdds, Checkouts: m.Checkouts,
		Orders: m.Orders, Revenue: maps.Clone(m.Revenue), Recent: make([]*pb.UserEventState, len(m.Recent))}
	for i, u := range m.Recent {
		ss.Recent[i] = &pb.UserEventState{TimeMs: u.Time.UnixMilli(), Kind: u.Kind, ProductId: u.ProductID, AmountMinor: u.AmountMinor, Currency: u.Currency}
	}
	return ss
}

// Restore applies one checkpoint entry. Restored rows are clean (a checkpoint follows the
// writing of what it covers) except open sessions whose latest change was not written yet.
func (s *partitionState) Restore(e *pb.StateEntry) error {
	switch x := e.GetEntry().(type) {
	case *pb.StateEntry_StreamScalars:
		s.closedBefore, s.late = x.StreamScalars.GetClosedBeforeMs(), x.StreamScalars.GetLate()
	case *pb.StateEntry_Window:
		return s.restoreWindow(x.Window)
	case *pb.StateEntry_Top:
		t := x.Top
		g, err := granularity(t.GetGranularity())
		if err != nil {
			return err
		}
		k := topKey{g, t.GetStartMs(), model.TopDimension(t.GetDimension())}
		if t.GetDeleted() {
			delete(s.tops, k)
			return nil
		}
		tp := s.tops[k]
		if tp == nil {
			tp = newTops(g, time.UnixMilli(k.start).UTC(), k.dim, s.partition)
			s.tops[k] = tp
		}
		maps.Copy(tp.T.Counts, t.GetCounts())
	case *pb.StateEntry_UserSessions:
		x2 := x.UserSessions
		if len(x2.GetOpen()) == 0 {
			delete(s.sessions, x2.GetUserId())
			return nil
		}
		us := &userSessions{}
		for _, o := range x2.GetOpen() {
			// An unwritten session may have moved since its row was written.
			us.open = append(us.open, &session{S: restoreSession(o, s.partition), dirty: o.GetUnwritten(),
				moved: o.GetUnwritten(), unwrittenInCkpt: o.GetUnwritten()})
		}
		s.sessions[x2.GetUserId()] = us
	case *pb.StateEntry_SessionWindow:
		w := x.SessionWindow
		g, err := granularity(w.GetGranularity())
		if err != nil {
			return err
		}
		k := winKey{g, w.GetStartMs(), w.GetPlatform()}
		if w.GetDeleted() {
			delete(s.sessionWindows, k)
			return nil
		}
		s.sessionWindows[k] = &sessionWin{W: model.SessionWindow{
			Key:      model.WindowKey{Granularity: g, Start: time.UnixMilli(k.start).UTC(), Platform: k.platform, Partition: s.partition},
			Sessions: w.GetSessions(), Browsed: w.GetBrowsed(), AbandonedCart: w.GetAbandonedCart(),
			AbandonedCheckout: w.GetAbandonedCheckout(), Purchased: w.GetPurchased(), DurationSumMillis: w.GetDurationSumMillis(),
		}}
	case *pb.StateEntry_Feed:
		f := &txFeed{}
		for _, e := range x.Feed.GetEvents() {
			f.Events = append(f.Events, model.TxEvent{Time: time.UnixMilli(e.GetTimeMs()).UTC(), Kind: x.Feed.GetKind(),
				UserID: e.GetUserId(), OrderID: e.GetOrderId(), AmountMinor: e.GetAmountMinor(), Currency: e.GetCurrency(),
				Platform: e.GetPlatform(), Reason: e.GetReason(), Partition: s.partition})
		}
		s.feeds[x.Feed.GetKind()] = f
	default:
		return fmt.Errorf("stream: checkpoint entry %T is not the stream's", x)
	}
	return nil
}

func (s *partitionState) restoreWindow(x *pb.WindowState) error {
	g, err := granularity(x.GetGranularity())
	if err != nil {
		return err
	}
	k := winKey{g, x.GetStartMs(), x.GetPlatform()}
	if x.GetDeleted() {
		delete(s.windows, k)
		return nil
	}
	w := s.windows[k]
	if w == nil {
		w = newWindow(model.WindowKey{Granularity: g, Start: time.UnixMilli(k.start).UTC(), Platform: k.platform, Partition: s.partition})
		s.windows[k] = w
	}
	m := &w.M
	m.PageViews, m.ProductViews, m.Searches, m.CartAdds = x.GetPageViews(), x.GetProductViews(), x.GetSearches(), x.GetCartAdds()
	m.Checkouts, m.Orders, m.PaymentsFailed, m.Refunds = x.GetCheckouts(), x.GetOrders(), x.GetPaymentsFailed(), x.GetRefunds()
	m.Chargebacks = x.GetChargebacks()
	m.Revenue, m.OrdersByCurrency = maps.Clone(x.GetRevenue()), maps.Clone(x.GetOrdersByCurrency())
	if m.Revenue == nil {
		m.Revenue = map[string]int64{}
	}
	if m.OrdersByCurrency == nil {
		m.OrdersByCurrency = map[string]int64{}
	}
	for i, added := range [numSets][]uint64{x.GetActiveAdded(), x.GetViewersAdded(), x.GetCartersAdded(), x.GetCheckoutAdded(), x.GetBuyersAdded()} {
		for _, u := range added {
			w.sets[i][u] = struct{}{}
		}
	}
	m.ActiveUsers, m.FunnelViewers, m.FunnelCarters = int64(len(w.sets[setActive])), int64(len(w.sets[setViewers])), int64(len(w.sets[setCarters]))
	m.FunnelCheckout, m.FunnelBuyers = int64(len(w.sets[setCheckout])), int64(len(w.sets[setBuyers]))
	return nil
}

func granularity(s string) (model.Granularity, error) {
	g := model.Granularity(s)
	if g.Duration() == 0 {
		return "", fmt.Errorf("stream: checkpoint names granularity %q", s)
	}
	return g, nil
}
