package embedded

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/bytebasket/bytebasket/internal/model"
)

// Key layout. One leading byte names the table; strings are uvarint-length-prefixed so a
// prefix of one value never matches a longer one ("ab" vs "abc"); times are milliseconds
// mapped to big-endian inverted uint64, so a forward scan in key order is newest first.
//
//	window_metrics:     'w' g start^ platform partition
//	top_items:          't' g start^ dimension partition
//	sessions_by_user:   's' user start^ session_id
//	session_windows:    'x' g start^ platform partition
//	state_heads:        'o' group partition              (epoch, head)
//	state_log:          'l' group partition epoch seq chunk  (chunks, data)
//	trend_metrics:      'h' g start^ platform
//	trend_tops:         'k' g start^ dimension platform
//	tx_feeds:           'f' kind partition
//	fraud_alerts_by_event_day: 'a' event_time^ event_id     (user, decision)
//	fraud_alerts_by_event_user: 'u' user event_time^ event_id (user, decision)
const (
	tagWindow           byte = 'w'
	tagTop              byte = 't'
	tagSession          byte = 's'
	tagSessionWindow    byte = 'x'
	tagOldCheckpoint    byte = 'c' // whole-state checkpoints of earlier versions, dropped on open
	tagStateHead        byte = 'o'
	tagStateLog         byte = 'l'
	tagTrend            byte = 'h'
	tagTrendTop         byte = 'k'
	tagTxFeed           byte = 'f'
	tagFraudAlert       byte = 'a'
	tagFraudAlertByUser byte = 'u'
	tagFraudLabel       byte = 'g' // ground truth: fraud labels by order time
)

// valueVersion leads every value so the encoding can evolve without a migration.
const valueVersion byte = 1

// sessionVersion 2 appends the recent events; version 1 values (written before them) still
// decode, without recent events.
const sessionVersion byte = 2

var errCorrupt = errors.New("embedded: corrupt record")

// invMillis maps t (truncated to ms) to a uint64 that sorts newest first: flipping the sign
// bit orders int64 as uint64, complementing reverses the order.
func invMillis(t time.Time) uint64 { return ^(uint64(t.UnixMilli()) ^ 1<<63) }

func fromInvMillis(u uint64) time.Time { return time.UnixMilli(int64(^u ^ 1<<63)).UTC() }

// sortableInt32 orders partitions numerically in key order.
func sortableInt32(v int32) uint32 { return uint32(v) ^ 1<<31 }

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// keyPrefix is tag + one string: the scan prefix of a granularity or a user.
func keyPrefix(tag byte, s string) []byte {
	return appendStr(append(make([]byte, 0, 2+len(s)+8+24), tag), s)
}

func windowKey(tag byte, k model.WindowKey) []byte {
	b := keyPrefix(tag, string(k.Granularity))
	b = binary.BigEndian.AppendUint64(b, invMillis(k.Start))
	b = appendStr(b, k.Platform)
	return binary.BigEndian.AppendUint32(b, sortableInt32(k.Partition))
}

func topPrefix(g model.Granularity, start time.Time, dim model.TopDimension) []byte {
	b := keyPrefix(tagTop, string(g))
	b = binary.BigEndian.AppendUint64(b, invMillis(start))
	return appendStr(b, string(dim))
}

func topKey(t *model.TopItems) []byte {
	return binary.BigEndian.AppendUint32(topPrefix(t.Granularity, t.Start, t.Dimension), sortableInt32(t.Partition))
}

func sessionKey(s *model.Session) []byte {
	b := keyPrefix(tagSession, s.UserID)
	b = binary.BigEndian.AppendUint64(b, invMillis(s.Start))
	return appendStr(b, s.SessionID)
}

func stateHeadKey(group string, partition int32) []byte {
	return binary.BigEndian.AppendUint32(keyPrefix(tagStateHead, group), sortableInt32(partition))
}

func stateLogPrefix(group string, partition int32) []byte {
	return binary.BigEndian.AppendUint32(keyPrefix(tagStateLog, group), sortableInt32(partition))
}

// stateLogKey orders a partition's log by epoch, seq and chunk (all non-negative).
func stateLogKey(group string, partition int32, epoch, seq int64, chunk int32) []byte {
	b := binary.BigEndian.AppendUint64(stateLogPrefix(group, partition), uint64(epoch))
	b = binary.BigEndian.AppendUint64(b, uint64(seq))
	return binary.BigEndian.AppendUint32(b, uint32(chunk))
}

// dec reads keys and values; the first error sticks so callers check once at the end.
type dec struct {
	b   []byte
	err error
}

func (d *dec) fail() {
	if d.err == nil {
		d.err = errCorrupt
	}
	d.b = nil
}

