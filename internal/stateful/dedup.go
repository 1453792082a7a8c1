package stateful

import (
	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
)

// dedup remembers the event ids a partition has seen, bucketed by the minute of their event
// time: a retried event carries its original id and time, so a copy always lands in its
// original's bucket, and whole buckets expire as the watermark moves on.
type dedup struct {
	buckets map[int64]*dedupBucket // minute start (unix ms) -> ids
	deleted []int64                // buckets expired since the last checkpoint
	size    int                    // fingerprints held
}

type dedupBucket struct {
	seen  map[uint64]struct{}
	added []uint64 // since the last checkpoint
}

func newDedup() *dedup { return &dedup{buckets: map[int64]*dedupBucket{}} }

// firstSeen records fp in the bucket of event time tm (unix ms) and reports whether it was
// new there. Events whose minute ended at or before expiredBefore are not remembered (and
// are new): their bucket is gone.
func (d *dedup) firstSeen(fp uint64, tm, expiredBefore int64) bool {
	m := tm - mod(tm, 60_000)
	if m+60_000 <= expiredBefore { // the minute's bucket is gone (see expire)
		return true
	}
	b := d.buckets[m]
	if b == nil {
		b = &dedupBucket{seen: map[uint64]struct{}{}}
		d.buckets[m] = b
	}
	if _, dup := b.seen[fp]; dup {
		return false
	}
	b.seen[fp] = struct{}{}
	b.added = append(b.added, fp)
	d.size++
	return true
}

// expire drops the buckets of minutes that end at or before before (unix ms).
func (d *dedup) expire(before int64) {
	for m, b := range d.buckets {
		if m+60_000 <= before {
			d.size -= len(b.seen)
			delete(d.buckets, m)
			d.deleted = append(d.deleted, m)
		}
	}
}

// changes emits what changed since the last call (everything with full).
func (d *dedup) changes(full bool, emit func(*pb.StateEntry)) {
	if !full {
		for _, m := range d.deleted {
			emit(&pb.StateEntry{Entry: &pb.StateEntry_Dedup{Dedup: &pb.DedupBucket{BucketMs: m, Deleted: true}}})
		}
	}
	d.deleted = d.deleted[:0]
	for m, b := range d.buckets {
		add := b.added
		if full {
			add = make([]uint64, 0, len(b.seen))
			for fp := range b.seen {
				add = append(add, fp)
			}
		}
		b.added = nil
		for len(add) > 0 { // bounded entries: a chunk never has to hold a whole busy minute
			n := min(len(add), maxEntryIDs)
			emit(&pb.StateEntry{Entry: &pb.StateEntry_Dedup{Dedup: &pb.DedupBucket{BucketMs: m, Added: add[:n]}}})
			add = add[n:]
		}
	}
}

// restore applies a checkpointed bucket entry.
func (d *dedup) restore(e *pb.DedupBucket) {
	if e.GetDeleted() {
		if b := d.buckets[e.GetBucketMs()]; b != nil {
			d.size -= len(b.seen)
			delete(d.buckets, e.GetBucketMs())
		}
		return
	}
	b := d.buckets[e.GetBucketMs()]
	if b == nil {
		b = &dedupBucket{seen: make(map[uint64]struct{}, len(e.GetAdded()))}
		d.buckets[e.GetBucketMs()] = b
	}
	for _, fp := range e.GetAdded() {
		if _, ok := b.seen[fp]; !ok {
			b.seen[fp] = struct{}{}
			d.size++
		}
	}
}

// maxEntryIDs bounds the fingerprints of one entry (8 bytes each: 64 KiB).
const maxEntryIDs = 8192

// mod is the non-negative remainder: event times before 1970 are invalid, but arithmetic on
// them must still not bucket wrongly.
func mod(a, b int64) int64 {
	r := a % b
	if r < 0 {
		r += b
	}
	return r
}
