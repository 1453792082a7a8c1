package fraud

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/bytebasket/bytebasket/internal/event"
	"github.com/bytebasket/bytebasket/internal/fraud/rules"
	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
)

// scored are the events a decision is made on.
var scored = []event.Kind{event.KindOrderPlaced, event.KindPaymentAuthorized, event.KindPaymentFailed}

// userState is one partition's per-user history and profiles, what the user-keyed rules
// aggregate over and the signals read, and the partition's typical order amounts.
type userState struct {
	users   map[string]*history
	deleted map[string]bool // dropped since the last checkpoint
	typical *typical
	// firstEventMs: the earliest event time applied, since when the partition is watched.
	firstEventMs int64
	firstDirty   bool
}

// history is one user's events within the longest window, oldest first, and profile.
type history struct {
	events  []*pb.FraudEventState
	profile *pb.FraudProfile
	dirty   bool // changed since the last checkpoint
}

func newUserState() *userState {
	return &userState{users: map[string]*history{}, deleted: map[string]bool{}, typical: newTypical()}
}

// add records e in its user's profile and, when the user rules aggregate its kind (keep), in
// the history (in event-time order), dropping what horizon (the longest window in force) no
// longer reaches from the newest event. What the profile forgets after retention it forgets
// here, relative to e's time, so decisions never depend on when a flush expired something.
func (s *userState) add(e *pb.Envelope, horizon, retention time.Duration, keep bool) *history {
	user := e.GetUserId()
	h := s.users[user]
	if h == nil {
		h = &history{profile: &pb.FraudProfile{}}
		s.users[user] = h
		delete(s.deleted, user)
	}
	rec := eventState(e)
	if s.firstEventMs == 0 || rec.GetTimeMs() < s.firstEventMs {
		s.firstEventMs, s.firstDirty = rec.GetTimeMs(), true
	}
	cutoff := rec.GetTimeMs() - retention.Milliseconds()
	if h.profile.GetLastSeenMs() != 0 && h.profile.GetLastSeenMs() < cutoff {
		h.profile = &pb.FraudProfile{} // unseen for the retention: a stranger again
	}
	forget(h.profile, cutoff)
	see(h.profile, e, rec.GetTimeMs())
	if keep {
		insertByTime(h, rec, horizon)
	} else {
		h.dirty = true
	}
	return h
}

// insertByTime puts rec in h in event-time order and drops the events horizon no longer
// reaches from the newest.
func insertByTime(h *history, rec *pb.FraudEventState, horizon time.Duration) {
	i, _ := slices.BinarySearchFunc(h.events, rec.GetTimeMs(), func(x *pb.FraudEventState, t int64) int {
		if x.GetTimeMs() <= t { // equal times keep arrival order
			return -1
		}
		return 1
	})
	h.events = slices.Insert(h.events, i, rec)
	newest := h.events[len(h.events)-1].GetTimeMs()
	keep := slices.IndexFunc(h.events, func(x *pb.FraudEventState) bool { return x.GetTimeMs() >= newest-horizon.Milliseconds() })
	if keep > 0 {
		h.events = slices.Delete(h.events, 0, keep)
	}
	h.dirty = true
}

// expire frees what no event from expiryMargin before wm (unix ms) on can read: users last
// seen more than retention before that, and histories whose newest event is more than
// horizon before it. (add forgets the same relative to each event, so only an event that
// much older than the watermark would see a difference.)
func (s *userState) expire(wm int64, horizon, retention time.Duration) {
	wm -= expiryMargin.Milliseconds()
	for user, h := range s.users {
		if h.profile.GetLastSeenMs() < wm-retention.Milliseconds() {
			delete(s.users, user)
			s.deleted[user] = true
			continue
		}
		if n := len(h.events); n > 0 && h.events[n-1].GetTimeMs() < wm-horizon.Milliseconds() {
			h.events, h.dirty = nil, true
		}
	}
}

// expiryMargin is how far behind the watermark an event may arrive and still find what it
// would have found before an expiry pass.
const expiryMargin = 24 * time.Hour

// eventState is what the rules need of e.
func eventState(e *pb.Envelope) *pb.FraudEventState {
	rec := &pb.FraudEventState{TimeMs: e.GetEventTime().AsTime().UnixMilli(), Kind: string(event.KindOf(e))}
	if m, ok := rules.AmountOf(e); ok {
		rec.AmountMinor, rec.Currency = m.GetAmountMinor(), m.GetCurrency()
	}
	rec.Card, _ = rules.Of(e, rules.Card)
	rec.Device, _ = rules.Of(e, rules.Device)
	rec.Ip, _ = rules.Of(e, rules.IP)
	rec.Country, _ = rules.Of(e, rules.Country)
	return rec
}

