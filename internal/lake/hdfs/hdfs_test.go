package hdfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/bytebasket/bytebasket/internal/config"
	"github.com/bytebasket/bytebasket/internal/testenv"
)

func openTestFS(t *testing.T) *FS {
	t.Helper()
	cfg := config.Default().Lake
	cfg.HDFS.Namenodes = []string{testenv.Addr(t, testenv.HDFS)}
	cfg.Root = fmt.Sprintf("/it/%s-%d", t.Name(), time.Now().UnixNano())
	f, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.RemoveAll(context.Background(), "/"); f.Close() })
	return f
}

// Against the real HDFS of deploy/local: write, rename into place, list, read back; a failed
// write leaves nothing visible; writing the same name again replaces the file.
func TestWriteAtomicListRead(t *testing.T) {
	f := openTestFS(t)
	ctx := context.Background()
	payload := bytes.Repeat([]byte("bytebasket"), 100_000) // ~1 MB, several packets
	name := "stream=orders/date=2026-11-24/hour=10/orders-0-100-199.parquet"
	if err := f.WriteAtomic(ctx, name, func(w io.Writer) error { _, err := w.Write(payload); return err }); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("writer failed midway")
	err := f.WriteAtomic(ctx, "stream=orders/date=2026-11-24/hour=10/broken.parquet", func(w io.Writer) error {
		_, _ = w.Write(payload[:1000])
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("failed write returned %v", err)
	}
	files, err := f.List(ctx, "stream=orders")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 || files[0].Path != name || files[0].Size != int64(len(payload)) {
		t.Fatalf("listing %+v, want exactly %s of %d bytes", files, name, len(payload))
	}
	got, err := f.ReadFile(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, payload) {
		t.Fatal("read back different bytes")
	}
	// Same name again (a retry after a crash before the offset commit): replaced, not doubled.
	if err := f.WriteAtomic(ctx, name, func(w io.Writer) error { _, err := w.Write([]byte("v2")); return err }); err != nil {
		t.Fatal(err)
	}
	files, _ = f.List(ctx, "")
	got, _ = f.ReadFile(ctx, name)
	if len(files) != 1 || string(got) != "v2" {
		t.Fatalf("after rewrite: %d files, content %q", len(files), got)
	}
}
