package stream

import (
	"github.com/bytebasket/bytebasket/internal/model"
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	events      *prometheus.CounterVec
	deadLetters *prometheus.CounterVec
	late        prometheus.Counter
	rows        *prometheus.CounterVec
	storeErrors prometheus.Counter
	checkpoints prometheus.Counter
	flush       *prometheus.HistogramVec
	latency     prometheus.Histogram
}

// newMetrics registers the processor's metrics on reg (nil: unregistered, still counted).
func newMetrics(reg prometheus.Registerer) metrics {
	m := metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bytebasket_stream_events_total", Help: "Valid events aggregated, by topic and kind.",
		}, []string{"topic", "kind"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bytebasket_stream_dead_letters_total", Help: "Records sent to the dead-letter topic, by reason.",
		}, []string{"reason"}),
		late: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bytebasket_stream_late_events_total", Help: "Events that arrived after their window was final: counted, not added.",
		}),
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bytebasket_stream_rows_written_total", Help: "Rows written to the serving store, by table.",
		}, []string{"table"}),
		storeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bytebasket_stream_store_errors_total", Help: "Failed store writes (each is retried).",
		}),
		checkpoints: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bytebasket_stream_checkpoints_total", Help: "Checkpoints written.",
		}),
		flush: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "bytebasket_stream_flush_seconds", Help: "Time to write one flush to the store, by kind (live, full, checkpoint).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}, []string{"kind"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "bytebasket_stream_end_to_end_seconds", Help: "Event time to the event's window being written to the store.",
			Buckets: []float64{0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.75, 0.9, 1, 1.25, 1.5, 2, 3, 5, 10, 30, 60},
		}),
	}
	if reg != nil {
		reg.MustRegister(m.events, m.deadLetters, m.late, m.rows, m.storeErrors, m.checkpoints, m.flush, m.latency)
	}
	return m
}

// countRows counts a written batch by table.
func (m metrics) countRows(b model.Batch) {
	m.rows.WithLabelValues("windows").Add(float64(len(b.Windows)))
	m.rows.WithLabelValues("tops").Add(float64(len(b.Tops)))
	m.rows.WithLabelValues("sessions").Add(float64(len(b.Sessions)))
	m.rows.WithLabelValues("session_windows").Add(float64(len(b.SessionWindows)))
	m.rows.WithLabelValues("tx_feeds").Add(float64(len(b.TxFeeds)))
	if b.Checkpoint != nil {
		m.rows.WithLabelValues("checkpoints").Inc()
	}
}
