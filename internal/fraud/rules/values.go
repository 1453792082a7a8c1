package rules

import (
	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
)

// Of is the attribute a of e, and whether e carries it (rules skip, and the role dead-letters
// when a rule that needs it is fed, an event without it).
func Of(e *pb.Envelope, a Attribute) (string, bool) {
	var v string
	switch a {
	case User:
		v = e.GetUserId()
	case Card:
		switch {
		case e.GetOrderPlaced() != nil:
			v = e.GetOrderPlaced().GetPaymentFingerprint()
		case e.GetPaymentAuthorized() != nil:
			v = e.GetPaymentAuthorized().GetPaymentFingerprint()
		case e.GetPaymentFailed() != nil:
			v = e.GetPaymentFailed().GetPaymentFingerprint()
		}
	case Device:
		if v = e.GetOrderPlaced().GetDeviceId(); v == "" {
			v = clientContext(e).GetDeviceId()
		}
	case IP:
		if v = e.GetOrderPlaced().GetIp(); v == "" {
			v = clientContext(e).GetIp()
		}
	case Country:
		v = clientContext(e).GetCountry()
	}
	return v, v != ""
}

// AmountOf is the money an event carries: an order's total, a payment's, refund's or
// chargeback's amount.
func AmountOf(e *pb.Envelope) (*pb.Money, bool) {
	var m *pb.Money
	switch p := e.GetPayload().(type) {
	case *pb.Envelope_OrderPlaced:
		m = p.OrderPlaced.GetTotal()
	case *pb.Envelope_PaymentAuthorized:
		m = p.PaymentAuthorized.GetAmount()
	case *pb.Envelope_PaymentFailed:
		m = p.PaymentFailed.GetAmount()
	case *pb.Envelope_Refund:
		m = p.Refund.GetAmount()
	case *pb.Envelope_Chargeback:
		m = p.Chargeback.GetAmount()
	}
	return m, m.GetCurrency() != ""
}

// OrderIDOf is the order an event is about: an order's own id, or the order a payment,
// refund or chargeback belongs to ("" for shopper events).
func OrderIDOf(e *pb.Envelope) string {
	switch p := e.GetPayload().(type) {
	case *pb.Envelope_OrderPlaced:
		return p.OrderPlaced.GetOrderId()
	case *pb.Envelope_PaymentAuthorized:
		return p.PaymentAuthorized.GetOrderId()
	case *pb.Envelope_PaymentFailed:
		return p.PaymentFailed.GetOrderId()
	case *pb.Envelope_Refund:
		return p.Refund.GetOrderId()
	case *pb.Envelope_Chargeback:
		return p.Chargeback.GetOrderId()
	}
	return ""
}

// clientContext is the client context of a shopper event (nil for server events).
func clientContext(e *pb.Envelope) *pb.Context {
	switch p := e.GetPayload().(type) {
	case *pb.Envelope_PageView:
		return p.PageView.GetContext()
	case *pb.Envelope_ProductView:
		return p.ProductView.GetContext()
	case *pb.Envelope_Search:
		return p.Search.GetContext()
	case *pb.Envelope_WishlistAdd:
		return p.WishlistAdd.GetContext()
	case *pb.Envelope_WishlistRemove:
		return p.WishlistRemove.GetContext()
	case *pb.Envelope_CartAdd:
		return p.CartAdd.GetContext()
	case *pb.Envelope_CartRemove:
		return p.CartRemove.GetContext()
	case *pb.Envelope_CartQuantityChange:
		return p.CartQuantityChange.GetContext()
	case *pb.Envelope_CheckoutStarted:
		return p.CheckoutStarted.GetContext()
	}
	return nil
}
