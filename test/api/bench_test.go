package apitest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bytebasket/bytebasket/internal/config"
	"github.com/bytebasket/bytebasket/internal/store/cassandra"
	"github.com/bytebasket/bytebasket/internal/testenv"
)

// The API under load: a store filled by the real processor, then `bytebasket serve` on it
// and hey (pinned in tools/go.mod) at a fixed 2,000 requests/s (20 workers x 100/s) against
// /api/v1/live and /api/v1/users/{id}. Figures go to docs/benchmarks.md:
//
//	go test -run '^$' -bench ServeLoad -benchtime 1x -timeout 30m ./test/api/
//
// BYTEBASKET_BENCH_FILL (default 60s) is how long events are produced first;
// BYTEBASKET_BENCH_LOAD (default 20s) is how long each endpoint is loaded.

func envDuration(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(name)); err == nil {
		return d
	}
	return def
}

// runFor runs the binary with args for d, then SIGTERM, and requires exit 0.
func runFor(b *testing.B, d time.Duration, env []string, args ...string) {
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := os.CreateTemp(b.TempDir(), "out")
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	time.Sleep(d)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		log, _ := os.ReadFile(out.Name())
		b.Fatalf("%s: %v\n%s", args[0], err, tail(log))
	}
}

func tail(b []byte) string {
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

var heyRE = map[string]*regexp.Regexp{
	"rps": regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`),
	"p50": regexp.MustCompile(`50%+ in ([0-9.]+) secs`),
	"p99": regexp.MustCompile(`99%+ in ([0-9.]+) secs`),
	"ok":  regexp.MustCompile(`\[200\]\s+(\d+) responses`),
}

// load runs hey against url at 2,000 requests/s and reports p50, p99 and requests/s.
func load(b *testing.B, name, target string, d time.Duration) {
	cmd := exec.Command("go", "tool", "-modfile=tools/go.mod", "hey", "-z", d.String(), "-c", "20", "-q", "100", target)
	cmd.Dir = testenv.RepoRoot()
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("hey: %v\n%s", err, out)
	}
	v := map[string]float64{}
	for k, re := range heyRE {
		m := re.FindSubmatch(out)
		if m == nil {
			b.Fatalf("hey output has no %s:\n%s", k, out)
		}
		v[k], _ = strconv.ParseFloat(string(m[1]), 64)
	}
	if strings.Contains(string(out), "Error distribution") || !strings.Contains(string(out), "Status code distribution:\n  [200]") {
		b.Errorf("%s: requests failed:\n%s", name, out)
	}
	b.ReportMetric(v["p50"]*1000, name+"_p50_ms")
	b.ReportMetric(v["p99"]*1000, name+"_p99_ms")
	b.ReportMetric(v["rps"], name+"_req/s")
	b.Logf("%s: p50 %.2f ms, p99 %.2f ms, %.0f req/s, %.0f responses 200", name, v["p50"]*1000, v["p99"]*1000, v["rps"], v["ok"])
}

// loadServe starts serve with args and loads live and a user with sessions.
func loadServe(b *testing.B, env []string, args ...string) {
	_, httpAddr, _ := startServe(b, env, args...)
	base := "http://" + httpAddr
	code, body := getBody(b, base+"/api/v1/live")
	if code != 200 || !strings.Contains(body, `"page_views"`) {
		b.Fatalf("live has no windows (is the store filled?): %d %s", code, body)
	}
	var tx struct {
		Transactions []struct {
			UserID string `json:"user_id"`
		}
	}
	if _, body := getBody(b, base+"/api/v1/transactions?limit=1"); json.Unmarshal([]byte(body), &tx) != nil || len(tx.Transactions) == 0 {
		b.Fatalf("no transactions to pick a user from: %s", body)
	}
	user := base + "/api/v1/users/" + url.PathEscape(tx.Transactions[0].UserID)
	if _, body := getBody(b, user); !strings.Contains(body, `"session_id"`) {
		b.Fatalf("user has no sessions: %s", body)
	}
	d := envDuration("BYTEBASKET_BENCH_LOAD", 20*time.Second)
	b.ResetTimer()
	load(b, "live", base+"/api/v1/live", d)
	load(b, "user", user, d)
}

func BenchmarkServeLoad(b *testing.B) {
	fill := envDuration("BYTEBASKET_BENCH_FILL", time.Minute)
	b.Run("embedded", func(b *testing.B) {
		dir := b.TempDir()
		// Embedded mode: broker, simulator, stream processor into the embedded store.
		runFor(b, fill, nil, "run", "--data-dir", dir, "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0",
			"--kafka-listen", "127.0.0.1:0", "--rate", "1000")
		loadServe(b, nil, "--store", "embedded", "--data-dir", dir)
	})
	b.Run("cassandra", func(b *testing.B) {
		kafka := testenv.Addr(b, testenv.Kafka)
		cass := testenv.Addr(b, testenv.Cassandra)
		id := fmt.Sprintf("bench_api_%d", time.Now().UnixNano())
		env := []string{"BYTEBASKET_CASSANDRA_HOSTS=" + cass, "BYTEBASKET_CASSANDRA_KEYSPACE=" + id,
			"BYTEBASKET_KAFKA_BROKERS=" + kafka, "BYTEBASKET_KAFKA_TOPIC_PREFIX=" + id + ".", "BYTEBASKET_STORE_BACKEND=cassandra"}
		config := filepath.Join(testenv.RepoRoot(), "config")
		schema := exec.Command(binary, "schema", "apply", "--config", config)
		schema.Env = append(os.Environ(), env...)
		if out, err := schema.CombinedOutput(); err != nil {
			b.Fatalf("schema apply: %v\n%s", err, out)
		}
		b.Cleanup(func() { dropKeyspace(b, cass, id) })
		stream := exec.Command(binary, "stream", "--config", config, "--http", "127.0.0.1:0", "--group", id)
		stream.Env = append(os.Environ(), env...)
		if err := stream.Start(); err != nil {
			b.Fatal(err)
		}
		produce := exec.Command(binary, "produce", "--config", config, "--duration", fill.String(), "--rate", "1000", "--users", "10000")
		produce.Env = append(os.Environ(), env...)
		if out, err := produce.CombinedOutput(); err != nil {
			b.Fatalf("produce: %v\n%s", err, tail(out))
		}
		time.Sleep(10 * time.Second) // the stream catches up and flushes
		_ = stream.Process.Signal(syscall.SIGTERM)
		if err := stream.Wait(); err != nil {
			b.Fatalf("stream: %v", err)
		}
		loadServe(b, env, "--config", config)
	})
}

func dropKeyspace(b *testing.B, host, keyspace string) {
	cfg := config.Default().Cassandra
	cfg.Hosts = []string{host}
	s, err := cassandra.Connect(context.Background(), cfg)
	if err != nil {
		b.Logf("drop keyspace %s: %v", keyspace, err)
		return
	}
	defer s.Close()
	if err := s.Query("DROP KEYSPACE IF EXISTS " + keyspace).Exec(); err != nil {
		b.Logf("drop keyspace %s: %v", keyspace, err)
	}
}
