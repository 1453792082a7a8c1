package fraud

import "github.com/prometheus/client_golang/prometheus"

// metrics count the role's decisions; the loops' own series are bytebasket_fraud_* (first
// stage) and bytebasket_fraud_keys_* (repartition stage).
type metrics struct {
	decisions    *prometheus.CounterVec
	ruleHits     *prometheus.CounterVec
	badRekeyed   prometheus.Counter
	incomplete   *prometheus.CounterVec
	rulesVersion prometheus.Gauge
}

// newMetrics registers the role's metrics on reg (nil: unregistered, still counted).
func newMetrics(reg prometheus.Registerer) metrics {
	m := metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bytebasket_fraud_decisions_total", Help: "Orders and payment attempts scored, by decision (replays included).",
		}, []string{"action"}),
		ruleHits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bytebasket_fraud_rule_hits_total", Help: "Times a rule fired, by rule (replays included).",
		}, []string{"rule"}),
		badRekeyed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bytebasket_fraud_repartition_unreadable_total", Help: "fraud-repartition records without a known route or with an unreadable decision, skipped (none but ours should exist).",
		}),
		incomplete: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bytebasket_fraud_missing_fields_total", Help: "Fields missing from events that rules fed them need, by field: each such event is also a dead letter (replays included).",
		}, []string{"field"}),
		rulesVersion: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bytebasket_fraud_rules_version", Help: "Version of the rule set in force.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.decisions, m.ruleHits, m.badRekeyed, m.incomplete, m.rulesVersion)
	}
	return m
}
