package split

import (
	"fmt"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/bytebasket/bytebasket/internal/recommend/interactions"
)

func data() []interactions.Interaction {
	var in []interactions.Interaction
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for u := range 20 {
		for i := range 4 + u%9 { // 4 to 12 interactions per user
			in = append(in, interactions.Interaction{User: fmt.Sprint("u", u), Item: fmt.Sprint("i", (u*7+i*3)%40), Rating: 1,
				Time: t0.Add(time.Duration(u*13+i*29) * time.Hour)})
		}
	}
	return in
}

func TestStratifiedKeepsEachUsersShare(t *testing.T) {
	in := data()
	s := Stratified(in, 0.75, 42)
	per := map[string][2]int{} // user -> all, trained
	for _, x := range in {
		c := per[x.User]
		c[0]++
		per[x.User] = c
	}
	trained := map[string]map[string]bool{}
	for _, x := range s.Train {
		c := per[x.User]
		c[1]++
		per[x.User] = c
		if trained[x.User] == nil {
			trained[x.User] = map[string]bool{}
		}
		trained[x.User][x.Item] = true
	}
	for u, c := range per {
		if want := int(math.Round(0.75 * float64(c[0]))); c[1] != want {
			t.Errorf("%s: %d of %d trained on, want %d", u, c[1], c[0], want)
		}
		for item := range s.Truth[u] {
			if trained[u][item] {
				t.Errorf("%s: held-out %s is also trained on", u, item)
			}
		}
	}
	if again := Stratified(data(), 0.75, 42); !reflect.DeepEqual(again, s) {
		t.Error("the same seed drew another split")
	}
	if other := Stratified(data(), 0.75, 7); reflect.DeepEqual(other.Truth, s.Truth) {
		t.Error("another seed drew the same split")
	}
}

func TestByTimeTrainsOnThePast(t *testing.T) {
	in := data()
	late := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	in = append(in, interactions.Interaction{User: "new", Item: "i1", Time: late},
		interactions.Interaction{User: "u3", Item: "i99", Time: late})
	s := ByTime(in, 0.75)
	if n := len(s.Train); n < len(in)*7/10 || n > len(in)*8/10 {
		t.Errorf("%d of %d trained on, want about 75%%", n, len(in))
	}
	trained := map[interactions.Interaction]bool{}
	var latest time.Time
	for _, x := range s.Train {
		trained[x] = true
		if x.Time.After(latest) {
			latest = x.Time
		}
	}
	for _, x := range in {
		if !trained[x] && !x.Time.After(latest) {
			t.Errorf("held out %v, not after the newest trained on (%v)", x, latest)
		}
	}
	if s.Truth["new"] != nil {
		t.Error("a user with nothing to train on is tested")
	}
	if !s.Truth["u3"]["i99"] {
		t.Errorf("u3's later item is not held out: %v", s.Truth["u3"])
	}
	for u := range s.Truth {
		if !trainedUser(s.Train, u) {
			t.Errorf("test user %s has no training interactions", u)
		}
	}
}

func trainedUser(xs []interactions.Interaction, u string) bool {
	for _, x := range xs {
		if x.User == u {
			return true
		}
	}
	return false
}
