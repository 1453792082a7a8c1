package lake

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/parquet-go/parquet-go"

	"github.com/bytebasket/bytebasket/internal/event"
)

// EventIDs reads the event_id column of a lake file (only that column's pages are read)
// and calls fn with each id's fingerprint (event.Fingerprint).
func EventIDs(ctx context.Context, be Backend, rel string, fn func(uint64)) error {
	f, err := be.Open(ctx, rel)
	if err != nil {
		return err
	}
	defer f.Close()
	pf, err := parquet.OpenFile(f, f.Size(), parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return fmt.Errorf("lake: %s: %w", rel, err)
	}
	col, ok := pf.Schema().Lookup("event_id")
	if !ok {
		return fmt.Errorf("lake: %s has no event_id column", rel)
	}
	buf := make([]parquet.Value, 1024)
	for _, rg := range pf.RowGroups() {
		r := parquet.NewColumnChunkValueReader(rg.ColumnChunks()[col.ColumnIndex])
		for {
			if err := ctx.Err(); err != nil {
				r.Close()
				return err
			}
			n, err := r.ReadValues(buf)
			for _, v := range buf[:n] {
				if !v.IsNull() {
					fn(event.Fingerprint(string(v.ByteArray())))
				}
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				r.Close()
				return fmt.Errorf("lake: %s: event ids: %w", rel, err)
			}
		}
		if err := r.Close(); err != nil {
			return fmt.Errorf("lake: %s: %w", rel, err)
		}
	}
	return nil
}
