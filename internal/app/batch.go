package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/bytebasket/bytebasket/internal/batch"
	"github.com/bytebasket/bytebasket/internal/batch/duckdb"
	"github.com/bytebasket/bytebasket/internal/batch/spark"
	"github.com/bytebasket/bytebasket/internal/config"
	"github.com/prometheus/client_golang/prometheus"
)

// openEngine is the batch engine factory: the engine named by batch.engine. DuckDB reads
// the lake from local disk, so it needs the local lake; Spark reads it by spark.lake_uri.
func openEngine(ctx context.Context, cfg config.Config) (batch.Engine, error) {
	switch cfg.Batch.Engine {
	case "duckdb":
		if cfg.Lake.Backend != "local" {
			return nil, fmt.Errorf("batch engine duckdb reads a local lake; lake.backend is %q (use batch.engine spark)", cfg.Lake.Backend)
		}
		return duckdb.Open(localLakeRoot(cfg))
	case "spark":
		if cfg.Spark.LakeURI == "" {
			return nil, fmt.Errorf("batch engine spark needs spark.lake_uri: where Spark finds the lake")
		}
		return spark.Connect(ctx, cfg.Spark)
	default:
		return nil, fmt.Errorf("batch engine %q is not one of duckdb, spark", cfg.Batch.Engine)
	}
}

// RunTrends computes the hourly and daily trends of [from, to) on the configured engine and
// writes them to sink (an open serving store). Each granularity's range widens to whole
// buckets, and rows are upserted whole, so running it again, or over overlapping ranges
// (as a schedule does), rewrites the same rows.
func RunTrends(ctx context.Context, cfg config.Config, sink batch.Sink, from, to time.Time) (batch.Summary, error) {
	eng, err := openEngine(ctx, cfg)
	if err != nil {
		return batch.Summary{}, err
	}
	defer eng.Close()
	return batch.Run(ctx, eng, sink, from, to)
}

// BatchTrends is `bytebasket batch trends`: RunTrends into the configured store, then a
// one-line summary on out.
func BatchTrends(ctx context.Context, cfg config.Config, from, to time.Time, out io.Writer) error {
	if !from.Before(to) {
		return fmt.Errorf("batch trends: from %s is not before to %s", from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	s, err := RunTrends(ctx, cfg, st, from, to)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, s)
	return nil
}

// scheduleTrends runs RunTrends every cfg.Batch.Interval over the last cfg.Batch.Lookback
// until ctx ends (embedded mode). A failed run is logged and retried at the next tick: the
// lake and the store are unchanged by it.
func scheduleTrends(ctx context.Context, cfg config.Config, sink batch.Sink, reg prometheus.Registerer) {
	runs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "bytebasket_trends_runs_total", Help: "Scheduled trends runs, by result (ok, error).",
	}, []string{"result"})
	rows := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "bytebasket_trends_rows_written_total", Help: "Trend rows written by scheduled runs.",
	})
	last := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "bytebasket_trends_last_success_timestamp_seconds", Help: "When the last scheduled trends run succeeded.",
	})
	if reg != nil {
		reg.MustRegister(runs, rows, last)
	}
	t := time.NewTicker(cfg.Batch.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		s, err := RunTrends(ctx, cfg, sink, now.Add(-cfg.Batch.Lookback), now)
		if err != nil {
			if ctx.Err() == nil {
				runs.WithLabelValues("error").Inc()
				slog.Warn("scheduled trends", "err", err)
			}
			continue
		}
		runs.WithLabelValues("ok").Inc()
		rows.Add(float64(s.Rows()))
		last.SetToCurrentTime()
		slog.Info("scheduled trends", "summary", s.String())
	}
}
