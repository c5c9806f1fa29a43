package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// smallEntry is entry i of the bundle-file tests: small, so that a test
// crosses from one bundle file to the next (262,144 entries) in a few MB.
func smallEntry(i uint64) []byte { return fmt.Appendf(nil, "e%d", i) }

func smallEntries(start, n uint64) [][]byte {
	es := make([][]byte, n)
	for i := range es {
		es[i] = smallEntry(start + uint64(i))
	}
	return es
}

// bundleOf is the encoding of full bundle index of smallEntry.
func bundleOf(index uint64) []byte {
	var b []byte
	for i := index * BundleSize; i < (index+1)*BundleSize; i++ {
		b = AppendRecord(b, smallEntry(i))
	}
	return b
}

// checkEntries reads [0, size) back, as full bundles, as the partial
// bundle and through Entries.
func checkEntries(t *testing.T, s *Store, size uint64) {
	t.Helper()
	for k := uint64(0); k < size/BundleSize; k++ {
		if got, err := s.AppendBundle([]byte("x"), k, BundleSize); err != nil || !bytes.Equal(got[1:], bundleOf(k)) || got[0] != 'x' {
			t.Fatalf("AppendBundle(%d): %d bytes, %v", k, len(got), err)
		}
	}
	if w := size % BundleSize; w > 0 {
		if got, err := s.AppendBundle(nil, size/BundleSize, w); err != nil || !bytes.Equal(got, bundleOf(size / BundleSize)[:len(got)]) {
			t.Fatalf("AppendBundle(%d, width %d): %v", size/BundleSize, w, err)
		}
	}
	next := uint64(0)
	if err := s.Entries(0, size, func(i uint64, e []byte) error {
		if i != next || !bytes.Equal(e, smallEntry(i)) {
			return fmt.Errorf("entry %d = %q, want entry %d", i, e, next)
		}
		next++
		return nil
	}); err != nil || next != size {
		t.Fatalf("Entries(0, %d): %v after %d", size, err, next)
	}
}

// location returns bundle index's location, failing if it is in Pebble.
func location(t *testing.T, s *Store, index uint64) bundleLoc {
	t.Helper()
	v, err := s.get(bundleEntriesKey(index))
	if err != nil {
		t.Fatal(err)
	}
	l, ok := decodeLoc(v)
	if !ok {
		t.Fatalf("entry bundle %d is in Pebble (%d bytes), not in a file", index, len(v))
	}
	return l
}

