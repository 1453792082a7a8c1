package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/bytebasket/bytebasket/internal/bus"
	"github.com/bytebasket/bytebasket/internal/config"
	"github.com/bytebasket/bytebasket/internal/ops"
)

// Run is embedded mode: an in-process broker persisted under the data directory, the
// simulator producing into it, and the ops endpoints, until ctx is cancelled (SIGTERM).
// Later roles (stream, archive, serve) join here against the same broker address.
func Run(ctx context.Context, cfg config.Config, out io.Writer) error {
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	srv := ops.New()
	if err := srv.Listen(cfg.HTTPAddr); err != nil {
		return err
	}
	srvCtx, stopSrv := context.WithCancel(context.Background())
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.Serve(srvCtx) }()
	defer func() { stopSrv(); <-srvDone }()

	t0 := time.Now()
	broker, err := bus.StartEmbedded(cfg.Kafka.EmbeddedListen, cfg.DataDir)
	if err != nil {
		return err
	}
	defer broker.Close()
	cfg.Kafka.Brokers = []string{broker.Addr()}

	adm, err := newAdmin(cfg.Kafka)
	if err != nil {
		return err
	}
	err = bus.EnsureTopics(ctx, adm, bus.TopicSpecs(cfg))
	adm.Close()
	if err != nil {
		return err
	}
	prod, err := bus.NewProducer(cfg.Kafka, srv.Registry)
	if err != nil {
		return err
	}

	dataDir, _ := filepath.Abs(cfg.DataDir)
	fmt.Fprintf(out, "bytebasket embedded mode ready in %s\n", time.Since(t0).Round(time.Millisecond))
	fmt.Fprintf(out, "  kafka (embedded): %s\n", broker.Addr())
	fmt.Fprintf(out, "  http:             http://%s (/healthz /readyz /metrics)\n", srv.Addr())
	fmt.Fprintf(out, "  data dir:         %s\n", dataDir)
	srv.SetHealthy(true)
	srv.SetReady(true)

	var sum ProduceSummary
	if cfg.Sim.Enabled {
		slog.Info("simulator on", "rate", cfg.Sim.Rate, "users", cfg.Sim.Users)
		sum, err = Produce(ctx, prod, ProduceOptions{Rate: cfg.Sim.Rate, Users: cfg.Sim.Users, Seed: cfg.Sim.Seed, Diurnal: true, Labels: true}, srv.Registry)
	} else {
		<-ctx.Done()
	}
	// Draining: not ready any more, flush, then close the broker (deferred) so it persists.
	srv.SetReady(false)
	closeCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	closeErr := prod.Close(closeCtx)
	if cfg.Sim.Enabled {
		fmt.Fprintln(out, sum.String())
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return closeErr
}
