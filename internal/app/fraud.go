package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	shipped "github.com/bytebasket/bytebasket/config"
	"github.com/bytebasket/bytebasket/internal/config"
	"github.com/bytebasket/bytebasket/internal/event"
	"github.com/bytebasket/bytebasket/internal/fraud"
	"github.com/bytebasket/bytebasket/internal/fraud/rules"
	"github.com/bytebasket/bytebasket/internal/fraud/sink"
	"github.com/bytebasket/bytebasket/internal/ops"
	"github.com/bytebasket/bytebasket/internal/stateful"
)

// Fraud is `bytebasket fraud`: the fraud role against the configured Kafka, checkpointing
// into the configured store, with the ops endpoints, until ctx is cancelled.
func Fraud(ctx context.Context, cfg config.Config, out io.Writer) error {
	srv, st, stop, err := startRole(ctx, cfg)
	if err != nil {
		return err
	}
	defer stop()
	in, err := fraudInForce(ctx, cfg)
	if err != nil {
		return err
	}
	var model int64
	if in.Model != nil {
		model = in.Model.Version()
	}
	fmt.Fprintf(out, "bytebasket fraud: kafka %v, store %s, group %s, rules version %d, model version %d, http http://%s\n",
		cfg.Kafka.Brokers, cfg.Store.Backend, cfg.Fraud.Group, in.Rules.Version, model, srv.Addr())
	srv.SetHealthy(true)
	return runFraud(ctx, cfg, in, st, srv, srv.Registry)
}

// FraudRulesApply is `bytebasket fraud rules apply FILE`: the set in FILE, checked whole,
// becomes the one every fraud instance applies.
func FraudRulesApply(ctx context.Context, cfg config.Config, file string, out io.Writer) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("fraud rules: %w", err)
	}
	if err := ensureTopics(ctx, cfg); err != nil {
		return err
	}
	rs, err := fraud.Publish(ctx, cfg.Kafka, data)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "fraud rules: version %d (%d rules) published to %s; running instances switch to it\n",
		rs.Version, len(rs.Rules), cfg.Kafka.Topic(event.TopicFraudRules))
	return nil
}

// configuredRules is the configured rule set (fraud.rules_file, else the shipped one) and
// its text.
func configuredRules(cfg config.Config) (*rules.Set, []byte, error) {
	data := shipped.FraudRules
	if f := cfg.Fraud.RulesFile; f != "" {
		var err error
		if data, err = os.ReadFile(f); err != nil {
			return nil, nil, fmt.Errorf("fraud rules: %w", err)
		}
	}
	rs, err := rules.Parse(data)
	return rs, data, err
}

// fraudInForce is what the fraud role starts with: the newest rule set and model in the
// fraud-rules topic and the offset to follow newer ones from. With no set there yet, the
// configured one is published first, so that every instance applies the same.
func fraudInForce(ctx context.Context, cfg config.Config) (fraud.InForce, error) {
	configured, data, err := configuredRules(cfg)
	if err != nil {
		return fraud.InForce{}, err
	}
	in, err := fraud.Latest(ctx, cfg.Kafka)
	if err != nil {
		return fraud.InForce{}, err
	}
	switch {
	case in.Rules == nil:
		_, err := fraud.Publish(ctx, cfg.Kafka, data)
		if errors.Is(err, fraud.ErrNotNewer) { // another instance published first: take its
			return fraudInForce(ctx, cfg)
		}
		if err != nil {
			return fraud.InForce{}, err
		}
		in.Rules = configured
	case configured.Version > in.Rules.Version:
		slog.Warn("the configured fraud rules are newer than the set in force; publish them with `bytebasket fraud rules apply`",
			"configured", configured.Version, "in_force", in.Rules.Version)
	}
	return in, nil
}

// runFraud runs the fraud role under the rule set and model in force, following newer ones from in.Next, until ctx
// ends, keeping /readyz of srv (if not nil) in step with it; its metrics go to reg. Each run
// is its own transactional producer: the group's generation fences a zombie's commits.
// Beside it runs the sink that copies committed alerts into the serving store.
func runFraud(ctx context.Context, cfg config.Config, in fraud.InForce, st fraudStore, srv *ops.Server, reg prometheus.Registerer) error {
	fc := fraud.FromConfig(cfg, in.Rules, uuid.NewString())
	fc.RulesFrom, fc.Model = in.Next, in.Model
	proc, err := fraud.New(fc, cfg.Kafka, st, reg)
	if err != nil {
		return err
	}
	snk, err := sink.New(cfg.Kafka, cfg.Fraud.Group+"-sink", st, reg)
	if err != nil {
		proc.Close()
		return err
	}
	return runLoop(ctx, "fraud role", withSink{proc, snk}, srv)
}

// fraudStore is what the fraud role keeps in the serving store: checkpoints and alerts.
type fraudStore interface {
	stateful.Store
	sink.Store
}

// withSink runs the fraud role and its alerts sink together; the role stopping stops both.
type withSink struct {
	proc *fraud.Processor
	sink *sink.Sink
}

func (w withSink) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		err := w.sink.Run(ctx)
		cancel() // alerts that reach no store are no use: the role stops too
		done <- err
	}()
	err := w.proc.Run(ctx)
	cancel()
	return errors.Join(err, <-done)
}

func (w withSink) Ready() bool { return w.proc.Ready() && w.sink.Ready() }
