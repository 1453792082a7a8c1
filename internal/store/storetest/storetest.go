// Package storetest holds checks both serving-store backends must pass, so they are written
// once and run against BadgerDB and against a real Cassandra.
package storetest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bytebasket/bytebasket/internal/model"
	"github.com/bytebasket/bytebasket/internal/stateful"
	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
)

// TxReader reads the transactions feed.
type TxReader interface {
	RecentTransactions(ctx context.Context, kind string, limit int) ([]model.TxEvent, error)
}

// TxFeeds has feeds of every kind but chargeback over three partitions, from base on, with
// equal times across feeds, sub-millisecond and non-UTC times.
func TxFeeds(base time.Time) []model.TxFeed {
	cet := time.FixedZone("CET", 3600)
	var feeds []model.TxFeed
	for k, kind := range model.TxKinds[:3] {
		for p := range int32(3) {
			f := model.TxFeed{Kind: kind, Partition: p}
			for i := 10; i > 0; i-- { // newest first; every third second is shared by all feeds
				at := base.Add(time.Duration(i*3+int(p)%2*k) * time.Second).Add(time.Microsecond).In(cet)
				f.Events = append(f.Events, model.TxEvent{Time: at, Kind: kind, UserID: fmt.Sprintf("u-%d", i), OrderID: fmt.Sprintf("o-%d-%d", p, i),
					AmountMinor: int64(100*k + i), Currency: "EUR", Platform: "web", Reason: kind + "-reason", Partition: p})
			}
			feeds = append(feeds, f)
		}
	}
	return feeds
}

// wantTx is what RecentTransactions should return for feeds: newest first, ties in
// (kind, partition, feed order), times in UTC milliseconds.
func wantTx(feeds []model.TxFeed, kind string, limit int) []model.TxEvent {
	var all []model.TxEvent
	for _, f := range feeds {
		if kind == "" || kind == "all" || f.Kind == kind {
			all = append(all, f.Events...)
		}
	}
	for i := range all {
		all[i].Time = all[i].Time.UTC().Truncate(time.Millisecond)
	}
	slices.SortStableFunc(all, func(a, b model.TxEvent) int {
		if c := b.Time.Compare(a.Time); c != 0 {
			return c
		}
		return cmp.Or(strings.Compare(a.Kind, b.Kind), cmp.Compare(a.Partition, b.Partition))
	})
	if limit > 0 && len(all) > limit {
		all = all[:limit]
	}
	return all
}

// CheckRecentTransactions requires st to return what feeds (as last written) hold: merged
// over partitions, newest first, per kind or all, at most limit.
func CheckRecentTransactions(t *testing.T, st TxReader, feeds []model.TxFeed) {
	t.Helper()
	for _, c := range []struct {
		kind  string
		limit int
	}{{"", 0}, {"all", 7}, {"all", 1000}, {model.TxOrderPlaced, 0}, {model.TxRefund, 4}, {model.TxChargeback, 5}, {"nonsense", 5}} {
		got, err := st.RecentTransactions(context.Background(), c.kind, c.limit)
		if err != nil {
			t.Fatal(err)
		}
		if want := wantTx(feeds, c.kind, c.limit); !reflect.DeepEqual(got, want) {
			t.Errorf("kind %q limit %d: got %d transactions, want %d\n got %+v\nwant %+v", c.kind, c.limit, len(got), len(want), got, want)
		}
	}
}

// Writer is a serving store's row writer with the checkpoint store it fences by.
type Writer interface {
	stateful.Store
	ResetState(ctx context.Context, group string, partition int32) error
	Write(ctx context.Context, f model.Fence, b model.Batch) error
	Windows(ctx context.Context, g model.Granularity, from, to time.Time) ([]model.WindowMetrics, error)
}

