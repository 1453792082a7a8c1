package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/bytebasket/bytebasket/internal/config"
	"github.com/bytebasket/bytebasket/internal/ops"
	"github.com/bytebasket/bytebasket/internal/stream"
	"github.com/prometheus/client_golang/prometheus"
)

// Stream is `bytebasket stream`: the processor against the configured Kafka and store,
// with the ops endpoints, until ctx is cancelled.
func Stream(ctx context.Context, cfg config.Config, out io.Writer) error {
	srv, st, stop, err := startRole(ctx, cfg)
	if err != nil {
		return err
	}
	defer stop()
	fmt.Fprintf(out, "bytebasket stream: kafka %v, store %s, group %s, http http://%s\n", cfg.Kafka.Brokers, cfg.Store.Backend, cfg.Stream.Group, srv.Addr())
	srv.SetHealthy(true)
	return runProcessor(ctx, cfg, st, srv)
}

// startRole does what a role over the configured Kafka and store does first: it starts the
// ops endpoints, creates missing topics and opens the store. stop undoes it.
func startRole(ctx context.Context, cfg config.Config) (srv *ops.Server, st servingStore, stop func(), err error) {
	srv, stopSrv, err := ops.Start(cfg.HTTPAddr)
	if err != nil {
		return nil, nil, nil, err
	}
	if err = ensureTopics(ctx, cfg); err == nil {
		st, err = openStore(ctx, cfg)
	}
	if err != nil {
		stopSrv()
		return nil, nil, nil, err
	}
	return srv, st, func() { _ = st.Close(); stopSrv() }, nil
}

// runProcessor runs the processor until ctx ends, keeping /readyz in step with it.
func runProcessor(ctx context.Context, cfg config.Config, st stream.Store, srv *ops.Server) error {
	var reg prometheus.Registerer
	if srv != nil {
		reg = srv.Registry
	}
	proc, err := stream.New(stream.FromConfig(cfg), cfg.Kafka, st, reg)
	if err != nil {
		return err
	}
	return runLoop(ctx, "stream processor", proc, srv)
}

// role is a stateful role as runLoop drives it.
type role interface {
	Run(ctx context.Context) error
	Ready() bool
}

// runLoop runs a stateful role until ctx ends, keeping /readyz of srv (if not nil) in step
// with it; a stop by ctx is not an error.
func runLoop(ctx context.Context, name string, loop role, srv *ops.Server) error {
	defer keepReady(ctx, srv, loop.Ready)()
	if err := loop.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	slog.Info(name + " stopped")
	return nil
}

// keepReady keeps /readyz of srv (if not nil) in step with ready until ctx ends or the
// returned stop is called; then it reports not ready (draining).
func keepReady(ctx context.Context, srv *ops.Server, ready func() bool) (stop func()) {
	if srv == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				srv.SetReady(false)
				return
			case <-t.C:
				srv.SetReady(ready())
			}
		}
	}()
	return cancel
}

// StateReset forgets the checkpoints of every partition of a stateful role's consumer
// group, so its next start reprocesses the topics from their first retained offsets: the
// recovery from an unreadable checkpoint (docs/operations.md). The group's instances must
// be stopped.
func StateReset(ctx context.Context, cfg config.Config, group string, out io.Writer) error {
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	for p := range cfg.Kafka.Partitions {
		if err := st.ResetState(ctx, group, p); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "state of group %s reset in the %s store (%d partitions): its next start reprocesses the topics\n",
		group, cfg.Store.Backend, cfg.Kafka.Partitions)
	return nil
}
