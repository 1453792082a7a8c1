package fraud

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bytebasket/bytebasket/internal/event"
	"github.com/bytebasket/bytebasket/internal/fraud/rules"
	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
)

const keyRules = `
version: 2
rules:
  - name: card-shared
    on: [order_placed]
    group_by: card
    aggregate: distinct
    field: user
    window: 1h
    compare: ">"
    limit: 1
    weight: 50
    action: block
  - name: device-busy
    on: [page_view, order_placed]
    group_by: device
    aggregate: count
    window: 1h
    compare: ">="
    limit: 3
    weight: 30
    action: review
`

// stages wires a first-stage task and repartition-stage tasks in process, as Kafka would:
// records for fraud-repartition go to the key task of their key's partition.
func stages(t *testing.T, set string) (apply func(*pb.Envelope), decisions *[]*pb.FraudDecision, hops *int, dead *[]*kgo.Record) {
	t.Helper()
	rs, err := rules.Parse([]byte(set))
	if err != nil {
		t.Fatal(err)
	}
	r := &role{cfg: Config{Alerts: "fraud-alerts", Repartition: "fraud-repartition", DeadLetters: "dead-letters"}, m: newMetrics(nil)}
	r.swap(rs)
	var got []*pb.FraudDecision
	var dls []*kgo.Record
	n := 0
	keys := map[int32]*keyTask{}
	router := kgo.StickyKeyPartitioner(nil).ForTopic("")
	var emit func(*kgo.Record)
	emit = func(rec *kgo.Record) {
		if rec.Topic == "dead-letters" {
			dls = append(dls, rec)
			return
		}
		if rec.Topic != "fraud-repartition" {
			var d pb.FraudDecision
			if err := proto.Unmarshal(rec.Value, &d); err != nil {
				t.Fatal(err)
			}
			got = append(got, &d)
			return
		}
		if route, _ := header(rec, headerRoute); string(route) != routeSegment {
			n++
		}
		p := int32(router.Partition(rec, 4))
		if keys[p] == nil {
			keys[p] = keyRole{r}.NewTask(p, emit).(*keyTask)
		}
		e, err := event.Decode(rec.Value)
		if err != nil {
			t.Fatal(err)
		}
		keys[p].ApplyRecord(event.TopicFraudRepartition, rec, e)
	}
	users := r.NewTask(0, emit).(*task)
	offset := int64(0)
	return func(e *pb.Envelope) {
		b, err := event.AppendEncode(nil, e)
		if err != nil {
			t.Fatal(err)
		}
		offset++
		users.ApplyRecord(event.TopicTransactions, &kgo.Record{Topic: event.TopicTransactions, Value: b, Offset: offset}, e)
	}, &got, &n, &dls
}

// Rules grouped by card and by device decide through the repartition stage: an order visits
// its card's and its device's key in turn and is settled once; an event only fed to a rule
// (a page view) reaches its key without a decision; an order without those keys is settled
// by the first stage.
func TestKeyRulesDecideThroughTheRepartitionStage(t *testing.T) {
	apply, got, hops, dead := stages(t, keyRules)
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	view := func(user, dev string, at time.Time) *pb.Envelope {
		return &pb.Envelope{EventId: "v-" + user + at.Format("150405"), EventTime: timestamppb.New(at), UserId: user,
			Payload: &pb.Envelope_PageView{PageView: &pb.PageView{Context: &pb.Context{DeviceId: dev}}}}
	}
	buy := func(id, user, card, dev string, at time.Time) *pb.Envelope {
		return &pb.Envelope{EventId: id, EventTime: timestamppb.New(at), UserId: user, Payload: &pb.Envelope_OrderPlaced{OrderPlaced: &pb.OrderPlaced{
			OrderId: "o-" + id, PaymentFingerprint: card, DeviceId: dev, Total: &pb.Money{AmountMinor: 1000, Currency: "EUR"}}}}
	}
	apply(view("u1", "dev-1", t0))
	apply(view("u1", "dev-1", t0.Add(time.Minute)))
	if *hops != 2 || len(*got) != 0 {
		t.Fatalf("two page views: %d records re-keyed, %d decisions; want 2 and none", *hops, len(*got))
	}
	apply(buy("a", "u1", "c1", "dev-1", t0.Add(2*time.Minute))) // third event on dev-1
	apply(buy("b", "u2", "c1", "dev-2", t0.Add(3*time.Minute))) // second account on c1
	apply(buy("c", "u3", "", "", t0.Add(4*time.Minute)))        // no keys: the first stage settles it, and it is a dead letter
	if *hops != 2+2+2 {
		t.Errorf("%d records re-keyed by card or device, want 6 (two views, two orders visiting two keys each)", *hops)
	}
	// The order without a card or device went without both rules: a dead letter that says so.
	if len(*dead) != 1 || string(headerOf((*dead)[0], "reason-class")) != "missing_field" ||
		!strings.Contains(string(headerOf((*dead)[0], "reason")), `rule "card-shared" needs the event's card; rule "device-busy" needs the event's device`) ||
		string(headerOf((*dead)[0], "source-offset")) != "5" {
		t.Errorf("dead letters %v, want the order without keys, naming both rules", *dead)
	}
	want := map[string][]string{"o-a": {"device-busy"}, "o-b": {"card-shared"}}
	if len(*got) != len(want) {
		t.Fatalf("%d decisions, want %d: %v", len(*got), len(want), *got)
	}
	for _, d := range *got {
		var names []string
		for _, r := range d.GetReasons() {
			names = append(names, r.GetRule())
		}
		if !slices.Equal(names, want[d.GetOrderId()]) || d.GetDecidedAt() == nil || d.GetRulesVersion() != 2 {
			t.Errorf("%s: reasons %v, version %d; want %v", d.GetOrderId(), names, d.GetRulesVersion(), want[d.GetOrderId()])
		}
	}
}

func headerOf(r *kgo.Record, key string) []byte {
	v, _ := header(r, key)
	return v
}
