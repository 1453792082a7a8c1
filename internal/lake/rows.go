// Package lake is the raw-event archive: one flattened Parquet schema per stream, the
// partition layout stream=<name>/date=YYYY-MM-DD/hour=HH/, file names that carry the Kafka
// offsets they hold, and retention. Backends (hdfs/, local/) store the files.
package lake

import (
	"time"

	"github.com/bytebasket/bytebasket/internal/event"
	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
)

// Envelope columns shared by both streams. Kafka's topic partition and offset are kept so
// every row can be traced to (and deduplicated by) its record.
//
// Optional columns are pointers (parquet-go writes a zero value as a value, not a null).
// proto3 cannot tell "" from unset, so "" is written as null. Numbers are set only when the
// event's type has the field: a search with 0 results reads 0, a page view's reads null.
//
// Times are UTC microseconds, the finest unit Spark reads from Parquet; nanoseconds of the
// event are truncated.
type envelopeCols struct {
	EventID       string     `parquet:"event_id"`
	EventType     string     `parquet:"event_type"`
	EventTime     time.Time  `parquet:"event_time,timestamp(microsecond)"`
	IngestTime    *time.Time `parquet:"ingest_time,optional,timestamp(microsecond)"` // null when unset
	SchemaVersion int32      `parquet:"schema_version"`
	Platform      string     `parquet:"platform"` // web, ios, android, backend
	UserID        string     `parquet:"user_id"`
	SessionID     *string    `parquet:"session_id,optional"`
	KafkaPart     int32      `parquet:"kafka_partition"`
	KafkaOffset   int64      `parquet:"kafka_offset"`
}

// ActivityRow is one event of the user-activity stream, every payload field flattened.
type ActivityRow struct {
	envelopeCols
	// Context of the client (every activity payload has one).
	DeviceID  *string `parquet:"device_id,optional"`
	IP        *string `parquet:"ip,optional"`
	UserAgent *string `parquet:"user_agent,optional"`
	Referrer  *string `parquet:"referrer,optional"`
	Country   *string `parquet:"country,optional"`

	URL           *string `parquet:"url,optional"`
	PageType      *string `parquet:"page_type,optional"`
	ProductID     *string `parquet:"product_id,optional"`
	CategoryID    *string `parquet:"category_id,optional"`
	PriceMinor    *int64  `parquet:"price_minor,optional"` // product view: list price; cart add: unit price
	Currency      *string `parquet:"currency,optional"`
	Query         *string `parquet:"query,optional"`
	Results       *int32  `parquet:"results,optional"`
	CartID        *string `parquet:"cart_id,optional"`
	Quantity      *int32  `parquet:"quantity,optional"` // cart add and remove
	OldQuantity   *int32  `parquet:"old_quantity,optional"`
	NewQuantity   *int32  `parquet:"new_quantity,optional"`
	ItemCount     *int32  `parquet:"item_count,optional"`
	SubtotalMinor *int64  `parquet:"subtotal_minor,optional"` // checkout started
}

// LineItem is one line of an order.
type LineItem struct {
	ProductID      string `parquet:"product_id"`
	CategoryID     string `parquet:"category_id"`
	Quantity       int32  `parquet:"quantity"`
	UnitPriceMinor int64  `parquet:"unit_price_minor"`
}

// TransactionRow is one event of the transactions stream, every payload field flattened.
// Money of every payload is amount_minor + currency; an order also has its parts.
type TransactionRow struct {
	envelopeCols
	OrderID            *string    `parquet:"order_id,optional"`
	CartID             *string    `parquet:"cart_id,optional"`
	PaymentID          *string    `parquet:"payment_id,optional"`
	RefundID           *string    `parquet:"refund_id,optional"`
	ChargebackID       *string    `parquet:"chargeback_id,optional"`
	AmountMinor        *int64     `parquet:"amount_minor,optional"` // order total, payment, refund or chargeback amount
	Currency           *string    `parquet:"currency,optional"`
	SubtotalMinor      *int64     `parquet:"subtotal_minor,optional"`
	ShippingMinor      *int64     `parquet:"shipping_minor,optional"`
	TaxMinor           *int64     `parquet:"tax_minor,optional"`
	Items              []LineItem `parquet:"items,list"`
	PaymentFingerprint *string    `parquet:"payment_fingerprint,optional"`
	PaymentMethod      *string    `parquet:"payment_method,optional"`
	BillingCountry     *string    `parquet:"billing_country,optional"`
	ShippingCountry    *string    `parquet:"shipping_country,optional"`
	DeviceID           *string    `parquet:"device_id,optional"`
	IP                 *string    `parquet:"ip,optional"`
	Reason             *string    `parquet:"reason,optional"`
}

