package sim

import (
	"testing"
)

// Honest shoppers keep to their favourite categories and price level, view the complement
// of what they add, and buy their staple again: what a recommender can learn.
func TestShoppersHaveTastes(t *testing.T) {
	s := mustNew(t, Config{Seed: 3, Users: 2000, Products: 2000, Start: testStart, Rate: 5})
	users := map[string]*user{}
	for i := range s.pop.users {
		users[s.pop.users[i].id] = &s.pop.users[i]
	}
	productIdx := map[string]int32{}
	for i := range s.cat.products {
		productIdx[s.cat.products[i].id] = int32(i)
	}
	tierOf := map[int32]uint8{}
	for c := range s.cat.cats {
		for tier, ps := range s.cat.cats[c].tiers {
			for _, p := range ps {
				tierOf[p] = uint8(tier)
			}
		}
	}
	var views, favourite, ownTier int
	var adds, compNext int
	lastAdd := map[string]int32{}    // session -> product added, until the next view
	stapleOrders := map[string]int{} // user -> orders holding their staple
	for range 400_000 {
		e, label := s.Next()
		if label != nil {
			continue
		}
		u := users[e.GetUserId()]
		if u == nil {
			continue
		}
		switch {
		case e.GetProductView() != nil:
			p := productIdx[e.GetProductView().GetProductId()]
			views++
			if c := s.cat.products[p].cat; c == u.tastes[0] || c == u.tastes[1] {
				favourite++
			}
			if tierOf[p] == u.tier {
				ownTier++
			}
			if a, ok := lastAdd[e.GetSessionId()]; ok {
				if s.cat.comp[a] == p {
					compNext++
				}
				delete(lastAdd, e.GetSessionId())
			}
		case e.GetCartAdd() != nil:
			adds++
			lastAdd[e.GetSessionId()] = productIdx[e.GetCartAdd().GetProductId()]
		case e.GetOrderPlaced() != nil && u.staple >= 0:
			for _, it := range e.GetOrderPlaced().GetItems() {
				if productIdx[it.GetProductId()] == u.staple {
					stapleOrders[u.id]++
				}
			}
		}
	}
	var again int
	for _, n := range stapleOrders {
		if n >= 2 {
			again++
		}
	}
	fav, tier, comp := float64(favourite)/float64(views), float64(ownTier)/float64(views), float64(compNext)/float64(adds)
	t.Logf("%d views: %.0f%% in a favourite category (2 of 40), %.0f%% at the user's price level (1 of 3); %.0f%% of %d adds followed by a view of the complement; %d users bought their staple in two orders or more",
		views, 100*fav, 100*tier, 100*comp, adds, again)
	// Honest shoppers are most of the traffic; without tastes these would be about 5%, 33% and 0.
	if fav < 0.5 || tier < 0.55 || comp < 0.2 || again < 20 {
		t.Errorf("tastes too weak: favourite %.2f, own price level %.2f, complement after an add %.2f, repeat staple buyers %d", fav, tier, comp, again)
	}
}
