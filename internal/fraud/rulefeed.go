package fraud

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/bytebasket/bytebasket/internal/bus"
	"github.com/bytebasket/bytebasket/internal/config"
	"github.com/bytebasket/bytebasket/internal/event"
	"github.com/bytebasket/bytebasket/internal/fraud/riskmodel"
	"github.com/bytebasket/bytebasket/internal/fraud/rules"
	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
)

// ErrNotNewer: a rule set's version is not above the one in force.
var ErrNotNewer = errors.New("fraud rules: version not above the one in force")

// rulesKey is the one key of the fraud-rules topic: compaction keeps the newest set.
const rulesKey = "rules"

// Publish checks data as a whole rule set and makes it the one in force. It is refused, and
// nothing changes, when any rule is invalid (every problem is named by rule and field) or its
// version is not above the one in force; otherwise it is written to the fraud-rules topic,
// acknowledged by every in-sync replica, and each fraud instance switches to it.
func Publish(ctx context.Context, kafka config.Kafka, data []byte) (*rules.Set, error) {
	rs, err := rules.Parse(data)
	if err != nil {
		return nil, err
	}
	in, err := Latest(ctx, kafka)
	if err != nil {
		return nil, err
	}
	if current := in.Rules; current != nil && rs.Version <= current.Version {
		return nil, fmt.Errorf("%w: version %d is not above version %d, in force: raise it", ErrNotNewer, rs.Version, current.Version)
	}
	cl, err := rulesClient(kafka)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	r := &kgo.Record{Topic: kafka.Topic(event.TopicFraudRules), Key: []byte(rulesKey), Value: data}
	if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
		return nil, fmt.Errorf("fraud rules: publish: %w", err)
	}
	return rs, nil
}

// InForce is what the fraud-rules topic holds: the newest valid rule set and model (nil when
// it holds none), and the offset after the last record read, where to follow newer ones from.
type InForce struct {
	Rules *rules.Set
	Model *riskmodel.Model
	Next  int64
}

// Latest reads the fraud-rules topic once for what is in force.
func Latest(ctx context.Context, kafka config.Kafka) (InForce, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var in InForce
	err := bus.ReadAll(ctx, kafka, kafka.Topic(event.TopicFraudRules), func(r *kgo.Record) error {
		in.Next = r.Offset + 1
		if rs := parseRecord(r); rs != nil && (in.Rules == nil || rs.Version > in.Rules.Version) {
			in.Rules = rs
		}
		if m := parseModel(r); m != nil && (in.Model == nil || m.Version() > in.Model.Version()) {
			in.Model = m
		}
		return nil
	})
	if err != nil {
		return InForce{}, fmt.Errorf("fraud rules: %w", err)
	}
	return in, nil
}

// follow calls apply with every valid rule set and applyModel with every valid model written
// to fraud-rules after offset from, until ctx ends.
func follow(ctx context.Context, kafka config.Kafka, from int64, apply func(*rules.Set), applyModel func(*riskmodel.Model)) error {
	cl, err := rulesClient(kafka, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
		kafka.Topic(event.TopicFraudRules): {0: kgo.NewOffset().At(from)}}))
	if err != nil {
		return err
	}
	defer cl.Close()
	for ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			if rs := parseRecord(r); rs != nil {
				apply(rs)
			}
			if m := parseModel(r); m != nil {
				applyModel(m)
			}
		})
	}
	return nil
}

// parseRecord reads one record of fraud-rules; an invalid set (written around Publish) is
// refused with its problems, and the set in force stays.
func parseRecord(r *kgo.Record) *rules.Set {
	if string(r.Key) != rulesKey || r.Value == nil {
		return nil
	}
	rs, err := rules.Parse(r.Value)
	if err != nil {
		slog.Error("a rule set in fraud-rules is invalid; the set in force stays", "offset", r.Offset, "err", err)
		return nil
	}
	return rs
}

func rulesClient(kafka config.Kafka, extra ...kgo.Opt) (*kgo.Client, error) {
	opts, err := bus.ClientOptions(kafka)
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(opts, append([]kgo.Opt{kgo.FetchMaxWait(time.Second)}, extra...)...)...)
	if err != nil {
		return nil, fmt.Errorf("fraud rules client: %w", err)
	}
	return cl, nil
}

// Decisions reads every committed decision in the fraud-alerts topic.
func Decisions(ctx context.Context, kafka config.Kafka) ([]*pb.FraudDecision, error) {
	var out []*pb.FraudDecision
	err := bus.ReadAll(ctx, kafka, kafka.Topic(event.TopicFraudAlerts), func(r *kgo.Record) error {
		d := &pb.FraudDecision{}
		if err := proto.Unmarshal(r.Value, d); err != nil {
			return fmt.Errorf("fraud-alerts offset %d: %w", r.Offset, err)
		}
		out = append(out, d)
		return nil
	})
	return out, err
}
