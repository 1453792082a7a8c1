// Package sink copies the fraud role's committed alerts (review and block decisions,
// transaction-monitoring alerts) from the fraud-alerts topic into the serving store, where
// the API reads them, and the ground truth of the sim-labels topic when there is one (the
// dashboard's precision and recall). It reads committed records only, writes each batch whole and commits
// the group's offsets after the write: at least once, made exact by rows keyed by the time
// and id of the event decided on, which a redelivery (or the event decided again after a
// state reset) rewrites.
package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/bytebasket/bytebasket/internal/bus"
	"github.com/bytebasket/bytebasket/internal/config"
	"github.com/bytebasket/bytebasket/internal/event"
	"github.com/bytebasket/bytebasket/internal/model"
	"github.com/bytebasket/bytebasket/internal/retry"
	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
)

// Store is where the alerts and labels go; both serving stores implement it.
type Store interface {
	WriteFraudAlerts(ctx context.Context, alerts []model.FraudAlert) error
	WriteFraudLabels(ctx context.Context, labels []model.FraudLabel) error
}

// Sink is one member of the sink's consumer group. Create with New, then Run.
type Sink struct {
	client     *kgo.Client
	store      Store
	labels     string // the sim-labels topic
	warnedKind bool
	ready      atomic.Bool
	m          metrics
}

type metrics struct {
	written, labels, unreadable, unkinded prometheus.Counter
	failures                              prometheus.Counter
}

// New joins group over the fraud-alerts and sim-labels topics of kafka. reg may be nil.
func New(kafka config.Kafka, group string, store Store, reg prometheus.Registerer) (*Sink, error) {
	opts, err := bus.ClientOptions(kafka)
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(opts,
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(kafka.Topic(event.TopicFraudAlerts), kafka.Topic(event.TopicSimLabels)),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		// Offsets are committed after the write: no rebalance may pass in between.
		kgo.BlockRebalanceOnPoll(),
	)...)
	if err != nil {
		return nil, fmt.Errorf("fraud alerts sink: %w", err)
	}
	s := &Sink{client: cl, store: store, labels: kafka.Topic(event.TopicSimLabels), m: metrics{
		written:    prometheus.NewCounter(prometheus.CounterOpts{Name: "bytebasket_fraud_sink_alerts_written_total", Help: "Fraud alerts written to the serving store (redeliveries included)."}),
		labels:     prometheus.NewCounter(prometheus.CounterOpts{Name: "bytebasket_fraud_sink_labels_written_total", Help: "Fraud labels (ground truth) written to the serving store (redeliveries included)."}),
		unkinded:   prometheus.NewCounter(prometheus.CounterOpts{Name: "bytebasket_fraud_sink_labels_without_kind_total", Help: "sim-labels records without the labelled event's kind (written before labels had one), not kept."}),
		unreadable: prometheus.NewCounter(prometheus.CounterOpts{Name: "bytebasket_fraud_sink_unreadable_total", Help: "fraud-alerts or sim-labels records that are not a FraudDecision or FraudLabel the store can keep, skipped."}),
		failures:   prometheus.NewCounter(prometheus.CounterOpts{Name: "bytebasket_fraud_sink_write_failures_total", Help: "Failed writes of a batch of alerts (each retried until it succeeds)."}),
	}}
	if reg != nil {
		reg.MustRegister(s.m.written, s.m.labels, s.m.unreadable, s.m.unkinded, s.m.failures)
	}
	return s, nil
}

// Ready reports whether the last write succeeded.
func (s *Sink) Ready() bool { return s.ready.Load() }

