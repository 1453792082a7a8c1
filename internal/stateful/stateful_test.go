package stateful

import (
	"context"
	"errors"
	"github.com/bytebasket/bytebasket/internal/event"
	"github.com/twmb/franz-go/pkg/kgo"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/bytebasket/bytebasket/internal/model"
	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
)

var topics = []string{"user-activity", "transactions"}

// The watermark waits for a topic that still has records to read, whatever the other
// topic has reached, and ignores a topic found caught up; nothing counts as caught up
// before it was seen so after the partition was taken over.
func TestWatermarkFollowsCaughtUpTopics(t *testing.T) {
	p := newPartition(0, model.Fence{}, nil)
	p.offsets = map[string]int64{"user-activity": 500, "transactions": 40}
	p.maxEvent = map[string]int64{"user-activity": 10_000}
	if wm := p.watermark(topics); wm != 0 {
		t.Fatalf("transactions unread and never seen: watermark %d, want 0 (hold)", wm)
	}
	if _, ok := p.lag("transactions"); ok { // a replay must not look caught up
		t.Fatal("lag known before any last stable offset was seen")
	}
	p.maxEvent["transactions"] = 4_000
	if wm := p.watermark(topics); wm != 4_000 {
		t.Fatalf("both behind: watermark %d, want the lower 4000", wm)
	}
	p.observeLSO("transactions", 40, p.created.Add(-time.Second)) // seen before the takeover
	if wm := p.watermark(topics); wm != 4_000 {
		t.Fatalf("an offset listed before the takeover made transactions caught up: %d", wm)
	}
	p.observeLSO("transactions", 40, time.Now())
	if wm := p.watermark(topics); wm != 10_000 {
		t.Fatalf("transactions caught up: watermark %d, want activity's 10000", wm)
	}
	p.observeLSO("transactions", 41, time.Now()) // an order arrived
	if wm := p.watermark(topics); wm != 4_000 {
		t.Fatalf("transactions has a record to read: watermark %d, want 4000", wm)
	}
	p.observeLSO("user-activity", 500, time.Now())
	p.offsets["transactions"] = 41
	p.maxEvent["transactions"] = 9_000
	if wm := p.watermark(topics); wm != 10_000 {
		t.Fatalf("both caught up: watermark %d, want the higher 10000", wm)
	}
	if n, ok := p.lag("user-activity"); n != 0 || !ok {
		t.Fatalf("lag of caught-up user-activity: %d (known %v)", n, ok)
	}
	if n, ok := p.lag("transactions"); n != 0 || !ok {
		t.Fatalf("lag of caught-up transactions: %d (known %v)", n, ok)
	}
}

// Copies of an event id are found in its minute's bucket; buckets expire whole; the
// checkpointed changes restore the same set.
func TestDedup(t *testing.T) {
	d := newDedup()
	fp := event.Fingerprint("3f2a-event")
	if !d.firstSeen(fp, 61_000, 0) || d.firstSeen(fp, 61_000, 0) {
		t.Fatal("a copy in the same minute was not recognised")
	}
	if !d.firstSeen(event.Fingerprint("other"), 62_000, 0) || d.size != 2 {
		t.Fatalf("size %d, want 2", d.size)
	}
	if !d.firstSeen(fp, 125_000, 0) {
		t.Fatal("the same id at another time (another minute) is another event")
	}
	// The horizon cuts inside the minute: the minute is still remembered whole.
	if d.firstSeen(fp, 61_000, 90_000) {
		t.Fatal("a copy in a minute that ends after the horizon was not recognised")
	}
	var entries []*pb.StateEntry
	d.changes(false, func(e *pb.StateEntry) { entries = append(entries, e) })
	d.expire(120_000) // minute [60 s, 120 s) ends at the horizon
	if d.size != 1 || !d.firstSeen(fp, 61_000, 120_000) {
		t.Fatalf("after expiry: size %d; an expired minute is not remembered", d.size)
	}
	d.changes(false, func(e *pb.StateEntry) { entries = append(entries, e) })

	r := newDedup()
	for _, e := range entries {
		r.restore(e.GetDedup())
	}
	if r.size != 1 || r.firstSeen(fp, 125_000, 0) {
		t.Fatalf("restored: size %d, want the one id of the minute left", r.size)
	}
}

