// Package api answers the analytics queries of docs/api.md from the serving store: one
// implementation (Service) with two transports, HTTP JSON under /api/v1/ (http.go, sse.go)
// and the gRPC AnalyticsService (grpc.go).
//
// Every answer comes from store reads made for that request: rows are per (window,
// platform, partition) and are summed here, never cached between requests, so two readers
// of the same store see the same numbers.
package api

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/bytebasket/bytebasket/internal/event"
	"github.com/bytebasket/bytebasket/internal/model"
	"golang.org/x/sync/singleflight"
)

// Store is what the API reads of the serving store; both backends provide it.
type Store interface {
	Windows(ctx context.Context, g model.Granularity, from, to time.Time) ([]model.WindowMetrics, error)
	Tops(ctx context.Context, g model.Granularity, start time.Time, dim model.TopDimension) ([]model.TopItems, error)
	Trends(ctx context.Context, g model.TrendGranularity, from, to time.Time) ([]model.TrendMetrics, error)
	TrendTops(ctx context.Context, g model.TrendGranularity, start time.Time, dim model.TopDimension) ([]model.TrendTop, error)
	SessionsByUser(ctx context.Context, userID string, limit int) ([]model.Session, error)
	RecentTransactions(ctx context.Context, kind string, limit int) ([]model.TxEvent, error)
	FraudStore
}

// Platforms are the values of the platform parameter; "all" is every platform together,
// with users counted once however many platforms they used (the stream writes these rows).
var Platforms = append([]string{model.AllPlatforms}, event.Platforms...)

// Parameter bounds and defaults of docs/api.md.
const (
	defaultWindows, maxWindows   = 30, 1440
	defaultTopN, maxTopN         = 10, 100
	defaultTxLimit, maxTxLimit   = 50, 500
	defaultUserLimit, maxUserLim = 20, 100
	defaultTrendRange            = 48 * time.Hour
	// maxTrendRange bounds one trends query (a year of days, or of hours: 8784 buckets).
	maxTrendRange = 366 * 24 * time.Hour
	maxUserIDLen  = 256
)

// ParamError is a bad request parameter: HTTP 400, gRPC INVALID_ARGUMENT.
type ParamError struct {
	Param string
	Msg   string
}

func (e *ParamError) Error() string { return e.Param + " " + e.Msg }

// StoreError is a failed store read: HTTP 503, gRPC UNAVAILABLE.
type StoreError struct{ Err error }

func (e *StoreError) Error() string { return "serving store unavailable: " + e.Err.Error() }
func (e *StoreError) Unwrap() error { return e.Err }

func storeErr(err error) error {
	if err == nil {
		return nil
	}
	return &StoreError{Err: err}
}

// Options tune a Service; the zero value is production.
type Options struct {
	// Now is the clock "live" and the defaults are relative to (time.Now if nil).
	Now func() time.Time
	// Lookback bounds how far back top looks for the latest window with data (default 7
	// days, the default retention).
	Lookback time.Duration
	// PollInterval is how often event streams check the store (default 500 ms).
	PollInterval time.Duration
	// Heartbeat is how often an idle event stream sends a comment (default 15 s).
	Heartbeat time.Duration
}

// Service answers the queries. It is safe for concurrent use.
type Service struct {
	store     Store
	now       func() time.Time
	lookback  time.Duration
	poll      time.Duration
	heartbeat time.Duration
	reads     singleflight.Group // concurrent identical window reads share one store read

	done      chan struct{} // closed by Close: event streams end
	closeOnce sync.Once
}

// New makes a Service over st.
func New(st Store, o Options) *Service {
	s := &Service{store: st, now: o.Now, lookback: o.Lookback, poll: o.PollInterval, heartbeat: o.Heartbeat, done: make(chan struct{})}
	if s.now == nil {
		s.now = time.Now
	}
	if s.lookback <= 0 {
		s.lookback = 7 * 24 * time.Hour
	}
	if s.poll <= 0 {
		s.poll = 500 * time.Millisecond
	}
	if s.heartbeat <= 0 {
		s.heartbeat = 15 * time.Second
	}
	return s
}

