// Package evaluate measures fraud decisions against ground truth: which orders were fraud
// (the simulator's sim-labels, or a shop's confirmed cases) against which ones the fraud
// role reviewed or blocked.
package evaluate

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/bytebasket/bytebasket/internal/fraud/rules"
	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
)

// Order is one order of the evaluated period and its truth: the fraud scenario it belongs
// to, or "" for an honest order.
type Order struct {
	ID    string
	Fraud string
}

// Report is the quality of the decisions over a set of orders. An order counts as flagged
// when any decision on it (the order's own, or one of its payment attempts') reviews or
// blocks it; its score is the highest of them (0 without any).
type Report struct {
	Orders         int     `json:"orders"`
	FraudOrders    int     `json:"fraud_orders"`
	Flagged        int     `json:"flagged"`
	TruePositives  int     `json:"true_positives"`
	FalsePositives int     `json:"false_positives"`
	Precision      float64 `json:"precision"`
	Recall         float64 `json:"recall"`
	F1             float64 `json:"f1"`
	// FalsePositiveRate: honest orders flagged, over all honest orders.
	FalsePositiveRate float64 `json:"false_positive_rate"`
	// AUPRC: area under the precision-recall curve of the scores (average precision).
	AUPRC      float64                   `json:"auprc"`
	ByScenario map[string]ScenarioRecall `json:"by_scenario"`
	// Decision latency: decision time minus the scored event's arrival at the pipeline.
	LatencyP50 time.Duration `json:"latency_p50_ns"`
	LatencyP99 time.Duration `json:"latency_p99_ns"`
	Decisions  int           `json:"decisions"`
	// Unmatched: decisions on orders not in the period (their order was placed before it).
	Unmatched int `json:"decisions_on_unknown_orders"`
	// UnmatchedByKind: those by scored kind (payments of orders placed before the period).
	UnmatchedByKind map[string]int `json:"decisions_on_unknown_orders_by_kind"`
	// MonitoringAlerts: transaction-monitoring alerts in the topic (about no order: not
	// measured here).
	MonitoringAlerts int `json:"monitoring_alerts"`
	// BySource: what the rules and the model each flagged (an order both flagged counts in
	// both), so one run shows what the model adds to the rules. "model" is present once a
	// decision was scored by a model.
	BySource map[string]SourceReport `json:"by_source"`
}

// SourceReport is what one source of decisions (the rules, the model) flagged on its own.
type SourceReport struct {
	Flagged           int     `json:"flagged"`
	TruePositives     int     `json:"true_positives"`
	Precision         float64 `json:"precision"`
	Recall            float64 `json:"recall"`
	FalsePositiveRate float64 `json:"false_positive_rate"`
	// Only: fraud orders this source alone flagged.
	Only int `json:"fraud_flagged_only_by_it"`
}

// Sources of a decision's review or block.
const (
	SourceRules = "rules"
	SourceModel = rules.ModelReason
)

// sources is which sources asked for more than allow in d.
func sources(d *pb.FraudDecision) (rules, model bool) {
	for _, r := range d.GetReasons() {
		if r.GetAction() == pb.FraudAction_FRAUD_ACTION_REVIEW || r.GetAction() == pb.FraudAction_FRAUD_ACTION_BLOCK {
			if r.GetRule() == SourceModel {
				model = true
			} else {
				rules = true
			}
		}
	}
	return rules, model
}

// ScenarioRecall is how many of a scenario's orders were flagged.
type ScenarioRecall struct {
	Orders  int     `json:"orders"`
	Flagged int     `json:"flagged"`
	Recall  float64 `json:"recall"`
}

// Compute evaluates decisions against orders.
func Compute(orders []Order, decisions []*pb.FraudDecision) Report {
	score := map[string]int32{}
	flagged := map[string]bool{}
	byRules, byModel := map[string]bool{}, map[string]bool{}
	scoredByModel := false
	var lat []time.Duration
	known := make(map[string]bool, len(orders))
	for _, o := range orders {
		known[o.ID] = true
	}
	r := Report{ByScenario: map[string]ScenarioRecall{}, UnmatchedByKind: map[string]int{}, Decisions: len(decisions)}
	for _, d := range decisions {
		if d.GetKind() == "monitoring" {
			r.MonitoringAlerts++
			r.Decisions--
			continue
		}
		id := d.GetOrderId()
		if !known[id] {
			r.Unmatched++
			r.UnmatchedByKind[d.GetKind()]++
			continue
		}
		if d.GetAction() == pb.FraudAction_FRAUD_ACTION_REVIEW || d.GetAction() == pb.FraudAction_FRAUD_ACTION_BLOCK {
			flagged[id] = true
		}
		score[id] = max(score[id], d.GetScore())
		rules, model := sources(d)
		byRules[id] = byRules[id] || rules
		byModel[id] = byModel[id] || model
		scoredByModel = scoredByModel || model || d.GetModelVersion() > 0
		if d.GetReceivedAt() != nil && d.GetDecidedAt() != nil {
			lat = append(lat, d.GetDecidedAt().AsTime().Sub(d.GetReceivedAt().AsTime()))
		}
	}
	for _, o := range orders {
		r.Orders++
		f := flagged[o.ID]
		if f {
			r.Flagged++
		}
		if o.Fraud == "" {
			if f {
				r.FalsePositives++
			}
			continue
		}
		r.FraudOrders++
		sc := r.ByScenario[o.Fraud]
		sc.Orders++
		if f {
			r.TruePositives++
			sc.Flagged++
		}
		sc.Recall = ratio(sc.Flagged, sc.Orders)
		r.ByScenario[o.Fraud] = sc
	}
	r.Precision = ratio(r.TruePositives, r.Flagged)
	r.Recall = ratio(r.TruePositives, r.FraudOrders)
	if r.Precision+r.Recall > 0 {
		r.F1 = 2 * r.Precision * r.Recall / (r.Precision + r.Recall)
	}
	r.FalsePositiveRate = ratio(r.FalsePositives, r.Orders-r.FraudOrders)
	r.BySource = map[string]SourceReport{SourceRules: r.source(orders, byRules, byModel)}
	if scoredByModel {
		r.BySource[SourceModel] = r.source(orders, byModel, byRules)
	}
	r.AUPRC = averagePrecision(orders, score)
	if len(lat) > 0 {
		slices.Sort(lat)
		r.LatencyP50, r.LatencyP99 = lat[len(lat)*50/100], lat[min(len(lat)*99/100, len(lat)-1)]
	}
	return r
}

