package sim

import (
	"testing"

	"github.com/bytebasket/bytebasket/internal/event"
)

// BenchmarkNextEncode measures what a producer pays per event: generate, then encode
// into a reused buffer. Run with -cpu 1 for the single-core figure.
func BenchmarkNextEncode(b *testing.B) {
	s := mustNew(b, Config{Seed: 1, Start: testStart, Diurnal: true})
	var buf []byte
	var bytes int
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		e, _ := s.Next()
		var err error
		if buf, err = event.AppendEncode(buf[:0], e); err != nil {
			b.Fatal(err)
		}
		bytes += len(buf)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(bytes)/float64(b.N), "B/event")
}

// BenchmarkNext is generation alone, to see the split against encoding.
func BenchmarkNext(b *testing.B) {
	s := mustNew(b, Config{Seed: 1, Start: testStart, Diurnal: true})
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		s.Next()
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