func (d *dec) byte() byte {
	if len(d.b) < 1 {
		d.fail()
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *dec) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) bytes() []byte {
	n := d.uvarint()
	if uint64(len(d.b)) < n {
		d.fail()
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *dec) str() string { return string(d.bytes()) }

func (d *dec) u64() uint64 {
	if len(d.b) < 8 {
		d.fail()
		return 0
	}
	v := binary.BigEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *dec) i32() int32 {
	if len(d.b) < 4 {
		d.fail()
		return 0
	}
	v := binary.BigEndian.Uint32(d.b)
	d.b = d.b[4:]
	return int32(v ^ 1<<31)
}

func (d *dec) invTime() time.Time { return fromInvMillis(d.u64()) }

func (d *dec) time() time.Time { return time.UnixMilli(d.varint()).UTC() }

// counts reads a map; an empty map reads back as nil.
func (d *dec) counts() map[string]int64 {
	n := d.uvarint()
	if n == 0 || n > uint64(len(d.b)) { // each entry takes at least 2 bytes: a bound on n
		if n != 0 {
			d.fail()
		}
		return nil
	}
	m := make(map[string]int64, n)
	for range n {
		k := d.str()
		m[k] = d.varint()
	}
	return m
}

// version checks the leading value version byte.
func (d *dec) version() { d.versionUpTo(valueVersion) }

// versionUpTo accepts versions 1..newest and returns the one read.
func (d *dec) versionUpTo(newest byte) byte {
	v := d.byte()
	if (v < 1 || v > newest) && d.err == nil {
		d.err = fmt.Errorf("embedded: unknown value version %d", v)
	}
	return v
}

// count reads a list length, bounded by the bytes left: each element takes at least least.
func (d *dec) count(least uint64) uint64 {
	n := d.uvarint()
	if n > uint64(len(d.b))/least {
		d.fail()
		return 0
	}
	return n
}

// done reports the sticky error, or trailing garbage.
func (d *dec) done() error {
	if d.err == nil && len(d.b) != 0 {
		d.err = errCorrupt
	}
	return d.err
}

func appendTime(b []byte, t time.Time) []byte { return binary.AppendVarint(b, t.UnixMilli()) }

// appendCounts writes a map in key order, so equal maps encode to equal bytes.
func appendCounts(b []byte, m map[string]int64) []byte {
	b = binary.AppendUvarint(b, uint64(len(m)))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		b = appendStr(b, k)
		b = binary.AppendVarint(b, m[k])
	}
	return b
}

func countsSize(m map[string]int64) int {
	n := binary.MaxVarintLen64
	for k := range m {
		n += len(k) + 2*binary.MaxVarintLen64
	}
	return n
}

func appendInts(b []byte, vs ...int64) []byte {
	for _, v := range vs {
		b = binary.AppendVarint(b, v)
	}
	return b
}

func encodeWindow(w *model.WindowMetrics) []byte {
	b := make([]byte, 0, 1+16*10+countsSize(w.Revenue)+countsSize(w.OrdersByCurrency))
	b = append(b, valueVersion)
	b = appendInts(b, w.PageViews, w.ProductViews, w.Searches, w.CartAdds, w.Checkouts, w.Orders,
		w.PaymentsFailed, w.Refunds, w.Chargebacks)
	b = appendCounts(b, w.Revenue)
	b = appendCounts(b, w.OrdersByCurrency)
	b = appendInts(b, w.ActiveUsers, w.FunnelViewers, w.FunnelCarters, w.FunnelCheckout, w.FunnelBuyers)
	return appendTime(b, w.UpdatedAt)
}

// decodeWindowKey reads what follows the tag of a window_metrics or session_windows key.
func decodeWindowKey(d *dec) model.WindowKey {
	d.byte() // tag
	var k model.WindowKey
	k.Granularity = model.Granularity(d.str())
	k.Start = d.invTime()
	k.Platform = d.str()
	k.Partition = d.i32()
	return k
}

func decodeWindow(key, val []byte) (model.WindowMetrics, error) {
	kd := dec{b: key}
	w := model.WindowMetrics{Key: decodeWindowKey(&kd)}
	if err := kd.done(); err != nil {
		return w, err
	}
	d := dec{b: val}
	d.version()
	w.PageViews, w.ProductViews, w.Searches = d.varint(), d.varint(), d.varint()
	w.CartAdds, w.Checkouts, w.Orders = d.varint(), d.varint(), d.varint()
	w.PaymentsFailed, w.Refunds, w.Chargebacks = d.varint(), d.varint(), d.varint()
	w.Revenue = d.counts()
	w.OrdersByCurrency = d.counts()
	w.ActiveUsers, w.FunnelViewers, w.FunnelCarters = d.varint(), d.varint(), d.varint()
	w.FunnelCheckout, w.FunnelBuyers = d.varint(), d.varint()
	w.UpdatedAt = d.time()
	return w, d.done()
}

