package event

import (
	"errors"
	"testing"
	"time"

	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

var now = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

func order(total int64) *pb.Envelope {
	return &pb.Envelope{
		EventId: "0b7c5b1e-4d0e-4f43-9b43-7f0e1c2a9d10", EventTime: timestamppb.New(now.Add(-time.Minute)),
		IngestTime: timestamppb.New(now), SchemaVersion: SchemaVersion, Source: pb.Source_SOURCE_WEB,
		UserId: "u-42", SessionId: "s-7",
		Payload: &pb.Envelope_OrderPlaced{OrderPlaced: &pb.OrderPlaced{
			OrderId: "o-1", Items: []*pb.LineItem{{ProductId: "p-1", CategoryId: "c-1", Quantity: 2, UnitPriceMinor: 1250}},
			Subtotal: &pb.Money{AmountMinor: 2500, Currency: "EUR"}, Total: &pb.Money{AmountMinor: total, Currency: "EUR"},
			PaymentFingerprint: "fp-9", BillingCountry: "DE", ShippingCountry: "DE",
		}},
	}
}

func TestRoundTripKeepsEveryField(t *testing.T) {
	in := order(2899)
	b, err := AppendEncode(nil, in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(in, out) {
		t.Fatalf("round trip changed the envelope:\n in: %v\nout: %v", in, out)
	}
	if KindOf(out) != KindOrderPlaced || TopicOf(KindOf(out)) != TopicTransactions {
		t.Fatalf("kind %s topic %s", KindOf(out), TopicOf(KindOf(out)))
	}
}

// A newer producer may add fields; this build must carry them through unchanged.
func TestUnknownFieldsSurvive(t *testing.T) {
	b, _ := AppendEncode(nil, order(100))
	b = protowire.AppendTag(b, 999, protowire.BytesType)
	b = protowire.AppendString(b, "from the future")
	e, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(e.ProtoReflect().GetUnknown()) == 0 {
		t.Fatal("unknown field dropped on decode")
	}
	again, _ := AppendEncode(nil, e)
	if string(again) != string(b) {
		t.Fatal("unknown field not re-encoded")
	}
}

func TestTopicRouting(t *testing.T) {
	cases := map[Kind]string{
		KindPageView: TopicUserActivity, KindCartAdd: TopicUserActivity, KindCheckoutStarted: TopicUserActivity,
		KindOrderPlaced: TopicTransactions, KindPaymentFailed: TopicTransactions, KindChargeback: TopicTransactions,
	}
	for k, want := range cases {
		if got := TopicOf(k); got != want {
			t.Errorf("TopicOf(%s) = %s, want %s", k, got, want)
		}
	}
}

func TestValidate(t *testing.T) {
	if err := Validate(order(100), now, time.Hour); err != nil {
		t.Fatalf("valid order rejected: %v", err)
	}
	cases := []struct {
		name string
		mod  func(*pb.Envelope)
		want error
	}{
		{"no id", func(e *pb.Envelope) { e.EventId = "" }, ErrMissingField},
		{"no user", func(e *pb.Envelope) { e.UserId = "" }, ErrMissingField},
		{"no time", func(e *pb.Envelope) { e.EventTime = nil }, ErrMissingField},
		{"far future", func(e *pb.Envelope) { e.EventTime = timestamppb.New(now.Add(48 * time.Hour)) }, ErrClockSkew},
		{"ancient", func(e *pb.Envelope) { e.EventTime = timestamppb.New(time.Unix(0, 0)) }, ErrBadTime},
		{"no payload", func(e *pb.Envelope) { e.Payload = nil }, ErrNoPayload},
		{"negative", func(e *pb.Envelope) { e.GetOrderPlaced().Total.AmountMinor = -1 }, ErrNegativeMoney},
	}
	for _, c := range cases {
		e := order(100)
		c.mod(e)
		if err := Validate(e, now, time.Hour); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
}

func TestDecodeRejectsGarbage(t *testing.T) {
	b, _ := AppendEncode(nil, order(100))
	for _, bad := range [][]byte{b[:len(b)/2], {0xff, 0xff, 0xff}, {0x0a, 0x7f}} {
		if _, err := Decode(bad); err == nil {
			t.Errorf("Decode(%x) accepted truncated or invalid input", bad)
		}
	}
}

// FuzzDecode: no input may panic; whatever decodes must re-encode and decode to the same
// message, and validation must give an answer rather than crash.
func FuzzDecode(f *testing.F) {
	b, _ := AppendEncode(nil, order(100))
	f.Add(b)
	f.Add(b[:10])
	f.Add([]byte{})
	f.Add([]byte{0xa2, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := Decode(data)
		if err != nil {
			return
		}
		_ = Validate(e, now, time.Hour)
		_ = KindOf(e)
		again, err := AppendEncode(nil, e)
		if err != nil {
			t.Fatalf("decoded message does not re-encode: %v", err)
		}
		e2, err := Decode(again)
		if err != nil {
			t.Fatalf("re-encoded message does not decode: %v", err)
		}
		if !proto.Equal(e, e2) {
			t.Fatal("decode(encode(decode(x))) differs from decode(x)")
		}
	})
}
