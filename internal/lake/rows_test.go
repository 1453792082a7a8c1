package lake

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/bytebasket/bytebasket/internal/event"
	"github.com/bytebasket/bytebasket/internal/sim"
	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
	"github.com/parquet-go/parquet-go"
)

// simEvents calls fn with n simulated events (each valid only during the call).
func simEvents(t testing.TB, n int, fn func(i int, e *pb.Envelope)) {
	t.Helper()
	s, err := sim.New(sim.Config{Seed: 7, Users: 500, Start: time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		e, _ := s.Next()
		fn(i, e)
	}
}

// Rows of every event type survive a Parquet round trip unchanged, and the schema has the
// envelope columns at the top level (flattened), nulls where a field does not apply.
func TestRowsRoundTrip(t *testing.T) {
	var f Flattener
	var acts []ActivityRow
	var txs []TransactionRow
	kinds := map[string]bool{}
	simEvents(t, 20_000, func(i int, e *pb.Envelope) {
		kinds[string(event.KindOf(e))] = true
		if isTransaction(e) {
			txs = append(txs, f.Transaction(e, 1, int64(i)))
		} else {
			acts = append(acts, f.Activity(e, 2, int64(i)))
		}
	})
	if len(kinds) < 12 {
		t.Fatalf("the simulator gave only %d event types: %v", len(kinds), kinds)
	}
	roundTrip(t, acts)
	roundTrip(t, txs)
}

func roundTrip[T any](t *testing.T, rows []T) {
	t.Helper()
	var buf bytes.Buffer
	if err := parquet.Write(&buf, rows, parquet.Compression(&parquet.Zstd)); err != nil {
		t.Fatal(err)
	}
	got, err := parquet.Read[T](bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(rows) {
		t.Fatalf("read %d rows, wrote %d", len(got), len(rows))
	}
	for i := range rows {
		if !equalRows(nullTimes(got[i]), rows[i]) {
			t.Fatalf("row %d: read %+v, wrote %+v", i, got[i], rows[i])
		}
	}
	schema := parquet.SchemaOf(rows[0])
	for _, col := range []string{"event_id", "event_time", "platform", "user_id", "kafka_offset"} {
		if _, ok := schema.Lookup(col); !ok {
			t.Fatalf("no top-level column %q in %s", col, schema)
		}
	}
}

func isTransaction(e *pb.Envelope) bool {
	return event.TopicOf(event.KindOf(e)) == event.TopicTransactions
}

// nullTimes undoes a parquet-go reader quirk: a null optional timestamp reads back as a
// pointer to the zero time (DuckDB and Spark read null; TestNullsAreNulls checks the file).
func nullTimes(row any) any {
	switch r := row.(type) {
	case ActivityRow:
		if r.IngestTime != nil && r.IngestTime.IsZero() {
			r.IngestTime = nil
		}
		return r
	case TransactionRow:
		if r.IngestTime != nil && r.IngestTime.IsZero() {
			r.IngestTime = nil
		}
		return r
	}
	return row
}

// equalRows compares by JSON: pointers by value, times as instants. A row without line items
// reads back an empty list.
func equalRows(a, b any) bool {
	if tx, ok := a.(TransactionRow); ok && len(tx.Items) == 0 {
		tx.Items = nil
		a = tx
	}
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}
