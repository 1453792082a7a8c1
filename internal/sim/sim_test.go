package sim

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"math"
	"regexp"
	"testing"
	"time"

	"github.com/bytebasket/bytebasket/internal/event"
	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
	"google.golang.org/protobuf/proto"
)

var testStart = time.Date(2025, 3, 10, 0, 0, 0, 0, time.UTC)

func mustNew(t testing.TB, cfg Config) *Simulator {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	return s
}

func TestNewRejectsBadConfig(t *testing.T) {
	ok := Config{Start: testStart}
	cases := map[string]func(c *Config){
		"no start":              func(c *Config) { c.Start = time.Time{} },
		"start before 2000":     func(c *Config) { c.Start = time.Date(1999, 12, 31, 0, 0, 0, 0, time.UTC) },
		"negative users":        func(c *Config) { c.Users = -1 },
		"too many users":        func(c *Config) { c.Users = MaxUsers + 1 },
		"negative products":     func(c *Config) { c.Products = -5 },
		"negative categories":   func(c *Config) { c.Categories = -1 },
		"more cats than items":  func(c *Config) { c.Products, c.Categories = 10, 11 },
		"negative rate":         func(c *Config) { c.Rate = -1 },
		"NaN rate":              func(c *Config) { c.Rate = math.NaN() },
		"infinite rate":         func(c *Config) { c.Rate = math.Inf(1) },
		"tiny rate":             func(c *Config) { c.Rate = MinRate / 2 },
		"negative fraud rate":   func(c *Config) { c.FraudRate = -0.1 },
		"fraud rate above half": func(c *Config) { c.FraudRate = 0.9 },
		"NaN fraud rate":        func(c *Config) { c.FraudRate = math.NaN() },
		"unknown scenario":      func(c *Config) { c.FraudMix = map[string]float64{"phishing": 1} },
		"negative weight":       func(c *Config) { c.FraudMix = map[string]float64{ScenarioCardTesting: -1} },
		"all weights zero":      func(c *Config) { c.FraudMix = map[string]float64{ScenarioCardTesting: 0} },
		"tiny fraud amount":     func(c *Config) { c.FraudAmount = 0.01 },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			c := ok
			mutate(&c)
			s, err := New(c)
			if err == nil || s != nil {
				t.Fatalf("New accepted %+v", c)
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("error %v does not wrap ErrInvalidConfig", err)
			}
		})
	}
	s := mustNew(t, ok)
	got := s.Config()
	if got.Users != DefaultUsers || got.Products != DefaultProducts || got.Categories != DefaultCategories ||
		got.Rate != DefaultRate || got.FraudRate != DefaultFraudRate {
		t.Fatalf("defaults not applied: %+v", got)
	}
	// Tiny populations and catalogs still run every scenario.
	tiny := mustNew(t, Config{Start: testStart, Users: 1, Products: 1, Categories: 1, FraudRate: 0.5})
	for range 5000 {
		e, _ := tiny.Next()
		if err := event.Validate(e, e.GetEventTime().AsTime(), 0); err != nil {
			t.Fatalf("tiny simulator: %v", err)
		}
	}
}

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestPutUUID(t *testing.T) {
	var b [36]byte
	putUUID(&b, 0x0123456789abcdef, 0xfedcba9876543210)
	if got, want := string(b[:]), "01234567-89ab-4def-bedc-ba9876543210"; got != want {
		t.Fatalf("putUUID = %s, want %s", got, want)
	}
	putUUID(&b, math.MaxUint64, 0)
	if !uuidV4.Match(b[:]) {
		t.Fatalf("%s is not a v4 UUID", b[:])
	}
}

// encodeStream returns the encoded events and labels of the first n events.
func encodeStream(t *testing.T, cfg Config, n int) []byte {
	t.Helper()
	s := mustNew(t, cfg)
	var out, buf []byte
	for range n {
		e, l := s.Next()
		var err error
		if buf, err = event.AppendEncode(buf[:0], e); err != nil {
			t.Fatal(err)
		}
		out = append(out, buf...)
		if l != nil {
			b, err := proto.Marshal(l)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b...)
		}
	}
	return out
}

func TestDeterministicBySeed(t *testing.T) {
	cfg := Config{Seed: 7, Start: testStart, Diurnal: true, FraudRate: 0.05}
	const n = 30000
	a, b := encodeStream(t, cfg, n), encodeStream(t, cfg, n)
	if !bytes.Equal(a, b) {
		t.Fatalf("same seed, different streams (%x vs %x)", sha256.Sum256(a), sha256.Sum256(b))
	}
	cfg.Seed = 8
	if c := encodeStream(t, cfg, n); bytes.Equal(a, c) {
		t.Fatal("different seeds gave the same stream")
	}
}

// Returned messages must stay valid after later calls: producers may hold them.
func TestReturnedEventsAreNotReused(t *testing.T) {
	s := mustNew(t, Config{Seed: 3, Start: testStart, FraudRate: 0.05})
	const kept = 2000
	var envs []*pb.Envelope
	var encoded [][]byte
	for range kept {
		e, _ := s.Next()
		b, err := proto.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		envs, encoded = append(envs, e), append(encoded, b)
	}
	for range 20 * kept {
		s.Next()
	}
	for i, e := range envs {
		b, err := proto.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, encoded[i]) {
			t.Fatalf("event %d changed after later Next calls", i)
		}
	}
}

