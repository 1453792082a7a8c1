// Package duckdb is the embedded engine of batch jobs: DuckDB in process, over a local lake
// directory. No JVM and no server: embedded mode's batch engine.
package duckdb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/bytebasket/bytebasket/internal/batch"
	"github.com/bytebasket/bytebasket/internal/lake"
	"github.com/duckdb/duckdb-go/v2"
)

var _ batch.Engine = (*Engine)(nil)

// Engine is an in-memory DuckDB database whose views read the lake's Parquet files.
type Engine struct {
	db   *sql.DB
	root string
}

// Open starts an in-memory database over the lake directory root. DuckDB uses every core
// (its threads default).
func Open(root string) (*Engine, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("duckdb: lake root %s: %w", root, err)
	}
	// Settings are per connection: the init function applies them to each one the pool opens.
	conn, err := duckdb.NewConnector("", func(ex driver.ExecerContext) error {
		_, err := ex.ExecContext(context.Background(), "SET TimeZone = 'UTC'", nil)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("duckdb: open: %w", err)
	}
	db := sql.OpenDB(conn)
	// One connection: jobs run one at a time and DuckDB parallelizes each query itself.
	db.SetMaxOpenConns(1)
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("duckdb: open: %w", err)
	}
	return &Engine{db: db, root: abs}, nil
}

// Name is "duckdb".
func (e *Engine) Name() string { return "duckdb" }

// Explode unnests a list column.
func (e *Engine) Explode(expr string) string { return "unnest(" + expr + ")" }

// Micros is a timestamp as microseconds since the epoch.
func (e *Engine) Micros(expr string) string { return "epoch_us(" + expr + ")" }

// RegisterParquet creates view over the Parquet file (or glob) at path.
func (e *Engine) RegisterParquet(ctx context.Context, view, path string) error {
	if _, err := e.db.ExecContext(ctx, "CREATE OR REPLACE VIEW "+view+" AS SELECT * FROM read_parquet("+quote(path)+")"); err != nil {
		return fmt.Errorf("duckdb: view %s: %w", view, err)
	}
	return nil
}

// emptyViews have the columns of each stream that jobs read, with the types DuckDB reads
// from the lake's Parquet (timestamps are UTC-adjusted: TIMESTAMPTZ).
var emptyViews = map[string]string{
	lake.StreamActivity: `SELECT CAST(NULL AS VARCHAR) AS event_id, CAST(NULL AS VARCHAR) AS event_type,
  CAST(NULL AS TIMESTAMPTZ) AS event_time, CAST(NULL AS VARCHAR) AS platform, CAST(NULL AS VARCHAR) AS user_id,
  CAST(NULL AS VARCHAR) AS session_id, CAST(NULL AS VARCHAR) AS product_id, CAST(NULL AS VARCHAR) AS category_id,
  CAST(NULL AS BIGINT) AS price_minor, CAST(NULL AS VARCHAR) AS currency, CAST(NULL AS INTEGER) AS quantity,
  CAST(NULL AS DATE) AS date, CAST(NULL AS INTEGER) AS hour
WHERE false`,
	lake.StreamTransactions: `SELECT CAST(NULL AS VARCHAR) AS event_id, CAST(NULL AS VARCHAR) AS event_type,
  CAST(NULL AS TIMESTAMPTZ) AS event_time, CAST(NULL AS VARCHAR) AS platform, CAST(NULL AS VARCHAR) AS user_id,
  CAST(NULL AS VARCHAR) AS order_id, CAST(NULL AS BIGINT) AS amount_minor, CAST(NULL AS VARCHAR) AS currency,
  CAST(NULL AS STRUCT(product_id VARCHAR, category_id VARCHAR, quantity INTEGER, unit_price_minor BIGINT)[]) AS items,
  CAST(NULL AS DATE) AS date, CAST(NULL AS INTEGER) AS hour
WHERE false`,
}

// RegisterViews creates the views over stream=<name>/date=*/hour=*/*.parquet. Hidden files
// (in-flight writes) do not end in .parquet, so the glob skips them.
func (e *Engine) RegisterViews(ctx context.Context) error {
	for view, stream := range map[string]string{batch.ViewActivity: lake.StreamActivity, batch.ViewTransactions: lake.StreamTransactions} {
		glob := filepath.Join(e.root, "stream="+stream, "*", "*", "*.parquet")
		files, err := filepath.Glob(glob)
		if err != nil {
			return fmt.Errorf("duckdb: %w", err)
		}
		files = visible(files)
		body := emptyViews[stream]
		if len(files) > 0 {
			// Typed, not inferred: DuckDB reads hour=03 as text (it keeps leading zeros), so
			// an inferred type would change with the hours the lake holds.
			body = fmt.Sprintf("SELECT * FROM read_parquet(%s, hive_partitioning = true, union_by_name = true, "+
				"hive_types = {'date': DATE, 'hour': INTEGER})", quote(glob))
		}
		if _, err := e.db.ExecContext(ctx, "CREATE OR REPLACE VIEW "+view+" AS "+body); err != nil {
			return fmt.Errorf("duckdb: view %s: %w", view, err)
		}
	}
	return nil
}

func visible(files []string) []string {
	out := files[:0]
	for _, f := range files {
		if !lake.Hidden(filepath.Base(f)) {
			out = append(out, f)
		}
	}
	return out
}

// quote is a SQL string literal.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// Query runs one statement and returns its columns and rows as the driver scans them.
func (e *Engine) Query(ctx context.Context, query string) ([]string, [][]any, error) {
	rows, err := e.db.QueryContext(ctx, query)
	if err != nil {
		return nil, nil, fmt.Errorf("duckdb: %w", err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, nil, fmt.Errorf("duckdb: columns: %w", err)
	}
	var out [][]any
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, nil, fmt.Errorf("duckdb: scan: %w", err)
		}
		out = append(out, vals)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("duckdb: %w", err)
	}
	return cols, out, nil
}

// Close closes the database.
func (e *Engine) Close() error { return e.db.Close() }
