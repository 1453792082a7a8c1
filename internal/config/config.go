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
	GRPCAddr  string    `yaml:"grpc_addr"` // the gRPC AnalyticsService of serve and run
	Kafka     Kafka     `yaml:"kafka"`
	Store     Store     `yaml:"store"`
	Cassandra Cassandra `yaml:"cassandra"`
	Lake      Lake      `yaml:"lake"`
	Archive   Archive   `yaml:"archive"`
	Batch     Batch     `yaml:"batch"`
	Spark     Spark     `yaml:"spark"`
	Stream    Stream    `yaml:"stream"`
	Fraud     Fraud     `yaml:"fraud"`
	Retention Retention `yaml:"retention"`
	Sim       Sim       `yaml:"sim"`
}

// Fraud configures `bytebasket fraud`.
type Fraud struct {
	Group string `yaml:"group"`
	// RulesFile is the rule set in force (internal/fraud/rules), relative to the config
	// directory; empty: the shipped config/fraud-rules.yml, built in.
	RulesFile string `yaml:"rules_file"`
	// CommitInterval is how often decisions commit (one Kafka transaction with the offsets):
	// consumers reading committed see a decision within about this long.
	CommitInterval     time.Duration `yaml:"commit_interval"`
	CheckpointInterval time.Duration `yaml:"checkpoint_interval"`
}

// Stream tunes `bytebasket stream`: event-time rules, write cadence and store protection.
type Stream struct {
	Group           string        `yaml:"group"`
	AllowedLateness time.Duration `yaml:"allowed_lateness"`
	SessionGap      time.Duration `yaml:"session_gap"`
	FlushInterval   time.Duration `yaml:"flush_interval"`
	// EmbeddedFlushInterval replaces FlushInterval when the serving store is embedded: a
	// local write costs little, so rows can be fresher (0: FlushInterval).
	EmbeddedFlushInterval time.Duration `yaml:"embedded_flush_interval"`
	CheckpointInterval    time.Duration `yaml:"checkpoint_interval"`
	// MaxFuture is how far an event's time may be ahead of its record's Kafka timestamp
	// (and of the clock) before it is a dead letter: a client whose clock runs fast.
	MaxFuture time.Duration `yaml:"max_future"`
	// WriteRateLimit caps rows per second written to the store (0 = no cap).
	WriteRateLimit float64 `yaml:"write_rate_limit"`
	// ReadyMaxLag: /readyz is false while the stream is more records than this behind.
	ReadyMaxLag int64 `yaml:"ready_max_lag"`
	// ShutdownTimeout bounds the final write and checkpoint on SIGTERM; keep it below the
	// grace period of whatever stops the process.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
}

// Store picks the serving store backend: "embedded" (in-process) or "cassandra".
type Store struct {
	Backend string `yaml:"backend"`
}

// Cassandra configures the serving store in cluster mode.
type Cassandra struct {
	Hosts    []string `yaml:"hosts"`
	Keyspace string   `yaml:"keyspace"`
	// LocalDC routes queries to the local datacenter first; NetworkTopologyStrategy
	// replicates ReplicationFactor copies there.
	LocalDC           string        `yaml:"local_dc"`
	ReplicationFactor int           `yaml:"replication_factor"`
	Consistency       string        `yaml:"consistency"` // LOCAL_ONE, LOCAL_QUORUM, QUORUM, ALL
	Timeout           time.Duration `yaml:"timeout"`
	TLS               TLS           `yaml:"tls"`
	Username          string        `yaml:"username"`
	// Password comes from BYTEBASKET_CASSANDRA_PASSWORD only.
	Password string `yaml:"-"`
}

// Lake configures where raw events are archived as Parquet.
type Lake struct {
	Backend string `yaml:"backend"` // "local" or "hdfs"
	// Root is the lake's top directory: a local path, or a path inside HDFS.
	Root string `yaml:"root"`
	HDFS HDFS   `yaml:"hdfs"`
}

