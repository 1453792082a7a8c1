// Package rules is the fraud role's rule language. A rule set (config/fraud-rules.yml) is a
// versioned list of rules; each tests one or more conditions when an event it decides on
// arrives, and fires when all of them hold: it adds its weight to the score and asks for its
// action. A condition is either a windowed aggregate (count, sum, distinct, avg) of the
// events the rule is fed, grouped by one attribute (user, card fingerprint, device, IP), or a
// signal of the decided event against the user's profile (a new device or country, the
// account's age, its earlier orders, the amount against the usual one), compared with a limit.
//
// Parse checks a whole set: an invalid one is refused with every problem named by rule and
// field, so whoever applies it can keep the set in force.
package rules

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/bytebasket/bytebasket/internal/event"
)

// Set is a versioned rule set; decisions record the version they were made under.
type Set struct {
	Version int64 `yaml:"version"`
	// ProfileRetention is how long a user's profile (first sighting, devices, countries,
	// cards, IPs, orders) outlives the user's last event: what the signals remember.
	ProfileRetention time.Duration `yaml:"profile_retention"`
	// ProfileWarmup: account_age does not call a user new who was first seen within this
	// long of when the role began watching the partition (an old customer it had not met
	// yet): such a user counts as old as the retention.
	ProfileWarmup time.Duration `yaml:"profile_warmup"`
	Rules         []Rule        `yaml:"rules"`
}

// DefaultProfileWarmup is the profile warm-up of a set that names none.
const DefaultProfileWarmup = 6 * time.Hour

// Warmup is the set's profile warm-up.
func (s *Set) Warmup() time.Duration {
	if s.ProfileWarmup == 0 {
		return DefaultProfileWarmup
	}
	return max(s.ProfileWarmup, 0)
}

// DefaultProfileRetention is the profile retention of a set that names none.
const DefaultProfileRetention = 30 * 24 * time.Hour

// MaxProfileRetention bounds it: the role keeps a profile per user seen that long.
const MaxProfileRetention = 90 * 24 * time.Hour

// Retention is the set's profile retention.
func (s *Set) Retention() time.Duration {
	if s.ProfileRetention == 0 {
		return DefaultProfileRetention
	}
	return s.ProfileRetention
}

// Rule is one or more conditions that must all hold.
type Rule struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	// On are the event kinds the rule aggregates and decides on.
	On []event.Kind `yaml:"on"`
	// GroupBy is the attribute the aggregates are kept per; signals need user.
	GroupBy Attribute `yaml:"group_by"`
	// The first condition is written in the rule itself; And adds more.
	Condition `yaml:",inline"`
	And       []Condition `yaml:"and"`
	// Weight is what the rule adds to the 0-100 score when it fires.
	Weight int    `yaml:"weight"`
	Action Action `yaml:"action"`
}

// Conditions are the rule's conditions, its own first.
func (r *Rule) Conditions() []Condition {
	return append([]Condition{r.Condition}, r.And...)
}

// Condition is an aggregate or a signal compared with a limit.
type Condition struct {
	// Aggregate over the window of the rule's `on` events; Field is what sum and avg add up
	// (amount) or what distinct counts (an attribute). Count needs no field.
	Aggregate Aggregate `yaml:"aggregate"`
	// Signal is a feature of the decided event against the user's profile (see Signal);
	// a condition has an aggregate or a signal, not both.
	Signal Signal    `yaml:"signal"`
	Field  Attribute `yaml:"field"`
	// Currency of the amounts a sum or avg of amount adds: money is never added across
	// currencies, so events in another currency do not count toward the rule.
	Currency string        `yaml:"currency"`
	Window   time.Duration `yaml:"window"`
	Compare  Op            `yaml:"compare"`
	Limit    float64       `yaml:"limit"`
}

// Name says what the condition measures, for reasons and logs.
func (c *Condition) Name() string {
	what := string(c.Aggregate)
	if c.Signal != "" {
		what = string(c.Signal)
	}
	if c.Field != "" {
		what += " " + string(c.Field)
	}
	if c.Window > 0 {
		what += " " + c.Window.String()
	}
	return what
}

// Signal is a feature of the decided event against its user's profile, which remembers
// each user for the set's profile retention after the user's last event. Signals are kept
// per user, so a rule with a signal groups by user.
type Signal string

// The signals.
const (
	// New: how many values of the field (device, country, card, ip) the user was first seen
	// with within the window ending at the decided event, for a user first seen before that
	// window; 0 for a user seen only within it (everything is new to a new account).
	New Signal = "new"
	// AccountAge: minutes since the user's first event in the profile.
	AccountAge Signal = "account_age"
	// PriorOrders: the user's orders before the decided one, in the profile.
	PriorOrders Signal = "prior_orders"
	// AmountVsTypical: the decided event's amount over the mean order total in its currency
	// across the partition's users (0 until that currency has a baseline).
	AmountVsTypical Signal = "amount_vs_typical"
	// AmountVsOwn: the decided event's amount over the user's own mean order total in its
	// currency (0 without earlier orders in it).
	AmountVsOwn Signal = "amount_vs_own"
	// AddressMismatch: 1 for an order whose billing and shipping countries differ, else 0.
	AddressMismatch Signal = "address_mismatch"
)

