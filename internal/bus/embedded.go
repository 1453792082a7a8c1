package bus

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// EmbeddedBroker is franz-go's in-process Kafka (kfake), persisted to disk, for embedded
// mode: the same client code paths as a real cluster, with no JVM.
type EmbeddedBroker struct {
	cluster *kfake.Cluster
	addr    string
}

// StartEmbedded starts a one-broker cluster listening on listen (host:port; port 0 picks
// one) that keeps its log under dataDir/kafka (in memory without one), so events survive a
// restart. partitionBytes (> 0) is the retention.bytes of every topic partition that sets
// none, enforced every cleanerInterval.
func StartEmbedded(listen, dataDir string, partitionBytes int64) (*EmbeddedBroker, error) {
	host, portStr, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("embedded broker: listen address %q: %w", listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("embedded broker: port %q: %w", portStr, err)
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(port),
		kfake.ClusterID("bytebasket-embedded"),
		// kfake binds 127.0.0.1; honour the configured host instead.
		kfake.ListenFn(func(network, addr string) (net.Listener, error) {
			_, p, _ := net.SplitHostPort(addr)
			return net.Listen(network, net.JoinHostPort(host, p))
		}),
	}
	if partitionBytes > 0 {
		// Retention removes whole segments from disk: segments of a quarter of the bound keep
		// a partition's files within 1.25 times it.
		segment := min(max(partitionBytes/4, 1<<20), 100<<20)
		opts = append(opts, kfake.BrokerConfigs(map[string]string{
			"log.retention.bytes":    strconv.FormatInt(partitionBytes, 10),
			"log.segment.bytes":      strconv.FormatInt(segment, 10),
			"log.cleaner.backoff.ms": strconv.FormatInt(cleanerInterval.Milliseconds(), 10),
		}))
	}
	if dataDir != "" {
		opts = append(opts, kfake.DataDir(filepath.Join(dataDir, "kafka")))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("embedded broker on %s: %w", listen, err)
	}
	return &EmbeddedBroker{cluster: c, addr: c.ListenAddrs()[0]}, nil
}

// cleanerInterval is how often the embedded broker trims its log to retention (Kafka's
// default, 5 minutes, lets an in-memory log outgrow its bound by minutes of traffic).
const cleanerInterval = 30 * time.Second

// Addr is the host:port clients connect to.
func (b *EmbeddedBroker) Addr() string { return b.addr }

// ApplyRetention trims every topic to its retention now rather than at the next cleaner run.
func (b *EmbeddedBroker) ApplyRetention() { b.cluster.ApplyRetention() }

// Close stops the broker and persists its state.
func (b *EmbeddedBroker) Close() { b.cluster.Close() }
