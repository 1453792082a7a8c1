package archive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"time"

	"github.com/bytebasket/bytebasket/internal/event"
	"github.com/bytebasket/bytebasket/internal/lake"
	"github.com/bytebasket/bytebasket/internal/retry"
	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
	"github.com/parquet-go/parquet-go"
)

// Lake is what the archiver needs of a lake backend: every lake.Backend operation takes
// part (claims fence writers through staging directories, files are read back for their
// event ids), so it is the whole interface.
type Lake = lake.Backend

// buffer holds the records of one Kafka partition whose event time falls in one lake
// directory, in offset order, until they are written as one file.
type buffer struct {
	dir         string
	first, last int64 // offsets
	bytes       int64 // record values as read from Kafka
	opened      time.Time
	flat        lake.Flattener
	n           int
	// Rows are kept in fixed-size chunks: one growing slice of wide rows would be copied
	// again at every growth.
	activity [][]lake.ActivityRow
	txs      [][]lake.TransactionRow
}

const chunkRows = 4096

func appendChunked[T any](chunks [][]T, row T) [][]T {
	if len(chunks) == 0 || len(chunks[len(chunks)-1]) == chunkRows {
		chunks = append(chunks, make([]T, 0, chunkRows))
	}
	last := &chunks[len(chunks)-1]
	*last = append(*last, row)
	return chunks
}

func (b *buffer) add(stream string, e *pb.Envelope, part int32, offset int64, size int) {
	if b.n == 0 {
		b.first = offset
	}
	b.last = offset
	b.bytes += int64(size)
	b.n++
	if stream == lake.StreamTransactions {
		b.txs = appendChunked(b.txs, b.flat.Transaction(e, part, offset))
	} else {
		b.activity = appendChunked(b.activity, b.flat.Activity(e, part, offset))
	}
}

func (b *buffer) rows() int { return b.n }

// writeParquet encodes the buffer as one Parquet file (one row group per 128k rows).
func (b *buffer) writeParquet(w io.Writer, codec parquet.WriterOption) error {
	if b.txs != nil {
		return writeRows(w, b.txs, codec)
	}
	return writeRows(w, b.activity, codec)
}

func writeRows[T any](w io.Writer, chunks [][]T, codec parquet.WriterOption) error {
	pw := parquet.NewGenericWriter[T](w, codec, parquet.MaxRowsPerRowGroup(128<<10))
	for _, rows := range chunks {
		if _, err := pw.Write(rows); err != nil {
			return err
		}
	}
	return pw.Close()
}

// dirIndex is what one partition already has in one directory: the offset ranges its files
// cover, so records re-read after a restart are skipped instead of written twice, and the
// fingerprints of the event ids there (files and buffer), so a copy of an event is dropped.
type dirIndex struct {
	ranges   []lake.FileRange    // merged: sorted by First, disjoint
	ids      map[uint64]struct{} // nil: the directory is past the deduplication horizon
	lastUsed time.Time
}

// covers reports whether a file of the directory holds the record at offset off. A file
// holds every record of its range whose event time falls in the directory, except those in
// files written before it (a writer skips what is covered), so the union of the ranges is
// exactly what is covered.
func (x *dirIndex) covers(off int64) bool {
	i := sort.Search(len(x.ranges), func(i int) bool { return x.ranges[i].Last >= off })
	return i < len(x.ranges) && x.ranges[i].First <= off
}

// add merges a file's range into the covered ranges.
func (x *dirIndex) add(r lake.FileRange) {
	x.ranges = append(x.ranges, r)
	sort.Slice(x.ranges, func(i, j int) bool { return x.ranges[i].First < x.ranges[j].First })
	merged := x.ranges[:1]
	for _, c := range x.ranges[1:] {
		if last := &merged[len(merged)-1]; c.First <= last.Last+1 {
			last.Last = max(last.Last, c.Last)
		} else {
			merged = append(merged, c)
		}
	}
	x.ranges = merged
}

// firstSeen records an event id's fingerprint and reports whether it is new here.
func (x *dirIndex) firstSeen(fp uint64) bool {
	if x.ids == nil {
		return true
	}
	if _, dup := x.ids[fp]; dup {
		return false
	}
	x.ids[fp] = struct{}{}
	return true
}