var signals = []Signal{New, AccountAge, PriorOrders, AmountVsTypical, AmountVsOwn, AddressMismatch}

// Attribute is what an event is grouped by or what is aggregated of it.
type Attribute string

// The attributes events carry (Of reads them).
const (
	User    Attribute = "user"
	Card    Attribute = "card"    // the payment fingerprint
	Device  Attribute = "device"  // the order's device, else the client's
	IP      Attribute = "ip"      // the order's IP, else the client's
	Country Attribute = "country" // the client's country
	Amount  Attribute = "amount"  // an order's total or a payment's amount, minor units
)

var (
	keys       = []Attribute{User, Card, Device, IP, Country}
	aggregates = []Aggregate{Count, Sum, Distinct, Avg}
	ops        = []Op{Greater, GreaterOrEqual, Less, LessOrEqual, Equal}
	actions    = []Action{Allow, Review, Block}
	// What rules can be fed: the events that carry money or payment attributes, and the
	// shopper activity that says which device and country a user is on.
	kinds = []event.Kind{event.KindOrderPlaced, event.KindPaymentAuthorized, event.KindPaymentFailed,
		event.KindRefund, event.KindChargeback, event.KindPageView, event.KindProductView, event.KindCartAdd,
		event.KindCheckoutStarted}
)

// Aggregate is what a rule keeps over its window.
type Aggregate string

// The aggregates.
const (
	Count    Aggregate = "count"
	Sum      Aggregate = "sum"
	Distinct Aggregate = "distinct"
	Avg      Aggregate = "avg"
)

// Op compares the aggregate with the limit.
type Op string

// The comparisons.
const (
	Greater        Op = ">"
	GreaterOrEqual Op = ">="
	Less           Op = "<"
	LessOrEqual    Op = "<="
	Equal          Op = "=="
)

// Holds reports whether value op limit.
func (o Op) Holds(value, limit float64) bool {
	switch o {
	case Greater:
		return value > limit
	case GreaterOrEqual:
		return value >= limit
	case Less:
		return value < limit
	case LessOrEqual:
		return value <= limit
	case Equal:
		return value == limit
	}
	return false
}

// Action is what a fired rule asks for; the decision takes the strongest.
type Action string

// The actions, weakest first.
const (
	Allow  Action = "allow"
	Review Action = "review"
	Block  Action = "block"
)

// Stronger reports whether a asks for more than b.
func (a Action) Stronger(b Action) bool { return slices.Index(actions, a) > slices.Index(actions, b) }

// MaxWindow bounds a rule's window: the role keeps that much history per key.
const MaxWindow = 7 * 24 * time.Hour

