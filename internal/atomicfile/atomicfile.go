// Package atomicfile writes small files durably and atomically: after a
// crash at any point, a reader finds either the old file (or none) or the
// whole new one, never a torn or empty one.
//
// Each write goes to a temporary file in the target's directory, which is
// synced and then renamed (WriteFile) or linked (Create) to the target, and
// the directory is synced so the new name itself is durable. A crash can
// leave only a temporary file behind, named ".<base>.tmp-*", which no
// reader looks at.
package atomicfile

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// WriteFile atomically replaces path with data, with permissions perm.
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	return write(path, data, perm, os.Rename)
}

// Create writes data to path, with permissions perm, only if path does not
// exist yet; otherwise it returns an error wrapping fs.ErrExist and leaves
// path as it was.
func Create(path string, data []byte, perm fs.FileMode) error {
	return write(path, data, perm, os.Link)
}

// Ensure makes path hold data, with WriteFile, unless it already does: a
// file derived from another (a public key from its private key) is
// restored when a crash left it missing, torn or stale.
func Ensure(path string, data []byte, perm fs.FileMode) error {
	if b, err := os.ReadFile(path); err == nil && bytes.Equal(b, data) {
		return nil
	}
	return WriteFile(path, data, perm)
}

// write stages data in a synced temporary file, then publishes it at path
// with publish (rename or link) and syncs the directory.
func write(path string, data []byte, perm fs.FileMode, publish func(tmp, path string) error) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("creating %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if f != nil {
			f.Close()
		}
		// After a rename the temporary name is gone; after a link it is a
		// second name for path. Either way it is removed.
		if rerr := os.Remove(tmp); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) && err == nil {
			err = fmt.Errorf("removing %s: %w", tmp, rerr)
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("creating %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", path, err)
	}
	cerr := f.Close()
	f = nil
	if cerr != nil {
		return fmt.Errorf("closing %s: %w", path, cerr)
	}
	if err := publish(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("creating %s: %w", path, fs.ErrExist)
		}
		return fmt.Errorf("creating %s: %w", path, err)
	}
	return SyncDir(dir)
}

// SyncDir syncs directory dir, making the names created in it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}
