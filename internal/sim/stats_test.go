package sim

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/bytebasket/bytebasket/internal/event"
	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
)

// The statistics below are computed from the emitted events and labels only.

type sessionStats struct {
	user      string
	first     time.Time
	last      time.Time // of its user-activity events
	events    int
	source    pb.Source // of the first event
	cartAdd   bool
	orders    int
	scenario  string // from labels; "" for honest
	labeled   int
	unlabeled int
	devices   []string
	countries []string
}

type orderStats struct {
	session, user, fp, currency string
	billing, shipping           string
	total, subtotal             int64
	time                        time.Time
	failed                      bool
}

type runStats struct {
	events           int
	first, last      time.Time
	sessions         map[string]*sessionStats
	orders           map[string]*orderStats
	productViews     map[string]int
	activityBySource map[pb.Source]int
	userFirstSession map[string]string
	// honestDevices are the devices each user was seen on in honest sessions.
	honestDevices map[string]map[string]bool
	labels        map[string]int // by scenario
	kinds         map[event.Kind]int
	minutes       []int // events per simulated minute since Start
	problems      []string
}

func (r *runStats) problemf(format string, args ...any) {
	if len(r.problems) < 20 {
		r.problems = append(r.problems, fmt.Sprintf(format, args...))
	}
}

// orderIDOf returns the order a transaction event refers to.
func orderIDOf(e *pb.Envelope) string {
	switch p := e.GetPayload().(type) {
	case *pb.Envelope_OrderPlaced:
		return p.OrderPlaced.GetOrderId()
	case *pb.Envelope_PaymentAuthorized:
		return p.PaymentAuthorized.GetOrderId()
	case *pb.Envelope_PaymentFailed:
		return p.PaymentFailed.GetOrderId()
	case *pb.Envelope_Refund:
		return p.Refund.GetOrderId()
	case *pb.Envelope_Chargeback:
		return p.Chargeback.GetOrderId()
	}
	return ""
}

func contextOf(e *pb.Envelope) *pb.Context {
	switch p := e.GetPayload().(type) {
	case *pb.Envelope_PageView:
		return p.PageView.GetContext()
	case *pb.Envelope_ProductView:
		return p.ProductView.GetContext()
	case *pb.Envelope_Search:
		return p.Search.GetContext()
	case *pb.Envelope_WishlistAdd:
		return p.WishlistAdd.GetContext()
	case *pb.Envelope_WishlistRemove:
		return p.WishlistRemove.GetContext()
	case *pb.Envelope_CartAdd:
		return p.CartAdd.GetContext()
	case *pb.Envelope_CartRemove:
		return p.CartRemove.GetContext()
	case *pb.Envelope_CartQuantityChange:
		return p.CartQuantityChange.GetContext()
	case *pb.Envelope_CheckoutStarted:
		return p.CheckoutStarted.GetContext()
	}
	return nil
}

var scenarioSet = []string{ScenarioCardTesting, ScenarioAccountTakeover, ScenarioSharedFingerprint, ScenarioHighValueFirstOrder}

