// Package rankeval measures top-k recommendations against held-out interactions, with the
// definitions of Microsoft Recommenders' python_evaluation (binary relevance: every held-out
// interaction is relevant), so figures compare with its published tables.
package rankeval

import (
	"maps"
	"math"
	"slices"
)

// Report is one model's top-k figures.
type Report struct {
	K int `json:"k"`
	// Users: users with held-out items and recommendations, over whom every measure but
	// NDCG is averaged (a user without a hit counts as 0); NDCG is averaged over every user
	// with held-out items, as Recommenders has done since 2022.
	Users     int     `json:"users"`
	TruthOnly int     `json:"users_without_recommendations"`
	Precision float64 `json:"precision_at_k"` // hits / k
	Recall    float64 `json:"recall_at_k"`    // hits / held-out items
	// MAP divides each user's average-precision sum by the held-out items (Recommenders'
	// `map`, its `map_at_k` before 1.2.0: the figure of the published SAR tables); MAPAtK by
	// min(held-out items, k) (its `map_at_k` since 1.2.0).
	MAP     float64 `json:"map"`
	MAPAtK  float64 `json:"map_at_k"`
	NDCG    float64 `json:"ndcg_at_k"`
	HitRate float64 `json:"hit_rate_at_k"` // users with at least one hit
	// Coverage: distinct items recommended in anyone's top k, over the catalog.
	Coverage float64 `json:"catalog_coverage"`
}

// Measure scores recs (each user's recommendations, best first) against truth (each user's
// held-out items) at k; catalog is the number of items that could be recommended (0 leaves
// Coverage out). An item listed twice for a user counts once, where it first appears.
func Measure(truth map[string]map[string]bool, recs map[string][]string, k, catalog int) Report {
	r := Report{K: k}
	if k <= 0 {
		return r
	}
	recommended := map[string]bool{}
	var ndcg float64
	for _, user := range slices.Sorted(maps.Keys(truth)) { // a fixed order: sums do not vary
		relevant := truth[user]
		if len(relevant) == 0 {
			continue
		}
		list, ok := recs[user]
		if !ok {
			r.TruthOnly++
			continue
		}
		r.Users++
		top := topK(list, k)
		var hits, apSum, dcg float64
		for i, item := range top {
			recommended[item] = true
			if relevant[item] {
				hits++
				rank := float64(i + 1)
				apSum += hits / rank
				dcg += 1 / math.Log(1+rank)
			}
		}
		var idcg float64
		for i := 1; i <= min(k, len(relevant)); i++ {
			idcg += 1 / math.Log(1+float64(i))
		}
		n := float64(len(relevant))
		r.Precision += hits / float64(k)
		r.Recall += hits / n
		r.MAP += apSum / n
		r.MAPAtK += apSum / math.Min(n, float64(k))
		ndcg += dcg / idcg
		if hits > 0 {
			r.HitRate++
		}
	}
	if r.Users > 0 {
		u := float64(r.Users)
		r.Precision, r.Recall, r.MAP, r.MAPAtK, r.HitRate = r.Precision/u, r.Recall/u, r.MAP/u, r.MAPAtK/u, r.HitRate/u
	}
	if all := r.Users + r.TruthOnly; all > 0 {
		r.NDCG = ndcg / float64(all)
	}
	if catalog > 0 {
		r.Coverage = float64(len(recommended)) / float64(catalog)
	}
	return r
}

// topK is the first k distinct items of list.
func topK(list []string, k int) []string {
	out := make([]string, 0, min(k, len(list)))
	seen := make(map[string]bool, k)
	for _, item := range list {
		if len(out) == k {
			break
		}
		if !seen[item] {
			seen[item] = true
			out = append(out, item)
		}
	}
	return out
}
