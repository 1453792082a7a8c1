package fraudtest

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The model trained from chargebacks, deployed as a shop would (`go test -run '^$' -bench
// FraudModelQuality -benchtime 1x -timeout 60m ./test/fraud/`): a 5,000-user shop's 13 days
// are produced while the fraud role (rules only) and the archive follow them; `batch
// fraud-train` learns from the lake's chargebacks (the orders of the 8 days that end 4 days
// before the last event, four days for their chargebacks to come) and publishes the model; the running role picks it up, and the next two
// days are scored by rules and model together. `fraud evaluate` over those two days gives the
// combined figures, and what the rules and the model each flagged in the same run. Two seeds
// and the other mix, as for BenchmarkFraudQuality. BYTEBASKET_BENCH_REVIEW_BUDGET trains with
// another --review-budget.
func BenchmarkFraudModelQuality(b *testing.B) {
	const (
		simRate     = 2 // events per simulated second: 173k a day
		historyDays = 13
		scoredDays  = 2
		labelWindow = 96 * time.Hour
		trainDays   = 8
	)
	for _, c := range qualityCases {
		b.Run(c.name, func(b *testing.B) {
			for range b.N {
				e := newEnv(b)
				e.vars = append(e.vars, "BYTEBASKET_LAKE_BACKEND=local", "BYTEBASKET_LAKE_ROOT=lake", "BYTEBASKET_BATCH_ENGINE=duckdb",
					"BYTEBASKET_ARCHIVE_GROUP="+e.prefix+"archive", "BYTEBASKET_ARCHIVE_ROLL_INTERVAL=10s")
				start := time.Now().Add(-(historyDays + scoredDays + 1) * 24 * time.Hour).Truncate(time.Second)
				flags := append([]string{"--sim-rate", fmt.Sprint(simRate), "--throttle", benchThrottle()}, c.extra...)
				fraudAddr, stopFraud := e.start()
				archiveAddr, stopArchive := e.startRole("archive")
				history := historyDays * 24 * 3600 * simRate
				_, last := eventSpan(b, e.produce(history, c.seed, start, flags...))
				e.noLag(archiveAddr, "archive", 8)
				stopArchive()

				train := []string{"batch", "fraud-train", "--to", last.Add(-labelWindow).Format(time.RFC3339), "--days", fmt.Sprint(trainDays),
					"--label-window", labelWindow.String(), "--publish"}
				if v := os.Getenv("BYTEBASKET_BENCH_REVIEW_BUDGET"); v != "" { // the trade-off of another budget
					train = append(train, "--review-budget", v)
				}
				out := e.run(train...)
				fmt.Printf("%s: %s\n", b.Name(), out) // stdout: a benchmark's log is cut at a few lines
				m := regexp.MustCompile(`model version (\d+) published`).FindStringSubmatch(out)
				if m == nil {
					b.Fatal("fraud-train published no model")
				}
				e.waitMetric(fraudAddr, "bytebasket_fraud_model_version", m[1])

				scored, _ := eventSpan(b, e.produce(scoredDays*24*3600*simRate, c.seed, start, append(flags, "--skip", fmt.Sprint(history))...))
				e.caughtUp(fraudAddr)
				stopFraud()
				r := e.evaluate("--since", scored.Format(time.RFC3339Nano))
				var sb strings.Builder
				r.Print(&sb)
				fmt.Printf("%s, the %d scored days:\n%s\n", b.Name(), scoredDays, sb.String())
				if _, ok := r.BySource["model"]; !ok {
					b.Fatal("no decision of the scored days was made with the model")
				}
				reportQuality(b, r)
				for name, s := range r.BySource {
					b.ReportMetric(s.Recall, "recall-"+name)
					b.ReportMetric(s.FalsePositiveRate*100, "honest-flagged-%-"+name)
					b.ReportMetric(float64(s.Only), "fraud-only-by-"+name)
				}
			}
		})
	}
}

// eventSpan is the event times of the first and last event a produce run reported.
func eventSpan(t testing.TB, out string) (first, last time.Time) {
	t.Helper()
	m := regexp.MustCompile(`event time (\S+) \.\. (\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("produce reported no event times: %q", out)
	}
	first, err1 := time.Parse(time.RFC3339Nano, m[1])
	last, err2 := time.Parse(time.RFC3339Nano, m[2])
	if err1 != nil || err2 != nil {
		t.Fatalf("produce's event times %q: %v %v", m[0], err1, err2)
	}
	return first, last
}

// waitMetric waits for the unlabelled metric name at addr to read value.
func (e *env) waitMetric(addr, name, value string) {
	e.t.Helper()
	re := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`)
	var got []string
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if got = re.FindStringSubmatch(e.metrics(addr)); got != nil && got[1] == value {
			return
		}
	}
	e.t.Fatalf("%s: %v, want %s", name, got, value)
}
