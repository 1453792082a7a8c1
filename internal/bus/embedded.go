package bus

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"

	"github.com/twmb/franz-go/pkg/kfake"
)

// EmbeddedBroker is franz-go's in-process Kafka (kfake), persisted to disk, for embedded
// mode: the same client code paths as a real cluster, with no JVM.
type EmbeddedBroker struct {
	cluster *kfake.Cluster
	addr    string
}

// StartEmbedded starts a one-broker cluster listening on listen (host:port; port 0 picks
// one) that keeps its log under dataDir/kafka, so events survive a restart.
func StartEmbedded(listen, dataDir string) (*EmbeddedBroker, error) {
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
	if dataDir != "" {
		opts = append(opts, kfake.DataDir(filepath.Join(dataDir, "kafka")))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("embedded broker on %s: %w", listen, err)
	}
	return &EmbeddedBroker{cluster: c, addr: c.ListenAddrs()[0]}, nil
}

// Addr is the host:port clients connect to.
func (b *EmbeddedBroker) Addr() string { return b.addr }

// Close stops the broker and persists its state.
func (b *EmbeddedBroker) Close() { b.cluster.Close() }
