// Package spark is the Spark engine of batch jobs: SQL over the lake through Spark Connect
// (spark-connect-go). Spark computes; Go loads the results into the serving store.
package spark

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/apache/spark-connect-go/spark/sql"
	"github.com/bytebasket/bytebasket/internal/config"
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
	return &Engine{session: s, lakeURI: strings.TrimSuffix(cfg.LakeURI, "/")}, nil
}

// LakePath is where Spark finds a lake path (relative to the lake root).
func (e *Engine) LakePath(rel string) string { return e.lakeURI + "/" + strings.TrimPrefix(rel, "/") }

// Query runs one SQL statement and returns its column names and rows. Results are collected
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
	}
	return cols, out, nil
}

// Close ends the session.
func (e *Engine) Close() error { return e.session.Stop() }
