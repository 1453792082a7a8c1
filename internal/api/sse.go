package api

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"time"
)

// watch polls the store every poll interval and calls send with each snapshot that differs
// from the last one sent (the first one always), and beat when nothing was sent for a
// heartbeat interval. It returns when ctx ends, the Service closes, or a call fails (the
// client is gone). A failed store read sends nothing: the next poll tries again.
func (s *Service) watch(ctx context.Context, send func(Snapshot, []byte) error, beat func() error) error {
	poll := time.NewTicker(s.poll)
	defer poll.Stop()
	idle := time.NewTimer(s.heartbeat)
	defer idle.Stop()
	var last []byte
	check := func() error {
		snap, err := s.snapshot(ctx)
		if err != nil {
			if ctx.Err() == nil {
				slog.Debug("api: event stream poll", "err", err)
			}
			return nil
		}
		b, err := json.Marshal(snap)
		if err != nil || bytes.Equal(b, last) {
			return err
		}
		if err := send(snap, b); err != nil {
			return err
		}
		last = b
		idle.Reset(s.heartbeat)
		return nil
	}
	if err := check(); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.done:
			return nil
		case <-poll.C:
			if err := check(); err != nil {
				return err
			}
		case <-idle.C:
			if err := beat(); err != nil {
				return err
			}
			idle.Reset(s.heartbeat)
		}
	}
}

// serveEvents is GET /api/v1/events: Server-Sent Events, an "update" event whose data is
// {"<platform>": <the /api/v1/live?windows=1 body of that platform>, ...} whenever it
// changes, and a comment line as heartbeat.
func (s *Service) serveEvents(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		writeJSON(w, http.StatusMethodNotAllowed, errorBody{"method " + r.Method + " is not allowed: use GET"})
		return
	}
	select {
	case <-s.done: // shutting down: no new streams
		writeJSON(w, http.StatusServiceUnavailable, errorBody{"the server is shutting down"})
		return
	default:
	}
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // proxies must not buffer the stream
	w.WriteHeader(http.StatusOK)
	// A stream lives as long as the client: no server write deadline applies to it.
	_ = rc.SetWriteDeadline(time.Time{})
	write := func(b []byte) error {
		if _, err := w.Write(b); err != nil {
			return err
		}
		return rc.Flush()
	}
	if err := write([]byte("retry: 2000\n\n")); err != nil {
		return
	}
	_ = s.watch(r.Context(), func(_ Snapshot, data []byte) error {
		msg := make([]byte, 0, len(data)+32)
		msg = append(msg, "event: update\ndata: "...)
		msg = append(msg, data...)
		msg = append(msg, "\n\n"...)
		return write(msg)
	}, func() error { return write([]byte(": heartbeat\n\n")) })
}