func collect(t *testing.T, cfg Config, n int) *runStats {
	t.Helper()
	s := mustNew(t, cfg)
	r := &runStats{
		sessions: map[string]*sessionStats{}, orders: map[string]*orderStats{},
		productViews: map[string]int{}, activityBySource: map[pb.Source]int{},
		userFirstSession: map[string]string{}, honestDevices: map[string]map[string]bool{},
		labels: map[string]int{}, kinds: map[event.Kind]int{},
	}
	seenIDs := make(map[string]bool, n)
	var buf []byte
	for i := range n {
		e, l := s.Next()
		ts := e.GetEventTime().AsTime()
		if err := event.Validate(e, ts, 0); err != nil {
			r.problemf("event %d invalid: %v", i, err)
		}
		if e.GetIngestTime() != nil || e.GetSchemaVersion() != event.SchemaVersion || e.GetSessionId() == "" {
			r.problemf("event %d: ingest time set, wrong schema version or no session", i)
		}
		if !uuidV4.MatchString(e.GetEventId()) || seenIDs[e.GetEventId()] {
			r.problemf("event %d: id %q not a fresh UUIDv4", i, e.GetEventId())
		}
		seenIDs[e.GetEventId()] = true
		var err error
		if buf, err = event.AppendEncode(buf[:0], e); err != nil {
			r.problemf("encode: %v", err)
		}
		for _, name := range scenarioSet {
			if bytes.Contains(buf, []byte(name)) {
				r.problemf("event %d carries ground truth %q", i, name)
			}
		}
		if i == 0 {
			r.first = ts
		} else if ts.Before(r.last) {
			r.problemf("event %d at %s goes back in time from %s", i, ts, r.last)
		}
		r.last = ts
		r.events++
		if m := int(ts.Sub(cfg.Start) / time.Minute); m >= 0 {
			for len(r.minutes) <= m {
				r.minutes = append(r.minutes, 0)
			}
			r.minutes[m]++
		}

		ss := r.sessions[e.GetSessionId()]
		if ss == nil {
			ss = &sessionStats{user: e.GetUserId(), first: ts, source: e.GetSource()}
			r.sessions[e.GetSessionId()] = ss
			if _, ok := r.userFirstSession[e.GetUserId()]; !ok {
				r.userFirstSession[e.GetUserId()] = e.GetSessionId()
			}
		}
		if ss.user != e.GetUserId() {
			r.problemf("session %s has users %s and %s", e.GetSessionId(), ss.user, e.GetUserId())
		}
		if l != nil {
			ss.labeled++
			r.labels[l.GetScenario()]++
			if ss.scenario != "" && ss.scenario != l.GetScenario() {
				r.problemf("session %s labeled %s and %s", e.GetSessionId(), ss.scenario, l.GetScenario())
			}
			ss.scenario = l.GetScenario()
			if l.GetEventId() != e.GetEventId() || l.GetUserId() != e.GetUserId() ||
				l.GetOrderId() != orderIDOf(e) || !l.GetEventTime().AsTime().Equal(ts) {
				r.problemf("label %v does not describe its event %s", l, e.GetEventId())
			}
			if !slices.Contains(scenarioSet, l.GetScenario()) {
				r.problemf("unknown scenario %q", l.GetScenario())
			}
		} else {
			ss.unlabeled++
		}

		src := e.GetSource()
		r.kinds[event.KindOf(e)]++
		ss.events++
		if c := contextOf(e); c != nil {
			ss.last = ts
			r.activityBySource[src]++
			if c.GetDeviceId() == "" || c.GetIp() == "" || c.GetUserAgent() == "" || c.GetReferrer() == "" || len(c.GetCountry()) != 2 {
				r.problemf("event %d: incomplete context %v", i, c)
			}
			if src == pb.Source_SOURCE_BACKEND || src == pb.Source_SOURCE_UNSPECIFIED {
				r.problemf("activity event %d from source %v", i, src)
			}
			if !slices.Contains(ss.devices, c.GetDeviceId()) {
				ss.devices = append(ss.devices, c.GetDeviceId())
			}
			if !slices.Contains(ss.countries, c.GetCountry()) {
				ss.countries = append(ss.countries, c.GetCountry())
			}
			if l == nil {
				m := r.honestDevices[e.GetUserId()]
				if m == nil {
					m = map[string]bool{}
					r.honestDevices[e.GetUserId()] = m
				}
				m[c.GetDeviceId()] = true
			}
		}

		switch p := e.GetPayload().(type) {
		case *pb.Envelope_ProductView:
			r.productViews[p.ProductView.GetProductId()]++
			if p.ProductView.GetPriceMinor() <= 0 || p.ProductView.GetCurrency() == "" || p.ProductView.GetCategoryId() == "" {
				r.problemf("product view %d incomplete", i)
			}
		case *pb.Envelope_CartAdd:
			ss.cartAdd = true
		case *pb.Envelope_OrderPlaced:
			o := p.OrderPlaced
			ss.orders++
			var sub int64
			for _, li := range o.GetItems() {
				sub += int64(li.GetQuantity()) * li.GetUnitPriceMinor()
			}
			cur := o.GetTotal().GetCurrency()
			if len(o.GetItems()) == 0 || sub != o.GetSubtotal().GetAmountMinor() ||
				o.GetTotal().GetAmountMinor() != sub+o.GetShipping().GetAmountMinor()+o.GetTax().GetAmountMinor() ||
				o.GetSubtotal().GetCurrency() != cur || o.GetTax().GetCurrency() != cur || o.GetShipping().GetCurrency() != cur ||
				o.GetPaymentFingerprint() == "" || o.GetPaymentMethod() == "" || o.GetBillingCountry() == "" ||
				o.GetShippingCountry() == "" || o.GetDeviceId() == "" || o.GetIp() == "" || o.GetCartId() == "" {
				r.problemf("order %d inconsistent or incomplete: %v", i, o)
			}
			if src == pb.Source_SOURCE_BACKEND {
				r.problemf("order %d placed from the backend", i)
			}
			r.orders[o.GetOrderId()] = &orderStats{
				session: e.GetSessionId(), user: e.GetUserId(), fp: o.GetPaymentFingerprint(), currency: cur,
				billing: o.GetBillingCountry(), shipping: o.GetShippingCountry(),
				total: o.GetTotal().GetAmountMinor(), subtotal: sub, time: ts,
			}
		case *pb.Envelope_PaymentAuthorized, *pb.Envelope_PaymentFailed, *pb.Envelope_Refund, *pb.Envelope_Chargeback:
			if src != pb.Source_SOURCE_BACKEND {
				r.problemf("event %d: %s from %v, want backend", i, event.KindOf(e), src)
			}
			o := r.orders[orderIDOf(e)]
			if o == nil {
				r.problemf("event %d: %s of unknown order %s", i, event.KindOf(e), orderIDOf(e))
				break
			}
			if o.session != e.GetSessionId() || o.user != e.GetUserId() {
				r.problemf("event %d: %s not in its order's session", i, event.KindOf(e))
			}
			if pf, ok := p.(*pb.Envelope_PaymentFailed); ok {
				o.failed = true
				if pf.PaymentFailed.GetReason() == "" {
					r.problemf("payment failure %d without reason", i)
				}
			}
			if rf, ok := p.(*pb.Envelope_Refund); ok && rf.Refund.GetAmount().GetAmountMinor() > o.total {
				r.problemf("refund %d larger than its order", i)
			}
		}
	}
	for id, ss := range r.sessions {
		if ss.labeled > 0 && ss.unlabeled > 0 {
			r.problemf("fraud session %s has %d unlabeled events", id, ss.unlabeled)
		}
	}
	return r
}

