package api_test

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bytebasket/bytebasket/internal/api"
	"github.com/bytebasket/bytebasket/internal/model"
	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
)

// The gRPC service answers from the same code as HTTP: same sums, same validation.
func TestGRPC(t *testing.T) {
	st := openEmbedded(t)
	fill(t, st)
	fillFraud(t, st)
	svc := api.New(st, api.Options{Now: clock})
	lis := bufconn.Listen(1 << 20)
	gs := grpc.NewServer()
	svc.RegisterGRPC(gs)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(func() { svc.Close(); gs.GracefulStop() })
	conn, err := grpc.NewClient("passthrough:///bufconn",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := pb.NewAnalyticsServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	live, err := c.GetLive(ctx, &pb.GetLiveRequest{Windows: 1, Platform: "web"})
	if err != nil {
		t.Fatal(err)
	}
	if len(live.Windows) != 1 {
		t.Fatalf("live: %v", live)
	}
	w := live.Windows[0]
	if live.Granularity != "1m" || w.PageViews != 403 || w.Revenue["USD"] != 1500 || w.AverageOrderValue["USD"] != 375 ||
		w.Funnel.GetViewers() != 8 || !w.Start.AsTime().Equal(midnight) || !w.UpdatedAt.AsTime().Equal(midnight.Add(61*time.Second)) {
		t.Errorf("live web window: %v", w)
	}
	top, err := c.GetTop(ctx, &pb.GetTopRequest{Dimension: "product_views", N: 2})
	if err != nil {
		t.Fatal(err)
	}
	if !top.Start.AsTime().Equal(midnight) || len(top.Items) != 2 || top.Items[0].Id != "p-3" || top.Items[0].Value != 7 || top.Items[1].Id != "p-1" {
		t.Errorf("top: %v", top)
	}
	tt, err := c.GetTrendTop(ctx, &pb.GetTrendTopRequest{Start: timestamppb.New(midnight.Add(-time.Hour)), Dimension: "product_views"})
	if err != nil || len(tt.Items) != 3 || tt.Items[0].Id != "a" {
		t.Errorf("trend top: %v %v", tt, err)
	}
	trends, err := c.GetTrends(ctx, &pb.GetTrendsRequest{})
	if err != nil || len(trends.Buckets) != 2 || trends.Buckets[0].ActiveUsers != 200 || trends.Buckets[0].Conversion != 0.25 {
		t.Errorf("trends: %v %v", trends, err)
	}
	fun, err := c.GetFunnel(ctx, &pb.GetFunnelRequest{Granularity: "1m", Start: timestamppb.New(midnight.Add(-time.Minute)), Platform: "web"})
	if err != nil || fun.Viewers != 8 || fun.ViewToOrder != 0.25 || fun.Granularity != "1m" {
		t.Errorf("funnel: %v %v", fun, err)
	}
	txs, err := c.ListTransactions(ctx, &pb.ListTransactionsRequest{Kind: model.TxRefund})
	if err != nil || len(txs.Transactions) != 1 || txs.Transactions[0].Reason != "damaged" || txs.Transactions[0].AmountMinor != 250 {
		t.Errorf("transactions: %v %v", txs, err)
	}
	user, err := c.GetUser(ctx, &pb.GetUserRequest{UserId: "u-1", Limit: 2})
	if err != nil || len(user.Sessions) != 2 || user.Sessions[0].SessionId != "s-2" || len(user.Sessions[0].Recent) != 2 ||
		user.Sessions[0].Recent[1].ProductId != "p-1" {
		t.Errorf("user: %v %v", user, err)
	}

	alerts, err := c.ListFraudAlerts(ctx, &pb.ListFraudAlertsRequest{Kind: "decision"})
	if err != nil || len(alerts.Alerts) != 3 || alerts.Alerts[1].GetEventId() != "e2" || len(alerts.Alerts[1].GetReasons()) != 3 ||
		!alerts.To.AsTime().Equal(now.Truncate(time.Second).Add(time.Second)) {
		t.Errorf("fraud alerts: %v %v", alerts, err)
	}
	byUser, err := c.ListFraudAlerts(ctx, &pb.ListFraudAlertsRequest{UserId: "u-1"})
	if err != nil || len(byUser.Alerts) != 3 || byUser.From != nil {
		t.Errorf("fraud alerts of u-1: %v %v", byUser, err)
	}
	stats, err := c.GetFraudStats(ctx, &pb.GetFraudStatsRequest{})
	if err != nil || stats.Decisions != 3 || stats.ByAction["block"] != 1 || len(stats.RuleHits) != 3 || stats.RuleHits[0].Id != "card" ||
		len(stats.Scores) != 10 || stats.MonitoringAlerts != 1 || stats.LatencyP99Ms != 30 {
		t.Errorf("fraud stats: %v %v", stats, err)
	}

	for name, call := range map[string]func() error{
		"windows":     func() error { _, err := c.GetLive(ctx, &pb.GetLiveRequest{Windows: -1}); return err },
		"granularity": func() error { _, err := c.GetLive(ctx, &pb.GetLiveRequest{Granularity: "1d"}); return err },
		"dimension":   func() error { _, err := c.GetTop(ctx, &pb.GetTopRequest{}); return err },
		"start": func() error {
			_, err := c.GetTrendTop(ctx, &pb.GetTrendTopRequest{Dimension: "product_views"})
			return err
		},
		"limit": func() error { _, err := c.ListTransactions(ctx, &pb.ListTransactionsRequest{Limit: 501}); return err },
		"id":    func() error { _, err := c.GetUser(ctx, &pb.GetUserRequest{}); return err },
		"kind":  func() error { _, err := c.ListFraudAlerts(ctx, &pb.ListFraudAlertsRequest{Kind: "x"}); return err },
		"hours": func() error { _, err := c.GetFraudStats(ctx, &pb.GetFraudStatsRequest{Hours: 1000}); return err },
	} {
		err := call()
		if s, _ := status.FromError(err); s.Code() != codes.InvalidArgument || len(s.Message()) < len(name) || s.Message()[:len(name)] != name {
			t.Errorf("bad %s: %v, want INVALID_ARGUMENT naming it", name, err)
		}
	}

	stream, err := c.WatchLive(ctx, &pb.WatchLiveRequest{})
	if err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil || len(first.Platforms) != len(api.Platforms) || first.Platforms[0].Platform != "all" || first.Platforms[0].Windows[0].PageViews != 833 {
		t.Fatalf("first WatchLive message: %v %v", first, err)
	}
	w2 := window(midnight, 2, "backend", 5)
	w2All := w2
	w2All.Key.Platform = model.AllPlatforms
	write(t, st, model.Batch{Windows: []model.WindowMetrics{w2, w2All}})
	next, err := stream.Recv()
	if err != nil || next.Platforms[0].Windows[0].PageViews != 833+w2.PageViews {
		t.Fatalf("WatchLive after a write: %v %v", next, err)
	}
	svc.Close() // shutdown ends the stream cleanly
	if _, err := stream.Recv(); err == nil {
		t.Fatal("stream still open after Close")
	}
	st.Close()
	if _, err := c.GetLive(ctx, &pb.GetLiveRequest{}); status.Code(err) != codes.Unavailable {
		t.Errorf("closed store: %v, want UNAVAILABLE", err)
	}
}
