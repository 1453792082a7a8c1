// Package chaos makes the faults production brings happen to the real processes and servers
// of deploy/local (SIGKILL, SIGSTOP, Cassandra, HDFS and Kafka stopped mid-stream, client
// retries, another producer's partitioner) and then reconciles every measure the stream
// and the archive keep with the simulator's events: counts, revenue and orders per currency,
// distinct users and the funnel per minute, the rankings, every session, and the lake's
// records, with no event late where none was produced late.
//
// Scenarios that stop a shared server cannot run beside other tests: `make test` runs this
// package on its own, after the rest.
package chaos

import (
	"bufio"
	"context"
	"fmt"
	"hash/crc32"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/bytebasket/bytebasket/internal/config"
	"github.com/bytebasket/bytebasket/internal/event"
	"github.com/bytebasket/bytebasket/internal/lake"
	"github.com/bytebasket/bytebasket/internal/model"
	"github.com/bytebasket/bytebasket/internal/sim"
	"github.com/bytebasket/bytebasket/internal/store/cassandra"
	"github.com/bytebasket/bytebasket/internal/testenv"
	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
)

var binary string

func TestMain(m *testing.M) { testenv.MainWithBinary(m, &binary) }

// The scaled-down event-time rules of every scenario: outages longer than the lateness are
// cheap to make, and sessions close within a run.
const (
	lateness   = 20 * time.Second
	sessionGap = 60 * time.Second
	users      = 2000
)

// scenario is one isolated deployment on the shared cluster: its own topics, keyspace,
// consumer groups and local lake.
type scenario struct {
	t       *testing.T
	name    string
	vars    []string
	cfg     config.Config
	seed    uint64
	rate    float64
	count   int
	start   time.Time
	lakeDir string
	extra   []string // produce flags
}

func newScenario(t *testing.T, name string, rate float64, seconds int, extra ...string) *scenario {
	t.Helper()
	kafka := testenv.Addr(t, testenv.Kafka)
	cass := testenv.Addr(t, testenv.Cassandra)
	id := time.Now().UnixNano()
	s := &scenario{t: t, name: name, seed: uint64(id), rate: rate, count: int(rate) * seconds, lakeDir: t.TempDir(), extra: extra}
	s.vars = append(os.Environ(),
		"BYTEBASKET_CONFIG="+filepath.Join(testenv.RepoRoot(), "config"),
		"BYTEBASKET_KAFKA_BROKERS="+kafka,
		fmt.Sprintf("BYTEBASKET_KAFKA_TOPIC_PREFIX=chaos%d-", id),
		"BYTEBASKET_CASSANDRA_HOSTS="+cass,
		fmt.Sprintf("BYTEBASKET_CASSANDRA_KEYSPACE=chaos_%d", id),
		fmt.Sprintf("BYTEBASKET_STREAM_GROUP=chaos-stream-%d", id),
		fmt.Sprintf("BYTEBASKET_ARCHIVE_GROUP=chaos-archive-%d", id),
		"BYTEBASKET_STREAM_ALLOWED_LATENESS="+lateness.String(),
		"BYTEBASKET_STREAM_SESSION_GAP="+sessionGap.String(),
		"BYTEBASKET_STREAM_CHECKPOINT_INTERVAL=2s",
		"BYTEBASKET_ARCHIVE_ROLL_INTERVAL=5s",
		"BYTEBASKET_LAKE_BACKEND=local",
		"BYTEBASKET_LAKE_ROOT="+s.lakeDir,
	)
	s.cfg = config.Default()
	s.cfg.Cassandra.Hosts = []string{cass}
	s.cfg.Cassandra.Keyspace = fmt.Sprintf("chaos_%d", id)
	s.run("schema", "apply")
	s.run("topics", "create")
	t.Cleanup(func() {
		cs, err := cassandra.Connect(context.Background(), s.cfg.Cassandra)
		if err == nil {
			_ = cs.Query("DROP KEYSPACE IF EXISTS " + s.cfg.Cassandra.Keyspace).Exec()
			cs.Close()
		}
	})
	return s
}

func (s *scenario) cmd(args ...string) *exec.Cmd {
	c := exec.Command(binary, args...)
	c.Env = s.vars
	return c
}

