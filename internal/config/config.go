// Package config loads ByteBasket's configuration: defaults (embedded mode), then YAML files,
// then environment variables, then command-line flags (applied by cmd/). Secrets are read from
// the environment or flags only, never from a file.
package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the whole configuration of one bytebasket process.
type Config struct {
	// DataDir holds everything embedded mode persists (broker log, store, lake).
	DataDir   string    `yaml:"data_dir"`
	HTTPAddr  string    `yaml:"http_addr"`
	Kafka     Kafka     `yaml:"kafka"`
	Retention Retention `yaml:"retention"`
	Sim       Sim       `yaml:"sim"`
}

// Kafka configures the brokers every role talks to. Empty Brokers means embedded mode.
type Kafka struct {
	Brokers           []string `yaml:"brokers"`
	ClientID          string   `yaml:"client_id"`
	Partitions        int32    `yaml:"partitions"`
	ReplicationFactor int16    `yaml:"replication_factor"`
	// MinInsyncReplicas is set on topics we create; with acks=all it bounds data loss.
	MinInsyncReplicas int    `yaml:"min_insync_replicas"`
	Compression       string `yaml:"compression"` // zstd, lz4, snappy, gzip, none
	// EmbeddedListen is where the in-process broker listens in embedded mode.
	EmbeddedListen string `yaml:"embedded_listen"`
	TLS            TLS    `yaml:"tls"`
	SASL           SASL   `yaml:"sasl"`
}

// TLS configures client-side TLS to servers.
type TLS struct {
	Enabled            bool   `yaml:"enabled"`
	CAFile             string `yaml:"ca_file"`
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	ServerName         string `yaml:"server_name"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// SASL configures Kafka authentication. The password comes from BYTEBASKET_KAFKA_SASL_PASSWORD.
type SASL struct {
	Mechanism string `yaml:"mechanism"` // "", PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
	Username  string `yaml:"username"`
	Password  string `yaml:"-"`
}

// Retention is the one retention policy: topic retention, store TTLs and lake partitions.
type Retention struct {
	Days int `yaml:"days"`
}

// Duration is the retention period.
func (r Retention) Duration() time.Duration { return time.Duration(r.Days) * 24 * time.Hour }

// Sim configures the shopper simulator.
type Sim struct {
	Enabled bool    `yaml:"enabled"`
	Seed    uint64  `yaml:"seed"` // 0 picks a fresh seed, so restarts do not replay event ids
	Users   int     `yaml:"users"`
	Rate    float64 `yaml:"rate"` // mean events per second; 0 = as fast as possible
}

// Default returns the embedded-mode configuration.
func Default() Config {
	return Config{
		DataDir:  "bytebasket-data",
		HTTPAddr: "127.0.0.1:8080",
		Kafka: Kafka{
			ClientID:          "bytebasket",
			Partitions:        4,
			ReplicationFactor: 1,
			MinInsyncReplicas: 1,
			Compression:       "zstd",
			EmbeddedListen:    "127.0.0.1:19092",
		},
		Retention: Retention{Days: 7},
		Sim:       Sim{Enabled: true, Users: 10000, Rate: 200}, // seed 0: a fresh one per run
	}
}

// Files are the YAML files read from a config directory, in this order; later files may
// override keys of earlier ones. Each is optional.
var Files = []string{"bytebasket.yml", "kafka.yml", "retention.yml"}

// Load returns defaults overlaid by the YAML files in dir (if dir is not empty) and then by
// the environment. Unknown YAML keys are an error, so typos do not pass silently.
func Load(dir string) (Config, error) {
	cfg := Default()
	if dir != "" {
		for _, name := range Files {
			path := filepath.Join(dir, name)
			if err := overlayFile(&cfg, path); err != nil {
				return cfg, err
			}
		}
	}
	if err := ApplyEnv(&cfg, os.LookupEnv); err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}

func overlayFile(cfg *Config, path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	// An empty file decodes to io.EOF: it changes nothing.
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config: %s: %w", path, err)
	}
	return nil
}

// ApplyEnv overlays BYTEBASKET_* variables; lookup is os.LookupEnv outside tests.
func ApplyEnv(cfg *Config, lookup func(string) (string, bool)) error {
	str := func(key string, dst *string) {
		if v, ok := lookup(key); ok {
			*dst = v
		}
	}
	str("BYTEBASKET_DATA_DIR", &cfg.DataDir)
	str("BYTEBASKET_HTTP_ADDR", &cfg.HTTPAddr)
	if v, ok := lookup("BYTEBASKET_KAFKA_BROKERS"); ok {
		cfg.Kafka.Brokers = SplitList(v)
	}
	str("BYTEBASKET_KAFKA_SASL_MECHANISM", &cfg.Kafka.SASL.Mechanism)
	str("BYTEBASKET_KAFKA_SASL_USERNAME", &cfg.Kafka.SASL.Username)
	str("BYTEBASKET_KAFKA_SASL_PASSWORD", &cfg.Kafka.SASL.Password)
	if v, ok := lookup("BYTEBASKET_KAFKA_REPLICATION_FACTOR"); ok {
		n, err := strconv.ParseInt(v, 10, 16)
		if err != nil {
			return fmt.Errorf("config: BYTEBASKET_KAFKA_REPLICATION_FACTOR=%q: %w", v, err)
		}
		cfg.Kafka.ReplicationFactor = int16(n)
	}
	if v, ok := lookup("BYTEBASKET_RETENTION_DAYS"); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("config: BYTEBASKET_RETENTION_DAYS=%q: %w", v, err)
		}
		cfg.Retention.Days = n
	}
	return nil
}

// SplitList splits a comma-separated list, dropping empty items.
func SplitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Validate reports the first setting that cannot work.
func (c Config) Validate() error {
	switch {
	case c.Kafka.Partitions < 1:
		return fmt.Errorf("config: kafka.partitions must be at least 1, got %d", c.Kafka.Partitions)
	case c.Kafka.ReplicationFactor < 1:
		return fmt.Errorf("config: kafka.replication_factor must be at least 1, got %d", c.Kafka.ReplicationFactor)
	case c.Kafka.MinInsyncReplicas < 1 || c.Kafka.MinInsyncReplicas > int(c.Kafka.ReplicationFactor):
		return fmt.Errorf("config: kafka.min_insync_replicas must be in 1..replication_factor (%d), got %d",
			c.Kafka.ReplicationFactor, c.Kafka.MinInsyncReplicas)
	case c.Retention.Days < 1:
		return fmt.Errorf("config: retention.days must be at least 1, got %d", c.Retention.Days)
	}
	switch strings.ToUpper(c.Kafka.SASL.Mechanism) {
	case "", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
	default:
		return fmt.Errorf("config: kafka.sasl.mechanism %q is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512", c.Kafka.SASL.Mechanism)
	}
	switch c.Kafka.Compression {
	case "zstd", "lz4", "snappy", "gzip", "none":
	default:
		return fmt.Errorf("config: kafka.compression %q is not one of zstd, lz4, snappy, gzip, none", c.Kafka.Compression)
	}
	return nil
}

// Embedded reports whether no Kafka is configured, so the process must start its own broker.
func (c Config) Embedded() bool { return len(c.Kafka.Brokers) == 0 }
