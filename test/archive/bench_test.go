package archivetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/bytebasket/bytebasket/internal/archive"
	"github.com/bytebasket/bytebasket/internal/config"
	"github.com/bytebasket/bytebasket/internal/event"
	"github.com/bytebasket/bytebasket/internal/lake/hdfs"
	"github.com/bytebasket/bytebasket/internal/lake/local"
	"github.com/bytebasket/bytebasket/internal/sim"
	"github.com/bytebasket/bytebasket/internal/testenv"
	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
	"google.golang.org/protobuf/proto"
)

type benchRecord struct {
	stream string
	part   int32
	value  []byte
}

// BenchmarkArchive: records as read from Kafka -> decode, validate, flatten, Parquet (zstd,
// 128 MiB rolls) -> the lake, on local disk and on HDFS, side by side in one run. The
// consumer is left out (it is franz-go's); the clock includes every file's close and rename.
//
//	go test -run '^$' -bench Archive -benchtime 2000000x -cpu 1 ./test/archive/
func BenchmarkArchive(b *testing.B) {
	// Within the deduplication horizon: every event's id is checked and remembered.
	s, err := sim.New(sim.Config{Seed: 9, Users: 20_000, Rate: 1000, Start: time.Now().Add(-12 * time.Hour)})
	if err != nil {
		b.Fatal(err)
	}
	recs := make([]benchRecord, 500_000)
	for i := range recs {
		e, _ := s.Next()
		v, err := proto.Marshal(e)
		if err != nil {
			b.Fatal(err)
		}
		id := e.GetUserId()
		recs[i] = benchRecord{event.TopicOf(event.KindOf(e)), int32(id[len(id)-1] % 4), v}
	}
	for _, backend := range []string{"local", "hdfs"} {
		b.Run(backend, func(b *testing.B) {
			ctx := context.Background()
			var lk archive.Lake
			switch backend {
			case "local":
				d, err := local.Open(b.TempDir())
				if err != nil {
					b.Fatal(err)
				}
				lk = d
			case "hdfs":
				cfg := config.Default().Lake
				cfg.HDFS.Namenodes = []string{testenv.Addr(b, testenv.HDFS)}
				cfg.Root = fmt.Sprintf("/bench/archive-%d", time.Now().UnixNano())
				h, err := hdfs.Open(cfg)
				if err != nil {
					b.Fatal(err)
				}
				defer func() { _ = h.RemoveAll(ctx, "/"); h.Close() }()
				lk = h
			}
			c := config.Default()
			a, err := archive.New(archive.FromConfig(c), nil, lk, nil)
			if err != nil {
				b.Fatal(err)
			}
			next := map[string]int64{}
			b.ResetTimer()
			i := 0
			for b.Loop() {
				if i > 0 && i%len(recs) == 0 { // a new lap: fresh event ids, or all are copies
					b.StopTimer()
					for j := range recs {
						var e pb.Envelope
						if err := proto.Unmarshal(recs[j].value, &e); err != nil {
							b.Fatal(err)
						}
						e.EventId = fmt.Sprintf("%s-%d", e.GetEventId(), i)
						if recs[j].value, err = proto.Marshal(&e); err != nil {
							b.Fatal(err)
						}
					}
					b.StartTimer()
				}
				r := recs[i%len(recs)]
				k := r.stream + string(rune('0'+r.part))
				if err := a.Handle(ctx, archive.Record{Stream: r.stream, Partition: r.part, Offset: next[k], Value: r.value}); err != nil {
					b.Fatal(err)
				}
				next[k]++
				i++
			}
			if err := a.Roll(ctx, time.Now(), true); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
