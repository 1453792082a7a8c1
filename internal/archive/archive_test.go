package archive

import (
	"bytes"
	"context"
	"math/rand/v2"
	"path"
	"testing"
	"time"

	"github.com/bytebasket/bytebasket/internal/event"
	"github.com/bytebasket/bytebasket/internal/lake"
	"github.com/bytebasket/bytebasket/internal/lake/local"
	"github.com/bytebasket/bytebasket/internal/sim"
	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
	"github.com/parquet-go/parquet-go"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// record is one Kafka record of a test topic partition.
type record struct {
	stream string
	part   int32
	offset int64
	value  []byte
	time   time.Time // event time; zero for invalid records
}

// records simulates n events spread over the two streams' partitions by user, as the
// producer keys them, starting a few minutes before an hour boundary so files span hours.
func records(t testing.TB, n int) []record {
	return recordsFrom(t, n, time.Date(2026, 11, 24, 9, 58, 0, 0, time.UTC))
}

func recordsFrom(t testing.TB, n int, start time.Time) []record {
	t.Helper()
	s, err := sim.New(sim.Config{Seed: 3, Users: 2000, Rate: 2000, Start: start})
	if err != nil {
		t.Fatal(err)
	}
	next := map[string]int64{}
	out := make([]record, 0, n)
	for range n {
		e, _ := s.Next()
		b, err := proto.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		stream := event.TopicOf(event.KindOf(e))
		id := e.GetUserId()
		part := int32(id[len(id)-1] % 2) // by user, as the producer keys; two partitions here
		k := stream + string(rune('0'+part))
		out = append(out, record{stream, part, next[k], b, e.GetEventTime().AsTime()})
		next[k]++
	}
	return out
}

// kafka is the record as the archiver takes it from Kafka.
func (r record) kafka() Record {
	return Record{Stream: r.stream, Partition: r.part, Offset: r.offset, Value: r.value}
}

func testConfig() Config {
	return Config{Group: "t", RollBytes: 64 << 10, RollInterval: time.Hour, MaxBufferedBytes: 1 << 20, Compression: "zstd", MaxFuture: time.Hour}
}

// readLake returns every row's (stream, partition, offset) with the file's directory.
func readLake(t *testing.T, lk *local.Dir) map[string]string {
	t.Helper()
	ctx := context.Background()
	files, err := lk.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	add := func(stream string, part int32, off int64, dir string, file string) {
		k := stream + "/" + string(rune('0'+part)) + "/" + time.Duration(off).String()
		if prev, dup := got[k]; dup {
			t.Fatalf("record %s is in %s and in %s", k, prev, file)
		}
		got[k] = dir
	}
	for _, f := range files {
		r, ok := lake.ParseFileName(f.Path)
		if !ok {
			t.Fatalf("unexpected file %s", f.Path)
		}
		raw, err := lk.ReadFile(ctx, f.Path)
		if err != nil {
			t.Fatal(err)
		}
		var first, last int64 = -1, -1
		check := func(part int32, off int64) {
			if part != r.Partition || off < r.First || off > r.Last {
				t.Fatalf("%s holds partition %d offset %d", f.Path, part, off)
			}
			if first < 0 {
				first = off
			}
			last = off
		}
		if r.Topic == lake.StreamTransactions {
			rows, err := parquet.Read[lake.TransactionRow](bytes.NewReader(raw), int64(len(raw)))
			if err != nil {
				t.Fatal(err)
			}
			for _, row := range rows {
				check(row.KafkaPart, row.KafkaOffset)
				add(r.Topic, row.KafkaPart, row.KafkaOffset, path.Dir(f.Path), f.Path)
				if want := lake.PartitionDir(r.Topic, row.EventTime); want != path.Dir(f.Path) {
					t.Fatalf("event at %s is in %s, want %s", row.EventTime, f.Path, want)
				}
			}
		} else {
			rows, err := parquet.Read[lake.ActivityRow](bytes.NewReader(raw), int64(len(raw)))
			if err != nil {
				t.Fatal(err)
			}
			for _, row := range rows {
				check(row.KafkaPart, row.KafkaOffset)
				add(r.Topic, row.KafkaPart, row.KafkaOffset, path.Dir(f.Path), f.Path)
				if want := lake.PartitionDir(r.Topic, row.EventTime); want != path.Dir(f.Path) {
					t.Fatalf("event at %s is in %s, want %s", row.EventTime, f.Path, want)
				}
			}
		}
		if first != r.First || last != r.Last {
			t.Fatalf("%s holds offsets %d..%d", f.Path, first, last)
		}
	}
	return got
}

// A crash at any point (buffers lost, offsets as last committed) followed by a restart
// that re-reads from the committed offsets leaves every record in the lake exactly once.
func TestCrashAndReplayWritesEveryRecordOnce(t *testing.T) {
	ctx := context.Background()
	recs := records(t, 30_000)
	for _, crashAt := range []int{1, 7_777, 15_000, 29_999} {
		lk, err := local.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		a, err := New(testConfig(), nil, lk, nil)
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(uint64(crashAt), 1))
		for _, r := range recs[:crashAt] {
			if err := a.Handle(ctx, r.kafka()); err != nil {
				t.Fatal(err)
			}
			if rng.IntN(2000) == 0 { // a time-based roll now and then
				if err := a.Roll(ctx, time.Now().Add(2*time.Hour), false); err != nil {
					t.Fatal(err)
				}
			}
		}
		// The crash: in-memory buffers are gone; Kafka has what commit would have stored.
		committed := map[partKey]int64{}
		for k, p := range a.parts {
			committed[k] = p.commitOffset()
		}
		b, err := New(testConfig(), nil, lk, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if off, ok := committed[partKey{r.stream, r.part}]; ok && r.offset < off {
				continue
			}
			if err := b.Handle(ctx, r.kafka()); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Roll(ctx, time.Now(), true); err != nil {
			t.Fatal(err)
		}
		got := readLake(t, lk)
		if len(got) != len(recs) {
			t.Fatalf("crash at %d: %d records in the lake, want %d", crashAt, len(got), len(recs))
		}
		if b.buffered != 0 {
			t.Fatalf("%d bytes still buffered after the final roll", b.buffered)
		}
	}
}

// Invalid records are counted and never reach the lake; valid ones around them do.
func TestBadRecordsAreSkippedAndCounted(t *testing.T) {
	ctx := context.Background()
	lk, err := local.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(testConfig(), nil, lk, nil)
	if err != nil {
		t.Fatal(err)
	}
	good := records(t, 10)
	var env pb.Envelope
	if err := proto.Unmarshal(good[0].value, &env); err != nil {
		t.Fatal(err)
	}
	future := proto.Clone(&env).(*pb.Envelope)
	future.EventTime = timestamppb.New(time.Now().Add(48 * time.Hour))
	futureB, _ := proto.Marshal(future)
	wrong := event.TopicTransactions
	if good[0].stream == wrong {
		wrong = event.TopicUserActivity
	}
	bad := []struct {
		stream string
		value  []byte
	}{
		{good[0].stream, []byte{0xff, 0xfe, 0x01, 0x02, 0x03}}, // random bytes
		{good[0].stream, good[0].value[:len(good[0].value)/2]}, // truncated protobuf
		{good[0].stream, futureB},                              // far in the future
		{wrong, good[0].value},                                 // on the other stream's topic
	}
	for _, r := range good {
		if err := a.Handle(ctx, r.kafka()); err != nil {
			t.Fatal(err)
		}
	}
	off := int64(1000) // after the good records' offsets
	for _, r := range bad {
		if err := a.Handle(ctx, Record{Stream: r.stream, Offset: off, Value: r.value}); err != nil {
			t.Fatal(err)
		}
		off++
	}
	if err := a.Roll(ctx, time.Now(), true); err != nil {
		t.Fatal(err)
	}
	if got := readLake(t, lk); len(got) != len(good) {
		t.Fatalf("%d records in the lake, want the %d good ones", len(got), len(good))
	}
	var skipped float64
	for _, reason := range []string{"undecodable", "invalid", "wrong_topic"} {
		skipped += testutil.ToFloat64(a.m.skipped.WithLabelValues(reason))
	}
	if skipped != float64(len(bad)) {
		t.Fatalf("%v records counted as skipped, want %d", skipped, len(bad))
	}
	// The skipped records still move the commit point: they are done with.
	if p := a.parts[partKey{wrong, 0}]; p.commitOffset() != off {
		t.Fatalf("commit offset %d, want %d", p.commitOffset(), off)
	}
}

// Memory stays under the bound: past it the largest buffers are written early.
func TestMemoryBound(t *testing.T) {
	ctx := context.Background()
	lk, err := local.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.RollBytes, cfg.MaxBufferedBytes = 1<<20, 256<<10
	a, err := New(cfg, nil, lk, nil)
	if err != nil {
		t.Fatal(err)
	}
	var peak int64
	for _, r := range records(t, 20_000) {
		if err := a.Handle(ctx, r.kafka()); err != nil {
			t.Fatal(err)
		}
		if err := a.Roll(ctx, time.Now(), false); err != nil {
			t.Fatal(err)
		}
		peak = max(peak, a.buffered)
	}
	// One record may overshoot until the next roll check.
	if peak > cfg.MaxBufferedBytes+4<<10 {
		t.Fatalf("buffered %d bytes, bound %d", peak, cfg.MaxBufferedBytes)
	}
	if files, _ := lk.List(ctx, ""); len(files) == 0 {
		t.Fatal("nothing was written early")
	}
}

// A copy of an event (a client's retry: same id and time, another offset) is dropped,
// whether its original is still buffered, already in a file, or in a file written before a
// crash; records beyond the deduplication horizon are archived as they come.
func TestDuplicateEventsAreDropped(t *testing.T) {
	ctx := context.Background()
	lk, err := local.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.DedupHorizon = 24 * time.Hour
	recs := recordsFrom(t, 6000, time.Now().Add(-30*time.Minute))
	// Copies of every tenth record, at the end of their partition.
	next := map[partKey]int64{}
	for _, r := range recs {
		next[partKey{r.stream, r.part}] = max(next[partKey{r.stream, r.part}], r.offset+1)
	}
	var copies []record
	for i, r := range recs {
		if i%10 == 0 {
			k := partKey{r.stream, r.part}
			c := r
			c.offset, next[k] = next[k], next[k]+1
			copies = append(copies, c)
		}
	}
	a, err := New(cfg, nil, lk, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs[:3000] {
		if err := a.Handle(ctx, r.kafka()); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Roll(ctx, time.Now(), true); err != nil { // the first half is in files
		t.Fatal(err)
	}
	for _, r := range append(recs[3000:], copies[:len(copies)/2]...) {
		if err := a.Handle(ctx, r.kafka()); err != nil {
			t.Fatal(err)
		}
	}
	// A crash with the second half buffered: a new archiver re-reads it, then the rest.
	b, err := New(cfg, nil, lk, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range append(append(recs[3000:], copies...), copies...) {
		if err := b.Handle(ctx, r.kafka()); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Roll(ctx, time.Now(), true); err != nil {
		t.Fatal(err)
	}
	if got := readLake(t, lk); len(got) != len(recs) {
		t.Fatalf("%d records in the lake, want the %d originals", len(got), len(recs))
	}
	dropped := testutil.ToFloat64(a.m.dupEvents) + testutil.ToFloat64(b.m.dupEvents)
	if dropped < float64(2*len(copies)) {
		t.Fatalf("%v copies counted as duplicates, want at least %d", dropped, 2*len(copies))
	}

	// Past the horizon (the records of TestCrashAndReplay are days old): no deduplication.
	old := records(t, 100)
	z, err := New(cfg, nil, lk, nil)
	if err != nil {
		t.Fatal(err)
	}
	dup := old[5]
	dup.offset = 1_000_000
	for _, r := range append(old, dup) {
		if err := z.Handle(ctx, r.kafka()); err != nil {
			t.Fatal(err)
		}
	}
	if testutil.ToFloat64(z.m.dupEvents) != 0 {
		t.Fatal("an event older than the horizon was deduplicated")
	}
}

// A writer that lost its partition cannot make a file visible once the new owner has
// claimed it: whichever way its write and the claim interleave, every record is in the
// lake exactly once.
func TestZombieArchiverIsFenced(t *testing.T) {
	ctx := context.Background()
	recs := records(t, 4000)
	var part0 []record
	for _, r := range recs {
		if r.part == 0 && r.stream == event.TopicUserActivity {
			part0 = append(part0, r)
		}
	}
	for _, zombieFirst := range []bool{true, false} {
		lk, err := local.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		zombie, err := New(testConfig(), nil, lk, nil)
		if err != nil {
			t.Fatal(err)
		}
		half := len(part0) / 2
		for _, r := range part0[:half] { // buffered, nothing committed: then it pauses
			if err := zombie.Handle(ctx, r.kafka()); err != nil {
				t.Fatal(err)
			}
		}
		if zombieFirst { // it writes its files just before the new owner claims
			if err := zombie.Roll(ctx, time.Now(), true); err != nil {
				t.Fatal(err)
			}
		}
		owner, err := New(testConfig(), nil, lk, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range part0 { // from the committed offset: the start
			if err := owner.Handle(ctx, r.kafka()); err != nil {
				t.Fatal(err)
			}
		}
		if !zombieFirst { // it resumes after the claim and tries to write
			if err := zombie.Roll(ctx, time.Now(), true); err != nil {
				t.Fatal(err)
			}
			if zombie.parts[partKey{event.TopicUserActivity, 0}] != nil || testutil.ToFloat64(zombie.m.fenced) != 1 {
				t.Fatal("the zombie kept its partition")
			}
		}
		if err := owner.Roll(ctx, time.Now(), true); err != nil {
			t.Fatal(err)
		}
		if got := readLake(t, lk); len(got) != len(part0) {
			t.Fatalf("zombie first %v: %d records in the lake, want %d", zombieFirst, len(got), len(part0))
		}
	}
}
