package bus

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/bytebasket/bytebasket/internal/config"
	"github.com/bytebasket/bytebasket/internal/event"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// TopicSpec is a topic as ByteBasket wants it to exist.
type TopicSpec struct {
	Name              string
	Partitions        int32
	ReplicationFactor int16
	Configs           map[string]string
}

// TopicSpecs returns every topic ByteBasket uses, with retention taken from the one
// retention policy so topics, store TTLs and the lake agree.
func TopicSpecs(cfg config.Config) []TopicSpec {
	common := func() map[string]string {
		return map[string]string{
			"retention.ms":        strconv.FormatInt(cfg.Retention.Duration().Milliseconds(), 10),
			"min.insync.replicas": strconv.Itoa(cfg.Kafka.MinInsyncReplicas),
			"cleanup.policy":      "delete",
		}
	}
	names := append(append([]string{}, event.Topics...), event.TopicSimLabels, event.TopicDeadLetters, event.TopicFraudAlerts,
		event.TopicFraudRepartition)
	specs := make([]TopicSpec, 0, len(names)+1)
	for _, n := range names {
		specs = append(specs, TopicSpec{Name: cfg.Kafka.Topic(n), Partitions: cfg.Kafka.Partitions, ReplicationFactor: cfg.Kafka.ReplicationFactor, Configs: common()})
	}
	// The fraud rule sets: configuration, not events, so outside the retention policy; the
	// newest set per key is kept for good, in one partition (one order of versions).
	specs = append(specs, TopicSpec{Name: cfg.Kafka.Topic(event.TopicFraudRules), Partitions: 1, ReplicationFactor: cfg.Kafka.ReplicationFactor,
		Configs: map[string]string{
			"cleanup.policy":      "compact",
			"retention.ms":        "-1", // (brokers that trim compacted topics too: never)
			"retention.bytes":     "-1",
			"min.insync.replicas": strconv.Itoa(cfg.Kafka.MinInsyncReplicas),
		}})
	return specs
}

// EmbeddedPartitionBytes is the share of cfg.Kafka.EmbeddedLogBytes each topic partition
// keeps in embedded mode (0: no bound).
func EmbeddedPartitionBytes(cfg config.Config) int64 {
	var n int64
	for _, s := range TopicSpecs(cfg) {
		n += int64(s.Partitions)
	}
	if cfg.Kafka.EmbeddedLogBytes <= 0 || n == 0 {
		return 0
	}
	return max(cfg.Kafka.EmbeddedLogBytes/n, 1)
}

// EnsureTopics creates the topics that do not exist yet. It is safe to run again: existing
// topics are left as they are, but one with fewer partitions than wanted is an error, because
// keys would map to different partitions than the rest of the system expects.
func EnsureTopics(ctx context.Context, adm *kadm.Client, specs []TopicSpec) error {
	for _, s := range specs {
		cfgs := make(map[string]*string, len(s.Configs))
		for k, v := range s.Configs {
			cfgs[k] = kadm.StringPtr(v)
		}
		resp, err := adm.CreateTopic(ctx, s.Partitions, s.ReplicationFactor, cfgs, s.Name)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("create topic %s: %w (%s)", s.Name, err, resp.ErrMessage)
		}
	}
	desc, err := awaitTopics(ctx, adm, specs)
	if err != nil {
		return err
	}
	for i, d := range desc {
		if d.Partitions != specs[i].Partitions {
			return fmt.Errorf("topic %s has %d partitions, want %d", d.Name, d.Partitions, specs[i].Partitions)
		}
	}
	return nil
}

// awaitTopics waits until metadata shows every topic with a leader for each partition:
// brokers create topics asynchronously, so a describe right after creation can miss them.
func awaitTopics(ctx context.Context, adm *kadm.Client, specs []TopicSpec) ([]TopicInfo, error) {
	deadline := time.Now().Add(30 * time.Second)
	for backoff := 50 * time.Millisecond; ; backoff = min(2*backoff, time.Second) {
		desc, err := DescribeTopics(ctx, adm, specs)
		if err == nil {
			if err = leadersElected(ctx, adm, specs); err == nil {
				return desc, nil
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("topics not ready after 30s: %w", err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(backoff):
		}
	}
}

func leadersElected(ctx context.Context, adm *kadm.Client, specs []TopicSpec) error {
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Name
	}
	md, err := adm.ListTopics(ctx, names...)
	if err != nil {
		return err
	}
	for _, d := range md {
		for _, p := range d.Partitions {
			if p.Leader < 0 || p.Err != nil {
				return fmt.Errorf("topic %s partition %d has no leader yet", d.Topic, p.Partition)
			}
		}
	}
	return nil
}

// TopicInfo is what `topics describe` shows of a topic.
type TopicInfo struct {
	Name              string
	Partitions        int32
	ReplicationFactor int
	Configs           map[string]string
}

// DescribeTopics reads partitions, replication and the configs we manage for each spec.
func DescribeTopics(ctx context.Context, adm *kadm.Client, specs []TopicSpec) ([]TopicInfo, error) {
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Name
	}
	md, err := adm.ListTopics(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("describe topics: %w", err)
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("describe topic configs: %w", err)
	}
	out := make([]TopicInfo, 0, len(specs))
	for _, s := range specs {
		d, ok := md[s.Name]
		if !ok || d.Err != nil {
			return nil, fmt.Errorf("topic %s: not found (%v)", s.Name, d.Err)
		}
		info := TopicInfo{Name: s.Name, Partitions: int32(len(d.Partitions)), Configs: map[string]string{}}
		if len(d.Partitions) > 0 {
			info.ReplicationFactor = len(d.Partitions.Sorted()[0].Replicas)
		}
		if rc, err := rcs.On(s.Name, nil); err == nil {
			for _, c := range rc.Configs {
				if _, managed := s.Configs[c.Key]; managed && c.Value != nil {
					info.Configs[c.Key] = *c.Value
				}
			}
		}
		out = append(out, info)
	}
	return out, nil
}

// SortedKeys returns m's keys in order, for stable output.
func SortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
