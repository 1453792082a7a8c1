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
