package fraud

import "github.com/prometheus/client_golang/prometheus"

// metrics count the role's decisions; the loops' own series are bytebasket_fraud_* (first
// stage) and bytebasket_fraud_keys_* (repartition stage).
type metrics struct {
	decisions  *prometheus.CounterVec
	ruleHits   *prometheus.CounterVec
	badRekeyed prometheus.Counter
	incomplete *prometheus.CounterVec
	// transaction monitoring
	monitorMinutes, monitorLate prometheus.Counter
	monitorAlerts               *prometheus.CounterVec
	rulesVersion, modelVersion  prometheus.Gauge
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
		monitorMinutes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bytebasket_fraud_monitoring_minutes_total", Help: "Segment minutes closed and compared with their baseline (replays included).",
		}),
		monitorLate: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bytebasket_fraud_monitoring_late_events_total", Help: "Transactions that reached their segment after its minute closed, not counted.",
		}),
		monitorAlerts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bytebasket_fraud_monitoring_alerts_total", Help: "Transaction-monitoring alerts raised, by signal (replays included).",
		}, []string{"signal"}),
		rulesVersion: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bytebasket_fraud_rules_version", Help: "Version of the rule set in force.",
		}),
		modelVersion: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bytebasket_fraud_model_version", Help: "Version of the model in force (0: none; the rules alone decide).",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.decisions, m.ruleHits, m.badRekeyed, m.incomplete, m.monitorMinutes, m.monitorLate, m.monitorAlerts, m.rulesVersion, m.modelVersion)
	}
	return m
}
