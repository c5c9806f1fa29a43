package storage

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

// chunkModel is what a store of chunks must read back: the entries
// committed so far.
type chunkModel struct{ entries [][]byte }

func (m *chunkModel) bundle(index, width uint64) []byte {
	var b []byte
	for _, e := range m.entries[index*BundleSize : index*BundleSize+width] {
		b = binary.BigEndian.AppendUint16(b, uint16(len(e)))
		b = append(b, e...)
	}
	return b
}

// commitEntries commits entries as one round after the store's size:
// entries and their leaf hashes only (no tiles), enough for the entry
// layout.
func commitEntries(t *testing.T, s *Store, start uint64, entries [][]byte) {
	t.Helper()
	r := &Round{Start: start, Entries: entries, State: State{Size: start + uint64(len(entries)), Checkpoint: []byte("cp")}}
	for _, e := range entries {
		h := sha256.Sum256(append([]byte{0}, e...))
		r.LeafHashes = append(r.LeafHashes, h[:])
	}
	if err := s.Commit(r); err != nil {
		t.Fatalf("Commit [%d, %d): %v", start, r.State.Size, err)
	}
}

// chunkKeys counts the chunk keys of bundle index: none once it is full.
func chunkKeys(t *testing.T, s *Store, index uint64) int {
	t.Helper()
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: chunkKey(index * BundleSize), UpperBound: chunkKey((index + 1) * BundleSize)})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		n++
	}
	return n
}

// TestChunksAgreeWithEntries commits rounds of random sizes (single
// entries, rounds within a bundle, rounds across several) of entries of
// random lengths (empty to MaxEntrySize), reopening the store at random
// points (so the next round reloads the rightmost bundle), and checks
// after every round that Entries and AppendBundle read back exactly what
// was committed, over random ranges, and that every full bundle is one
// value with no chunk left.
func TestChunksAgreeWithEntries(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()
	var m chunkModel
	for round := 0; len(m.entries) < 3000; round++ {
		var n int
		switch rng.IntN(4) {
		case 0:
			n = 1
		case 1:
			n = 1 + rng.IntN(40)
		case 2:
			n = 1 + rng.IntN(300)
		default:
			n = 256 - len(m.entries)%256 + rng.IntN(2)*256 // to a bundle's end, or one past
		}
		var entries [][]byte
		for range n {
			var e []byte
			switch rng.IntN(20) {
			case 0:
				e = []byte{}
			case 1:
				e = make([]byte, MaxEntrySize)
			default:
				e = make([]byte, rng.IntN(1500))
			}
			for i := range e {
				e[i] = byte(rng.Uint32())
			}
			entries = append(entries, e)
		}
		commitEntries(t, s, uint64(len(m.entries)), entries)
		m.entries = append(m.entries, entries...)
		if rng.IntN(5) == 0 {
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if s, err = Open(dir, Options{}); err != nil {
				t.Fatal(err)
			}
		}
		size := uint64(len(m.entries))
		for range 4 {
			start := rng.Uint64N(size)
			count := 1 + rng.Uint64N(min(size-start, 700))
			i := start
			err := s.Entries(start, count, func(j uint64, e []byte) error {
				if j != i || !bytes.Equal(e, m.entries[j]) {
					return fmt.Errorf("entry %d (want %d): %d bytes, want %d", j, i, len(e), len(m.entries[i]))
				}
				i++
				return nil
			})
			if err != nil || i != start+count {
				t.Fatalf("round %d: Entries(%d, %d): %v, ended at %d", round, start, count, err, i)
			}
			bundle := rng.Uint64N((size + BundleSize - 1) / BundleSize)
			width := min(BundleSize, size-bundle*BundleSize)
			if rng.IntN(2) == 0 {
				width = 1 + rng.Uint64N(width)
			}
			got, err := s.AppendBundle([]byte("prefix"), bundle, width)
			if err != nil || !bytes.Equal(got, append([]byte("prefix"), m.bundle(bundle, width)...)) {
				t.Fatalf("round %d: AppendBundle(%d, %d): %d bytes, %v; want %d bytes", round, bundle, width, len(got), err, 6+len(m.bundle(bundle, width)))
			}
		}
		for b := range size / BundleSize {
			if n := chunkKeys(t, s, b); n != 0 {
				t.Fatalf("round %d: full bundle %d has %d chunks left", round, b, n)
			}
			if _, err := s.get(bundleEntriesKey(b)); err != nil {
				t.Fatalf("round %d: full bundle %d: %v", round, b, err)
			}
		}
	}
	size := uint64(len(m.entries))
	if err := s.Entries(size-1, 2, func(uint64, []byte) error { return nil }); err == nil {
		t.Errorf("Entries past the size: no error")
	}
	if _, err := s.AppendBundle(nil, size/BundleSize, BundleSize); err == nil && size%BundleSize != 0 {
		t.Errorf("AppendBundle of the partial bundle at full width: no error")
	}
}

