// Package streamtest runs `bytebasket stream` as users do, against the real Kafka and
// Cassandra of deploy/local, and reconciles the serving store with the simulator's totals:
// after kill -9 at random moments, and with two instances sharing the partitions.
package streamtest

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bytebasket/bytebasket/internal/config"
	"github.com/bytebasket/bytebasket/internal/event"
	"github.com/bytebasket/bytebasket/internal/model"
	"github.com/bytebasket/bytebasket/internal/sim"
	"github.com/bytebasket/bytebasket/internal/store/cassandra"
	"github.com/bytebasket/bytebasket/internal/testenv"
)

var binary string

func TestMain(m *testing.M) { testenv.MainWithBinary(m, &binary) }

// env is one isolated deployment on the shared cluster: its own topics, keyspace and group.
type env struct {
	t     testing.TB
	vars  []string
	cfg   config.Config
	start time.Time
	seed  uint64
	users int
}

func newEnv(t testing.TB) *env {
	kafka := testenv.Addr(t, testenv.Kafka)
	cass := testenv.Addr(t, testenv.Cassandra)
	id := time.Now().UnixNano()
	e := &env{t: t, start: time.Now().Add(-3 * time.Hour).Truncate(time.Second), seed: uint64(id), users: 3000}
	e.vars = append(os.Environ(),
		"BYTEBASKET_CONFIG="+filepath.Join(testenv.RepoRoot(), "config"),
		"BYTEBASKET_KAFKA_BROKERS="+kafka,
		fmt.Sprintf("BYTEBASKET_KAFKA_TOPIC_PREFIX=it%d-", id),
		"BYTEBASKET_CASSANDRA_HOSTS="+cass,
		fmt.Sprintf("BYTEBASKET_CASSANDRA_KEYSPACE=it_stream_%d", id),
		fmt.Sprintf("BYTEBASKET_STREAM_GROUP=it-%d", id),
	)
	e.cfg = config.Default()
	e.cfg.Cassandra.Hosts = []string{cass}
	e.cfg.Cassandra.Keyspace = fmt.Sprintf("it_stream_%d", id)
	e.run("schema", "apply")
	t.Cleanup(func() {
		s, err := cassandra.Connect(context.Background(), e.cfg.Cassandra)
		if err == nil && !keep {
			_ = s.Query("DROP KEYSPACE IF EXISTS " + e.cfg.Cassandra.Keyspace).Exec()
			s.Close()
		}
	})
	return e
}

func (e *env) cmd(args ...string) *exec.Cmd {
	c := exec.Command(binary, args...)
	c.Env = e.vars
	return c
}

func (e *env) run(args ...string) string {
	e.t.Helper()
	out, err := e.cmd(args...).CombinedOutput()
	if err != nil {
		e.t.Fatalf("bytebasket %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// produce writes n simulated events; the same seed, start and users reproduce them in-process.
func (e *env) produce(n int) {
	e.run("produce", "--count", fmt.Sprint(n), "--rate", "0", "--seed", fmt.Sprint(e.seed),
		"--start", e.start.Format(time.RFC3339), "--users", fmt.Sprint(e.users), "--labels=false")
}

type totals struct {
	Kinds   map[event.Kind]int64
	Revenue map[string]int64
	Orders  map[string]int64
}

// expected regenerates the produced events (what `produce --rate 0` simulates: 1000 events/s
// of simulated time with the day/night curve) and totals them.
func (e *env) expected(n int) totals {
	s, err := sim.New(sim.Config{Seed: e.seed, Users: e.users, Rate: 1000, Start: e.start, Diurnal: true})
	if err != nil {
		e.t.Fatal(err)
	}
	tt := totals{Kinds: map[event.Kind]int64{}, Revenue: map[string]int64{}, Orders: map[string]int64{}}
	for range n {
		ev, _ := s.Next()
		k := event.KindOf(ev)
		tt.Kinds[k]++
		if k == event.KindOrderPlaced {
			tot := ev.GetOrderPlaced().GetTotal()
			tt.Revenue[tot.GetCurrency()] += tot.GetAmountMinor()
			tt.Orders[tot.GetCurrency()]++
		}
	}
	return tt
}

// stored totals the minute windows over all platforms, of every partition, in the store.
func (e *env) stored(ctx context.Context, st *cassandra.Store) totals {
	e.t.Helper()
	rows, err := st.Windows(ctx, model.Minute, e.start.Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil {
		e.t.Fatal(err)
	}
	tt := totals{Kinds: map[event.Kind]int64{}, Revenue: map[string]int64{}, Orders: map[string]int64{}}
	for _, w := range rows {
		if w.Key.Platform != model.AllPlatforms { // every event is in the "all" rows once
			continue
		}
		tt.Kinds[event.KindPageView] += w.PageViews
		tt.Kinds[event.KindProductView] += w.ProductViews
		tt.Kinds[event.KindSearch] += w.Searches
		tt.Kinds[event.KindCartAdd] += w.CartAdds
		tt.Kinds[event.KindCheckoutStarted] += w.Checkouts
		tt.Kinds[event.KindOrderPlaced] += w.Orders
		tt.Kinds[event.KindPaymentFailed] += w.PaymentsFailed
		tt.Kinds[event.KindRefund] += w.Refunds
		tt.Kinds[event.KindChargeback] += w.Chargebacks
		for c, v := range w.Revenue {
			tt.Revenue[c] += v
		}
		for c, v := range w.OrdersByCurrency {
			tt.Orders[c] += v
		}
	}
	return tt
}

// comparable drops the kinds windows do not count.
func (tt totals) comparable() totals {
	out := totals{Kinds: map[event.Kind]int64{}, Revenue: tt.Revenue, Orders: tt.Orders}
	for _, k := range []event.Kind{event.KindPageView, event.KindProductView, event.KindSearch, event.KindCartAdd,
		event.KindCheckoutStarted, event.KindOrderPlaced, event.KindPaymentFailed, event.KindRefund, event.KindChargeback} {
		if tt.Kinds[k] != 0 {
			out.Kinds[k] = tt.Kinds[k]
		}
	}
	return out
}

// awaitTotals polls the store until it holds want or the deadline passes.
func (e *env) awaitTotals(want totals, d time.Duration) {
	e.t.Helper()
	ctx := context.Background()
	st, err := cassandra.NewStore(ctx, e.cfg.Cassandra)
	if err != nil {
		e.t.Fatal(err)
	}
	defer st.Close()
	var got totals
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		got = e.stored(ctx, st).comparable()
		if reflect.DeepEqual(got, want.comparable()) {
			return
		}
	}
	if os.Getenv("BYTEBASKET_IT_DEBUG") != "" {
		rows, _ := st.Windows(ctx, model.Minute, e.start.Add(-time.Hour), time.Now().Add(time.Hour))
		for _, w := range rows {
			if w.Key.Platform == model.AllPlatforms {
				e.t.Logf("%s p%d views %d orders %d updated %s", w.Key.Start.Format("15:04"), w.Key.Partition, w.PageViews, w.Orders, w.UpdatedAt.Format("15:04:05.000"))
			}
		}
		e.t.Logf("keyspace kept: %s", e.cfg.Cassandra.Keyspace)
		keep = true
	}
	e.t.Fatalf("store does not reconcile with the simulator after %s:\n got %+v\nwant %+v", d, got, want.comparable())
}

var keep bool

// startStream starts one instance with its ops endpoints on a free port; it returns the base URL.
func (e *env) startStream(extra ...string) (*exec.Cmd, string) {
	e.t.Helper()
	c := e.cmd(append([]string{"stream", "--http", "127.0.0.1:0"}, extra...)...)
	out, _ := c.StdoutPipe()
	c.Stderr = os.Stderr
	if err := c.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = c.Process.Kill(); _, _ = c.Process.Wait() })
	buf := make([]byte, 4096)
	re := regexp.MustCompile(`http://(\S+)`)
	var seen string
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		n, err := out.Read(buf)
		seen += string(buf[:n])
		if m := re.FindStringSubmatch(seen); m != nil {
			go func() { _, _ = out.Read(make([]byte, 1<<16)) }()
			return c, "http://" + m[1]
		}
		if err != nil {
			break
		}
	}
	e.t.Fatalf("stream did not start: %q", seen)
	return nil, ""
}