func encodeTop(t *model.TopItems) []byte {
	b := make([]byte, 0, 1+countsSize(t.Counts))
	return appendCounts(append(b, valueVersion), t.Counts)
}

func decodeTop(key, val []byte) (model.TopItems, error) {
	kd := dec{b: key}
	kd.byte()
	t := model.TopItems{
		Granularity: model.Granularity(kd.str()),
		Start:       kd.invTime(),
		Dimension:   model.TopDimension(kd.str()),
		Partition:   kd.i32(),
	}
	if err := kd.done(); err != nil {
		return t, err
	}
	d := dec{b: val}
	d.version()
	t.Counts = d.counts()
	return t, d.done()
}

func encodeSession(s *model.Session) []byte {
	b := make([]byte, 0, 1+len(s.Platform)+len(s.Outcome)+16*9+countsSize(s.Revenue)+binary.MaxVarintLen64+len(s.Recent)*48)
	b = append(b, sessionVersion)
	b = appendStr(b, s.Platform)
	b = appendTime(b, s.End)
	b = appendInts(b, s.Events, s.PageViews, s.CartAdds, s.Checkouts, s.Orders)
	b = appendCounts(b, s.Revenue)
	b = appendStr(b, string(s.Outcome))
	closed := byte(0)
	if s.Closed {
		closed = 1
	}
	b = append(b, closed)
	b = binary.AppendVarint(b, int64(s.Partition))
	b = binary.AppendUvarint(b, uint64(len(s.Recent)))
	for _, u := range s.Recent {
		b = appendTime(b, u.Time)
		b = appendStr(b, u.Kind)
		b = appendStr(b, u.ProductID)
		b = binary.AppendVarint(b, u.AmountMinor)
		b = appendStr(b, u.Currency)
	}
	return b
}

func decodeSession(key, val []byte) (model.Session, error) {
	kd := dec{b: key}
	kd.byte()
	s := model.Session{UserID: kd.str(), Start: kd.invTime(), SessionID: kd.str()}
	if err := kd.done(); err != nil {
		return s, err
	}
	d := dec{b: val}
	v := d.versionUpTo(sessionVersion)
	s.Platform = d.str()
	s.End = d.time()
	s.Events, s.PageViews, s.CartAdds, s.Checkouts, s.Orders = d.varint(), d.varint(), d.varint(), d.varint(), d.varint()
	s.Revenue = d.counts()
	s.Outcome = model.SessionOutcome(d.str())
	s.Closed = d.byte() != 0
	s.Partition = int32(d.varint())
	if v >= 2 {
		n := d.count(5)
		for i := uint64(0); i < n && d.err == nil; i++ {
			s.Recent = append(s.Recent, model.UserEvent{Time: d.time(), Kind: d.str(), ProductID: d.str(), AmountMinor: d.varint(), Currency: d.str()})
		}
	}
	return s, d.done()
}

func encodeSessionWindow(w *model.SessionWindow) []byte {
	b := make([]byte, 0, 1+6*binary.MaxVarintLen64)
	b = append(b, valueVersion)
	return appendInts(b, w.Sessions, w.Browsed, w.AbandonedCart, w.AbandonedCheckout, w.Purchased, w.DurationSumMillis)
}

func decodeSessionWindow(key, val []byte) (model.SessionWindow, error) {
	kd := dec{b: key}
	w := model.SessionWindow{Key: decodeWindowKey(&kd)}
	if err := kd.done(); err != nil {
		return w, err
	}
	d := dec{b: val}
	d.version()
	w.Sessions, w.Browsed, w.AbandonedCart = d.varint(), d.varint(), d.varint()
	w.AbandonedCheckout, w.Purchased, w.DurationSumMillis = d.varint(), d.varint(), d.varint()
	return w, d.done()
}

func trendKey(k model.TrendKey) []byte {
	b := keyPrefix(tagTrend, string(k.Granularity))
	b = binary.BigEndian.AppendUint64(b, invMillis(k.Start))
	return appendStr(b, k.Platform)
}

func trendTopPrefix(g model.TrendGranularity, start time.Time, dim model.TopDimension) []byte {
	b := keyPrefix(tagTrendTop, string(g))
	b = binary.BigEndian.AppendUint64(b, invMillis(start))
	return appendStr(b, string(dim))
}

