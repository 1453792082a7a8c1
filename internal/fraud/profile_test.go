package fraud

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bytebasket/bytebasket/internal/fraud/rules"
	"github.com/bytebasket/bytebasket/internal/model"
	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
)

const signalRules = `
version: 7
profile_retention: 48h
profile_warmup: 1h
rules:
  - name: takeover
    on: [order_placed]
    group_by: user
    signal: new
    field: device
    window: 1h
    compare: ">="
    limit: 1
    and:
      - {signal: new, field: country, window: 1h, compare: ">=", limit: 1}
      - {signal: amount_vs_typical, compare: ">", limit: 2}
    weight: 50
    action: review
  - name: first-order-high
    on: [order_placed]
    group_by: user
    signal: prior_orders
    compare: "=="
    limit: 0
    and:
      - {signal: amount_vs_typical, compare: ">", limit: 4}
      - {signal: account_age, compare: "<", limit: 60}
    weight: 60
    action: block
  - name: above-own
    on: [order_placed]
    group_by: user
    signal: amount_vs_own
    compare: ">"
    limit: 3
    weight: 10
    action: allow
  - name: mismatch
    on: [order_placed]
    group_by: user
    signal: address_mismatch
    compare: "=="
    limit: 1
    weight: 20
    action: review
  - name: new-account-declined
    on: [payment_failed]
    group_by: user
    signal: account_age
    compare: "<"
    limit: 30
    and:
      - {aggregate: count, window: 10m, compare: ">=", limit: 1}
    weight: 40
    action: review
`

// signalTask is one partition's task under signalRules, its decisions collected.
func signalTask(t *testing.T) (*task, *[]*pb.FraudDecision) {
	t.Helper()
	rs, err := rules.Parse([]byte(signalRules))
	if err != nil {
		t.Fatal(err)
	}
	r := &role{cfg: Config{Alerts: "fraud-alerts"}, m: newMetrics(nil)}
	r.swap(rs)
	var got []*pb.FraudDecision
	tk := r.NewTask(0, func(rec *kgo.Record) {
		if rec.Topic != "fraud-alerts" { // re-keyed for the repartition stage
			return
		}
		var d pb.FraudDecision
		if err := proto.Unmarshal(rec.Value, &d); err != nil {
			t.Fatal(err)
		}
		got = append(got, &d)
	}).(*task)
	return tk, &got
}

func visit(user, device, country string, at time.Time) *pb.Envelope {
	return &pb.Envelope{EventId: fmt.Sprintf("v-%s-%d", user, at.UnixNano()), EventTime: timestamppb.New(at), UserId: user,
		Payload: &pb.Envelope_PageView{PageView: &pb.PageView{Context: &pb.Context{DeviceId: device, Country: country}}}}
}

func placed(id, user, device string, at time.Time, cents int64, billing, shipping string) *pb.Envelope {
	return &pb.Envelope{EventId: id, EventTime: timestamppb.New(at), UserId: user, Payload: &pb.Envelope_OrderPlaced{OrderPlaced: &pb.OrderPlaced{
		OrderId: "o-" + id, DeviceId: device, Total: &pb.Money{AmountMinor: cents, Currency: "EUR"},
		BillingCountry: billing, ShippingCountry: shipping}}}
}

func fired(d *pb.FraudDecision) []string {
	var out []string
	for _, r := range d.GetReasons() {
		out = append(out, r.GetRule())
	}
	slices.Sort(out)
	return out
}

