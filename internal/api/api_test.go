package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bytebasket/bytebasket/internal/api"
	"github.com/bytebasket/bytebasket/internal/config"
	"github.com/bytebasket/bytebasket/internal/model"
	"github.com/bytebasket/bytebasket/internal/store/cassandra"
	"github.com/bytebasket/bytebasket/internal/store/embedded"
	"github.com/bytebasket/bytebasket/internal/testenv"
)

// writableStore is a real serving store the tests fill through its writers.
type writableStore interface {
	api.Store
	Claim(ctx context.Context, group string, partition int32) (model.Fence, []byte, error)
	Write(ctx context.Context, f model.Fence, b model.Batch) error
	WriteTrends(ctx context.Context, t model.Trends) error
}

// write writes b as the owner of a test partition.
func write(t *testing.T, st writableStore, b model.Batch) {
	t.Helper()
	f, _, err := st.Claim(context.Background(), "api-test", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Write(context.Background(), f, b); err != nil {
		t.Fatal(err)
	}
}

// allRow is the "all platforms" row the stream writes beside web and ios: their counts
// summed, and distinct users fewer than the sum (some used both platforms).
func allRow(web, ios model.WindowMetrics) model.WindowMetrics {
	a := web
	a.Key.Platform = model.AllPlatforms
	a.PageViews += ios.PageViews
	a.ProductViews += ios.ProductViews
	a.Searches += ios.Searches
	a.CartAdds += ios.CartAdds
	a.Checkouts += ios.Checkouts
	a.Orders += ios.Orders
	a.PaymentsFailed += ios.PaymentsFailed
	a.Refunds += ios.Refunds
	a.Chargebacks += ios.Chargebacks
	a.Revenue, a.OrdersByCurrency = map[string]int64{}, map[string]int64{}
	for _, w := range []model.WindowMetrics{web, ios} {
		for c, v := range w.Revenue {
			a.Revenue[c] += v
		}
		for c, v := range w.OrdersByCurrency {
			a.OrdersByCurrency[c] += v
		}
	}
	a.ActiveUsers, a.FunnelViewers, a.FunnelCarters, a.FunnelCheckout, a.FunnelBuyers = 8, 6, 5, 3, 2
	return a
}

// midnight is a UTC day boundary: live windows straddle it, so Cassandra reads two days.
var midnight = time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)

// now is the tests' clock: inside the 00:00 minute.
var now = midnight.Add(30 * time.Second)

func clock() time.Time { return now }