// Stream names, as in the partition path: the logical topic names.
const (
	StreamActivity     = event.TopicUserActivity
	StreamTransactions = event.TopicTransactions
)

// slab hands out pointers into blocks of values, so optional columns cost no allocation
// each. A block is never reallocated, so earlier pointers stay valid.
type slab[T any] struct{ block []T }

func (s *slab[T]) ptr(v T) *T {
	if len(s.block) == cap(s.block) {
		s.block = make([]T, 0, 4096)
	}
	s.block = append(s.block, v)
	return &s.block[len(s.block)-1]
}

// Flattener turns envelopes into rows; it owns the memory of their optional columns.
type Flattener struct {
	i64 slab[int64]
	i32 slab[int32]
	str slab[string]
	ts  slab[time.Time]
}

// s is an optional string: null for "".
func (f *Flattener) s(v string) *string {
	if v == "" {
		return nil
	}
	return f.str.ptr(v)
}

func (f *Flattener) envelope(e *pb.Envelope, kind event.Kind, part int32, offset int64) envelopeCols {
	c := envelopeCols{
		EventID: e.GetEventId(), EventType: string(kind),
		EventTime:     e.GetEventTime().AsTime().Truncate(time.Microsecond),
		SchemaVersion: int32(e.GetSchemaVersion()), Platform: event.Platform(e.GetSource()),
		UserID: e.GetUserId(), SessionID: f.s(e.GetSessionId()),
		KafkaPart: part, KafkaOffset: offset,
	}
	if e.GetIngestTime() != nil {
		c.IngestTime = f.ts.ptr(e.GetIngestTime().AsTime().Truncate(time.Microsecond))
	}
	return c
}

// Activity flattens a user-activity event.
func (f *Flattener) Activity(e *pb.Envelope, part int32, offset int64) ActivityRow {
	kind := event.KindOf(e)
	r := ActivityRow{envelopeCols: f.envelope(e, kind, part, offset)}
	var ctx *pb.Context
	switch p := e.GetPayload().(type) {
	case *pb.Envelope_PageView:
		ctx = p.PageView.GetContext()
		r.URL, r.PageType = f.s(p.PageView.GetUrl()), f.s(p.PageView.GetPageType())
	case *pb.Envelope_ProductView:
		v := p.ProductView
		ctx = v.GetContext()
		r.ProductID, r.CategoryID, r.Currency = f.s(v.GetProductId()), f.s(v.GetCategoryId()), f.s(v.GetCurrency())
		r.PriceMinor = f.i64.ptr(v.GetPriceMinor())
	case *pb.Envelope_Search:
		ctx = p.Search.GetContext()
		r.Query, r.Results = f.s(p.Search.GetQuery()), f.i32.ptr(int32(p.Search.GetResults()))
	case *pb.Envelope_WishlistAdd:
		ctx, r.ProductID = p.WishlistAdd.GetContext(), f.s(p.WishlistAdd.GetProductId())
	case *pb.Envelope_WishlistRemove:
		ctx, r.ProductID = p.WishlistRemove.GetContext(), f.s(p.WishlistRemove.GetProductId())
	case *pb.Envelope_CartAdd:
		v := p.CartAdd
		ctx = v.GetContext()
		r.CartID, r.ProductID, r.CategoryID, r.Currency = f.s(v.GetCartId()), f.s(v.GetProductId()), f.s(v.GetCategoryId()), f.s(v.GetCurrency())
		r.Quantity, r.PriceMinor = f.i32.ptr(int32(v.GetQuantity())), f.i64.ptr(v.GetUnitPriceMinor())
	case *pb.Envelope_CartRemove:
		v := p.CartRemove
		ctx = v.GetContext()
		r.CartID, r.ProductID, r.Quantity = f.s(v.GetCartId()), f.s(v.GetProductId()), f.i32.ptr(int32(v.GetQuantity()))
	case *pb.Envelope_CartQuantityChange:
		v := p.CartQuantityChange
		ctx = v.GetContext()
		r.CartID, r.ProductID = f.s(v.GetCartId()), f.s(v.GetProductId())
		r.OldQuantity, r.NewQuantity = f.i32.ptr(int32(v.GetOldQuantity())), f.i32.ptr(int32(v.GetNewQuantity()))
	case *pb.Envelope_CheckoutStarted:
		v := p.CheckoutStarted
		ctx = v.GetContext()
		r.CartID, r.Currency = f.s(v.GetCartId()), f.s(v.GetCurrency())
		r.ItemCount, r.SubtotalMinor = f.i32.ptr(int32(v.GetItemCount())), f.i64.ptr(v.GetSubtotalMinor())
	}
	if ctx != nil {
		r.DeviceID, r.IP, r.UserAgent = f.s(ctx.GetDeviceId()), f.s(ctx.GetIp()), f.s(ctx.GetUserAgent())
		r.Referrer, r.Country = f.s(ctx.GetReferrer()), f.s(ctx.GetCountry())
	}
	return r
}

