package chaos

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/bytebasket/bytebasket/internal/config"
	"github.com/bytebasket/bytebasket/internal/event"
	"github.com/bytebasket/bytebasket/internal/fraud"
	"github.com/bytebasket/bytebasket/internal/testenv"
	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
)

// A rule set whose decisions depend only on each user's own payment events (one topic,
// read in offset order), so the decisions a run must produce are known exactly: every
// attempt is reviewed, and blocked from a user's second attempt within the hour. A card
// rule that fires on every attempt sends each one through the repartition stage too.
const chaosRules = `
version: 7
rules:
  - name: every-attempt
    on: [order_placed, payment_authorized, payment_failed]
    group_by: user
    aggregate: count
    window: 1h
    compare: ">="
    limit: 1
    weight: 10
    action: review
  - name: repeat-attempts-1h
    on: [order_placed, payment_authorized, payment_failed]
    group_by: user
    aggregate: count
    window: 1h
    compare: ">"
    limit: 1
    weight: 60
    action: block
  - name: card-seen-1h
    on: [order_placed, payment_authorized, payment_failed]
    group_by: card
    aggregate: count
    window: 1h
    compare: ">="
    limit: 1
    weight: 5
    action: review
`

// Two fraud instances: one is killed -9 mid-stream and restarted, the other frozen past the
// session timeout and resumed. fraud-alerts, read committed, holds every expected decision
// exactly once, with the action the rules give.
func fraudExactlyOnce(t *testing.T) {
	s := newScenario(t, "fraud", 400, 75)
	rulesFile := filepath.Join(t.TempDir(), "rules.yml")
	if err := os.WriteFile(rulesFile, []byte(chaosRules), 0o644); err != nil {
		t.Fatal(err)
	}
	group := fmt.Sprintf("chaos-fraud-%d", s.seed)
	launch := func() *proc { return s.launch("fraud", "--rules", rulesFile, "--group", group) }
	a, b := launch(), launch()
	wait := s.produce()
	time.Sleep(20 * time.Second)
	a.kill()
	b.signal(syscall.SIGSTOP)
	time.Sleep(25 * time.Second) // past the 10 s session timeout
	a = launch()
	b.signal(syscall.SIGCONT)
	wait()
	awaitCaughtUp(t, "fraud", []*proc{a, b}, 2*time.Minute)
	// A decision visits the repartition stage once per key: it has read everything once it
	// shows no lag twice, a few commit intervals apart.
	for range 2 {
		awaitCaughtUp(t, "fraud_keys", []*proc{a, b}, 2*time.Minute)
		time.Sleep(time.Second)
	}

	want := map[string]pb.FraudAction{}
	attempts := map[string][]time.Time{}
	for _, e := range s.expected().events {
		switch event.KindOf(e) {
		case event.KindOrderPlaced, event.KindPaymentAuthorized, event.KindPaymentFailed:
		default:
			continue
		}
		at := e.GetEventTime().AsTime()
		n := 0
		for _, prev := range attempts[e.GetUserId()] {
			if at.Sub(prev) < time.Hour {
				n++
			}
		}
		attempts[e.GetUserId()] = append(attempts[e.GetUserId()], at)
		want[e.GetEventId()] = pb.FraudAction_FRAUD_ACTION_REVIEW
		if n >= 1 {
			want[e.GetEventId()] = pb.FraudAction_FRAUD_ACTION_BLOCK
		}
	}
	got := s.committedDecisions()
	seen := map[string]int{}
	var wrong, extra []string
	for _, d := range got {
		seen[d.GetEventId()]++
		w, ok := want[d.GetEventId()]
		switch {
		case !ok:
			extra = append(extra, d.GetEventId())
		case d.GetAction() != w:
			wrong = append(wrong, fmt.Sprintf("%s: %v, want %v", d.GetEventId(), d.GetAction(), w))
		case d.GetRulesVersion() != 7:
			wrong = append(wrong, fmt.Sprintf("%s: rules version %d", d.GetEventId(), d.GetRulesVersion()))
		case !slices.ContainsFunc(d.GetReasons(), func(r *pb.FraudReason) bool { return r.GetRule() == "card-seen-1h" }):
			wrong = append(wrong, fmt.Sprintf("%s: not through the repartition stage (reasons %v)", d.GetEventId(), d.GetReasons()))
		}
	}
	var missing, twice []string
	for id := range want {
		switch n := seen[id]; {
		case n == 0:
			missing = append(missing, id)
		case n > 1:
			twice = append(twice, fmt.Sprintf("%s x%d", id, n))
		}
	}
	slices.Sort(missing)
	slices.Sort(twice)
	if len(want) < 100 || len(missing)+len(twice)+len(extra)+len(wrong) > 0 {
		t.Fatalf("%d decisions expected, %d committed: %d missing %.5v, %d more than once %.5v, %d not expected %.5v, %d wrong %.5v",
			len(want), len(got), len(missing), missing, len(twice), twice, len(extra), extra, len(wrong), wrong)
	}
	aborted, _ := sum(a.metrics(), `bytebasket_fraud_transactions_total{outcome="aborted"}`)
	t.Logf("%d decisions, each once; the restarted instance aborted %v transactions", len(got), aborted)
}

// committedDecisions reads every committed decision of the scenario's fraud-alerts.
func (s *scenario) committedDecisions() []*pb.FraudDecision {
	s.t.Helper()
	k := config.Default().Kafka
	k.Brokers, k.TopicPrefix = []string{testenv.Addr(s.t, testenv.Kafka)}, fmt.Sprintf("chaos%d-", s.seed)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := fraud.Decisions(ctx, k)
	if err != nil {
		s.t.Fatal(err)
	}
	return out
}
