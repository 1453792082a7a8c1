package app

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	shipped "github.com/bytebasket/bytebasket/config"
	"github.com/bytebasket/bytebasket/internal/config"
	"github.com/bytebasket/bytebasket/internal/fraud"
	"github.com/bytebasket/bytebasket/internal/fraud/rules"
	"github.com/bytebasket/bytebasket/internal/ops"
	"github.com/bytebasket/bytebasket/internal/stateful"
)

// Fraud is `bytebasket fraud`: the fraud role against the configured Kafka, checkpointing
// into the configured store, with the ops endpoints, until ctx is cancelled.
func Fraud(ctx context.Context, cfg config.Config, out io.Writer) error {
	rs, err := loadRules(cfg.Fraud.RulesFile)
	if err != nil {
		return err
	}
	srv, st, stop, err := startRole(ctx, cfg)
	if err != nil {
		return err
	}
	defer stop()
	fmt.Fprintf(out, "bytebasket fraud: kafka %v, store %s, group %s, rules version %d, http http://%s\n",
		cfg.Kafka.Brokers, cfg.Store.Backend, cfg.Fraud.Group, rs.Version, srv.Addr())
	srv.SetHealthy(true)
	return runFraud(ctx, cfg, rs, st, srv, srv.Registry)
}

// loadRules reads the rule set in force: the file, or the shipped set when none is named.
func loadRules(file string) (*rules.Set, error) {
	data := shipped.FraudRules
	if file != "" {
		var err error
		if data, err = os.ReadFile(file); err != nil {
			return nil, fmt.Errorf("fraud rules: %w", err)
		}
	}
	return rules.Parse(data)
}

// runFraud runs the fraud role until ctx ends, keeping /readyz of srv (if not nil) in step
// with it; its metrics go to reg. Each run is its own transactional producer: the group's
// generation fences a zombie's commits.
func runFraud(ctx context.Context, cfg config.Config, rs *rules.Set, st stateful.Store, srv *ops.Server, reg prometheus.Registerer) error {
	proc, err := fraud.New(fraud.FromConfig(cfg, rs, uuid.NewString()), cfg.Kafka, st, reg)
	if err != nil {
		return err
	}
	return runLoop(ctx, "fraud role", proc.Loop, srv)
}
