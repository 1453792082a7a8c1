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
	expiresAt := expiry(s.retention)
	return s.update(ctx, func(w *writer) {
		for i := range alerts {
			a := &alerts[i]
			v := encodeFraudAlert(a)
			w.set(fraudAlertKey([]byte{tagFraudAlert}, a), v, expiresAt)
			if a.UserID != "" {
				w.set(fraudAlertKey(keyPrefix(tagFraudAlertByUser, a.UserID), a), v, expiresAt)
			}
		}
	})
}

// FraudAlerts returns the alerts about events in [from, to), newest first, at most limit
// (all if limit <= 0). Times are kept to the millisecond: to is rounded up to one.
func (s *Store) FraudAlerts(ctx context.Context, from, to time.Time, limit int) ([]model.FraudAlert, error) {
	prefix := []byte{tagFraudAlert}
	seek := newestBefore(prefix, to)
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
	expiresAt := expiry(s.retention)
	return s.update(ctx, func(w *writer) {
		for i := range labels {
			l := &labels[i]
			k := appendStr(binary.BigEndian.AppendUint64([]byte{tagFraudLabel}, invMillis(l.EventTime)), l.OrderID)
			w.set(k, appendStr(appendStr([]byte{valueVersion}, l.UserID), l.Scenario), expiresAt)
		}
	})
}

// FraudLabels returns the labels of orders placed in [from, to), newest first, at most
// limit (all if limit <= 0).
func (s *Store) FraudLabels(ctx context.Context, from, to time.Time, limit int) ([]model.FraudLabel, error) {
	prefix := []byte{tagFraudLabel}
	seek := newestBefore(prefix, to)
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

// newestBefore is where a scan of prefix's rows keyed by inverted event time starts to read
// those before to, newest first. Times are kept to the millisecond: to is rounded up to one.
func newestBefore(prefix []byte, to time.Time) []byte {
	if r := to.Truncate(time.Millisecond); !r.Equal(to) {
		to = r.Add(time.Millisecond)
	}
	return binary.BigEndian.AppendUint64(slices.Clone(prefix), invMillis(to.Add(-time.Millisecond)))
}