// The signals read the profile: an account seen before on one device and in one country
// that orders far above the usual from a new device in a new country is a takeover; a new
// account's high first order and its early decline fire their rules; a known customer's
// usual order fires nothing. The profile and the baseline survive a checkpoint.
func TestSignalsReadTheProfile(t *testing.T) {
	tk, got := signalTask(t)
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	// A baseline: 60 customers' orders of about 50 EUR, each from their own device at home.
	for i := range 60 {
		u := fmt.Sprintf("c%d", i)
		tk.Apply("", visit(u, "dev-"+u, "DE", t0.Add(time.Duration(i)*time.Second)))
		tk.Apply("", placed(fmt.Sprintf("base%d", i), u, "dev-"+u, t0.Add(time.Duration(i)*time.Second+time.Millisecond), 4500+int64(i%10)*100, "DE", "DE"))
	}
	// Within the warm-up a user first seen is not known to be new: a decline draws nothing.
	tk.Apply("", &pb.Envelope{EventId: "pf-early", EventTime: timestamppb.New(t0.Add(30 * time.Minute)), UserId: "early",
		Payload: &pb.Envelope_PaymentFailed{PaymentFailed: &pb.PaymentFailed{OrderId: "o-early", Amount: &pb.Money{AmountMinor: 100, Currency: "EUR"}}}})
	if n := len(*got); n != 0 {
		t.Fatalf("the baseline orders and a decline within the warm-up drew %d decisions: %v", n, fired((*got)[0]))
	}
	// Two hours later, c1's account from a new device in a new country, ordering 400 EUR
	// shipped abroad.
	t1 := t0.Add(2 * time.Hour)
	tk.Apply("", visit("c1", "dev-x", "RO", t1))
	tk.Apply("", placed("ato", "c1", "dev-x", t1.Add(time.Minute), 40000, "DE", "RO"))
	// c2 orders as usual from home.
	tk.Apply("", placed("usual", "c2", "dev-c2", t1.Add(2*time.Minute), 5000, "DE", "DE"))
	// A new account's first order of 300 EUR, then a declined payment.
	tk.Apply("", visit("n1", "dev-n1", "DE", t1.Add(3*time.Minute)))
	tk.Apply("", placed("first", "n1", "dev-n1", t1.Add(4*time.Minute), 30000, "DE", "DE"))
	tk.Apply("", &pb.Envelope{EventId: "pf", EventTime: timestamppb.New(t1.Add(5 * time.Minute)), UserId: "n1",
		Payload: &pb.Envelope_PaymentFailed{PaymentFailed: &pb.PaymentFailed{OrderId: "o-first", Amount: &pb.Money{AmountMinor: 30000, Currency: "EUR"}}}})

	want := map[string][]string{
		"o-ato":   {"above-own", "mismatch", "takeover"}, // 400 EUR is ~8x the usual and c1's own
		"o-first": {"first-order-high"},                  // new device and country do not count for a new account
	}
	byOrder := map[string]*pb.FraudDecision{}
	for _, d := range *got {
		if d.GetKind() == "order_placed" {
			byOrder[d.GetOrderId()] = d
		}
	}
	for id, rs := range want {
		d := byOrder[id]
		if d == nil {
			t.Errorf("no decision on %s", id)
			continue
		}
		if !slices.Equal(fired(d), rs) {
			t.Errorf("%s fired %v, want %v", id, fired(d), rs)
		}
	}
	if d := byOrder["o-usual"]; d != nil {
		t.Errorf("c2's usual order drew %v", fired(d))
	}
	if d := byOrder["o-ato"]; d != nil {
		if d.GetAction() != pb.FraudAction_FRAUD_ACTION_REVIEW || d.GetScore() != 80 {
			t.Errorf("takeover: %v score %d, want review 80", d.GetAction(), d.GetScore())
		}
		for _, r := range d.GetReasons() {
			if r.GetRule() == "takeover" && len(r.GetConditions()) != 3 {
				t.Errorf("takeover reason names %d conditions, want 3: %v", len(r.GetConditions()), r.GetConditions())
			}
		}
	}
	// Its declined payment: the order it pays is not a prior one, so the first-order rule
	// holds for it too.
	declined := slices.IndexFunc(*got, func(d *pb.FraudDecision) bool { return d.GetKind() == "payment_failed" })
	if declined < 0 || !slices.Equal(fired((*got)[declined]), []string{"first-order-high", "new-account-declined"}) {
		t.Errorf("the new account's decline was not reviewed: %v", *got)
	}

	// A checkpoint restored into a fresh task decides the same.
	fresh, again := signalTask(t)
	var entries []*pb.StateEntry
	tk.Changes(true, func(e *pb.StateEntry) { entries = append(entries, proto.Clone(e).(*pb.StateEntry)) })
	for _, e := range entries {
		if err := fresh.Restore(e); err != nil {
			t.Fatal(err)
		}
	}
	t2 := t1.Add(10 * time.Minute)
	for _, tt := range []*task{tk, fresh} {
		tt.Apply("", visit("c3", "dev-y", "RO", t2))
		tt.Apply("", placed("ato2", "c3", "dev-y", t2.Add(time.Second), 40000, "DE", "RO"))
	}
	a, b := (*got)[len(*got)-1], (*again)[len(*again)-1]
	if len(*again) != 1 || !slices.Equal(fired(a), fired(b)) || a.GetScore() != b.GetScore() {
		t.Errorf("after a restore: %v (%d), before: %v (%d)", fired(b), b.GetScore(), fired(a), a.GetScore())
	}
}

