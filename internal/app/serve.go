package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/bytebasket/bytebasket/internal/api"
	"github.com/bytebasket/bytebasket/internal/config"
	"github.com/bytebasket/bytebasket/internal/dashboard"
	"github.com/bytebasket/bytebasket/internal/ops"
)

// grpcDrainTimeout bounds how long a graceful stop waits for in-flight RPCs.
const grpcDrainTimeout = 10 * time.Second

// Serve is `bytebasket serve`: the HTTP API (/api/v1/), the dashboard (/) and the ops
// endpoints on cfg.HTTPAddr, and the gRPC AnalyticsService on cfg.GRPCAddr, reading the
// configured serving store until ctx is cancelled (SIGTERM). Then it reports not ready,
// ends event streams, lets in-flight requests finish and closes the store.
func Serve(ctx context.Context, cfg config.Config, out io.Writer) error {
	srv := ops.New()
	if err := srv.Listen(cfg.HTTPAddr); err != nil {
		return err
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	stopAPI, grpcAddr, err := startAPI(cfg, st, srv)
	if err != nil {
		return err
	}
	httpCtx, stopHTTP := context.WithCancel(context.Background())
	httpDone := make(chan error, 1)
	go func() { httpDone <- srv.Serve(httpCtx) }()

	// Ready before the address is announced: whoever reads the line can use it at once.
	srv.SetHealthy(true)
	srv.SetReady(true)
	fmt.Fprintf(out, "bytebasket serve: store %s, http http://%s (/api/v1/ / /healthz /readyz /metrics), grpc %s\n",
		cfg.Store.Backend, srv.Addr(), grpcAddr)

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-httpDone:
	}
	srv.SetReady(false)
	stopAPI()
	stopHTTP()
	if serveErr == nil {
		serveErr = <-httpDone
	}
	slog.Info("serve stopped")
	return serveErr
}

// startAPI mounts the API and the dashboard on srv's mux and serves gRPC on cfg.GRPCAddr.
// stop ends event streams and stops gRPC gracefully (in-flight RPCs finish); the HTTP
// server is the caller's to shut down.
func startAPI(cfg config.Config, st api.Store, srv *ops.Server) (stop func(), grpcAddr string, err error) {
	lis, err := net.Listen("tcp", cfg.GRPCAddr)
	if err != nil {
		return nil, "", fmt.Errorf("grpc listen %s: %w", cfg.GRPCAddr, err)
	}
	svc := api.New(st, api.Options{Lookback: cfg.Retention.Duration()})
	svc.Mount(srv.Mux)
	srv.Mux.Handle("GET /", dashboard.Handler())

	gs := grpc.NewServer()
	svc.RegisterGRPC(gs)
	grpcDone := make(chan struct{})
	go func() {
		defer close(grpcDone)
		if err := gs.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			slog.Error("grpc serve", "err", err)
		}
	}()
	stop = sync.OnceFunc(func() {
		svc.Close()
		stopped := make(chan struct{})
		go func() { gs.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(grpcDrainTimeout):
			gs.Stop()
			<-stopped
		}
		<-grpcDone
	})
	return stop, lis.Addr().String(), nil
}
