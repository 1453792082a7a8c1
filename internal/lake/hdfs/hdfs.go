// Package hdfs is the HDFS backend of the lake (colinmarc/hdfs): files under a root
// directory, each written under a hidden temporary name and renamed into place, so a reader
// never sees a half-written file.
package hdfs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"time"

	"github.com/bytebasket/bytebasket/internal/config"
	"github.com/bytebasket/bytebasket/internal/lake"
	"github.com/colinmarc/hdfs/v2"
)

// FS is the lake's root directory on HDFS.
type FS struct {
	client      *hdfs.Client
	root        string
	replication int
}

// Open connects to the namenodes of cfg.
func Open(cfg config.Lake) (*FS, error) {
	h := cfg.HDFS
	if h.KerberosPrincipal != "" {
		return nil, errors.New("hdfs: kerberos_principal is set but Kerberos is not supported yet; use simple auth")
	}
	if len(h.Namenodes) == 0 {
		return nil, errors.New("hdfs: no namenodes configured")
	}
	user := h.User
	if user == "" {
		user = os.Getenv("USER")
	}
	if user == "" {
		user = "bytebasket"
	}
	c, err := hdfs.NewClient(hdfs.ClientOptions{Addresses: h.Namenodes, User: user, DataTransferProtection: h.DataTransferProtection})
	if err != nil {
		return nil, fmt.Errorf("hdfs: connect to %v: %w", h.Namenodes, err)
	}
	repl := h.Replication
	if repl <= 0 {
		repl = 3
	}
	return &FS{client: c, root: path.Clean("/" + cfg.Root), replication: repl}, nil
}

// Close releases the namenode connection.
func (f *FS) Close() error { return f.client.Close() }

func (f *FS) abs(rel string) string { return path.Join(f.root, path.Clean("/"+rel)) }

// WriteAtomic writes a file at rel: write streams the content into a hidden temporary file
// in the same directory, which is renamed into place only after it is closed (all blocks
// acknowledged by the datanodes). A failure leaves no visible file; a retry with the same
// name replaces the earlier one, so writes named by content (offset ranges) are idempotent.
func (f *FS) WriteAtomic(ctx context.Context, rel string, write func(io.Writer) error) error {
	dir := path.Dir(path.Clean("/" + rel))
	if err := f.MkdirAll(ctx, dir); err != nil {
		return err
	}
	return f.WriteVia(ctx, dir, rel, write)
}

// WriteVia writes rel through a hidden temporary file in via, created without its parents
// (so a deleted via fails the write), closed, then renamed into place.
func (f *FS) WriteVia(ctx context.Context, via, rel string, write func(io.Writer) error) error {
	dst := f.abs(rel)
	var suffix [6]byte
	_, _ = rand.Read(suffix[:])
	// A leading underscore hides the file from Spark, Hive and DuckDB globs.
	tmp := path.Join(f.abs(via), "_tmp."+path.Base(dst)+"."+hex.EncodeToString(suffix[:]))
	w, err := f.client.CreateFile(tmp, f.replication, 128<<20, 0o644)
	if err != nil {
		return fmt.Errorf("hdfs: create %s: %w", tmp, err)
	}
	werr := write(w)
	cerr := closeWriter(ctx, w)
	if err := errors.Join(werr, cerr, ctx.Err()); err != nil {
		_ = f.client.Remove(tmp)
		return fmt.Errorf("hdfs: write %s: %w", dst, err)
	}
	if err := f.client.MkdirAll(path.Dir(dst), 0o755); err != nil {
		_ = f.client.Remove(tmp)
		return fmt.Errorf("hdfs: mkdir %s: %w", path.Dir(dst), err)
	}
	if err := f.client.Rename(tmp, dst); err != nil {
		_ = f.client.Remove(tmp)
		return fmt.Errorf("hdfs: rename into %s: %w", dst, err)
	}
	return nil
}

// CreateExclusive creates an empty file at rel; the namenode refuses a second create of a
// name (no overwrite), so of racing callers one wins.
func (f *FS) CreateExclusive(ctx context.Context, rel string) error {
	p := f.abs(rel)
	if err := f.client.MkdirAll(path.Dir(p), 0o755); err != nil {
		return fmt.Errorf("hdfs: mkdir %s: %w", path.Dir(p), err)
	}
	w, err := f.client.CreateFile(p, f.replication, 128<<20, 0o644)
	if err != nil {
		return fmt.Errorf("hdfs: create %s: %w", p, err)
	}
	if err := closeWriter(ctx, w); err != nil {
		return fmt.Errorf("hdfs: create %s: %w", p, err)
	}
	return nil
}

// MkdirAll creates rel and its parents.
func (f *FS) MkdirAll(_ context.Context, rel string) error {
	if err := f.client.MkdirAll(f.abs(rel), 0o755); err != nil {
		return fmt.Errorf("hdfs: mkdir %s: %w", rel, err)
	}
	return nil
}

// Open opens rel for reading.
func (f *FS) Open(_ context.Context, rel string) (lake.File, error) {
	r, err := f.client.Open(f.abs(rel))
	if err != nil {
		return nil, fmt.Errorf("hdfs: open %s: %w", rel, err)
	}
	return hdfsFile{r}, nil
}

type hdfsFile struct{ *hdfs.FileReader }

func (f hdfsFile) Size() int64 { return f.Stat().Size() }

// closeWriter completes the file. The namenode answers "replicating" until the datanodes
// report the last block; like the Java client, retry with backoff until it completes.
func closeWriter(ctx context.Context, w *hdfs.FileWriter) error {
	backoff, deadline := 10*time.Millisecond, time.Now().Add(2*time.Minute)
	for {
		err := w.Close()
		if !hdfs.IsErrReplicating(err) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// List returns the visible files below dir (recursively), sorted by path; temporary files
// and missing directories yield nothing.
func (f *FS) List(ctx context.Context, dir string) ([]lake.FileInfo, error) {
	var out []lake.FileInfo
	top := f.abs(dir)
	err := f.client.Walk(top, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if info.IsDir() && p != top && lake.Hidden(path.Base(p)) {
			return filepath.SkipDir // staging and other bookkeeping
		}
		if info.IsDir() || lake.Hidden(path.Base(p)) {
			return nil
		}
		rel := p[len(f.root):]
		out = append(out, lake.FileInfo{Path: rel[1:], Size: info.Size(), ModTime: info.ModTime()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("hdfs: list %s: %w", dir, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// ReadDir returns the names of dir's visible entries, sorted.
func (f *FS) ReadDir(_ context.Context, dir string) ([]string, error) {
	infos, err := f.client.ReadDir(f.abs(dir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("hdfs: read dir %s: %w", dir, err)
	}
	var names []string
	for _, fi := range infos {
		if !lake.Hidden(fi.Name()) {
			names = append(names, fi.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// ReadFile returns a whole file.
func (f *FS) ReadFile(_ context.Context, rel string) ([]byte, error) {
	b, err := f.client.ReadFile(f.abs(rel))
	if err != nil {
		return nil, fmt.Errorf("hdfs: read %s: %w", rel, err)
	}
	return b, nil
}

// RemoveAll deletes rel and everything below it.
func (f *FS) RemoveAll(_ context.Context, rel string) error {
	if err := f.client.RemoveAll(f.abs(rel)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("hdfs: remove %s: %w", rel, err)
	}
	return nil
}
