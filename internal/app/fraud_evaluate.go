package app

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/bytebasket/bytebasket/internal/bus"
	"github.com/bytebasket/bytebasket/internal/config"
	"github.com/bytebasket/bytebasket/internal/event"
	"github.com/bytebasket/bytebasket/internal/fraud"
	"github.com/bytebasket/bytebasket/internal/fraud/evaluate"
	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
)

// FraudEvaluateOptions choose the truth and the period of `bytebasket fraud evaluate`.
type FraudEvaluateOptions struct {
	// Labels is a CSV of order_id[,scenario] of a shop's confirmed fraud; empty: the
	// sim-labels topic.
	Labels string
	// Since: only orders placed at or after it count (zero: all).
	Since time.Time
	JSON  bool
}

// FraudEvaluate is `bytebasket fraud evaluate`: every order in the transactions topic (of
// the period), its truth and the committed decisions in fraud-alerts, measured as a table,
// or as JSON.
func FraudEvaluate(ctx context.Context, cfg config.Config, opts FraudEvaluateOptions, out io.Writer) error {
	truth := map[string]string{} // order id -> scenario
	if opts.Labels != "" {
		if err := readLabelsFile(opts.Labels, truth); err != nil {
			return err
		}
	} else {
		err := bus.ReadAll(ctx, cfg.Kafka, cfg.Kafka.Topic(event.TopicSimLabels), func(r *kgo.Record) error {
			var l pb.FraudLabel
			if err := proto.Unmarshal(r.Value, &l); err != nil {
				return fmt.Errorf("sim-labels offset %d: %w", r.Offset, err)
			}
			if l.GetOrderId() != "" {
				truth[l.GetOrderId()] = l.GetScenario()
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	var orders []evaluate.Order
	seen := map[string]bool{}
	err := bus.ReadAll(ctx, cfg.Kafka, cfg.Kafka.Topic(event.TopicTransactions), func(r *kgo.Record) error {
		e, err := event.Decode(r.Value)
		if err != nil || e.GetOrderPlaced() == nil { // bad records are the dead letters' business
			return nil
		}
		if e.GetEventTime().AsTime().Before(opts.Since) {
			return nil
		}
		if id := e.GetOrderPlaced().GetOrderId(); !seen[id] {
			seen[id] = true
			orders = append(orders, evaluate.Order{ID: id, Fraud: truth[id]})
		}
		return nil
	})
	if err != nil {
		return err
	}
	decisions, err := fraud.Decisions(ctx, cfg.Kafka)
	if err != nil {
		return err
	}
	if len(orders) == 0 {
		return errors.New("fraud evaluate: no orders in the transactions topic")
	}
	rep := evaluate.Compute(orders, decisions)
	if opts.JSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	rep.Print(out)
	return nil
}

// readLabelsFile reads order_id[,scenario] rows (a header row naming order_id is skipped).
func readLabelsFile(path string, truth map[string]string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("fraud labels: %w", err)
	}
	defer f.Close()
	rd := csv.NewReader(f)
	rd.FieldsPerRecord = -1
	for line := 1; ; line++ {
		row, err := rd.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("fraud labels %s: %w", path, err)
		}
		id := strings.TrimSpace(row[0])
		switch {
		case line == 1 && strings.EqualFold(id, "order_id"):
			continue
		case id == "":
			return fmt.Errorf("fraud labels %s line %d: no order id", path, line)
		}
		scenario := "fraud"
		if len(row) > 1 && strings.TrimSpace(row[1]) != "" {
			scenario = strings.TrimSpace(row[1])
		}
		truth[id] = scenario
	}
}
