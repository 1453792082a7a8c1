package stateful

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the loop's series, named bytebasket_<role>_...: the stream's keep the names
// they had before the loop was shared.
type metrics struct {
	events         *prometheus.CounterVec
	deadLetters    *prometheus.CounterVec
	duplicates     prometheus.Counter
	late           prometheus.Counter
	storeErrors    prometheus.Counter
	fenced         prometheus.Counter
	checkpoints    *prometheus.CounterVec
	ckptBytes      prometheus.Histogram
	ckptSeconds    prometheus.Histogram
	stateBytes     *prometheus.GaugeVec
	dedupIDs       *prometheus.GaugeVec
	stateLate      *prometheus.GaugeVec
	stateDups      *prometheus.GaugeVec
	restoreSecs    prometheus.Histogram
	restoreBytes   prometheus.Counter
	lag            *prometheus.GaugeVec
	expired        *prometheus.CounterVec
	txns           *prometheus.CounterVec
	replayedOutput prometheus.Counter
	stalled        prometheus.Gauge
	flush          *prometheus.HistogramVec
	latency        prometheus.Histogram
}

func newMetrics(role string, reg prometheus.Registerer) *metrics {
	name := func(s string) string { return "bytebasket_" + role + "_" + s }
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: name("events_total"), Help: "Valid events applied, by topic and kind.",
		}, []string{"topic", "kind"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: name("dead_letters_total"), Help: "Records sent to the dead-letter topic, by reason.",
		}, []string{"reason"}),
		txns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: name("transactions_total"), Help: "Kafka transactions of a transactional role, by outcome (committed, aborted).",
		}, []string{"outcome"}),
		replayedOutput: prometheus.NewCounter(prometheus.CounterOpts{
			Name: name("replayed_output_total"), Help: "Output records not produced again while replaying what an earlier owner committed.",
		}),
		expired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: name("records_expired_total"), Help: "Records removed by topic retention before they were read: lost to this role.",
		}, []string{"topic"}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: name("duplicate_events_total"), Help: "Events dropped because their event id was already seen.",
		}),
		late: prometheus.NewCounter(prometheus.CounterOpts{
			Name: name("late_events_total"), Help: "Events that arrived after their window was final: counted, not added.",
		}),
		storeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: name("store_errors_total"), Help: "Failed writes and reads of the store (each is retried).",
		}),
		fenced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: name("fenced_total"), Help: "Partitions dropped because a newer owner claimed them.",
		}),
		checkpoints: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: name("checkpoints_total"), Help: "Checkpoints committed, by kind (changes, full).",
		}, []string{"kind"}),
		ckptBytes: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: name("checkpoint_bytes"), Help: "Bytes written by one checkpoint.",
			Buckets: prometheus.ExponentialBuckets(1024, 4, 10),
		}),
		ckptSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: name("checkpoint_seconds"), Help: "Time to write one checkpoint (dead letters, log, head).",
			Buckets: prometheus.ExponentialBuckets(0.002, 2, 14),
		}),
		stateBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: name("state_bytes"), Help: "Bytes a restore of the partition reads: the last full snapshot and the changes since.",
		}, []string{"partition"}),
		dedupIDs: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: name("dedup_ids"), Help: "Event ids remembered for deduplication.",
		}, []string{"partition"}),
		stateLate: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: name("partition_late_events"), Help: "Events counted late by the partition's state since it began (carried across restarts).",
		}, []string{"partition"}),
		stateDups: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: name("partition_duplicate_events"), Help: "Events dropped as copies by the partition's state since it began (carried across restarts).",
		}, []string{"partition"}),
		restoreSecs: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: name("restore_seconds"), Help: "Time to claim a partition and restore its state.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}),
		restoreBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: name("restore_bytes_total"), Help: "Checkpoint bytes read by restores.",
		}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: name("lag_records"), Help: "Records behind the last stable offset, by topic and partition.",
		}, []string{"topic", "partition"}),
		stalled: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: name("stalled"), Help: "1 while writes to the store fail and polling is stopped.",
		}),
		flush: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: name("flush_seconds"), Help: "Time to write one flush, by kind (live, full, checkpoint).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}, []string{"kind"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: name("end_to_end_seconds"), Help: "Event time to the flush that wrote the event's output.",
			Buckets: []float64{0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.75, 0.9, 1, 1.25, 1.5, 2, 3, 5, 10, 30, 60},
		}),
	}
	if reg != nil {
		reg.MustRegister(m.events, m.deadLetters, m.duplicates, m.late, m.storeErrors, m.fenced, m.checkpoints,
			m.ckptBytes, m.ckptSeconds, m.stateBytes, m.dedupIDs, m.stateLate, m.stateDups, m.restoreSecs, m.restoreBytes, m.lag, m.expired, m.txns, m.replayedOutput, m.stalled,
			m.flush, m.latency)
	}
	return m
}

// forget drops a partition's gauges when it is given up.
func (m *metrics) forget(part int32, topics []string) {
	p := strconv.Itoa(int(part))
	m.stateBytes.DeleteLabelValues(p)
	m.dedupIDs.DeleteLabelValues(p)
	m.stateLate.DeleteLabelValues(p)
	m.stateDups.DeleteLabelValues(p)
	for _, t := range topics {
		m.lag.DeleteLabelValues(t, p)
	}
}
