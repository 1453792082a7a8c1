package archive

import (
	"context"
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

// Lake is what the archiver needs of a lake backend.
type Lake interface {
	WriteAtomic(ctx context.Context, rel string, write func(io.Writer) error) error
	List(ctx context.Context, dir string) ([]lake.FileInfo, error)
}

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

// dirIndex is the offset ranges of the files one partition already has in one directory:
// after a restart, records they hold are skipped instead of written twice.
type dirIndex struct {
	ranges []lake.FileRange // sorted by First, disjoint
}

func (x *dirIndex) covers(off int64) bool {
	i := sort.Search(len(x.ranges), func(i int) bool { return x.ranges[i].Last >= off })
	return i < len(x.ranges) && x.ranges[i].First <= off
}

func (x *dirIndex) add(r lake.FileRange) {
	x.ranges = append(x.ranges, r)
	sort.Slice(x.ranges, func(i, j int) bool { return x.ranges[i].First < x.ranges[j].First })
}

// loadIndex lists dir for the files of (stream, partition).
func loadIndex(ctx context.Context, lk Lake, dir, stream string, part int32) (*dirIndex, error) {
	files, err := lk.List(ctx, dir)
	if err != nil {
		return nil, err
	}
	x := &dirIndex{}
	for _, f := range files {
		if r, ok := lake.ParseFileName(f.Path); ok && r.Topic == stream && r.Partition == part {
			x.ranges = append(x.ranges, r)
		}
	}
	sort.Slice(x.ranges, func(i, j int) bool { return x.ranges[i].First < x.ranges[j].First })
	return x, nil
}

// partition is the archiver's state for one partition of one topic.
type partition struct {
	stream    string // logical topic
	id        int32
	next      int64 // offset after the last record handled
	committed int64 // last offset committed to Kafka (-1: none yet)
	buffers   map[string]*buffer
	indexes   map[string]*dirIndex
}

func newPartition(stream string, id int32) *partition {
	return &partition{stream: stream, id: id, next: -1, committed: -1, buffers: map[string]*buffer{}, indexes: map[string]*dirIndex{}}
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

// index returns the directory's index for p, listing the lake the first time.
func (a *Archiver) index(ctx context.Context, p *partition, dir string) (*dirIndex, error) {
	if x := p.indexes[dir]; x != nil {
		return x, nil
	}
	var x *dirIndex
	err := a.withRetry(ctx, "list "+dir, func() (err error) {
		x, err = loadIndex(ctx, a.lake, dir, p.stream, p.id)
		return err
	})
	if err != nil {
		return nil, err
	}
	p.indexes[dir] = x
	return x, nil
}

// roll writes one buffer as a file and forgets it.
func (a *Archiver) roll(ctx context.Context, p *partition, b *buffer) error {
	r := lake.FileRange{Topic: p.stream, Partition: p.id, First: b.first, Last: b.last}
	name := b.dir + "/" + r.FileName()
	t0 := time.Now()
	var written int64
	err := a.withRetry(ctx, "write "+name, func() error {
		return a.lake.WriteAtomic(ctx, name, func(w io.Writer) error {
			cw := &countingWriter{w: w}
			err := b.writeParquet(cw, a.codec)
			written = cw.n
			return err
		})
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
