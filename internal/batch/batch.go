// Package batch computes history over the lake with SQL: hourly and daily trends per
// platform (trends.go), on either engine behind Engine (duckdb/ embedded, spark/ through
// Spark Connect). Engines only compute; Go normalizes the results and writes them to the
// serving store through Sink.
package batch

import (
	"context"
	"fmt"
	"math/big"
	"time"

	"github.com/bytebasket/bytebasket/internal/model"
)

// The views every engine registers over the lake, one per stream, with the columns of
// lake.ActivityRow and lake.TransactionRow plus the Hive partition columns date and hour.
const (
	ViewActivity     = "activity"
	ViewTransactions = "transactions"
)

// Engine runs SQL over the lake.
type Engine interface {
	// Name is the engine's name in logs and summaries ("duckdb", "spark").
	Name() string
	// RegisterViews (re)creates the views activity and transactions over the lake, with the
	// session time zone at UTC. A stream with no files yet gets an empty view of the same
	// columns, so jobs return nothing rather than fail.
	RegisterViews(ctx context.Context) error
	// RegisterParquet (re)creates view over the Parquet at path, as the engine reaches it:
	// a local file or glob for DuckDB, a file or directory URI for Spark.
	RegisterParquet(ctx context.Context, view, path string) error
	// Query runs one statement and returns its column names and rows.
	Query(ctx context.Context, sql string) ([]string, [][]any, error)
	// The dialect differences the jobs need: Explode is "one row per element of the list
	// column expr" (DuckDB unnest, Spark explode); Micros is the timestamp expr as BIGINT
	// microseconds since the epoch (DuckDB epoch_us, Spark unix_micros).
	Explode(expr string) string
	Micros(expr string) string
	Close() error
}

// Sink is where batch results go: the serving store. Writes are whole-row upserts keyed by
// (granularity, bucket start, platform[, dimension]), so writing the same rows again leaves
// the same state.
type Sink interface {
	WriteTrends(ctx context.Context, t model.Trends) error
}

// TrendReader is how the API reads batch history back.
type TrendReader interface {
	// Trends returns the metrics of granularity g with Start in [from, to), every platform,
	// newest first.
	Trends(ctx context.Context, g model.TrendGranularity, from, to time.Time) ([]model.TrendMetrics, error)
	// TrendTops returns the rankings dim of the bucket (g, start), one per platform.
	TrendTops(ctx context.Context, g model.TrendGranularity, start time.Time, dim model.TopDimension) ([]model.TrendTop, error)
}

// Int64 normalizes an integer result value: engines return int64 for BIGINT, but a missing
// cast would surface as int32 or a HUGEINT (*big.Int); those are accepted when they fit.
func Int64(v any) (int64, error) {
	switch x := v.(type) {
	case int64:
		return x, nil
	case int32:
		return int64(x), nil
	case int:
		return int64(x), nil
	case *big.Int:
		if x.IsInt64() {
			return x.Int64(), nil
		}
		return 0, fmt.Errorf("integer %s overflows int64", x)
	case nil:
		return 0, nil // a SUM over no rows
	}
	return 0, fmt.Errorf("value %v (%T) is not an integer", v, v)
}

// Time normalizes a timestamp result value to UTC.
func Time(v any) (time.Time, error) {
	if t, ok := v.(time.Time); ok {
		return t.UTC(), nil
	}
	return time.Time{}, fmt.Errorf("value %v (%T) is not a timestamp", v, v)
}

// String reads a text result value; NULL reads as "".
func String(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case nil:
		return "", nil
	}
	return "", fmt.Errorf("value %v (%T) is not text", v, v)
}

// Normalize converts every value of rows to the types jobs compare and store: int64,
// float64, time.Time in UTC, string, nil. Rows from both engines normalize to equal values.
func Normalize(rows [][]any) ([][]any, error) {
	out := make([][]any, len(rows))
	for i, r := range rows {
		out[i] = make([]any, len(r))
		for j, v := range r {
			switch x := v.(type) {
			case time.Time:
				out[i][j] = x.UTC()
			case string, float64, nil: // float64: scores and weights
				out[i][j] = x
			default:
				n, err := Int64(v)
				if err != nil {
					return nil, fmt.Errorf("row %d column %d: %w", i, j, err)
				}
				out[i][j] = n
			}
		}
	}
	return out, nil
}
