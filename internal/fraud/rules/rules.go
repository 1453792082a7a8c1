// Package rules is the fraud role's rule language. A rule set (config/fraud-rules.yml) is a
// versioned list of rules; each keeps one windowed aggregate (count, sum, distinct, avg) of
// the events it is fed, grouped by one attribute (user, card fingerprint, device, IP), and
// compares it with a limit when an event it decides on arrives. A rule that fires adds its
// weight to the score and asks for its action.
//
// Parse checks a whole set: an invalid one is refused with every problem named by rule and
// field, so whoever applies it can keep the set in force.
package rules

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/bytebasket/bytebasket/internal/event"
)

// Set is a versioned rule set; decisions record the version they were made under.
type Set struct {
	Version int64  `yaml:"version"`
	Rules   []Rule `yaml:"rules"`
}

// Rule is one windowed aggregate compared with a limit.
type Rule struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	// On are the event kinds the rule aggregates and decides on.
	On []event.Kind `yaml:"on"`
	// GroupBy is the attribute the aggregate is kept per.
	GroupBy Attribute `yaml:"group_by"`
	// Aggregate over the window; Field is what sum and avg add up (amount) or what distinct
	// counts (an attribute). Count needs no field.
	Aggregate Aggregate `yaml:"aggregate"`
	Field     Attribute `yaml:"field"`
	// Currency of the amounts a sum or avg of amount adds: money is never added across
	// currencies, so events in another currency do not count toward the rule.
	Currency string        `yaml:"currency"`
	Window   time.Duration `yaml:"window"`
	Compare  Op            `yaml:"compare"`
	Limit    float64       `yaml:"limit"`
	// Weight is what the rule adds to the 0-100 score when it fires.
	Weight int    `yaml:"weight"`
	Action Action `yaml:"action"`
}

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
func (s *Set) Validate() error {
	var errs []error
	bad := func(rule, field, format string, a ...any) {
		errs = append(errs, fmt.Errorf("rule %q: field %q: %s", rule, field, fmt.Sprintf(format, a...)))
	}
	if s.Version <= 0 {
		errs = append(errs, errors.New(`field "version": must be a positive number, raised by every change`))
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
		switch r.Aggregate {
		case Count:
			if r.Field != "" {
				bad(name, "field", "count takes no field")
			}
		case Sum, Avg:
			if r.Field != Amount {
				bad(name, "field", "%s adds up amounts: the field must be %q", r.Aggregate, Amount)
			}
			if len(r.Currency) != 3 || strings.ToUpper(r.Currency) != r.Currency {
				bad(name, "currency", "%q is not an ISO 4217 code (amounts are added in one currency)", r.Currency)
			}
		case Distinct:
			if !slices.Contains(keys, r.Field) {
				bad(name, "field", "distinct counts one of %s, not %q", list(keys), r.Field)
			} else if r.Field == r.GroupBy {
				bad(name, "field", "distinct %s grouped by %s is always 1", r.Field, r.GroupBy)
			}
		default:
			bad(name, "aggregate", "%q is not one of %s", r.Aggregate, list(aggregates))
		}
		if r.Currency != "" && r.Aggregate != Sum && r.Aggregate != Avg {
			bad(name, "currency", "only a sum or avg of amounts has a currency")
		}
		if r.Window <= 0 || r.Window > MaxWindow || r.Window%time.Minute != 0 {
			bad(name, "window", "%s must be whole minutes, from 1m to %s", r.Window, MaxWindow)
		}
		if !slices.Contains(ops, r.Compare) {
			bad(name, "compare", "%q is not one of %s", r.Compare, list(ops))
		}
		if r.Limit < 0 {
			bad(name, "limit", "%v is negative", r.Limit)
		}
		if r.Weight < 0 || r.Weight > 100 {
			bad(name, "weight", "%d is outside 0..100", r.Weight)
		}
		if !slices.Contains(actions, r.Action) {
			bad(name, "action", "%q is not one of %s", r.Action, list(actions))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("fraud rules: invalid rule set, nothing applied:\n%w", errors.Join(errs...))
	}
	return nil
}

func list[T ~string](vs []T) string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v)
	}
	return strings.Join(out, ", ")
}
