package fraud

import (
	"slices"
	"time"

	"github.com/bytebasket/bytebasket/internal/event"
	"github.com/bytebasket/bytebasket/internal/fraud/riskmodel"
	"github.com/bytebasket/bytebasket/internal/fraud/rules"
	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
)

// A profile (pb.FraudProfile) is what the signals remember of one user: when the user was
// first and last seen, each device, country, card and IP with its first and last sighting,
// and order totals per currency. It outlives the user's events by the rule set's profile
// retention, so "new device" means new within that memory, not new since the role started.

// profiled are the attributes a profile remembers values of.
var profiled = []rules.Attribute{rules.Device, rules.Country, rules.Card, rules.IP}

// see records e (event time at, unix ms) in p.
func see(p *pb.FraudProfile, e *pb.Envelope, at int64) {
	if p.FirstSeenMs == 0 || at < p.FirstSeenMs {
		p.FirstSeenMs = at
	}
	p.LastSeenMs = max(p.LastSeenMs, at)
	for _, a := range profiled {
		v, ok := rules.Of(e, a)
		if !ok {
			continue
		}
		if s := seenValue(p, a, v); s != nil {
			s.FirstMs, s.LastMs = min(s.FirstMs, at), max(s.LastMs, at)
			continue
		}
		p.Seen = append(p.Seen, &pb.FraudSeenValue{Attribute: string(a), Value: v, FirstMs: at, LastMs: at})
	}
}

func seenValue(p *pb.FraudProfile, a rules.Attribute, v string) *pb.FraudSeenValue {
	for _, s := range p.GetSeen() {
		if s.GetValue() == v && s.GetAttribute() == string(a) {
			return s
		}
	}
	return nil
}

// ordered adds order e's total to p, after the order was decided on (so it is not its own
// history).
func ordered(p *pb.FraudProfile, e *pb.Envelope) {
	m, ok := rules.AmountOf(e)
	if !ok || event.KindOf(e) != event.KindOrderPlaced {
		return
	}
	addOrder(p, m.GetCurrency(), m.GetAmountMinor())
}

func addOrder(p *pb.FraudProfile, currency string, amount int64) {
	for _, o := range p.Orders {
		if o.GetCurrency() == currency {
			o.Orders++
			o.AmountMinor += amount
			return
		}
	}
	p.Orders = append(p.Orders, &pb.FraudOrderTotals{Currency: currency, Orders: 1, AmountMinor: amount})
}

// forget drops the values last seen before cutoff (unix ms); it reports whether any went.
func forget(p *pb.FraudProfile, cutoff int64) bool {
	n := len(p.Seen)
	p.Seen = slices.DeleteFunc(p.Seen, func(s *pb.FraudSeenValue) bool { return s.GetLastMs() < cutoff })
	return len(p.Seen) != n
}

// typical is a partition's mean order total per currency: the baseline amount_vs_typical
// compares with. The mean is exact over the first typicalMemory orders of a currency, then
// decays (each order weighs 1/typicalMemory), so it follows a shop's prices as they move.
type typical struct {
	by    map[string]*pb.FraudTypicalAmount
	dirty map[string]bool
}

const (
	typicalMemory = 1000
	// typicalMinOrders: below this many orders a currency has no baseline yet.
	typicalMinOrders = 50
)

func newTypical() *typical {
	return &typical{by: map[string]*pb.FraudTypicalAmount{}, dirty: map[string]bool{}}
}

// add counts order e's total.
func (t *typical) add(e *pb.Envelope) {
	m, ok := rules.AmountOf(e)
	if !ok || event.KindOf(e) != event.KindOrderPlaced {
		return
	}
	c := m.GetCurrency()
	a := t.by[c]
	if a == nil {
		a = &pb.FraudTypicalAmount{Currency: c}
		t.by[c] = a
	}
	a.Orders++
	a.MeanMinor += (float64(m.GetAmountMinor()) - a.MeanMinor) / float64(min(a.Orders, typicalMemory))
	t.dirty[c] = true
}

// ratio is amount over the baseline of currency, 0 without one.
func (t *typical) ratio(amount int64, currency string) float64 {
	a := t.by[currency]
	if a == nil || a.GetOrders() < typicalMinOrders || a.GetMeanMinor() <= 0 {
		return 0
	}
	return float64(amount) / a.GetMeanMinor()
}

func (t *typical) changes(full bool, emit func(*pb.StateEntry)) {
	for c, a := range t.by {
		if full || t.dirty[c] {
			emit(&pb.StateEntry{Entry: &pb.StateEntry_FraudTypical{FraudTypical: a}})
		}
	}
	clear(t.dirty)
}

