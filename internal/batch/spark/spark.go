// Package spark is the Spark engine of batch jobs: SQL over the lake through Spark Connect
// (spark-connect-go). Spark computes; Go loads the results into the serving store.
package spark

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/spark-connect-go/spark/sql"

	"github.com/bytebasket/bytebasket/internal/batch"
	"github.com/bytebasket/bytebasket/internal/config"
	"github.com/bytebasket/bytebasket/internal/lake"
)

// Engine is a Spark Connect session.
type Engine struct {
	session sql.SparkSession
	lakeURI string
}

// Connect opens a session to cfg.Remote (sc://host:port). A token from the environment is
// added as the connection string's token parameter, never written to a file.
func Connect(ctx context.Context, cfg config.Spark) (*Engine, error) {
	remote := cfg.Remote
	if !strings.HasPrefix(remote, "sc://") {
		return nil, fmt.Errorf("spark: remote %q must start with sc://", remote)
	}
	if cfg.Token != "" {
		sep := "/;"
		if strings.Contains(strings.TrimPrefix(remote, "sc://"), "/;") {
			sep = ";"
		}
		remote += sep + "token=" + url.QueryEscape(cfg.Token)
	}
	s, err := sql.NewSessionBuilder().Remote(remote).Build(ctx)
	if err != nil {
		return nil, fmt.Errorf("spark: connect to %s: %w", cfg.Remote, err)
	}
	e := &Engine{session: s, lakeURI: strings.TrimSuffix(cfg.LakeURI, "/")}
	// Event times are UTC; so must be bucketing and timestamp literals, whatever the
	// server's default zone.
	if _, _, err := e.Query(ctx, "SET spark.sql.session.timeZone=UTC"); err != nil {
		_ = s.Stop()
		return nil, err
	}
	return e, nil
}

var _ batch.Engine = (*Engine)(nil)

// Name is "spark".
func (e *Engine) Name() string { return "spark" }

// Explode unnests an array column.
func (e *Engine) Explode(expr string) string { return "explode(" + expr + ")" }

// Micros is a timestamp as microseconds since the epoch.
func (e *Engine) Micros(expr string) string { return "unix_micros(" + expr + ")" }

// RegisterParquet creates a session-scoped view over the Parquet file or directory at path
// (a URI Spark reads: hdfs://..., file:///...).
func (e *Engine) RegisterParquet(ctx context.Context, view, path string) error {
	q := fmt.Sprintf("CREATE OR REPLACE TEMP VIEW %s USING parquet OPTIONS (path '%s')", view, strings.ReplaceAll(path, "'", "\\'"))
	if _, _, err := e.Query(ctx, q); err != nil {
		return fmt.Errorf("spark: view %s: %w", view, err)
	}
	return nil
}

// emptyViews have the columns of each stream that jobs read, with the types Spark reads
// from the lake's Parquet.
var emptyViews = map[string]string{
	lake.StreamActivity: `SELECT CAST(NULL AS STRING) AS event_id, CAST(NULL AS STRING) AS event_type,
  CAST(NULL AS TIMESTAMP) AS event_time, CAST(NULL AS STRING) AS platform, CAST(NULL AS STRING) AS user_id,
  CAST(NULL AS STRING) AS session_id, CAST(NULL AS STRING) AS product_id, CAST(NULL AS STRING) AS category_id,
  CAST(NULL AS BIGINT) AS price_minor, CAST(NULL AS STRING) AS currency, CAST(NULL AS INT) AS quantity,
  CAST(NULL AS DATE) AS date, CAST(NULL AS INT) AS hour
WHERE false`,
	lake.StreamTransactions: `SELECT CAST(NULL AS STRING) AS event_id, CAST(NULL AS STRING) AS event_type,
  CAST(NULL AS TIMESTAMP) AS event_time, CAST(NULL AS STRING) AS platform, CAST(NULL AS STRING) AS user_id,
  CAST(NULL AS STRING) AS order_id, CAST(NULL AS BIGINT) AS amount_minor, CAST(NULL AS STRING) AS currency,
  CAST(NULL AS ARRAY<STRUCT<product_id: STRING, category_id: STRING, quantity: INT, unit_price_minor: BIGINT>>) AS items,
  CAST(NULL AS DATE) AS date, CAST(NULL AS INT) AS hour
WHERE false`,
}

// RegisterViews creates session-scoped views over the streams' directories; Spark discovers
// the date= and hour= partitions and skips hidden (in-flight) files. A stream without files
// (no directory yet, or none of its files visible) gets an empty view instead.
func (e *Engine) RegisterViews(ctx context.Context) error {
	for view, stream := range map[string]string{batch.ViewActivity: lake.StreamActivity, batch.ViewTransactions: lake.StreamTransactions} {
		path := strings.ReplaceAll(e.LakePath("stream="+stream), "'", "\\'")
		q := fmt.Sprintf("CREATE OR REPLACE TEMP VIEW %s USING parquet OPTIONS (path '%s', mergeSchema 'true')", view, path)
		_, _, err := e.Query(ctx, q)
		if err != nil && noFiles(err) {
			_, _, err = e.Query(ctx, "CREATE OR REPLACE TEMP VIEW "+view+" AS "+emptyViews[stream])
		}
		if err != nil {
			return fmt.Errorf("spark: view %s: %w", view, err)
		}
	}
	return nil
}

// noFiles reports Spark's errors for a path that does not exist or holds no Parquet file.
func noFiles(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "PATH_NOT_FOUND") || strings.Contains(msg, "UNABLE_TO_INFER_SCHEMA")
}

// LakePath is where Spark finds a lake path (relative to the lake root).
func (e *Engine) LakePath(rel string) string { return e.lakeURI + "/" + strings.TrimPrefix(rel, "/") }

// Query runs one SQL statement and returns its column names and rows, timestamps as
// time.Time in UTC. Results are collected
// into memory: batch jobs return aggregates, not raw events.
func (e *Engine) Query(ctx context.Context, query string) ([]string, [][]any, error) {
	df, err := e.session.Sql(ctx, query)
	if err != nil {
		return nil, nil, fmt.Errorf("spark: %w", err)
	}
	cols, err := df.Columns(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("spark: columns: %w", err)
	}
	rows, err := df.Collect(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("spark: collect: %w", err)
	}
	out := make([][]any, len(rows))
	for i, r := range rows {
		out[i] = r.Values()
		for j, v := range out[i] {
			// Spark's TIMESTAMP is microseconds since the epoch, and arrives as such.
			if ts, ok := v.(arrow.Timestamp); ok {
				out[i][j] = time.UnixMicro(int64(ts)).UTC()
			}
		}
	}
	return cols, out, nil
}

// Close ends the session.
func (e *Engine) Close() error { return e.session.Stop() }
