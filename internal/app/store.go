package app

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/bytebasket/bytebasket/internal/api"
	"github.com/bytebasket/bytebasket/internal/batch"
	"github.com/bytebasket/bytebasket/internal/config"
	"github.com/bytebasket/bytebasket/internal/fraud/sink"
	"github.com/bytebasket/bytebasket/internal/store/cassandra"
	"github.com/bytebasket/bytebasket/internal/store/embedded"
	"github.com/bytebasket/bytebasket/internal/stream"
)

// servingStore is what the roles need of the serving store; each backend provides it.
type servingStore interface {
	stream.Store
	batch.Sink
	batch.TrendReader
	api.Store
	sink.Store
	// ResetState forgets a partition's checkpoint (bytebasket state reset).
	ResetState(ctx context.Context, group string, partition int32) error
	Close() error
}

// openStore is the store factory: the backend named by store.backend.
func openStore(ctx context.Context, cfg config.Config) (servingStore, error) {
	switch cfg.Store.Backend {
	case "cassandra":
		s, err := cassandra.NewStore(ctx, cfg.Cassandra)
		if err != nil {
			return nil, err
		}
		return s, nil
	case "embedded":
		s, err := embedded.Open(filepath.Join(cfg.DataDir, "store"), cfg.Retention.Duration(),
			embedded.WithHistory(cfg.Retention.HistoryDuration()))
		if err != nil {
			return nil, err
		}
		return s, nil
	default:
		return nil, fmt.Errorf("store backend %q is not one of embedded, cassandra", cfg.Store.Backend)
	}
}
