package model

import "time"

// FraudAlert is one committed decision of the fraud role that reviews or blocks, or one
// transaction-monitoring alert, as the serving store keeps it: by decision time (newest
// first) and by user. Decision is the FraudDecision message (protobuf); the store does not
// read it. (DecidedAt, EventID) is the key: the same decision written again replaces itself.
type FraudAlert struct {
	EventID   string
	DecidedAt time.Time
	UserID    string // "" for monitoring alerts
	Decision  []byte
}