func openEmbedded(t *testing.T) *embedded.Store {
	t.Helper()
	st, err := embedded.Open(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// openCassandra applies the schema to a throwaway keyspace of the real Cassandra.
func openCassandra(t *testing.T) *cassandra.Store {
	t.Helper()
	cfg := config.Default().Cassandra
	cfg.Hosts = []string{testenv.Addr(t, testenv.Cassandra)}
	cfg.Keyspace = fmt.Sprintf("it_api_%d", time.Now().UnixNano())
	ctx := context.Background()
	s, err := cassandra.Connect(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = s.Query("DROP KEYSPACE IF EXISTS " + cfg.Keyspace).Exec()
		s.Close()
	})
	if _, err := cassandra.ApplySchema(ctx, s, cfg, 48*time.Hour); err != nil {
		t.Fatal(err)
	}
	st, err := cassandra.NewStore(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// window is one row: page views web p0 = 1, web p1 = 2, ios p0 = 10, ios p1 = 20, plus
// 100*i; revenue and orders differ per row so sums are checkable.
func window(start time.Time, i int, platform string, p int32) model.WindowMetrics {
	base := map[string]int64{"web0": 1, "web1": 2, "ios0": 10, "ios1": 20}[fmt.Sprint(platform, p)]
	w := model.WindowMetrics{
		Key:       model.WindowKey{Granularity: model.Minute, Start: start, Platform: platform, Partition: p},
		PageViews: base + int64(100*i), ProductViews: 2, Searches: 3, CartAdds: 4, Checkouts: 5, Orders: 1,
		PaymentsFailed: 6, Refunds: 7, Chargebacks: 8,
		ActiveUsers: 5, FunnelViewers: 4, FunnelCarters: 3, FunnelCheckout: 2, FunnelBuyers: 1,
		UpdatedAt: start.Add(time.Minute + time.Duration(p)*time.Second),
	}
	switch fmt.Sprint(platform, p) {
	case "web0":
		w.Revenue, w.OrdersByCurrency = map[string]int64{"USD": 1000}, map[string]int64{"USD": 3}
	case "web1":
		w.Revenue, w.OrdersByCurrency = map[string]int64{"USD": 500, "EUR": 300}, map[string]int64{"USD": 1, "EUR": 1}
	case "ios0":
		w.Revenue, w.OrdersByCurrency = map[string]int64{"EUR": 700}, map[string]int64{"EUR": 2}
	}
	return w
}

var (
	tTx0 = midnight.Add(-3 * time.Minute)
	tTx1 = midnight.Add(-2 * time.Minute)
	tTx2 = midnight.Add(-1 * time.Minute)
	tTx3 = midnight.Add(10 * time.Second)
)

func fill(t *testing.T, st writableStore) {
	t.Helper()
	var b model.Batch
	for i, m := range []int{-2, -1, 0} {
		for p := range int32(2) {
			start := midnight.Add(time.Duration(m) * time.Minute)
			web, ios := window(start, i, "web", p), window(start, i, "ios", p)
			b.Windows = append(b.Windows, web, ios, allRow(web, ios))
		}
	}
	// Outside live?windows=3 (23:57) and another granularity: neither may be counted.
	old := window(midnight.Add(-3*time.Minute), 50, "web", 0)
	oldAll := old
	oldAll.Key.Platform = model.AllPlatforms
	b.Windows = append(b.Windows, old, oldAll)
	five := window(midnight.Add(-5*time.Minute), 70, "web", 0)
	five.Key.Granularity = model.FiveMinute
	b.Windows = append(b.Windows, five)
	b.Tops = []model.TopItems{
		{Granularity: model.Minute, Start: midnight, Dimension: model.TopProductViews, Partition: 0, Counts: map[string]int64{"p-1": 5, "p-2": 3}},
		{Granularity: model.Minute, Start: midnight, Dimension: model.TopProductViews, Partition: 1, Counts: map[string]int64{"p-2": 2, "p-3": 7}},
		{Granularity: model.Minute, Start: midnight, Dimension: model.TopProductViews, Partition: 2, Counts: map[string]int64{"p-4": 5}},
		{Granularity: model.Minute, Start: midnight.Add(-time.Minute), Dimension: model.TopProductViews, Partition: 0, Counts: map[string]int64{"p-9": 1}},
		{Granularity: model.Minute, Start: midnight, Dimension: model.TopCategoryViews, Partition: 0, Counts: map[string]int64{"c-1": 99}},
	}
	b.TxFeeds = []model.TxFeed{
		{Kind: model.TxOrderPlaced, Partition: 0, Events: []model.TxEvent{
			{Time: tTx3, Kind: model.TxOrderPlaced, UserID: "u-1", OrderID: "o-3", AmountMinor: 1299, Currency: "USD", Platform: "web", Partition: 0},
			{Time: tTx1, Kind: model.TxOrderPlaced, UserID: "u-2", OrderID: "o-1", AmountMinor: 500, Currency: "EUR", Platform: "ios", Partition: 0},
		}},
		{Kind: model.TxOrderPlaced, Partition: 1, Events: []model.TxEvent{
			{Time: tTx2, Kind: model.TxOrderPlaced, UserID: "u-3", OrderID: "o-2", AmountMinor: 700, Currency: "USD", Platform: "android", Partition: 1},
		}},
		{Kind: model.TxRefund, Partition: 0, Events: []model.TxEvent{
			{Time: tTx0, Kind: model.TxRefund, UserID: "u-2", OrderID: "o-0", AmountMinor: 250, Currency: "EUR", Platform: "backend", Reason: "damaged", Partition: 0},
		}},
	}
	for i := range 3 {
		start := midnight.Add(time.Duration(i-3) * time.Hour)
		s := model.Session{UserID: "u-1", SessionID: fmt.Sprintf("s-%d", i), Platform: "web", Start: start, End: start.Add(10 * time.Minute),
			Events: int64(10 + i), PageViews: 5, CartAdds: 2, Checkouts: 1, Orders: 1, Revenue: map[string]int64{"USD": 1299},
			Outcome: model.OutcomePurchased, Closed: true, Partition: 0,
			Recent: []model.UserEvent{
				{Time: start.Add(10 * time.Minute), Kind: "order_placed", AmountMinor: 1299, Currency: "USD"},
				{Time: start.Add(5 * time.Minute), Kind: "product_view", ProductID: "p-1"},
			}}
		b.Sessions = append(b.Sessions, s)
	}
	write(t, st, b)
	h22, h23 := midnight.Add(-2*time.Hour), midnight.Add(-time.Hour)
	tr := model.Trends{
		Metrics: []model.TrendMetrics{
			{Key: model.TrendKey{Granularity: model.TrendHour, Start: h22, Platform: model.AllPlatforms}, ActiveUsers: 100, ProductViewers: 80, Buyers: 10,
				PageViews: 1000, Orders: 12, Revenue: map[string]int64{"USD": 12000}, OrdersByCurrency: map[string]int64{"USD": 12}},
			{Key: model.TrendKey{Granularity: model.TrendHour, Start: h23, Platform: model.AllPlatforms}, ActiveUsers: 200, ProductViewers: 150, Buyers: 50,
				PageViews: 2000, Searches: 3, CartAdds: 4, Checkouts: 5, Orders: 7, PaymentsFailed: 1, Refunds: 2, Chargebacks: 1,
				Revenue: map[string]int64{"USD": 1000, "EUR": 999}, OrdersByCurrency: map[string]int64{"USD": 4, "EUR": 3}},
			{Key: model.TrendKey{Granularity: model.TrendHour, Start: h23, Platform: "web"}, ActiveUsers: 120, Buyers: 30, PageViews: 1500},
			{Key: model.TrendKey{Granularity: model.TrendHour, Start: midnight.Add(-72 * time.Hour), Platform: model.AllPlatforms}, ActiveUsers: 1},
		},
		Tops: []model.TrendTop{
			{Key: model.TrendKey{Granularity: model.TrendHour, Start: h23, Platform: model.AllPlatforms}, Dimension: model.TopProductViews,
				Items: []model.RankedItem{{ID: "a", Value: 9}, {ID: "b", Value: 4}, {ID: "c", Value: 4}}},
			{Key: model.TrendKey{Granularity: model.TrendHour, Start: h23, Platform: "web"}, Dimension: model.TopProductViews,
				Items: []model.RankedItem{{ID: "z", Value: 1}}},
		},
	}
	if err := st.WriteTrends(context.Background(), tr); err != nil {
		t.Fatal(err)
	}
}

func newServer(t *testing.T, st api.Store, opts api.Options) (*httptest.Server, *api.Service) {
	t.Helper()
	opts.Now = clock
	svc := api.New(st, opts)
	mux := http.NewServeMux()
	svc.Mount(mux)
	mux.HandleFunc("GET /", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "dashboard") })
	srv := httptest.NewServer(mux)
	t.Cleanup(func() { svc.Close(); srv.Close() })
	return srv, svc
}

// get returns the status and the body of GET path.
func get(t *testing.T, srv *httptest.Server, path string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || strings.HasPrefix(path, "/api/") {
		if ct != "application/json" {
			t.Errorf("GET %s: Content-Type %q", path, ct)
		}
	}
	return resp.StatusCode, body
}

// wantJSON checks GET path is 200 with exactly the JSON want (compared as values).
func wantJSON(t *testing.T, srv *httptest.Server, path, want string) {
	t.Helper()
	code, body := get(t, srv, path)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, code, body)
	}
	var got, exp any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("GET %s: %v: %s", path, err, body)
	}
	if err := json.Unmarshal([]byte(want), &exp); err != nil {
		t.Fatalf("bad want: %v", err)
	}
	if !reflect.DeepEqual(got, exp) {
		t.Errorf("GET %s:\n got %s\nwant %s", path, body, strings.Join(strings.Fields(want), " "))
	}
}