// TestCommitRefusesOversizedEntry: an entry a bundle record cannot hold is
// refused with nothing written.
func TestCommitRefusesOversizedEntry(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r := &Round{Entries: [][]byte{make([]byte, MaxEntrySize+1)}, LeafHashes: [][]byte{make([]byte, 32)}, State: State{Size: 1, Checkpoint: []byte("cp")}}
	if err := s.Commit(r); err == nil {
		t.Fatal("Commit of an entry of MaxEntrySize+1 bytes: no error")
	}
	if st, err := s.ReadState(); err != nil || st.Size != 0 {
		t.Fatalf("after the refused round: size %d, %v", st.Size, err)
	}
}

// TestMigrationResumes opens a store whose migration from schema 1
// stopped part way (its first bundles as chunks, the rest still one key
// per entry, as a killed migration leaves it): Open finishes it, every
// entry reads back, no schema-1 key remains, and the next round extends
// the partial bundle.
func TestMigrationResumes(t *testing.T) {
	dir := t.TempDir()
	const size = 3*migrateBatchBundles*BundleSize + 77
	entry := func(i uint64) []byte { return fmt.Appendf(nil, "entry %d %x", i, sha256.Sum256(fmt.Append(nil, i))) }
	db, err := pebble.Open(dir, &pebble.Options{FormatMajorVersion: pebble.FormatNewest})
	if err != nil {
		t.Fatal(err)
	}
	b := db.NewBatch()
	// A migration from schema 1 runs under version 3 (see checkVersion).
	b.Set(keyVersion, binary.BigEndian.AppendUint32(nil, 3), nil)
	b.Set(keyState, encodeState(State{Size: size}), nil)
	b.Set(keyCheckpoint, []byte("cp"), nil)
	const migrated = migrateBatchBundles * BundleSize
	for k := uint64(0); k < migrated/BundleSize; k++ {
		var chunk []byte
		for i := k * BundleSize; i < (k+1)*BundleSize; i++ {
			chunk = AppendRecord(chunk, entry(i))
		}
		b.Set(bundleEntriesKey(k), chunk, nil)
	}
	for i := uint64(migrated); i < size; i++ {
		b.Set(v1EntryKey(i), entry(i), nil)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.firstKey([]byte{'e'}, []byte{'f'}); err == nil {
		t.Error("schema-1 keys remain after Open")
	}
	want := uint64(0)
	if err := s.Entries(0, size, func(i uint64, e []byte) error {
		if !bytes.Equal(e, entry(i)) {
			return fmt.Errorf("entry %d = %q", i, e)
		}
		want++
		return nil
	}); err != nil || want != size {
		t.Fatalf("Entries after migration: %v (read %d of %d)", err, want, size)
	}
	commitEntries(t, s, size, [][]byte{[]byte("after")})
	if got, err := s.AppendBundle(nil, size/BundleSize, size%BundleSize+1); err != nil || !bytes.HasSuffix(got, []byte("\x00\x05after")) {
		t.Fatalf("the partial bundle after a round: %q, %v", got, err)
	}
}