// Parse reads and checks a rule set. Unknown fields are errors (a misspelt field would
// otherwise be a rule that silently never fires).
func Parse(data []byte) (*Set, error) {
	var s Set
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("fraud rules: %w", err)
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

// Validate reports every problem of the set, each naming its rule and field.
// ModelReason is the rule name of a decision's reason when the fraud model asked for it; no
// rule may take it, so a decision's reasons tell the rules and the model apart.
const ModelReason = "model"

func (s *Set) Validate() error {
	var errs []error
	bad := func(rule, field, format string, a ...any) {
		errs = append(errs, fmt.Errorf("rule %q: field %q: %s", rule, field, fmt.Sprintf(format, a...)))
	}
	if s.Version <= 0 {
		errs = append(errs, errors.New(`field "version": must be a positive number, raised by every change`))
	}
	if p := s.ProfileRetention; p < 0 || p > MaxProfileRetention || p%time.Hour != 0 {
		errs = append(errs, fmt.Errorf(`field "profile_retention": %s must be whole hours, up to %s`, p, MaxProfileRetention))
	}
	if w := s.ProfileWarmup; w < 0 || w > s.Retention() || w%time.Minute != 0 {
		errs = append(errs, fmt.Errorf(`field "profile_warmup": %s must be whole minutes, up to the profile retention`, w))
	}
	if len(s.Rules) == 0 {
		errs = append(errs, errors.New(`field "rules": the set has no rules`))
	}
	seen := map[string]bool{}
	for i, r := range s.Rules {
		name := r.Name
		switch {
		case name == "":
			name = fmt.Sprintf("#%d", i+1)
			bad(name, "name", "is empty")
		case name == ModelReason:
			bad(name, "name", "is the model's reason in decisions")
		case seen[name]:
			bad(name, "name", "is used by an earlier rule")
		}
		seen[r.Name] = true
		if len(r.On) == 0 {
			bad(name, "on", "names no event kind (one of %s)", list(kinds))
		}
		for _, k := range r.On {
			if !slices.Contains(kinds, k) {
				bad(name, "on", "%q is not an event kind rules are fed (%s)", k, list(kinds))
			}
		}
		if !slices.Contains(keys, r.GroupBy) {
			bad(name, "group_by", "%q is not one of %s", r.GroupBy, list(keys))
		}
		for j, c := range r.Conditions() {
			at := func(field string) string { // the first condition's fields are the rule's own
				if j == 0 {
					return field
				}
				return fmt.Sprintf("and[%d].%s", j-1, field)
			}
			c.validate(r.GroupBy, func(field, format string, a ...any) { bad(name, at(field), format, a...) })
		}
		if r.Weight < 0 || r.Weight > 100 {
			bad(name, "weight", "%d is outside 0..100", r.Weight)
		}
		if !slices.Contains(actions, r.Action) {
			bad(name, "action", "%q is not one of %s", r.Action, list(actions))
		}
		for _, c := range r.Conditions() {
			if c.Window > s.Retention() {
				bad(name, "window", "%s is longer than the profile retention %s: a user's events would be forgotten first", c.Window, s.Retention())
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("fraud rules: invalid rule set, nothing applied:\n%w", errors.Join(errs...))
	}
	return nil
}

// validate reports the condition's problems through bad(field, ...).
func (c *Condition) validate(groupBy Attribute, bad func(field, format string, a ...any)) {
	if c.Signal != "" {
		if c.Aggregate != "" {
			bad("signal", "a condition has an aggregate or a signal, not both")
		}
		c.validateSignal(groupBy, bad)
	} else {
		c.validateAggregate(groupBy, bad)
	}
	if !slices.Contains(ops, c.Compare) {
		bad("compare", "%q is not one of %s", c.Compare, list(ops))
	}
	if c.Limit < 0 || math.IsNaN(c.Limit) || math.IsInf(c.Limit, 0) {
		bad("limit", "%v is not a finite number >= 0", c.Limit)
	}
}

func (c *Condition) validateAggregate(groupBy Attribute, bad func(field, format string, a ...any)) {
	switch c.Aggregate {
	case Count:
		if c.Field != "" {
			bad("field", "count takes no field")
		}
	case Sum, Avg:
		if c.Field != Amount {
			bad("field", "%s adds up amounts: the field must be %q", c.Aggregate, Amount)
		}
		if len(c.Currency) != 3 || strings.ToUpper(c.Currency) != c.Currency {
			bad("currency", "%q is not an ISO 4217 code (amounts are added in one currency)", c.Currency)
		}
	case Distinct:
		if !slices.Contains(keys, c.Field) {
			bad("field", "distinct counts one of %s, not %q", list(keys), c.Field)
		} else if c.Field == groupBy {
			bad("field", "distinct %s grouped by %s is always 1", c.Field, groupBy)
		}
	case "":
		bad("aggregate", "names neither an aggregate (%s) nor a signal (%s)", list(aggregates), list(signals))
	default:
		bad("aggregate", "%q is not one of %s", c.Aggregate, list(aggregates))
	}
	if c.Currency != "" && c.Aggregate != Sum && c.Aggregate != Avg {
		bad("currency", "only a sum or avg of amounts has a currency")
	}
	if c.Window <= 0 || c.Window > MaxWindow || c.Window%time.Minute != 0 {
		bad("window", "%s must be whole minutes, from 1m to %s", c.Window, MaxWindow)
	}
}

func (c *Condition) validateSignal(groupBy Attribute, bad func(field, format string, a ...any)) {
	if !slices.Contains(signals, c.Signal) {
		bad("signal", "%q is not one of %s", c.Signal, list(signals))
		return
	}
	if groupBy != User {
		bad("group_by", "signal %s is kept per user: the rule must group by user", c.Signal)
	}
	if c.Currency != "" {
		bad("currency", "signal %s takes no currency (amounts are compared in their own)", c.Signal)
	}
	if c.Signal == New {
		if !slices.Contains([]Attribute{Device, Country, Card, IP}, c.Field) {
			bad("field", "new counts one of device, country, card, ip, not %q", c.Field)
		}
		if c.Window <= 0 || c.Window > MaxWindow || c.Window%time.Minute != 0 {
			bad("window", "%s must be whole minutes, from 1m to %s", c.Window, MaxWindow)
		}
		return
	}
	if c.Field != "" {
		bad("field", "signal %s takes no field", c.Signal)
	}
	if c.Window != 0 {
		bad("window", "signal %s takes no window", c.Signal)
	}
}

func list[T ~string](vs []T) string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v)
	}
	return strings.Join(out, ", ")
}
