package lake

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"strings"
)

// Fencing of lake writers. A partition's writer writes every file through a staging
// directory of its own, _staging/<topic>-p<partition>-e<epoch>, and renames it into place
// from there. Claiming a partition takes the next epoch (an exclusively created marker
// decides races) and deletes the staging directories of every earlier epoch, with anything
// a previous writer was still writing. A writer that lost its partition (a paused process
// resuming) can then make nothing visible: its temporary file, or the directory it would be
// created in, is gone, and the rename or create fails. A rename it completed before the
// claim is visible to the new writer, which lists a directory only after claiming and so
// skips what that file holds. Readers keep reading the plain Hive layout.

// ErrFenced is returned by a PartitionWriter whose partition a newer writer has claimed.
var ErrFenced = errors.New("lake: a newer writer claimed the partition")

// stagingRoot holds the writers' staging directories and claim markers; hidden from readers.
const stagingRoot = "_staging"

// PartitionWriter writes the lake files of one Kafka partition of one topic as the
// partition's current owner.
type PartitionWriter struct {
	be      Backend
	Epoch   int64
	staging string
}

// ClaimPartition makes the caller the writer of (topic, partition): it takes an epoch above
// every earlier claim's and fences the earlier writers.
func ClaimPartition(ctx context.Context, be Backend, topic string, partition int32) (*PartitionWriter, error) {
	prefix := fmt.Sprintf("%s-p%d-e", topic, partition)
	for {
		names, err := be.ReadDir(ctx, stagingRoot)
		if err != nil {
			return nil, err
		}
		var top int64
		for _, n := range names {
			if e, ok := epochOf(n, prefix); ok {
				top = max(top, e)
			}
		}
		epoch := top + 1
		err = be.CreateExclusive(ctx, fmt.Sprintf("%s/%s%d.claim", stagingRoot, prefix, epoch))
		if errors.Is(err, fs.ErrExist) {
			continue // another claimant took this epoch: outbid it
		}
		if err != nil {
			return nil, err
		}
		w := &PartitionWriter{be: be, Epoch: epoch, staging: fmt.Sprintf("%s/%s%d", stagingRoot, prefix, epoch)}
		if err := be.MkdirAll(ctx, w.staging); err != nil {
			return nil, err
		}
		for _, n := range names {
			if e, ok := epochOf(n, prefix); ok && e < epoch {
				if err := be.RemoveAll(ctx, stagingRoot+"/"+n); err != nil {
					return nil, fmt.Errorf("lake: fence %s: %w", n, err)
				}
			}
		}
		return w, nil
	}
}

// epochOf reads the epoch of a staging directory or claim marker named prefix<epoch>[.claim].
func epochOf(name, prefix string) (int64, bool) {
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok {
		return 0, false
	}
	e, err := strconv.ParseInt(strings.TrimSuffix(rest, ".claim"), 10, 64)
	return e, err == nil && e > 0
}

// Write makes rel visible with the content write produces, or returns ErrFenced once a
// newer writer has claimed the partition; other errors are the backend's (retry them).
func (w *PartitionWriter) Write(ctx context.Context, rel string, write func(io.Writer) error) error {
	err := w.be.WriteVia(ctx, w.staging, rel, write)
	if err != nil && errors.Is(err, fs.ErrNotExist) {
		names, lerr := w.be.ReadDir(ctx, stagingRoot)
		if lerr == nil && !contains(names, w.staging[len(stagingRoot)+1:]) {
			return fmt.Errorf("%w (epoch %d): %v", ErrFenced, w.Epoch, err)
		}
	}
	return err
}

func contains(names []string, n string) bool {
	for _, x := range names {
		if x == n {
			return true
		}
	}
	return false
}
