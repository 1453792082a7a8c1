// Package bustest starts an embedded broker with ByteBasket's topics for tests.
package bustest

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/bytebasket/bytebasket/internal/bus"
	"github.com/bytebasket/bytebasket/internal/config"
)

// Embedded starts an in-memory broker whose partitions keep partitionBytes (0: no bound),
// creates the topics, and returns it, the default configuration pointing at it and a plain
// client of it (producing with Kafka's default partitioner, as ByteBasket does). All are
// closed when the test ends.
func Embedded(t testing.TB, partitionBytes int64) (*bus.EmbeddedBroker, config.Config, *kgo.Client) {
	t.Helper()
	br, err := bus.StartEmbedded("127.0.0.1:0", "", partitionBytes)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(br.Close)
	cfg := config.Default()
	cfg.Kafka.Brokers = []string{br.Addr()}
	opts, err := bus.ClientOptions(cfg.Kafka)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	if err := bus.EnsureTopics(context.Background(), kadm.NewClient(cl), bus.TopicSpecs(cfg)); err != nil {
		t.Fatal(err)
	}
	return br, cfg, cl
}