// The window 00:00 summed over both partitions of web.
const webWindow = `{"start":"2026-11-25T00:00:00Z","end":"2026-11-25T00:01:00Z","page_views":403,"product_views":4,
	"searches":6,"cart_adds":8,"checkouts":10,"orders":2,"payments_failed":12,"refunds":14,"chargebacks":16,
	"revenue":{"USD":1500,"EUR":300},"orders_by_currency":{"USD":4,"EUR":1},"average_order_value":{"USD":375,"EUR":300},
	"active_users":10,"funnel":{"viewers":8,"carters":6,"checkout":4,"buyers":2},"updated_at":"2026-11-25T00:01:01Z"}`

// And over both platforms: the "all" rows, whose distinct users are not the platforms'
// sum. EUR 1000 / 3 orders rounds down to 333.
const allWindow = `{"start":"2026-11-25T00:00:00Z","end":"2026-11-25T00:01:00Z","page_views":833,"product_views":8,
	"searches":12,"cart_adds":16,"checkouts":20,"orders":4,"payments_failed":24,"refunds":28,"chargebacks":32,
	"revenue":{"USD":1500,"EUR":1000},"orders_by_currency":{"USD":4,"EUR":3},"average_order_value":{"USD":375,"EUR":333},
	"active_users":16,"funnel":{"viewers":12,"carters":10,"checkout":6,"buyers":4},"updated_at":"2026-11-25T00:01:01Z"}`

