package app

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/bytebasket/bytebasket/internal/bus"
	"github.com/bytebasket/bytebasket/internal/config"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// newAdmin connects an admin client to the configured brokers.
func newAdmin(cfg config.Kafka) (*kadm.Client, error) {
	opts, err := bus.ClientOptions(cfg)
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka admin: %w", err)
	}
	return kadm.NewClient(cl), nil
}

// ensureTopics creates the topics a role needs (missing ones only) and waits for their
// leaders; every role that consumes or produces starts with it.
func ensureTopics(ctx context.Context, cfg config.Config) error {
	adm, err := newAdmin(cfg.Kafka)
	if err != nil {
		return err
	}
	defer adm.Close()
	return bus.EnsureTopics(ctx, adm, bus.TopicSpecs(cfg))
}

// TopicsCreate creates every ByteBasket topic that is missing, then describes them.
func TopicsCreate(ctx context.Context, cfg config.Config, out io.Writer) error {
	adm, err := newAdmin(cfg.Kafka)
	if err != nil {
		return err
	}
	defer adm.Close()
	if err := bus.EnsureTopics(ctx, adm, bus.TopicSpecs(cfg)); err != nil {
		return err
	}
	return describe(ctx, adm, cfg, out)
}

// TopicsDescribe prints partitions, replication and managed settings of each topic.
func TopicsDescribe(ctx context.Context, cfg config.Config, out io.Writer) error {
	adm, err := newAdmin(cfg.Kafka)
	if err != nil {
		return err
	}
	defer adm.Close()
	return describe(ctx, adm, cfg, out)
}

func describe(ctx context.Context, adm *kadm.Client, cfg config.Config, out io.Writer) error {
	infos, err := bus.DescribeTopics(ctx, adm, bus.TopicSpecs(cfg))
	if err != nil {
		return err
	}
	for _, t := range infos {
		var kv []string
		for _, k := range bus.SortedKeys(t.Configs) {
			kv = append(kv, k+"="+t.Configs[k])
		}
		fmt.Fprintf(out, "%-14s partitions=%d replication=%d %s\n", t.Name, t.Partitions, t.ReplicationFactor, strings.Join(kv, " "))
	}
	return nil
}
