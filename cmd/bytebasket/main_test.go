package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bytebasket/bytebasket/internal/bus"
	"github.com/bytebasket/bytebasket/internal/config"
	"github.com/bytebasket/bytebasket/internal/event"
	"github.com/bytebasket/bytebasket/internal/testenv"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

var binary string

// TestMain builds the real binary once; the tests run it as a user would.
func TestMain(m *testing.M) { testenv.MainWithBinary(m, &binary) }

func eventsOn(t *testing.T, brokers, prefix string) int64 {
	t.Helper()
	cfg := config.Default().Kafka
	cfg.Brokers = []string{brokers}
	opts, _ := bus.ClientOptions(cfg)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(context.Background(), prefix+event.TopicUserActivity, prefix+event.TopicTransactions)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

// produce --count N makes exactly N events and exits 0 with a one-line summary, on the
// embedded broker and on a real Kafka.
func TestProduceCountIsExact(t *testing.T) {
	targets := map[string]func(t *testing.T) string{
		"embedded": func(t *testing.T) string {
			b, err := bus.StartEmbedded("127.0.0.1:0", "", 0)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(b.Close)
			return b.Addr()
		},
		"kafka": func(t *testing.T) string { return testenv.Addr(t, testenv.Kafka) },
	}
	for name, addr := range targets {
		t.Run(name, func(t *testing.T) {
			brokers := addr(t)
			prefix := fmt.Sprintf("cli-%d-", time.Now().UnixNano())
			cmd := exec.Command(binary, "produce", "--brokers", brokers, "--count", "25000", "--rate", "0", "--seed", "5")
			cmd.Env = append(os.Environ(), "BYTEBASKET_KAFKA_TOPIC_PREFIX="+prefix)
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("produce: %v\n%s", err, out)
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "produced 25000 events") {
				t.Fatalf("stdout is not a one-line summary of 25000 events:\n%s", out)
			}
			if n := eventsOn(t, brokers, prefix); n != 25000 {
				t.Fatalf("broker holds %d events, want 25000", n)
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"produce"}, // no brokers
		{"produce", "--brokers", "x:1", "--count", "5", "--duration", "1s"},
		{"produce", "--brokers", "x:1", "--count", "-5"},
		{"topics", "frobnicate"},
		{"nonsense"},
	} {
		out, err := exec.Command(binary, args...).CombinedOutput()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 2 {
			t.Errorf("%v: exit %v, want 2 (usage)\n%s", args, err, out)
		}
	}
}

// bytebasket run: healthy within seconds, produces, and on SIGTERM drains, prints a summary
// and exits 0; the events survive in the data directory.
func TestRunServesAndStopsCleanlyOnSIGTERM(t *testing.T) {
	dataDir := t.TempDir()
	cmd := exec.Command(binary, "run", "--data-dir", dataDir, "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0", "--kafka-listen", "127.0.0.1:0", "--rate", "3000")
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var base, broker string
	httpRe, kafkaRe := regexp.MustCompile(`http://(\S+)`), regexp.MustCompile(`kafka \(embedded\):\s+(\S+)`)
	timeout := time.After(20 * time.Second)
	for base == "" || broker == "" {
		select {
		case l := <-lines:
			if m := httpRe.FindStringSubmatch(l); m != nil {
				base = "http://" + m[1]
			}
			if m := kafkaRe.FindStringSubmatch(l); m != nil {
				broker = m[1]
			}
		case <-timeout:
			t.Fatal("run did not print its addresses within 20s")
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(base + "/healthz")
		if err == nil && resp.StatusCode == 200 {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("/healthz not 200 within 20s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Wait until events are acknowledged, as /metrics reports them.
	producedRe := regexp.MustCompile(`(?m)^bytebasket_events_produced_total\{kind="page_view",topic="user-activity"\} [1-9]`)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(base + "/metrics"); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if producedRe.Match(b) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no produced events in /metrics within 30s")
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var summary string
	for l := range lines {
		if strings.HasPrefix(l, "produced ") {
			summary = l
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("run exited with %v after SIGTERM", err)
	}
	m := regexp.MustCompile(`^produced (\d+) events`).FindStringSubmatch(summary)
	if m == nil || m[1] == "0" {
		t.Fatalf("no summary of produced events: %q", summary)
	}
	// Restart the broker on the same data dir: every event the summary counted is there.
	b, err := bus.StartEmbedded("127.0.0.1:0", dataDir, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if n := eventsOn(t, b.Addr(), ""); fmt.Sprint(n) != m[1] {
		t.Fatalf("data dir holds %d events after SIGTERM, summary said %s", n, m[1])
	}
}
