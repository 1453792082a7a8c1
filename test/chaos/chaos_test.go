package chaos

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/bytebasket/bytebasket/internal/config"
	"github.com/bytebasket/bytebasket/internal/lake/hdfs"
	"github.com/bytebasket/bytebasket/internal/lake/local"
	"github.com/bytebasket/bytebasket/internal/testenv"
)

// Faults of our own processes: they share nothing but the servers, so they run side by side.
func TestProcessFaults(t *testing.T) {
	// SIGKILL, then down for longer than the allowed lateness while events keep coming: the
	// restarted instance replays the backlog of both topics and counts none of it late.
	t.Run("kill -9 with downtime longer than the lateness", func(t *testing.T) {
		t.Parallel()
		s := newScenario(t, "kill9", 400, 75)
		wait := s.produce()
		first := s.launch("stream")
		time.Sleep(25 * time.Second)
		first.kill()
		time.Sleep(lateness + 15*time.Second)
		second := s.launch("stream")
		wait()
		awaitCaughtUp(t, "stream", []*proc{second}, 2*time.Minute)
		s.reconcileStream(s.expected(), time.Minute)
		checkNoLate(t, []*proc{second})
		second.stop()
	})

	// One of two instances (stream and archive) is frozen past the session timeout: the
	// other takes its partitions over, claims them and replays; the frozen one resumes
	// with buffered work and stale state, and must change nothing.
	t.Run("paused instance resumes after losing its partitions", func(t *testing.T) {
		t.Parallel()
		s := newScenario(t, "zombie", 400, 75)
		streams := []*proc{s.launch("stream"), s.launch("stream")}
		archives := []*proc{s.launch("archive"), s.launch("archive")}
		wait := s.produce()
		time.Sleep(20 * time.Second)
		streams[0].signal(syscall.SIGSTOP)
		archives[0].signal(syscall.SIGSTOP)
		time.Sleep(25 * time.Second) // the session timeout is 10 s
		streams[0].signal(syscall.SIGCONT)
		archives[0].signal(syscall.SIGCONT)
		wait()
		awaitCaughtUp(t, "stream", streams, 2*time.Minute)
		awaitCaughtUp(t, "archive", archives, 2*time.Minute)
		tr := s.expected()
		s.reconcileStream(tr, time.Minute)
		s.reconcileLake(openLocal(t, s.lakeDir), tr, time.Minute)
		checkNoLate(t, streams)
	})

	t.Run("fraud decisions exactly once through kill -9 and a frozen instance", func(t *testing.T) {
		t.Parallel()
		fraudExactlyOnce(t)
	})

	// A client that retries sends some events twice (same id and time): every measure and
	// the lake count each event once.
	t.Run("events sent twice", func(t *testing.T) {
		t.Parallel()
		s := newScenario(t, "duplicates", 400, 60, "--duplicates", "0.05")
		stream, archive := s.launch("stream"), s.launch("archive")
		s.produce()()
		awaitCaughtUp(t, "stream", []*proc{stream}, 2*time.Minute)
		awaitCaughtUp(t, "archive", []*proc{archive}, 2*time.Minute)
		tr := s.expected()
		s.reconcileStream(tr, time.Minute)
		s.reconcileLake(openLocal(t, s.lakeDir), tr, time.Minute)
		checkNoLate(t, []*proc{stream})
		dups, _ := sum(stream.metrics(), "bytebasket_stream_partition_duplicate_events{")
		archived, _ := sum(archive.metrics(), "bytebasket_archive_duplicate_events_total")
		if dups < float64(tr.produced)*0.03 || archived < float64(tr.produced)*0.03 {
			t.Fatalf("copies dropped: stream %v, archive %v; about %d were sent", dups, archived, tr.produced/20)
		}
	})

	// Another producer partitions by crc32 (librdkafka's default): the users it puts in the
	// wrong partition go to the dead letters as misrouted, and nothing else is disturbed.
	t.Run("producer with another partitioner", func(t *testing.T) {
		t.Parallel()
		s := newScenario(t, "partitioner", 400, 60, "--partitioner", "librdkafka")
		stream := s.launch("stream")
		s.produce()()
		awaitCaughtUp(t, "stream", []*proc{stream}, 2*time.Minute)
		tr := s.expected()
		s.reconcileStream(tr, time.Minute)
		misrouted, _ := sum(stream.metrics(), `bytebasket_stream_dead_letters_total{reason="misrouted"}`)
		if tr.skipped == 0 || misrouted != float64(tr.skipped) {
			t.Fatalf("%v misrouted dead letters, want %d", misrouted, tr.skipped)
		}
		checkNoLate(t, []*proc{stream})
	})
}

