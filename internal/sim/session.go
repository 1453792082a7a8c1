package sim

import (
	"time"

	"github.com/bytebasket/bytebasket/internal/event"
	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
)

// Funnel parameters of honest sessions. With these, about 3% of sessions order and about
// 70% of sessions that add to the cart never order.
const (
	meanExtraBrowse = 8     // browse steps beyond the first (geometric)
	maxBrowse       = 60    // caps the geometric tail
	pCartReturning  = 0.115 // P(add to cart) for a returning user's session
	pCartNew        = 0.075
	meanExtraAdds   = 0.5 // cart adds beyond the first (geometric)
	maxAdds         = 6
	pEdit           = 0.2 // P(a cart add is followed by a remove or quantity change)
	pCheckout       = 0.45
	pOrder          = 0.65 // given checkout
	pPayFail        = 0.03
	pRefund         = 0.06  // of authorized orders
	pChargeback     = 0.004 // of authorized, unrefunded orders
	// pFraudChargeback: of a fraud scenario's authorized orders, those the real card holder
	// disputes (the labels a shop learns from, days later); the rest go unnoticed.
	pFraudChargeback = 0.75
)

// Scenarios. The names are the FraudLabel.scenario values.
const (
	scHonest = iota
	scCardTesting
	scTakeover
	scSharedFingerprint
	scHighValueFirstOrder
	numScenarios
)

// Scenario names, as they appear in FraudLabel.Scenario.
const (
	ScenarioCardTesting         = "card_testing"
	ScenarioAccountTakeover     = "account_takeover"
	ScenarioSharedFingerprint   = "shared_fingerprint"
	ScenarioHighValueFirstOrder = "high_value_first_order"
)

// Scenarios lists every FraudLabel.Scenario value the simulator emits.
var Scenarios = []string{ScenarioCardTesting, ScenarioAccountTakeover, ScenarioSharedFingerprint, ScenarioHighValueFirstOrder}

var scenarioNames = [numScenarios]string{
	"", ScenarioCardTesting, ScenarioAccountTakeover, ScenarioSharedFingerprint, ScenarioHighValueFirstOrder,
}

const maxRing = 6

type memberPlan struct {
	browse, adds     int
	fail, chargeback bool
}