// Close ends every event stream (SSE and WatchLive), so a graceful shutdown does not wait
// for clients that never hang up. Plain queries keep working until the servers stop.
func (s *Service) Close() { s.closeOnce.Do(func() { close(s.done) }) }

// FunnelCounts are distinct users per funnel stage.
type FunnelCounts struct {
	Viewers  int64 `json:"viewers"`
	Carters  int64 `json:"carters"`
	Checkout int64 `json:"checkout"`
	Buyers   int64 `json:"buyers"`
}

// Window is one live window, summed over partitions.
type Window struct {
	Start             time.Time        `json:"start"`
	End               time.Time        `json:"end"`
	PageViews         int64            `json:"page_views"`
	ProductViews      int64            `json:"product_views"`
	Searches          int64            `json:"searches"`
	CartAdds          int64            `json:"cart_adds"`
	Checkouts         int64            `json:"checkouts"`
	Orders            int64            `json:"orders"`
	PaymentsFailed    int64            `json:"payments_failed"`
	Refunds           int64            `json:"refunds"`
	Chargebacks       int64            `json:"chargebacks"`
	Revenue           map[string]int64 `json:"revenue"`
	OrdersByCurrency  map[string]int64 `json:"orders_by_currency"`
	AverageOrderValue map[string]int64 `json:"average_order_value"`
	ActiveUsers       int64            `json:"active_users"`
	Funnel            FunnelCounts     `json:"funnel"`
	UpdatedAt         time.Time        `json:"updated_at"`
}

// LiveQuery selects live windows; zero fields take the defaults.
type LiveQuery struct {
	Granularity string
	Windows     int
	Platform    string
}

// LiveResult is the answer of /api/v1/live.
type LiveResult struct {
	Granularity string   `json:"granularity"`
	Platform    string   `json:"platform"`
	Windows     []Window `json:"windows"`
}

// Live returns the windows with data among the last q.Windows windows, the one holding
// now included, newest first.
func (s *Service) Live(ctx context.Context, q LiveQuery) (*LiveResult, error) {
	g, err := granularity(q.Granularity)
	if err != nil {
		return nil, err
	}
	n, err := intParam("windows", q.Windows, defaultWindows, maxWindows)
	if err != nil {
		return nil, err
	}
	platform, err := platformParam(q.Platform)
	if err != nil {
		return nil, err
	}
	to := s.now().UTC().Truncate(g.Duration()).Add(g.Duration())
	from := to.Add(-time.Duration(n) * g.Duration())
	rows, err := s.windows(ctx, g, from, to)
	if err != nil {
		return nil, err
	}
	return &LiveResult{Granularity: string(g), Platform: platform, Windows: sumWindows(rows, platform)}, nil
}

// readTimeout bounds a shared store read, which no single request's context may cancel.
const readTimeout = 10 * time.Second

// windows reads a range of window rows. Concurrent identical reads share the one in flight
// (under load the store sees one read per key at a time, not one per request); nothing is
// kept once it returns.
func (s *Service) windows(ctx context.Context, g model.Granularity, from, to time.Time) ([]model.WindowMetrics, error) {
	key := fmt.Sprintf("w/%s/%d/%d", g, from.UnixNano(), to.UnixNano())
	ch := s.reads.DoChan(key, func() (any, error) {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readTimeout)
		defer cancel()
		return s.store.Windows(rctx, g, from, to)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, storeErr(r.Err)
		}
		return r.Val.([]model.WindowMetrics), nil
	case <-ctx.Done():
		return nil, storeErr(ctx.Err())
	}
}

