package archive

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"

	"github.com/bytebasket/bytebasket/internal/lake/local"
)

// BenchmarkArchiveLocal: records (as read from Kafka) -> decode, validate, flatten, Parquet
// with zstd -> files on local disk, with the production roll size. Per core:
//
//	go test -run '^$' -bench ArchiveLocal -benchtime 1000000x -cpu 1 ./internal/archive/
func BenchmarkArchiveLocal(b *testing.B) {
	recs := recordsFrom(b, 200_000, time.Now().Add(-time.Hour)) // within the deduplication horizon
	ctx := context.Background()
	lk, err := local.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	cfg := Config{Group: "b", RollBytes: 128 << 20, RollInterval: time.Hour, MaxBufferedBytes: 512 << 20, Compression: "zstd",
		MaxFuture: time.Hour, DedupHorizon: 24 * time.Hour}
	a, err := New(cfg, nil, lk, nil)
	if err != nil {
		b.Fatal(err)
	}
	var bytesIn int64
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if i > 0 && i%len(recs) == 0 {
			// Later laps get fresh event ids: the same ones would be dropped as copies.
			b.StopTimer()
			renumber(b, recs, i/len(recs))
			b.StartTimer()
		}
		r := recs[i%len(recs)]
		// Later laps get fresh offsets: the same offsets would be skipped as written.
		r.offset += int64(i/len(recs)) * int64(len(recs))
		if err := a.Handle(ctx, r.kafka()); err != nil {
			b.Fatal(err)
		}
		bytesIn += int64(len(r.value))
		i++
	}
	if err := a.Roll(ctx, time.Now(), true); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(bytesIn)/float64(b.N), "B/event-in")
}

// renumber gives the records new event ids for lap n.
func renumber(b *testing.B, recs []record, n int) {
	for i := range recs {
		var e pb.Envelope
		if err := proto.Unmarshal(recs[i].value, &e); err != nil {
			b.Fatal(err)
		}
		e.EventId = fmt.Sprintf("%s-%d", e.GetEventId(), n)
		v, err := proto.Marshal(&e)
		if err != nil {
			b.Fatal(err)
		}
		recs[i].value = v
	}
}
