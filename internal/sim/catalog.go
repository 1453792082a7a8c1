package sim

import (
	"math"
	"slices"
	"strconv"
	"strings"
)

const (
	shopURL = "https://shop.bytebasket.example"
	// zipfS is the popularity exponent: product of rank r is viewed ∝ r^-zipfS.
	zipfS = 1.1
	// queriesPerCategory search phrasings are precomputed per category.
	queriesPerCategory = 6
)

var categoryNames = [...]string{
	"electronics", "computers", "phones", "audio", "cameras", "video games", "books",
	"music", "movies", "toys", "baby", "kitchen", "home decor", "furniture", "garden",
	"tools", "automotive", "sports", "outdoors", "fitness", "womens fashion",
	"mens fashion", "shoes", "jewelry", "watches", "beauty", "health", "grocery",
	"pet supplies", "office", "arts and crafts", "luggage", "party supplies", "smart home",
	"lighting", "bedding", "bath", "appliances", "stationery", "board games",
}

type product struct {
	id, url string
	cat     int32
	usd     int64 // list price in US cents
	price   [numCurrencies]int64
}

type category struct {
	id, name, url string
	queries       [queriesPerCategory]string
	searchURLs    [queriesPerCategory]string
	products      []int32
	pick          alias // popularity within the category
	// tiers: the category's products by price tercile (cheap, mid, premium), each with its
	// popularity: what a shopper of that price level looks at (tastes.go).
	tiers    [numTiers][]int32
	tierPick [numTiers]alias
}

type catalog struct {
	products []product
	cats     []category
	pick     alias // overall popularity (Zipf over a random ranking)
	// cheap products cost 1.00..5.00 in every currency: what card testers buy.
	cheap []int32
	// pricey is the top of the price range: what takeovers and high-value fraud buy.
	pricey []int32
	// comp: each product's complement; consumable: the categories bought again (tastes.go).
	comp       []int32
	consumable []int32
}

func newCatalog(s *Simulator, nProducts, nCats int) catalog {
	var c catalog
	c.cats = make([]category, nCats)
	catMedian := make([]float64, nCats)
	for i := range c.cats {
		ct := &c.cats[i]
		name := categoryNames[i%len(categoryNames)]
		if i >= len(categoryNames) {
			name += " " + strconv.Itoa(i/len(categoryNames)+1)
		}
		ct.name = name
		ct.id = string(appendPadded([]byte("cat_"), i, 4))
		slug := strings.ReplaceAll(name, " ", "-")
		ct.url = shopURL + "/c/" + slug
		for q, phrase := range [queriesPerCategory]string{
			name, "best " + name, "cheap " + name, name + " sale", name + " gift ideas", "new " + name,
		} {
			ct.queries[q] = phrase
			ct.searchURLs[q] = shopURL + "/search?q=" + strings.ReplaceAll(phrase, " ", "+")
		}
		// Categories differ in price level (books vs appliances).
		catMedian[i] = 25 * math.Exp(0.6*s.rng.NormFloat64())
	}

	// Category sizes are mildly skewed; each category gets at least one product.
	cw := make([]float64, nCats)
	for i := range cw {
		cw[i] = 1 / math.Sqrt(float64(i+1))
	}
	catPick := newAlias(cw)

	c.products = make([]product, nProducts)
	for i := range c.products {
		p := &c.products[i]
		p.id = string(appendPadded([]byte("prd_"), i, 6))
		p.url = shopURL + "/p/" + p.id
		cat := i
		if i >= nCats {
			cat = catPick.draw(s.u64())
		}
		p.cat = int32(cat)
		// Log-normal list prices, ending in .99.
		usd := catMedian[cat] * math.Exp(0.9*s.rng.NormFloat64())
		usd = min(max(usd, 2), 4999)
		p.usd = int64(usd)*100 + 99
	}

	// Guarantee cheap products in any catalog: the cheapest ~2% are priced 1.30..3.20 USD,
	// which stays within 1.00..5.00 in every currency.
	byPrice := make([]int32, nProducts)
	for i := range byPrice {
		byPrice[i] = int32(i)
	}
	slices.SortStableFunc(byPrice, func(a, b int32) int {
		return int(c.products[a].usd - c.products[b].usd)
	})
	nEdge := max(1, nProducts/50)
	for _, i := range byPrice[:nEdge] {
		c.products[i].usd = 130 + int64(s.intn(191))
		c.cheap = append(c.cheap, i)
	}
	c.pricey = slices.Clone(byPrice[nProducts-nEdge:])
	for i := range c.products {
		p := &c.products[i]
		for cur := range numCurrencies {
			local := int64(math.Round(float64(p.usd) * currencies[cur].perUSD))
			if p.usd >= 500 && cur != curUSD {
				local = local/100*100 + 99 // local shelf prices end in .99 too
			}
			p.price[cur] = local
		}
	}

	// Popularity: Zipf over a random ranking, so popular products are spread over
	// categories and price levels.
	rank := s.rng.Perm(nProducts)
	w := make([]float64, nProducts)
	for r, i := range rank {
		w[i] = math.Pow(float64(r+1), -zipfS)
	}
	c.pick = newAlias(w)
	for i := range c.products {
		ct := &c.cats[c.products[i].cat]
		ct.products = append(ct.products, int32(i))
	}
	for i := range c.cats {
		ct := &c.cats[i]
		cw := make([]float64, len(ct.products))
		for j, pi := range ct.products {
			cw[j] = w[pi]
		}
		ct.pick = newAlias(cw)
	}
	c.drawTiers(func(p int32) float64 { return math.Pow(w[p], 0.75) })
	return c
}
