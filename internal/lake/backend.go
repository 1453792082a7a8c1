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
	// missing directory. Hidden directories (staging) are not entered.
	List(ctx context.Context, dir string) ([]FileInfo, error)
	// ReadDir returns the names of dir's visible entries, sorted; nothing if it is missing.
	ReadDir(ctx context.Context, dir string) ([]string, error)
	ReadFile(ctx context.Context, rel string) ([]byte, error)
	// RemoveAll deletes rel and everything below it; a missing path is not an error.
	RemoveAll(ctx context.Context, rel string) error
	// CreateExclusive creates an empty file at rel (and its parent directories), atomically:
	// of callers racing for one name exactly one succeeds, the others get an error wrapping
	// fs.ErrExist.
	CreateExclusive(ctx context.Context, rel string) error
	// MkdirAll creates the directory rel and its parents.
	MkdirAll(ctx context.Context, rel string) error
	// WriteVia writes rel through a temporary file in the directory via, which must exist,
	// renamed into place (rel's parents are created). If via or the temporary file in it is
	// deleted meanwhile, nothing becomes visible and the error wraps fs.ErrNotExist.
	WriteVia(ctx context.Context, via, rel string, write func(io.Writer) error) error
	// Open opens rel for reading at any offset.
	Open(ctx context.Context, rel string) (File, error)
	Close() error
}

// File is a lake file open for reading.
type File interface {
	io.ReaderAt
	io.Closer
	Size() int64
}

// FileInfo describes one lake file.
type FileInfo struct {
	Path    string // relative to the root
	Size    int64
	ModTime time.Time
}

// Hidden names are temporary or bookkeeping files: Spark, Hive and DuckDB globs skip them.
func Hidden(name string) bool { return name != "" && (name[0] == '_' || name[0] == '.') }