// Chunks stay under the limit (an entry larger than it gets a chunk of its own) and a
// checkpoint with nothing in it still has one chunk.
func TestChunkerBoundsChunks(t *testing.T) {
	c := chunker{limit: 1000}
	for i := range 100 {
		c.add(&pb.StateEntry{Entry: &pb.StateEntry_Dedup{Dedup: &pb.DedupBucket{BucketMs: int64(i), Added: make([]uint64, i%20)}}})
	}
	c.add(&pb.StateEntry{Entry: &pb.StateEntry_Dedup{Dedup: &pb.DedupBucket{Added: make([]uint64, 500)}}})
	chunks, n, err := c.finish()
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for i, ch := range chunks[:len(chunks)-1] {
		if len(ch) > 1000 {
			t.Fatalf("chunk %d has %d bytes", i, len(ch))
		}
		total += int64(len(ch))
	}
	if last := chunks[len(chunks)-1]; len(last) < 4000 || total+int64(len(last)) != n {
		t.Fatalf("last chunk %d bytes, total %d of %d", len(last), total, n)
	}
	empty := chunker{limit: 1000}
	if chunks, _, _ := empty.finish(); len(chunks) != 1 {
		t.Fatalf("an empty checkpoint has %d chunks, want 1", len(chunks))
	}
}

type testRole struct{}

func (testRole) Name() string             { return "stream" }
func (testRole) StateVersion() uint32     { return 1 }
func (testRole) NewTask(int32, Emit) Task { return nil }
func head(mod func(*pb.CheckpointHead)) []byte {
	h := &pb.CheckpointHead{FormatVersion: FormatVersion, Role: "stream", RoleVersion: 1, Partitions: 4,
		Segments: []*pb.LogSegment{{Epoch: 7, FirstSeq: 1, LastSeq: 2}}}
	mod(h)
	b, _ := proto.Marshal(h)
	return b
}

// A head this build cannot continue is refused with the reason.
func TestDecodeHeadRefuses(t *testing.T) {
	if _, err := decodeHead(head(func(*pb.CheckpointHead) {}), testRole{}, 4); err != nil {
		t.Fatal(err)
	}
	for want, raw := range map[string][]byte{
		"does not decode":          {0xff, 0xff},
		"format version 2":         head(func(h *pb.CheckpointHead) { h.FormatVersion = 2 }),
		`role "fraud"`:             head(func(h *pb.CheckpointHead) { h.Role = "fraud" }),
		"state version 3":          head(func(h *pb.CheckpointHead) { h.RoleVersion = 3 }),
		"written for 8 partitions": head(func(h *pb.CheckpointHead) { h.Partitions = 8 }),
		"lists no checkpoints":     head(func(h *pb.CheckpointHead) { h.Segments = nil }),
	} {
		_, err := decodeHead(raw, testRole{}, 4)
		if !errors.Is(err, ErrUnreadable) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v", want, err)
		}
	}
}

// memLog is a log for readState: chunks by (epoch, seq).
type memLog map[[2]int64][][]byte