func TestDiurnalCurveShapesRate(t *testing.T) {
	if d := diurnal(testStart.Add(20*time.Hour).UnixNano()) / diurnal(testStart.Add(4*time.Hour).UnixNano()); d < 4 {
		t.Fatalf("curve ratio 20:00/04:00 = %.2f, want >= 4", d)
	}
	var sum float64
	for m := range 24 * 60 {
		sum += diurnal(testStart.Add(time.Duration(m) * time.Minute).UnixNano())
	}
	if mean := sum / (24 * 60); math.Abs(mean-1) > 0.01 {
		t.Fatalf("curve mean = %.3f, want 1", mean)
	}

	// Events per simulated hour, counted from event times.
	hourCounts := func(diurnal bool) (at4, at20 int) {
		s := mustNew(t, Config{Seed: 11, Start: testStart, Rate: 1, Diurnal: diurnal})
		end := testStart.Add(21 * time.Hour)
		for {
			e, _ := s.Next()
			ts := e.GetEventTime().AsTime()
			if !ts.Before(end) {
				return at4, at20
			}
			switch ts.Hour() {
			case 4:
				at4++
			case 20:
				at20++
			}
		}
	}
	d4, d20 := hourCounts(true)
	f4, f20 := hourCounts(false)
	t.Logf("events/hour: diurnal 04:00 %d, 20:00 %d; flat 04:00 %d, 20:00 %d", d4, d20, f4, f20)
	if ratio := float64(d20) / float64(d4); ratio < 2.5 {
		t.Errorf("diurnal: 20:00/04:00 events = %.2f, want > 2.5", ratio)
	}
	if ratio := float64(f20) / float64(f4); ratio < 0.8 || ratio > 1.25 {
		t.Errorf("flat: 20:00/04:00 events = %.2f, want about 1", ratio)
	}
}

// Rebase shifts the clock of the events still to come, and nothing else.
func TestRebase(t *testing.T) {
	a := mustNew(t, Config{Seed: 3, Start: testStart})
	b := mustNew(t, Config{Seed: 3, Start: testStart})
	b.Rebase(testStart.Add(time.Hour))
	for range 1000 {
		ea, _ := a.Next()
		eb, _ := b.Next()
		if d := eb.GetEventTime().AsTime().Sub(ea.GetEventTime().AsTime()); d != time.Hour || ea.GetEventId() != eb.GetEventId() {
			t.Fatalf("rebased event differs by %s (ids %s, %s), want exactly one hour later", d, ea.GetEventId(), eb.GetEventId())
		}
	}
}

// A fraud mix changes which scenarios happen and how much high-value fraud spends, and the
// share of fraudulent sessions stays what the default mix gives for the same fraud rate.
func TestFraudMixAndAmount(t *testing.T) {
	run := func(mix map[string]float64, amount float64) (by map[string]int, share float64, minTakeover int64) {
		s := mustNew(t, Config{Start: testStart, Seed: 7, FraudRate: 0.05, FraudMix: mix, FraudAmount: amount})
		sessions := map[string]string{} // session -> scenario ("" honest)
		minTakeover = math.MaxInt64
		for range 400_000 {
			e, l := s.Next()
			sc := l.GetScenario()
			if _, ok := sessions[e.GetSessionId()]; !ok || sc != "" {
				sessions[e.GetSessionId()] = sc
			}
			if o := e.GetOrderPlaced(); o != nil && sc == ScenarioAccountTakeover && o.GetSubtotal().GetCurrency() == "USD" {
				minTakeover = min(minTakeover, o.GetSubtotal().GetAmountMinor())
			}
		}
		by = map[string]int{}
		for _, sc := range sessions {
			by[sc]++
		}
		return by, 1 - float64(by[""])/float64(len(sessions)), minTakeover
	}
	_, want, _ := run(nil, 0)
	by, share, minTakeover := run(map[string]float64{ScenarioAccountTakeover: 3, ScenarioSharedFingerprint: 1}, 2)
	t.Logf("sessions by scenario %v; fraud share %.4f, default mix %.4f", by, share, want)
	if by[ScenarioCardTesting] != 0 || by[ScenarioHighValueFirstOrder] != 0 {
		t.Errorf("scenarios outside the mix happened: %v", by)
	}
	if share < 0.85*want || share > 1.15*want {
		t.Errorf("fraud share of sessions %.4f, the default mix's %.4f: want within 15%%", share, want)
	}
	// Takeover arrivals are three times the rings'; a ring is 3..6 sessions.
	if arrivals := float64(by[ScenarioSharedFingerprint]) / 4.5; by[ScenarioAccountTakeover] < int(2*arrivals) {
		t.Errorf("takeover sessions %d against %.0f ring arrivals, want about 3x", by[ScenarioAccountTakeover], arrivals)
	}
	if minTakeover <= 120000 {
		t.Errorf("smallest takeover subtotal %d US cents, want over 1200 USD (600 x FraudAmount 2)", minTakeover)
	}
}
