package lake

import (
	"context"
	"io"
	"time"
)

// Backend stores lake files under a root: HDFS (lake/hdfs) or a local directory
// (lake/local). Paths are relative to the root and use '/'.
type Backend interface {
	// WriteAtomic writes rel through a hidden temporary file renamed into place once
	// complete: readers never see a partial file, and a rewrite replaces it whole.
	WriteAtomic(ctx context.Context, rel string, write func(io.Writer) error) error
	// List returns the visible files below dir, recursively, sorted by path; nothing for a
	// missing directory.
	List(ctx context.Context, dir string) ([]FileInfo, error)
	// ReadDir returns the names of dir's visible entries, sorted; nothing if it is missing.
	ReadDir(ctx context.Context, dir string) ([]string, error)
	ReadFile(ctx context.Context, rel string) ([]byte, error)
	// RemoveAll deletes rel and everything below it; a missing path is not an error.
	RemoveAll(ctx context.Context, rel string) error
	Close() error
}

// FileInfo describes one lake file.
type FileInfo struct {
	Path    string // relative to the root
	Size    int64
	ModTime time.Time
}

// Hidden names are temporary or bookkeeping files: Spark, Hive and DuckDB globs skip them.
func Hidden(name string) bool { return name != "" && (name[0] == '_' || name[0] == '.') }
