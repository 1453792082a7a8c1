package stream

import (
	"github.com/bytebasket/bytebasket/internal/model"
	"github.com/prometheus/client_golang/prometheus"
)

// rowMetrics count what the stream writes to the serving store.
type rowMetrics struct {
	rows         *prometheus.CounterVec
	slowFailures prometheus.Counter
}

// newRowMetrics registers the row counters on reg (nil: unregistered, still counted).
func newRowMetrics(reg prometheus.Registerer) rowMetrics {
	m := rowMetrics{
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bytebasket_stream_rows_written_total", Help: "Rows written to the serving store, by table.",
		}, []string{"table"}),
		slowFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bytebasket_stream_slow_write_failures_total",
			Help: "Failed writes of the slow rows (rollups, sessions, feeds) beside the poll loop; each is retried.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.rows, m.slowFailures)
	}
	return m
}

// countRows counts a written batch by table.
func countRows(rows *prometheus.CounterVec, b model.Batch) {
	rows.WithLabelValues("windows").Add(float64(len(b.Windows)))
	rows.WithLabelValues("tops").Add(float64(len(b.Tops)))
	rows.WithLabelValues("sessions").Add(float64(len(b.Sessions)))
	rows.WithLabelValues("session_windows").Add(float64(len(b.SessionWindows)))
	rows.WithLabelValues("tx_feeds").Add(float64(len(b.TxFeeds)))
}
