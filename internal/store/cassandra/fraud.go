package cassandra

import (
	"context"
	"fmt"
	"time"

	"github.com/apache/cassandra-gocql-driver/v2"

	"github.com/bytebasket/bytebasket/internal/model"
)

// Fraud alerts (schema/0006_fraud.cql).

func (st *Store) prepareFraud(ks string) []string {
	st.insFraudAlert = insert(ks, "fraud_alerts_by_day", "day, decided_at, event_id, user_id, decision")
	st.insFraudAlertByUser = insert(ks, "fraud_alerts_by_user", "user_id, decided_at, event_id, decision")
	st.selFraudAlerts = "SELECT decided_at, event_id, user_id, decision FROM " + ks + ".fraud_alerts_by_day" +
		" WHERE day = ? AND decided_at >= ? AND decided_at < ? LIMIT ?"
	st.selFraudAlertsByUser = "SELECT decided_at, event_id, user_id, decision FROM " + ks + ".fraud_alerts_by_user WHERE user_id = ? LIMIT ?"
	return []string{st.insFraudAlert, st.insFraudAlertByUser, st.selFraudAlerts, st.selFraudAlertsByUser}
}

// WriteFraudAlerts upserts alerts (by day, and by user for those about a user).
func (st *Store) WriteFraudAlerts(ctx context.Context, alerts []model.FraudAlert) error {
	rows := make([]row, 0, 2*len(alerts))
	for i := range alerts {
		a := &alerts[i]
		rows = append(rows, row{"fraud alert " + a.EventID, st.insFraudAlert, []any{utcDay(a.DecidedAt), a.DecidedAt, a.EventID, a.UserID, a.Decision}})
		if a.UserID != "" {
			rows = append(rows, row{"fraud alert of " + a.UserID, st.insFraudAlertByUser, []any{a.UserID, a.DecidedAt, a.EventID, a.Decision}})
		}
	}
	return st.writeAll(ctx, rows, 0, 0)
}

// FraudAlerts returns the alerts decided in [from, to), newest first, at most limit (all if
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
	err := sc.Scan(&a.DecidedAt, &a.EventID, &a.UserID, &a.Decision)
	a.DecidedAt = a.DecidedAt.UTC()
	return a, err
}