// HDFS configures the HDFS client of the lake.
type HDFS struct {
	Namenodes []string `yaml:"namenodes"`
	User      string   `yaml:"user"`
	// Replication of the files we write: the client chooses it in HDFS (3 in production).
	Replication int `yaml:"replication"`
	// DataTransferProtection must match the cluster's dfs.data.transfer.protection
	// (authentication, integrity or privacy) when Kerberos is on.
	DataTransferProtection string `yaml:"data_transfer_protection"`
	KerberosPrincipal      string `yaml:"kerberos_principal"` // e.g. nn/_HOST@REALM; empty = simple auth
	KerberosKeytab         string `yaml:"kerberos_keytab"`
}

// Archive configures `bytebasket archive`: how raw events are buffered into lake files.
type Archive struct {
	Group string `yaml:"group"` // Kafka consumer group
	// A file is written when its buffered records reach RollBytes (as read from Kafka) or
	// when its first record has waited RollInterval; the latter bounds how stale the lake is.
	RollBytes    int64         `yaml:"roll_bytes"`
	RollInterval time.Duration `yaml:"roll_interval"`
	// MaxBufferedBytes bounds memory: past it the largest buffers are written early.
	MaxBufferedBytes int64  `yaml:"max_buffered_bytes"`
	Compression      string `yaml:"compression"` // zstd or snappy
	// DedupHorizon: a record whose event id was already archived with an event time in the
	// same hour, within this long, is dropped as a duplicate (0: no deduplication).
	DedupHorizon time.Duration `yaml:"dedup_horizon"`
}

// Batch picks the SQL engine of batch jobs: "duckdb" (embedded) or "spark".
type Batch struct {
	Engine string `yaml:"engine"`
	// Interval is how often `bytebasket run` recomputes the trends of the last Lookback
	// (the hours late events can still change) and the whole current day.
	Interval time.Duration `yaml:"interval"`
	Lookback time.Duration `yaml:"lookback"`
}

// Spark configures the Spark Connect client.
type Spark struct {
	// Remote is the Spark Connect address, sc://host:port[/;param=value...].
	Remote string `yaml:"remote"`
	// LakeURI is how Spark reaches the lake (e.g. hdfs://127.0.0.1:8020/bytebasket/lake):
	// Spark reads the files Go writes, by its own path.
	LakeURI string `yaml:"lake_uri"`
	// Token is sent as a bearer token; from BYTEBASKET_SPARK_TOKEN only.
	Token string `yaml:"-"`
}

// Kafka configures the brokers every role talks to. Empty Brokers means embedded mode.
type Kafka struct {
	Brokers  []string `yaml:"brokers"`
	ClientID string   `yaml:"client_id"`
	// TopicPrefix is prepended to every topic name (e.g. "staging."), so several
	// deployments or test runs can share one cluster.
	TopicPrefix       string `yaml:"topic_prefix"`
	Partitions        int32  `yaml:"partitions"`
	ReplicationFactor int16  `yaml:"replication_factor"`
	// MinInsyncReplicas is set on topics we create; with acks=all it bounds data loss.
	MinInsyncReplicas int    `yaml:"min_insync_replicas"`
	Compression       string `yaml:"compression"` // zstd, lz4, snappy, gzip, none
	// EmbeddedListen is where the in-process broker listens in embedded mode.
	EmbeddedListen string `yaml:"embedded_listen"`
	// EmbeddedLogBytes bounds the in-process broker's log (it is held in memory): shared
	// evenly as retention.bytes by every partition of every topic; 0 = retention by time
	// only. A consumer still reading what is trimmed reports it (records_expired_total).
	EmbeddedLogBytes int64 `yaml:"embedded_log_bytes"`
	TLS              TLS   `yaml:"tls"`
	SASL             SASL  `yaml:"sasl"`
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
	// HistoryDays is how long batch history (hourly and daily trends) stays in the serving
	// store: far longer than raw events, because it is small and is what trends look back on.
	HistoryDays int `yaml:"history_days"`
}

// Duration is the retention period.
func (r Retention) Duration() time.Duration { return time.Duration(r.Days) * 24 * time.Hour }