// checkQueries is the suite both backends must pass, on a store filled by fill.
func checkQueries(t *testing.T, srv *httptest.Server) {
	t.Run("live", func(t *testing.T) {
		wantJSON(t, srv, "/api/v1/live?windows=1&platform=web", `{"granularity":"1m","platform":"web","windows":[`+webWindow+`]}`)
		wantJSON(t, srv, "/api/v1/live?windows=1", `{"granularity":"1m","platform":"all","windows":[`+allWindow+`]}`)
		code, body := get(t, srv, "/api/v1/live?windows=3")
		var r api.LiveResult
		if err := json.Unmarshal(body, &r); code != 200 || err != nil {
			t.Fatalf("%d %v %s", code, err, body)
		}
		var starts []string
		var views []int64
		for _, w := range r.Windows {
			starts = append(starts, w.Start.Format("15:04"))
			views = append(views, w.PageViews)
		}
		// Newest first; 23:57 is outside the 3 windows, the 5m row another granularity.
		if want := []string{"00:00", "23:59", "23:58"}; !reflect.DeepEqual(starts, want) {
			t.Errorf("starts %v, want %v", starts, want)
		}
		if want := []int64{833, 433, 33}; !reflect.DeepEqual(views, want) {
			t.Errorf("page views %v, want %v", views, want)
		}
		code, body = get(t, srv, "/api/v1/live?granularity=5m&windows=2&platform=ios")
		if code != 200 || !strings.Contains(string(body), `"windows":[]`) {
			t.Errorf("5m ios: %d %s", code, body)
		}
		code, body = get(t, srv, "/api/v1/live?granularity=5m&windows=2&platform=web")
		if code != 200 || !strings.Contains(string(body), `"page_views":7001`) {
			t.Errorf("5m web: %d %s", code, body)
		}
		code, body = get(t, srv, "/api/v1/live") // defaults: 30 windows hold 23:57 too
		if code != 200 || strings.Count(string(body), `"start"`) != 4 || !strings.Contains(string(body), `"page_views":5001`) {
			t.Errorf("defaults: %d %s", code, body)
		}
	})
	t.Run("funnel", func(t *testing.T) {
		// One window's distinct users: the "all" rows of 00:00 over both partitions.
		wantJSON(t, srv, "/api/v1/funnel?granularity=1m", `{"from":"2026-11-25T00:00:00Z","to":"2026-11-25T00:01:00Z",
			"granularity":"1m","platform":"all","viewers":12,"carters":10,"checkout":6,"buyers":4,"view_to_cart":0.8333333333333334,
			"cart_to_checkout":0.6,"checkout_to_order":0.6666666666666666,"view_to_order":0.3333333333333333}`)
		wantJSON(t, srv, "/api/v1/funnel?granularity=1m&start=2026-11-24T23:59:00Z&platform=web", `{"from":"2026-11-24T23:59:00Z",
			"to":"2026-11-25T00:00:00Z","granularity":"1m","platform":"web","viewers":8,"carters":6,"checkout":4,"buyers":2,
			"view_to_cart":0.75,"cart_to_checkout":0.6666666666666666,"checkout_to_order":0.5,"view_to_order":0.25}`)
		wantJSON(t, srv, "/api/v1/funnel?platform=android", `{"from":"2026-11-25T00:00:00Z","to":"2026-11-25T01:00:00Z",
			"granularity":"1h","platform":"android","viewers":0,"carters":0,"checkout":0,"buyers":0,"view_to_cart":0,"cart_to_checkout":0,
			"checkout_to_order":0,"view_to_order":0}`)
	})
	t.Run("top", func(t *testing.T) {
		// Default start: the latest window with data; items merged over three partitions,
		// ties by id.
		wantJSON(t, srv, "/api/v1/top?dimension=product_views&n=3", `{"dimension":"product_views","granularity":"1m",
			"start":"2026-11-25T00:00:00Z","items":[{"id":"p-3","value":7},{"id":"p-1","value":5},{"id":"p-2","value":5}]}`)
		wantJSON(t, srv, "/api/v1/top?dimension=product_views&start=2026-11-24T23:59:00Z", `{"dimension":"product_views",
			"granularity":"1m","start":"2026-11-24T23:59:00Z","items":[{"id":"p-9","value":1}]}`)
		wantJSON(t, srv, "/api/v1/top?dimension=category_views", `{"dimension":"category_views","granularity":"1m",
			"start":"2026-11-25T00:00:00Z","items":[{"id":"c-1","value":99}]}`)
		wantJSON(t, srv, "/api/v1/top?dimension=product_revenue&granularity=1h", `{"dimension":"product_revenue",
			"granularity":"1h","start":null,"items":[]}`)
	})
	t.Run("trends", func(t *testing.T) {
		wantJSON(t, srv, "/api/v1/trends", `{"granularity":"hour","platform":"all","buckets":[
			{"start":"2026-11-24T23:00:00Z","active_users":200,"product_viewers":150,"buyers":50,"conversion":0.25,
			 "page_views":2000,"product_views":0,"searches":3,"cart_adds":4,"checkouts":5,"orders":7,"payments_failed":1,
			 "refunds":2,"chargebacks":1,"revenue":{"USD":1000,"EUR":999},"orders_by_currency":{"USD":4,"EUR":3},
			 "average_order_value":{"USD":250,"EUR":333}},
			{"start":"2026-11-24T22:00:00Z","active_users":100,"product_viewers":80,"buyers":10,"conversion":0.1,
			 "page_views":1000,"product_views":0,"searches":0,"cart_adds":0,"checkouts":0,"orders":12,"payments_failed":0,
			 "refunds":0,"chargebacks":0,"revenue":{"USD":12000},"orders_by_currency":{"USD":12},"average_order_value":{"USD":1000}}]}`)
		code, body := get(t, srv, "/api/v1/trends?platform=web&from=2026-11-24T23:00:00Z&to=2026-11-25T00:00:00Z")
		if code != 200 || !strings.Contains(string(body), `"active_users":120`) || strings.Count(string(body), `"start"`) != 1 {
			t.Errorf("web: %d %s", code, body)
		}
		code, body = get(t, srv, "/api/v1/trends?from=2026-11-21T00:00:00Z&to=2026-11-22T23:00:00Z")
		if code != 200 || strings.Count(string(body), `"start"`) != 1 || !strings.Contains(string(body), `"active_users":1,`) {
			t.Errorf("range: %d %s", code, body)
		}
	})
	t.Run("trends/top", func(t *testing.T) {
		wantJSON(t, srv, "/api/v1/trends/top?start=2026-11-24T23:00:00Z&dimension=product_views&n=2",
			`{"items":[{"id":"a","value":9},{"id":"b","value":4}]}`)
		wantJSON(t, srv, "/api/v1/trends/top?granularity=hour&start=2026-11-24T23:00:00Z&dimension=product_views&platform=web",
			`{"items":[{"id":"z","value":1}]}`)
		wantJSON(t, srv, "/api/v1/trends/top?start=2026-11-24T22:00:00Z&dimension=product_views", `{"items":[]}`)
	})
	t.Run("transactions", func(t *testing.T) {
		wantJSON(t, srv, "/api/v1/transactions?limit=2", `{"transactions":[
			{"time":"2026-11-25T00:00:10Z","kind":"order_placed","user_id":"u-1","order_id":"o-3","amount_minor":1299,"currency":"USD","platform":"web","reason":""},
			{"time":"2026-11-24T23:59:00Z","kind":"order_placed","user_id":"u-3","order_id":"o-2","amount_minor":700,"currency":"USD","platform":"android","reason":""}]}`)
		wantJSON(t, srv, "/api/v1/transactions?kind=refund", `{"transactions":[
			{"time":"2026-11-24T23:57:00Z","kind":"refund","user_id":"u-2","order_id":"o-0","amount_minor":250,"currency":"EUR","platform":"backend","reason":"damaged"}]}`)
		wantJSON(t, srv, "/api/v1/transactions?kind=chargeback", `{"transactions":[]}`)
		code, body := get(t, srv, "/api/v1/transactions")
		if code != 200 || strings.Count(string(body), `"time"`) != 4 {
			t.Errorf("all: %d %s", code, body)
		}
	})
	t.Run("users", func(t *testing.T) {
		wantJSON(t, srv, "/api/v1/users/u-1?limit=1", `{"user_id":"u-1","sessions":[{"session_id":"s-2","platform":"web",
			"start":"2026-11-24T23:00:00Z","end":"2026-11-24T23:10:00Z","events":12,"page_views":5,"cart_adds":2,"checkouts":1,
			"orders":1,"revenue":{"USD":1299},"outcome":"purchased","closed":true,"recent":[
			{"time":"2026-11-24T23:10:00Z","kind":"order_placed","product_id":"","amount_minor":1299,"currency":"USD"},
			{"time":"2026-11-24T23:05:00Z","kind":"product_view","product_id":"p-1","amount_minor":0,"currency":""}]}]}`)
		code, body := get(t, srv, "/api/v1/users/u-1")
		if code != 200 || !strings.Contains(string(body), `"s-2"`) || strings.Index(string(body), `"s-2"`) > strings.Index(string(body), `"s-0"`) {
			t.Errorf("newest first: %d %s", code, body)
		}
		wantJSON(t, srv, "/api/v1/users/nobody", `{"user_id":"nobody","sessions":[]}`)
	})
	t.Run("bad parameters", func(t *testing.T) {
		for _, c := range []struct{ path, param string }{
			{"/api/v1/live?granularity=2m", "granularity"},
			{"/api/v1/live?windows=0", "windows"},
			{"/api/v1/live?windows=1441", "windows"},
			{"/api/v1/live?windows=abc", "windows"},
			{"/api/v1/live?platform=tv", "platform"},
			{"/api/v1/funnel?granularity=2m", "granularity"},
			{"/api/v1/funnel?granularity=5m&start=2026-11-25T00:01:00Z", "start"},
			{"/api/v1/funnel?platform=all2", "platform"},
			{"/api/v1/top", "dimension"},
			{"/api/v1/top?dimension=product_units", "dimension"},
			{"/api/v1/top?dimension=product_views&granularity=day", "granularity"},
			{"/api/v1/top?dimension=product_views&start=yesterday", "start"},
			{"/api/v1/top?dimension=product_views&start=2026-11-25T00:00:30Z", "start"},
			{"/api/v1/top?dimension=product_views&n=101", "n"},
			{"/api/v1/trends?granularity=1h", "granularity"},
			{"/api/v1/trends?from=2026-11-25", "from"},
			{"/api/v1/trends?to=nope", "to"},
			{"/api/v1/trends?from=2026-11-25T00:00:00Z&to=2026-11-24T00:00:00Z", "from"},
			{"/api/v1/trends?from=2020-01-01T00:00:00Z&to=2026-11-24T00:00:00Z", "from"},
			{"/api/v1/trends?platform=x", "platform"},
			{"/api/v1/trends/top?dimension=product_views", "start"},
			{"/api/v1/trends/top?start=2026-11-24T23:30:00Z&dimension=product_views", "start"},
			{"/api/v1/trends/top?start=2026-11-24T23:00:00Z", "dimension"},
			{"/api/v1/trends/top?start=2026-11-24T23:00:00Z&dimension=product_cart_adds", "dimension"},
			{"/api/v1/trends/top?start=2026-11-24T23:00:00Z&dimension=product_views&granularity=week", "granularity"},
			{"/api/v1/trends/top?start=2026-11-24T23:00:00Z&dimension=product_views&n=0", "n"},
			{"/api/v1/trends/top?start=2026-11-24T23:00:00Z&dimension=product_views&platform=tv", "platform"},
			{"/api/v1/transactions?kind=order", "kind"},
			{"/api/v1/transactions?limit=501", "limit"},
			{"/api/v1/transactions?limit=1.5", "limit"},
			{"/api/v1/users/u-1?limit=0", "limit"},
			{"/api/v1/users/u-1?limit=101", "limit"},
			{"/api/v1/users/" + strings.Repeat("x", 300), "id"},
		} {
			code, body := get(t, srv, c.path)
			var e struct{ Error string }
			if err := json.Unmarshal(body, &e); code != http.StatusBadRequest || err != nil || !strings.HasPrefix(e.Error, c.param+" ") {
				t.Errorf("GET %s: %d %s, want 400 naming %q", c.path, code, body, c.param)
			}
		}
	})
	t.Run("not found", func(t *testing.T) {
		for _, p := range []string{"/api/v1/nope", "/api/v1/users/", "/api/v1/users/u-1/sessions", "/api/v2/live", "/api/"} {
			code, body := get(t, srv, p)
			var e struct{ Error string }
			if err := json.Unmarshal(body, &e); code != http.StatusNotFound || err != nil || e.Error == "" {
				t.Errorf("GET %s: %d %s, want a JSON 404", p, code, body)
			}
		}
		resp, err := http.Post(srv.URL+"/api/v1/live", "application/json", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("POST /api/v1/live: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	})
}

func TestEmbedded(t *testing.T) {
	st := openEmbedded(t)
	fill(t, st)
	srv, _ := newServer(t, st, api.Options{})
	checkQueries(t, srv)
}

func TestCassandra(t *testing.T) {
	st := openCassandra(t)
	fill(t, st)
	srv, _ := newServer(t, st, api.Options{})
	checkQueries(t, srv)
	t.Run("events", func(t *testing.T) { checkEvents(t, st, srv) })
}

// A closed store is a store failure: 503 with a JSON error, never 500.
func TestStoreDown(t *testing.T) {
	st := openEmbedded(t)
	fill(t, st)
	srv, _ := newServer(t, st, api.Options{})
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/api/v1/live", "/api/v1/funnel", "/api/v1/top?dimension=product_views", "/api/v1/trends",
		"/api/v1/trends/top?start=2026-11-24T23:00:00Z&dimension=product_views", "/api/v1/transactions", "/api/v1/users/u-1",
		"/api/v1/fraud/alerts", "/api/v1/fraud/stats"} {
		code, body := get(t, srv, p)
		if code != http.StatusServiceUnavailable || !strings.Contains(string(body), `"error"`) {
			t.Errorf("GET %s on a closed store: %d %s", p, code, body)
		}
	}
	// Bad parameters are still the client's fault.
	if code, _ := get(t, srv, "/api/v1/live?windows=0"); code != http.StatusBadRequest {
		t.Errorf("bad parameter on a closed store: %d", code)
	}
}

func TestEvents(t *testing.T) {
	st := openEmbedded(t)
	fill(t, st)
	srv, _ := newServer(t, st, api.Options{})
	checkEvents(t, st, srv)
}

// sseEvent is one event of a stream: its name and data.
type sseEvent struct{ name, data string }

// readEvents sends the events of an SSE body to a channel until it ends.
func readEvents(body io.Reader) <-chan sseEvent {
	ch := make(chan sseEvent, 16)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(body)
		sc.Buffer(nil, 1<<20)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.name != "" {
					ch <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "event: "):
				ev.name = line[len("event: "):]
			case strings.HasPrefix(line, "data: "):
				ev.data += line[len("data: "):]
			}
		}
	}()
	return ch
}

