package fraud

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/bytebasket/bytebasket/internal/bus/bustest"
	"github.com/bytebasket/bytebasket/internal/event"
	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
)

// amountModel: the probability is 0.5 at 50.00 and rises with the amount (1,000.00: 0.95).
func amountModel() *pb.FraudModel {
	return &pb.FraudModel{Features: []string{"log_amount"}, Means: []float64{0}, Scales: []float64{1},
		Weights: []float64{1}, Intercept: -math.Log1p(5000), ReviewAt: 0.5, BlockAt: 0.9}
}

// A published model takes over a running instance without a restart and scores orders
// beside the rules (score, action, reason, model version); a broken model in the topic is
// refused and the one in force stays.
func TestModelSwapsWithoutRestart(t *testing.T) {
	br, cfg, cl := bustest.Embedded(t, 0)
	ctx := context.Background()
	if _, err := Publish(ctx, cfg.Kafka, []byte(ordersRule(1, 100))); err != nil { // rules that never fire
		t.Fatal(err)
	}
	p := startFollowing(t, cfg, "model")

	now := time.Now().Add(-10 * time.Minute)
	send := func(user string, cents int64) {
		e := order(user, user, "card-"+user, now, cents)
		b, err := event.AppendEncode(nil, e)
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: event.TopicTransactions, Key: []byte(user), Value: b}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	send("u-1", 100_000) // no model yet: allowed
	time.Sleep(time.Second)

	v, err := PublishModel(ctx, cfg.Kafka, amountModel())
	if err != nil || v != 1 {
		t.Fatalf("publish: version %d, %v", v, err)
	}
	for deadline := time.Now().Add(10 * time.Second); p.ModelVersion() != 1 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	if p.ModelVersion() != 1 {
		t.Fatalf("model version %d in force after publishing version 1", p.ModelVersion())
	}
	broken := amountModel()
	broken.Version, broken.ReviewAt, broken.BlockAt = 2, 0.9, 0.5
	if _, err := PublishModel(ctx, cfg.Kafka, broken); err == nil {
		t.Fatal("a model with review_at above block_at was published")
	}
	b, _ := proto.Marshal(broken) // written around PublishModel: the role must refuse it itself
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: event.TopicFraudRules, Key: []byte(modelKey), Value: b}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if p.ModelVersion() != 1 {
		t.Fatalf("a broken model took over: version %d", p.ModelVersion())
	}
	send("u-2", 100_000) // p 0.95: blocked
	send("u-3", 1_000)   // p 0.17: allowed

	var got []*pb.FraudDecision
	for deadline := time.Now().Add(15 * time.Second); len(got) == 0 && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		got = alerts(t, br.Addr())
	}
	time.Sleep(time.Second)
	got = alerts(t, br.Addr())
	if len(got) != 1 {
		t.Fatalf("%d alerts, want the one of u-2: %v", len(got), got)
	}
	d := got[0]
	want := 1 / (1 + math.Exp(-(math.Log1p(100_000) - math.Log1p(5000))))
	if d.GetOrderId() != "o-u-2" || d.GetModelVersion() != 1 || math.Abs(d.GetModelProbability()-want) > 1e-9 ||
		d.GetAction() != pb.FraudAction_FRAUD_ACTION_BLOCK || d.GetScore() != int32(math.Round(100*want)) ||
		len(d.GetReasons()) != 1 || d.GetReasons()[0].GetRule() != modelReason {
		t.Fatalf("decision %v, want o-u-2 blocked by model v1 at p %.4f", d, want)
	}
}
