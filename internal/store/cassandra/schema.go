package cassandra

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/apache/cassandra-gocql-driver/v2"
	"github.com/bytebasket/bytebasket/internal/config"
)

//go:embed schema/*.cql
var schemaFS embed.FS

// keyspaceName guards the one identifier we splice into CQL text.
var keyspaceName = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_]{0,47}$`)

// Migration is one versioned schema file, NNNN_name.cql.
type Migration struct {
	Version int
	Name    string
	Stmts   []string
}

// schemaParams fill the CQL templates.
type schemaParams struct {
	Keyspace          string
	LocalDC           string
	ReplicationFactor int
	TTLSeconds        int64 // retention.days: live metrics and raw events
	HistoryTTLSeconds int64 // retention.history_days: batch history
}

// SchemaOption adjusts how the schema is rendered and applied.
type SchemaOption func(*schemaOptions)

type schemaOptions struct{ history time.Duration }

// WithHistory sets the TTL of the batch-history tables (retention.history_days); without
// it they get the default history retention.
func WithHistory(d time.Duration) SchemaOption { return func(o *schemaOptions) { o.history = d } }

func schemaOpts(opts []SchemaOption) schemaOptions {
	o := schemaOptions{history: config.Default().Retention.HistoryDuration()}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// Migrations renders the schema files for cfg, in version order. Version 0 (the keyspace
// and the migrations table) is idempotent and runs on every apply.
func Migrations(cfg config.Cassandra, retention time.Duration, opts ...SchemaOption) ([]Migration, error) {
	if !keyspaceName.MatchString(cfg.Keyspace) {
		return nil, fmt.Errorf("cassandra: keyspace name %q must match %s", cfg.Keyspace, keyspaceName)
	}
	o := schemaOpts(opts)
	p := schemaParams{cfg.Keyspace, cfg.LocalDC, cfg.ReplicationFactor, int64(retention / time.Second), int64(o.history / time.Second)}
	files, err := fs.Glob(schemaFS, "schema/*.cql")
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var out []Migration
	for _, f := range files {
		base := strings.TrimSuffix(strings.TrimPrefix(f, "schema/"), ".cql")
		num, name, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("cassandra: schema file %s is not named NNNN_name.cql", f)
		}
		raw, _ := schemaFS.ReadFile(f)
		tmpl, err := template.New(f).Option("missingkey=error").Parse(string(raw))
		if err != nil {
			return nil, fmt.Errorf("cassandra: %s: %w", f, err)
		}
		var b bytes.Buffer
		if err := tmpl.Execute(&b, p); err != nil {
			return nil, fmt.Errorf("cassandra: %s: %w", f, err)
		}
		out = append(out, Migration{Version: v, Name: name, Stmts: splitStatements(b.String())})
	}
	return out, nil
}

// splitStatements splits CQL text on semicolons that end a line, dropping -- comments.
func splitStatements(cql string) []string {
	var stmts []string
	var cur strings.Builder
	for _, line := range strings.Split(cql, "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteString("\n")
		if strings.HasSuffix(trimmed, ";") {
			stmts = append(stmts, strings.TrimSuffix(strings.TrimSpace(cur.String()), ";"))
			cur.Reset()
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		stmts = append(stmts, s)
	}
	return stmts
}

// ApplySchema brings the keyspace to the newest schema version. It is safe to run twice or
// concurrently: every statement is IF NOT EXISTS and applied versions are skipped. It then
// sets every table's default TTL to the retention policy (history tables: WithHistory), so
// changing retention needs no new migration. It returns the versions it applied.
func ApplySchema(ctx context.Context, s *gocql.Session, cfg config.Cassandra, retention time.Duration, opts ...SchemaOption) ([]int, error) {
	migs, err := Migrations(cfg, retention, opts...)
	if err != nil {
		return nil, err
	}
	applied := map[int]bool{}
	var done []int
	for _, m := range migs {
		if m.Version == 0 {
			if err := exec(ctx, s, m); err != nil {
				return done, err
			}
			iter := s.Query("SELECT version FROM " + cfg.Keyspace + ".schema_migrations").IterContext(ctx)
			var v int
			for iter.Scan(&v) {
				applied[v] = true
			}
			if err := iter.Close(); err != nil {
				return done, fmt.Errorf("cassandra: read applied migrations: %w", err)
			}
			continue
		}
		if applied[m.Version] {
			continue
		}
		if err := exec(ctx, s, m); err != nil {
			return done, err
		}
		if err := s.Query("INSERT INTO "+cfg.Keyspace+".schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
			m.Version, m.Name, time.Now()).ExecContext(ctx); err != nil {
			return done, fmt.Errorf("cassandra: record migration %d: %w", m.Version, err)
		}
		done = append(done, m.Version)
	}
	return done, applyTTL(ctx, s, cfg.Keyspace, retention, schemaOpts(opts).history)
}

func exec(ctx context.Context, s *gocql.Session, m Migration) error {
	for _, stmt := range m.Stmts {
		if err := s.Query(stmt).ExecContext(ctx); err != nil {
			return fmt.Errorf("cassandra: migration %04d_%s: %w\n%s", m.Version, m.Name, err, stmt)
		}
	}
	return nil
}

// noTTL names the tables whose rows must never expire: the record of applied migrations,
// and the stateful roles' checkpoints (a role stopped for longer than the retention must
// still find its state and offsets).
var noTTL = map[string]bool{"schema_migrations": true, "state_heads": true, "state_log": true}

// historyTables hold batch history: they expire with retention.history_days.
var historyTables = map[string]bool{"trend_metrics": true, "trend_tops": true}

// applyTTL sets default_time_to_live on every table of the keyspace that expires rows
// (all but those in noTTL): the history retention on historyTables, the retention on the rest.
func applyTTL(ctx context.Context, s *gocql.Session, keyspace string, retention, history time.Duration) error {
	iter := s.Query("SELECT table_name, default_time_to_live FROM system_schema.tables WHERE keyspace_name = ?", keyspace).IterContext(ctx)
	var name string
	var ttl int
	stale := map[string]int{}
	for iter.Scan(&name, &ttl) {
		want := int(retention / time.Second)
		if historyTables[name] {
			want = int(history / time.Second)
		}
		if !noTTL[name] && ttl != want {
			stale[name] = want
		}
	}
	if err := iter.Close(); err != nil {
		return fmt.Errorf("cassandra: list tables: %w", err)
	}
	for t, want := range stale {
		if err := s.Query(fmt.Sprintf("ALTER TABLE %s.%s WITH default_time_to_live = %d", keyspace, t, want)).ExecContext(ctx); err != nil {
			return fmt.Errorf("cassandra: set TTL of %s: %w", t, err)
		}
	}
	return nil
}
