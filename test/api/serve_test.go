// Package apitest runs `bytebasket serve` as users do: the binary, its HTTP API, dashboard,
// gRPC service and SIGTERM handling, and the load benchmark of the API (bench_test.go).
package apitest

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/bytebasket/bytebasket/internal/testenv"
	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
)

var binary string

func TestMain(m *testing.M) { testenv.MainWithBinary(m, &binary) }

var bannerRE = regexp.MustCompile(`http http://(\S+) .*grpc (\S+)`)

// startServe starts `bytebasket serve` with args and returns it with its HTTP and gRPC
// addresses, read from its banner.
func startServe(t testing.TB, env []string, args ...string) (cmd *exec.Cmd, httpAddr, grpcAddr string) {
	t.Helper()
	cmd = exec.Command(binary, append([]string{"serve", "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	select {
	case l, ok := <-lines:
		m := bannerRE.FindStringSubmatch(l)
		if !ok || m == nil {
			t.Fatalf("serve printed %q, want its addresses", l)
		}
		go func() {
			for range lines { // keep draining so serve never blocks on stdout
			}
		}()
		return cmd, m[1], m[2]
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not print its addresses within 30s")
	}
	return nil, "", ""
}

func getBody(t testing.TB, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// serve on an empty embedded store: API, dashboard, ops and gRPC answer; SIGTERM with an
// event stream open ends the stream and exits 0 promptly.
func TestServeSIGTERM(t *testing.T) {
	cmd, httpAddr, grpcAddr := startServe(t, nil, "--store", "embedded", "--data-dir", t.TempDir())
	base := "http://" + httpAddr
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/api/v1/live": 200, "/api/v1/users/u-1": 200,
		"/api/v1/live?windows=0": 400, "/api/v1/nope": 404, "/": 200} {
		if code, body := getBody(t, base+path); code != want {
			t.Errorf("GET %s: %d %s, want %d", path, code, body, want)
		}
	}
	var live struct {
		Granularity string
		Windows     []any
	}
	if _, body := getBody(t, base+"/api/v1/live"); json.Unmarshal([]byte(body), &live) != nil || live.Granularity != "1m" || live.Windows == nil {
		t.Errorf("live on an empty store: %s", body)
	}
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if r, err := pb.NewAnalyticsServiceClient(conn).GetLive(ctx, &pb.GetLiveRequest{Platform: "web"}); err != nil || r.Platform != "web" {
		t.Errorf("grpc GetLive: %v %v", r, err)
	}

	resp, err := http.Get(base + "/api/v1/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rd := bufio.NewReader(resp.Body)
	for {
		l, err := rd.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(l, "event: update") {
			break
		}
	}
	t0 := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	streamEnded := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, rd); close(streamEnded) }()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("serve exited with %v after SIGTERM", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve still running 15s after SIGTERM")
	}
	select {
	case <-streamEnded:
	case <-time.After(5 * time.Second):
		t.Fatal("event stream still open after serve exited")
	}
	t.Logf("serve exited 0 %s after SIGTERM", time.Since(t0).Round(time.Millisecond))
}