// TestBundleFiles appends rounds of every alignment across the end of the
// first bundle file: every full bundle is in a file, one after the other,
// the second file starting with bundle segmentBundles at offset 0 (within
// one round), no chunk is left, and every entry reads back, before and
// after reopening.
func TestBundleFiles(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var size uint64
	commit := func(n uint64) {
		commitEntries(t, s, size, smallEntries(size, n))
		size += n
	}
	commit(1)
	commit(300) // completes bundle 0 from the tail
	for size+4096 < (segmentBundles-2)*BundleSize {
		commit(4096)
	}
	commit((segmentBundles-1)*BundleSize - size + 17) // the file's last bundle partial
	commit(2*BundleSize + 3)                          // completes it and the next file's first
	checkEntries(t, s, size)
	var off int64
	for k := uint64(0); k < size/BundleSize; k++ {
		if k == segmentBundles {
			off = 0
		}
		l := location(t, s, k)
		if l.off != off || l.n != uint32(len(bundleOf(k))) {
			t.Fatalf("bundle %d at %d (%d bytes), want at %d (%d bytes)", k, l.off, l.n, off, len(bundleOf(k)))
		}
		off += int64(l.n)
		if n := chunkKeys(t, s, k); n != 0 {
			t.Errorf("full bundle %d has %d chunks left", k, n)
		}
	}
	for seg, want := range map[uint64]int64{0: location(t, s, segmentBundles-1).off + int64(len(bundleOf(segmentBundles-1))), 1: off} {
		fi, err := os.Stat(s.files.name(seg))
		if err != nil || fi.Size() != want {
			t.Errorf("bundle file %d: %v, %v; want %d bytes", seg, fi, err, want)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(dir, Options{}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkEntries(t, s, size)
	commit(BundleSize) // continues the second file after reopening
	checkEntries(t, s, size)
	if l, prev := location(t, s, size/BundleSize-1), location(t, s, size/BundleSize-2); l.off != prev.off+int64(prev.n) {
		t.Errorf("after reopening, bundle %d at %d, want %d", size/BundleSize-1, l.off, prev.off+int64(prev.n))
	}
}

// TestBundleFileTail: bytes past the last committed bundle, as a round
// that crashed between syncing its bundles and committing their locations
// leaves them, belong to no bundle: the next round writes over them and
// every bundle reads back.
func TestBundleFileTail(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	commitEntries(t, s, 0, smallEntries(0, 2*BundleSize+5))
	s.Close()
	name := filepath.Join(dir, "bundles", "000000000000.bundles")
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(bytes.Repeat([]byte{0xee}, 10000))
	f.Close()
	if s, err = Open(dir, Options{}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	commitEntries(t, s, 2*BundleSize+5, smallEntries(2*BundleSize+5, BundleSize))
	checkEntries(t, s, 3*BundleSize+5)
	if l := location(t, s, 2); l.off != int64(len(bundleOf(0))+len(bundleOf(1))) {
		t.Errorf("bundle 2 at %d, after the garbage (%d)?", l.off, len(bundleOf(0))+len(bundleOf(1)))
	}
}

// TestBundleFileDamage: a bundle file changed, cut short or lost is
// reported as ErrCorrupt, naming the file: a changed byte by the read of
// its bundle (CRC-32C), a file cut short or lost by Open.
func TestBundleFileDamage(t *testing.T) {
	setup := func(t *testing.T) (string, string) {
		dir := t.TempDir()
		s, err := Open(dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		commitEntries(t, s, 0, smallEntries(0, 3*BundleSize))
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		return dir, filepath.Join(dir, "bundles", "000000000000.bundles")
	}
	t.Run("byte", func(t *testing.T) {
		dir, name := setup(t)
		b, _ := os.ReadFile(name)
		b[len(bundleOf(0))+100] ^= 1 // in bundle 1
		os.WriteFile(name, b, 0o644)
		s, err := Open(dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, err := s.AppendBundle(nil, 1, BundleSize); !errors.Is(err, ErrCorrupt) || !bytes.Contains([]byte(err.Error()), []byte(name)) {
			t.Errorf("AppendBundle of the changed bundle: %v, want ErrCorrupt naming %s", err, name)
		}
		if err := s.Entries(0, 3*BundleSize, func(uint64, []byte) error { return nil }); !errors.Is(err, ErrCorrupt) {
			t.Errorf("Entries over the changed bundle: %v, want ErrCorrupt", err)
		}
		if got, err := s.AppendBundle(nil, 2, BundleSize); err != nil || !bytes.Equal(got, bundleOf(2)) {
			t.Errorf("AppendBundle of the next bundle: %v", err)
		}
	})
	t.Run("short", func(t *testing.T) {
		dir, name := setup(t)
		os.Truncate(name, int64(len(bundleOf(0))+len(bundleOf(1))+len(bundleOf(2))-1)) // the last bundle's last byte
		if s, err := Open(dir, Options{}); !errors.Is(err, ErrCorrupt) || !bytes.Contains([]byte(err.Error()), []byte(name)) {
			if err == nil {
				s.Close()
			}
			t.Errorf("Open with the bundle file cut short: %v, want ErrCorrupt naming %s", err, name)
		}
	})
	t.Run("lost", func(t *testing.T) {
		dir, name := setup(t)
		os.Remove(name)
		if s, err := Open(dir, Options{}); !errors.Is(err, ErrCorrupt) {
			if err == nil {
				s.Close()
			}
			t.Errorf("Open with the bundle file lost: %v, want ErrCorrupt", err)
		}
	})
}

// TestSchema2Upgrade opens a store of schema 2 (full bundles in Pebble,
// the partial one in chunks): Open raises it to schema 3 without
// rewriting anything, the bundles in Pebble stay there and read back, and
// the bundles completed from then on, the partial one first, go to a file
// from its start.
func TestSchema2Upgrade(t *testing.T) {
	dir := t.TempDir()
	const size = 3*BundleSize + 40
	db, err := pebble.Open(dir, &pebble.Options{FormatMajorVersion: pebble.FormatNewest})
	if err != nil {
		t.Fatal(err)
	}
	b := db.NewBatch()
	b.Set(keyVersion, binary.BigEndian.AppendUint32(nil, 2), nil)
	b.Set(keyState, encodeState(State{Size: size}), nil)
	b.Set(keyCheckpoint, []byte("cp"), nil)
	for k := range uint64(3) {
		b.Set(bundleEntriesKey(k), bundleOf(k), nil)
	}
	var chunk []byte
	for i := uint64(3 * BundleSize); i < size; i++ {
		chunk = AppendRecord(chunk, smallEntry(i))
	}
	b.Set(chunkKey(3*BundleSize), chunk, nil)
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v, err := s.get(keyVersion); err != nil || binary.BigEndian.Uint32(v) != schemaVersion {
		t.Fatalf("schema version after Open: %x, %v", v, err)
	}
	checkEntries(t, s, size)
	commitEntries(t, s, size, smallEntries(size, 2*BundleSize))
	checkEntries(t, s, size+2*BundleSize)
	for k := range uint64(3) {
		if v, err := s.get(bundleEntriesKey(k)); err != nil || !bytes.Equal(v, bundleOf(k)) {
			t.Errorf("bundle %d of schema 2 was rewritten: %d bytes, %v", k, len(v), err)
		}
	}
	if l := location(t, s, 3); l.off != 0 {
		t.Errorf("the first bundle in a file is at %d, want 0", l.off)
	}
	if f, _, err := s.OpenBundle(1); !errors.Is(err, ErrNotInFile) {
		if err == nil {
			f.Close()
		}
		t.Errorf("OpenBundle of a bundle kept in Pebble: %v, want ErrNotInFile", err)
	}
	for _, k := range []uint64{3, 4, 4} {
		f, n, err := s.OpenBundle(k)
		if err != nil {
			t.Fatalf("OpenBundle(%d): %v", k, err)
		}
		got, err := io.ReadAll(io.LimitReader(f, n))
		f.Close()
		if err != nil || !bytes.Equal(got, bundleOf(k)) {
			t.Errorf("OpenBundle(%d): %d bytes (of %d), %v", k, len(got), n, err)
		}
	}
	if l := location(t, s, 4); l.off != int64(len(bundleOf(3))) {
		t.Errorf("the second bundle in a file is at %d, want %d", l.off, len(bundleOf(3)))
	}
}

// TestBundleFileFailedRound: a round that wrote its bundles to the file
// and then failed before committing (here, a malformed leaf hash) leaves
// bytes that belong to no bundle; the next round, without reopening,
// writes its own bundles over them at the same offset, and every entry
// reads back as the second round committed it.
func TestBundleFileFailedRound(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	commitEntries(t, s, 0, smallEntries(0, BundleSize+10))
	const start, n = BundleSize + 10, 2 * BundleSize
	bad := &Round{Start: start, State: State{Size: start + n, Checkpoint: []byte("cp")}}
	for range n {
		bad.Entries = append(bad.Entries, bytes.Repeat([]byte{'z'}, 40)) // not smallEntry: read back, they would show
		bad.LeafHashes = append(bad.LeafHashes, make([]byte, 32))
	}
	bad.LeafHashes[n-1] = bad.LeafHashes[n-1][:31]
	if err := s.Commit(bad); err == nil || errors.Is(err, ErrFatal) {
		t.Fatalf("Commit with a malformed leaf hash: %v, want a non-fatal error", err)
	}
	fi, err := os.Stat(s.files.name(0))
	if err != nil || fi.Size() <= int64(len(bundleOf(0))+len(bundleOf(1))) {
		t.Fatalf("the failed round wrote no bundle to the file (%v, %v): the test tests nothing", fi, err)
	}
	if st, err := s.ReadState(); err != nil || st.Size != start {
		t.Fatalf("state after the failed round: %+v, %v", st, err)
	}
	commitEntries(t, s, start, smallEntries(start, n))
	checkEntries(t, s, start+n)
	if l := location(t, s, 1); l.off != int64(len(bundleOf(0))) {
		t.Errorf("bundle 1 at %d, want %d", l.off, len(bundleOf(0)))
	}
}

// TestBundleFileConcurrentReads reads committed full bundles while rounds
// complete more, across into a second file (run with -race): every read
// returns the bundle, whether or not a round is writing or syncing the
// file at the time. (That reads do not wait for a round's fsync, the
// reason for the readers' own lock, is a latency, not tested here.)
func TestBundleFileConcurrentReads(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var full atomic.Uint64
	done := make(chan struct{})
	errs := make(chan error, 4)
	var wg sync.WaitGroup
	for r := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			for i := uint64(r); ; i++ {
				select {
				case <-done:
					errs <- nil
					return
				default:
				}
				n := full.Load()
				if n == 0 {
					runtime.Gosched()
					continue
				}
				k := i * 7919 % n
				got, err := s.AppendBundle(buf[:0], k, BundleSize)
				if err != nil || !bytes.Equal(got, bundleOf(k)) {
					errs <- fmt.Errorf("AppendBundle(%d) while committing: %d bytes, %v", k, len(got), err)
					return
				}
				buf = got
			}
		}()
	}
	stop := sync.OnceFunc(func() { close(done); wg.Wait() })
	defer stop() // before the store's Close, should a commit fail the test
	var size uint64
	for size < (segmentBundles+8)*BundleSize { // into the second file
		n := uint64(8*BundleSize + 77)
		commitEntries(t, s, size, smallEntries(size, n))
		size += n
		full.Store(size / BundleSize)
	}
	stop()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// TestOpenBundleOtherFS: a store on another filesystem than the OS's has
// no *os.File to give: its bundles are ErrNotInFile, read with
// AppendBundle.
func TestOpenBundleOtherFS(t *testing.T) {
	s, err := Open("db", Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	commitEntries(t, s, 0, smallEntries(0, BundleSize))
	if _, _, err := s.OpenBundle(0); !errors.Is(err, ErrNotInFile) {
		t.Errorf("OpenBundle on a memory filesystem: %v, want ErrNotInFile", err)
	}
	checkEntries(t, s, BundleSize)
}

// TestOpenBundleChecked: a bundle is sent from its file only once a read
// in this process has checked it (ErrNotInFile before, to be read
// instead); a damaged one fails the read and stays unsendable.
func TestOpenBundleChecked(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	commitEntries(t, s, 0, smallEntries(0, 2*BundleSize))
	for k := range uint64(2) {
		if _, _, err := s.OpenBundle(k); !errors.Is(err, ErrNotInFile) {
			t.Fatalf("OpenBundle(%d) before any read: %v, want ErrNotInFile", k, err)
		}
	}
	name := s.files.name(0)
	b, _ := os.ReadFile(name)
	b[len(bundleOf(0))+7] ^= 1
	if err := os.WriteFile(name, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendBundle(nil, 1, BundleSize); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("AppendBundle of the damaged bundle: %v, want ErrCorrupt", err)
	}
	if _, _, err := s.OpenBundle(1); !errors.Is(err, ErrNotInFile) {
		t.Errorf("OpenBundle of the damaged bundle after its failed read: %v, want ErrNotInFile", err)
	}
	if _, err := s.AppendBundle(nil, 0, BundleSize); err != nil {
		t.Fatal(err)
	}
	f, n, err := s.OpenBundle(0)
	if err != nil {
		t.Fatalf("OpenBundle after a read: %v", err)
	}
	defer f.Close()
	if got, err := io.ReadAll(io.LimitReader(f, n)); err != nil || !bytes.Equal(got, bundleOf(0)) {
		t.Errorf("OpenBundle(0): %d bytes, %v", len(got), err)
	}
}

// TestBundleFileMissingLast: a store whose last full bundle has no
// location is refused at Open as corrupt.
func TestBundleFileMissingLast(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	commitEntries(t, s, 0, smallEntries(0, 2*BundleSize+3))
	if err := s.db.Delete(bundleEntriesKey(1), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err := Open(dir, Options{}); !errors.Is(err, ErrCorrupt) {
		if err == nil {
			s.Close()
		}
		t.Errorf("Open with the last bundle's location gone: %v, want ErrCorrupt", err)
	}
}
