package rules

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bytebasket/bytebasket/internal/event"
	"github.com/bytebasket/bytebasket/internal/testenv"
	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
)

// The rule set the repository ships parses and covers the signals it is meant to: card
// velocity and testing, shared cards, devices and IPs, countries, spend.
func TestShippedRulesParse(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "fraud-rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	groups := map[Attribute]bool{}
	for _, r := range s.Rules {
		groups[r.GroupBy] = true
	}
	for _, a := range []Attribute{User, Card, Device, IP} {
		if !groups[a] {
			t.Errorf("no shipped rule groups by %s", a)
		}
	}
	signals := map[Signal]bool{}
	for _, r := range s.Rules {
		for _, c := range r.Conditions() {
			signals[c.Signal] = true
		}
	}
	for _, sg := range []Signal{New, AccountAge, PriorOrders, AmountVsTypical, AddressMismatch} {
		if !signals[sg] {
			t.Errorf("no shipped rule uses the signal %s", sg)
		}
	}
	if s.Retention() != DefaultProfileRetention {
		t.Errorf("profile retention %s, want the default %s", s.Retention(), DefaultProfileRetention)
	}
	i := slices.IndexFunc(s.Rules, func(r Rule) bool { return r.Name == "card-velocity-1h" })
	if i < 0 {
		t.Fatal("no rule card-velocity-1h")
	}
	r := s.Rules[i]
	if s.Version < 1 || r.GroupBy != Card || r.Window != time.Hour || r.Compare != Greater || r.Limit != 6 ||
		r.Action != Review || len(r.On) != 3 || r.On[0] != event.KindOrderPlaced {
		t.Errorf("card-velocity-1h read as %+v (version %d)", r, s.Version)
	}
}

const valid = `
version: 4
rules:
  - name: ok
    on: [order_placed]
    group_by: card
    aggregate: count
    window: 1h
    compare: ">"
    limit: 3
    weight: 50
    action: block
`