// signal is the value of condition c (a signal) for e, the decided event of the user with
// profile p, in the partition whose state is st, under set.
func signal(c *rules.Condition, e *pb.Envelope, p *pb.FraudProfile, st *userState, set *rules.Set) float64 {
	at := e.GetEventTime().AsTime().UnixMilli()
	m, hasAmount := rules.AmountOf(e)
	switch c.Signal {
	case rules.New:
		from := at - c.Window.Milliseconds()
		if p.GetFirstSeenMs() > from { // a user seen only within the window: nothing to compare with
			return 0
		}
		n := 0
		for _, s := range p.GetSeen() {
			if s.GetAttribute() == string(c.Field) && s.GetFirstMs() > from && s.GetFirstMs() <= at {
				n++
			}
		}
		return float64(n)
	case rules.AccountAge:
		// A user first seen while the partition was still warming up may be an old customer
		// the role had not met yet: not known to be new, so as old as the profile remembers.
		if p.GetFirstSeenMs() < st.firstEventMs+set.Warmup().Milliseconds() {
			return set.Retention().Minutes()
		}
		return float64(time.Duration(at-p.GetFirstSeenMs()) * time.Millisecond / time.Minute)
	case rules.PriorOrders:
		n := ordersOf(p)
		// A payment's own order was counted when it was placed: it is not a prior one.
		if id := rules.OrderIDOf(e); e.GetOrderPlaced() == nil && id != "" &&
			slices.ContainsFunc(p.GetRecentOrders(), func(o *pb.FraudRecentOrder) bool { return o.GetOrderId() == id }) {
			n--
		}
		return float64(max(n, 0))
	case rules.AmountVsTypical:
		if hasAmount {
			return st.typical.ratio(m.GetAmountMinor(), m.GetCurrency())
		}
	case rules.AmountVsOwn:
		if !hasAmount {
			return 0
		}
		for _, o := range p.GetOrders() {
			if o.GetCurrency() == m.GetCurrency() && o.GetOrders() > 0 && o.GetAmountMinor() > 0 {
				return float64(m.GetAmountMinor()) * float64(o.GetOrders()) / float64(o.GetAmountMinor())
			}
		}
	case rules.AddressMismatch:
		if addressMismatch(e.GetOrderPlaced()) {
			return 1
		}
	}
	return 0
}

// orderFeatures are the model's inputs for order e (event time at, unix ms) of the user with
// history h, as internal/batch's FraudFeaturesJob computes them over the lake: h holds e
// already, its profile does not count e among the orders yet.
func orderFeatures(e *pb.Envelope, h *history, at int64) riskmodel.Order {
	o := e.GetOrderPlaced()
	p := h.profile
	x := riskmodel.Order{AmountMinor: o.GetTotal().GetAmountMinor(), Currency: o.GetTotal().GetCurrency(),
		PaymentMethod: o.GetPaymentMethod(), AddressMismatch: addressMismatch(o), PriorOrders: ordersOf(p)}
	from := at - riskmodel.Window.Milliseconds()
	for _, ev := range h.events {
		if ev.GetTimeMs() <= from || ev.GetTimeMs() > at {
			continue
		}
		switch event.Kind(ev.GetKind()) {
		case event.KindOrderPlaced:
			x.Orders1h++
		case event.KindPaymentFailed:
			x.Failed1h++
		}
	}
	x.Orders1h = max(x.Orders1h-1, 0) // e itself
	if first := p.GetFirstSeenMs(); first > 0 {
		x.AccountAge = time.Duration(at-first) * time.Millisecond
	}
	if dev := o.GetDeviceId(); dev != "" {
		if s := seenValue(p, rules.Device, dev); s != nil {
			x.DeviceAge = time.Duration(at-s.GetFirstMs()) * time.Millisecond
		}
	}
	countriesFrom := at - riskmodel.CountriesWindow.Milliseconds()
	for _, s := range p.GetSeen() {
		if s.GetAttribute() == string(rules.Country) && s.GetLastMs() > countriesFrom && s.GetFirstMs() <= at {
			x.Countries24h++
		}
	}
	return x
}

// ordersOf is how many orders profile p counts, all currencies.
func ordersOf(p *pb.FraudProfile) int64 {
	var n int64
	for _, o := range p.GetOrders() {
		n += o.GetOrders()
	}
	return n
}

// addressMismatch: order o names billing and shipping countries, and they differ.
func addressMismatch(o *pb.OrderPlaced) bool {
	return o.GetBillingCountry() != "" && o.GetShippingCountry() != "" && o.GetBillingCountry() != o.GetShippingCountry()
}
