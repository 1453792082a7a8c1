package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/bytebasket/bytebasket/internal/archive"
	"github.com/bytebasket/bytebasket/internal/config"
	"github.com/bytebasket/bytebasket/internal/lake"
	"github.com/bytebasket/bytebasket/internal/ops"
	"github.com/prometheus/client_golang/prometheus"
)

// Archive is `bytebasket archive`: Kafka -> Parquet files in the configured lake, with the
// ops endpoints, until ctx is cancelled.
func Archive(ctx context.Context, cfg config.Config, out io.Writer) error {
	srv, stopSrv, err := ops.Start(cfg.HTTPAddr)
	if err != nil {
		return err
	}
	defer stopSrv()
	if err := ensureTopics(ctx, cfg); err != nil {
		return err
	}
	lk, err := openLake(cfg)
	if err != nil {
		return err
	}
	defer lk.Close()
	fmt.Fprintf(out, "bytebasket archive: kafka %v, lake %s %s, group %s, http http://%s\n",
		cfg.Kafka.Brokers, cfg.Lake.Backend, cfg.Lake.Root, cfg.Archive.Group, srv.Addr())
	srv.SetHealthy(true)
	return runArchiver(ctx, cfg, lk, srv.Registry, srv)
}

// runArchiver runs the archiver until ctx ends, keeping /readyz of ready (if not nil) in
// step with it.
func runArchiver(ctx context.Context, cfg config.Config, lk lake.Backend, reg prometheus.Registerer, ready *ops.Server) error {
	a, err := archive.New(archive.FromConfig(cfg), &cfg.Kafka, lk, reg)
	if err != nil {
		return err
	}
	defer keepReady(ctx, ready, a.Ready)()
	err = a.Run(ctx)
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	slog.Info("archiver stopped")
	return nil
}

// scheduleLakeRetention deletes expired lake partitions every interval until ctx ends: in
// embedded mode nobody runs `bytebasket retention` from cron.
func scheduleLakeRetention(ctx context.Context, lk lake.Backend, retention, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		dirs, err := lake.DeleteExpired(ctx, lk, time.Now().Add(-retention))
		if err != nil && ctx.Err() == nil {
			slog.Warn("lake retention", "err", err)
		} else if len(dirs) > 0 {
			slog.Info("lake retention", "deleted", len(dirs))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Retention is `bytebasket retention`: deletes lake partitions older than retention.days.
// Topic retention and the store's TTLs follow the same setting where they are created
// (`topics create`, `schema apply`); this is the lake's share.
func Retention(ctx context.Context, cfg config.Config, dryRun bool, out io.Writer) error {
	lk, err := openLake(cfg)
	if err != nil {
		return err
	}
	defer lk.Close()
	cutoff := time.Now().Add(-cfg.Retention.Duration())
	var dirs []string
	if dryRun {
		dirs, err = lake.Expired(ctx, lk, cutoff)
	} else {
		dirs, err = lake.DeleteExpired(ctx, lk, cutoff)
	}
	verb := "deleted"
	if dryRun {
		verb = "would delete"
	}
	for _, d := range dirs {
		fmt.Fprintf(out, "%s %s\n", verb, d)
	}
	fmt.Fprintf(out, "bytebasket retention: %s %d lake partitions older than %s (%d days)\n",
		verb, len(dirs), cutoff.UTC().Format(time.RFC3339), cfg.Retention.Days)
	return err
}