// statsConfig runs slowly in simulated time (20 events/s) so the run spans hours and
// sessions, refunds and fraud rings complete.
var statsConfig = Config{Seed: 42, Start: testStart, Rate: 20, ColdStart: true}

const statsEvents = 400_000

var statsOnce struct {
	sync.Once
	r *runStats
}

// statsRun is shared by the statistics tests: one run, several questions.
func statsRun(t *testing.T) *runStats {
	statsOnce.Do(func() { statsOnce.r = collect(t, statsConfig, statsEvents) })
	if statsOnce.r == nil {
		t.Fatal("statistics run failed")
	}
	return statsOnce.r
}

func TestEventsValidOrderedComplete(t *testing.T) {
	r := statsRun(t)
	if r.events != statsEvents {
		t.Fatalf("collected %d events, want %d", r.events, statsEvents)
	}
	for _, p := range r.problems {
		t.Error(p)
	}
}

// funnel counts sessions started at least an hour before the run ends, so that sessions
// still open at the end do not bias the funnel.
type funnel struct {
	sessions, honest, honestOrdered, carts, cartsOrdered, fraud int
	sources                                                     map[pb.Source]int
	durations                                                   []time.Duration // of honest sessions' activity
	honestEvents                                                int
}

func (r *runStats) funnel() funnel {
	f := funnel{sources: map[pb.Source]int{}}
	cutoff := r.last.Add(-time.Hour)
	for _, ss := range r.sessions {
		if ss.first.After(cutoff) {
			continue
		}
		f.sessions++
		if ss.scenario != "" {
			f.fraud++
			continue
		}
		f.honest++
		f.sources[ss.source]++
		f.durations = append(f.durations, ss.last.Sub(ss.first))
		f.honestEvents += ss.events
		if ss.orders > 0 {
			f.honestOrdered++
		}
		if ss.cartAdd {
			f.carts++
			if ss.orders > 0 {
				f.cartsOrdered++
			}
		}
	}
	return f
}

