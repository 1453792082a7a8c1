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
	srv, stopSrv, err := ops.Start(cfg.HTTPAddr)
	if err != nil {
		return err
	}
	defer stopSrv()

	if err := ensureTopics(ctx, cfg); err != nil {
		return err
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	fmt.Fprintf(out, "bytebasket stream: kafka %v, store %s, group %s, http http://%s\n", cfg.Kafka.Brokers, cfg.Store.Backend, cfg.Stream.Group, srv.Addr())
	srv.SetHealthy(true)
	return runProcessor(ctx, cfg, st, srv)
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
	defer keepReady(ctx, srv, proc.Ready)()
	err = proc.Run(ctx)
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	slog.Info("stream processor stopped")
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
