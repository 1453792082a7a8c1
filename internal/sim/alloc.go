package sim

import (
	"math/rand/v2"

	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// heapItem keeps the sort key beside the pointer so sifting never dereferences sessions.
type heapItem struct {
	t   int64
	seq uint64 // breaks ties in event time deterministically, first scheduled first
	s   *session
}

// sessionHeap is a binary min-heap on (t, seq). Hand-written rather than container/heap
// to avoid interface calls on the per-event path.
type sessionHeap []heapItem

func (h sessionHeap) less(i, j int) bool {
	return h[i].t < h[j].t || (h[i].t == h[j].t && h[i].seq < h[j].seq)
}

func (h *sessionHeap) push(it heapItem) {
	*h = append(*h, it)
	q := *h
	i := len(q) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !q.less(i, p) {
			break
		}
		q[i], q[p] = q[p], q[i]
		i = p
	}
}

func (h *sessionHeap) popTop() {
	q := *h
	n := len(q) - 1
	q[0] = q[n]
	q[n] = heapItem{}
	*h = q[:n]
	h.down(0)
}

func (h sessionHeap) down(i int) {
	n := len(h)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && h.less(r, l) {
			m = r
		}
		if !h.less(m, i) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

// slab hands out zeroed values carved from chunks: one allocation per slabSize messages
// instead of one per message, while each message stays the caller's to keep (a kept
// message only pins its chunk).
type slab[T any] struct{ free []T }

const slabSize = 128

func (b *slab[T]) get() *T {
	if len(b.free) == 0 {
		b.free = make([]T, slabSize)
	}
	p := &b.free[0]
	b.free = b.free[1:]
	return p
}

// arena holds one slab per message type the simulator emits.
type arena struct {
	env   slab[pb.Envelope]
	ts    slab[timestamppb.Timestamp]
	ctx   slab[pb.Context]
	money slab[pb.Money]
	item  slab[pb.LineItem]

	pageView    slab[pb.PageView]
	productView slab[pb.ProductView]
	search      slab[pb.Search]
	wishAdd     slab[pb.WishlistAdd]
	wishRemove  slab[pb.WishlistRemove]
	cartAdd     slab[pb.CartAdd]
	cartRemove  slab[pb.CartRemove]
	cartQty     slab[pb.CartQuantityChange]
	checkout    slab[pb.CheckoutStarted]
	order       slab[pb.OrderPlaced]
	payAuth     slab[pb.PaymentAuthorized]
	payFail     slab[pb.PaymentFailed]
	refund      slab[pb.Refund]
	chargeback  slab[pb.Chargeback]

	wPageView    slab[pb.Envelope_PageView]
	wProductView slab[pb.Envelope_ProductView]
	wSearch      slab[pb.Envelope_Search]
	wWishAdd     slab[pb.Envelope_WishlistAdd]
	wWishRemove  slab[pb.Envelope_WishlistRemove]
	wCartAdd     slab[pb.Envelope_CartAdd]
	wCartRemove  slab[pb.Envelope_CartRemove]
	wCartQty     slab[pb.Envelope_CartQuantityChange]
	wCheckout    slab[pb.Envelope_CheckoutStarted]
	wOrder       slab[pb.Envelope_OrderPlaced]
	wPayAuth     slab[pb.Envelope_PaymentAuthorized]
	wPayFail     slab[pb.Envelope_PaymentFailed]
	wRefund      slab[pb.Envelope_Refund]
	wChargeback  slab[pb.Envelope_Chargeback]
}

func (a *arena) moneyOf(amount int64, cur string) *pb.Money {
	m := a.money.get()
	m.AmountMinor, m.Currency = amount, cur
	return m
}

// idGen formats UUIDv4 text in batches: one string allocation per idBatch ids, each id a
// substring of it.
type idGen struct {
	buf  [idBatch * 36]byte
	s    string
	next int
}

const idBatch = 64

const hexDigits = "0123456789abcdef"

func (g *idGen) id(pcg *rand.PCG) string {
	if g.s == "" || g.next == idBatch {
		for i := range idBatch {
			putUUID((*[36]byte)(g.buf[i*36:]), pcg.Uint64(), pcg.Uint64())
		}
		g.s, g.next = string(g.buf[:]), 0
	}
	id := g.s[g.next*36 : g.next*36+36]
	g.next++
	return id
}

// putUUID writes hi||lo as a version-4, RFC 4122 variant UUID.
func putUUID(b *[36]byte, hi, lo uint64) {
	hi = hi&^(0xf<<12) | 0x4<<12 // version nibble
	lo = lo&^(0x3<<62) | 0x2<<62 // variant bits 10
	j := 0
	for i := range 16 {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b[j] = '-'
			j++
		}
		var v byte
		if i < 8 {
			v = byte(hi >> (56 - 8*i))
		} else {
			v = byte(lo >> (56 - 8*(i-8)))
		}
		b[j], b[j+1] = hexDigits[v>>4], hexDigits[v&0xf]
		j += 2
	}
}

// appendHex appends v as 16 lower-case hex digits.
func appendHex(dst []byte, v uint64) []byte {
	for i := 60; i >= 0; i -= 4 {
		dst = append(dst, hexDigits[(v>>uint(i))&0xf])
	}
	return dst
}

// appendPadded appends v in decimal, left-padded with zeros to width digits.
func appendPadded(dst []byte, v, width int) []byte {
	var tmp [20]byte
	i := len(tmp)
	for v > 0 || i == len(tmp) {
		i--
		tmp[i] = byte('0' + v%10)
		v /= 10
	}
	for n := len(tmp) - i; n < width; n++ {
		dst = append(dst, '0')
	}
	return append(dst, tmp[i:]...)
}