// HistoryDuration is the retention period of batch history.
func (r Retention) HistoryDuration() time.Duration {
	return time.Duration(r.HistoryDays) * 24 * time.Hour
}

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
		GRPCAddr: "127.0.0.1:9090",
		Kafka: Kafka{
			ClientID:          "bytebasket",
			Partitions:        4,
			ReplicationFactor: 1,
			MinInsyncReplicas: 1,
			Compression:       "zstd",
			EmbeddedListen:    "127.0.0.1:19092",
			EmbeddedLogBytes:  2 << 30,
		},
		Store: Store{Backend: "embedded"},
		Cassandra: Cassandra{
			Hosts: []string{"127.0.0.1:9042"}, Keyspace: "bytebasket", LocalDC: "datacenter1",
			ReplicationFactor: 1, Consistency: "LOCAL_QUORUM", Timeout: 10 * time.Second,
		},
		Lake: Lake{Backend: "local", Root: "lake", HDFS: HDFS{Namenodes: []string{"127.0.0.1:8020"}, Replication: 1}},
		Archive: Archive{
			Group: "bytebasket-archive", RollBytes: 128 << 20, RollInterval: 5 * time.Minute,
			MaxBufferedBytes: 512 << 20, Compression: "zstd", DedupHorizon: 24 * time.Hour,
		},
		Batch: Batch{Engine: "duckdb", Interval: 5 * time.Minute, Lookback: 2 * time.Hour},
		Spark: Spark{Remote: "sc://127.0.0.1:15002"},
		Stream: Stream{
			Group: "bytebasket-stream", AllowedLateness: 2 * time.Minute, SessionGap: 30 * time.Minute,
			FlushInterval: 250 * time.Millisecond, EmbeddedFlushInterval: 50 * time.Millisecond, CheckpointInterval: 5 * time.Second, MaxFuture: 5 * time.Minute,
			ReadyMaxLag: 1_000_000, ShutdownTimeout: 20 * time.Second,
		},
		Fraud: Fraud{
			Group:          "bytebasket-fraud",
			CommitInterval: 20 * time.Millisecond, CheckpointInterval: 5 * time.Second,
		},
		Retention: Retention{Days: 7, HistoryDays: 365},
		Sim:       Sim{Enabled: true, Users: 10000, Rate: 200}, // seed 0: a fresh one per run
	}
}

