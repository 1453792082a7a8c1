// Package baseline is what a recommender must beat: the most popular items and random ones,
// each leaving out what the user already interacted with.
package baseline

import (
	"cmp"
	"maps"
	"math/rand/v2"
	"slices"

	"github.com/bytebasket/bytebasket/internal/recommend/interactions"
)

// Catalog is what the training interactions say about items and users.
type Catalog struct {
	Items []string                   // by popularity: distinct users, most first (ties by id)
	Seen  map[string]map[string]bool // each user's items
}

// NewCatalog indexes train.
func NewCatalog(train []interactions.Interaction) Catalog {
	c := Catalog{Seen: map[string]map[string]bool{}}
	users := map[string]int{}
	for _, x := range train {
		if c.Seen[x.User] == nil {
			c.Seen[x.User] = map[string]bool{}
		}
		if !c.Seen[x.User][x.Item] {
			c.Seen[x.User][x.Item] = true
			users[x.Item]++
		}
	}
	c.Items = slices.SortedFunc(maps.Keys(users), func(a, b string) int {
		return cmp.Or(cmp.Compare(users[b], users[a]), cmp.Compare(a, b))
	})
	return c
}

// Popular is each of users' k most popular items they have not seen.
func (c Catalog) Popular(users []string, k int) map[string][]string {
	out := make(map[string][]string, len(users))
	for _, u := range users {
		var list []string
		for _, item := range c.Items {
			if len(list) == k {
				break
			}
			if !c.Seen[u][item] {
				list = append(list, item)
			}
		}
		out[u] = list
	}
	return out
}

// Random is k items drawn for each of users (seeded) among those they have not seen.
func (c Catalog) Random(users []string, k int, seed uint64) map[string][]string {
	rng := rand.New(rand.NewPCG(seed, ^seed))
	out := make(map[string][]string, len(users))
	for _, u := range slices.Sorted(slices.Values(users)) { // a fixed order: the seed decides
		unseen := slices.DeleteFunc(slices.Clone(c.Items), func(item string) bool { return c.Seen[u][item] })
		rng.Shuffle(len(unseen), func(i, j int) { unseen[i], unseen[j] = unseen[j], unseen[i] })
		out[u] = unseen[:min(k, len(unseen))]
	}
	return out
}