func trendTopKey(t *model.TrendTop) []byte {
	return appendStr(trendTopPrefix(t.Key.Granularity, t.Key.Start, t.Dimension), t.Key.Platform)
}

func encodeTrend(m *model.TrendMetrics) []byte {
	b := make([]byte, 0, 1+12*binary.MaxVarintLen64+countsSize(m.Revenue)+countsSize(m.OrdersByCurrency))
	b = append(b, valueVersion)
	b = appendInts(b, m.ActiveUsers, m.ProductViewers, m.Buyers, m.PageViews, m.ProductViews, m.Searches,
		m.CartAdds, m.Checkouts, m.Orders, m.PaymentsFailed, m.Refunds, m.Chargebacks)
	b = appendCounts(b, m.Revenue)
	return appendCounts(b, m.OrdersByCurrency)
}

func decodeTrend(key, val []byte) (model.TrendMetrics, error) {
	kd := dec{b: key}
	kd.byte()
	var m model.TrendMetrics
	m.Key = model.TrendKey{Granularity: model.TrendGranularity(kd.str()), Start: kd.invTime(), Platform: kd.str()}
	if err := kd.done(); err != nil {
		return m, err
	}
	d := dec{b: val}
	d.version()
	for _, p := range []*int64{&m.ActiveUsers, &m.ProductViewers, &m.Buyers, &m.PageViews, &m.ProductViews, &m.Searches,
		&m.CartAdds, &m.Checkouts, &m.Orders, &m.PaymentsFailed, &m.Refunds, &m.Chargebacks} {
		*p = d.varint()
	}
	m.Revenue = d.counts()
	m.OrdersByCurrency = d.counts()
	return m, d.done()
}

// encodeTrendTop keeps the items in rank order (a ranking is a list, not a map).
func encodeTrendTop(t *model.TrendTop) []byte {
	b := make([]byte, 0, 1+binary.MaxVarintLen64+len(t.Items)*(24+binary.MaxVarintLen64))
	b = append(b, valueVersion)
	b = binary.AppendUvarint(b, uint64(len(t.Items)))
	for _, it := range t.Items {
		b = appendStr(b, it.ID)
		b = binary.AppendVarint(b, it.Value)
	}
	return b
}

func decodeTrendTop(key, val []byte) (model.TrendTop, error) {
	kd := dec{b: key}
	kd.byte()
	var t model.TrendTop
	t.Key.Granularity, t.Key.Start = model.TrendGranularity(kd.str()), kd.invTime()
	t.Dimension, t.Key.Platform = model.TopDimension(kd.str()), kd.str()
	if err := kd.done(); err != nil {
		return t, err
	}
	d := dec{b: val}
	d.version()
	n := d.uvarint()
	if n > uint64(len(d.b)) { // each item takes at least 2 bytes: a bound on n
		d.fail()
	}
	for i := uint64(0); i < n && d.err == nil; i++ {
		t.Items = append(t.Items, model.RankedItem{ID: d.str(), Value: d.varint()})
	}
	return t, d.done()
}

func txFeedPrefix(kind string) []byte { return keyPrefix(tagTxFeed, kind) }

func txFeedKey(f *model.TxFeed) []byte {
	return binary.BigEndian.AppendUint32(txFeedPrefix(f.Kind), sortableInt32(f.Partition))
}

// encodeTxFeed keeps the events in feed order (newest first); their kind and partition are
// the key's.
func encodeTxFeed(f *model.TxFeed) []byte {
	b := make([]byte, 0, 1+binary.MaxVarintLen64+len(f.Events)*80)
	b = append(b, valueVersion)
	b = binary.AppendUvarint(b, uint64(len(f.Events)))
	for _, e := range f.Events {
		b = appendTime(b, e.Time)
		b = appendStr(b, e.UserID)
		b = appendStr(b, e.OrderID)
		b = binary.AppendVarint(b, e.AmountMinor)
		b = appendStr(b, e.Currency)
		b = appendStr(b, e.Platform)
		b = appendStr(b, e.Reason)
	}
	return b
}

func decodeTxFeed(key, val []byte) (model.TxFeed, error) {
	kd := dec{b: key}
	kd.byte()
	f := model.TxFeed{Kind: kd.str(), Partition: kd.i32()}
	if err := kd.done(); err != nil {
		return f, err
	}
	d := dec{b: val}
	d.version()
	n := d.count(7)
	for i := uint64(0); i < n && d.err == nil; i++ {
		f.Events = append(f.Events, model.TxEvent{Time: d.time(), Kind: f.Kind, UserID: d.str(), OrderID: d.str(),
			AmountMinor: d.varint(), Currency: d.str(), Platform: d.str(), Reason: d.str(), Partition: f.Partition})
	}
	return f, d.done()
}
