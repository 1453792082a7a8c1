package archive

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	events     *prometheus.CounterVec
	skipped    *prometheus.CounterVec
	duplicates prometheus.Counter
	dupEvents  prometheus.Counter
	fenced     prometheus.Counter
	files      *prometheus.CounterVec
	rows       *prometheus.CounterVec
	bytes      *prometheus.CounterVec
	lakeErrors prometheus.Counter
	roll       prometheus.Histogram
	buffered   prometheus.Gauge
	lag        *prometheus.GaugeVec
	expired    *prometheus.CounterVec
}

// newMetrics registers the archiver's metrics on reg (nil: unregistered, still counted).
func newMetrics(reg prometheus.Registerer) metrics {
	m := metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bytebasket_archive_events_total", Help: "Events buffered for the lake, by stream.",
		}, []string{"stream"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bytebasket_archive_skipped_total", Help: "Records not archived because they are invalid (the stream role dead-letters them), by reason.",
		}, []string{"reason"}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bytebasket_archive_already_written_total", Help: "Re-read records skipped because a lake file already holds them.",
		}),
		dupEvents: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bytebasket_archive_duplicate_events_total", Help: "Records dropped because their event id is already archived in their hour.",
		}),
		fenced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bytebasket_archive_fenced_total", Help: "Partitions dropped because a newer archiver claimed them.",
		}),
		files: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bytebasket_archive_files_total", Help: "Parquet files written, by stream.",
		}, []string{"stream"}),
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bytebasket_archive_rows_written_total", Help: "Rows in written Parquet files, by stream.",
		}, []string{"stream"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bytebasket_archive_bytes_written_total", Help: "Bytes of written Parquet files, by stream.",
		}, []string{"stream"}),
		lakeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bytebasket_archive_lake_errors_total", Help: "Failed lake operations (each is retried).",
		}),
		roll: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "bytebasket_archive_roll_seconds", Help: "Time to encode and write one file.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bytebasket_archive_lag_records", Help: "Records of an owned partition not yet in a lake file (committed offset to the end).",
		}, []string{"topic", "partition"}),
		expired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bytebasket_archive_records_expired_total", Help: "Records removed by topic retention before they were archived: missing from the lake.",
		}, []string{"topic"}),
		buffered: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bytebasket_archive_buffered_bytes", Help: "Record bytes held in memory for files not yet written.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.events, m.skipped, m.duplicates, m.dupEvents, m.fenced, m.files, m.rows, m.bytes, m.lakeErrors, m.roll, m.buffered, m.lag, m.expired)
	}
	return m
}
