package app

import (
	"context"
	"fmt"
	"io"

	"github.com/bytebasket/bytebasket/internal/config"
	"github.com/bytebasket/bytebasket/internal/store/cassandra"
)

// SchemaApply brings the Cassandra keyspace to the newest schema and the tables' TTL to the
// retention policy. Safe to run again.
func SchemaApply(ctx context.Context, cfg config.Config, out io.Writer) error {
	if cfg.Store.Backend != "cassandra" {
		return fmt.Errorf("schema apply: store backend is %q; only cassandra has a schema to apply", cfg.Store.Backend)
	}
	s, err := cassandra.Connect(ctx, cfg.Cassandra)
	if err != nil {
		return err
	}
	defer s.Close()
	applied, err := cassandra.ApplySchema(ctx, s, cfg.Cassandra, cfg.Retention.Duration(), cassandra.WithHistory(cfg.Retention.HistoryDuration()))
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "keyspace %s: applied migrations %v; table TTL %s\n", cfg.Cassandra.Keyspace, applied, cfg.Retention.Duration())
	return nil
}