func (s *scenario) run(args ...string) string {
	s.t.Helper()
	out, err := s.cmd(args...).CombinedOutput()
	if err != nil {
		s.t.Fatalf("bytebasket %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// produce starts the paced producer: event times follow the wall clock from now on, so
// windows close while the faults happen. wait returns once every event is acknowledged.
func (s *scenario) produce() (wait func()) {
	s.t.Helper()
	s.start = time.Now().Add(time.Second).Truncate(time.Millisecond)
	args := append([]string{"produce", "--rate", fmt.Sprint(s.rate), "--flat", "--count", fmt.Sprint(s.count),
		"--seed", fmt.Sprint(s.seed), "--start", s.start.Format(time.RFC3339Nano), "--users", fmt.Sprint(users),
		"--labels=false", "--create-topics=false"}, s.extra...)
	c := s.cmd(args...)
	out := &strings.Builder{}
	c.Stdout, c.Stderr = out, out
	if err := c.Start(); err != nil {
		s.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	s.t.Cleanup(func() { _ = c.Process.Kill() })
	return func() {
		s.t.Helper()
		select {
		case err := <-done:
			if err != nil {
				s.t.Fatalf("produce: %v\n%s", err, out)
			}
		case <-time.After(time.Duration(float64(s.count)/s.rate*float64(time.Second)) + 3*time.Minute):
			s.t.Fatalf("produce did not finish\n%s", out)
		}
	}
}

// proc is one running role.
type proc struct {
	t    *testing.T
	cmd  *exec.Cmd
	base string
	dead bool
}

// start starts a role (stream, archive) with its ops endpoints on a free port.
func (s *scenario) launch(role string, extra ...string) *proc {
	s.t.Helper()
	c := s.cmd(append([]string{role, "--http", "127.0.0.1:0"}, extra...)...)
	out, _ := c.StdoutPipe()
	c.Stderr = os.Stderr
	if err := c.Start(); err != nil {
		s.t.Fatal(err)
	}
	p := &proc{t: s.t, cmd: c}
	s.t.Cleanup(func() { _ = c.Process.Signal(syscall.SIGCONT); _ = c.Process.Kill(); _, _ = c.Process.Wait() })
	re := regexp.MustCompile(`http://(\S+)`)
	r := bufio.NewReader(out)
	line, err := r.ReadString('\n')
	m := re.FindStringSubmatch(line)
	if err != nil || m == nil {
		s.t.Fatalf("%s did not start: %q %v", role, line, err)
	}
	go func() { _, _ = r.WriteTo(discard{}) }()
	p.base = "http://" + m[1]
	return p
}

type discard struct{}

func (discard) Write(b []byte) (int, error) { return len(b), nil }

func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
}

func (p *proc) kill() {
	p.signal(syscall.SIGKILL)
	_, _ = p.cmd.Process.Wait()
	p.dead = true
}

// stop sends SIGTERM and requires a clean exit within the shutdown grace period.
func (p *proc) stop() {
	p.t.Helper()
	p.signal(syscall.SIGTERM)
	done := make(chan *os.ProcessState, 1)
	go func() { ps, _ := p.cmd.Process.Wait(); done <- ps }()
	select {
	case ps := <-done:
		if ps == nil || !ps.Success() {
			p.t.Fatalf("exit after SIGTERM: %v", ps)
		}
	case <-time.After(30 * time.Second):
		p.t.Fatal("no exit within 30s of SIGTERM")
	}
	p.dead = true
}

// metrics scrapes /metrics; nil when the process does not answer.
func (p *proc) metrics() map[string]float64 {
	resp, err := http.Get(p.base + "/metrics")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "#") {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		if v, err := strconv.ParseFloat(l[i+1:], 64); err == nil {
			out[l[:i]] = v
		}
	}
	return out
}

func (p *proc) ready() bool {
	resp, err := http.Get(p.base + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func sum(m map[string]float64, prefix string) (total float64, series int) {
	for k, v := range m {
		if strings.HasPrefix(k, prefix) {
			total += v
			series++
		}
	}
	return
}

// awaitCaughtUp waits until the live processes of a role together own all 8 topic
// partitions and have nothing left to read.
func awaitCaughtUp(t *testing.T, role string, procs []*proc, d time.Duration) {
	t.Helper()
	var lag float64
	var series int
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		lag, series = 0, 0
		for _, p := range procs {
			if p.dead {
				continue
			}
			l, n := sum(p.metrics(), "bytebasket_"+role+"_lag_records{")
			lag, series = lag+l, series+n
		}
		want := 8 // two event topics of four partitions
		if role == "fraud_keys" {
			want = 4 // fraud-repartition
		}
		if series == want && lag == 0 {
			return
		}
	}
	t.Fatalf("%s not caught up within %s: %v records behind over %d topic partitions", role, d, lag, series)
}

// lateEvents is what the partitions' states counted late, over the live instances.
func lateEvents(procs []*proc) float64 {
	var n float64
	for _, p := range procs {
		if !p.dead {
			l, _ := sum(p.metrics(), "bytebasket_stream_partition_late_events{")
			n += l
		}
	}
	return n
}

// truth is what the produced events must show.
type truth struct {
	events   []*pb.Envelope // in production order, only those the stream must count
	skipped  int            // events a consumer must refuse (misrouted)
	partOf   func(user string) int32
	produced int
}

// expected re-simulates the scenario's events (the same seed, rate and start give the same
// events) and keeps those the stream counts: with another partitioner, only the users it
// happens to put where Kafka's default would.
func (s *scenario) expected() truth {
	sm, err := sim.New(sim.Config{Seed: s.seed, Users: users, Rate: s.rate, Start: s.start})
	if err != nil {
		s.t.Fatal(err)
	}
	routed := kgo.StickyKeyPartitioner(nil).ForTopic("")
	partOf := func(u string) int32 { return int32(routed.Partition(&kgo.Record{Key: []byte(u)}, 4)) }
	actual := partOf
	if slices.Contains(s.extra, "librdkafka") {
		crc := kgo.StickyKeyPartitioner(kgo.SaramaHasher(crc32.ChecksumIEEE)).ForTopic("")
		actual = func(u string) int32 { return int32(crc.Partition(&kgo.Record{Key: []byte(u)}, 4)) }
	}
	tr := truth{partOf: partOf, produced: s.count}
	for range s.count {
		e, _ := sm.Next()
		if actual(e.GetUserId()) != partOf(e.GetUserId()) {
			tr.skipped++
			continue
		}
		tr.events = append(tr.events, proto.Clone(e).(*pb.Envelope)) // the simulator reuses envelopes
	}
	return tr
}

// minuteRow is the "all platforms" minute window over every partition.
type minuteRow struct {
	Counts  map[string]int64 // page_view, ... and active, viewers, carters, checkout, buyers
	Revenue map[string]int64
	Orders  map[string]int64
}

func (tr truth) minutes() map[time.Time]*minuteRow {
	out := map[time.Time]*minuteRow{}
	distinct := map[time.Time]map[string]map[string]bool{}
	for _, e := range tr.events {
		m := e.GetEventTime().AsTime().UTC().Truncate(time.Minute)
		r := out[m]
		if r == nil {
			r = &minuteRow{Counts: map[string]int64{}, Revenue: map[string]int64{}, Orders: map[string]int64{}}
			out[m] = r
			distinct[m] = map[string]map[string]bool{}
		}
		mark := func(set string) {
			if distinct[m][set] == nil {
				distinct[m][set] = map[string]bool{}
			}
			if !distinct[m][set][e.GetUserId()] {
				distinct[m][set][e.GetUserId()] = true
				r.Counts[set]++
			}
		}
		mark("active")
		k := event.KindOf(e)
		switch k {
		case event.KindPageView, event.KindSearch, event.KindPaymentFailed, event.KindRefund, event.KindChargeback:
			r.Counts[string(k)]++
		case event.KindProductView:
			r.Counts[string(k)]++
			mark("viewers")
		case event.KindCartAdd:
			r.Counts[string(k)]++
			mark("carters")
		case event.KindCheckoutStarted:
			r.Counts[string(k)]++
			mark("checkout")
		case event.KindOrderPlaced:
			r.Counts[string(k)]++
			mark("buyers")
			tot := e.GetOrderPlaced().GetTotal()
			r.Revenue[tot.GetCurrency()] += tot.GetAmountMinor()
			r.Orders[tot.GetCurrency()]++
		}
	}
	return out
}

func storedMinutes(rows []model.WindowMetrics) map[time.Time]*minuteRow {
	out := map[time.Time]*minuteRow{}
	for _, w := range rows {
		if w.Key.Platform != model.AllPlatforms {
			continue
		}
		r := out[w.Key.Start]
		if r == nil {
			r = &minuteRow{Counts: map[string]int64{}, Revenue: map[string]int64{}, Orders: map[string]int64{}}
			out[w.Key.Start] = r
		}
		for k, v := range map[string]int64{
			"page_view": w.PageViews, "product_view": w.ProductViews, "search": w.Searches, "cart_add": w.CartAdds,
			"checkout_started": w.Checkouts, "order_placed": w.Orders, "payment_failed": w.PaymentsFailed,
			"refund": w.Refunds, "chargeback": w.Chargebacks, "active": w.ActiveUsers, "viewers": w.FunnelViewers,
			"carters": w.FunnelCarters, "checkout": w.FunnelCheckout, "buyers": w.FunnelBuyers,
		} {
			if v != 0 {
				r.Counts[k] += v
			}
		}
		for c, v := range w.Revenue {
			r.Revenue[c] += v
		}
		for c, v := range w.OrdersByCurrency {
			r.Orders[c] += v
		}
	}
	return out
}

// tops are the rankings of every minute, merged over partitions: minute -> dimension ->
// item -> count.
func (tr truth) tops() map[time.Time]map[model.TopDimension]map[string]int64 {
	out := map[time.Time]map[model.TopDimension]map[string]int64{}
	add := func(m time.Time, d model.TopDimension, item string, n int64) {
		if out[m] == nil {
			out[m] = map[model.TopDimension]map[string]int64{}
		}
		if out[m][d] == nil {
			out[m][d] = map[string]int64{}
		}
		out[m][d][item] += n
	}
	for _, e := range tr.events {
		m := e.GetEventTime().AsTime().UTC().Truncate(time.Minute)
		switch event.KindOf(e) {
		case event.KindProductView:
			add(m, model.TopProductViews, e.GetProductView().GetProductId(), 1)
			add(m, model.TopCategoryViews, e.GetProductView().GetCategoryId(), 1)
		case event.KindCartAdd:
			add(m, model.TopProductCarts, e.GetCartAdd().GetProductId(), int64(max(e.GetCartAdd().GetQuantity(), 1)))
		case event.KindOrderPlaced:
			for _, li := range e.GetOrderPlaced().GetItems() {
				add(m, model.TopProductRevenue, li.GetProductId(), int64(li.GetQuantity())*li.GetUnitPriceMinor())
				add(m, model.TopCategoryOrders, li.GetCategoryId(), int64(li.GetQuantity()))
			}
		}
	}
	return out
}

// session is what a session row must say (its recent events are checked by unit tests).
type session struct {
	ID, Platform                                   string
	Start, End                                     time.Time
	Events, PageViews, CartAdds, Checkouts, Orders int64
	Revenue                                        map[string]int64
}

// sessions cuts each user's shopper events (not server events) at gaps longer than the
// session gap; a session is keyed by its first event's time.
func (tr truth) sessions() map[string][]session {
	out := map[string][]session{}
	for _, e := range tr.events {
		if e.GetSource() == pb.Source_SOURCE_BACKEND {
			continue
		}
		u := e.GetUserId()
		t := e.GetEventTime().AsTime().UTC().Truncate(time.Millisecond)
		ss := out[u]
		if len(ss) == 0 || t.After(ss[len(ss)-1].End.Add(sessionGap)) {
			ss = append(ss, session{ID: e.GetSessionId(), Platform: event.Platform(e.GetSource()), Start: t, End: t, Revenue: map[string]int64{}})
		}
		s := &ss[len(ss)-1]
		s.End = maxTime(s.End, t)
		s.Events++
		switch event.KindOf(e) {
		case event.KindPageView:
			s.PageViews++
		case event.KindCartAdd:
			s.CartAdds++
		case event.KindCheckoutStarted:
			s.Checkouts++
		case event.KindOrderPlaced:
			s.Orders++
			tot := e.GetOrderPlaced().GetTotal()
			s.Revenue[tot.GetCurrency()] += tot.GetAmountMinor()
		}
		out[u] = ss
	}
	return out
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// reconcileStream polls the store until every measure equals the truth (rows reach the
// store within a few flushes of the processors catching up) and reports what differs.
func (s *scenario) reconcileStream(tr truth, d time.Duration) {
	s.t.Helper()
	ctx := context.Background()
	st, err := cassandra.NewStore(ctx, s.cfg.Cassandra)
	if err != nil {
		s.t.Fatal(err)
	}
	defer st.Close()
	wantMinutes, wantTops, wantSessions := tr.minutes(), tr.tops(), tr.sessions()
	var problem string
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(time.Second) {
		if problem = s.compare(ctx, st, wantMinutes, wantTops, wantSessions); problem == "" {
			return
		}
	}
	s.t.Fatalf("%s: the store does not reconcile with the %d events counted (%d produced) after %s: %s",
		s.name, len(tr.events), tr.produced, d, problem)
}

func (s *scenario) compare(ctx context.Context, st *cassandra.Store, wantMinutes map[time.Time]*minuteRow,
	wantTops map[time.Time]map[model.TopDimension]map[string]int64, wantSessions map[string][]session) string {
	rows, err := st.Windows(ctx, model.Minute, s.start.Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil {
		return err.Error()
	}
	got := storedMinutes(rows)
	for _, m := range sortedKeys(wantMinutes) {
		if !reflect.DeepEqual(got[m], wantMinutes[m]) {
			return fmt.Sprintf("minute %s:\n got %+v\nwant %+v", m.Format("15:04"), got[m], wantMinutes[m])
		}
	}
	if len(got) != len(wantMinutes) {
		return fmt.Sprintf("%d minutes stored, %d with events", len(got), len(wantMinutes))
	}
	for _, m := range sortedKeys(wantTops) {
		for dim, want := range wantTops[m] {
			parts, err := st.Tops(ctx, model.Minute, m, dim)
			if err != nil {
				return err.Error()
			}
			merged := map[string]int64{}
			for _, p := range parts {
				for it, n := range p.Counts {
					merged[it] += n
				}
			}
			if !maps.Equal(merged, want) {
				return fmt.Sprintf("ranking %s of %s: %d items, want %d", dim, m.Format("15:04"), len(merged), len(want))
			}
		}
	}
	for _, u := range slices.Sorted(maps.Keys(wantSessions)) {
		stored, err := st.SessionsByUser(ctx, u, 0)
		if err != nil {
			return err.Error()
		}
		want := wantSessions[u]
		if len(stored) != len(want) {
			return fmt.Sprintf("user %s: %d sessions stored, want %d", u, len(stored), len(want))
		}
		for i, w := range want {
			g := stored[len(stored)-1-i] // newest first
			have := session{ID: g.SessionID, Platform: g.Platform, Start: g.Start, End: g.End, Events: g.Events, PageViews: g.PageViews,
				CartAdds: g.CartAdds, Checkouts: g.Checkouts, Orders: g.Orders, Revenue: g.Revenue}
			if have.Revenue == nil {
				have.Revenue = map[string]int64{}
			}
			if !reflect.DeepEqual(have, w) {
				return fmt.Sprintf("user %s session %d:\n got %+v\nwant %+v", u, i, have, w)
			}
			if g.Closed && g.Outcome != outcome(w) {
				return fmt.Sprintf("user %s session %d: outcome %s, want %s", u, i, g.Outcome, outcome(w))
			}
		}
	}
	return ""
}

func outcome(s session) model.SessionOutcome {
	switch {
	case s.Orders > 0:
		return model.OutcomePurchased
	case s.Checkouts > 0:
		return model.OutcomeAbandonedCheckout
	case s.CartAdds > 0:
		return model.OutcomeAbandonedCart
	}
	return model.OutcomeBrowsed
}

func sortedKeys[V any](m map[time.Time]V) []time.Time {
	return slices.SortedFunc(maps.Keys(m), func(a, b time.Time) int { return a.Compare(b) })
}

// checkNoLate requires that the processors' states counted no event late.
func checkNoLate(t *testing.T, procs []*proc) {
	t.Helper()
	if n := lateEvents(procs); n != 0 {
		t.Fatalf("%v events counted late; none was produced late", n)
	}
}

// reconcileLake polls the lake until it holds every counted event exactly once.
func (s *scenario) reconcileLake(lk lake.Backend, tr truth, d time.Duration) {
	s.t.Helper()
	ctx := context.Background()
	want := map[uint64]int{}
	for _, e := range tr.events {
		want[event.Fingerprint(e.GetEventId())]++
	}
	var problem string
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(time.Second) {
		files, err := lk.List(ctx, "")
		if err != nil {
			problem = err.Error()
			continue
		}
		got := map[uint64]int{}
		for _, f := range files {
			if err := lake.EventIDs(ctx, lk, f.Path, func(fp uint64) { got[fp]++ }); err != nil {
				problem = err.Error()
				break
			}
		}
		if maps.Equal(got, want) {
			return
		}
		var missing, twice int
		for fp, n := range want {
			switch {
			case got[fp] == 0:
				missing++
			case got[fp] > n:
				twice++
			}
		}
		problem = fmt.Sprintf("%d files, %d events missing, %d more than once, %d ids not produced", len(files), missing, twice, len(got)-len(want)+missing)
	}
	s.t.Fatalf("%s: the lake does not hold the %d events exactly once after %s: %s", s.name, len(want), d, problem)
}
