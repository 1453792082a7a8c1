// Package sim is ByteBasket's shopper simulator: a seeded population of users and a
// catalog, sessions that walk the shopping funnel in simulated time, and injected fraud
// scenarios whose ground truth is returned beside the events, never inside them.
//
// A Simulator is deterministic: the same Config gives the same events, byte for byte.
// It is not safe for concurrent use.
package sim

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
)

// Warm start bounds: simulate up to warmUp before Start (sessions run minutes, the slowest
// tens of minutes). The events generated and dropped cost about 0.6 µs each, so the cap
// keeps New under a second at the default rates and about 7 s at 20k events/s, which still
// warms 10 minutes there; above that the first minutes ramp up.
const (
	warmUp        = 15 * time.Minute
	maxWarmEvents = 12e6
)

// Defaults applied to zero Config fields.
const (
	DefaultUsers      = 10000
	DefaultProducts   = 5000
	DefaultCategories = 40
	DefaultRate       = 1000
	DefaultFraudRate  = 0.01
)

// Limits keep the precomputed population and catalog within a sane memory budget.
const (
	MaxUsers     = 2_000_000
	MaxProducts  = 1_000_000
	MaxRate      = 1e7
	MinRate      = 0.01 // below this, gaps between sessions overflow the nanosecond clock
	MaxFraudRate = 0.5
)

// Config sets up a Simulator. Zero numeric fields take the defaults above.
type Config struct {
	Seed       uint64
	Users      int       // population size (default 10000)
	Products   int       // catalog size (default 5000)
	Categories int       // default 40
	Rate       float64   // mean events per second of simulated time (default 1000)
	Start      time.Time // simulated clock start (required)
	Diurnal    bool      // day/night rate curve (low near 04:00 UTC, peak near 20:00) vs flat
	FraudRate  float64   // share of sessions that are fraud scenarios (default 0.01)
	// FraudMix weighs the scenarios (by name, Scenarios); nil draws them equally, a
	// scenario left out of a mix never happens.
	FraudMix map[string]float64
	// FraudAmount scales what high-value fraud spends (takeovers, high-value first orders;
	// default 1: over 600 and 1000 US dollars).
	FraudAmount float64
	// ColdStart begins with no sessions in flight, so every session is seen from its first
	// event but the rate ramps up over the first minutes. The default warm start begins at
	// the steady rate, mid-way through sessions that started before Start.
	ColdStart bool
}

// ErrInvalidConfig is wrapped by every error New returns for a bad Config.
var ErrInvalidConfig = errors.New("sim: invalid config")

