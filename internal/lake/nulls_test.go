package lake

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
	_ "github.com/duckdb/duckdb-go/v2"
	"github.com/parquet-go/parquet-go"
)

// optionalColumns lists the optional columns of a row type with, per row, whether the
// value is null (a nil pointer).
func optionalColumns(v reflect.Value, nulls map[string]int) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous {
			optionalColumns(v.Field(i), nulls)
			continue
		}
		tag := f.Tag.Get("parquet")
		if !strings.Contains(tag, ",optional") {
			continue
		}
		name := strings.Split(tag, ",")[0]
		if v.Field(i).IsNil() {
			nulls[name]++
		} else {
			nulls[name] += 0
		}
	}
}

// Another engine (DuckDB) reads a null exactly where a row has none, and never an empty
// string or a zero for a missing field, whatever the file boundaries.
func TestNullsAreNulls(t *testing.T) {
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var f Flattener
	var acts []ActivityRow
	var txs []TransactionRow
	simEvents(t, 30_000, func(i int, e *pb.Envelope) {
		if isTransaction(e) {
			txs = append(txs, f.Transaction(e, 0, int64(i)))
		} else {
			acts = append(acts, f.Activity(e, 0, int64(i)))
		}
	})
	dir := t.TempDir()
	for _, size := range []int{1, 7, 1000, 4096, 25_000} {
		checkNulls(t, db, filepath.Join(dir, fmt.Sprintf("a%d.parquet", size)), acts[:min(size, len(acts))])
		checkNulls(t, db, filepath.Join(dir, fmt.Sprintf("t%d.parquet", size)), txs[:min(size, len(txs))])
	}
}

func checkNulls[T any](t *testing.T, db *sql.DB, file string, rows []T) {
	t.Helper()
	out, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := parquet.Write(out, rows, parquet.Compression(&parquet.Zstd)); err != nil {
		t.Fatal(err)
	}
	out.Close()
	want := map[string]int{}
	for _, r := range rows {
		optionalColumns(reflect.ValueOf(r), want)
	}
	for col, n := range want {
		var nulls, empty int
		q := fmt.Sprintf("SELECT count(*) FILTER (WHERE %[1]s IS NULL), count(*) FILTER (WHERE CAST(%[1]s AS VARCHAR) = '') FROM '%[2]s'", col, file)
		if err := db.QueryRow(q).Scan(&nulls, &empty); err != nil {
			t.Fatal(err)
		}
		if nulls != n || empty != 0 {
			t.Fatalf("%s, %d rows: DuckDB reads %d nulls and %d empty strings in %s, want %d nulls", filepath.Base(file), len(rows), nulls, empty, col, n)
		}
	}
}
