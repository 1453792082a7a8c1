package api

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Handler serves /api/v1/ (every path under /api/: unknown ones are a JSON 404).
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	get := func(pattern string, h func(http.ResponseWriter, *http.Request) (any, error)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				w.Header().Set("Allow", "GET, HEAD")
				writeJSON(w, http.StatusMethodNotAllowed, errorBody{"method " + r.Method + " is not allowed: use GET"})
				return
			}
			v, err := h(w, r)
			if err != nil {
				writeError(w, r, err)
				return
			}
			writeJSON(w, http.StatusOK, v)
		})
	}
	get("/api/v1/live", s.httpLive)
	get("/api/v1/funnel", s.httpFunnel)
	get("/api/v1/top", s.httpTop)
	get("/api/v1/trends", s.httpTrends)
	get("/api/v1/trends/top", s.httpTrendTop)
	get("/api/v1/transactions", s.httpTransactions)
	get("/api/v1/users/{id}", s.httpUser)
	get("/api/v1/fraud/alerts", s.httpFraudAlerts)
	get("/api/v1/fraud/stats", s.httpFraudStats)
	mux.HandleFunc("/api/v1/events", s.serveEvents)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, errorBody{"no such endpoint: " + r.URL.Path + " (see docs/api.md)"})
	})
	return mux
}

// Mount serves the API on mux under /api/, beside other handlers (the ops endpoints and a
// "GET /" dashboard): one pattern per method, since a method-less "/api/" would conflict
// with "GET /".
func (s *Service) Mount(mux *http.ServeMux) {
	h := s.Handler()
	for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"} {
		mux.Handle(m+" /api/", h)
	}
}

type errorBody struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil { // only our own types are marshalled: this is a bug, not bad input
		slog.Error("api: encode response", "err", err)
		status, b = http.StatusInternalServerError, []byte(`{"error":"internal error encoding the response"}`)
	}
	b = append(b, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func writeError(w http.ResponseWriter, r *http.Request, err error) {
	var pe *ParamError
	if errors.As(err, &pe) {
		writeJSON(w, http.StatusBadRequest, errorBody{pe.Error()})
		return
	}
	if r.Context().Err() == nil {
		slog.Warn("api: store read failed", "path", r.URL.Path, "err", err)
	}
	writeJSON(w, http.StatusServiceUnavailable, errorBody{"the serving store is unavailable; try again"})
}

// query reads parameters, remembering the first bad one.
type query struct {
	v   url.Values
	err error
}

func (q *query) str(name string) string { return q.v.Get(name) }

// int parses an integer parameter in 1..hi; absent is 0 (the default).
func (q *query) int(name string, hi int) int {
	s := q.v.Get(name)
	if s == "" || q.err != nil {
		return 0
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > hi {
		q.err = rangeError(name, hi)
		return 0
	}
	return n
}

// time parses an RFC 3339 parameter; absent is the zero time (the default).
func (q *query) time(name string) time.Time {
	s := q.v.Get(name)
	if s == "" || q.err != nil {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		q.err = &ParamError{name, "must be an RFC 3339 time such as 2026-11-24T09:00:00Z"}
		return time.Time{}
	}
	return t
}

func (s *Service) httpLive(_ http.ResponseWriter, r *http.Request) (any, error) {
	q := &query{v: r.URL.Query()}
	lq := LiveQuery{Granularity: q.str("granularity"), Windows: q.int("windows", maxWindows), Platform: q.str("platform")}
	if q.err != nil {
		return nil, q.err
	}
	return s.Live(r.Context(), lq)
}

func (s *Service) httpFunnel(_ http.ResponseWriter, r *http.Request) (any, error) {
	q := &query{v: r.URL.Query()}
	fq := FunnelQuery{Granularity: q.str("granularity"), Start: q.time("start"), Platform: q.str("platform")}
	if q.err != nil {
		return nil, q.err
	}
	return s.Funnel(r.Context(), fq)
}

func (s *Service) httpTop(_ http.ResponseWriter, r *http.Request) (any, error) {
	q := &query{v: r.URL.Query()}
	tq := TopQuery{Dimension: q.str("dimension"), Granularity: q.str("granularity"), Start: q.time("start"), N: q.int("n", maxTopN)}
	if q.err != nil {
		return nil, q.err
	}
	return s.Top(r.Context(), tq)
}

func (s *Service) httpTrends(_ http.ResponseWriter, r *http.Request) (any, error) {
	q := &query{v: r.URL.Query()}
	tq := TrendsQuery{Granularity: q.str("granularity"), From: q.time("from"), To: q.time("to"), Platform: q.str("platform")}
	if q.err != nil {
		return nil, q.err
	}
	return s.Trends(r.Context(), tq)
}

func (s *Service) httpTrendTop(_ http.ResponseWriter, r *http.Request) (any, error) {
	q := &query{v: r.URL.Query()}
	tq := TrendTopQuery{Granularity: q.str("granularity"), Start: q.time("start"), Dimension: q.str("dimension"),
		Platform: q.str("platform"), N: q.int("n", maxTopN)}
	if q.err != nil {
		return nil, q.err
	}
	return s.TrendTop(r.Context(), tq)
}

func (s *Service) httpTransactions(_ http.ResponseWriter, r *http.Request) (any, error) {
	q := &query{v: r.URL.Query()}
	tq := TxQuery{Kind: q.str("kind"), Limit: q.int("limit", maxTxLimit)}
	if q.err != nil {
		return nil, q.err
	}
	return s.Transactions(r.Context(), tq)
}

func (s *Service) httpUser(_ http.ResponseWriter, r *http.Request) (any, error) {
	q := &query{v: r.URL.Query()}
	uq := UserQuery{UserID: r.PathValue("id"), Limit: q.int("limit", maxUserLim)}
	if q.err != nil {
		return nil, q.err
	}
	return s.User(r.Context(), uq)
}

func (s *Service) httpFraudAlerts(_ http.ResponseWriter, r *http.Request) (any, error) {
	q := &query{v: r.URL.Query()}
	fq := FraudAlertsQuery{Hours: q.int("hours", maxFraudHours), UserID: q.str("user"), Kind: q.str("kind"), Limit: q.int("limit", maxFraudLimit)}
	if q.err != nil {
		return nil, q.err
	}
	return s.FraudAlerts(r.Context(), fq)
}

func (s *Service) httpFraudStats(_ http.ResponseWriter, r *http.Request) (any, error) {
	q := &query{v: r.URL.Query()}
	fq := FraudStatsQuery{Hours: q.int("hours", maxFraudHours)}
	if q.err != nil {
		return nil, q.err
	}
	return s.FraudStats(r.Context(), fq)
}