// A user unseen for the profile retention is a stranger again, and a value not seen for that
// long leaves the profile, both as of each event (so no decision depends on when a flush
// ran); a flush frees such users only a margin later.
func TestProfilesExpireWithRetention(t *testing.T) {
	tk, _ := signalTask(t)
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	tk.Apply("", visit("gone", "dev-g", "DE", t0))
	tk.Apply("", visit("back", "dev-b", "DE", t0))
	tk.Apply("", visit("stays", "dev-old", "DE", t0))
	tk.Apply("", visit("stays", "dev-new", "DE", t0.Add(47*time.Hour)))
	if h := tk.st.users["stays"]; seenValue(h.profile, rules.Device, "dev-old") == nil {
		t.Fatal("a device seen 47 hours ago left a 48-hour profile")
	}
	tk.Apply("", visit("stays", "dev-new", "DE", t0.Add(49*time.Hour)))
	if h := tk.st.users["stays"]; seenValue(h.profile, rules.Device, "dev-old") != nil || seenValue(h.profile, rules.Device, "dev-new") == nil {
		t.Errorf("profile values after 49 hours: %v", h.profile.GetSeen())
	}
	tk.Apply("", visit("back", "dev-b", "DE", t0.Add(50*time.Hour)))
	if h := tk.st.users["back"]; h.profile.GetFirstSeenMs() != t0.Add(50*time.Hour).UnixMilli() {
		t.Errorf("a user back after the retention is first seen at %v, want now", time.UnixMilli(h.profile.GetFirstSeenMs()))
	}
	flush := func(at time.Time) {
		tk.expiredAt = 0
		if err := tk.Flush(t.Context(), model.Fence{}, at.UnixMilli(), time.Now(), 0); err != nil {
			t.Fatal(err)
		}
	}
	flush(t0.Add(50 * time.Hour))
	if _, ok := tk.st.users["gone"]; !ok {
		t.Error("a flush freed a user within the margin a late event may still reach")
	}
	flush(t0.Add((48 + 25) * time.Hour))
	if _, ok := tk.st.users["gone"]; ok {
		t.Error("a user unseen for the retention and the margin is still kept")
	}
	var deleted []string
	tk.Changes(false, func(e *pb.StateEntry) {
		if u := e.GetFraudUser(); u.GetDeleted() {
			deleted = append(deleted, u.GetUserId())
		}
	})
	if !slices.Equal(deleted, []string{"gone"}) {
		t.Errorf("checkpoint deletes %v, want [gone]", deleted)
	}
}

// A version 1 checkpoint (no profiles) restores with profiles rebuilt from its events, so
// a known customer's device is not new and its orders count after an upgrade.
func TestVersion1CheckpointRebuildsProfiles(t *testing.T) {
	tk, _ := signalTask(t)
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC).UnixMilli()
	err := tk.Restore(&pb.StateEntry{Entry: &pb.StateEntry_FraudUser{FraudUser: &pb.FraudUserState{UserId: "old", Events: []*pb.FraudEventState{
		{TimeMs: t0, Kind: "page_view", Device: "dev-1", Country: "DE"},
		{TimeMs: t0 + 1000, Kind: "order_placed", Device: "dev-1", Card: "fp-1", AmountMinor: 5000, Currency: "EUR"},
	}}}})
	if err != nil {
		t.Fatal(err)
	}
	p := tk.st.users["old"].profile
	if p.GetFirstSeenMs() != t0 || p.GetLastSeenMs() != t0+1000 || seenValue(p, rules.Device, "dev-1") == nil ||
		seenValue(p, rules.Card, "fp-1") == nil || seenValue(p, rules.Country, "DE") == nil ||
		len(p.GetOrders()) != 1 || p.GetOrders()[0].GetOrders() != 1 || p.GetOrders()[0].GetAmountMinor() != 5000 {
		t.Errorf("rebuilt profile %v", p)
	}
}
