package cassandra

import (
	"context"
	"fmt"
	"time"

	"github.com/apache/cassandra-gocql-driver/v2"

	"github.com/bytebasket/bytebasket/internal/model"
)

// Fraud alerts (schema/0007_fraud_by_event_time.cql).

func (st *Store) prepareFraud(ks string) []string {
	st.insFraudAlert = insert(ks, "fraud_alerts_by_event_day", "day, event_time, event_id, user_id, decision")
	st.insFraudAlertByUser = insert(ks, "fraud_alerts_by_event_user", "user_id, event_time, event_id, decision")
	st.selFraudAlerts = "SELECT event_time, event_id, user_id, decision FROM " + ks + ".fraud_alerts_by_event_day" +
		" WHERE day = ? AND event_time >= ? AND event_time < ? LIMIT ?"
	st.selFraudAlertsByUser = "SELECT event_time, event_id, user_id, decision FROM " + ks + ".fraud_alerts_by_event_user WHERE user_id = ? LIMIT ?"
	return []string{st.insFraudAlert, st.insFraudAlertByUser, st.selFraudAlerts, st.selFraudAlertsByUser}
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
	from, to = ceilMillis(from), ceilMillis(to)
	var out []model.FraudAlert
	for day := utcDay(to.Add(-time.Millisecond)); !day.Before(utcDay(from)) && from.Before(to); day = day.Add(-24 * time.Hour) {
		n := 1 << 30
		if limit > 0 {
			if n = limit - len(out); n <= 0 {
				break
			}
		}
		var err error
		if out, err = readAll(ctx, st.query(st.selFraudAlerts, day, from, to, n), out, scanFraudAlert); err != nil {
			return nil, fmt.Errorf("cassandra: fraud alerts of %s: %w", day.Format(time.DateOnly), err)
		}
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
