package cassandra

import (
	"context"
	"fmt"
	"time"

	"github.com/apache/cassandra-gocql-driver/v2"

	"github.com/bytebasket/bytebasket/internal/model"
)

// Fraud alerts (schema/0007_fraud_by_event_time.cql) and labels (schema/0008_fraud_labels.cql).

func (st *Store) prepareFraud(ks string) []string {
	st.insFraudAlert = insert(ks, "fraud_alerts_by_event_day", "day, event_time, event_id, user_id, decision")
	st.insFraudAlertByUser = insert(ks, "fraud_alerts_by_event_user", "user_id, event_time, event_id, decision")
	st.selFraudAlerts = "SELECT event_time, event_id, user_id, decision FROM " + ks + ".fraud_alerts_by_event_day" +
		" WHERE day = ? AND event_time >= ? AND event_time < ? LIMIT ?"
	st.selFraudAlertsByUser = "SELECT event_time, event_id, user_id, decision FROM " + ks + ".fraud_alerts_by_event_user WHERE user_id = ? LIMIT ?"
	st.insFraudLabel = insert(ks, "fraud_labels_by_day", "day, event_time, order_id, user_id, scenario")
	st.selFraudLabels = "SELECT event_time, order_id, user_id, scenario FROM " + ks + ".fraud_labels_by_day" +
		" WHERE day = ? AND event_time >= ? AND event_time < ? LIMIT ?"
	return []string{st.insFraudAlert, st.insFraudAlertByUser, st.selFraudAlerts, st.selFraudAlertsByUser, st.insFraudLabel, st.selFraudLabels}
}

// WriteFraudAlerts upserts alerts (by day, and by user for those about a user).
func (st *Store) WriteFraudAlerts(ctx context.Context, alerts []model.FraudAlert) error {
	rows := make([]row, 0, 2*len(alerts))
	for i := range alerts {
		a := &alerts[i]
		rows = append(rows, row{"fraud alert " + a.EventID, st.insFraudAlert, []any{utcDay(a.EventTime), a.EventTime, a.EventID, a.UserID, a.Decision}})
		if a.UserID != "" {
			rows = append(rows, row{"fraud alert of " + a.UserID, st.insFraudAlertByUser, []any{a.UserID, a.EventTime, a.EventID, a.Decision}})
		}
	}
	return st.writeAll(ctx, rows, 0, 0)
}

// FraudAlerts returns the alerts about events in [from, to), newest first, at most limit (all if
// limit <= 0): one query per UTC day, newest day first.
func (st *Store) FraudAlerts(ctx context.Context, from, to time.Time, limit int) ([]model.FraudAlert, error) {
	out, err := readDays(ctx, st, st.selFraudAlerts, nil, from, to, limit, scanFraudAlert)
	if err != nil {
		return nil, fmt.Errorf("cassandra: fraud alerts: %w", err)
	}
	return out, nil
}

// FraudAlertsByUser returns the user's alerts, newest first, at most limit (all if <= 0).
func (st *Store) FraudAlertsByUser(ctx context.Context, userID string, limit int) ([]model.FraudAlert, error) {
	if userID == "" { // monitoring alerts are about no user, and are not kept by user
		return nil, nil
	}
	if limit <= 0 {
		limit = 1 << 30
	}
	out, err := readAll(ctx, st.query(st.selFraudAlertsByUser, userID, limit), nil, scanFraudAlert)
	if err != nil {
		return nil, fmt.Errorf("cassandra: fraud alerts of %q: %w", userID, err)
	}
	return out, nil
}

func scanFraudAlert(sc gocql.Scanner) (model.FraudAlert, error) {
	var a model.FraudAlert
	err := sc.Scan(&a.EventTime, &a.EventID, &a.UserID, &a.Decision)
	a.EventTime = a.EventTime.UTC()
	return a, err
}

// WriteFraudLabels upserts labels by the UTC day of their order.
func (st *Store) WriteFraudLabels(ctx context.Context, labels []model.FraudLabel) error {
	rows := make([]row, 0, len(labels))
	for i := range labels {
		l := &labels[i]
		rows = append(rows, row{"fraud label " + l.OrderID, st.insFraudLabel, []any{utcDay(l.EventTime), l.EventTime, l.OrderID, l.UserID, l.Scenario}})
	}
	return st.writeAll(ctx, rows, 0, 0)
}

// FraudLabels returns the labels of orders placed in [from, to), newest first, at most
// limit (all if limit <= 0): one query per UTC day, newest day first.
func (st *Store) FraudLabels(ctx context.Context, from, to time.Time, limit int) ([]model.FraudLabel, error) {
	out, err := readDays(ctx, st, st.selFraudLabels, nil, from, to, limit, scanFraudLabel)
	if err != nil {
		return nil, fmt.Errorf("cassandra: fraud labels: %w", err)
	}
	return out, nil
}

func scanFraudLabel(sc gocql.Scanner) (model.FraudLabel, error) {
	var l model.FraudLabel
	err := sc.Scan(&l.EventTime, &l.OrderID, &l.UserID, &l.Scenario)
	l.EventTime = l.EventTime.UTC()
	return l, err
}