// loadIndex lists dir for the files of (stream, partition) and, with dedup, reads their
// event ids.
func loadIndex(ctx context.Context, lk Lake, dir, stream string, part int32, dedup bool) (*dirIndex, error) {
	files, err := lk.List(ctx, dir)
	if err != nil {
		return nil, err
	}
	x := &dirIndex{}
	if dedup {
		x.ids = map[uint64]struct{}{}
	}
	for _, f := range files {
		r, ok := lake.ParseFileName(f.Path)
		if !ok || r.Topic != stream || r.Partition != part {
			continue
		}
		x.add(r)
		if dedup {
			if err := lake.EventIDs(ctx, lk, f.Path, func(fp uint64) { x.ids[fp] = struct{}{} }); err != nil {
				return nil, err
			}
		}
	}
	return x, nil
}

// partition is the archiver's state for one partition of one topic.
type partition struct {
	stream    string // logical topic
	id        int32
	writer    *lake.PartitionWriter // the claim this archiver writes the partition's files under
	next      int64                 // offset after the last record handled
	committed int64                 // last offset committed to Kafka (-1: none yet)
	buffers   map[string]*buffer
	indexes   map[string]*dirIndex
}

func newPartition(stream string, id int32, w *lake.PartitionWriter) *partition {
	return &partition{stream: stream, id: id, writer: w, next: -1, committed: -1, buffers: map[string]*buffer{}, indexes: map[string]*dirIndex{}}
}

// commitOffset is how far Kafka may consider this partition done: up to the first record
// still in memory, or everything handled when nothing is buffered.
func (p *partition) commitOffset() int64 {
	off := p.next
	for _, b := range p.buffers {
		off = min(off, b.first)
	}
	return off
}

// withRetry runs op until it succeeds or ctx ends: the lake being down stops the archiver
// (Kafka keeps the backlog) instead of losing or skipping records.
func (a *Archiver) withRetry(ctx context.Context, what string, op func() error) error {
	return retry.Until(ctx, lakeBackoff, op, func(err error, wait time.Duration) {
		a.m.lakeErrors.Inc()
		slog.Warn("lake operation failed; retrying", "op", what, "in", wait, "err", err)
	})
}

var lakeBackoff = retry.Backoff{Initial: 100 * time.Millisecond, Max: 10 * time.Second}

// index returns the directory's index for p, reading the lake the first time (and again
// after an idle index was dropped). Event ids are loaded for directories within the
// deduplication horizon of now.
func (a *Archiver) index(ctx context.Context, p *partition, dir string, hour time.Time, now time.Time) (*dirIndex, error) {
	x := p.indexes[dir]
	if x == nil {
		dedup := a.cfg.DedupHorizon > 0 && hour.Add(time.Hour).After(now.Add(-a.cfg.DedupHorizon))
		err := a.withRetry(ctx, "index "+dir, func() (err error) {
			x, err = loadIndex(ctx, a.lake, dir, p.stream, p.id, dedup)
			return err
		})
		if err != nil {
			return nil, err
		}
		p.indexes[dir] = x
	}
	x.lastUsed = now
	return x, nil
}

// indexIdle is how long an index without a buffer is kept after its last use: a
// directory's event ids take memory, and a later record for it reloads them.
const indexIdle = 10 * time.Minute

// roll writes one buffer as a file and forgets it.
func (a *Archiver) roll(ctx context.Context, p *partition, b *buffer) error {
	r := lake.FileRange{Topic: p.stream, Partition: p.id, First: b.first, Last: b.last}
	name := b.dir + "/" + r.FileName()
	t0 := time.Now()
	var written int64
	err := a.withRetry(ctx, "write "+name, func() error {
		err := p.writer.Write(ctx, name, func(w io.Writer) error {
			cw := &countingWriter{w: w}
			err := b.writeParquet(cw, a.codec)
			written = cw.n
			return err
		})
		if errors.Is(err, lake.ErrFenced) {
			return retry.Stop(err)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("archive: write %s: %w", name, err)
	}
	p.indexes[b.dir].add(r)
	delete(p.buffers, b.dir)
	a.buffered -= b.bytes
	a.m.files.WithLabelValues(p.stream).Inc()
	a.m.rows.WithLabelValues(p.stream).Add(float64(b.rows()))
	a.m.bytes.WithLabelValues(p.stream).Add(float64(written))
	a.m.roll.Observe(time.Since(t0).Seconds())
	a.m.buffered.Set(float64(a.buffered))
	return nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// kindAllowed reports whether an event of kind belongs on stream (a transaction on the
// activity topic is a producer bug: it would land in the wrong schema).
func kindAllowed(stream string, k event.Kind) bool {
	return k != event.KindUnknown && event.TopicOf(k) == stream
}