// An invalid set is refused whole, with every problem named by its rule and field.
func TestInvalidSetsNameRuleAndField(t *testing.T) {
	if _, err := Parse([]byte(valid)); err != nil {
		t.Fatalf("the valid set: %v", err)
	}
	for _, c := range []struct {
		name, yaml string
		want       []string
	}{
		{"unknown aggregate and action", strings.NewReplacer("count", "median", "block", "deny").Replace(valid),
			[]string{`rule "ok": field "aggregate": "median" is not one of count, sum, distinct, avg`,
				`rule "ok": field "action": "deny" is not one of allow, review, block`}},
		{"misspelt field", strings.Replace(valid, "group_by", "groupby", 1), []string{`field groupby not found`}},
		{"window", strings.Replace(valid, "1h", "90s", 1), []string{`rule "ok": field "window": 1m30s must be whole minutes`}},
		{"window too long", strings.Replace(valid, "1h", "200h", 1), []string{`rule "ok": field "window": 200h0m0s must be whole minutes, from 1m to 168h0m0s`}},
		{"sum without currency", strings.Replace(valid, "aggregate: count", "aggregate: sum\n    field: amount", 1),
			[]string{`rule "ok": field "currency": "" is not an ISO 4217 code`}},
		{"sum of a key", strings.Replace(valid, "aggregate: count", "aggregate: sum\n    field: ip\n    currency: EUR", 1),
			[]string{`rule "ok": field "field": sum adds up amounts: the field must be "amount"`}},
		{"distinct of its own key", strings.Replace(valid, "aggregate: count", "aggregate: distinct\n    field: card", 1),
			[]string{`rule "ok": field "field": distinct card grouped by card is always 1`}},
		{"count with a field", strings.Replace(valid, "aggregate: count", "aggregate: count\n    field: user", 1),
			[]string{`rule "ok": field "field": count takes no field`}},
		{"event kind", strings.Replace(valid, "order_placed", "search", 1), []string{`rule "ok": field "on": "search" is not an event kind rules are fed`}},
		{"weight, limit, compare, group", strings.NewReplacer("50", "150", "limit: 3", "limit: -1", `">"`, `"=>"`, "card", "email").Replace(valid),
			[]string{`field "weight": 150 is outside 0..100`, `field "limit": -1 is not a finite number >= 0`, `field "compare": "=>" is not one of`,
				`field "group_by": "email" is not one of user, card, device, ip, country`}},
		{"duplicate name, no version", strings.Replace(valid+valid[strings.Index(valid, "  - name"):], "version: 4", "", 1),
			[]string{`rule "ok": field "name": is used by an earlier rule`, `field "version": must be a positive number`}},
		{"empty", "version: 1\n", []string{`field "rules": the set has no rules`}},
		{"the model's name", strings.Replace(valid, "name: ok", "name: model", 1), []string{`rule "model": field "name": is the model's reason in decisions`}},
		{"signal grouped by card", strings.Replace(valid, "aggregate: count\n    window: 1h", "signal: account_age", 1),
			[]string{`rule "ok": field "group_by": signal account_age is kept per user`}},
		{"unknown signal", strings.NewReplacer("card", "user", "aggregate: count\n    window: 1h", "signal: velocity").Replace(valid),
			[]string{`rule "ok": field "signal": "velocity" is not one of new, account_age, prior_orders`}},
		{"aggregate and signal", strings.NewReplacer("card", "user", "aggregate: count", "aggregate: count\n    signal: prior_orders").Replace(valid),
			[]string{`rule "ok": field "signal": a condition has an aggregate or a signal, not both`}},
		{"new without a key", strings.NewReplacer("card", "user", "aggregate: count", "signal: new").Replace(valid),
			[]string{`rule "ok": field "field": new counts one of device, country, card, ip, not ""`}},
		{"signal with a window", strings.NewReplacer("card", "user", "aggregate: count", "signal: amount_vs_typical").Replace(valid),
			[]string{`rule "ok": field "window": signal amount_vs_typical takes no window`}},
		{"bad second condition", strings.Replace(valid, "    weight: 50", "    and:\n      - {aggregate: sum, window: 1h, compare: \">\", limit: 1}\n      - {compare: \">\", limit: 1}\n    weight: 50", 1),
			[]string{`rule "ok": field "and[0].field": sum adds up amounts`, `rule "ok": field "and[1].aggregate": names neither an aggregate`}},
		{"NaN limit", strings.Replace(valid, "limit: 3", "limit: .nan", 1), []string{`rule "ok": field "limit": NaN is not a finite number >= 0`}},
		{"window beyond the retention", "profile_retention: 1h\n" + strings.Replace(valid, "1h", "2h", 1),
			[]string{`rule "ok": field "window": 2h0m0s is longer than the profile retention 1h0m0s`}},
		{"profile retention", "profile_retention: 3000h\n" + valid, []string{`field "profile_retention": 3000h0m0s must be whole hours, up to 2160h0m0s`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := Parse([]byte(c.yaml))
			if err == nil {
				t.Fatalf("accepted: %+v", s)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestComparisonsAndActions(t *testing.T) {
	for _, c := range []struct {
		op   Op
		v, l float64
		want bool
	}{{Greater, 3, 3, false}, {Greater, 4, 3, true}, {GreaterOrEqual, 3, 3, true}, {Less, 2, 3, true},
		{LessOrEqual, 4, 3, false}, {Equal, 3, 3, true}, {Op("~"), 3, 3, false}} {
		if got := c.op.Holds(c.v, c.l); got != c.want {
			t.Errorf("%v %s %v = %v", c.v, c.op, c.l, got)
		}
	}
	if !Block.Stronger(Review) || !Review.Stronger(Allow) || Allow.Stronger(Review) || Review.Stronger(Review) {
		t.Error("actions are not ordered allow < review < block")
	}
}

// Attributes come from the payload where the event carries them, else from the client
// context; an event without one says so.
func TestAttributesOfEvents(t *testing.T) {
	ctx := &pb.Context{DeviceId: "dev-c", Ip: "10.0.0.1", Country: "DE"}
	order := &pb.Envelope{UserId: "u1", EventTime: timestamppb.Now(), Payload: &pb.Envelope_OrderPlaced{OrderPlaced: &pb.OrderPlaced{
		PaymentFingerprint: "fp1", DeviceId: "dev-o", Ip: "10.0.0.2", Total: &pb.Money{AmountMinor: 1999, Currency: "EUR"}}}}
	view := &pb.Envelope{UserId: "u1", Payload: &pb.Envelope_PageView{PageView: &pb.PageView{Context: ctx}}}
	failed := &pb.Envelope{UserId: "u2", Payload: &pb.Envelope_PaymentFailed{PaymentFailed: &pb.PaymentFailed{PaymentFingerprint: "fp2"}}}
	for _, c := range []struct {
		e    *pb.Envelope
		a    Attribute
		want string
	}{
		{order, User, "u1"}, {order, Card, "fp1"}, {order, Device, "dev-o"}, {order, IP, "10.0.0.2"}, {order, Country, ""},
		{view, Device, "dev-c"}, {view, IP, "10.0.0.1"}, {view, Country, "DE"}, {view, Card, ""},
		{failed, Card, "fp2"}, {failed, Device, ""},
	} {
		got, ok := Of(c.e, c.a)
		if got != c.want || ok != (c.want != "") {
			t.Errorf("%s of %s: %q, %v; want %q", c.a, event.KindOf(c.e), got, ok, c.want)
		}
	}
	if m, ok := AmountOf(order); !ok || m.GetAmountMinor() != 1999 || m.GetCurrency() != "EUR" {
		t.Errorf("amount of the order: %v %v", m, ok)
	}
	if _, ok := AmountOf(view); ok {
		t.Error("a page view has an amount")
	}
	if _, ok := AmountOf(failed); ok {
		t.Error("a payment without an amount has one")
	}
}