func TestFunnel(t *testing.T) {
	r := statsRun(t)
	f := r.funnel()
	conversion := float64(f.honestOrdered) / float64(f.honest)
	abandonment := 1 - float64(f.cartsOrdered)/float64(f.carts)
	t.Logf("%d events over %s; %d sessions, %d honest: %d ordered (conversion %.2f%%); %d with a cart add, %d ordered (abandonment %.1f%%)",
		r.events, r.last.Sub(r.first).Round(time.Second), f.sessions, f.honest, f.honestOrdered, 100*conversion,
		f.carts, f.cartsOrdered, 100*abandonment)
	slices.Sort(f.durations)
	median, p90 := f.durations[len(f.durations)/2], f.durations[len(f.durations)*9/10]
	t.Logf("honest sessions: %.1f events on average, duration median %s, p90 %s",
		float64(f.honestEvents)/float64(f.honest), median.Round(time.Second), p90.Round(time.Second))
	if median < time.Minute || median > 10*time.Minute {
		t.Errorf("median session lasts %s, want a few minutes", median)
	}
	if conversion < 0.02 || conversion > 0.04 {
		t.Errorf("conversion of honest sessions = %.2f%%, want 2..4%%", 100*conversion)
	}
	if abandonment < 0.6 || abandonment > 0.8 {
		t.Errorf("cart abandonment = %.1f%%, want 60..80%%", 100*abandonment)
	}
}

// TestEveryKindAppears runs slowly (1 event/s, over a day of simulated time) with much
// fraud, so that the rare, late events appear too: refunds and chargebacks.
func TestEveryKindAppears(t *testing.T) {
	r := collect(t, Config{Seed: 9, Start: testStart, Rate: 1, Diurnal: true, FraudRate: 0.1, ColdStart: true}, 150_000)
	for _, p := range r.problems {
		t.Error(p)
	}
	t.Logf("%d events over %s: %v", r.events, r.last.Sub(r.first).Round(time.Minute), r.kinds)
	for _, k := range []event.Kind{
		event.KindPageView, event.KindProductView, event.KindSearch, event.KindWishlistAdd, event.KindWishlistRemove,
		event.KindCartAdd, event.KindCartRemove, event.KindCartQuantityChange, event.KindCheckoutStarted,
		event.KindOrderPlaced, event.KindPaymentAuthorized, event.KindPaymentFailed, event.KindRefund, event.KindChargeback,
	} {
		if r.kinds[k] == 0 {
			t.Errorf("no %s event", k)
		}
	}
}

func TestEventRate(t *testing.T) {
	r := statsRun(t)
	// Skip the first half hour (no sessions are in flight at Start) and the last, partial minute.
	var n int
	for _, c := range r.minutes[30 : len(r.minutes)-1] {
		n += c
	}
	minutes := len(r.minutes) - 31
	rate := float64(n) / float64(minutes*60)
	t.Logf("mean event rate %.2f/s over %d simulated minutes (configured %.0f)", rate, minutes, statsConfig.Rate)
	if math.Abs(rate-statsConfig.Rate) > 0.05*statsConfig.Rate {
		t.Errorf("mean event rate %.2f/s, want %.0f ± 5%%", rate, statsConfig.Rate)
	}
}

