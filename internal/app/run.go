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
// simulator producing into it, the stream processor writing the embedded store, the
// archiver writing the local lake, and the ops endpoints, until ctx is cancelled (SIGTERM).
// Later roles (serve) join here against the same broker address.
func Run(ctx context.Context, cfg config.Config, out io.Writer) error {
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	srv, stopSrv, err := ops.Start(cfg.HTTPAddr)
	if err != nil {
		return err
	}
	defer stopSrv()

	t0 := time.Now()
	broker, err := bus.StartEmbedded(cfg.Kafka.EmbeddedListen, cfg.DataDir, bus.EmbeddedPartitionBytes(cfg))
	if err != nil {
		return err
	}
	defer broker.Close()
	cfg.Kafka.Brokers = []string{broker.Addr()}

	if err := ensureTopics(ctx, cfg); err != nil {
		return err
	}
	prod, err := bus.NewProducer(cfg.Kafka, srv.Registry)
	if err != nil {
		return err
	}
	cfg.Store.Backend = "embedded"
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	// The API reads the same store; deferred after st.Close, so it stops (streams ended,
	// in-flight requests answered) before the store closes.
	stopAPI, grpcAddr, err := startAPI(cfg, st, srv)
	if err != nil {
		return err
	}
	defer stopAPI()
	// The stream processor runs beside the simulator, on the same broker and the embedded store.
	// A role that stops with an error stops the whole run with it (never a dead role in a
	// live process): failed ends the simulator, then everything shuts down in order.
	running, failed := context.WithCancelCause(ctx)
	defer failed(nil)
	watch := func(name string, err error) error {
		if err != nil {
			failed(fmt.Errorf("%s: %w", name, err))
		}
		return err
	}
	procCtx, stopProc := context.WithCancel(ctx)
	procDone := make(chan error, 1)
	go func() { procDone <- watch("stream processor", runProcessor(procCtx, cfg, st, srv)) }()
	defer func() { stopProc(); <-procDone }()

	// The fraud role scores orders and payments into fraud-alerts; its checkpoints share the
	// store. Its readiness is its own (/metrics), not the dashboard's.
	in, err := fraudInForce(ctx, cfg)
	if err != nil {
		return err
	}
	fraudCtx, stopFraud := context.WithCancel(ctx)
	fraudDone := make(chan error, 1)
	go func() { fraudDone <- watch("fraud role", runFraud(fraudCtx, cfg, in, st, nil, srv.Registry)) }()
	defer func() {
		stopFraud()
		if err := <-fraudDone; err != nil {
			slog.Error("fraud role", "err", err)
		}
	}()

	// The archiver writes the local lake; files roll at least every minute, so batch jobs
	// see recent hours soon.
	cfg.Lake.Backend = "local"
	cfg.Archive.RollInterval = min(cfg.Archive.RollInterval, time.Minute)
	lk, err := openLake(cfg)
	if err != nil {
		return err
	}
	defer lk.Close()
	archCtx, stopArch := context.WithCancel(ctx)
	archDone := make(chan error, 1)
	go func() { archDone <- watch("archiver", runArchiver(archCtx, cfg, lk, srv.Registry, nil)) }()
	defer func() {
		stopArch()
		if err := <-archDone; err != nil {
			slog.Error("archiver", "err", err)
		}
	}()
	// The lake's share of the retention policy, hourly (cluster mode runs it from cron).
	retCtx, stopRet := context.WithCancel(ctx)
	retDone := make(chan struct{})
	go func() { defer close(retDone); scheduleLakeRetention(retCtx, lk, cfg.Retention.Duration(), time.Hour) }()
	defer func() { stopRet(); <-retDone }()
	// Trends over the local lake with DuckDB, on a schedule, into the same store.
	cfg.Batch.Engine = "duckdb"
	trendsCtx, stopTrends := context.WithCancel(ctx)
	trendsDone := make(chan struct{})
	go func() { defer close(trendsDone); scheduleTrends(trendsCtx, cfg, st, srv.Registry) }()
	defer func() { stopTrends(); <-trendsDone }()

	dataDir, _ := filepath.Abs(cfg.DataDir)
	fmt.Fprintf(out, "bytebasket embedded mode ready in %s\n", time.Since(t0).Round(time.Millisecond))
	fmt.Fprintf(out, "  kafka (embedded): %s\n", broker.Addr())
	fmt.Fprintf(out, "  http:             http://%s (dashboard /, API /api/v1/, /healthz /readyz /metrics)\n", srv.Addr())
	fmt.Fprintf(out, "  grpc:             %s (bytebasket.v1.AnalyticsService)\n", grpcAddr)
	fmt.Fprintf(out, "  store (embedded): %s\n", filepath.Join(dataDir, "store"))
	lakeDir, _ := filepath.Abs(localLakeRoot(cfg))
	fmt.Fprintf(out, "  lake (local):     %s\n", lakeDir)
	fmt.Fprintf(out, "  data dir:         %s\n", dataDir)
	srv.SetHealthy(true)

	var sum ProduceSummary
	if cfg.Sim.Enabled {
		slog.Info("simulator on", "rate", cfg.Sim.Rate, "users", cfg.Sim.Users)
		sum, err = Produce(running, prod, ProduceOptions{Rate: cfg.Sim.Rate, Users: cfg.Sim.Users, Seed: cfg.Sim.Seed, Diurnal: true, Labels: true}, srv.Registry)
	} else {
		<-running.Done()
	}
	// Draining: flush the producer; deferred, the processor checkpoints, then the store and
	// the broker close (in that order) and persist.
	srv.SetReady(false)
	closeCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	closeErr := prod.Close(closeCtx)
	if cfg.Sim.Enabled {
		fmt.Fprintln(out, sum.String())
	}
	if cause := context.Cause(running); ctx.Err() == nil && cause != nil {
		return cause // a role failed
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return closeErr
}