// awaitCaughtUp waits until the instance owns all 4 partitions of both topics and has no
// record left to read.
func awaitCaughtUp(t testing.TB, base string, d time.Duration) {
	t.Helper()
	var lag float64
	var series int
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		lag, series = 0, 0
		for k, v := range scrape(t, base) {
			if strings.HasPrefix(k, "bytebasket_stream_lag_records{") {
				lag += v
				series++
			}
		}
		if series == 8 && lag == 0 {
			return
		}
	}
	t.Fatalf("%s not caught up within %s: %v records behind over %d topic partitions", base, d, lag, series)
}

func waitReady(t testing.TB, base string) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get(base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
	}
	t.Fatalf("%s/readyz not 200 within 60s", base)
}

// kill -9 at random moments while events flow, restart each time; the store ends with
// exactly the simulator's totals.
func TestKillNineThenRestartIsExact(t *testing.T) {
	e := newEnv(t)
	const n = 150_000
	want := e.expected(n)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))

	produced := make(chan struct{})
	go func() { e.produce(n); close(produced) }()
	for i := range 4 {
		c, base := e.startStream()
		waitReady(t, base)
		time.Sleep(time.Duration(500+rng.IntN(2500)) * time.Millisecond)
		if err := c.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_, _ = c.Process.Wait()
		t.Logf("kill -9 #%d", i+1)
	}
	<-produced
	c, base := e.startStream()
	waitReady(t, base)
	// The store may reconcile already from what the killed instances wrote while this one
	// still replays: stop it only once it has read everything.
	awaitCaughtUp(t, base, 3*time.Minute)
	e.awaitTotals(want, 3*time.Minute)
	// A clean stop after catching up changes nothing either.
	_ = c.Process.Signal(syscall.SIGTERM)
	_, _ = c.Process.Wait()
	e.awaitTotals(want, 10*time.Second)
}

// Two instances in one group share the four partitions; the totals stay exact.
func TestTwoInstancesShareThePartitions(t *testing.T) {
	e := newEnv(t)
	const n = 60_000
	want := e.expected(n)
	_, base1 := e.startStream()
	_, base2 := e.startStream()
	waitReady(t, base1)
	waitReady(t, base2)
	e.produce(n)
	e.awaitTotals(want, 2*time.Minute)
	for _, base := range []string{base1, base2} {
		resp, err := http.Get(base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !regexp.MustCompile(`bytebasket_stream_events_total\{kind="[a-z_]+",topic="user-activity"\} [1-9]`).Match(body) {
			t.Errorf("instance %s processed no events: the partitions were not shared", base)
		}
	}
}