// plan fixes everything about an arrival that changes its number of events, so the
// rate calibration in New can average plans instead of simulating sessions.
type plan struct {
	scenario                                int
	user                                    int // population index (honest and takeover)
	browse, adds, edits                     int
	checkout, order, fail, refund, chargebk bool
	attempts                                int // card testing
	ring                                    int
	members                                 [maxRing]memberPlan
	events                                  int
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// fraudArrivalProb returns the per-arrival fraud probability q such that a share f of
// sessions is fraudulent: a shared-fingerprint arrival spawns 3..6 sessions (4.5 on
// average), the other three scenarios one each; cum is the mix (nil: equal shares).
func fraudArrivalProb(f float64, cum []float64) float64 {
	sessionsPerFraudArrival := (3 + 4.5) / 4
	if cum != nil {
		shared := cum[scSharedFingerprint] - cum[scSharedFingerprint-1]
		sessionsPerFraudArrival = 1 + shared*(4.5-1)
	}
	return f / (sessionsPerFraudArrival*(1-f) + f)
}

// cumulativeMix turns scenario weights into cumulative shares indexed by scenario (index 0,
// honest, is 0); nil for nil.
func cumulativeMix(mix map[string]float64) []float64 {
	if mix == nil {
		return nil
	}
	total := 0.0
	for _, w := range mix {
		total += w
	}
	cum := make([]float64, numScenarios)
	for sc := 1; sc < numScenarios; sc++ {
		cum[sc] = cum[sc-1] + mix[scenarioNames[sc]]/total
	}
	return cum
}

func (s *Simulator) drawPlan(p *plan) {
	*p = plan{}
	if s.chance(s.pFraud) {
		if s.mixCum == nil {
			p.scenario = 1 + s.intn(numScenarios-1)
		} else {
			u := s.float()
			p.scenario = numScenarios - 1 // u at the very top
			for sc := 1; sc < numScenarios; sc++ {
				if u < s.mixCum[sc] {
					p.scenario = sc
					break
				}
			}
		}
	}
	switch p.scenario {
	case scHonest:
		p.user = s.pop.pick.draw(s.u64())
		pc := pCartNew
		if s.pop.users[p.user].returning {
			pc = pCartReturning
		}
		p.browse = 1 + min(s.geometric(meanExtraBrowse), maxBrowse)
		if s.chance(pc) {
			p.adds = 1 + min(s.geometric(meanExtraAdds), maxAdds-1)
			for range p.adds {
				p.edits += b2i(s.chance(pEdit))
			}
			p.checkout = s.chance(pCheckout)
			p.order = p.checkout && s.chance(pOrder)
		}
		// Every cart add follows a product view; these views come on top of browsing.
		p.browse += p.adds
		if p.order {
			p.fail = s.chance(pPayFail)
			p.refund = !p.fail && s.chance(pRefund)
			p.chargebk = !p.fail && !p.refund && s.chance(pChargeback)
		}
		p.events = 1 + p.browse + p.adds + p.edits + 2*b2i(p.checkout) + 2*b2i(p.order) +
			b2i(p.refund) + b2i(p.chargebk)
	case scCardTesting:
		p.attempts = s.between(10, 30)
		p.events = 1 + 2*p.attempts // landing, then an order and a payment per attempt
	case scTakeover:
		p.user = int(s.pop.returning[s.intn(len(s.pop.returning))])
		p.adds = s.between(1, 2)
		p.browse = s.between(1, 3) + p.adds
		p.fail = s.chance(0.1)
		p.chargebk = !p.fail && s.chance(pFraudChargeback)
		// landing (login), account page, browse, adds, cart page, checkout, order, payment
		p.events = 2 + p.browse + p.adds + 4 + b2i(p.chargebk)
	case scHighValueFirstOrder:
		p.adds = s.between(1, 3)
		p.browse = s.between(1, 3) + p.adds
		p.fail = s.chance(0.15)
		p.chargebk = !p.fail && s.chance(pFraudChargeback)
		p.events = 1 + p.browse + p.adds + 4 + b2i(p.chargebk)
	case scSharedFingerprint:
		p.ring = s.between(3, maxRing)
		for i := range p.ring {
			m := &p.members[i]
			m.adds = 1
			m.browse = s.between(0, 2) + m.adds
			m.fail = s.chance(0.1)
			m.chargeback = !m.fail && s.chance(pFraudChargeback)
			p.events += 1 + m.browse + m.adds + 4 + b2i(m.chargeback)
		}
	}
}

// Phases of a session: each Next emits the event of the current phase and moves on.
const (
	phLanding = iota
	phAccount // takeover: the attacker changes the shipping address first
	phBrowse
	phCartAdd
	phEdit
	phCartPage
	phCheckout
	phOrder
	phPayment
	phRefund
	phChargeback
)

const maxCart = 8

type cartLine struct {
	prod int32
	qty  uint32
}

// session is a heap entry: a shopper's visit, or a delayed refund or chargeback.
type session struct {
	next     int64
	done     bool
	sc       int
	scenario string // "" for honest sessions
	phase    int

	user *user
	dev  *device
	geo  uint8 // where the traffic comes from: Context.country
	ship uint8 // shipping country
	cur  uint8
	id   string
	ref  string // the current page: the referrer of the next event
	fp   string

	lastProd, curCat                int32
	comp                            int32 // the complement to view next (tastes.go), -1 for none
	stapled                         bool  // the user's staple was viewed this session
	browseLeft, addsLeft, editsLeft int
	checkout, order, fail           bool
	refund, chargeback              bool
	attemptsLeft                    int

	cartID string
	cart   [maxCart]cartLine
	ncart  int
	wish   [4]int32
	nwish  int

	orderID string
	total   int64
	amount  int64 // refund or chargeback amount
}

func (s *Simulator) get() *session {
	if n := len(s.free); n > 0 {
		ss := s.free[n-1]
		s.free = s.free[:n-1]
		return ss
	}
	return new(session)
}

func (s *Simulator) release(ss *session) {
	*ss = session{}
	s.free = append(s.free, ss)
}

// begin initialises a visit by u on dev starting at t.
func (s *Simulator) begin(ss *session, t int64, sc int, u *user, dev *device) {
	ss.next = t
	ss.sc, ss.scenario = sc, scenarioNames[sc]
	ss.phase = phLanding
	ss.user, ss.dev = u, dev
	ss.geo, ss.ship = u.country, u.country
	ss.cur = countries[u.country].cur
	ss.id = s.ids.id(s.pcg)
	ss.lastProd, ss.curCat, ss.comp, ss.stapled = -1, -1, -1, false
	ss.fp = u.fp[s.intn(int(u.nfp))]
}

func (ss *session) applyPlan(browse, adds, edits int, checkout, order, fail, refund, chargeback bool) {
	ss.browseLeft, ss.addsLeft, ss.editsLeft = browse, adds, edits
	ss.checkout, ss.order, ss.fail, ss.refund, ss.chargeback = checkout, order, fail, refund, chargeback
}

// arrive starts the session(s) of one arrival at t.
func (s *Simulator) arrive(t int64) {
	p := &s.plan
	s.drawPlan(p)
	switch p.scenario {
	case scHonest:
		u := &s.pop.users[p.user]
		ss := s.get()
		s.begin(ss, t, scHonest, u, &u.dev[s.intn(int(u.ndev))])
		ss.applyPlan(p.browse, p.adds, p.edits, p.checkout, p.order, p.fail, p.refund, p.chargebk)
		s.schedule(ss)
	case scCardTesting:
		// A fresh account with a card never seen before, scripted from a browser.
		u := s.newAccount(uint8(s.pop.country.draw(s.u64())), platWeb)
		ss := s.get()
		s.begin(ss, t, scCardTesting, u, &u.dev[0])
		ss.attemptsLeft = p.attempts
		s.schedule(ss)
	case scTakeover:
		// The victim's account and saved card, from a new device in another country.
		u := &s.pop.users[p.user]
		geo := uint8(firstForeign + s.intn(len(countries)-firstForeign))
		plat := uint8(platWeb)
		if s.chance(0.2) {
			plat = platAndroid
		}
		dev := new(device)
		*dev = s.newDevice(plat, geo)
		ss := s.get()
		s.begin(ss, t, scTakeover, u, dev)
		ss.geo, ss.ship = geo, geo
		ss.fp = u.fp[0]
		ss.applyPlan(p.browse, p.adds, 0, true, true, p.fail, false, p.chargebk)
		s.schedule(ss)
	case scHighValueFirstOrder:
		u := s.newAccount(uint8(s.pop.country.draw(s.u64())), uint8(s.pop.platform.draw(s.u64())))
		ss := s.get()
		s.begin(ss, t, scHighValueFirstOrder, u, &u.dev[0])
		if s.chance(0.5) {
			ss.ship = uint8(s.pop.country.draw(s.u64())) // reshipping to another market
		}
		ss.applyPlan(p.browse, p.adds, 0, true, true, p.fail, false, p.chargebk)
		s.schedule(ss)
	case scSharedFingerprint:
		// A ring of fresh accounts in one market paying with one card, minutes apart,
		// often from one address.
		fp := s.newFingerprint()
		geo := uint8(s.pop.country.draw(s.u64()))
		sharedIP := ""
		if s.chance(0.5) {
			sharedIP = s.newIP(geo)
		}
		at := t
		for i := range p.ring {
			m := &p.members[i]
			if i > 0 {
				at += s.durUniform(30*time.Second, 5*time.Minute)
			}
			u := s.newAccount(geo, uint8(s.pop.platform.draw(s.u64())))
			if sharedIP != "" {
				u.dev[0].ip = sharedIP
			}
			ss := s.get()
			s.begin(ss, at, scSharedFingerprint, u, &u.dev[0])
			ss.fp = fp
			ss.applyPlan(m.browse, m.adds, 0, true, true, m.fail, false, m.chargeback)
			s.schedule(ss)
		}
	}
}

// think returns the pause before a shopper's next action.
func (s *Simulator) think(ss *session) int64 {
	if ss.sc != scHonest {
		return s.durUniform(1500*time.Millisecond, 8*time.Second) // scripted or hurried
	}
	return s.durLogNormal(15*time.Second, 0.9, time.Second, 90*time.Second)
}

// emit builds the event of ss's current phase at t and advances ss.
func (s *Simulator) emit(ss *session, t int64) *pb.Envelope {
	switch ss.phase {
	case phLanding:
		return s.landing(ss, t)
	case phAccount:
		e := s.pageView(ss, t, "account", shopURL+"/account/addresses")
		s.afterStep(ss, t)
		return e
	case phBrowse:
		return s.browse(ss, t)
	case phCartAdd:
		return s.cartAdd(ss, t)
	case phEdit:
		return s.cartEdit(ss, t)
	case phCartPage:
		e := s.pageView(ss, t, "cart", shopURL+"/cart")
		ss.phase, ss.next = phCheckout, t+s.think(ss)
		return e
	case phCheckout:
		return s.checkoutStarted(ss, t)
	case phOrder:
		return s.orderPlaced(ss, t)
	case phPayment:
		return s.payment(ss, t)
	case phRefund:
		ss.done = true
		return s.refundEvent(ss, t)
	default: // phChargeback
		ss.done = true
		return s.chargebackEvent(ss, t)
	}
}

// afterStep moves ss on after a browsing-type event: more browsing, then the cart page
// if the shopper checks out, else the session ends.
func (s *Simulator) afterStep(ss *session, t int64) {
	switch {
	case ss.browseLeft > 0:
		ss.phase = phBrowse
	case ss.checkout:
		ss.phase = phCartPage
	default:
		ss.done = true
		return
	}
	ss.next = t + s.think(ss)
}

func (s *Simulator) envelope(ss *session, t int64, src pb.Source) *pb.Envelope {
	e := s.a.env.get()
	e.EventId = s.ids.id(s.pcg)
	ts := s.a.ts.get()
	ns := s.startNs + t
	ts.Seconds, ts.Nanos = ns/1e9, int32(ns%1e9)
	e.EventTime = ts
	e.SchemaVersion = event.SchemaVersion
	e.Source = src
	e.UserId = ss.user.id
	e.SessionId = ss.id
	return e
}

// activity starts a user-activity envelope and its client context.
func (s *Simulator) activity(ss *session, t int64) (*pb.Envelope, *pb.Context) {
	e := s.envelope(ss, t, platforms[ss.dev.plat].src)
	c := s.a.ctx.get()
	c.DeviceId, c.Ip, c.UserAgent = ss.dev.id, ss.dev.ip, ss.dev.ua
	c.Referrer = ss.ref
	c.Country = countries[ss.geo].code
	return e, c
}

func (s *Simulator) pageView(ss *session, t int64, pageType, url string) *pb.Envelope {
	e, c := s.activity(ss, t)
	pv := s.a.pageView.get()
	pv.Context, pv.Url, pv.PageType = c, url, pageType
	w := s.a.wPageView.get()
	w.PageView = pv
	e.Payload = w
	ss.ref = url
	return e
}

var otherPages = [...]struct{ typ, url string }{
	{"home", shopURL + "/"}, {"deals", shopURL + "/deals"}, {"help", shopURL + "/help"},
	{"account", shopURL + "/account"}, {"orders", shopURL + "/account/orders"},
}

func (s *Simulator) landing(ss *session, t int64) *pb.Envelope {
	refs := platforms[ss.dev.plat].referrers
	ss.ref = refs[s.intn(len(refs))]
	var e *pb.Envelope
	switch {
	case ss.sc == scTakeover:
		e = s.pageView(ss, t, "login", shopURL+"/account/login")
		ss.phase, ss.next = phAccount, t+s.think(ss)
		return e
	case ss.sc != scHonest:
		e = s.pageView(ss, t, "home", shopURL+"/")
	default:
		switch u := s.float(); {
		case u < 0.45:
			e = s.pageView(ss, t, "home", shopURL+"/")
		case u < 0.8:
			ss.curCat = s.chooseCategory(ss)
			e = s.pageView(ss, t, "category", s.cat.cats[ss.curCat].url)
		default:
			e = s.pageView(ss, t, "deals", shopURL+"/deals")
		}
	}
	if ss.sc == scCardTesting {
		ss.phase, ss.next = phOrder, t+s.think(ss)
		return e
	}
	s.afterStep(ss, t)
	return e
}

// viewProduct picks the product a shopper looks at: scripted fraud goes for expensive
// items; honest shoppers follow their tastes (a complement, a staple: tastes.go), often
// stay in the category they are in, else turn to a favourite category or the shop's
// popularity.
func (s *Simulator) viewProduct(ss *session) int32 {
	if ss.sc == scTakeover || ss.sc == scHighValueFirstOrder {
		return s.cat.pricey[s.intn(len(s.cat.pricey))]
	}
	if ss.sc == scHonest {
		if p, ok := s.tasteView(ss); ok {
			return p
		}
	}
	if ss.curCat >= 0 && s.chance(0.6) {
		return s.inCategory(ss, &s.cat.cats[ss.curCat])
	}
	if ss.sc == scHonest && s.chance(tasteShare) {
		return s.inCategory(ss, &s.cat.cats[ss.user.tastes[s.intn(2)]])
	}
	return int32(s.cat.pick.draw(s.u64()))
}

func (s *Simulator) browse(ss *session, t int64) *pb.Envelope {
	// Views must remain for the planned cart adds, which each follow a view.
	forceView := ss.addsLeft >= ss.browseLeft || ss.sc != scHonest
	ss.browseLeft--
	u := s.float()
	if forceView || u < 0.62 {
		p := s.viewProduct(ss)
		pr := &s.cat.products[p]
		e, c := s.activity(ss, t)
		v := s.a.productView.get()
		v.Context, v.ProductId, v.CategoryId = c, pr.id, s.cat.cats[pr.cat].id
		v.PriceMinor, v.Currency = pr.price[ss.cur], currencies[ss.cur].code
		w := s.a.wProductView.get()
		w.ProductView = v
		e.Payload = w
		ss.lastProd, ss.curCat, ss.ref = p, pr.cat, pr.url
		if ss.addsLeft > 0 && (ss.addsLeft > ss.browseLeft || s.chance(0.4)) {
			ss.phase, ss.next = phCartAdd, t+s.think(ss)
			return e
		}
		s.afterStep(ss, t)
		return e
	}
	var e *pb.Envelope
	switch {
	case u < 0.76:
		if ss.curCat < 0 || s.chance(0.5) {
			ss.curCat = s.chooseCategory(ss)
		}
		e = s.pageView(ss, t, "category", s.cat.cats[ss.curCat].url)
	case u < 0.88:
		e = s.search(ss, t)
	case u < 0.93:
		pg := &otherPages[s.intn(len(otherPages))]
		e = s.pageView(ss, t, pg.typ, pg.url)
	case u < 0.98 || ss.nwish == 0:
		p := ss.lastProd
		if p < 0 {
			p = int32(s.cat.pick.draw(s.u64()))
		}
		e2, c := s.activity(ss, t)
		wa := s.a.wishAdd.get()
		wa.Context, wa.ProductId = c, s.cat.products[p].id
		w := s.a.wWishAdd.get()
		w.WishlistAdd = wa
		e2.Payload = w
		if ss.nwish < len(ss.wish) {
			ss.wish[ss.nwish] = p
			ss.nwish++
		}
		e = e2
	default:
		ss.nwish--
		e2, c := s.activity(ss, t)
		wr := s.a.wishRemove.get()
		wr.Context, wr.ProductId = c, s.cat.products[ss.wish[ss.nwish]].id
		w := s.a.wWishRemove.get()
		w.WishlistRemove = wr
		e2.Payload = w
		e = e2
	}
	s.afterStep(ss, t)
	return e
}

func (s *Simulator) search(ss *session, t int64) *pb.Envelope {
	if ss.curCat < 0 || s.chance(0.5) {
		ss.curCat = s.chooseCategory(ss)
	}
	ct := &s.cat.cats[ss.curCat]
	q := s.intn(queriesPerCategory)
	e, c := s.activity(ss, t)
	sr := s.a.search.get()
	sr.Context, sr.Query = c, ct.queries[q]
	if !s.chance(0.06) { // some searches find nothing
		sr.Results = uint32(1 + s.intn(min(480, 4*len(ct.products))))
	}
	w := s.a.wSearch.get()
	w.Search = sr
	e.Payload = w
	ss.ref = ct.searchURLs[q]
	return e
}

// highValueTarget is the subtotal, in ss's currency, a scripted fraud cart must exceed:
// over 1000 (takeover: 600) in both the local currency and USD, times scale.
func highValueTarget(ss *session, scale float64) int64 {
	base := 100000.0
	if ss.sc == scTakeover {
		base = 60000
	}
	return int64(base*scale*max(1, currencies[ss.cur].perUSD)) + 1
}

func (ss *session) subtotal(c *catalog) int64 {
	var sum int64
	for _, l := range ss.cart[:ss.ncart] {
		sum += int64(l.qty) * c.products[l.prod].price[ss.cur]
	}
	return sum
}

func (s *Simulator) cartAdd(ss *session, t int64) *pb.Envelope {
	p := ss.lastProd
	pr := &s.cat.products[p]
	unit := pr.price[ss.cur]
	qty := uint32(1)
	switch ss.sc {
	case scHonest:
		if u := s.float(); u > 0.95 {
			qty = 3
		} else if u > 0.8 {
			qty = 2
		}
	case scTakeover, scHighValueFirstOrder:
		if ss.addsLeft == 1 { // the last add tops the cart up past the target
			if short := highValueTarget(ss, s.cfg.FraudAmount) - ss.subtotal(&s.cat); short > 0 {
				qty = uint32(max(1, (short+unit-1)/unit))
			}
		}
	}
	if ss.cartID == "" {
		ss.cartID = s.ids.id(s.pcg)
	}
	merged := false
	for i := range ss.cart[:ss.ncart] {
		if ss.cart[i].prod == p {
			ss.cart[i].qty += qty
			merged = true
			break
		}
	}
	if !merged && ss.ncart < maxCart {
		ss.cart[ss.ncart] = cartLine{prod: p, qty: qty}
		ss.ncart++
	}
	e, c := s.activity(ss, t)
	ca := s.a.cartAdd.get()
	ca.Context, ca.CartId, ca.ProductId, ca.CategoryId = c, ss.cartID, pr.id, s.cat.cats[pr.cat].id
	ca.Quantity, ca.UnitPriceMinor, ca.Currency = qty, unit, currencies[ss.cur].code
	w := s.a.wCartAdd.get()
	w.CartAdd = ca
	e.Payload = w
	ss.addsLeft--
	if ss.sc == scHonest {
		ss.comp = s.cat.comp[p]
	}
	// Spread the planned edits uniformly over the adds.
	if ss.editsLeft > 0 && s.float()*float64(ss.addsLeft+1) < float64(ss.editsLeft) {
		ss.phase, ss.next = phEdit, t+s.think(ss)
		return e
	}
	s.afterStep(ss, t)
	return e
}

func (s *Simulator) cartEdit(ss *session, t int64) *pb.Envelope {
	ss.editsLeft--
	e, c := s.activity(ss, t)
	if ss.ncart >= 2 && s.chance(0.4) {
		i := s.intn(ss.ncart)
		l := ss.cart[i]
		copy(ss.cart[i:ss.ncart], ss.cart[i+1:ss.ncart])
		ss.ncart--
		cr := s.a.cartRemove.get()
		cr.Context, cr.CartId, cr.ProductId, cr.Quantity = c, ss.cartID, s.cat.products[l.prod].id, l.qty
		w := s.a.wCartRemove.get()
		w.CartRemove = cr
		e.Payload = w
	} else {
		l := &ss.cart[ss.ncart-1]
		old := l.qty
		if old == 1 || s.chance(0.6) {
			l.qty++
		} else {
			l.qty--
		}
		qc := s.a.cartQty.get()
		qc.Context, qc.CartId, qc.ProductId = c, ss.cartID, s.cat.products[l.prod].id
		qc.OldQuantity, qc.NewQuantity = old, l.qty
		w := s.a.wCartQty.get()
		w.CartQuantityChange = qc
		e.Payload = w
	}
	s.afterStep(ss, t)
	return e
}

func (s *Simulator) checkoutStarted(ss *session, t int64) *pb.Envelope {
	e, c := s.activity(ss, t)
	co := s.a.checkout.get()
	var items uint32
	for _, l := range ss.cart[:ss.ncart] {
		items += l.qty
	}
	co.Context, co.CartId, co.ItemCount = c, ss.cartID, items
	co.SubtotalMinor, co.Currency = ss.subtotal(&s.cat), currencies[ss.cur].code
	w := s.a.wCheckout.get()
	w.CheckoutStarted = co
	e.Payload = w
	ss.ref = shopURL + "/checkout"
	if ss.order {
		ss.phase, ss.next = phOrder, t+s.think(ss)
	} else {
		ss.done = true
	}
	return e
}

var paymentMethods = [...][]string{
	{"card", "card", "card", "card", "card", "card", "card", "paypal", "paypal", "apple_pay"},
	{"apple_pay", "apple_pay", "apple_pay", "apple_pay", "card", "card", "card", "card", "paypal", "paypal"},
	{"google_pay", "google_pay", "google_pay", "google_pay", "card", "card", "card", "card", "card", "paypal"},
}

func (s *Simulator) orderPlaced(ss *session, t int64) *pb.Envelope {
	cur := currencies[ss.cur].code
	o := s.a.order.get()
	o.OrderId = s.ids.id(s.pcg)
	var sub, ship, tax int64
	if ss.sc == scCardTesting {
		// One cheap digital item per attempt, each from a fresh cart: no shipping or tax.
		ss.cartID = s.ids.id(s.pcg)
		p := s.cat.cheap[s.intn(len(s.cat.cheap))]
		li := s.a.item.get()
		pr := &s.cat.products[p]
		li.ProductId, li.CategoryId, li.Quantity, li.UnitPriceMinor = pr.id, s.cat.cats[pr.cat].id, 1, pr.price[ss.cur]
		o.Items = []*pb.LineItem{li}
		sub = li.UnitPriceMinor
		o.PaymentMethod = "card"
	} else {
		o.Items = make([]*pb.LineItem, ss.ncart)
		for i, l := range ss.cart[:ss.ncart] {
			pr := &s.cat.products[l.prod]
			li := s.a.item.get()
			li.ProductId, li.CategoryId, li.Quantity, li.UnitPriceMinor = pr.id, s.cat.cats[pr.cat].id, l.qty, pr.price[ss.cur]
			o.Items[i] = li
			sub += int64(l.qty) * li.UnitPriceMinor
		}
		if sub < 5000 { // free shipping from 50.00
			ship = 499
		}
		tax = sub * countries[ss.ship].taxBP / 10000
		pm := paymentMethods[ss.dev.plat]
		o.PaymentMethod = pm[s.intn(len(pm))]
		if ss.sc != scHonest {
			o.PaymentMethod = "card"
		}
	}
	ss.total = sub + ship + tax
	o.CartId = ss.cartID
	o.Subtotal, o.Shipping, o.Tax, o.Total = s.a.moneyOf(sub, cur), s.a.moneyOf(ship, cur), s.a.moneyOf(tax, cur), s.a.moneyOf(ss.total, cur)
	o.PaymentFingerprint = ss.fp
	o.BillingCountry = countries[ss.user.country].code
	o.ShippingCountry = countries[ss.ship].code
	o.DeviceId, o.Ip = ss.dev.id, ss.dev.ip
	e := s.envelope(ss, t, platforms[ss.dev.plat].src)
	w := s.a.wOrder.get()
	w.OrderPlaced = o
	e.Payload = w
	ss.orderID = o.OrderId
	ss.phase, ss.next = phPayment, t+s.durUniform(300*time.Millisecond, 3*time.Second)
	return e
}

var (
	failReasons        = [...]string{"card_declined", "card_declined", "insufficient_funds", "expired_card", "do_not_honor", "authentication_required"}
	cardTestingReasons = [...]string{"card_declined", "card_declined", "incorrect_cvc", "incorrect_number", "do_not_honor"}
	refundReasons      = [...]string{"changed_mind", "wrong_size", "damaged", "not_as_described", "late_delivery"}
	chargebackReasons  = [...]string{"product_not_received", "duplicate", "credit_not_processed", "unrecognized", "fraudulent"}
)

func (s *Simulator) payment(ss *session, t int64) *pb.Envelope {
	e := s.envelope(ss, t, pb.Source_SOURCE_BACKEND)
	cur := currencies[ss.cur].code
	fail := ss.fail
	if ss.sc == scCardTesting {
		fail = s.chance(0.75) // most stolen card numbers do not work
	}
	if fail {
		pf := s.a.payFail.get()
		pf.OrderId, pf.PaymentId, pf.Amount, pf.PaymentFingerprint = ss.orderID, s.ids.id(s.pcg), s.a.moneyOf(ss.total, cur), ss.fp
		if ss.sc == scCardTesting {
			pf.Reason = cardTestingReasons[s.intn(len(cardTestingReasons))]
		} else {
			pf.Reason = failReasons[s.intn(len(failReasons))]
		}
		w := s.a.wPayFail.get()
		w.PaymentFailed = pf
		e.Payload = w
	} else {
		pa := s.a.payAuth.get()
		pa.OrderId, pa.PaymentId, pa.Amount, pa.PaymentFingerprint = ss.orderID, s.ids.id(s.pcg), s.a.moneyOf(ss.total, cur), ss.fp
		w := s.a.wPayAuth.get()
		w.PaymentAuthorized = pa
		e.Payload = w
		if ss.refund {
			amount := ss.total
			if s.chance(0.35) { // partial refund
				amount = amount * int64(s.between(20, 80)) / 100
			}
			s.later(ss, phRefund, t+s.durLogNormal(6*time.Hour, 0.8, 20*time.Minute, 5*24*time.Hour), amount)
		}
		if ss.chargeback {
			s.later(ss, phChargeback, t+s.durLogNormal(48*time.Hour, 0.6, 6*time.Hour, 20*24*time.Hour), ss.total)
		}
	}
	if ss.sc == scCardTesting && ss.attemptsLeft > 1 {
		ss.attemptsLeft--
		ss.phase, ss.next = phOrder, t+s.durUniform(1500*time.Millisecond, 5*time.Second)
	} else {
		ss.done = true
	}
	return e
}

// later queues a refund or chargeback of ss's order at t: a separate heap entry, since
// the shopper's session is long over by then.
func (s *Simulator) later(ss *session, phase int, t int64, amount int64) {
	d := s.get()
	d.next, d.phase, d.sc, d.scenario = t, phase, ss.sc, ss.scenario
	d.user, d.id, d.cur, d.orderID, d.amount = ss.user, ss.id, ss.cur, ss.orderID, amount
	s.schedule(d)
}

func (s *Simulator) refundEvent(ss *session, t int64) *pb.Envelope {
	e := s.envelope(ss, t, pb.Source_SOURCE_BACKEND)
	r := s.a.refund.get()
	r.OrderId, r.RefundId, r.Amount = ss.orderID, s.ids.id(s.pcg), s.a.moneyOf(ss.amount, currencies[ss.cur].code)
	r.Reason = refundReasons[s.intn(len(refundReasons))]
	w := s.a.wRefund.get()
	w.Refund = r
	e.Payload = w
	return e
}

func (s *Simulator) chargebackEvent(ss *session, t int64) *pb.Envelope {
	e := s.envelope(ss, t, pb.Source_SOURCE_BACKEND)
	c := s.a.chargeback.get()
	c.OrderId, c.ChargebackId, c.Amount = ss.orderID, s.ids.id(s.pcg), s.a.moneyOf(ss.amount, currencies[ss.cur].code)
	if ss.sc != scHonest {
		c.Reason = "fraudulent" // the real card holder disputes it
	} else {
		c.Reason = chargebackReasons[s.intn(len(chargebackReasons))]
	}
	w := s.a.wChargeback.get()
	w.Chargeback = c
	e.Payload = w
	return e
}

// label is the ground truth for an event of a fraud scenario.
func (s *Simulator) label(ss *session, e *pb.Envelope) *pb.FraudLabel {
	var orderID string
	switch p := e.Payload.(type) {
	case *pb.Envelope_OrderPlaced:
		orderID = p.OrderPlaced.OrderId
	case *pb.Envelope_PaymentAuthorized:
		orderID = p.PaymentAuthorized.OrderId
	case *pb.Envelope_PaymentFailed:
		orderID = p.PaymentFailed.OrderId
	case *pb.Envelope_Chargeback:
		orderID = p.Chargeback.OrderId
	case *pb.Envelope_Refund:
		orderID = p.Refund.OrderId
	}
	ts := s.a.ts.get()
	ts.Seconds, ts.Nanos = e.EventTime.Seconds, e.EventTime.Nanos
	return &pb.FraudLabel{EventId: e.EventId, UserId: e.UserId, OrderId: orderID, Scenario: ss.scenario, EventTime: ts, Kind: string(event.KindOf(e))}
}