func TestPlatformMix(t *testing.T) {
	r := statsRun(t)
	f := r.funnel()
	var act int
	for _, n := range r.activityBySource {
		act += n
	}
	for _, want := range []struct {
		src   pb.Source
		share float64
	}{{pb.Source_SOURCE_WEB, 0.55}, {pb.Source_SOURCE_IOS, 0.25}, {pb.Source_SOURCE_ANDROID, 0.20}} {
		sess := float64(f.sources[want.src]) / float64(f.honest)
		ev := float64(r.activityBySource[want.src]) / float64(act)
		t.Logf("%v: %.1f%% of honest sessions, %.1f%% of activity events (target %.0f%%)", want.src, 100*sess, 100*ev, 100*want.share)
		if math.Abs(sess-want.share) > 0.03 || math.Abs(ev-want.share) > 0.03 {
			t.Errorf("%v share %.1f%% of sessions, %.1f%% of events; want %.0f%% ± 3", want.src, 100*sess, 100*ev, 100*want.share)
		}
	}
}

func TestPopularityLongTail(t *testing.T) {
	r := statsRun(t)
	counts := make([]int, 0, len(r.productViews))
	var views int
	for _, c := range r.productViews {
		counts = append(counts, c)
		views += c
	}
	slices.SortFunc(counts, func(a, b int) int { return b - a })
	top := statsConfig.withDefaultsMust().Products / 100
	var topViews int
	for _, c := range counts[:top] {
		topViews += c
	}
	topShare := float64(topViews) / float64(views)
	// Log-log slope of the rank-frequency curve between ranks 10 and 1000: about -s for Zipf(s).
	slope := (math.Log(float64(counts[999])) - math.Log(float64(counts[9]))) / (math.Log(1000) - math.Log(10))
	t.Logf("%d product views over %d products; top 1%% get %.1f%%; counts at ranks 1/10/100/1000: %d/%d/%d/%d; slope %.2f",
		views, len(counts), 100*topShare, counts[0], counts[9], counts[99], counts[999], slope)
	if topShare < 0.10 {
		t.Errorf("top 1%% of products get %.1f%% of views, want > 10%%", 100*topShare)
	}
	if slope > -0.7 || slope < -1.5 {
		t.Errorf("rank-frequency slope %.2f, want Zipf-like -0.7..-1.5", slope)
	}
	if !(counts[0] > counts[9] && counts[9] > counts[99] && counts[99] > counts[999]) {
		t.Errorf("rank-frequency curve flat across decades")
	}
}

func (c Config) withDefaultsMust() Config {
	d, err := c.withDefaults()
	if err != nil {
		panic(err)
	}
	return d
}