// Faults of the servers every test shares. The store's and the lake's outages touch
// different roles (the stream writes Cassandra, the archive HDFS) and run side by side; the
// Kafka restart touches everything and runs alone.
func TestServerFaults(t *testing.T) {
	t.Run("store and lake", storeAndLakeOutages)
	t.Run("kafka restarted", kafkaRestarted)
}

func storeAndLakeOutages(t *testing.T) {
	// Cassandra is down for a minute: the stream stalls (not ready, nothing polled), keeps
	// its group membership, and writes everything once Cassandra is back.
	t.Run("cassandra stopped for 60s", func(t *testing.T) {
		t.Parallel()
		s := newScenario(t, "cassandra", 300, 120)
		stream := s.launch("stream")
		wait := s.produce()
		time.Sleep(15 * time.Second)
		cluster(t, "down", "cassandra")
		stalled := false
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && !stalled; time.Sleep(500 * time.Millisecond) {
			stalled = !stream.ready()
		}
		if !stalled {
			t.Error("/readyz stayed ready with the store down")
		}
		time.Sleep(30 * time.Second)
		cluster(t, "up", "cassandra")
		wait()
		awaitCaughtUp(t, "stream", []*proc{stream}, 3*time.Minute)
		s.reconcileStream(s.expected(), 2*time.Minute)
		checkNoLate(t, []*proc{stream})
		stream.stop()
	})

	// HDFS (namenode and datanode) is down in the middle of archiving: the archiver retries,
	// and the lake ends with every event exactly once.
	t.Run("hdfs stopped mid-archive", func(t *testing.T) {
		t.Parallel()
		s := newScenario(t, "hdfs", 400, 75)
		root := fmt.Sprintf("/chaos/%d", s.seed)
		s.vars = append(s.vars, "BYTEBASKET_LAKE_BACKEND=hdfs", "BYTEBASKET_LAKE_ROOT="+root)
		archive := s.launch("archive")
		wait := s.produce()
		time.Sleep(20 * time.Second)
		cluster(t, "down", "hdfs")
		time.Sleep(30 * time.Second)
		cluster(t, "up", "hdfs")
		wait()
		awaitCaughtUp(t, "archive", []*proc{archive}, 3*time.Minute)
		cfg := config.Default().Lake
		cfg.HDFS.Namenodes, cfg.Root = []string{testenv.Addr(t, testenv.HDFS)}, root
		fs, err := hdfs.Open(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = fs.RemoveAll(t.Context(), "/"); fs.Close() }()
		s.reconcileLake(fs, s.expected(), 2*time.Minute)
	})
}

// Kafka restarts under the producer, the stream and the archiver: all of them ride it out,
// and every measure and the lake reconcile.
func kafkaRestarted(t *testing.T) {
	s := newScenario(t, "kafka", 400, 75)
	stream, archive := s.launch("stream"), s.launch("archive")
	wait := s.produce()
	time.Sleep(20 * time.Second)
	cluster(t, "down", "kafka")
	cluster(t, "up", "kafka")
	wait()
	awaitCaughtUp(t, "stream", []*proc{stream}, 3*time.Minute)
	awaitCaughtUp(t, "archive", []*proc{archive}, 3*time.Minute)
	tr := s.expected()
	s.reconcileStream(tr, 2*time.Minute)
	s.reconcileLake(openLocal(t, s.lakeDir), tr, 2*time.Minute)
	checkNoLate(t, []*proc{stream})
}

// cluster runs deploy/local/cluster, as an operator would.
func cluster(t *testing.T, args ...string) {
	t.Helper()
	t0 := time.Now()
	out, err := exec.Command(filepath.Join(testenv.RepoRoot(), "deploy", "local", "cluster"), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("cluster %v: %v\n%s", args, err, out)
	}
	t.Logf("cluster %v took %s", args, time.Since(t0).Round(time.Second))
}

func openLocal(t *testing.T, dir string) *local.Dir {
	t.Helper()
	d, err := local.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
