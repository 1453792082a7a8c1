package local

import (
	"context"
	"io"
	"reflect"
	"testing"
	"time"

	"github.com/bytebasket/bytebasket/internal/lake"
)

// Retention removes whole days and hours older than the cutoff and nothing newer.
func TestDeleteExpired(t *testing.T) {
	ctx := context.Background()
	d, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	put := func(stream string, at time.Time) {
		r := lake.FileRange{Topic: stream, Partition: 0, First: 1, Last: 2}
		if err := d.WriteAtomic(ctx, lake.PartitionDir(stream, at)+"/"+r.FileName(), func(w io.Writer) error {
			_, err := w.Write([]byte("x"))
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	day := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	for _, s := range []string{lake.StreamActivity, lake.StreamTransactions} {
		put(s, day.Add(-26*time.Hour)) // 18 Nov 22:00
		put(s, day.Add(3*time.Hour))   // 20 Nov 03:00
		put(s, day.Add(9*time.Hour))   // 20 Nov 09:00
	}
	cutoff := day.Add(9*time.Hour + 30*time.Minute) // mid-way through 09:00
	got, err := lake.DeleteExpired(ctx, d, cutoff)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"stream=transactions/date=2026-11-18", "stream=transactions/date=2026-11-20/hour=03",
		"stream=user-activity/date=2026-11-18", "stream=user-activity/date=2026-11-20/hour=03",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("deleted %v, want %v", got, want)
	}
	files, err := d.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 {
		t.Fatalf("%d files left, want the two of 09:00: %v", len(files), files)
	}
}
