// Package batchtest builds lakes of simulated events for batch tests and benchmarks, laid
// out as the archiver lays them out, and computes in Go, from the events themselves, what
// the trends jobs must find in them.
package batchtest

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"hash/fnv"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/bytebasket/bytebasket/internal/batch"
	"github.com/bytebasket/bytebasket/internal/event"
	"github.com/bytebasket/bytebasket/internal/lake"
	"github.com/bytebasket/bytebasket/internal/model"
	"github.com/bytebasket/bytebasket/internal/sim"
	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
)

// Partitions is the number of Kafka partitions the lake's file names spread events over.
const Partitions = 4

// Options shape a lake.
type Options struct {
	Sim    sim.Config
	Events int
	// MaxFileRows closes a file early, as the archiver does on its size limit (0: 100k).
	MaxFileRows int
	// Expect keeps the totals for Expected; it costs memory per distinct user and bucket.
	Expect bool
	// Progress, when set, is called after each file is written.
	Progress func(events int)
}

// Lake is what Build wrote.
type Lake struct {
	Events     int
	Files      int
	First      time.Time // event time of the first and last event
	Last       time.Time
	expect     *expect
	activity   int
	transacted int
}

// Build simulates o.Events events and writes them as Parquet to every backend: one file per
// stream, Kafka partition (user hash) and hour directory, named by its offset range.
func Build(ctx context.Context, o Options, backends ...lake.Backend) (*Lake, error) {
	s, err := sim.New(o.Sim)
	if err != nil {
		return nil, err
	}
	if o.MaxFileRows == 0 {
		o.MaxFileRows = 100_000
	}
	l := &Lake{}
	if o.Expect {
		l.expect = newExpect()
	}
	var f lake.Flattener
	type key struct {
		stream string
		part   int32
	}
	type buf struct {
		dir        string
		first      int64
		activity   []lake.ActivityRow
		txs        []lake.TransactionRow
		nextOffset int64
	}
	bufs := map[key]*buf{}
	var out bytes.Buffer
	flush := func(k key, b *buf) error {
		n := len(b.activity) + len(b.txs)
		if n == 0 {
			return nil
		}
		out.Reset()
		var err error
		if k.stream == lake.StreamActivity {
			err = parquet.Write(&out, b.activity, parquet.Compression(&parquet.Zstd))
		} else {
			err = parquet.Write(&out, b.txs, parquet.Compression(&parquet.Zstd))
		}
		if err != nil {
			return fmt.Errorf("batchtest: parquet: %w", err)
		}
		name := b.dir + "/" + lake.FileRange{Topic: k.stream, Partition: k.part, First: b.first, Last: b.first + int64(n) - 1}.FileName()
		for _, be := range backends {
			if err := be.WriteAtomic(ctx, name, func(w io.Writer) error {
				_, err := w.Write(out.Bytes())
				return err
			}); err != nil {
				return fmt.Errorf("batchtest: write %s: %w", name, err)
			}
		}
		l.Files++
		b.first += int64(n)
		b.activity, b.txs = b.activity[:0], b.txs[:0]
		if o.Progress != nil {
			o.Progress(l.Events)
		}
		return nil
	}
	for range o.Events {
		e, _ := s.Next()
		kind := event.KindOf(e)
		k := key{event.TopicOf(kind), partitionOf(e.GetUserId())}
		t := e.GetEventTime().AsTime()
		dir := lake.PartitionDir(k.stream, t)
		b := bufs[k]
		if b == nil {
			b = &buf{dir: dir}
			bufs[k] = b
		}
		if b.dir != dir || len(b.activity)+len(b.txs) >= o.MaxFileRows {
			if err := flush(k, b); err != nil {
				return nil, err
			}
			b.dir = dir
		}
		if k.stream == lake.StreamActivity {
			b.activity = append(b.activity, f.Activity(e, k.part, b.nextOffset))
			l.activity++
		} else {
			b.txs = append(b.txs, f.Transaction(e, k.part, b.nextOffset))
			l.transacted++
		}
		b.nextOffset++
		if l.Events == 0 {
			l.First = t
		}
		l.Last = t
		l.Events++
		if l.expect != nil {
			l.expect.add(e, kind)
		}
		if l.Events%65536 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
	}
	for _, k := range slices.SortedFunc(maps.Keys(bufs), func(a, b key) int {
		return cmp.Or(strings.Compare(a.stream, b.stream), cmp.Compare(a.part, b.part))
	}) {
		if err := flush(k, bufs[k]); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// Streams is how many events went to each stream.
func (l *Lake) Streams() (activity, transactions int) { return l.activity, l.transacted }

func partitionOf(user string) int32 {
	h := fnv.New32a()
	h.Write([]byte(user))
	return int32(h.Sum32() % Partitions)
}

// expect accumulates trends per bucket from the envelopes, for both granularities.
type expect struct {
	buckets map[model.TrendKey]*bucket
}

type bucket struct {
	m                             model.TrendMetrics
	active, viewers, buyers       map[string]bool
	productViews, categoryViews   map[string]int64
	units, productRev, categoryRv map[string]int64
}

func newExpect() *expect { return &expect{buckets: map[model.TrendKey]*bucket{}} }

func (x *expect) bucket(k model.TrendKey) *bucket {
	b := x.buckets[k]
	if b == nil {
		b = &bucket{m: model.TrendMetrics{Key: k},
			active: map[string]bool{}, viewers: map[string]bool{}, buyers: map[string]bool{},
			productViews: map[string]int64{}, categoryViews: map[string]int64{},
			units: map[string]int64{}, productRev: map[string]int64{}, categoryRv: map[string]int64{}}
		x.buckets[k] = b
	}
	return b
}

func (x *expect) add(e *pb.Envelope, kind event.Kind) {
	t := e.GetEventTime().AsTime().UTC()
	user := e.GetUserId()
	for _, g := range model.TrendGranularities {
		for _, p := range []string{event.Platform(e.GetSource()), model.AllPlatforms} {
			b := x.bucket(model.TrendKey{Granularity: g, Start: t.Truncate(g.Duration()), Platform: p})
			m := &b.m
			b.active[user] = true
			switch kind {
			case event.KindPageView:
				m.PageViews++
			case event.KindProductView:
				m.ProductViews++
				b.viewers[user] = true
				b.productViews[e.GetProductView().GetProductId()]++
				b.categoryViews[e.GetProductView().GetCategoryId()]++
			case event.KindSearch:
				m.Searches++
			case event.KindCartAdd:
				m.CartAdds++
			case event.KindCheckoutStarted:
				m.Checkouts++
			case event.KindOrderPlaced:
				o := e.GetOrderPlaced()
				m.Orders++
				b.buyers[user] = true
				if m.Revenue == nil {
					m.Revenue, m.OrdersByCurrency = map[string]int64{}, map[string]int64{}
				}
				m.Revenue[o.GetTotal().GetCurrency()] += o.GetTotal().GetAmountMinor()
				m.OrdersByCurrency[o.GetTotal().GetCurrency()]++
				for _, it := range o.GetItems() {
					b.units[it.GetProductId()] += int64(it.GetQuantity())
					rev := int64(it.GetQuantity()) * it.GetUnitPriceMinor()
					b.productRev[it.GetProductId()] += rev
					b.categoryRv[it.GetCategoryId()] += rev
				}
			case event.KindPaymentFailed:
				m.PaymentsFailed++
			case event.KindRefund:
				m.Refunds++
			case event.KindChargeback:
				m.Chargebacks++
			}
		}
	}
}

// Expected is what batch.Compute must return over [from, to): the buckets of each
// granularity that batch.Align admits, with rankings as the jobs define them.
func (l *Lake) Expected(from, to time.Time) model.Trends {
	var out model.Trends
	for k, b := range l.expect.buckets {
		gf, gt := batch.Align(k.Granularity, from, to)
		if k.Start.Before(gf) || !k.Start.Before(gt) {
			continue
		}
		m := b.m
		m.ActiveUsers, m.ProductViewers, m.Buyers = int64(len(b.active)), int64(len(b.viewers)), int64(len(b.buyers))
		out.Metrics = append(out.Metrics, m)
		for dim, counts := range map[model.TopDimension]map[string]int64{
			model.TopProductViews: b.productViews, model.TopCategoryViews: b.categoryViews,
			model.TopProductUnits: b.units, model.TopProductRevenue: b.productRev, model.TopCategoryRevenue: b.categoryRv,
		} {
			out.Tops = append(out.Tops, model.TrendTop{Key: k, Dimension: dim, Items: Rank(counts, model.TrendTopN)})
		}
	}
	Sort(&out)
	return out
}

// Rank is the top n of counts: highest value first, ties by id.
func Rank(counts map[string]int64, n int) []model.RankedItem {
	var items []model.RankedItem
	for id, v := range counts {
		items = append(items, model.RankedItem{ID: id, Value: v})
	}
	slices.SortFunc(items, func(a, b model.RankedItem) int {
		return cmp.Or(cmp.Compare(b.Value, a.Value), strings.Compare(a.ID, b.ID))
	})
	return items[:min(n, len(items))]
}

// Sort orders rows by granularity, start, platform and dimension, as batch.Compute does.
func Sort(t *model.Trends) {
	key := func(k model.TrendKey) string {
		return fmt.Sprintf("%s|%020d|%s", k.Granularity, k.Start.UnixNano(), k.Platform)
	}
	slices.SortFunc(t.Metrics, func(a, b model.TrendMetrics) int { return strings.Compare(key(a.Key), key(b.Key)) })
	slices.SortFunc(t.Tops, func(a, b model.TrendTop) int {
		return cmp.Or(strings.Compare(key(a.Key), key(b.Key)), strings.Compare(string(a.Dimension), string(b.Dimension)))
	})
}

// SampleTrends is a set of trend rows for store tests: hours across a UTC month boundary
// (Cassandra buckets by month), days, several platforms and AllPlatforms, non-UTC times,
// rows without orders (nil maps) and empty rankings. It is in Compute's order.
func SampleTrends() model.Trends {
	var t model.Trends
	cet := time.FixedZone("CET", 3600)
	monthEnd := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	add := func(g model.TrendGranularity, start time.Time, i int) {
		// Names of different lengths: stores must order them by name, not by key length.
		for j, p := range []string{model.AllPlatforms, "android", "ios", "web"} {
			k := model.TrendKey{Granularity: g, Start: start.In(cet), Platform: p}
			m := model.TrendMetrics{Key: k, ActiveUsers: int64(100*i + j), ProductViewers: 50, Buyers: 5,
				PageViews: 1000, ProductViews: 400, Searches: 300, CartAdds: 60, Checkouts: 20, Orders: 7,
				PaymentsFailed: 2, Refunds: 1, Chargebacks: 1 << 40,
				Revenue: map[string]int64{"EUR": 123456, "USD": int64(i)}, OrdersByCurrency: map[string]int64{"EUR": 4, "USD": 3}}
			if p == "ios" {
				m.Buyers, m.Orders, m.Revenue, m.OrdersByCurrency = 0, 0, nil, nil
			}
			t.Metrics = append(t.Metrics, m)
			for _, dim := range model.TrendTopDimensions {
				top := model.TrendTop{Key: k, Dimension: dim}
				if p != "ios" {
					for r := range 3 + i {
						top.Items = append(top.Items, model.RankedItem{ID: fmt.Sprintf("%s-%02d", dim, 9-r), Value: int64(100 - r/2)})
					}
				}
				t.Tops = append(t.Tops, top)
			}
		}
	}
	for i := -2; i < 2; i++ {
		add(model.TrendHour, monthEnd.Add(time.Duration(i)*time.Hour), i+2)
	}
	for i := -1; i < 1; i++ {
		add(model.TrendDay, monthEnd.Add(time.Duration(i)*24*time.Hour), i+1)
	}
	return t
}
