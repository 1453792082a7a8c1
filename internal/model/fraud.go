package model

import "time"

// FraudAlert is one committed decision of the fraud role that reviews or blocks, or one
// transaction-monitoring alert, as the serving store keeps it: by the time of the event it
// is about (newest first; a monitoring alert's minute) and by user. Decision is the
// FraudDecision message (protobuf); the store does not read it. (EventTime, EventID) is the
// key: the same event decided again (a redelivery, a replay after a state reset) replaces
// its row.
type FraudAlert struct {
	EventID   string
	EventTime time.Time
	UserID    string // "" for monitoring alerts
	Decision  []byte
}

// FraudLabel is the ground truth about one order (the simulator's sim-labels topic, or a
// shop's own labels): the order was fraud of the named scenario. The serving store keeps it
// by the order's event time, so the dashboard can hold the alerts of a period against it.
// (EventTime, OrderID) is the key: a redelivered label rewrites its row.
type FraudLabel struct {
	OrderID   string
	EventTime time.Time
	UserID    string
	Scenario  string
}