func (c Config) withDefaults() (Config, error) {
	bad := func(format string, args ...any) (Config, error) {
		return c, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	if c.Users == 0 {
		c.Users = DefaultUsers
	}
	if c.Products == 0 {
		c.Products = DefaultProducts
	}
	if c.Categories == 0 {
		c.Categories = DefaultCategories
	}
	if c.Rate == 0 {
		c.Rate = DefaultRate
	}
	if c.FraudRate == 0 {
		c.FraudRate = DefaultFraudRate
	}
	if c.FraudAmount == 0 {
		c.FraudAmount = 1
	}
	if c.FraudMix != nil {
		total := 0.0
		for name, w := range c.FraudMix {
			if !slices.Contains(Scenarios, name) {
				return bad("FraudMix: %q is not a scenario (%s)", name, strings.Join(Scenarios, ", "))
			}
			if math.IsNaN(w) || w < 0 {
				return bad("FraudMix[%s] = %v, want a weight >= 0", name, w)
			}
			total += w
		}
		if total == 0 {
			return bad("FraudMix weighs every scenario 0: weigh one at least")
		}
	}
	switch {
	case c.Start.IsZero():
		return bad("Start is required (the simulated clock start, e.g. time.Now())")
	case c.Start.UTC().Year() < 2000 || c.Start.UTC().Year() > 2200:
		return bad("Start %s is outside 2000..2200", c.Start.UTC().Format(time.RFC3339))
	case c.Users < 0 || c.Users > MaxUsers:
		return bad("Users = %d, want 1..%d (0 = %d)", c.Users, MaxUsers, DefaultUsers)
	case c.Products < 0 || c.Products > MaxProducts:
		return bad("Products = %d, want 1..%d (0 = %d)", c.Products, MaxProducts, DefaultProducts)
	case c.Categories < 0 || c.Categories > c.Products:
		return bad("Categories = %d, want 1..Products (%d) (0 = %d)", c.Categories, c.Products, DefaultCategories)
	case math.IsNaN(c.Rate) || c.Rate < MinRate || c.Rate > MaxRate:
		return bad("Rate = %v events/s, want %v..%v (0 = %d)", c.Rate, MinRate, MaxRate, DefaultRate)
	case math.IsNaN(c.FraudRate) || c.FraudRate < 0 || c.FraudRate > MaxFraudRate:
		return bad("FraudRate = %v, want 0..%v (0 = %v)", c.FraudRate, MaxFraudRate, DefaultFraudRate)
	case math.IsNaN(c.FraudAmount) || c.FraudAmount < 0.1 || c.FraudAmount > 100:
		return bad("FraudAmount = %v, want 0.1..100 (0 = 1)", c.FraudAmount)
	}
	return c, nil
}

// Simulator generates events in event-time order. Create it with New.
type Simulator struct {
	cfg Config
	pcg *rand.PCG
	rng *rand.Rand // same PCG; used for its ziggurat normal and exponential draws

	startNs int64 // Start as Unix nanoseconds; simulated times are offsets from it
	// arrivalsPerNs is the mean session-arrival intensity; the curve modulates it.
	arrivalsPerNs float64
	curveMax      float64
	nextArrival   int64
	// pFraud is the per-arrival fraud probability that makes FraudRate of *sessions*
	// fraudulent, given that a shared-fingerprint arrival spawns several sessions.
	pFraud float64
	// mixCum is FraudMix as cumulative shares by scenario (nil: equal shares).
	mixCum []float64

	h    sessionHeap
	seq  uint64
	free []*session

	pop   population
	cat   catalog
	ids   idGen
	a     arena
	plan  plan
	accts int // fresh accounts created so far (fraudsters sign up)
}

// New builds the population and catalog and calibrates the session arrival rate so the
// long-run event rate is cfg.Rate.
func New(cfg Config) (*Simulator, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	pcg := rand.NewPCG(cfg.Seed, 0x6279746562736b74) // "bytebskt": a fixed stream selector
	s := &Simulator{
		cfg:     cfg,
		pcg:     pcg,
		rng:     rand.New(pcg),
		startNs: cfg.Start.UnixNano(),
	}
	s.pop = newPopulation(s, cfg.Users)
	s.cat = newCatalog(s, cfg.Products, cfg.Categories)
	s.cat.drawComplements(s)
	s.pop.drawTastes(s, &s.cat)
	s.mixCum = cumulativeMix(cfg.FraudMix)
	s.pFraud = fraudArrivalProb(cfg.FraudRate, s.mixCum)
	s.curveMax = 1
	if cfg.Diurnal {
		s.curveMax = diurnalMax
	}
	s.arrivalsPerNs = cfg.Rate / s.meanEventsPerArrival() / 1e9
	// Warm start: sessions arrive from before Start and events before Start are dropped, so
	// the stream begins at its steady rate instead of ramping up while sessions accumulate.
	warm := min(warmUp, time.Duration(maxWarmEvents/cfg.Rate*float64(time.Second)))
	if cfg.ColdStart {
		warm = 0
	}
	s.nextArrival = s.drawArrival(-int64(warm))
	return s, nil
}

// Config returns the configuration in effect, defaults applied.
func (s *Simulator) Config() Config { return s.cfg }

// Next returns the next event in event-time order and its ground-truth fraud label, nil
// when the event is not part of a fraud scenario. IngestTime is left nil for the producer.
// Returned messages are never touched again by the simulator, so callers may keep them.
func (s *Simulator) Next() (*pb.Envelope, *pb.FraudLabel) {
	for {
		for len(s.h) == 0 || s.nextArrival <= s.h[0].t {
			s.arrive(s.nextArrival)
			s.nextArrival = s.drawArrival(s.nextArrival)
		}
		ss, t := s.h[0].s, s.h[0].t
		e := s.emit(ss, t)
		var label *pb.FraudLabel
		if ss.scenario != "" && t >= 0 {
			label = s.label(ss, e)
		}
		if ss.done {
			s.h.popTop()
			s.release(ss)
		} else {
			s.seq++
			s.h[0].t, s.h[0].seq = ss.next, s.seq
			s.h.down(0)
		}
		if t >= 0 { // warm-up events before Start are dropped
			return e, label
		}
	}
}

// schedule queues ss for its next event at ss.next.
func (s *Simulator) schedule(ss *session) {
	s.seq++
	s.h.push(heapItem{t: ss.next, seq: s.seq, s: ss})
}

// drawArrival returns the next session arrival after t. With Diurnal on it thins a
// Poisson process at the curve's peak intensity (Lewis-Shedler), which is exact for any
// bounded intensity and needs no integral of the curve.
func (s *Simulator) drawArrival(t int64) int64 {
	peak := s.arrivalsPerNs * s.curveMax
	for {
		t += int64(s.rng.ExpFloat64()/peak) + 1
		if !s.cfg.Diurnal || s.float()*s.curveMax < diurnal(s.startNs+t) {
			return t
		}
	}
}

// diurnalHours is the relative session intensity at each UTC hour (normalised to mean 1
// in init): low in the small hours, rising through the day, peaking in the evening.
var diurnalHours = [24]float64{
	0.85, 0.65, 0.50, 0.40, 0.33, 0.40, 0.50, 0.65, 0.80, 0.90, 0.98, 1.05,
	1.10, 1.12, 1.12, 1.15, 1.20, 1.30, 1.45, 1.60, 1.75, 1.55, 1.30, 1.05,
}

var diurnalMax float64

func init() {
	// The mean of a periodic piecewise-linear curve is the mean of its knots.
	var sum float64
	for _, v := range diurnalHours {
		sum += v
	}
	for i := range diurnalHours {
		diurnalHours[i] *= 24 / sum
		diurnalMax = max(diurnalMax, diurnalHours[i])
	}
}

// diurnal is the day/night intensity factor at Unix time ns, mean 1 over a UTC day.
func diurnal(ns int64) float64 {
	const hour = int64(time.Hour)
	d := ns % (24 * hour)
	if d < 0 {
		d += 24 * hour
	}
	h := int(d / hour)
	f := float64(d%hour) / float64(hour)
	return diurnalHours[h]*(1-f) + diurnalHours[(h+1)%24]*f
}

// meanEventsPerArrival estimates, by drawing session plans, how many events one session
// arrival yields on average. Plans fix every count up front, so the estimate follows any
// change to the funnel's parameters without a hand-maintained formula.
func (s *Simulator) meanEventsPerArrival() float64 {
	const n = 1 << 15
	var sum int
	for range n {
		s.drawPlan(&s.plan)
		sum += s.plan.events
	}
	return float64(sum) / n
}

// Random helpers on the one PCG; the hot path avoids the interface call of rand.Rand.

func (s *Simulator) u64() uint64 { return s.pcg.Uint64() }

// float returns a uniform float64 in [0, 1).
func (s *Simulator) float() float64 { return float64(s.pcg.Uint64()>>11) * 0x1p-53 }

// intn returns a uniform int in [0, n), n < 2^32 (multiply-shift; bias below 2^-32).
func (s *Simulator) intn(n int) int { return int((s.pcg.Uint64() >> 32) * uint64(n) >> 32) }

// between returns a uniform int in [lo, hi].
func (s *Simulator) between(lo, hi int) int { return lo + s.intn(hi-lo+1) }

func (s *Simulator) chance(p float64) bool { return s.float() < p }

// geometric returns the number of failures before a success, with the given mean.
func (s *Simulator) geometric(mean float64) int {
	if mean <= 0 {
		return 0
	}
	u := 1 - s.float() // (0, 1]
	return int(math.Log(u) / math.Log(mean/(1+mean)))
}

// durUniform returns a uniform duration in [lo, hi).
func (s *Simulator) durUniform(lo, hi time.Duration) int64 {
	return int64(lo) + int64(s.float()*float64(hi-lo))
}

// durLogNormal returns a log-normal duration with the given median, clamped to [lo, hi].
func (s *Simulator) durLogNormal(median time.Duration, sigma float64, lo, hi time.Duration) int64 {
	d := time.Duration(float64(median) * math.Exp(sigma*s.rng.NormFloat64()))
	return int64(min(max(d, lo), hi))
}

// DiurnalMin is the lowest day/night intensity factor (the curve's mean is 1): a caller that
// must fit N events before a deadline plans for this rate.
func DiurnalMin() float64 {
	m := diurnalHours[0]
	for _, v := range diurnalHours {
		m = min(m, v)
	}
	return m
}

// Rebase moves the simulated clock so the next events continue from start instead of
// Config.Start. Live producers call it after New: the warm-up takes real time, and an event
// stream that is to follow the wall clock must not begin already behind it.
func (s *Simulator) Rebase(start time.Time) {
	s.startNs = start.UnixNano()
	s.cfg.Start = start
}
