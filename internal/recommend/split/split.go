// Package split divides interactions into what a model learns from and what it is measured
// on, as Microsoft Recommenders' splitters do, so figures compare with its tables.
package split

import (
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/bytebasket/bytebasket/internal/recommend/interactions"
)

// Split is a train set and each test user's held-out items.
type Split struct {
	Train []interactions.Interaction
	// Truth: each user's held-out items that are not in the user's training interactions
	// (a model that leaves out what a user has seen could never recommend those), for users
	// with training interactions.
	Truth map[string]map[string]bool
}

// Stratified holds out, of each user's interactions in a random order (seeded), all but the
// first round(ratio x n): Recommenders' python_stratified_split, the split of the published
// SAR figures (ratio 0.75).
func Stratified(in []interactions.Interaction, ratio float64, seed uint64) Split {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	byUser := map[string][]interactions.Interaction{}
	for _, x := range in {
		byUser[x.User] = append(byUser[x.User], x)
	}
	var train, test []interactions.Interaction
	for _, user := range slices.Sorted(maps.Keys(byUser)) { // a fixed order: the seed decides
		xs := byUser[user]
		rng.Shuffle(len(xs), func(i, j int) { xs[i], xs[j] = xs[j], xs[i] })
		n := int(math.Round(ratio * float64(len(xs))))
		train, test = append(train, xs[:n]...), append(test, xs[n:]...)
	}
	return build(train, test)
}

// ByTime holds out everything from the time before which ratio of the interactions
// happened: the model learns the past and is measured on what followed, as a shop's
// would be.
func ByTime(in []interactions.Interaction, ratio float64) Split {
	xs := slices.Clone(in)
	slices.SortStableFunc(xs, func(a, b interactions.Interaction) int { return a.Time.Compare(b.Time) })
	n := int(math.Round(ratio * float64(len(xs))))
	if n > 0 && n < len(xs) { // interactions at the cut's instant all go to the test side
		n, _ = slices.BinarySearchFunc(xs, xs[n].Time, func(x interactions.Interaction, t time.Time) int { return x.Time.Compare(t) })
	}
	return build(xs[:n], xs[n:])
}

func build(train, test []interactions.Interaction) Split {
	seen := map[string]map[string]bool{}
	for _, x := range train {
		if seen[x.User] == nil {
			seen[x.User] = map[string]bool{}
		}
		seen[x.User][x.Item] = true
	}
	truth := map[string]map[string]bool{}
	for _, x := range test {
		if seen[x.User] == nil || seen[x.User][x.Item] {
			continue
		}
		if truth[x.User] == nil {
			truth[x.User] = map[string]bool{}
		}
		truth[x.User][x.Item] = true
	}
	return Split{Train: train, Truth: truth}
}