// Transaction flattens a transactions event.
func (f *Flattener) Transaction(e *pb.Envelope, part int32, offset int64) TransactionRow {
	kind := event.KindOf(e)
	r := TransactionRow{envelopeCols: f.envelope(e, kind, part, offset)}
	money := func(m *pb.Money) {
		if m != nil {
			r.AmountMinor, r.Currency = f.i64.ptr(m.GetAmountMinor()), f.s(m.GetCurrency())
		}
	}
	switch p := e.GetPayload().(type) {
	case *pb.Envelope_OrderPlaced:
		o := p.OrderPlaced
		r.OrderID, r.CartID = f.s(o.GetOrderId()), f.s(o.GetCartId())
		money(o.GetTotal())
		if o.GetSubtotal() != nil {
			r.SubtotalMinor = f.i64.ptr(o.GetSubtotal().GetAmountMinor())
		}
		if o.GetShipping() != nil {
			r.ShippingMinor = f.i64.ptr(o.GetShipping().GetAmountMinor())
		}
		if o.GetTax() != nil {
			r.TaxMinor = f.i64.ptr(o.GetTax().GetAmountMinor())
		}
		r.Items = make([]LineItem, len(o.GetItems()))
		for i, it := range o.GetItems() {
			r.Items[i] = LineItem{it.GetProductId(), it.GetCategoryId(), int32(it.GetQuantity()), it.GetUnitPriceMinor()}
		}
		r.PaymentFingerprint, r.PaymentMethod = f.s(o.GetPaymentFingerprint()), f.s(o.GetPaymentMethod())
		r.BillingCountry, r.ShippingCountry = f.s(o.GetBillingCountry()), f.s(o.GetShippingCountry())
		r.DeviceID, r.IP = f.s(o.GetDeviceId()), f.s(o.GetIp())
	case *pb.Envelope_PaymentAuthorized:
		v := p.PaymentAuthorized
		r.OrderID, r.PaymentID, r.PaymentFingerprint = f.s(v.GetOrderId()), f.s(v.GetPaymentId()), f.s(v.GetPaymentFingerprint())
		money(v.GetAmount())
	case *pb.Envelope_PaymentFailed:
		v := p.PaymentFailed
		r.OrderID, r.PaymentID, r.PaymentFingerprint, r.Reason = f.s(v.GetOrderId()), f.s(v.GetPaymentId()), f.s(v.GetPaymentFingerprint()), f.s(v.GetReason())
		money(v.GetAmount())
	case *pb.Envelope_Refund:
		v := p.Refund
		r.OrderID, r.RefundID, r.Reason = f.s(v.GetOrderId()), f.s(v.GetRefundId()), f.s(v.GetReason())
		money(v.GetAmount())
	case *pb.Envelope_Chargeback:
		v := p.Chargeback
		r.OrderID, r.ChargebackID, r.Reason = f.s(v.GetOrderId()), f.s(v.GetChargebackId()), f.s(v.GetReason())
		money(v.GetAmount())
	}
	return r
}