// Run copies alerts until ctx ends. A store outage stalls it (retried with backoff) until
// the store is back; nothing is committed past an alert not written.
func (s *Sink) Run(ctx context.Context) error {
	defer s.client.Close()
	s.ready.Store(true)
	for ctx.Err() == nil {
		fetches := s.client.PollRecords(ctx, 1000)
		if fetches.IsClientClosed() {
			break
		}
		fetches.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				slog.Warn("fraud alerts sink: fetch error", "topic", t, "partition", p, "err", err)
			}
		})
		var alerts []model.FraudAlert
		var labels []model.FraudLabel
		fetches.EachRecord(func(r *kgo.Record) {
			if r.Topic == s.labels {
				if l, ok := s.orderLabelOf(r); ok {
					labels = append(labels, l)
				}
			} else if a, ok := s.alertOf(r); ok {
				alerts = append(alerts, a)
			}
		})
		if len(alerts)+len(labels) > 0 {
			err := retry.Until(ctx, retry.Backoff{Initial: 100 * time.Millisecond, Max: 5 * time.Second}, func() error {
				if len(alerts) > 0 {
					if err := s.store.WriteFraudAlerts(ctx, alerts); err != nil {
						return err
					}
				}
				if len(labels) > 0 {
					return s.store.WriteFraudLabels(ctx, labels)
				}
				return nil
			}, func(err error, wait time.Duration) {
				s.ready.Store(false)
				s.m.failures.Inc()
				slog.Warn("fraud alerts not written to the serving store; retrying", "alerts", len(alerts), "in", wait, "err", err)
			})
			if err != nil { // ctx ended: the next owner reads them again
				break
			}
			s.ready.Store(true)
			s.m.written.Add(float64(len(alerts)))
			s.m.labels.Add(float64(len(labels)))
		}
		// Committed on a context of its own: on shutdown what was written is still committed.
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := s.client.CommitUncommittedOffsets(cctx); err != nil {
			slog.Warn("fraud alerts sink: offsets not committed; the alerts are read again", "err", err)
		}
		cancel()
		s.client.AllowRebalance()
	}
	s.client.AllowRebalance()
	return nil
}

// maxID bounds the ids an alert row is keyed by (a Cassandra key is at most 64 KiB): a
// longer one could never be written and would stall the sink.
const maxID = 1024

// alertOf is the alert record r holds.
func (s *Sink) alertOf(r *kgo.Record) (model.FraudAlert, bool) {
	var d pb.FraudDecision
	err := proto.Unmarshal(r.Value, &d)
	if err == nil && (d.GetEventId() == "" || d.GetEventTime() == nil || len(d.GetEventId()) > maxID || len(d.GetUserId()) > maxID) {
		err = fmt.Errorf("no event id or time, or an id over %d bytes", maxID)
	}
	if err != nil {
		s.m.unreadable.Inc()
		slog.Error("fraud-alerts record is not a decision the store can keep; skipped", "partition", r.Partition, "offset", r.Offset, "err", err)
		return model.FraudAlert{}, false
	}
	return model.FraudAlert{EventID: d.GetEventId(), EventTime: d.GetEventTime().AsTime(), UserID: d.GetUserId(), Decision: r.Value}, true
}

// orderLabelOf is the label of an order that record r of sim-labels holds; false for the
// labels of the order's other events (its payments, a chargeback: the order is labelled
// once) and of events about no order (a fraud session's page views).
func (s *Sink) orderLabelOf(r *kgo.Record) (model.FraudLabel, bool) {
	var l pb.FraudLabel
	err := proto.Unmarshal(r.Value, &l)
	if err == nil {
		switch l.GetKind() {
		case string(event.KindOrderPlaced):
			if l.GetOrderId() == "" || l.GetEventTime() == nil || len(l.GetOrderId()) > maxID || len(l.GetUserId()) > maxID || len(l.GetScenario()) > maxID {
				err = fmt.Errorf("no order id or time, or a field over %d bytes", maxID)
			}
		case "":
			s.m.unkinded.Inc()
			if !s.warnedKind {
				s.warnedKind = true
				slog.Warn("sim-labels holds labels without the labelled event's kind (from an older producer): not kept, so the dashboard's ground truth leaves them out", "partition", r.Partition, "offset", r.Offset)
			}
			return model.FraudLabel{}, false
		default:
			return model.FraudLabel{}, false
		}
	}
	if err != nil {
		s.m.unreadable.Inc()
		slog.Error("sim-labels record is not a label the store can keep; skipped", "partition", r.Partition, "offset", r.Offset, "err", err)
		return model.FraudLabel{}, false
	}
	return model.FraudLabel{OrderID: l.GetOrderId(), EventTime: l.GetEventTime().AsTime(), UserID: l.GetUserId(), Scenario: l.GetScenario()}, true
}