// Claim claims a partition of a test group, for tests that write rows.
func Claim(t testing.TB, st stateful.Store) model.Fence {
	t.Helper()
	f, _, err := st.Claim(context.Background(), "storetest", 0)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// CheckState is the contract of stateful.Store and of fenced writes: epochs grow, heads and
// logs round-trip, trims delete what precedes a position, and an owner whose partition was
// claimed since can neither commit a head nor replace a row the new owner wrote.
func CheckState(t *testing.T, st Writer) {
	ctx := context.Background()
	group := fmt.Sprintf("g%d", time.Now().UnixNano())
	a, head, err := st.Claim(ctx, group, 3)
	if err != nil || head != nil {
		t.Fatalf("first claim: head %v, err %v", head, err)
	}
	chunks := [][]byte{[]byte("first"), make([]byte, 300<<10), {}}
	if err := st.AppendLog(ctx, a, 1, chunks); err != nil {
		t.Fatal(err)
	}
	if err := st.AppendLog(ctx, a, 2, [][]byte{[]byte("second")}); err != nil {
		t.Fatal(err)
	}
	if err := st.AppendLog(ctx, a, 1, chunks); err != nil { // a retry is harmless
		t.Fatal(err)
	}
	if err := st.CommitHead(ctx, a, []byte("head-a")); err != nil {
		t.Fatal(err)
	}

	b, head, err := st.Claim(ctx, group, 3)
	if err != nil || string(head) != "head-a" || b.Epoch <= a.Epoch {
		t.Fatalf("second claim: epoch %d after %d, head %q, err %v", b.Epoch, a.Epoch, head, err)
	}
	if err := st.CommitHead(ctx, a, []byte("stale")); !errors.Is(err, model.ErrFenced) {
		t.Fatalf("stale owner committed a head: %v", err)
	}
	if err := st.AppendLog(ctx, b, 1, [][]byte{[]byte("b1")}); err != nil {
		t.Fatal(err)
	}
	if err := st.CommitHead(ctx, b, []byte("head-b")); err != nil {
		t.Fatal(err)
	}
	if _, head, err := st.Claim(ctx, group, 4); err != nil || head != nil {
		t.Fatalf("another partition's claim sees head %q, err %v", head, err)
	}

	read := func(segs []*pb.LogSegment) []string {
		t.Helper()
		var got []string
		err := st.ReadLog(ctx, group, 3, segs, func(c stateful.LogChunk) error {
			got = append(got, fmt.Sprintf("%d/%d/%d of %d: %d bytes", c.Epoch-a.Epoch, c.Seq, c.Index, c.Count, len(c.Data)))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	all := []*pb.LogSegment{{Epoch: a.Epoch, FirstSeq: 1, LastSeq: 2}, {Epoch: b.Epoch, FirstSeq: 1, LastSeq: 1}}
	d := b.Epoch - a.Epoch
	want := []string{"0/1/0 of 3: 5 bytes", "0/1/1 of 3: 307200 bytes", "0/1/2 of 3: 0 bytes", "0/2/0 of 1: 6 bytes",
		fmt.Sprintf("%d/1/0 of 1: 2 bytes", d)}
	if got := read(all); !slices.Equal(got, want) {
		t.Fatalf("log:\n got %q\nwant %q", got, want)
	}
	if got := read([]*pb.LogSegment{{Epoch: a.Epoch, FirstSeq: 2, LastSeq: 2}}); !slices.Equal(got, want[3:4]) {
		t.Fatalf("one checkpoint: got %q", got)
	}
	if err := st.TrimLog(ctx, group, 3, a.Epoch, 2); err != nil {
		t.Fatal(err)
	}
	if got := read(all); !slices.Equal(got, want[3:]) {
		t.Fatalf("after trimming before %d/2:\n got %q\nwant %q", 0, got, want[3:])
	}
	if err := st.TrimLog(ctx, group, 3, b.Epoch, 1); err != nil {
		t.Fatal(err)
	}
	if got := read(all); !slices.Equal(got, want[4:]) {
		t.Fatalf("after trimming the older epoch:\n got %q\nwant %q", got, want[4:])
	}

	// A reset forgets the head and the log, not the epoch: the next claim is higher still
	// and starts empty.
	if err := st.ResetState(ctx, group, 3); err != nil {
		t.Fatal(err)
	}
	c, head, err := st.Claim(ctx, group, 3)
	if err != nil || head != nil || c.Epoch <= b.Epoch {
		t.Fatalf("claim after reset: epoch %d after %d, head %q, err %v", c.Epoch, b.Epoch, head, err)
	}
	if got := read(all); len(got) != 0 {
		t.Fatalf("log after reset: %q", got)
	}
	b = c

	// Rows: the stale owner's write after the new owner's must not win.
	start := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	row := func(pv int64) model.Batch {
		return model.Batch{Windows: []model.WindowMetrics{{
			Key:       model.WindowKey{Granularity: model.Minute, Start: start, Platform: group, Partition: 3},
			PageViews: pv, UpdatedAt: start,
		}}}
	}
	if err := st.Write(ctx, a, row(1)); !errors.Is(err, model.ErrFenced) && err != nil {
		t.Fatal(err)
	}
	if err := st.Write(ctx, b, row(2)); err != nil {
		t.Fatal(err)
	}
	if err := st.Write(ctx, a, row(3)); err != nil && !errors.Is(err, model.ErrFenced) {
		t.Fatal(err)
	}
	rows, err := st.Windows(ctx, model.Minute, start, start.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	var got []int64
	for _, r := range rows {
		if r.Key.Platform == group {
			got = append(got, r.PageViews)
		}
	}
	if !slices.Equal(got, []int64{2}) {
		t.Fatalf("page views after a stale owner wrote over the new owner: %v, want [2]", got)
	}
}

// SessionStore writes and reads session rows.
type SessionStore interface {
	Write(ctx context.Context, f model.Fence, b model.Batch) error
	SessionsByUser(ctx context.Context, userID string, limit int) ([]model.Session, error)
}

// CheckReplacedSessions is the contract of Batch.ReplacedSessions: a span removes the user's
// rows starting in it (both ends included) before the batch's sessions are written, so a
// row the span covers survives when the same batch writes it; other users' rows and rows
// outside the span stay.
func CheckReplacedSessions(t *testing.T, st SessionStore, f model.Fence, base time.Time) {
	ctx := context.Background()
	user, other := fmt.Sprintf("u%d", time.Now().UnixNano()), fmt.Sprintf("v%d", time.Now().UnixNano())
	at := func(user string, sec int, id string) model.Session {
		start := base.Add(time.Duration(sec) * time.Second)
		return model.Session{UserID: user, SessionID: id, Platform: "web", Start: start, End: start.Add(time.Second),
			Events: 1, Revenue: map[string]int64{}}
	}
	// A session written under three starts as earlier events arrived, beside a session an
	// hour later and the same starts of another user.
	first := []model.Session{at(user, 30, "s2"), at(user, 20, "s1"), at(user, 20, "s0"), at(user, 3600, "s9"), at(other, 20, "s1")}
	if err := st.Write(ctx, f, model.Batch{Sessions: first}); err != nil {
		t.Fatal(err)
	}
	final := at(user, 10, "s0")
	final.End, final.Events, final.Closed = base.Add(40*time.Second), 3, true
	replaced := model.Batch{Sessions: []model.Session{final}, ReplacedSessions: []model.SessionSpan{span(final)}}
	if err := st.Write(ctx, f, replaced); err != nil {
		t.Fatal(err)
	}
	starts := func(user string) []string {
		got, err := st.SessionsByUser(ctx, user, 0)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, s := range got {
			out = append(out, fmt.Sprintf("%s@%d", s.SessionID, s.Start.Sub(base)/time.Second))
		}
		return out
	}
	if got, want := starts(user), []string{"s9@3600", "s0@10"}; !slices.Equal(got, want) {
		t.Fatalf("after replacing [10s, 40s]: sessions %v, want %v", got, want)
	}
	if got, want := starts(other), []string{"s1@20"}; !slices.Equal(got, want) {
		t.Fatalf("another user's sessions: %v, want %v", got, want)
	}
	// The same batch again (a replay) leaves the same rows; a span whose row is rewritten
	// in its batch keeps it.
	final.Events = 4
	again := model.Batch{Sessions: []model.Session{final}, ReplacedSessions: []model.SessionSpan{span(final)}}
	if err := st.Write(ctx, f, again); err != nil {
		t.Fatal(err)
	}
	got, err := st.SessionsByUser(ctx, user, 0)
	if err != nil || len(got) != 2 || got[1].Events != 4 {
		t.Fatalf("after writing the replacing batch again: %+v, %v", got, err)
	}
}

func span(s model.Session) model.SessionSpan {
	return model.SessionSpan{UserID: s.UserID, From: s.Start, Through: s.End}
}

// FraudAlertStore writes and reads fraud alerts.
type FraudAlertStore interface {
	WriteFraudAlerts(ctx context.Context, alerts []model.FraudAlert) error
	FraudAlerts(ctx context.Context, from, to time.Time, limit int) ([]model.FraudAlert, error)
	FraudAlertsByUser(ctx context.Context, userID string, limit int) ([]model.FraudAlert, error)
}

// CheckFraudAlerts is the contract of the fraud alert tables: alerts of three days (one of
// them about no user, sub-millisecond and non-UTC times) come back newest first by range,
// limit and user; writing them again changes nothing.
func CheckFraudAlerts(t *testing.T, st FraudAlertStore, base time.Time) {
	t.Helper()
	ctx := context.Background()
	var alerts []model.FraudAlert
	for i := range 9 {
		user := fmt.Sprintf("u%d", i%2)
		if i == 4 {
			user = "" // a monitoring alert
		}
		at := base.Add(time.Duration(i)*8*time.Hour + 250*time.Microsecond).In(time.FixedZone("X", 3600))
		alerts = append(alerts, model.FraudAlert{EventID: fmt.Sprintf("e%d", i), EventTime: at, UserID: user, Decision: []byte{byte(i), 0, 1}})
	}
	for range 2 { // a redelivered batch rewrites the same rows
		if err := st.WriteFraudAlerts(ctx, alerts); err != nil {
			t.Fatal(err)
		}
	}
	want := func(keep func(i int) bool, limit int) []model.FraudAlert {
		var out []model.FraudAlert
		for i := len(alerts) - 1; i >= 0; i-- {
			if keep(i) && (limit <= 0 || len(out) < limit) {
				a := alerts[i]
				a.EventTime = a.EventTime.UTC().Truncate(time.Millisecond)
				out = append(out, a)
			}
		}
		return out
	}
	at := func(i int) time.Time { return alerts[i].EventTime }
	for _, c := range []struct {
		name     string
		from, to time.Time
		limit    int
		keep     func(int) bool
	}{
		{"everything", base.Add(-time.Hour), base.Add(4 * 24 * time.Hour), 0, func(int) bool { return true }},
		{"limit across days", base.Add(-time.Hour), base.Add(4 * 24 * time.Hour), 4, func(int) bool { return true }},
		{"a range: from included, to not", at(2).Truncate(time.Millisecond), at(6).Truncate(time.Millisecond),
			0, func(i int) bool { return i >= 2 && i < 6 }},
		{"nothing before", base.Add(-48 * time.Hour), base.Add(-time.Hour), 0, func(int) bool { return false }},
	} {
		got, err := st.FraudAlerts(ctx, c.from, c.to, c.limit)
		if err != nil {
			t.Fatal(err)
		}
		if w := want(c.keep, c.limit); !reflect.DeepEqual(got, w) {
			t.Errorf("%s: got %+v\nwant %+v", c.name, got, w)
		}
	}
	got, err := st.FraudAlertsByUser(ctx, "u1", 2)
	if err != nil {
		t.Fatal(err)
	}
	if w := want(func(i int) bool { return i%2 == 1 && i != 4 }, 2); !reflect.DeepEqual(got, w) {
		t.Errorf("by user: got %+v\nwant %+v", got, w)
	}
	if got, err := st.FraudAlertsByUser(ctx, "", 0); err != nil || len(got) != 0 {
		t.Errorf("alerts of no user: %v %v", got, err)
	}
}

// FraudLabelStore writes and reads fraud labels.
type FraudLabelStore interface {
	WriteFraudLabels(ctx context.Context, labels []model.FraudLabel) error
	FraudLabels(ctx context.Context, from, to time.Time, limit int) ([]model.FraudLabel, error)
}

// CheckFraudLabels is the contract of the fraud labels table: labels of orders over three
// days (sub-millisecond, non-UTC times) come back newest first by range and limit; writing
// them again changes nothing.
func CheckFraudLabels(t *testing.T, st FraudLabelStore, base time.Time) {
	t.Helper()
	ctx := context.Background()
	var labels []model.FraudLabel
	for i := range 7 {
		at := base.Add(time.Duration(i)*11*time.Hour + 250*time.Microsecond).In(time.FixedZone("X", -7200))
		labels = append(labels, model.FraudLabel{OrderID: fmt.Sprintf("o%d", i), EventTime: at, UserID: fmt.Sprintf("u%d", i%3), Scenario: "card_testing"})
	}
	labels[3].Scenario = "account_takeover"
	for range 2 {
		if err := st.WriteFraudLabels(ctx, labels); err != nil {
			t.Fatal(err)
		}
	}
	want := func(lo, hi, limit int) []model.FraudLabel {
		var out []model.FraudLabel
		for i := hi - 1; i >= lo && (limit <= 0 || len(out) < limit); i-- {
			l := labels[i]
			l.EventTime = l.EventTime.UTC().Truncate(time.Millisecond)
			out = append(out, l)
		}
		return out
	}
	at := func(i int) time.Time { return labels[i].EventTime.Truncate(time.Millisecond) }
	for _, c := range []struct {
		name          string
		from, to      time.Time
		limit, lo, hi int
	}{
		{"everything", base.Add(-time.Hour), base.Add(4 * 24 * time.Hour), 0, 0, 7},
		{"limit across days", base.Add(-time.Hour), base.Add(4 * 24 * time.Hour), 3, 0, 7},
		{"a range: from included, to not", at(1), at(5), 0, 1, 5},
		{"nothing before", base.Add(-48 * time.Hour), base.Add(-time.Hour), 0, 0, 0},
	} {
		got, err := st.FraudLabels(ctx, c.from, c.to, c.limit)
		if err != nil {
			t.Fatal(err)
		}
		if w := want(c.lo, c.hi, c.limit); !reflect.DeepEqual(got, w) {
			t.Errorf("%s: got %+v\nwant %+v", c.name, got, w)
		}
	}
}