func nextEvent(t *testing.T, ch <-chan sseEvent, d time.Duration) sseEvent {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("event stream ended")
		}
		return ev
	case <-time.After(d):
		t.Fatalf("no event within %s", d)
	}
	return sseEvent{}
}

// checkEvents: the first update holds every platform's current window; a write to that
// window sends another update with the new numbers.
func checkEvents(t *testing.T, st writableStore, srv *httptest.Server) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/v1/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	events := readEvents(resp.Body)
	ev := nextEvent(t, events, 5*time.Second)
	var snap map[string]api.LiveResult
	if err := json.Unmarshal([]byte(ev.data), &snap); ev.name != "update" || err != nil {
		t.Fatalf("first event %q: %v: %s", ev.name, err, ev.data)
	}
	for _, p := range api.Platforms {
		if snap[p].Platform != p || snap[p].Granularity != "1m" {
			t.Errorf("platform %s: %+v", p, snap[p])
		}
	}
	if len(snap["all"].Windows) != 1 || snap["all"].Windows[0].PageViews != 833 || snap["web"].Windows[0].PageViews != 403 || len(snap["android"].Windows) != 0 {
		t.Fatalf("first update: %s", ev.data)
	}
	w := window(midnight, 2, "android", 3)
	w.PageViews = 1000
	wAll := w
	wAll.Key.Platform = model.AllPlatforms
	write(t, st, model.Batch{Windows: []model.WindowMetrics{w, wAll}})
	ev = nextEvent(t, events, 5*time.Second)
	if err := json.Unmarshal([]byte(ev.data), &snap); ev.name != "update" || err != nil {
		t.Fatalf("second event %q: %v", ev.name, err)
	}
	if snap["all"].Windows[0].PageViews != 1833 || snap["android"].Windows[0].PageViews != 1000 {
		t.Fatalf("update after the write: %s", ev.data)
	}
}

// Close ends open event streams (graceful shutdown must not wait for clients), and
// idle streams get heartbeats.
func TestEventsHeartbeatAndClose(t *testing.T) {
	st := openEmbedded(t)
	fill(t, st)
	srv, svc := newServer(t, st, api.Options{Heartbeat: 100 * time.Millisecond})
	resp, err := http.Get(srv.URL + "/api/v1/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rd := bufio.NewReader(resp.Body)
	deadline := time.Now().Add(5 * time.Second)
	for beats := 0; beats < 2; {
		line, err := rd.ReadString('\n')
		if err != nil || time.Now().After(deadline) {
			t.Fatalf("want heartbeats, got %v", err)
		}
		if line == ": heartbeat\n" {
			beats++
		}
	}
	svc.Close()
	done := make(chan error, 1)
	go func() { _, err := io.Copy(io.Discard, rd); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("stream ended with %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("stream still open after Close")
	}
}
