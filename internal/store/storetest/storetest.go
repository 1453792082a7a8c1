// Package storetest holds checks both serving-store backends must pass, so they are written
// once and run against BadgerDB and against a real Cassandra.
package storetest

import (
	"cmp"
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bytebasket/bytebasket/internal/model"
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
