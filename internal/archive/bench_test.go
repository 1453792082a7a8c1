package archive

import (
	"context"
	"testing"
	"time"

	"github.com/bytebasket/bytebasket/internal/lake/local"
)

// BenchmarkArchiveLocal: records (as read from Kafka) -> decode, validate, flatten, Parquet
// with zstd -> files on local disk, with the production roll size. Per core:
//
//	go test -run '^$' -bench ArchiveLocal -benchtime 1000000x -cpu 1 ./internal/archive/
func BenchmarkArchiveLocal(b *testing.B) {
	recs := records(b, 200_000)
	ctx := context.Background()
	lk, err := local.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	cfg := Config{Group: "b", RollBytes: 128 << 20, RollInterval: time.Hour, MaxBufferedBytes: 512 << 20, Compression: "zstd", MaxFuture: 24 * 365 * time.Hour}
	a, err := New(cfg, nil, lk, nil)
	if err != nil {
		b.Fatal(err)
	}
	var bytesIn int64
	b.ResetTimer()
	i := 0
	for b.Loop() {
		r := recs[i%len(recs)]
		// Later laps get fresh offsets: the same offsets would be skipped as written.
		off := r.offset + int64(i/len(recs))*int64(len(recs))
		if err := a.Handle(ctx, r.stream, r.part, off, r.value); err != nil {
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
