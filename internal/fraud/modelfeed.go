package fraud

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/bytebasket/bytebasket/internal/config"
	"github.com/bytebasket/bytebasket/internal/event"
	"github.com/bytebasket/bytebasket/internal/fraud/riskmodel"
	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
)

// modelKey is the fraud-rules topic's key of the model in force: the topic is compacted by
// key, so it keeps the newest rule set and the newest model.
const modelKey = "model"

// PublishModel makes m the model every fraud instance scores orders with: checked, given
// the version after the newest one in the topic, and written to fraud-rules (acknowledged by
// every in-sync replica). It returns the version.
func PublishModel(ctx context.Context, kafka config.Kafka, m *pb.FraudModel) (int64, error) {
	in, err := Latest(ctx, kafka)
	if err != nil {
		return 0, err
	}
	m = proto.CloneOf(m)
	m.Version = 1
	if in.Model != nil {
		m.Version = in.Model.Version() + 1
	}
	if _, err := riskmodel.FromProto(m); err != nil {
		return 0, err
	}
	cl, err := rulesClient(kafka)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	r := &kgo.Record{Topic: kafka.Topic(event.TopicFraudRules), Key: []byte(modelKey), Value: mustMarshal(m)}
	if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
		return 0, fmt.Errorf("fraud model: publish: %w", err)
	}
	return m.Version, nil
}

// parseModel reads a model record of fraud-rules (nil for other records); an unreadable or
// invalid model is refused with its problem, and the model in force stays.
func parseModel(r *kgo.Record) *riskmodel.Model {
	if string(r.Key) != modelKey || r.Value == nil {
		return nil
	}
	var m pb.FraudModel
	if err := proto.Unmarshal(r.Value, &m); err != nil {
		slog.Error("a model in fraud-rules is unreadable; the model in force stays", "offset", r.Offset, "err", err)
		return nil
	}
	rm, err := riskmodel.FromProto(&m)
	if err != nil {
		slog.Error("a model in fraud-rules is invalid; the model in force stays", "offset", r.Offset, "err", err)
		return nil
	}
	return rm
}
