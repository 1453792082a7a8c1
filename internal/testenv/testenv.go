// Package testenv finds the real servers of deploy/local for integration tests. A server
// that does not answer skips the test with instructions, except under CI=true, where it
// fails the test: CI must never go green by skipping.
package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A Server is one of the deploy/local servers and the variable that can move it.
type Server struct {
	Name    string
	EnvVar  string
	Default string
}

// The servers of deploy/local/cluster, at their default loopback addresses.
var (
	Kafka     = Server{"kafka", "BYTEBASKET_IT_KAFKA", "127.0.0.1:9092"}
	Cassandra = Server{"cassandra", "BYTEBASKET_IT_CASSANDRA", "127.0.0.1:9042"}
	HDFS      = Server{"hdfs", "BYTEBASKET_IT_HDFS", "127.0.0.1:8020"}
	Spark     = Server{"spark", "BYTEBASKET_IT_SPARK", "127.0.0.1:15002"}
)

// Addr returns the server's address if it accepts connections; otherwise the test is
// skipped, or failed under CI=true.
func Addr(t testing.TB, s Server) string {
	t.Helper()
	Integration(t)
	addr := s.Default
	if v := os.Getenv(s.EnvVar); v != "" {
		addr = v
	}
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		Missing(t, "%s is not reachable at %s (%v): start it with `deploy/local/cluster up %s` or set %s",
			s.Name, addr, err, s.Name, s.EnvVar)
	}
	conn.Close()
	return addr
}

// Integration skips an integration test in -short mode, except under CI=true.
func Integration(t testing.TB) {
	t.Helper()
	if testing.Short() && !ci() {
		t.Skipf("integration test skipped in -short mode")
	}
}

// Missing ends a test whose prerequisite is absent, saying how to get it: a skip, or a
// failure under CI=true.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if ci() {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

func ci() bool { return os.Getenv("CI") == "true" }

// RepoRoot is the repository's top directory, for tests that run repo scripts.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// BuildBinary builds cmd/bytebasket into a temporary directory, for tests that run the binary
// as users do (call it from TestMain; call cleanup when done).
func BuildBinary() (path string, cleanup func(), err error) {
	dir, err := os.MkdirTemp("", "bytebasket-bin")
	if err != nil {
		return "", nil, err
	}
	path = filepath.Join(dir, "bytebasket")
	cmd := exec.Command("go", "build", "-o", path, "./cmd/bytebasket")
	cmd.Dir = RepoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("build bytebasket: %w\n%s", err, out)
	}
	return path, func() { os.RemoveAll(dir) }, nil
}

// MainWithBinary is a TestMain body: it builds the binary into *binary, runs the tests and
// exits with their code. BYTEBASKET_TEST_BINARY names a binary to use instead (a benchmark
// of an earlier release beside this one).
func MainWithBinary(m *testing.M, binary *string) {
	if p := os.Getenv("BYTEBASKET_TEST_BINARY"); p != "" {
		*binary = p
		os.Exit(m.Run())
	}
	path, cleanup, err := BuildBinary()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	*binary = path
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// CPUSeconds is the user and system CPU time process pid has used, from /proc.
func CPUSeconds(t testing.TB, pid int) float64 {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // clock ticks; 100 on Linux
}