// sumWindows adds the partitions' rows of each window start of platform, newest first.
// Distinct users add up over partitions (a user lives in one) but not over platforms, so
// "all" has rows of its own.
func sumWindows(rows []model.WindowMetrics, platform string) []Window {
	out := []Window{}
	at := map[int64]int{} // window start -> index in out
	for i := range rows {
		r := &rows[i]
		if r.Key.Platform != platform {
			continue
		}
		k := r.Key.Start.UnixNano()
		j, ok := at[k]
		if !ok {
			j = len(out)
			at[k] = j
			start := r.Key.Start.UTC()
			out = append(out, Window{Start: start, End: start.Add(r.Key.Granularity.Duration()),
				Revenue: map[string]int64{}, OrdersByCurrency: map[string]int64{}, AverageOrderValue: map[string]int64{}})
		}
		w := &out[j]
		w.PageViews += r.PageViews
		w.ProductViews += r.ProductViews
		w.Searches += r.Searches
		w.CartAdds += r.CartAdds
		w.Checkouts += r.Checkouts
		w.Orders += r.Orders
		w.PaymentsFailed += r.PaymentsFailed
		w.Refunds += r.Refunds
		w.Chargebacks += r.Chargebacks
		addMap(w.Revenue, r.Revenue)
		addMap(w.OrdersByCurrency, r.OrdersByCurrency)
		w.ActiveUsers += r.ActiveUsers
		w.Funnel.Viewers += r.FunnelViewers
		w.Funnel.Carters += r.FunnelCarters
		w.Funnel.Checkout += r.FunnelCheckout
		w.Funnel.Buyers += r.FunnelBuyers
		if u := r.UpdatedAt.UTC(); u.After(w.UpdatedAt) {
			w.UpdatedAt = u
		}
	}
	for i := range out {
		averages(out[i].AverageOrderValue, out[i].Revenue, out[i].OrdersByCurrency)
	}
	slices.SortFunc(out, func(a, b Window) int { return b.Start.Compare(a.Start) })
	return out
}

func addMap(dst, src map[string]int64) {
	for k, v := range src {
		dst[k] += v
	}
}

// averages sets dst[c] = revenue[c] / orders[c] in minor units, rounded down, for every
// currency with orders.
func averages(dst, revenue, orders map[string]int64) {
	for c, n := range orders {
		if n > 0 {
			dst[c] = revenue[c] / n
		}
	}
}

// FunnelQuery selects the funnel of one window; zero fields take the defaults.
type FunnelQuery struct {
	Granularity string    // 1m, 5m or 1h (default)
	Start       time.Time // the window's start; zero: the window holding now
	Platform    string
}

// FunnelResult is the answer of /api/v1/funnel: the users who reached each stage in the
// window [From, To), each counted once however often they did, and the stage-to-stage rates.
type FunnelResult struct {
	From            time.Time `json:"from"`
	To              time.Time `json:"to"`
	Granularity     string    `json:"granularity"`
	Platform        string    `json:"platform"`
	Viewers         int64     `json:"viewers"`
	Carters         int64     `json:"carters"`
	Checkout        int64     `json:"checkout"`
	Buyers          int64     `json:"buyers"`
	ViewToCart      float64   `json:"view_to_cart"`
	CartToCheckout  float64   `json:"cart_to_checkout"`
	CheckoutToOrder float64   `json:"checkout_to_order"`
	ViewToOrder     float64   `json:"view_to_order"`
}

// Funnel is the funnel of one window: distinct users per stage over the whole window (a
// sum of shorter windows would count a user once per window).
func (s *Service) Funnel(ctx context.Context, q FunnelQuery) (*FunnelResult, error) {
	g := model.Hour
	if q.Granularity != "" {
		var err error
		if g, err = granularity(q.Granularity); err != nil {
			return nil, err
		}
	}
	platform, err := platformParam(q.Platform)
	if err != nil {
		return nil, err
	}
	from := s.now().UTC().Truncate(g.Duration())
	if !q.Start.IsZero() {
		if from = q.Start.UTC(); !from.Equal(from.Truncate(g.Duration())) {
			return nil, &ParamError{"start", "must be the start of a " + string(g) + " window"}
		}
	}
	to := from.Add(g.Duration())
	rows, err := s.windows(ctx, g, from, to)
	if err != nil {
		return nil, err
	}
	r := &FunnelResult{From: from, To: to, Granularity: string(g), Platform: platform}
	for i := range rows {
		w := &rows[i]
		if w.Key.Platform != platform {
			continue
		}
		r.Viewers += w.FunnelViewers
		r.Carters += w.FunnelCarters
		r.Checkout += w.FunnelCheckout
		r.Buyers += w.FunnelBuyers
	}
	r.ViewToCart = ratio(r.Carters, r.Viewers)
	r.CartToCheckout = ratio(r.Checkout, r.Carters)
	r.CheckoutToOrder = ratio(r.Buyers, r.Checkout)
	r.ViewToOrder = ratio(r.Buyers, r.Viewers)
	return r, nil
}

