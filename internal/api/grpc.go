package api

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
)

// RegisterGRPC serves s as bytebasket.v1.AnalyticsService on gs.
func (s *Service) RegisterGRPC(gs grpc.ServiceRegistrar) {
	pb.RegisterAnalyticsServiceServer(gs, grpcServer{s: s})
}

// grpcServer maps the gRPC messages onto the Service's queries and back.
type grpcServer struct {
	pb.UnimplementedAnalyticsServiceServer
	s *Service
}

// grpcError maps bad parameters to INVALID_ARGUMENT and store failures to UNAVAILABLE.
func grpcError(err error) error {
	var pe *ParamError
	switch {
	case errors.As(err, &pe):
		return status.Error(codes.InvalidArgument, pe.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	return status.Error(codes.Unavailable, err.Error())
}

// reqTime converts an optional request timestamp: unset is the zero time (the default).
func reqTime(field string, ts *timestamppb.Timestamp) (time.Time, error) {
	if ts == nil {
		return time.Time{}, nil
	}
	if err := ts.CheckValid(); err != nil {
		return time.Time{}, &ParamError{field, "is not a valid timestamp"}
	}
	return ts.AsTime(), nil
}

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func (g grpcServer) GetLive(ctx context.Context, req *pb.GetLiveRequest) (*pb.GetLiveResponse, error) {
	r, err := g.s.Live(ctx, LiveQuery{Granularity: req.GetGranularity(), Windows: int(req.GetWindows()), Platform: req.GetPlatform()})
	if err != nil {
		return nil, grpcError(err)
	}
	return liveToPB(r), nil
}

func liveToPB(r *LiveResult) *pb.GetLiveResponse {
	out := &pb.GetLiveResponse{Granularity: r.Granularity, Platform: r.Platform, Windows: make([]*pb.Window, len(r.Windows))}
	for i, w := range r.Windows {
		out.Windows[i] = &pb.Window{Start: ts(w.Start), End: ts(w.End), PageViews: w.PageViews, ProductViews: w.ProductViews,
			Searches: w.Searches, CartAdds: w.CartAdds, Checkouts: w.Checkouts, Orders: w.Orders, PaymentsFailed: w.PaymentsFailed,
			Refunds: w.Refunds, Chargebacks: w.Chargebacks, Revenue: w.Revenue, OrdersByCurrency: w.OrdersByCurrency,
			AverageOrderValue: w.AverageOrderValue, ActiveUsers: w.ActiveUsers,
			Funnel:    &pb.FunnelCounts{Viewers: w.Funnel.Viewers, Carters: w.Funnel.Carters, Checkout: w.Funnel.Checkout, Buyers: w.Funnel.Buyers},
			UpdatedAt: ts(w.UpdatedAt)}
	}
	return out
}

func (g grpcServer) GetFunnel(ctx context.Context, req *pb.GetFunnelRequest) (*pb.GetFunnelResponse, error) {
	var start time.Time
	if req.GetStart() != nil {
		var err error
		if start, err = reqTime("start", req.GetStart()); err != nil {
			return nil, grpcError(err)
		}
	}
	r, err := g.s.Funnel(ctx, FunnelQuery{Granularity: req.GetGranularity(), Start: start, Platform: req.GetPlatform()})
	if err != nil {
		return nil, grpcError(err)
	}
	return &pb.GetFunnelResponse{From: ts(r.From), To: ts(r.To), Granularity: r.Granularity, Platform: r.Platform, Viewers: r.Viewers, Carters: r.Carters,
		Checkout: r.Checkout, Buyers: r.Buyers, ViewToCart: r.ViewToCart, CartToCheckout: r.CartToCheckout,
		CheckoutToOrder: r.CheckoutToOrder, ViewToOrder: r.ViewToOrder}, nil
}

func itemsToPB(items []Item) []*pb.RankedItem {
	out := make([]*pb.RankedItem, len(items))
	for i, it := range items {
		out[i] = &pb.RankedItem{Id: it.ID, Value: it.Value}
	}
	return out
}

func (g grpcServer) GetTop(ctx context.Context, req *pb.GetTopRequest) (*pb.GetTopResponse, error) {
	start, err := reqTime("start", req.GetStart())
	if err != nil {
		return nil, grpcError(err)
	}
	r, err := g.s.Top(ctx, TopQuery{Dimension: req.GetDimension(), Granularity: req.GetGranularity(), Start: start, N: int(req.GetN())})
	if err != nil {
		return nil, grpcError(err)
	}
	out := &pb.GetTopResponse{Dimension: r.Dimension, Granularity: r.Granularity, Items: itemsToPB(r.Items)}
	if r.Start != nil {
		out.Start = ts(*r.Start)
	}
	return out, nil
}

func (g grpcServer) GetTrends(ctx context.Context, req *pb.GetTrendsRequest) (*pb.GetTrendsResponse, error) {
	from, err := reqTime("from", req.GetFrom())
	if err != nil {
		return nil, grpcError(err)
	}
	to, err := reqTime("to", req.GetTo())
	if err != nil {
		return nil, grpcError(err)
	}
	r, err := g.s.Trends(ctx, TrendsQuery{Granularity: req.GetGranularity(), From: from, To: to, Platform: req.GetPlatform()})
	if err != nil {
		return nil, grpcError(err)
	}
	out := &pb.GetTrendsResponse{Granularity: r.Granularity, Platform: r.Platform, Buckets: make([]*pb.Trend, len(r.Buckets))}
	for i, t := range r.Buckets {
		out.Buckets[i] = &pb.Trend{Start: ts(t.Start), ActiveUsers: t.ActiveUsers, ProductViewers: t.ProductViewers, Buyers: t.Buyers,
			Conversion: t.Conversion, PageViews: t.PageViews, ProductViews: t.ProductViews, Searches: t.Searches, CartAdds: t.CartAdds,
			Checkouts: t.Checkouts, Orders: t.Orders, PaymentsFailed: t.PaymentsFailed, Refunds: t.Refunds, Chargebacks: t.Chargebacks,
			Revenue: t.Revenue, OrdersByCurrency: t.OrdersByCurrency, AverageOrderValue: t.AverageOrderValue}
	}
	return out, nil
}

func (g grpcServer) GetTrendTop(ctx context.Context, req *pb.GetTrendTopRequest) (*pb.GetTrendTopResponse, error) {
	start, err := reqTime("start", req.GetStart())
	if err != nil {
		return nil, grpcError(err)
	}
	r, err := g.s.TrendTop(ctx, TrendTopQuery{Granularity: req.GetGranularity(), Start: start, Dimension: req.GetDimension(),
		Platform: req.GetPlatform(), N: int(req.GetN())})
	if err != nil {
		return nil, grpcError(err)
	}
	return &pb.GetTrendTopResponse{Items: itemsToPB(r.Items)}, nil
}

func (g grpcServer) ListTransactions(ctx context.Context, req *pb.ListTransactionsRequest) (*pb.ListTransactionsResponse, error) {
	r, err := g.s.Transactions(ctx, TxQuery{Kind: req.GetKind(), Limit: int(req.GetLimit())})
	if err != nil {
		return nil, grpcError(err)
	}
	out := &pb.ListTransactionsResponse{Transactions: make([]*pb.Transaction, len(r.Transactions))}
	for i, t := range r.Transactions {
		out.Transactions[i] = &pb.Transaction{Time: ts(t.Time), Kind: t.Kind, UserId: t.UserID, OrderId: t.OrderID,
			AmountMinor: t.AmountMinor, Currency: t.Currency, Platform: t.Platform, Reason: t.Reason}
	}
	return out, nil
}

func (g grpcServer) GetUser(ctx context.Context, req *pb.GetUserRequest) (*pb.GetUserResponse, error) {
	r, err := g.s.User(ctx, UserQuery{UserID: req.GetUserId(), Limit: int(req.GetLimit())})
	if err != nil {
		return nil, grpcError(err)
	}
	out := &pb.GetUserResponse{UserId: r.UserID, Sessions: make([]*pb.Session, len(r.Sessions))}
	for i, ss := range r.Sessions {
		p := &pb.Session{SessionId: ss.SessionID, Platform: ss.Platform, Start: ts(ss.Start), End: ts(ss.End), Events: ss.Events,
			PageViews: ss.PageViews, CartAdds: ss.CartAdds, Checkouts: ss.Checkouts, Orders: ss.Orders, Revenue: ss.Revenue,
			Outcome: ss.Outcome, Closed: ss.Closed, Recent: make([]*pb.UserEvent, len(ss.Recent))}
		for j, e := range ss.Recent {
			p.Recent[j] = &pb.UserEvent{Time: ts(e.Time), Kind: e.Kind, ProductId: e.ProductID, AmountMinor: e.AmountMinor, Currency: e.Currency}
		}
		out.Sessions[i] = p
	}
	return out, nil
}

// WatchLive streams what GET /api/v1/events does, "all" first then the platforms in order.
func (g grpcServer) WatchLive(_ *pb.WatchLiveRequest, stream grpc.ServerStreamingServer[pb.WatchLiveResponse]) error {
	err := g.s.watch(stream.Context(), func(snap Snapshot, _ []byte) error {
		out := &pb.WatchLiveResponse{}
		for _, p := range Platforms {
			out.Platforms = append(out.Platforms, liveToPB(snap[p]))
		}
		return stream.Send(out)
	}, func() error { return nil }) // HTTP/2 keeps the connection alive; nothing to send
	if err != nil && stream.Context().Err() == nil {
		return grpcError(err)
	}
	return nil
}

func (g grpcServer) ListFraudAlerts(ctx context.Context, req *pb.ListFraudAlertsRequest) (*pb.ListFraudAlertsResponse, error) {
	from, to, ds, _, err := g.s.fraudAlerts(ctx, FraudAlertsQuery{Hours: int(req.GetHours()), UserID: req.GetUserId(),
		Kind: req.GetKind(), Limit: int(req.GetLimit())})
	if err != nil {
		return nil, grpcError(err)
	}
	out := &pb.ListFraudAlertsResponse{Alerts: ds}
	if !to.IsZero() {
		out.From, out.To = ts(from), ts(to)
	}
	return out, nil
}

func (g grpcServer) GetFraudStats(ctx context.Context, req *pb.GetFraudStatsRequest) (*pb.GetFraudStatsResponse, error) {
	r, err := g.s.FraudStats(ctx, FraudStatsQuery{Hours: int(req.GetHours())})
	if err != nil {
		return nil, grpcError(err)
	}
	counts := func(m map[string]int) map[string]int64 {
		out := make(map[string]int64, len(m))
		for k, v := range m {
			out[k] = int64(v)
		}
		return out
	}
	out := &pb.GetFraudStatsResponse{From: ts(r.From), To: ts(r.To), Decisions: int64(r.Decisions), ByAction: counts(r.ByAction),
		ByKind: counts(r.ByKind), RuleHits: itemsToPB(r.RuleHits), MonitoringAlerts: int64(r.MonitoringAlerts),
		BySignal: counts(r.BySignal), LatencyP50Ms: r.LatencyP50Ms, LatencyP99Ms: r.LatencyP99Ms, Truncated: r.Truncated}
	for _, n := range r.Scores {
		out.Scores = append(out.Scores, int64(n))
	}
	if g := r.GroundTruth; g != nil {
		out.GroundTruth = &pb.FraudGroundTruth{FraudOrders: int64(g.FraudOrders), FlaggedOrders: int64(g.FlaggedOrders),
			TruePositives: int64(g.TruePositives), Precision: g.Precision, Recall: g.Recall, RecallByScenario: g.RecallByScenario,
			From: ts(g.From), Truncated: g.Truncated}
	}
	return out, nil
}
