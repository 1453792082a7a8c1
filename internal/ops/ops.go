// Package ops serves the endpoints every long-running role exposes: /healthz (the process
// is up and finished starting), /readyz (it accepts work; false while draining) and
// /metrics (Prometheus). Roles mount their own handlers on the same mux.
package ops

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Server is the ops HTTP server of one process.
type Server struct {
	Registry *prometheus.Registry
	Mux      *http.ServeMux

	healthy atomic.Bool
	ready   atomic.Bool
	srv     *http.Server
	ln      net.Listener
}

// New makes a server with a fresh registry holding the Go and process collectors.
func New() *Server {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s := &Server{Registry: reg, Mux: http.NewServeMux()}
	s.Mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	s.Mux.HandleFunc("GET /healthz", probe(&s.healthy, "starting"))
	s.Mux.HandleFunc("GET /readyz", probe(&s.ready, "not ready"))
	// Profiles of a running role (go tool pprof http://HOST/debug/pprof/profile); the ops
	// address is an operator's, like /metrics.
	s.Mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	s.Mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	s.Mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	return s
}

func probe(flag *atomic.Bool, downText string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !flag.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, downText)
			return
		}
		fmt.Fprintln(w, "ok")
	}
}

// SetHealthy marks start-up as finished.
func (s *Server) SetHealthy(v bool) { s.healthy.Store(v) }

// SetReady marks whether the process takes work; set false first thing when draining.
func (s *Server) SetReady(v bool) { s.ready.Store(v) }

// Listen binds addr now, so a port conflict fails start-up instead of surfacing later.
func (s *Server) Listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("ops http listen %s: %w", addr, err)
	}
	s.ln = ln
	s.srv = &http.Server{Handler: s.Mux, ReadHeaderTimeout: 5 * time.Second}
	return nil
}

// Addr is the bound address (useful with port 0).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve runs until ctx is done, then shuts down gracefully.
func (s *Server) Serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("ops http: %w", err)
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(shutCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		slog.Warn("ops http shutdown", "err", err)
	}
	return nil
}

// Start makes a server, binds addr and serves in the background until the returned stop
// function is called (which waits for a graceful shutdown).
func Start(addr string) (*Server, func(), error) {
	s := New()
	if err := s.Listen(addr); err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	return s, func() { cancel(); <-done }, nil
}