// source is what one source flagged (the orders in flagged), other the other source.
func (r *Report) source(orders []Order, flagged, other map[string]bool) SourceReport {
	var s SourceReport
	for _, o := range orders {
		if !flagged[o.ID] {
			continue
		}
		s.Flagged++
		if o.Fraud != "" {
			s.TruePositives++
			if !other[o.ID] {
				s.Only++
			}
		}
	}
	s.Precision, s.Recall = ratio(s.TruePositives, s.Flagged), ratio(s.TruePositives, r.FraudOrders)
	s.FalsePositiveRate = ratio(s.Flagged-s.TruePositives, r.Orders-r.FraudOrders)
	return s
}

// averagePrecision is the area under the precision-recall curve of orders ranked by score
// (see Ranking).
func averagePrecision(orders []Order, score map[string]int32) float64 {
	scores, fraud := make([]float64, len(orders)), make([]bool, len(orders))
	for i, o := range orders {
		scores[i], fraud[i] = float64(score[o.ID]), o.Fraud != ""
	}
	ap, _ := Ranking(scores, fraud)
	return ap
}

// Ranking measures scores against the truth positive: the average precision (area under the
// precision-recall curve: precision at each step weighted by the recall it adds) and the AUC
// (the chance that a positive outranks a negative). Equal scores are one step: no
// threshold can split them. Both are 0 without positives, AUC also without negatives.
func Ranking(scores []float64, positive []bool) (ap, auc float64) {
	idx := make([]int, len(scores))
	pos := 0
	for i := range idx {
		idx[i] = i
		if positive[i] {
			pos++
		}
	}
	neg := len(scores) - pos
	if pos == 0 {
		return 0, 0
	}
	sort.SliceStable(idx, func(a, b int) bool { return scores[idx[a]] > scores[idx[b]] })
	var hits, seen, above float64
	for i := 0; i < len(idx); {
		j := i
		var p float64
		for j < len(idx) && scores[idx[j]] == scores[idx[i]] {
			if positive[idx[j]] {
				p++
			}
			j++
		}
		seen += float64(j - i)
		hits += p
		ap += p / float64(pos) * hits / seen
		// Each negative here ranks below the positives before it, and ties half of these.
		above += (float64(j-i) - p) * (hits - p/2)
		i = j
	}
	if neg > 0 {
		auc = above / float64(pos*neg)
	}
	return ap, auc
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// Print writes r as a table.
func (r Report) Print(w io.Writer) {
	fmt.Fprintf(w, "orders %d (fraud %d, honest %d); decisions %d", r.Orders, r.FraudOrders, r.Orders-r.FraudOrders, r.Decisions)
	if r.Unmatched > 0 {
		fmt.Fprintf(w, " (%d on orders outside the period)", r.Unmatched)
	}
	if r.MonitoringAlerts > 0 {
		fmt.Fprintf(w, "; transaction-monitoring alerts %d", r.MonitoringAlerts)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "%-26s %8s\n", "measure", "value")
	for _, m := range []struct {
		name string
		v    float64
	}{{"precision", r.Precision}, {"recall", r.Recall}, {"F1", r.F1}, {"AUPRC", r.AUPRC},
		{"honest orders flagged", r.FalsePositiveRate}} {
		fmt.Fprintf(w, "%-26s %8.4f\n", m.name, m.v)
	}
	fmt.Fprintf(w, "%-26s %8s / %s\n", "decision latency p50/p99", r.LatencyP50.Round(time.Millisecond), r.LatencyP99.Round(time.Millisecond))
	if len(r.BySource) > 1 {
		fmt.Fprintf(w, "\n%-26s %8s %9s %8s %8s %14s\n", "flagged by", "flagged", "precision", "recall", "honest", "fraud only by")
		for _, name := range slices.Sorted(maps.Keys(r.BySource)) {
			s := r.BySource[name]
			fmt.Fprintf(w, "%-26s %8d %9.4f %8.4f %8.4f %14d\n", name, s.Flagged, s.Precision, s.Recall, s.FalsePositiveRate, s.Only)
		}
	}
	fmt.Fprintf(w, "\n%-26s %8s %8s %8s\n", "scenario", "orders", "flagged", "recall")
	for _, name := range slices.Sorted(maps.Keys(r.ByScenario)) {
		s := r.ByScenario[name]
		fmt.Fprintf(w, "%-26s %8d %8d %8.4f\n", strings.ReplaceAll(name, "_", " "), s.Orders, s.Flagged, s.Recall)
	}
}
