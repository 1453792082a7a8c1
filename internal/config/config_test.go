package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefaultsAreEmbedded(t *testing.T) {
	cfg, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Embedded() || cfg.Kafka.Partitions != 4 || cfg.Retention.Days != 7 {
		t.Fatalf("unexpected defaults: %+v", cfg)
	}
}

func TestFileThenEnv(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "kafka.yml", "kafka:\n  brokers: [a:9092, b:9092]\n  replication_factor: 3\n  min_insync_replicas: 2\n")
	write(t, dir, "retention.yml", "retention:\n  days: 30\n")
	t.Setenv("BYTEBASKET_RETENTION_DAYS", "14")
	t.Setenv("BYTEBASKET_KAFKA_SASL_PASSWORD", "s3cret")
	cfg, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cfg.Kafka.Brokers, ","); got != "a:9092,b:9092" {
		t.Errorf("brokers %q", got)
	}
	if cfg.Kafka.ReplicationFactor != 3 || cfg.Kafka.MinInsyncReplicas != 2 {
		t.Errorf("replication %d min isr %d", cfg.Kafka.ReplicationFactor, cfg.Kafka.MinInsyncReplicas)
	}
	if cfg.Retention.Days != 14 {
		t.Errorf("env must override file: retention %d", cfg.Retention.Days)
	}
	if cfg.Kafka.SASL.Password != "s3cret" {
		t.Error("password not read from env")
	}
}

func TestRejectsTyposAndBadValues(t *testing.T) {
	for name, body := range map[string]string{
		"typo":    "kafka:\n  brokerz: [a:1]\n",
		"rf":      "kafka:\n  replication_factor: 0\n",
		"isr":     "kafka:\n  min_insync_replicas: 3\n",
		"codec":   "kafka:\n  compression: brotli\n",
		"sasl":    "kafka:\n  sasl:\n    mechanism: KERBEROS\n",
		"secrets": "kafka:\n  sasl:\n    password: in-a-file\n",
		"cqlpass": "cassandra:\n  password: in-a-file\n",
		"store":   "store:\n  backend: mysql\n",
	} {
		dir := t.TempDir()
		write(t, dir, "kafka.yml", body)
		if _, err := Load(dir); err == nil {
			t.Errorf("%s: accepted %q", name, body)
		}
	}
}

// The committed cluster-mode files must load: they are what users start from.
func TestRepoConfigLoads(t *testing.T) {
	cfg, err := Load("../../config")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Embedded() {
		t.Fatal("config/kafka.yml names no brokers")
	}
	if cfg.Store.Backend != "cassandra" || cfg.Lake.Backend != "hdfs" || cfg.Batch.Engine != "spark" {
		t.Fatalf("cluster-mode files do not select cluster backends: store %s lake %s batch %s",
			cfg.Store.Backend, cfg.Lake.Backend, cfg.Batch.Engine)
	}
}

func write(t *testing.T, dir, name, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// History retention has its own default, file key, variable and check: trends outlive raw
// events.
func TestHistoryRetention(t *testing.T) {
	cfg, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Retention.HistoryDays != 365 || cfg.Retention.HistoryDuration() != 365*24*time.Hour {
		t.Fatalf("default history_days %d (%s)", cfg.Retention.HistoryDays, cfg.Retention.HistoryDuration())
	}
	if cfg, err = Load("../../config"); err != nil || cfg.Retention.HistoryDays != 365 {
		t.Fatalf("repo config: history_days %d err %v", cfg.Retention.HistoryDays, err)
	}
	dir := t.TempDir()
	write(t, dir, "retention.yml", "retention:\n  days: 30\n  history_days: 90\n")
	if cfg, err = Load(dir); err != nil || cfg.Retention.HistoryDays != 90 || cfg.Retention.Days != 30 {
		t.Fatalf("file: history_days %d days %d err %v", cfg.Retention.HistoryDays, cfg.Retention.Days, err)
	}
	t.Setenv("BYTEBASKET_RETENTION_HISTORY_DAYS", "400")
	if cfg, err = Load(dir); err != nil || cfg.Retention.HistoryDays != 400 {
		t.Fatalf("env must override file: history_days %d err %v", cfg.Retention.HistoryDays, err)
	}
	for _, bad := range []string{"0", "-1", "a year"} {
		t.Setenv("BYTEBASKET_RETENTION_HISTORY_DAYS", bad)
		if _, err := Load(dir); err == nil {
			t.Errorf("accepted history_days %q", bad)
		}
	}
}
