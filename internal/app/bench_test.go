package app

import (
	"context"
	"io"
	"testing"

	"github.com/bytebasket/bytebasket/internal/bus"
	"github.com/bytebasket/bytebasket/internal/config"
)

// BenchmarkProduceEmbedded measures simulator -> encode -> idempotent acks=all produce into
// the in-process broker, flushed: events/s that are acknowledged, not merely buffered.
func BenchmarkProduceEmbedded(b *testing.B) {
	br, err := bus.StartEmbedded("127.0.0.1:0", b.TempDir(), 0)
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	cfg := embeddedBenchConfig(br.Addr())
	if err := TopicsCreate(context.Background(), cfg, io.Discard); err != nil {
		b.Fatal(err)
	}
	p, err := bus.NewProducer(cfg.Kafka, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close(context.Background())
	b.ResetTimer()
	sum, err := Produce(context.Background(), p, ProduceOptions{Count: int64(b.N), Users: 10000, Seed: 1}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(sum.Sent)/b.Elapsed().Seconds(), "events/s")
}

func embeddedBenchConfig(addr string) config.Config {
	cfg := config.Default()
	cfg.Kafka.Brokers = []string{addr}
	return cfg
}
