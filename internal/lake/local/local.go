// Package local is the local-directory backend of the lake (embedded mode): files under a
// root directory, written under a hidden temporary name, synced and renamed into place.
package local

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"

	"github.com/bytebasket/bytebasket/internal/lake"
)

// Dir is the lake's root directory on local disk.
type Dir struct{ root string }

// Open uses root, creating it if needed.
func Open(root string) (*Dir, error) {
	if root == "" {
		return nil, errors.New("local lake: empty root")
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("local lake: %w", err)
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("local lake: %w", err)
	}
	return &Dir{root: abs}, nil
}

// Root is the absolute root directory (what DuckDB reads).
func (d *Dir) Root() string { return d.root }

func (d *Dir) abs(rel string) string {
	return filepath.Join(d.root, filepath.FromSlash(path.Clean("/"+rel)))
}

// Close does nothing: there is no connection.
func (d *Dir) Close() error { return nil }

// WriteAtomic writes rel through a hidden temporary file in the same directory that is
// fsynced, renamed into place and made durable by syncing the directory.
func (d *Dir) WriteAtomic(ctx context.Context, rel string, write func(io.Writer) error) error {
	if err := os.MkdirAll(filepath.Dir(d.abs(rel)), 0o755); err != nil {
		return fmt.Errorf("local lake: %w", err)
	}
	return d.WriteVia(ctx, path.Dir(path.Clean("/"+rel)), rel, write)
}

// WriteVia writes rel through a hidden temporary file in via (which must exist), fsynced,
// renamed into place, made durable by syncing rel's directory.
func (d *Dir) WriteVia(ctx context.Context, via, rel string, write func(io.Writer) error) error {
	dst := d.abs(rel)
	var suffix [6]byte
	_, _ = rand.Read(suffix[:])
	tmp := filepath.Join(d.abs(via), "_tmp."+filepath.Base(dst)+"."+hex.EncodeToString(suffix[:]))
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("local lake: %w", err)
	}
	werr := write(f)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr, ctx.Err()); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("local lake: write %s: %w", rel, err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("local lake: %w", err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("local lake: rename into %s: %w", rel, err)
	}
	return syncDir(filepath.Dir(dst))
}

// CreateExclusive creates an empty file at rel, failing if it exists (O_EXCL).
func (d *Dir) CreateExclusive(_ context.Context, rel string) error {
	p := d.abs(rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("local lake: %w", err)
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("local lake: %w", err)
	}
	if err := errors.Join(f.Sync(), f.Close()); err != nil {
		return fmt.Errorf("local lake: %w", err)
	}
	return syncDir(filepath.Dir(p))
}

// MkdirAll creates rel and its parents.
func (d *Dir) MkdirAll(_ context.Context, rel string) error {
	if err := os.MkdirAll(d.abs(rel), 0o755); err != nil {
		return fmt.Errorf("local lake: %w", err)
	}
	return nil
}

// Open opens rel for reading.
func (d *Dir) Open(_ context.Context, rel string) (lake.File, error) {
	f, err := os.Open(d.abs(rel))
	if err != nil {
		return nil, fmt.Errorf("local lake: %w", err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("local lake: %w", err)
	}
	return osFile{f, info.Size()}, nil
}

type osFile struct {
	*os.File
	size int64
}

func (f osFile) Size() int64 { return f.size }

// syncDir makes a rename durable: without it a crash can forget the new name.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("local lake: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("local lake: sync %s: %w", dir, err)
	}
	return nil
}

// List returns the visible files below dir, recursively, sorted by path; hidden
// directories are not entered.
func (d *Dir) List(ctx context.Context, dir string) ([]lake.FileInfo, error) {
	var out []lake.FileInfo
	top := d.abs(dir)
	err := filepath.WalkDir(top, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if e.IsDir() && p != top && lake.Hidden(e.Name()) {
			return filepath.SkipDir // staging and other bookkeeping
		}
		if e.IsDir() || lake.Hidden(e.Name()) {
			return nil
		}
		info, err := e.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) { // removed meanwhile
				return nil
			}
			return err
		}
		rel, err := filepath.Rel(d.root, p)
		if err != nil {
			return err
		}
		out = append(out, lake.FileInfo{Path: filepath.ToSlash(rel), Size: info.Size(), ModTime: info.ModTime()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("local lake: list %s: %w", dir, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// ReadDir returns the names of dir's visible entries, sorted.
func (d *Dir) ReadDir(_ context.Context, dir string) ([]string, error) {
	entries, err := os.ReadDir(d.abs(dir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("local lake: %w", err)
	}
	var names []string
	for _, e := range entries {
		if !lake.Hidden(e.Name()) {
			names = append(names, e.Name())
		}
	}
	return names, nil // os.ReadDir sorts by name
}

// ReadFile returns a whole file.
func (d *Dir) ReadFile(_ context.Context, rel string) ([]byte, error) {
	b, err := os.ReadFile(d.abs(rel))
	if err != nil {
		return nil, fmt.Errorf("local lake: %w", err)
	}
	return b, nil
}

// RemoveAll deletes rel and everything below it.
func (d *Dir) RemoveAll(_ context.Context, rel string) error {
	if err := os.RemoveAll(d.abs(rel)); err != nil {
		return fmt.Errorf("local lake: %w", err)
	}
	return nil
}