func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// Item is one entry of a ranking.
type Item struct {
	ID    string `json:"id"`
	Value int64  `json:"value"`
}

// TopQuery selects a live ranking; a zero Start means the latest window with data.
type TopQuery struct {
	Dimension   string
	Granularity string
	Start       time.Time
	N           int
}

// TopResult is the answer of /api/v1/top; Start is nil when no window has data.
type TopResult struct {
	Dimension   string     `json:"dimension"`
	Granularity string     `json:"granularity"`
	Start       *time.Time `json:"start"`
	Items       []Item     `json:"items"`
}

// Top merges the ranking of one window over the partitions and returns its first q.N items.
func (s *Service) Top(ctx context.Context, q TopQuery) (*TopResult, error) {
	dim, err := dimension(q.Dimension, model.TopDimensions)
	if err != nil {
		return nil, err
	}
	g, err := granularity(q.Granularity)
	if err != nil {
		return nil, err
	}
	n, err := intParam("n", q.N, defaultTopN, maxTopN)
	if err != nil {
		return nil, err
	}
	start := q.Start.UTC()
	if !q.Start.IsZero() && !start.Equal(start.Truncate(g.Duration())) {
		return nil, &ParamError{"start", fmt.Sprintf("must be the start of a %s window (aligned to %s)", g, g.Duration())}
	}
	r := &TopResult{Dimension: string(dim), Granularity: string(g), Items: []Item{}}
	if q.Start.IsZero() {
		latest, ok, err := s.latestWindow(ctx, g)
		if err != nil || !ok {
			return r, err
		}
		start = latest
	}
	r.Start = &start
	rows, err := s.store.Tops(ctx, g, start, dim)
	if err != nil {
		return nil, storeErr(err)
	}
	sum := map[string]int64{}
	for _, row := range rows {
		addMap(sum, row.Counts)
	}
	r.Items = rank(sum, n)
	return r, nil
}

