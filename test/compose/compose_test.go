// Package compose keeps docker-compose.yml honest where no Docker engine runs: it parses the
// file and checks its brokers, replication, ports and ByteBasket settings against config/*.yml
// and the binary's subcommands.
package compose

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bytebasket/bytebasket/internal/config"
	"github.com/bytebasket/bytebasket/internal/testenv"
	"gopkg.in/yaml.v3"
)

type service struct {
	Image         string            `yaml:"image"`
	Build         any               `yaml:"build"`
	ContainerName string            `yaml:"container_name"`
	Command       []string          `yaml:"command"`
	Entrypoint    []string          `yaml:"entrypoint"`
	Environment   map[string]string `yaml:"environment"`
	Ports         []string          `yaml:"ports"`
}

func load(t *testing.T) (map[string]service, config.Config) {
	t.Helper()
	root := testenv.RepoRoot()
	raw, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Services map[string]service `yaml:"services"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil { // also resolves the anchors and merges
		t.Fatalf("docker-compose.yml: %v", err)
	}
	cfg, err := config.Load(filepath.Join(root, "config"))
	if err != nil {
		t.Fatal(err)
	}
	return doc.Services, cfg
}

func port(t *testing.T, hostport string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Fatalf("%q: %v", hostport, err)
	}
	return p
}

func publishes(s service, p string) bool {
	for _, m := range s.Ports {
		if strings.HasPrefix(m, p+":") {
			return true
		}
	}
	return false
}

func TestKafkaIsThreeBrokersKRaftRF3MinISR2(t *testing.T) {
	svcs, cfg := load(t)
	kport := port(t, cfg.Kafka.Brokers[0])
	var voters []string
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("kafka%d", i)
		s, ok := svcs[name]
		if !ok || s.ContainerName != name {
			t.Fatalf("service/container %s missing", name)
		}
		env := s.Environment
		if env["KAFKA_PROCESS_ROLES"] != "broker,controller" || env["KAFKA_NODE_ID"] != fmt.Sprint(i) {
			t.Errorf("%s: roles %q node id %q", name, env["KAFKA_PROCESS_ROLES"], env["KAFKA_NODE_ID"])
		}
		if env["KAFKA_DEFAULT_REPLICATION_FACTOR"] != "3" || env["KAFKA_MIN_INSYNC_REPLICAS"] != "2" ||
			env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] != "3" || env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] != "2" {
			t.Errorf("%s: not replication 3 / min ISR 2: %v", name, env)
		}
		if want := "PLAINTEXT://" + name + ":" + kport; env["KAFKA_ADVERTISED_LISTENERS"] != want {
			t.Errorf("%s advertises %q, want %q (port from config/kafka.yml)", name, env["KAFKA_ADVERTISED_LISTENERS"], want)
		}
		if env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] != "false" {
			t.Errorf("%s auto-creates topics: ours must be made with their partitions and retention", name)
		}
		// The log retention default matches the one retention policy.
		if env["KAFKA_LOG_RETENTION_HOURS"] != fmt.Sprint(cfg.Retention.Days*24) {
			t.Errorf("%s retention %sh, config/retention.yml says %d days", name, env["KAFKA_LOG_RETENTION_HOURS"], cfg.Retention.Days)
		}
		voters = strings.Split(env["KAFKA_CONTROLLER_QUORUM_VOTERS"], ",")
	}
	if len(voters) != 3 {
		t.Fatalf("controller quorum %v, want 3 voters", voters)
	}
}

func TestByteBasketRolesMatchConfig(t *testing.T) {
	svcs, cfg := load(t)
	roles := 0
	for name, s := range svcs {
		if !strings.HasPrefix(name, "bytebasket-") {
			continue
		}
		roles++
		env := s.Environment
		wantBrokers := "kafka1:" + port(t, cfg.Kafka.Brokers[0]) + ",kafka2:" + port(t, cfg.Kafka.Brokers[0]) + ",kafka3:" + port(t, cfg.Kafka.Brokers[0])
		if env["BYTEBASKET_KAFKA_BROKERS"] != wantBrokers {
			t.Errorf("%s: brokers %q, want %q", name, env["BYTEBASKET_KAFKA_BROKERS"], wantBrokers)
		}
		if env["BYTEBASKET_KAFKA_REPLICATION_FACTOR"] != "3" || env["BYTEBASKET_KAFKA_MIN_INSYNC_REPLICAS"] != "2" {
			t.Errorf("%s: topics would not be created with replication 3 / min ISR 2", name)
		}
		if got, want := port(t, env["BYTEBASKET_CASSANDRA_HOSTS"]), port(t, cfg.Cassandra.Hosts[0]); got != want {
			t.Errorf("%s: cassandra port %s, config says %s", name, got, want)
		}
		if got, want := port(t, env["BYTEBASKET_HDFS_NAMENODES"]), port(t, cfg.Lake.HDFS.Namenodes[0]); got != want {
			t.Errorf("%s: namenode port %s, config says %s", name, got, want)
		}
		u, _ := url.Parse(env["BYTEBASKET_SPARK_REMOTE"])
		cu, _ := url.Parse(cfg.Spark.Remote)
		if u == nil || cu == nil || u.Port() != cu.Port() {
			t.Errorf("%s: spark remote %q, config says %q", name, env["BYTEBASKET_SPARK_REMOTE"], cfg.Spark.Remote)
		}
		// Every command the compose file runs must be a subcommand the binary has.
		sub := ""
		if len(s.Command) > 0 {
			sub = s.Command[0]
		}
		if len(s.Entrypoint) > 0 {
			for _, part := range strings.Split(s.Entrypoint[len(s.Entrypoint)-1], "&&") {
				f := strings.Fields(part)
				if len(f) < 2 || f[0] != "bytebasket" || !slices.Contains(subcommands, f[1]) {
					t.Errorf("%s runs %q: not a bytebasket subcommand", name, part)
				}
			}
			continue
		}
		if !slices.Contains(subcommands, sub) {
			t.Errorf("%s runs %q: not a bytebasket subcommand", name, sub)
		}
	}
	if roles == 0 {
		t.Fatal("no bytebasket roles in docker-compose.yml")
	}
}

// subcommands the binary implements today (cmd/bytebasket); a role added to compose before
// its subcommand exists fails here.
var subcommands = []string{"run", "produce", "stream", "topics", "schema"}

func TestServerPortsMatchConfig(t *testing.T) {
	svcs, cfg := load(t)
	checks := []struct{ svc, port, what string }{
		{"cassandra", port(t, cfg.Cassandra.Hosts[0]), "config/cassandra.yml hosts"},
		{"namenode", port(t, cfg.Lake.HDFS.Namenodes[0]), "config/lake.yml namenodes"},
	}
	u, err := url.Parse(cfg.Spark.Remote)
	if err != nil {
		t.Fatal(err)
	}
	checks = append(checks, struct{ svc, port, what string }{"spark-connect", u.Port(), "config/spark.yml remote"})
	for _, c := range checks {
		if !publishes(svcs[c.svc], c.port) {
			t.Errorf("%s does not publish port %s (%s)", c.svc, c.port, c.what)
		}
	}
	if svcs["cassandra"].Environment["CASSANDRA_DC"] != cfg.Cassandra.LocalDC {
		t.Errorf("cassandra DC %q, config local_dc %q", svcs["cassandra"].Environment["CASSANDRA_DC"], cfg.Cassandra.LocalDC)
	}
	for _, name := range []string{"spark-master", "spark-worker", "spark-connect", "namenode", "datanode"} {
		if _, ok := svcs[name]; !ok {
			t.Errorf("service %s missing", name)
		}
	}
	for name, s := range svcs {
		if s.Build == nil && (s.Image == "" || !strings.Contains(s.Image, ":") || strings.HasSuffix(s.Image, ":latest")) {
			t.Errorf("%s: image %q is not pinned to a version", name, s.Image)
		}
	}
}
