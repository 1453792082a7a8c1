package fraud

import "github.com/prometheus/client_golang/prometheus"

// metrics count the role's decisions; the loop's own series are bytebasket_fraud_* too.
type metrics struct {
	decisions    *prometheus.CounterVec
	ruleHits     *prometheus.CounterVec
	skippedRules prometheus.Gauge
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
		skippedRules: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bytebasket_fraud_rules_not_evaluated", Help: "Rules of the set in force that this version does not evaluate (grouped by card, device or IP).",
		}),
		rulesVersion: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bytebasket_fraud_rules_version", Help: "Version of the rule set in force.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.decisions, m.ruleHits, m.skippedRules, m.rulesVersion)
	}
	return m
}