func (m memLog) ReadLog(_ context.Context, _ string, _ int32, segs []*pb.LogSegment, fn func(LogChunk) error) error {
	for _, s := range segs {
		for q := s.GetFirstSeq(); q <= s.GetLastSeq(); q++ {
			chunks := m[[2]int64{s.GetEpoch(), q}]
			for i, c := range chunks {
				if c == nil {
					continue // lost
				}
				if err := fn(LogChunk{Epoch: s.GetEpoch(), Seq: q, Index: int32(i), Count: int32(len(chunks)), Data: c}); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
func (memLog) Claim(context.Context, string, int32) (model.Fence, []byte, error) { panic("unused") }
func (memLog) AppendLog(context.Context, model.Fence, int64, [][]byte) error     { panic("unused") }
func (memLog) CommitHead(context.Context, model.Fence, []byte) error             { panic("unused") }
func (memLog) TrimLog(context.Context, string, int32, int64, int64) error        { panic("unused") }

// A checkpoint the head names must be in the log whole; entries come back in order.
func TestReadStateChecksCompleteness(t *testing.T) {
	enc := func(ids ...int64) []byte {
		c := chunker{limit: 1 << 20}
		for _, id := range ids {
			c.add(&pb.StateEntry{Entry: &pb.StateEntry_Dedup{Dedup: &pb.DedupBucket{BucketMs: id}}})
		}
		chunks, _, _ := c.finish()
		return chunks[0]
	}
	log := memLog{{7, 1}: {enc(1, 2), enc(3)}, {7, 2}: {enc(4)}, {9, 1}: {enc(5)}}
	h := &pb.CheckpointHead{Segments: []*pb.LogSegment{{Epoch: 7, FirstSeq: 1, LastSeq: 2}, {Epoch: 9, FirstSeq: 1, LastSeq: 1}}}
	var got []int64
	if _, err := readState(context.Background(), log, "g", 0, h, func(e *pb.StateEntry) error {
		got = append(got, e.GetDedup().GetBucketMs())
		return nil
	}); err != nil || !slices.Equal(got, []int64{1, 2, 3, 4, 5}) {
		t.Fatalf("entries %v, err %v", got, err)
	}
	for name, broken := range map[string]memLog{
		"missing chunk":      {{7, 1}: {enc(1), nil}, {7, 2}: {enc(4)}, {9, 1}: {enc(5)}},
		"missing checkpoint": {{7, 1}: {enc(1)}, {9, 1}: {enc(5)}},
	} {
		if _, err := readState(context.Background(), broken, "g", 0, h, func(*pb.StateEntry) error { return nil }); !errors.Is(err, ErrUnreadable) {
			t.Errorf("%s: %v, want unreadable", name, err)
		}
	}
}

// Queued records come out in event-time order across the topics; a topic with nothing
// queued holds the others back until it is caught up; a transaction marker goes at once.
func TestDrainOrderAcrossTopics(t *testing.T) {
	p := newPartition(0, model.Fence{}, nil)
	p.offsets = map[string]int64{"user-activity": 0, "transactions": 0}
	rec := func(topic string, off, key int64) {
		p.enqueue(topic, pending{r: &kgo.Record{Offset: off}, key: key})
	}
	rec("user-activity", 0, 100)
	rec("user-activity", 1, 300)
	if _, ok := p.next(topics); ok {
		t.Fatal("transactions not read yet, but activity went ahead")
	}
	rec("transactions", 0, 200)
	var order []int64
	for {
		tp, ok := p.next(topics)
		if !ok {
			break
		}
		order = append(order, p.pop(tp).key)
	}
	if !slices.Equal(order, []int64{100, 200}) {
		t.Fatalf("applied %v, want 100 then 200 and then wait for transactions", order)
	}
	p.observeLSO("transactions", 1, time.Now()) // caught up: nothing more to wait for
	if tp, ok := p.next(topics); !ok || tp != "user-activity" || p.pop(tp).key != 300 {
		t.Fatal("a caught-up topic still held activity back")
	}
	p.enqueue("transactions", pending{r: &kgo.Record{Offset: 1}, control: true})
	p.enqueue("user-activity", pending{r: &kgo.Record{Offset: 2}, key: 50})
	if tp, ok := p.next(topics); !ok || tp != "transactions" {
		t.Fatal("a transaction marker waited")
	}
}

// A commit sends every owned partition's offsets, moved or not (so the request is never
// empty), and never one below what is committed.
func TestCommitNeverEmptyNorBackwards(t *testing.T) {
	out := &txnOutput{committed: map[int32]map[string]int64{
		2: {"transactions": 40, "user-activity": 900},
		3: {"transactions": 7},
	}}
	applied := map[int32]map[string]int64{
		2: {"transactions": 12, "user-activity": 900}, // a replay below the committed offsets
		3: {"transactions": 7},
		5: {"transactions": 3}, // nothing committed yet
	}
	want := map[int32]map[string]int64{2: {"transactions": 40, "user-activity": 900}, 3: {"transactions": 7}, 5: {"transactions": 3}}
	got := out.toCommit(applied)
	if len(got) != len(want) {
		t.Fatalf("commit %v, want %v", got, want)
	}
	for id, offs := range want {
		if !maps.Equal(got[id], offs) {
			t.Fatalf("commit %v, want %v", got, want)
		}
	}
	got[2]["transactions"] = 1 // a copy: the committed state is not the request's
	if out.committed[2]["transactions"] != 40 {
		t.Fatal("the commit shares its map with the committed offsets")
	}
	applied[3]["transactions"] = 9
	if got := out.toCommit(applied); got[3]["transactions"] != 9 {
		t.Fatalf("progress not committed: %v", got)
	}
}
