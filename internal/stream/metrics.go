package stream

import (
	"github.com/bytebasket/bytebasket/internal/model"
	"github.com/prometheus/client_golang/prometheus"
)

// newRowMetrics registers the rows-written counter on reg (nil: unregistered, still counted).
func newRowMetrics(reg prometheus.Registerer) *prometheus.CounterVec {
	rows := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "bytebasket_stream_rows_written_total", Help: "Rows written to the serving store, by table.",
	}, []string{"table"})
	if reg != nil {
		reg.MustRegister(rows)
	}
	return rows
}

// countRows counts a written batch by table.
func countRows(rows *prometheus.CounterVec, b model.Batch) {
	rows.WithLabelValues("windows").Add(float64(len(b.Windows)))
	rows.WithLabelValues("tops").Add(float64(len(b.Tops)))
	rows.WithLabelValues("sessions").Add(float64(len(b.Sessions)))
	rows.WithLabelValues("session_windows").Add(float64(len(b.SessionWindows)))
	rows.WithLabelValues("tx_feeds").Add(float64(len(b.TxFeeds)))
}
