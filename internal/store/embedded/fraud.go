package embedded

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"github.com/bytebasket/bytebasket/internal/model"
)

// Fraud alerts (model.FraudAlert), twice: by time and by user (tags in codec.go).

// WriteFraudAlerts upserts alerts, living retention.
func (s *Store) WriteFraudAlerts(ctx context.Context, alerts []model.FraudAlert) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	expiresAt := expiry(s.retention)
	w := &writer{s: s, ctx: ctx, txn: s.db.NewTransaction(true)}
	defer func() { w.txn.Discard() }()
	for i := range alerts {
		a := &alerts[i]
		v := encodeFraudAlert(a)
		w.set(fraudAlertKey([]byte{tagFraudAlert}, a), v, expiresAt)
		if a.UserID != "" {
			w.set(fraudAlertKey(keyPrefix(tagFraudAlertByUser, a.UserID), a), v, expiresAt)
		}
	}
	if w.err != nil {
		return w.err
	}
	if err := w.txn.Commit(); err != nil {
		return fmt.Errorf("embedded: commit: %w", err)
	}
	return nil
}

// FraudAlerts returns the alerts about events in [from, to), newest first, at most limit
// (all if limit <= 0). Times are kept to the millisecond: to is rounded up to one.
func (s *Store) FraudAlerts(ctx context.Context, from, to time.Time, limit int) ([]model.FraudAlert, error) {
	prefix := []byte{tagFraudAlert}
	if r := to.Truncate(time.Millisecond); !r.Equal(to) {
		to = r.Add(time.Millisecond)
	}
	seek := binary.BigEndian.AppendUint64(slices.Clone(prefix), invMillis(to.Add(-time.Millisecond)))
	return s.fraudAlerts(ctx, prefix, seek, from, limit)
}

// FraudAlertsByUser returns the user's alerts, newest first, at most limit (all if <= 0).
func (s *Store) FraudAlertsByUser(ctx context.Context, userID string, limit int) ([]model.FraudAlert, error) {
	prefix := keyPrefix(tagFraudAlertByUser, userID)
	return s.fraudAlerts(ctx, prefix, prefix, time.Time{}, limit)
}

func (s *Store) fraudAlerts(ctx context.Context, prefix, seek []byte, from time.Time, limit int) ([]model.FraudAlert, error) {
	var out []model.FraudAlert
	err := s.scan(ctx, prefix, seek, limit, func(k, v []byte) (bool, error) {
		a, err := decodeFraudAlert(k[len(prefix):], v)
		if err != nil || a.EventTime.Before(from) {
			return false, err
		}
		out = append(out, a)
		return limit <= 0 || len(out) < limit, nil
	})
	if err != nil {
		return nil, fmt.Errorf("embedded: fraud alerts: %w", err)
	}
	return out, nil
}

func fraudAlertKey(prefix []byte, a *model.FraudAlert) []byte {
	k := binary.BigEndian.AppendUint64(slices.Clone(prefix), invMillis(a.EventTime))
	return appendStr(k, a.EventID)
}

func encodeFraudAlert(a *model.FraudAlert) []byte {
	b := make([]byte, 0, 1+len(a.UserID)+len(a.Decision)+2*binary.MaxVarintLen64)
	b = append(b, valueVersion)
	b = appendStr(b, a.UserID)
	b = binary.AppendUvarint(b, uint64(len(a.Decision)))
	return append(b, a.Decision...)
}

// decodeFraudAlert reads an alert from its key after the prefix (time, event id) and value.
func decodeFraudAlert(key, val []byte) (model.FraudAlert, error) {
	kd := dec{b: key}
	a := model.FraudAlert{EventTime: kd.invTime(), EventID: kd.str()}
	if err := kd.done(); err != nil {
		return a, err
	}
	d := dec{b: val}
	d.version()
	a.UserID = d.str()
	a.Decision = slices.Clone(d.bytes())
	return a, d.done()
}

// WriteFraudLabels upserts labels, living retention.
func (s *Store) WriteFraudLabels(ctx context.Context, labels []model.FraudLabel) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	expiresAt := expiry(s.retention)
	w := &writer{s: s, ctx: ctx, txn: s.db.NewTransaction(true)}
	defer func() { w.txn.Discard() }()
	for i := range labels {
		l := &labels[i]
		k := appendStr(binary.BigEndian.AppendUint64([]byte{tagFraudLabel}, invMillis(l.EventTime)), l.OrderID)
		w.set(k, appendStr(appendStr([]byte{valueVersion}, l.UserID), l.Scenario), expiresAt)
	}
	if w.err != nil {
		return w.err
	}
	if err := w.txn.Commit(); err != nil {
		return fmt.Errorf("embedded: commit: %w", err)
	}
	return nil
}

// FraudLabels returns the labels of orders placed in [from, to), newest first, at most
// limit (all if limit <= 0).
func (s *Store) FraudLabels(ctx context.Context, from, to time.Time, limit int) ([]model.FraudLabel, error) {
	prefix := []byte{tagFraudLabel}
	if r := to.Truncate(time.Millisecond); !r.Equal(to) {
		to = r.Add(time.Millisecond)
	}
	seek := binary.BigEndian.AppendUint64(slices.Clone(prefix), invMillis(to.Add(-time.Millisecond)))
	var out []model.FraudLabel
	err := s.scan(ctx, prefix, seek, limit, func(k, v []byte) (bool, error) {
		kd := dec{b: k[len(prefix):]}
		l := model.FraudLabel{EventTime: kd.invTime(), OrderID: kd.str()}
		if err := kd.done(); err != nil || l.EventTime.Before(from) {
			return false, err
		}
		d := dec{b: v}
		d.version()
		l.UserID, l.Scenario = d.str(), d.str()
		if err := d.done(); err != nil {
			return false, err
		}
		out = append(out, l)
		return limit <= 0 || len(out) < limit, nil
	})
	if err != nil {
		return nil, fmt.Errorf("embedded: fraud labels: %w", err)
	}
	return out, nil
}
