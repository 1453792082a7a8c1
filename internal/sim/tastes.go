package sim

import (
	"cmp"
	"slices"
)

// What makes shoppers predictable, so there is something personal for a recommender to
// learn: each user's favourite categories (persistent across sessions), a complement for
// every product (bought together: a phone, then a case from the paired category), and a
// staple some returning users buy again and again (a consumable).

// consumables are the categories whose products are bought again.
var consumables = map[string]bool{"grocery": true, "beauty": true, "health": true, "pet supplies": true, "baby": true}

// The shares of honest shoppers' choices the tastes make, the rest following the shop's
// popularity as before.
const (
	tasteShare  = 0.8 // a category chosen is one of the user's favourites
	compShare   = 0.5 // after a cart add, the next product viewed is its complement
	stapleShare = 0.6 // a session of a user with a staple views it (and adds it as planned)
	stapleUsers = 0.5 // of returning users, those with a staple
)

// numTiers price levels: a shopper keeps to one across categories.
const numTiers = 3

// tierShare of an honest shopper's picks within a category keep to their price level.
const tierShare = 0.8

// drawTiers splits each category's products into price terciles.
func (c *catalog) drawTiers(w func(int32) float64) {
	for i := range c.cats {
		ct := &c.cats[i]
		byPrice := slices.Clone(ct.products)
		slices.SortStableFunc(byPrice, func(a, b int32) int { return cmp.Compare(c.products[a].usd, c.products[b].usd) })
		for tier := range numTiers {
			part := byPrice[tier*len(byPrice)/numTiers : (tier+1)*len(byPrice)/numTiers]
			if len(part) == 0 {
				part = byPrice
			}
			ct.tiers[tier] = part
			weights := make([]float64, len(part))
			for j, p := range part {
				weights[j] = w(p)
			}
			ct.tierPick[tier] = newAlias(weights)
		}
	}
}

// inCategory is the product an honest shopper of u's price level picks in category ct.
func (s *Simulator) inCategory(ss *session, ct *category) int32 {
	if ss.sc == scHonest && s.chance(tierShare) {
		tier := ss.user.tier
		return ct.tiers[tier][ct.tierPick[tier].draw(s.u64())]
	}
	return ct.products[ct.pick.draw(s.u64())]
}

// drawComplements gives every product a complement: a popular product of the category
// paired with its own.
func (c *catalog) drawComplements(s *Simulator) {
	n := len(c.cats)
	c.comp = make([]int32, len(c.products))
	for i := range c.products {
		pc := (int(c.products[i].cat)*7 + 3) % n
		if pc == int(c.products[i].cat) {
			pc = (pc + 1) % n
		}
		ct := &c.cats[pc]
		c.comp[i] = int32(i) // a one-category catalog: its own complement
		if len(ct.products) > 0 && n > 1 {
			c.comp[i] = ct.products[ct.pick.draw(s.u64())]
		}
	}
	for i := range c.cats {
		if consumables[c.cats[i].name] {
			c.consumable = append(c.consumable, int32(i))
		}
	}
}

// drawTastes gives every user two favourite categories (any category alike: interests
// differ more than the shop's best sellers do), a price level, and some returning users a
// staple from a consumable category.
func (p *population) drawTastes(s *Simulator, c *catalog) {
	for i := range p.users {
		u := &p.users[i]
		u.tastes[0] = int32(s.intn(len(c.cats)))
		u.tastes[1] = u.tastes[0]
		if len(c.cats) > 1 { // two different ones
			u.tastes[1] = (u.tastes[0] + 1 + int32(s.intn(len(c.cats)-1))) % int32(len(c.cats))
		}
		u.tier = uint8(s.intn(numTiers))
		u.staple = -1
		if u.returning && len(c.consumable) > 0 && s.chance(stapleUsers) {
			ct := &c.cats[c.consumable[s.intn(len(c.consumable))]]
			if len(ct.products) > 0 {
				u.staple = ct.products[ct.pick.draw(s.u64())]
			}
		}
	}
}

// chooseCategory is the category an honest shopper turns to: mostly a favourite.
func (s *Simulator) chooseCategory(ss *session) int32 {
	if ss.sc == scHonest && s.chance(tasteShare) {
		return ss.user.tastes[s.intn(2)]
	}
	return s.cat.products[s.cat.pick.draw(s.u64())].cat
}

// tasteView is the product an honest shopper's tastes make them view next, if any: the
// complement of what they just added, or their staple once a session.
func (s *Simulator) tasteView(ss *session) (int32, bool) {
	if ss.comp >= 0 && s.chance(compShare) {
		p := ss.comp
		ss.comp = -1
		return p, true
	}
	if st := ss.user.staple; st >= 0 && !ss.stapled && s.chance(stapleShare) {
		ss.stapled = true
		return st, true
	}
	return 0, false
}
