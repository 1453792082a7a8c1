package baseline

import (
	"reflect"
	"slices"
	"testing"

	"github.com/bytebasket/bytebasket/internal/recommend/interactions"
)

func TestPopularAndRandomLeaveOutWhatWasSeen(t *testing.T) {
	var train []interactions.Interaction
	add := func(user string, items ...string) {
		for _, it := range items {
			train = append(train, interactions.Interaction{User: user, Item: it, Rating: 1})
		}
	}
	add("u1", "a", "b", "c", "a") // a repeat counts its user once
	add("u2", "a", "b")
	add("u3", "a", "d")
	c := NewCatalog(train)
	if want := []string{"a", "b", "c", "d"}; !slices.Equal(c.Items, want) {
		t.Fatalf("by popularity %v, want %v (a 3 users, b 2, then c and d by id)", c.Items, want)
	}
	pop := c.Popular([]string{"u1", "u2", "u3", "stranger"}, 2)
	want := map[string][]string{"u1": {"d"}, "u2": {"c", "d"}, "u3": {"b", "c"}, "stranger": {"a", "b"}}
	if !reflect.DeepEqual(pop, want) {
		t.Errorf("popular %v, want %v", pop, want)
	}
	r1 := c.Random([]string{"u1", "u2", "u3", "stranger"}, 2, 1)
	for u, list := range r1 {
		if len(list) != len(want[u]) {
			t.Errorf("random for %s: %v, want %d items", u, list, len(want[u]))
		}
		for _, it := range list {
			if c.Seen[u][it] {
				t.Errorf("random for %s: %s was seen", u, it)
			}
		}
	}
	if r2 := c.Random([]string{"stranger", "u3", "u2", "u1"}, 2, 1); !reflect.DeepEqual(r1, r2) {
		t.Errorf("the same seed drew %v, then %v", r1, r2)
	}
}
