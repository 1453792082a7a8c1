package fraud

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
)

const quietRules = `
version: 1
rules:
  - name: never
    on: [order_placed]
    group_by: user
    aggregate: count
    window: 1m
    compare: ">"
    limit: 1000
    weight: 1
    action: review
`

// Transaction monitoring: an hour of steady traffic in two segments raises nothing; a minute
// in which one segment's failure rate jumps from 5% to 50%, and later one with five times
// its attempts, each raise one alert naming the segment, the minute and the baseline.
// Payments are attributed to their orders' segment through the user's profile.
func TestMonitoringAlertsOnDepartures(t *testing.T) {
	apply, got, _, _ := stages(t, quietRules)
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	n := 0
	minute := func(m int, method, currency, country string, orders, failEvery int) {
		for i := range orders {
			n++
			at := t0.Add(time.Duration(m)*time.Minute + time.Duration(i)*55*time.Second/time.Duration(orders))
			user := fmt.Sprintf("u%d", n%500)
			id := fmt.Sprintf("o%d", n)
			apply(&pb.Envelope{EventId: "e" + id, EventTime: timestamppb.New(at), UserId: user, Payload: &pb.Envelope_OrderPlaced{OrderPlaced: &pb.OrderPlaced{
				OrderId: id, PaymentMethod: method, BillingCountry: country, Total: &pb.Money{AmountMinor: 5000, Currency: currency}}}})
			pay := &pb.Envelope{EventId: "p" + id, EventTime: timestamppb.New(at.Add(time.Second)), UserId: user}
			amount := &pb.Money{AmountMinor: 5000, Currency: currency}
			if failEvery > 0 && i%failEvery == 0 {
				pay.Payload = &pb.Envelope_PaymentFailed{PaymentFailed: &pb.PaymentFailed{OrderId: id, Amount: amount}}
			} else {
				pay.Payload = &pb.Envelope_PaymentAuthorized{PaymentAuthorized: &pb.PaymentAuthorized{OrderId: id, Amount: amount}}
			}
			apply(pay)
		}
	}
	for m := range 60 {
		minute(m, "card", "USD", "US", 30, 20)  // 5% of attempts fail
		minute(m, "paypal", "EUR", "DE", 25, 0) // none do
	}
	if len(*got) != 0 {
		t.Fatalf("steady traffic raised %d alerts: %v", len(*got), (*got)[0])
	}
	minute(60, "card", "USD", "US", 30, 2) // half fail
	minute(60, "paypal", "EUR", "DE", 25, 0)
	for m := 61; m < 64; m++ {
		minute(m, "card", "USD", "US", 30, 20)
		minute(m, "paypal", "EUR", "DE", 25, 0)
	}
	minute(64, "paypal", "EUR", "DE", 130, 0) // five times the attempts
	for m := 65; m < 68; m++ {
		minute(m, "paypal", "EUR", "DE", 25, 0)
	}
	if len(*got) != 2 {
		t.Fatalf("%d alerts, want 2 (a failure rate and an attempts spike): %v", len(*got), *got)
	}
	fail, spike := (*got)[0], (*got)[1]
	m := fail.GetMonitoring()
	if fail.GetKind() != "monitoring" || fail.GetReasons()[0].GetRule() != "failure-rate" || m.GetPaymentMethod() != "card" ||
		m.GetCurrency() != "USD" || m.GetCountry() != "US" || !m.GetMinute().AsTime().Equal(t0.Add(60*time.Minute)) ||
		m.GetAttempts() != 30 || m.GetFailed() != 15 || m.GetBaselineFailed() <= 0 || m.GetBaselineFailed() >= 3 {
		t.Errorf("failure-rate alert: %v", fail)
	}
	if r := spike.GetReasons(); len(r) != 1 || r[0].GetRule() != "attempts" || r[0].GetValue() != 130 ||
		spike.GetMonitoring().GetPaymentMethod() != "paypal" || !spike.GetMonitoring().GetMinute().AsTime().Equal(t0.Add(64*time.Minute)) {
		t.Errorf("attempts alert: %v", spike)
	}
}
