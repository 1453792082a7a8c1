// Package event holds the helpers around the protobuf Envelope: which topic a payload
// belongs to, its kind name, validation and decoding with clear errors.
package event

import (
	"errors"
	"fmt"
	"time"

	"github.com/cespare/xxhash/v2"

	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
	"google.golang.org/protobuf/proto"
)

// SchemaVersion is the Envelope.schema_version this build writes.
const SchemaVersion = 1

// Topic names. Each holds one family of payloads.
const (
	TopicUserActivity = "user-activity"
	TopicTransactions = "transactions"
	// TopicSimLabels is the simulator's ground truth side channel; never read by detectors.
	TopicSimLabels = "sim-labels"
	// TopicDeadLetters holds records a consumer could not process, with the reason in headers.
	TopicDeadLetters = "dead-letters"
	// TopicFraudAlerts holds the fraud role's review and block decisions (FraudDecision),
	// written in transactions: read it with read_committed.
	TopicFraudAlerts = "fraud-alerts"
	// TopicFraudRules holds the fraud rule sets in force (compacted, one partition): every
	// fraud instance follows it and switches to a newer version without a restart.
	TopicFraudRules = "fraud-rules"
	// TopicFraudRepartition is internal to the fraud role: events re-keyed by card
	// fingerprint, device or IP for the rules grouped by them, with the decision so far.
	TopicFraudRepartition = "fraud-repartition"
)

// Topics are the topics every event lands in.
var Topics = []string{TopicUserActivity, TopicTransactions}

// Platforms are the named sources, as metrics, the lake and the API name them.
var Platforms = []string{"web", "ios", "android", "backend"}

// Platform names an envelope's source: one of Platforms, or "unspecified".
func Platform(s pb.Source) string {
	switch s {
	case pb.Source_SOURCE_WEB:
		return "web"
	case pb.Source_SOURCE_IOS:
		return "ios"
	case pb.Source_SOURCE_ANDROID:
		return "android"
	case pb.Source_SOURCE_BACKEND:
		return "backend"
	}
	return "unspecified"
}

// Kind names an envelope's payload type, as used in metrics and the dead-letter reason.
type Kind string

// The payload kinds.
const (
	KindUnknown            Kind = "unknown"
	KindPageView           Kind = "page_view"
	KindProductView        Kind = "product_view"
	KindSearch             Kind = "search"
	KindWishlistAdd        Kind = "wishlist_add"
	KindWishlistRemove     Kind = "wishlist_remove"
	KindCartAdd            Kind = "cart_add"
	KindCartRemove         Kind = "cart_remove"
	KindCartQuantityChange Kind = "cart_quantity_change"
	KindCheckoutStarted    Kind = "checkout_started"
	KindOrderPlaced        Kind = "order_placed"
	KindPaymentAuthorized  Kind = "payment_authorized"
	KindPaymentFailed      Kind = "payment_failed"
	KindRefund             Kind = "refund"
	KindChargeback         Kind = "chargeback"
)

// KindOf returns the kind of e's payload, KindUnknown when it has none this build knows.
func KindOf(e *pb.Envelope) Kind {
	switch e.GetPayload().(type) {
	case *pb.Envelope_PageView:
		return KindPageView
	case *pb.Envelope_ProductView:
		return KindProductView
	case *pb.Envelope_Search:
		return KindSearch
	case *pb.Envelope_WishlistAdd:
		return KindWishlistAdd
	case *pb.Envelope_WishlistRemove:
		return KindWishlistRemove
	case *pb.Envelope_CartAdd:
		return KindCartAdd
	case *pb.Envelope_CartRemove:
		return KindCartRemove
	case *pb.Envelope_CartQuantityChange:
		return KindCartQuantityChange
	case *pb.Envelope_CheckoutStarted:
		return KindCheckoutStarted
	case *pb.Envelope_OrderPlaced:
		return KindOrderPlaced
	case *pb.Envelope_PaymentAuthorized:
		return KindPaymentAuthorized
	case *pb.Envelope_PaymentFailed:
		return KindPaymentFailed
	case *pb.Envelope_Refund:
		return KindRefund
	case *pb.Envelope_Chargeback:
		return KindChargeback
	default:
		return KindUnknown
	}
}

