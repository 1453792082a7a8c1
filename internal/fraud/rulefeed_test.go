package fraud

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/bytebasket/bytebasket/internal/bus/bustest"
	"github.com/bytebasket/bytebasket/internal/config"
	"github.com/bytebasket/bytebasket/internal/event"
	"github.com/bytebasket/bytebasket/internal/store/embedded"
)

func ordersRule(version, limit int) string {
	return fmt.Sprintf(`
version: %d
rules:
  - name: user-orders-1h
    on: [order_placed]
    group_by: user
    aggregate: count
    window: 1h
    compare: ">"
    limit: %d
    weight: 40
    action: review
`, version, limit)
}

// startFollowing runs an instance under what fraud-rules holds, following what is published
// there next, until the test ends.
func startFollowing(t *testing.T, cfg config.Config, instance string) *Processor {
	t.Helper()
	in, err := Latest(context.Background(), cfg.Kafka)
	if err != nil || in.Rules == nil {
		t.Fatalf("in force: %+v, %v", in, err)
	}
	st, err := embedded.Open(t.TempDir(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	fc := FromConfig(cfg, in.Rules, instance)
	fc.RulesFrom, fc.Model = in.Next, in.Model
	p, err := New(fc, cfg.Kafka, st, nil)
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		st.Close()
	})
	return p
}

// A published rule set takes over a running instance without a restart; an invalid set, or
// one whose version is not above the set in force, is refused whole and changes nothing.
func TestRulesSwitchWithoutRestart(t *testing.T) {
	br, cfg, cl := bustest.Embedded(t, 0)
	ctx := context.Background()
	if _, err := Publish(ctx, cfg.Kafka, []byte(ordersRule(1, 10))); err != nil {
		t.Fatal(err)
	}
	p := startFollowing(t, cfg, "swap")
	if v := p.RulesVersion(); v != 1 {
		t.Fatalf("version %d in force after publishing version 1", v)
	}

	now := time.Now().Add(-10 * time.Minute)
	orders := func(user string, from, n int) {
		for i := from; i < from+n; i++ {
			e := order(fmt.Sprintf("%s-%d", user, i), user, "card-"+user, now.Add(time.Duration(i)*time.Second), 1000)
			b, err := event.AppendEncode(nil, e)
			if err != nil {
				t.Fatal(err)
			}
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: event.TopicTransactions, Key: []byte(user), Value: b}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	orders("u-1", 0, 3) // under version 1's limit of 10: nothing

	invalid := strings.Replace(ordersRule(2, 1), "group_by: user", "group_by: account", 1)
	if _, err := Publish(ctx, cfg.Kafka, []byte(invalid)); err == nil ||
		!strings.Contains(err.Error(), `rule "user-orders-1h": field "group_by"`) {
		t.Fatalf("an invalid set was not refused with its rule and field: %v", err)
	}
	if _, err := Publish(ctx, cfg.Kafka, []byte(ordersRule(1, 0))); err == nil || !strings.Contains(err.Error(), "not above version 1") {
		t.Fatalf("a set of the version in force was not refused: %v", err)
	}
	time.Sleep(500 * time.Millisecond)
	if v := p.RulesVersion(); v != 1 {
		t.Fatalf("a refused set changed the version in force to %d", v)
	}
	if _, err := Publish(ctx, cfg.Kafka, []byte(ordersRule(2, 1))); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); p.RulesVersion() != 2 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	if v := p.RulesVersion(); v != 2 {
		t.Fatalf("version %d in force after publishing version 2", v)
	}
	orders("u-1", 3, 1) // the fourth order of the hour: over version 2's limit of 1
	orders("u-2", 0, 2) // the second: over it too
	var got []string
	for deadline := time.Now().Add(15 * time.Second); len(got) < 2 && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		got = got[:0]
		for _, d := range alerts(t, br.Addr()) {
			got = append(got, fmt.Sprintf("%s v%d", d.GetOrderId(), d.GetRulesVersion()))
		}
	}
	slices.Sort(got)
	if want := []string{"o-u-1-3 v2", "o-u-2-1 v2"}; !slices.Equal(got, want) {
		t.Fatalf("decisions %v, want %v", got, want)
	}
}
