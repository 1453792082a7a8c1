package sim

import (
	"strconv"

	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
)

// currency is an ISO 4217 code and a fixed rate from USD list prices. All use two
// decimal minor units, so amounts stay comparable across the catalog.
type currency struct {
	code   string
	perUSD float64
}

var currencies = [...]currency{
	{"USD", 1}, {"EUR", 0.92}, {"GBP", 0.79}, {"CAD", 1.36}, {"AUD", 1.52},
}

const (
	curUSD = iota
	curEUR
	curGBP
	curCAD
	curAUD
	numCurrencies
)

// country is a shopper market (weight > 0) or, with weight 0, only a place fraud comes
// from. octets are the first bytes of the IPv4 blocks its addresses are drawn from.
type country struct {
	code   string
	weight float64
	cur    uint8
	taxBP  int64 // tax in basis points of the subtotal
	octets []byte
}

var countries = [...]country{
	{"US", 38, curUSD, 700, []byte{24, 50, 67, 68, 71, 73, 75, 76, 96, 98, 99, 108, 174}},
	{"GB", 10, curGBP, 2000, []byte{2, 81, 86, 90, 92, 109}},
	{"DE", 9, curEUR, 1900, []byte{46, 77, 79, 84, 87, 91, 93}},
	{"FR", 7, curEUR, 2000, []byte{78, 80, 82, 83, 88}},
	{"CA", 6, curCAD, 1300, []byte{70, 142, 184, 207}},
	{"ES", 4, curEUR, 2100, []byte{79, 83, 95, 213}},
	{"IT", 4, curEUR, 2200, []byte{79, 87, 93, 151}},
	{"NL", 4, curEUR, 2100, []byte{77, 84, 145, 217}},
	{"AU", 4, curAUD, 1000, []byte{1, 49, 101, 110, 124}},
	{"IE", 2, curEUR, 2300, []byte{37, 78, 86, 109}},
	{"BE", 2, curEUR, 2100, []byte{81, 91, 109, 178}},
	{"AT", 2, curEUR, 2000, []byte{62, 80, 84, 91}},
	{"PT", 2, curEUR, 2300, []byte{85, 89, 94, 188}},
	{"FI", 1, curEUR, 2400, []byte{62, 84, 88, 91}},
	// Origins seen only in fraud (account takeover logins, drop addresses).
	{"BR", 0, curUSD, 0, []byte{177, 179, 186, 189, 201}},
	{"NG", 0, curUSD, 0, []byte{41, 102, 105, 197}},
	{"RO", 0, curUSD, 0, []byte{5, 79, 86, 89}},
	{"VN", 0, curUSD, 0, []byte{14, 27, 113, 171}},
	{"ID", 0, curUSD, 0, []byte{36, 103, 114, 182}},
	{"UA", 0, curUSD, 0, []byte{31, 46, 91, 176}},
	{"PH", 0, curUSD, 0, []byte{49, 112, 120, 180}},
}

// firstForeign is the index of the first fraud-only country.
const firstForeign = 14

type platform struct {
	src    pb.Source
	weight float64
	prefix string // device id prefix, so ids read as what they are
	uas    []string
	// landing referrers: where sessions on this platform come from
	referrers []string
}

var platforms = [...]platform{
	{pb.Source_SOURCE_WEB, 55, "web-", []string{
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.2 Safari/605.1.15",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
		"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 18_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.2 Mobile/15E148 Safari/604.1",
		"Mozilla/5.0 (Linux; Android 14; SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
	}, []string{
		"https://www.google.com/", "https://www.google.com/", "https://www.google.com/",
		"https://www.bing.com/", "https://duckduckgo.com/", "https://www.facebook.com/",
		"https://www.instagram.com/", "https://t.co/", "https://mail.google.com/",
		"https://www.pinterest.com/", "https://www.youtube.com/", "https://shop.bytebasket.example/",
	}},
	{pb.Source_SOURCE_IOS, 25, "ios-", []string{
		"ByteBasket/5.14.0 (iPhone15,2; iOS 18.2; Scale/3.00)",
		"ByteBasket/5.14.0 (iPhone16,1; iOS 18.1.1; Scale/3.00)",
		"ByteBasket/5.13.2 (iPhone14,5; iOS 17.6.1; Scale/3.00)",
		"ByteBasket/5.14.0 (iPad13,4; iPadOS 18.2; Scale/2.00)",
	}, []string{
		"app://bytebasket/launch", "app://bytebasket/launch", "app://bytebasket/push",
		"app://bytebasket/deeplink", "https://www.instagram.com/",
	}},
	{pb.Source_SOURCE_ANDROID, 20, "and-", []string{
		"ByteBasket/5.14.0 (Android 15; Pixel 8; Build/AP4A.241205.013)",
		"ByteBasket/5.14.0 (Android 14; SM-S911B)",
		"ByteBasket/5.13.1 (Android 13; moto g54 5G)",
		"ByteBasket/5.14.0 (Android 14; 23127PN0CG)",
	}, []string{
		"app://bytebasket/launch", "app://bytebasket/launch", "app://bytebasket/push",
		"android-app://com.google.android.gm/", "https://www.instagram.com/",
	}},
}

// Indexes into platforms.
const (
	platWeb = iota
	platIOS
	platAndroid
)

type device struct {
	id, ip, ua string
	plat       uint8
}