// attribute is a of a recorded event of user (the event's own user in a key's history).
func attribute(user string, x *pb.FraudEventState, a rules.Attribute) string {
	switch a {
	case rules.User:
		return cmp.Or(x.GetUserId(), user)
	case rules.Card:
		return x.GetCard()
	case rules.Device:
		return x.GetDevice()
	case rules.IP:
		return x.GetIp()
	case rules.Country:
		return x.GetCountry()
	}
	return ""
}

// aggregate is condition r's value over the user's events of the kinds on within r's window
// ending at atMs (inclusive), or with around, within a window either side of it: a key's
// events reach the repartition stage from several partitions out of event-time order, so an
// event there also counts those of the window after it that arrived first.
func aggregate(on []event.Kind, r *rules.Condition, user string, h *history, atMs int64, around bool) float64 {
	from, to := atMs-r.Window.Milliseconds(), atMs
	if around {
		to = atMs + r.Window.Milliseconds() - 1
	}
	var n, sum float64
	distinct := map[string]struct{}{}
	for _, x := range h.events {
		if x.GetTimeMs() <= from || x.GetTimeMs() > to || !slices.Contains(on, event.Kind(x.GetKind())) {
			continue
		}
		switch r.Aggregate {
		case rules.Count:
			n++
		case rules.Sum, rules.Avg:
			if x.GetCurrency() == r.Currency {
				n++
				sum += float64(x.GetAmountMinor())
			}
		case rules.Distinct:
			if v := attribute(user, x, r.Field); v != "" {
				distinct[v] = struct{}{}
			}
		}
	}
	switch r.Aggregate {
	case rules.Sum:
		return sum
	case rules.Avg:
		if n == 0 {
			return 0
		}
		return math.Round(sum / n)
	case rules.Distinct:
		return float64(len(distinct))
	}
	return n
}

// changes emits the users changed or dropped since the last call (with full, every user).
func (s *userState) changes(full bool, emit func(*pb.StateEntry)) {
	for user := range s.deleted {
		if !full {
			emit(&pb.StateEntry{Entry: &pb.StateEntry_FraudUser{FraudUser: &pb.FraudUserState{UserId: user, Deleted: true}}})
		}
	}
	clear(s.deleted)
	for user, h := range s.users {
		if full || h.dirty {
			emit(&pb.StateEntry{Entry: &pb.StateEntry_FraudUser{FraudUser: &pb.FraudUserState{UserId: user, Events: h.events, Profile: h.profile}}})
		}
		h.dirty = false
	}
	s.typical.changes(full, emit)
	if full || s.firstDirty {
		emit(&pb.StateEntry{Entry: &pb.StateEntry_FraudPartition{FraudPartition: &pb.FraudPartitionState{FirstEventMs: s.firstEventMs}}})
	}
	s.firstDirty = false
}

// restore applies one checkpoint entry.
func (s *userState) restore(e *pb.StateEntry) error {
	if a := e.GetFraudTypical(); a != nil {
		s.typical.by[a.GetCurrency()] = a
		return nil
	}
	if ps := e.GetFraudPartition(); ps != nil {
		s.firstEventMs = ps.GetFirstEventMs()
		return nil
	}
	u := e.GetFraudUser()
	if u == nil {
		return fmt.Errorf("fraud: checkpoint entry %T is not the fraud role's", e.GetEntry())
	}
	if u.GetDeleted() {
		delete(s.users, u.GetUserId())
		return nil
	}
	p := u.GetProfile()
	if p == nil { // written before profiles (state version 1): what the events say
		p = profileFrom(u.GetEvents())
	}
	s.users[u.GetUserId()] = &history{events: u.GetEvents(), profile: p}
	return nil
}

// profileFrom is the profile the events of a version 1 checkpoint imply: first and last
// sighting, the values they carry, and their orders.
func profileFrom(events []*pb.FraudEventState) *pb.FraudProfile {
	p := &pb.FraudProfile{}
	for _, x := range events {
		at := x.GetTimeMs()
		if p.FirstSeenMs == 0 || at < p.FirstSeenMs {
			p.FirstSeenMs = at
		}
		p.LastSeenMs = max(p.LastSeenMs, at)
		for _, a := range profiled {
			v := attribute("", x, a)
			if v == "" {
				continue
			}
			if s := seenValue(p, a, v); s != nil {
				s.FirstMs, s.LastMs = min(s.FirstMs, at), max(s.LastMs, at)
			} else {
				p.Seen = append(p.Seen, &pb.FraudSeenValue{Attribute: string(a), Value: v, FirstMs: at, LastMs: at})
			}
		}
		if event.Kind(x.GetKind()) == event.KindOrderPlaced && x.GetCurrency() != "" {
			addOrder(p, x.GetCurrency(), x.GetAmountMinor())
		}
	}
	return p
}
