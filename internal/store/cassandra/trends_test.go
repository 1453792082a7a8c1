package cassandra

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/bytebasket/bytebasket/internal/batch/batchtest"
	"github.com/bytebasket/bytebasket/internal/config"
	"github.com/bytebasket/bytebasket/internal/model"
	"github.com/bytebasket/bytebasket/internal/testenv"
)

func TestTrends(t *testing.T) {
	st, _, _ := newTestStore(t)
	batchtest.TestTrendStore(t, st)
}

// The trend tables get the history retention as their TTL, the other tables keep the
// retention, and a changed history retention reaches the tables on the next apply.
func TestTrendTablesTTL(t *testing.T) {
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

	const day = 24 * 3600
	tableTTLs := func() map[string]int {
		t.Helper()
		iter := s.Query("SELECT table_name, default_time_to_live FROM system_schema.tables WHERE keyspace_name = ?", cfg.Keyspace).IterContext(ctx)
		out := map[string]int{}
		var name string
		var ttl int
		for iter.Scan(&name, &ttl) {
			out[name] = ttl
		}
		if err := iter.Close(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	for _, h := range []int{30, 400} {
		if _, err := ApplySchema(ctx, s, cfg, 2*day*time.Second, WithHistory(time.Duration(h)*day*time.Second)); err != nil {
			t.Fatal(err)
		}
		ttls := tableTTLs()
		for table, want := range map[string]int{"trend_metrics": h * day, "trend_tops": h * day, "window_metrics": 2 * day, "stream_checkpoints": 0} {
			if ttls[table] != want {
				t.Errorf("history %d days: table %s has TTL %d, want %d", h, table, ttls[table], want)
			}
		}
	}

	// A row's TTL is the table's: the history, not the retention.
	st, err := NewStore(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rows := batchtest.SampleTrends()
	if err := st.WriteTrends(ctx, model.Trends{Metrics: rows.Metrics[:1]}); err != nil {
		t.Fatal(err)
	}
	var ttl int
	k := rows.Metrics[0].Key
	if err := s.Query("SELECT TTL(active_users) FROM "+cfg.Keyspace+".trend_metrics WHERE granularity = ? AND month = ? AND bucket_start = ? AND platform = ?",
		string(k.Granularity), utcMonth(k.Start), k.Start, k.Platform).ScanContext(ctx, &ttl); err != nil {
		t.Fatal(err)
	}
	if ttl <= 399*day || ttl > 400*day {
		t.Fatalf("trend row TTL %d s, want about 400 days", ttl)
	}
}