func TestFraudScenarios(t *testing.T) {
	r := statsRun(t)
	f := r.funnel()
	share := float64(f.fraud) / float64(f.sessions)
	want := statsConfig.withDefaultsMust().FraudRate
	t.Logf("fraud sessions %d of %d (%.2f%%, configured %.2f%%); labels by scenario %v", f.fraud, f.sessions, 100*share, 100*want, r.labels)
	if math.Abs(share-want) > 0.3*want {
		t.Errorf("fraud share of sessions %.2f%%, want %.2f%% ± 30%%", 100*share, 100*want)
	}
	for _, name := range scenarioSet {
		if r.labels[name] == 0 {
			t.Errorf("no %s labels", name)
		}
	}

	bySession := map[string][]*orderStats{}
	fpUsers := map[string]map[string]bool{}
	for _, o := range r.orders {
		bySession[o.session] = append(bySession[o.session], o)
		if fpUsers[o.fp] == nil {
			fpUsers[o.fp] = map[string]bool{}
		}
		fpUsers[o.fp][o.user] = true
	}
	users := statsConfig.withDefaultsMust().Users
	cutoff := r.last.Add(-time.Hour)
	checked := map[string]int{}
	maxRingSeen := 0
	var cardTests, cardFailed int
	for id, ss := range r.sessions {
		if ss.scenario == "" || ss.first.After(cutoff) {
			continue
		}
		orders := bySession[id]
		if len(orders) == 0 {
			t.Errorf("%s session %s placed no order", ss.scenario, id)
			continue
		}
		checked[ss.scenario]++
		o := orders[0]
		switch ss.scenario {
		case ScenarioCardTesting:
			first, last, failed := o.time, o.time, 0
			for _, x := range orders {
				if x.total < 100 || x.total > 500 || x.fp != o.fp {
					t.Errorf("card testing order of %d %s with %s, want 1..5 on one card", x.total, x.currency, x.fp)
				}
				if x.time.Before(first) {
					first = x.time
				}
				if x.time.After(last) {
					last = x.time
				}
				if x.failed {
					failed++
				}
			}
			// Failures are counted over all card-testing sessions (below): one session's share
			// is binomial, and a session with few failures is rare, not wrong.
			cardTests, cardFailed = cardTests+len(orders), cardFailed+failed
			if len(orders) < 10 || len(orders) > 30 || last.Sub(first) > 3*time.Minute || failed == 0 {
				t.Errorf("card testing session %s: %d orders over %s, %d failed; want 10..30 within minutes, some failing",
					id, len(orders), last.Sub(first), failed)
			}
			if len(fpUsers[o.fp]) != 1 {
				t.Errorf("card testing fingerprint %s used by %d users, want a new one", o.fp, len(fpUsers[o.fp]))
			}
		case ScenarioAccountTakeover:
			n, err := strconv.Atoi(o.user[len("usr_"):])
			if err != nil || n >= users {
				t.Errorf("takeover of %s: not an existing user", o.user)
			}
			if o.subtotal < 60000 || slices.Contains(ss.countries, o.billing) {
				t.Errorf("takeover order %d from %v billed to %s: want high value from a foreign country", o.subtotal, ss.countries, o.billing)
			}
			for _, d := range ss.devices {
				if r.honestDevices[o.user][d] {
					t.Errorf("takeover of %s from the owner's own device %s", o.user, d)
				}
			}
		case ScenarioSharedFingerprint:
			maxRingSeen = max(maxRingSeen, len(fpUsers[o.fp]))
			if len(fpUsers[o.fp]) < 2 {
				t.Errorf("shared fingerprint %s used by %d accounts", o.fp, len(fpUsers[o.fp]))
			}
		case ScenarioHighValueFirstOrder:
			usd := float64(o.subtotal) / currencies[slices.IndexFunc(currencies[:], func(c currency) bool { return c.code == o.currency })].perUSD
			if o.subtotal <= 100000 || usd <= 100000 || len(orders) != 1 {
				t.Errorf("high-value first order of %d %s (%.0f USD cents), %d orders", o.subtotal, o.currency, usd, len(orders))
			}
			if r.userFirstSession[o.user] != id {
				t.Errorf("high-value order by %s, who was seen before", o.user)
			}
		}
	}
	t.Logf("scenario sessions checked: %v; largest shared-fingerprint ring: %d accounts; card tests failing: %d of %d",
		checked, maxRingSeen, cardFailed, cardTests)
	if cardTests == 0 || float64(cardFailed) < 0.6*float64(cardTests) { // each fails with probability 0.75
		t.Errorf("%d of %d card-testing attempts failed, want most (about 75%%)", cardFailed, cardTests)
	}
	if maxRingSeen < 3 {
		t.Errorf("largest shared-fingerprint ring %d accounts, want >= 3", maxRingSeen)
	}
	for _, name := range scenarioSet {
		if checked[name] == 0 {
			t.Errorf("no complete %s session to check", name)
		}
	}
}

// Warm start: the first simulated minute already runs at the configured rate; a cold start
// is visibly below it while sessions accumulate.
func TestWarmStartBeginsAtSteadyRate(t *testing.T) {
	firstMinute := func(cold bool) int {
		s := mustNew(t, Config{Seed: 5, Start: testStart, Rate: 1000, ColdStart: cold})
		n := 0
		for {
			e, _ := s.Next()
			if e.GetEventTime().AsTime().Sub(testStart) >= time.Minute {
				return n
			}
			if e.GetEventTime().AsTime().Before(testStart) {
				t.Fatalf("event at %s before Start", e.GetEventTime().AsTime())
			}
			n++
		}
	}
	warm, cold := firstMinute(false), firstMinute(true)
	t.Logf("events in the first minute at 1000/s: warm %d, cold %d", warm, cold)
	if warm < 54_000 || warm > 66_000 {
		t.Errorf("warm start: %d events in the first minute, want 60000 +-10%%", warm)
	}
	if cold > warm*7/10 {
		t.Errorf("cold start: %d events in the first minute, expected clearly fewer than warm (%d)", cold, warm)
	}
}
