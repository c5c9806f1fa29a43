package storage_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/provlog/provlog/storage"
	"github.com/provlog/provlog/storage/storagetest"
)

// schema1Entry is entry i of testdata/schema1 (testdata/mkschema1's entry).
func schema1Entry(i int) []byte {
	e := fmt.Appendf(nil, "schema-1 entry %d;", i)
	for n := (i * 37) % 700; n > 0; n-- {
		e = append(e, byte('a'+(i+n)%26))
	}
	return e
}

// TestMigrateSchema1Store opens a store written by provlog of schema 1
// (one key per entry; testdata/mkschema1 says how it was made): Open
// migrates it, and the tree re-verifies with sumdb/tlog against the
// checkpoint it held, signed then; every entry and bundle reads back; the
// served form kept for bundle 1 is still there; and it reopens as it was
// left. (TestMigrationResumes extends a migrated store.)
func TestMigrateSchema1Store(t *testing.T) {
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("testdata/schema1")); err != nil {
		t.Fatal(err)
	}
	vkey, err := os.ReadFile("testdata/schema1.vkey")
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(strings.TrimSpace(string(vkey)))
	if err != nil {
		t.Fatal(err)
	}
	const size = 899
	check := func(s *storage.Store) {
		t.Helper()
		tree, err := storagetest.Verify(s, "example.com/v1", v)
		if err != nil {
			t.Fatal(err)
		}
		if tree.Size != size {
			t.Fatalf("tree size %d, want %d", tree.Size, size)
		}
		for i, e := range tree.Entries {
			if !bytes.Equal(e, schema1Entry(i)) {
				t.Fatalf("entry %d = %q", i, e)
			}
		}
		for b := 0; b*storage.BundleSize < size; b++ {
			w := min(storage.BundleSize, size-b*storage.BundleSize)
			var want []byte
			for i := b * storage.BundleSize; i < b*storage.BundleSize+w; i++ {
				want = binary.BigEndian.AppendUint16(want, uint16(len(schema1Entry(i))))
				want = append(want, schema1Entry(i)...)
			}
			if got, err := s.AppendBundle(nil, uint64(b), uint64(w)); err != nil || !bytes.Equal(got, want) {
				t.Fatalf("bundle %d: %d bytes, %v; want %d", b, len(got), err, len(want))
			}
		}
		if kept, err := s.Bundle(nil, 1); err != nil || len(kept) == 0 {
			t.Errorf("bundle 1's kept form after migration: %d bytes, %v", len(kept), err)
		}
		// The leaf-hash index, moved out of Pebble (schema 4), finds every
		// entry at its index.
		hashes := make([][]byte, size)
		for i := range hashes {
			h := sha256.Sum256(append([]byte{0}, schema1Entry(i)...))
			hashes[i] = h[:]
		}
		idx, found := make([]uint64, size), make([]bool, size)
		if err := s.LookupLeaves(hashes, idx, found); err != nil {
			t.Fatal(err)
		}
		for i := range hashes {
			if !found[i] || idx[i] != uint64(i) {
				t.Fatalf("leaf %d after migration: found %v at %d", i, found[i], idx[i])
			}
		}
	}
	s, err := storage.Open(dir, storage.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	check(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = storage.Open(dir, storage.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	check(s)
}