// TopicOf returns the topic a payload kind is written to: orders and payments go to
// transactions, everything else a shopper does to user-activity.
func TopicOf(k Kind) string {
	switch k {
	case KindOrderPlaced, KindPaymentAuthorized, KindPaymentFailed, KindRefund, KindChargeback:
		return TopicTransactions
	default:
		return TopicUserActivity
	}
}

// Errors returned by Validate; wrapped with the offending detail.
var (
	ErrNoPayload    = errors.New("no known payload")
	ErrMissingField = errors.New("missing required field")
	ErrBadTime      = errors.New("event time out of range")
	// ErrClockSkew: the event time is further ahead of when Kafka (or this process) got the
	// record than clocks can disagree; the client's clock is wrong.
	ErrClockSkew     = errors.New("event time ahead of its record's timestamp")
	ErrNegativeMoney = errors.New("negative amount")
)

// Validate checks what every consumer relies on: ids, a known payload, a sane event time
// (not before 2000, not more than maxSkew after bound) and non-negative money. Consumers
// pass as bound the earlier of the record's Kafka timestamp and their clock: an event cannot
// have happened after it reached Kafka, so a time further ahead is a client's wrong clock.
func Validate(e *pb.Envelope, bound time.Time, maxSkew time.Duration) error {
	if e.GetEventId() == "" {
		return fmt.Errorf("%w: event_id", ErrMissingField)
	}
	if e.GetUserId() == "" {
		return fmt.Errorf("%w: user_id", ErrMissingField)
	}
	if e.GetEventTime() == nil {
		return fmt.Errorf("%w: event_time", ErrMissingField)
	}
	if err := e.GetEventTime().CheckValid(); err != nil {
		return fmt.Errorf("%w: %v", ErrBadTime, err)
	}
	t := e.GetEventTime().AsTime()
	if t.Year() < 2000 {
		return fmt.Errorf("%w: %s is before 2000", ErrBadTime, t.Format(time.RFC3339))
	}
	if t.After(bound.Add(maxSkew)) {
		return fmt.Errorf("%w: %s is more than %s after %s", ErrClockSkew, t.Format(time.RFC3339Nano), maxSkew, bound.UTC().Format(time.RFC3339Nano))
	}
	if KindOf(e) == KindUnknown {
		return ErrNoPayload
	}
	for _, m := range moneyOf(e) {
		if m.GetAmountMinor() < 0 {
			return fmt.Errorf("%w: %d %s", ErrNegativeMoney, m.GetAmountMinor(), m.GetCurrency())
		}
	}
	return nil
}

func moneyOf(e *pb.Envelope) []*pb.Money {
	switch p := e.GetPayload().(type) {
	case *pb.Envelope_OrderPlaced:
		o := p.OrderPlaced
		return []*pb.Money{o.GetSubtotal(), o.GetShipping(), o.GetTax(), o.GetTotal()}
	case *pb.Envelope_PaymentAuthorized:
		return []*pb.Money{p.PaymentAuthorized.GetAmount()}
	case *pb.Envelope_PaymentFailed:
		return []*pb.Money{p.PaymentFailed.GetAmount()}
	case *pb.Envelope_Refund:
		return []*pb.Money{p.Refund.GetAmount()}
	case *pb.Envelope_Chargeback:
		return []*pb.Money{p.Chargeback.GetAmount()}
	}
	return nil
}

// Fingerprint is the 64-bit hash that stands for an id (an event id, a user id) in state:
// eight bytes instead of a string, and the same in every process and version. Two of n ids
// share one with probability about n²/2^65 (n = 10^6: 3·10^-8).
func Fingerprint(id string) uint64 { return xxhash.Sum64String(id) }

// Decode parses one Kafka record value. Unknown fields are kept (proto3 default), so a
// newer producer's additions survive a round trip through this build.
func Decode(b []byte) (*pb.Envelope, error) {
	e := &pb.Envelope{}
	if err := proto.Unmarshal(b, e); err != nil {
		return nil, fmt.Errorf("decode envelope (%d bytes): %w", len(b), err)
	}
	return e, nil
}

// AppendEncode appends e's wire form to buf; reusing buf keeps the hot path allocation-free.
func AppendEncode(buf []byte, e *pb.Envelope) ([]byte, error) {
	out, err := proto.MarshalOptions{}.MarshalAppend(buf, e)
	if err != nil {
		return buf, fmt.Errorf("encode envelope %s: %w", e.GetEventId(), err)
	}
	return out, nil
}
