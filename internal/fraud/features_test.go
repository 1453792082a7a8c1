package fraud

import (
	"context"
	"slices"
	"testing"
	"time"

	shipped "github.com/bytebasket/bytebasket/config"
	"github.com/bytebasket/bytebasket/internal/batch"
	"github.com/bytebasket/bytebasket/internal/batch/batchtest"
	"github.com/bytebasket/bytebasket/internal/batch/duckdb"
	"github.com/bytebasket/bytebasket/internal/event"
	"github.com/bytebasket/bytebasket/internal/fraud/riskmodel"
	"github.com/bytebasket/bytebasket/internal/fraud/rules"
	"github.com/bytebasket/bytebasket/internal/lake/local"
	"github.com/bytebasket/bytebasket/internal/sim"
)

// No training/serving skew: the model's features of every order, as the batch job computes
// them over the lake (DuckDB) and as the first stage computes them online from the same
// events, are equal (durations to the millisecond: the role keeps milliseconds, the lake
// microseconds). The labels come from chargebacks, and some orders are labelled.
func TestOnlineFeaturesMatchTheLake(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	loc, err := local.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer loc.Close()
	cfg := sim.Config{Seed: 21, Users: 600, Start: time.Date(2026, 11, 2, 5, 0, 0, 0, time.UTC), Rate: 0.4, FraudRate: 0.05}
	const events = 60_000
	l, err := batchtest.Build(ctx, batchtest.Options{Sim: cfg, Events: events, MaxFileRows: 5000}, loc)
	if err != nil {
		t.Fatal(err)
	}
	duck, err := duckdb.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer duck.Close()
	if err := duck.RegisterViews(ctx); err != nil {
		t.Fatal(err)
	}
	ff := batch.FraudFeatures{From: l.First, To: l.Last.Add(time.Second), Lookback: rules.DefaultProfileRetention, LabelWindow: 7 * 24 * time.Hour}
	examples, err := ff.Examples(ctx, duck)
	if err != nil {
		t.Fatal(err)
	}

	// The same events through the first stage's state, in the order the simulator made them.
	s, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := &role{m: newMetrics(nil)}
	set, err := rules.Parse(shipped.FraudRules)
	if err != nil {
		t.Fatal(err)
	}
	r.swap(set)
	c := r.set.Load()
	st := newUserState()
	online := map[string]riskmodel.Order{}
	for range events {
		e, _ := s.Next()
		h := st.add(e, c.horizon, c.retention, slices.Contains(c.userKinds, event.KindOf(e)))
		if e.GetOrderPlaced() != nil {
			online[e.GetEventId()] = orderFeatures(e, h, e.GetEventTime().AsTime().UnixMilli())
			ordered(h.profile, e)
		}
	}

	if len(examples) != len(online) || len(examples) < 300 {
		t.Fatalf("%d orders in the lake's examples, %d scored online: want the same, and enough to prove something", len(examples), len(online))
	}
	fraud, mismatch := 0, 0
	var some struct{ prior, orders1h, failed1h, mismatch, countries2 int }
	for _, x := range examples {
		if x.Fraud {
			fraud++
		}
		got, want := online[x.EventID], x.Order
		if absDur(got.AccountAge-want.AccountAge) > time.Millisecond || absDur(got.DeviceAge-want.DeviceAge) > time.Millisecond {
			mismatch++
			t.Errorf("order %s: ages online %v/%v, lake %v/%v", x.OrderID, got.AccountAge, got.DeviceAge, want.AccountAge, want.DeviceAge)
			continue
		}
		got.AccountAge, got.DeviceAge = want.AccountAge, want.DeviceAge
		if got != want {
			mismatch++
			t.Errorf("order %s: online %+v\n lake %+v", x.OrderID, got, want)
		}
		some.prior += btoi(want.PriorOrders > 0)
		some.orders1h += btoi(want.Orders1h > 0)
		some.failed1h += btoi(want.Failed1h > 0)
		some.mismatch += btoi(want.AddressMismatch)
		some.countries2 += btoi(want.Countries24h > 1)
		if mismatch > 10 {
			t.Fatal("too many differences")
		}
	}
	t.Logf("%d orders, %d labelled fraud by chargebacks, features non-zero: %+v", len(examples), fraud, some)
	if fraud == 0 || some.prior == 0 || some.orders1h == 0 || some.failed1h == 0 || some.mismatch == 0 {
		t.Errorf("features never set (%+v) or no fraud label (%d): the comparison proves too little", some, fraud)
	}
}

func absDur(d time.Duration) time.Duration { return max(d, -d) }

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
