package cassandra

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bytebasket/bytebasket/internal/config"
	"github.com/bytebasket/bytebasket/internal/testenv"
)

func TestSplitStatements(t *testing.T) {
	got := splitStatements("-- comment\nCREATE A (x int,\n y int);\n\nCREATE B;\nDROP C")
	want := []string{"CREATE A (x int,\n y int)", "CREATE B", "DROP C"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestMigrationsRenderAndRejectBadKeyspace(t *testing.T) {
	cfg := config.Default().Cassandra
	migs, err := Migrations(cfg, 72*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if migs[0].Version != 0 || len(migs) < 2 {
		t.Fatalf("migrations %+v", migs)
	}
	all := fmt.Sprint(migs)
	for _, want := range []string{"'datacenter1': 1", "default_time_to_live = 259200", "bytebasket.events_by_user",
		"bytebasket.trend_metrics", "default_time_to_live = 31536000"} { // history: the 365-day default
		if !strings.Contains(all, want) {
			t.Errorf("rendered schema lacks %q", want)
		}
	}
	cfg.Keyspace = "x; DROP KEYSPACE system"
	if _, err := Migrations(cfg, time.Hour); err == nil {
		t.Fatal("accepted a keyspace name that is not an identifier")
	}
}

// Against the real Cassandra of deploy/local: the schema files create the keyspace and
// tables, a second apply is a no-op, rows are written and read back newest first, and the
// table's TTL follows the retention policy, also when retention changes.
func TestSchemaApplyWriteRead(t *testing.T) {
	cfg := config.Default().Cassandra
	cfg.Hosts = []string{testenv.Addr(t, testenv.Cassandra)}
	cfg.Keyspace = fmt.Sprintf("it_%d", time.Now().UnixNano())
	ctx := context.Background()
	s, err := Connect(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	defer s.Query("DROP KEYSPACE IF EXISTS " + cfg.Keyspace).Exec()

	applied, err := ApplySchema(ctx, s, cfg, 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) == 0 {
		t.Fatal("first apply applied nothing")
	}
	again, err := ApplySchema(ctx, s, cfg, 48*time.Hour)
	if err != nil || len(again) != 0 {
		t.Fatalf("second apply: applied %v, err %v; want nothing", again, err)
	}

	day := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	for i := range 3 {
		ts := day.Add(time.Duration(i) * time.Minute)
		if err := s.Query("INSERT INTO "+cfg.Keyspace+".events_by_user (user_id, day, event_time, event_id, kind, session_id, source, envelope) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
			"u-1", day, ts, fmt.Sprintf("e-%d", i), "page_view", "s-1", "web", []byte{byte(i)}).ExecContext(ctx); err != nil {
			t.Fatal(err)
		}
	}
	iter := s.Query("SELECT event_id, TTL(kind) FROM "+cfg.Keyspace+".events_by_user WHERE user_id = ? AND day = ?", "u-1", day).IterContext(ctx)
	var ids []string
	var id string
	var ttl int
	for iter.Scan(&id, &ttl) {
		ids = append(ids, id)
		if ttl <= 0 || ttl > 48*3600 {
			t.Errorf("row %s has TTL %d, want within the 48h retention", id, ttl)
		}
	}
	if err := iter.Close(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids, []string{"e-2", "e-1", "e-0"}) {
		t.Fatalf("read back %v, want newest first [e-2 e-1 e-0]", ids)
	}

	// Changing retention changes the tables' TTL on the next apply.
	if _, err := ApplySchema(ctx, s, cfg, 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	var tableTTL int
	if err := s.Query("SELECT default_time_to_live FROM system_schema.tables WHERE keyspace_name = ? AND table_name = 'events_by_user'", cfg.Keyspace).ScanContext(ctx, &tableTTL); err != nil {
		t.Fatal(err)
	}
	if tableTTL != 24*3600 {
		t.Fatalf("table TTL %d after retention change, want %d", tableTTL, 24*3600)
	}
}