// Files are the YAML files read from a config directory, in this order; later files may
// override keys of earlier ones. Each is optional.
var Files = []string{"bytebasket.yml", "kafka.yml", "cassandra.yml", "lake.yml", "spark.yml", "stream.yml", "fraud.yml", "retention.yml"}

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
		if f := cfg.Fraud.RulesFile; f != "" && !filepath.IsAbs(f) {
			cfg.Fraud.RulesFile = filepath.Join(dir, f)
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
	str("BYTEBASKET_GRPC_ADDR", &cfg.GRPCAddr)
	if v, ok := lookup("BYTEBASKET_KAFKA_BROKERS"); ok {
		cfg.Kafka.Brokers = SplitList(v)
	}
	str("BYTEBASKET_KAFKA_TOPIC_PREFIX", &cfg.Kafka.TopicPrefix)
	str("BYTEBASKET_KAFKA_SASL_MECHANISM", &cfg.Kafka.SASL.Mechanism)
	str("BYTEBASKET_KAFKA_SASL_USERNAME", &cfg.Kafka.SASL.Username)
	str("BYTEBASKET_KAFKA_SASL_PASSWORD", &cfg.Kafka.SASL.Password)
	str("BYTEBASKET_STORE_BACKEND", &cfg.Store.Backend)
	str("BYTEBASKET_STREAM_GROUP", &cfg.Stream.Group)
	str("BYTEBASKET_FRAUD_GROUP", &cfg.Fraud.Group)
	str("BYTEBASKET_FRAUD_RULES_FILE", &cfg.Fraud.RulesFile)
	for key, dst := range map[string]*time.Duration{
		"BYTEBASKET_STREAM_ALLOWED_LATENESS":        &cfg.Stream.AllowedLateness,
		"BYTEBASKET_STREAM_SESSION_GAP":             &cfg.Stream.SessionGap,
		"BYTEBASKET_STREAM_CHECKPOINT_INTERVAL":     &cfg.Stream.CheckpointInterval,
		"BYTEBASKET_STREAM_FLUSH_INTERVAL":          &cfg.Stream.FlushInterval,
		"BYTEBASKET_STREAM_EMBEDDED_FLUSH_INTERVAL": &cfg.Stream.EmbeddedFlushInterval,
		"BYTEBASKET_FRAUD_COMMIT_INTERVAL":          &cfg.Fraud.CommitInterval,
	} {
		if v, ok := lookup(key); ok {
			d, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("config: %s=%q: %w", key, v, err)
			}
			*dst = d
		}
	}
	if v, ok := lookup("BYTEBASKET_CASSANDRA_HOSTS"); ok {
		cfg.Cassandra.Hosts = SplitList(v)
	}
	str("BYTEBASKET_CASSANDRA_KEYSPACE", &cfg.Cassandra.Keyspace)
	str("BYTEBASKET_CASSANDRA_USERNAME", &cfg.Cassandra.Username)
	str("BYTEBASKET_CASSANDRA_PASSWORD", &cfg.Cassandra.Password)
	str("BYTEBASKET_LAKE_BACKEND", &cfg.Lake.Backend)
	str("BYTEBASKET_LAKE_ROOT", &cfg.Lake.Root)
	if v, ok := lookup("BYTEBASKET_HDFS_NAMENODES"); ok {
		cfg.Lake.HDFS.Namenodes = SplitList(v)
	}
	str("BYTEBASKET_ARCHIVE_GROUP", &cfg.Archive.Group)
	if v, ok := lookup("BYTEBASKET_KAFKA_EMBEDDED_LOG_BYTES"); ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("config: BYTEBASKET_KAFKA_EMBEDDED_LOG_BYTES=%q: %w", v, err)
		}
		cfg.Kafka.EmbeddedLogBytes = n
	}
	if v, ok := lookup("BYTEBASKET_ARCHIVE_ROLL_BYTES"); ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("config: BYTEBASKET_ARCHIVE_ROLL_BYTES=%q: %w", v, err)
		}
		cfg.Archive.RollBytes = n
	}
	if v, ok := lookup("BYTEBASKET_ARCHIVE_ROLL_INTERVAL"); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("config: BYTEBASKET_ARCHIVE_ROLL_INTERVAL=%q: %w", v, err)
		}
		cfg.Archive.RollInterval = d
	}
	str("BYTEBASKET_BATCH_ENGINE", &cfg.Batch.Engine)
	str("BYTEBASKET_SPARK_REMOTE", &cfg.Spark.Remote)
	str("BYTEBASKET_SPARK_TOKEN", &cfg.Spark.Token)
	if v, ok := lookup("BYTEBASKET_KAFKA_REPLICATION_FACTOR"); ok {
		n, err := strconv.ParseInt(v, 10, 16)
		if err != nil {
			return fmt.Errorf("config: BYTEBASKET_KAFKA_REPLICATION_FACTOR=%q: %w", v, err)
		}
		cfg.Kafka.ReplicationFactor = int16(n)
	}
	if v, ok := lookup("BYTEBASKET_KAFKA_MIN_INSYNC_REPLICAS"); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("config: BYTEBASKET_KAFKA_MIN_INSYNC_REPLICAS=%q: %w", v, err)
		}
		cfg.Kafka.MinInsyncReplicas = n
	}
	if v, ok := lookup("BYTEBASKET_RETENTION_DAYS"); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("config: BYTEBASKET_RETENTION_DAYS=%q: %w", v, err)
		}
		cfg.Retention.Days = n
	}
	if v, ok := lookup("BYTEBASKET_RETENTION_HISTORY_DAYS"); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("config: BYTEBASKET_RETENTION_HISTORY_DAYS=%q: %w", v, err)
		}
		cfg.Retention.HistoryDays = n
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
	case c.Kafka.EmbeddedLogBytes < 0:
		return fmt.Errorf("config: kafka.embedded_log_bytes must not be negative (0: no bound), got %d", c.Kafka.EmbeddedLogBytes)
	case c.Retention.Days < 1:
		return fmt.Errorf("config: retention.days must be at least 1, got %d", c.Retention.Days)
	case c.Retention.HistoryDays < 1:
		return fmt.Errorf("config: retention.history_days must be at least 1, got %d", c.Retention.HistoryDays)
	}
	switch strings.ToUpper(c.Kafka.SASL.Mechanism) {
	case "", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
	default:
		return fmt.Errorf("config: kafka.sasl.mechanism %q is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512", c.Kafka.SASL.Mechanism)
	}
	if c.Stream.FlushInterval <= 0 || c.Stream.EmbeddedFlushInterval < 0 || c.Stream.CheckpointInterval < c.Stream.FlushInterval || c.Stream.AllowedLateness < 0 ||
		c.Stream.SessionGap <= 0 || c.Stream.MaxFuture < 0 || c.Stream.ShutdownTimeout <= 0 {
		return fmt.Errorf("config: stream: need flush_interval > 0, embedded_flush_interval >= 0, checkpoint_interval >= flush_interval, allowed_lateness >= 0, session_gap > 0, max_future >= 0, shutdown_timeout > 0")
	}
	if c.Fraud.CommitInterval <= 0 || c.Fraud.CheckpointInterval < c.Fraud.CommitInterval {
		return fmt.Errorf("config: fraud: need commit_interval > 0 and checkpoint_interval >= commit_interval")
	}
	if c.Archive.DedupHorizon < 0 {
		return fmt.Errorf("config: archive.dedup_horizon must not be negative, got %s", c.Archive.DedupHorizon)
	}
	if c.Store.Backend != "embedded" && c.Store.Backend != "cassandra" {
		return fmt.Errorf("config: store.backend %q is not one of embedded, cassandra", c.Store.Backend)
	}
	if c.Lake.Backend != "local" && c.Lake.Backend != "hdfs" {
		return fmt.Errorf("config: lake.backend %q is not one of local, hdfs", c.Lake.Backend)
	}
	if c.Archive.Compression != "zstd" && c.Archive.Compression != "snappy" {
		return fmt.Errorf("config: archive.compression %q is not one of zstd, snappy", c.Archive.Compression)
	}
	if c.Archive.RollBytes < 1<<10 || c.Archive.MaxBufferedBytes < c.Archive.RollBytes {
		return fmt.Errorf("config: archive.roll_bytes must be at least 1 KiB and at most max_buffered_bytes (%d, %d)", c.Archive.RollBytes, c.Archive.MaxBufferedBytes)
	}
	if c.Archive.RollInterval < time.Second {
		return fmt.Errorf("config: archive.roll_interval must be at least 1s, got %s", c.Archive.RollInterval)
	}
	if c.Batch.Interval < time.Second || c.Batch.Lookback < time.Hour {
		return fmt.Errorf("config: batch.interval must be at least 1s and batch.lookback at least 1h (%s, %s)", c.Batch.Interval, c.Batch.Lookback)
	}
	if c.Batch.Engine != "duckdb" && c.Batch.Engine != "spark" {
		return fmt.Errorf("config: batch.engine %q is not one of duckdb, spark", c.Batch.Engine)
	}
	switch strings.ToUpper(c.Cassandra.Consistency) {
	case "ONE", "LOCAL_ONE", "QUORUM", "LOCAL_QUORUM", "EACH_QUORUM", "ALL":
	default:
		return fmt.Errorf("config: cassandra.consistency %q is not a Cassandra consistency level", c.Cassandra.Consistency)
	}
	switch c.Kafka.Compression {
	case "zstd", "lz4", "snappy", "gzip", "none":
	default:
		return fmt.Errorf("config: kafka.compression %q is not one of zstd, lz4, snappy, gzip, none", c.Kafka.Compression)
	}
	return nil
}

// Topic is the physical name of a logical topic (see internal/event) under the prefix.
func (k Kafka) Topic(name string) string { return k.TopicPrefix + name }

// Embedded reports whether no Kafka is configured, so the process must start its own broker.
func (c Config) Embedded() bool { return len(c.Kafka.Brokers) == 0 }
