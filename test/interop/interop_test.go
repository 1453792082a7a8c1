// Package interop checks that tools nobody here wrote read what ByteBasket writes: Kafka's
// own console consumer, Cassandra's nodetool and a CQL client, Hadoop's FsShell. The tools
// run from the same Maven artifacts as the servers, through deploy/local/cluster.
package interop

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bytebasket/bytebasket/internal/app"
	"github.com/bytebasket/bytebasket/internal/bus"
	"github.com/bytebasket/bytebasket/internal/config"
	"github.com/bytebasket/bytebasket/internal/event"
	"github.com/bytebasket/bytebasket/internal/lake/hdfs"
	"github.com/bytebasket/bytebasket/internal/store/cassandra"
	"github.com/bytebasket/bytebasket/internal/testenv"
)

// cluster runs a deploy/local/cluster subcommand and returns its stdout.
func cluster(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(testenv.RepoRoot(), "deploy", "local", "cluster"), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("cluster %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

func TestKafkaConsoleConsumerReadsOurTopic(t *testing.T) {
	cfg := config.Default()
	cfg.Kafka.Brokers = []string{testenv.Addr(t, testenv.Kafka)}
	consoleConsumerReads(t, cfg)
}

// The embedded broker of `bytebasket run` speaks Kafka to tools nobody here wrote.
func TestKafkaConsoleConsumerReadsEmbeddedBroker(t *testing.T) {
	testenv.Addr(t, testenv.Kafka) // the tool's jars come with deploy/local's Kafka
	b, err := bus.StartEmbedded("127.0.0.1:0", t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cfg := config.Default()
	cfg.Kafka.Brokers = []string{b.Addr()}
	consoleConsumerReads(t, cfg)
}

func consoleConsumerReads(t *testing.T, cfg config.Config) {
	cfg.Kafka.TopicPrefix = fmt.Sprintf("interop-%d-", time.Now().UnixNano())
	ctx := context.Background()
	if err := app.TopicsCreate(ctx, cfg, io.Discard); err != nil {
		t.Fatal(err)
	}
	p, err := bus.NewProducer(cfg.Kafka, nil)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := app.Produce(ctx, p, app.ProduceOptions{Count: 200, Users: 50, Seed: 3}, nil)
	p.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	topic := cfg.Kafka.Topic(event.TopicUserActivity)
	n := sum.ByTopic[event.TopicUserActivity]
	out := cluster(t, "kafka-console-consumer", "--bootstrap-server", cfg.Kafka.Brokers[0], "--topic", topic,
		"--from-beginning", "--max-messages", fmt.Sprint(n), "--timeout-ms", "60000",
		"--property", "print.key=true", "--property", "print.partition=true", "--property", "print.value=false",
		"--consumer-property", "isolation.level=read_committed")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if int64(len(lines)) != n {
		t.Fatalf("console consumer printed %d records, we produced %d to %s:\n%s", len(lines), n, topic, out)
	}
	partOf := map[string]string{}
	for _, l := range lines {
		part, key, ok := strings.Cut(l, "\t")
		if !ok || !strings.HasPrefix(part, "Partition:") || key == "" {
			t.Fatalf("unexpected console consumer line %q", l)
		}
		if prev, seen := partOf[key]; seen && prev != part {
			t.Fatalf("user %s in %s and %s", key, prev, part)
		}
		partOf[key] = part
	}
	t.Logf("kafka-console-consumer read %d records of %d users from %s", len(lines), len(partOf), topic)
}

func TestNodetoolAndCQLSeeOurKeyspace(t *testing.T) {
	cfg := config.Default().Cassandra
	cfg.Hosts = []string{testenv.Addr(t, testenv.Cassandra)}
	cfg.Keyspace = fmt.Sprintf("interop_%d", time.Now().UnixNano())
	ctx := context.Background()
	s, err := cassandra.Connect(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	defer s.Query("DROP KEYSPACE IF EXISTS " + cfg.Keyspace).Exec()
	if _, err := cassandra.ApplySchema(ctx, s, cfg, 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	// nodetool status <keyspace> fails for a keyspace that does not exist.
	if out := cluster(t, "nodetool", "status", cfg.Keyspace); !strings.Contains(out, "UN  127.0.0.1") {
		t.Fatalf("nodetool status %s does not show the node up/normal:\n%s", cfg.Keyspace, out)
	}
	out := cluster(t, "cql", "SELECT table_name, default_time_to_live FROM system_schema.tables WHERE keyspace_name = '"+cfg.Keyspace+"'")
	if !strings.Contains(out, "events_by_user\t86400") {
		t.Fatalf("CQL client does not see events_by_user with the 1-day TTL:\n%s", out)
	}
}

func TestFsShellListsOurFiles(t *testing.T) {
	addr := testenv.Addr(t, testenv.HDFS)
	cfg := config.Default().Lake
	cfg.HDFS.Namenodes = []string{addr}
	cfg.Root = fmt.Sprintf("/it/interop-%d", time.Now().UnixNano())
	lake, err := hdfs.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	defer func() { _ = lake.RemoveAll(ctx, "/"); lake.Close() }()
	name := "stream=user-activity/date=2026-11-24/hour=10/user-activity-2-0-99.parquet"
	if err := lake.WriteAtomic(ctx, name, func(w io.Writer) error { _, err := w.Write(make([]byte, 4242)); return err }); err != nil {
		t.Fatal(err)
	}
	out := cluster(t, "dfs", "-ls", "-R", "hdfs://"+addr+cfg.Root)
	var found bool
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) == 8 && f[7] == "hdfs://"+addr+cfg.Root+"/"+name && f[4] == "4242" {
			found = true
		}
		if strings.Contains(l, "_tmp.") {
			t.Errorf("temporary file left behind: %s", l)
		}
	}
	if !found {
		t.Fatalf("hdfs dfs -ls -R does not list %s with 4242 bytes:\n%s", name, out)
	}
}
