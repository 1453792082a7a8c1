package rankeval

import (
	"math"
	"testing"
)

func set(items ...string) map[string]bool {
	m := map[string]bool{}
	for _, i := range items {
		m[i] = true
	}
	return m
}

// Every measure of a small case worked out by hand with Recommenders' definitions.
func TestMeasureByHand(t *testing.T) {
	truth := map[string]map[string]bool{"u1": set("a", "b", "c", "f"), "u2": set("d"), "u3": set("e")}
	recs := map[string][]string{
		"u1": {"a", "x", "b", "c"}, // top 3: hits at ranks 1 and 3
		"u2": {"x", "d", "d"},      // the copy of d counts once: a hit at rank 2
		"u9": {"a"},                // no held-out items: not measured
	}
	r := Measure(truth, recs, 3, 10)
	near := func(name string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > 1e-12 {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if r.Users != 2 || r.TruthOnly != 1 || r.K != 3 {
		t.Fatalf("users %d, without recommendations %d", r.Users, r.TruthOnly)
	}
	near("precision", r.Precision, (2.0/3+1.0/3)/2)
	near("recall", r.Recall, (2.0/4+1)/2)
	// u1: (1/1 + 2/3) over 4 held-out items (map) or min(4, 3) (map_at_k); u2: 1/2 over 1.
	near("MAP", r.MAP, ((5.0/3)/4+0.5)/2)
	near("MAP@k", r.MAPAtK, ((5.0/3)/3+0.5)/2)
	u1 := (1/math.Log(2) + 1/math.Log(4)) / (1/math.Log(2) + 1/math.Log(3) + 1/math.Log(4))
	u2 := (1 / math.Log(3)) / (1 / math.Log(2))
	near("nDCG (u3 counts, as 0)", r.NDCG, (u1+u2+0)/3)
	near("hit rate", r.HitRate, 1)
	near("coverage", r.Coverage, 4.0/10) // a, x, b, d
}

// A perfect ranking scores 1 on everything but precision (fewer relevant items than k), a
// list with no hit scores 0, and empty inputs do not divide by zero.
func TestMeasureBounds(t *testing.T) {
	truth := map[string]map[string]bool{"u": set("a", "b")}
	if r := Measure(truth, map[string][]string{"u": {"b", "a", "z"}}, 10, 0); r.Recall != 1 || r.MAP != 1 || r.MAPAtK != 1 ||
		math.Abs(r.NDCG-1) > 1e-12 || r.HitRate != 1 || r.Precision != 0.2 || r.Coverage != 0 {
		t.Errorf("perfect ranking: %+v", r)
	}
	if r := Measure(truth, map[string][]string{"u": {"y", "z"}}, 10, 5); r.Recall != 0 || r.MAP != 0 || r.NDCG != 0 || r.HitRate != 0 || r.Coverage != 0.4 {
		t.Errorf("no hit: %+v", r)
	}
	if r := Measure(nil, nil, 10, 5); r.Users != 0 || r.NDCG != 0 || r.Precision != 0 {
		t.Errorf("nothing: %+v", r)
	}
	if r := Measure(truth, map[string][]string{"u": {"a"}}, 0, 5); r.Users != 0 {
		t.Errorf("k = 0: %+v", r)
	}
}