// user is one shopper. Returning users have an order history: one or two known devices
// and payment fingerprints; new users have one device and the card they would pay with.
type user struct {
	id        string
	country   uint8
	returning bool
	ndev, nfp uint8
	dev       [2]device
	fp        [2]string
	tastes    [2]int32 // favourite categories (tastes.go)
	staple    int32    // a product bought again and again, -1 for none
	tier      uint8    // the price level kept to
}

type population struct {
	users     []user
	pick      alias   // who starts a session: returning users come back more often
	returning []int32 // account-takeover victims are drawn from these
	country   alias   // shopper markets
	platform  alias
	// shareReturning is the probability that a session's user is returning.
	shareReturning float64
}

const (
	returningShare  = 0.5 // of the population
	returningWeight = 2.5 // relative session frequency of a returning vs a new user
)

func newPopulation(s *Simulator, n int) population {
	var p population
	cw := make([]float64, len(countries))
	for i, c := range countries {
		cw[i] = c.weight
	}
	p.country = newAlias(cw)
	pw := make([]float64, len(platforms))
	for i, pl := range platforms {
		pw[i] = pl.weight
	}
	p.platform = newAlias(pw)

	p.users = make([]user, n)
	weights := make([]float64, n)
	var wRet, wAll float64
	for i := range p.users {
		u := &p.users[i]
		// User 0 is always returning so a takeover victim exists in any population.
		u.returning = i == 0 || s.chance(returningShare)
		u.id = userID(i)
		u.country = uint8(p.country.draw(s.u64()))
		u.ndev, u.nfp = 1, 1
		if u.returning {
			u.ndev, u.nfp = uint8(s.between(1, 2)), uint8(s.between(1, 2))
			p.returning = append(p.returning, int32(i))
		}
		for d := range u.ndev {
			u.dev[d] = s.newDevice(uint8(p.platform.draw(s.u64())), u.country)
		}
		for f := range u.nfp {
			u.fp[f] = s.newFingerprint()
		}
		weights[i] = 1
		if u.returning {
			weights[i] = returningWeight
			wRet += returningWeight
		}
		wAll += weights[i]
	}
	p.pick = newAlias(weights)
	p.shareReturning = wRet / wAll
	return p
}

func userID(i int) string {
	b := make([]byte, 0, 12)
	b = append(b, "usr_"...)
	return string(appendPadded(b, i, 7))
}

func (s *Simulator) newDevice(plat uint8, country uint8) device {
	pl := &platforms[plat]
	b := make([]byte, 0, 20)
	b = append(b, pl.prefix...)
	b = appendHex(b, s.u64())
	return device{id: string(b), ip: s.newIP(country), ua: pl.uas[s.intn(len(pl.uas))], plat: plat}
}

func (s *Simulator) newIP(country uint8) string {
	oct := countries[country].octets
	b := make([]byte, 0, 15)
	b = strconv.AppendInt(b, int64(oct[s.intn(len(oct))]), 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, int64(s.intn(256)), 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, int64(s.intn(256)), 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, int64(1+s.intn(254)), 10)
	return string(b)
}

// newFingerprint is a stable hash of a card or wallet, never the card itself.
func (s *Simulator) newFingerprint() string {
	b := make([]byte, 0, 35)
	b = append(b, "fp_"...)
	b = appendHex(b, s.u64())
	b = appendHex(b, s.u64())
	return string(b)
}

// newAccount creates a user outside the population: fraudsters sign up fresh accounts.
func (s *Simulator) newAccount(country uint8, plat uint8) *user {
	u := &user{id: userID(len(s.pop.users) + s.accts), country: country, ndev: 1, nfp: 1}
	s.accts++
	u.dev[0] = s.newDevice(plat, country)
	u.fp[0] = s.newFingerprint()
	return u
}

// alias is Vose's alias table: O(1) draws from a fixed discrete distribution with one
// 64-bit random number (high half picks the column, low half flips its biased coin).
type alias struct {
	thr []uint32
	alt []int32
}

func newAlias(w []float64) alias {
	n := len(w)
	a := alias{thr: make([]uint32, n), alt: make([]int32, n)}
	var sum float64
	for _, x := range w {
		sum += x
	}
	prob := make([]float64, n)
	small := make([]int32, 0, n)
	large := make([]int32, 0, n)
	for i, x := range w {
		prob[i] = x * float64(n) / sum
		if prob[i] < 1 {
			small = append(small, int32(i))
		} else {
			large = append(large, int32(i))
		}
	}
	for len(small) > 0 && len(large) > 0 {
		l, g := small[len(small)-1], large[len(large)-1]
		small = small[:len(small)-1]
		a.thr[l] = uint32(prob[l] * (1 << 32))
		a.alt[l] = g
		prob[g] += prob[l] - 1
		if prob[g] < 1 {
			large = large[:len(large)-1]
			small = append(small, g)
		}
	}
	// Leftovers are 1 up to rounding: always keep the column.
	for _, i := range append(small, large...) {
		a.thr[i] = 1<<32 - 1
		a.alt[i] = i
	}
	return a
}

func (a *alias) draw(u uint64) int {
	i := int((u >> 32) * uint64(len(a.thr)) >> 32)
	if uint32(u) < a.thr[i] {
		return i
	}
	return int(a.alt[i])
}