// latestWindow finds the newest window of g with data: first among the last 16 windows
// (where it is while the stream runs), then one day at a time back to the lookback.
func (s *Service) latestWindow(ctx context.Context, g model.Granularity) (time.Time, bool, error) {
	to := s.now().UTC().Truncate(g.Duration()).Add(g.Duration())
	oldest := to.Add(-s.lookback)
	from := to.Add(-16 * g.Duration())
	for to.After(oldest) {
		from = maxTime(from, oldest)
		rows, err := s.store.Windows(ctx, g, from, to)
		if err != nil {
			return time.Time{}, false, storeErr(err)
		}
		var latest time.Time
		for i := range rows {
			if t := rows[i].Key.Start.UTC(); t.After(latest) {
				latest = t
			}
		}
		if !latest.IsZero() {
			return latest, true, nil
		}
		to, from = from, from.Add(-24*time.Hour)
	}
	return time.Time{}, false, nil
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// rank orders counts by value desc, id asc, and keeps the first n.
func rank(counts map[string]int64, n int) []Item {
	items := make([]Item, 0, len(counts))
	for id, v := range counts {
		items = append(items, Item{ID: id, Value: v})
	}
	slices.SortFunc(items, func(a, b Item) int { return cmp.Or(cmp.Compare(b.Value, a.Value), strings.Compare(a.ID, b.ID)) })
	return items[:min(n, len(items))]
}

// Trend is one bucket of batch history.
type Trend struct {
	Start             time.Time        `json:"start"`
	ActiveUsers       int64            `json:"active_users"`
	ProductViewers    int64            `json:"product_viewers"`
	Buyers            int64            `json:"buyers"`
	Conversion        float64          `json:"conversion"`
	PageViews         int64            `json:"page_views"`
	ProductViews      int64            `json:"product_views"`
	Searches          int64            `json:"searches"`
	CartAdds          int64            `json:"cart_adds"`
	Checkouts         int64            `json:"checkouts"`
	Orders            int64            `json:"orders"`
	PaymentsFailed    int64            `json:"payments_failed"`
	Refunds           int64            `json:"refunds"`
	Chargebacks       int64            `json:"chargebacks"`
	Revenue           map[string]int64 `json:"revenue"`
	OrdersByCurrency  map[string]int64 `json:"orders_by_currency"`
	AverageOrderValue map[string]int64 `json:"average_order_value"`
}

// TrendsQuery selects batch history; zero fields take the defaults (hour, the last 48 h,
// all platforms).
type TrendsQuery struct {
	Granularity string
	From, To    time.Time
	Platform    string
}

// TrendsResult is the answer of /api/v1/trends.
type TrendsResult struct {
	Granularity string  `json:"granularity"`
	Platform    string  `json:"platform"`
	Buckets     []Trend `json:"buckets"`
}

// Trends returns the buckets starting in [from, to), newest first. Batch writes "all" rows
// itself (distinct users of platforms do not add up), so nothing is summed here.
func (s *Service) Trends(ctx context.Context, q TrendsQuery) (*TrendsResult, error) {
	g, err := trendGranularity(q.Granularity)
	if err != nil {
		return nil, err
	}
	platform, err := platformParam(q.Platform)
	if err != nil {
		return nil, err
	}
	from, to := q.From.UTC(), q.To.UTC()
	if q.To.IsZero() {
		to = s.now().UTC()
	}
	if q.From.IsZero() {
		from = to.Add(-defaultTrendRange).Truncate(g.Duration())
	}
	if !from.Before(to) {
		return nil, &ParamError{"from", "must be before to"}
	}
	if to.Sub(from) > maxTrendRange {
		return nil, &ParamError{"from", "must be at most 366 days before to"}
	}
	rows, err := s.store.Trends(ctx, g, from, to)
	if err != nil {
		return nil, storeErr(err)
	}
	r := &TrendsResult{Granularity: string(g), Platform: platform, Buckets: []Trend{}}
	for i := range rows {
		m := &rows[i]
		if m.Key.Platform != platform {
			continue
		}
		t := Trend{Start: m.Key.Start.UTC(), ActiveUsers: m.ActiveUsers, ProductViewers: m.ProductViewers, Buyers: m.Buyers,
			Conversion: m.Conversion(), PageViews: m.PageViews, ProductViews: m.ProductViews, Searches: m.Searches,
			CartAdds: m.CartAdds, Checkouts: m.Checkouts, Orders: m.Orders, PaymentsFailed: m.PaymentsFailed,
			Refunds: m.Refunds, Chargebacks: m.Chargebacks, Revenue: map[string]int64{}, OrdersByCurrency: map[string]int64{},
			AverageOrderValue: map[string]int64{}}
		addMap(t.Revenue, m.Revenue)
		addMap(t.OrdersByCurrency, m.OrdersByCurrency)
		averages(t.AverageOrderValue, t.Revenue, t.OrdersByCurrency)
		r.Buckets = append(r.Buckets, t)
	}
	slices.SortStableFunc(r.Buckets, func(a, b Trend) int { return b.Start.Compare(a.Start) })
	return r, nil
}

// TrendTopQuery selects a ranking of one history bucket; Start and Dimension are required.
type TrendTopQuery struct {
	Granularity string
	Start       time.Time
	Dimension   string
	Platform    string
	N           int
}

// TrendTopResult is the answer of /api/v1/trends/top.
type TrendTopResult struct {
	Items []Item `json:"items"`
}

// TrendTop returns the first q.N items of a bucket's ranking.
func (s *Service) TrendTop(ctx context.Context, q TrendTopQuery) (*TrendTopResult, error) {
	g, err := trendGranularity(q.Granularity)
	if err != nil {
		return nil, err
	}
	if q.Start.IsZero() {
		return nil, &ParamError{"start", "is required (RFC 3339, the start of an hour or day bucket)"}
	}
	start := q.Start.UTC()
	if !start.Equal(start.Truncate(g.Duration())) {
		return nil, &ParamError{"start", fmt.Sprintf("must be the start of a UTC %s", g)}
	}
	dim, err := dimension(q.Dimension, model.TrendTopDimensions)
	if err != nil {
		return nil, err
	}
	platform, err := platformParam(q.Platform)
	if err != nil {
		return nil, err
	}
	n, err := intParam("n", q.N, defaultTopN, maxTopN)
	if err != nil {
		return nil, err
	}
	tops, err := s.store.TrendTops(ctx, g, start, dim)
	if err != nil {
		return nil, storeErr(err)
	}
	r := &TrendTopResult{Items: []Item{}}
	for _, t := range tops {
		if t.Key.Platform != platform {
			continue
		}
		counts := make(map[string]int64, len(t.Items))
		for _, it := range t.Items {
			counts[it.ID] = it.Value
		}
		r.Items = rank(counts, n)
	}
	return r, nil
}

// Tx is one transaction of the live feed.
type Tx struct {
	Time        time.Time `json:"time"`
	Kind        string    `json:"kind"`
	UserID      string    `json:"user_id"`
	OrderID     string    `json:"order_id"`
	AmountMinor int64     `json:"amount_minor"`
	Currency    string    `json:"currency"`
	Platform    string    `json:"platform"`
	Reason      string    `json:"reason"`
}

// TxQuery selects recent transactions; zero fields take the defaults (all kinds, 50).
type TxQuery struct {
	Kind  string
	Limit int
}

// TxResult is the answer of /api/v1/transactions.
type TxResult struct {
	Transactions []Tx `json:"transactions"`
}

// Transactions returns the newest transactions of a kind (or all), newest first.
func (s *Service) Transactions(ctx context.Context, q TxQuery) (*TxResult, error) {
	kind := cmp.Or(q.Kind, "all")
	if kind != "all" && !slices.Contains(model.TxKinds, kind) {
		return nil, &ParamError{"kind", "must be one of " + strings.Join(append(slices.Clone(model.TxKinds), "all"), ", ")}
	}
	limit, err := intParam("limit", q.Limit, defaultTxLimit, maxTxLimit)
	if err != nil {
		return nil, err
	}
	evs, err := s.store.RecentTransactions(ctx, kind, limit)
	if err != nil {
		return nil, storeErr(err)
	}
	r := &TxResult{Transactions: make([]Tx, 0, min(len(evs), limit))}
	for _, e := range evs[:min(len(evs), limit)] {
		r.Transactions = append(r.Transactions, Tx{Time: e.Time.UTC(), Kind: e.Kind, UserID: e.UserID, OrderID: e.OrderID,
			AmountMinor: e.AmountMinor, Currency: e.Currency, Platform: e.Platform, Reason: e.Reason})
	}
	return r, nil
}

// UserEvent is one of a session's recent events.
type UserEvent struct {
	Time        time.Time `json:"time"`
	Kind        string    `json:"kind"`
	ProductID   string    `json:"product_id"`
	AmountMinor int64     `json:"amount_minor"`
	Currency    string    `json:"currency"`
}

// Session is one visit of a user.
type Session struct {
	SessionID string           `json:"session_id"`
	Platform  string           `json:"platform"`
	Start     time.Time        `json:"start"`
	End       time.Time        `json:"end"`
	Events    int64            `json:"events"`
	PageViews int64            `json:"page_views"`
	CartAdds  int64            `json:"cart_adds"`
	Checkouts int64            `json:"checkouts"`
	Orders    int64            `json:"orders"`
	Revenue   map[string]int64 `json:"revenue"`
	Outcome   string           `json:"outcome"`
	Closed    bool             `json:"closed"`
	Recent    []UserEvent      `json:"recent"`
}

// UserQuery selects a user's sessions; a zero Limit takes the default (20).
type UserQuery struct {
	UserID string
	Limit  int
}

// UserResult is the answer of /api/v1/users/{id}.
type UserResult struct {
	UserID   string    `json:"user_id"`
	Sessions []Session `json:"sessions"`
}

// User returns a user's newest sessions, newest first; an unknown user has none.
func (s *Service) User(ctx context.Context, q UserQuery) (*UserResult, error) {
	if q.UserID == "" || len(q.UserID) > maxUserIDLen {
		return nil, &ParamError{"id", fmt.Sprintf("must be a user id of 1..%d bytes", maxUserIDLen)}
	}
	limit, err := intParam("limit", q.Limit, defaultUserLimit, maxUserLim)
	if err != nil {
		return nil, err
	}
	sessions, err := s.store.SessionsByUser(ctx, q.UserID, limit)
	if err != nil {
		return nil, storeErr(err)
	}
	r := &UserResult{UserID: q.UserID, Sessions: make([]Session, 0, len(sessions))}
	for _, ss := range sessions[:min(len(sessions), limit)] {
		out := Session{SessionID: ss.SessionID, Platform: ss.Platform, Start: ss.Start.UTC(), End: ss.End.UTC(),
			Events: ss.Events, PageViews: ss.PageViews, CartAdds: ss.CartAdds, Checkouts: ss.Checkouts, Orders: ss.Orders,
			Revenue: map[string]int64{}, Outcome: string(ss.Outcome), Closed: ss.Closed, Recent: make([]UserEvent, 0, len(ss.Recent))}
		addMap(out.Revenue, ss.Revenue)
		for _, e := range ss.Recent {
			out.Recent = append(out.Recent, UserEvent{Time: e.Time.UTC(), Kind: e.Kind, ProductID: e.ProductID,
				AmountMinor: e.AmountMinor, Currency: e.Currency})
		}
		r.Sessions = append(r.Sessions, out)
	}
	return r, nil
}

// Snapshot is what an event stream sends: the live?windows=1 answer of every platform.
type Snapshot map[string]*LiveResult

// snapshot reads the current 1-minute window once and sums it for every platform.
func (s *Service) snapshot(ctx context.Context) (Snapshot, error) {
	to := s.now().UTC().Truncate(time.Minute).Add(time.Minute)
	rows, err := s.store.Windows(ctx, model.Minute, to.Add(-time.Minute), to)
	if err != nil {
		return nil, storeErr(err)
	}
	snap := make(Snapshot, len(Platforms))
	for _, p := range Platforms {
		snap[p] = &LiveResult{Granularity: string(model.Minute), Platform: p, Windows: sumWindows(rows, p)}
	}
	return snap, nil
}

func granularity(v string) (model.Granularity, error) {
	if v == "" {
		return model.Minute, nil
	}
	for _, g := range model.Granularities {
		if string(g) == v {
			return g, nil
		}
	}
	return "", &ParamError{"granularity", "must be one of 1m, 5m, 1h"}
}

func trendGranularity(v string) (model.TrendGranularity, error) {
	if v == "" {
		return model.TrendHour, nil
	}
	for _, g := range model.TrendGranularities {
		if string(g) == v {
			return g, nil
		}
	}
	return "", &ParamError{"granularity", "must be one of hour, day"}
}

func dimension(v string, dims []model.TopDimension) (model.TopDimension, error) {
	names := make([]string, len(dims))
	for i, d := range dims {
		if string(d) == v {
			return d, nil
		}
		names[i] = string(d)
	}
	if v == "" {
		return "", &ParamError{"dimension", "is required: one of " + strings.Join(names, ", ")}
	}
	return "", &ParamError{"dimension", "must be one of " + strings.Join(names, ", ")}
}

func platformParam(v string) (string, error) {
	if v == "" {
		return model.AllPlatforms, nil
	}
	if !slices.Contains(Platforms, v) {
		return "", &ParamError{"platform", "must be one of " + strings.Join(Platforms, ", ")}
	}
	return v, nil
}

// intParam applies the default to 0 and checks 1..hi.
func intParam(name string, v, def, hi int) (int, error) {
	if v == 0 {
		return def, nil
	}
	if v < 1 || v > hi {
		return 0, rangeError(name, hi)
	}
	return v, nil
}

func rangeError(name string, hi int) *ParamError {
	return &ParamError{name, fmt.Sprintf("must be an integer in 1..%d", hi)}
}
