// Package storagetest is the storage test suite that every implementation
// of log.Storage passes: Pebble's (package storage) and PostgreSQL's
// (package storage/postgres) run it with Run, each with an opener of its
// own. What only one backend has (Pebble's WAL, disk use, crash clones and
// leaf filter; PostgreSQL's lease and fencing) is tested beside that
// backend.
//
// The suite covers a round trip of every table, a malformed round writing
// nothing, durability across a reopen, the origin, tiles with inner
// levels, the search index, the published checkpoint, bundles (also
// written while rounds commit), exact dedup lookups across a reopen, and
// the fault table (Faults): a real log.Log over the store, each storage
// fault of the backend injected into one append, failing without
// persisting or failing though it persisted, then the store reopened and
// the whole tree re-verified with sumdb/tlog.
package storagetest

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	plog "github.com/provlog/provlog/log"
	"github.com/provlog/provlog/storage"
)

// Store is a store under test: what the log needs, the origin, and Close.
type Store interface {
	plog.Storage
	Origin() (string, error)
	SetOrigin(origin string) error
	Close() error
}

// Opener opens the store of one test's data, ready for the log to write
// (for PostgreSQL: holding the lease). Called again after Close, it
// reopens the same data.
type Opener func(t *testing.T) Store

// Backend is one implementation under test.
type Backend struct {
	// New makes fresh, empty data for one test and returns its opener.
	New func(t *testing.T) Opener
	// Faults is the backend's fault table (see Fault); may be empty.
	Faults []Fault
}

// Run runs the suite against b.
func Run(t *testing.T, b Backend) {
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, Opener)
	}{
		{"RoundTrip", testRoundTrip},
		{"MalformedRoundWritesNothing", testMalformedRound},
		{"DurableAcrossReopen", testDurable},
		{"Origin", testOrigin},
		{"TileInnerLevels", testTileInnerLevels},
		{"SearchIndex", testSearchIndex},
		{"Published", testPublished},
		{"Bundles", testBundles},
		{"PutBundleDuringCommits", testPutBundleDuringCommits},
		{"LookupExactAcrossReopen", testLookup},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, b.New(t)) })
	}
	t.Run("Faults", func(t *testing.T) { runFaults(t, b) })
}

func closeStore(t *testing.T, s Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func hash(b []byte) []byte { h := sha256.Sum256(b); return h[:] }

// Entry is entry i of the suite's rounds.
func Entry(i uint64) []byte { return fmt.Appendf(nil, "entry %d", i) }

// Round builds a round of n entries (Entry) after start; its state and
// tiles are arbitrary but recognisable.
func Round(start uint64, n int) *storage.Round {
	r := &storage.Round{Start: start}
	for i := range n {
		e := Entry(start + uint64(i))
		r.Entries, r.LeafHashes = append(r.Entries, e), append(r.LeafHashes, hash(e))
	}
	size := start + uint64(n)
	r.Tiles = []storage.Tile{{Level: 0, Index: size / 256, Hashes: bytes.Repeat([]byte{byte(size)}, 64)}}
	r.State = storage.State{Size: size, Range: [][]byte{hash([]byte{1}), hash([]byte{2})}, Checkpoint: fmt.Appendf(nil, "checkpoint %d", size)}
	return r
}

func testRoundTrip(t *testing.T, o Opener) {
	s := o(t)
	defer closeStore(t, s)
	if st, err := s.ReadState(); err != nil || st.Size != 0 || st.Checkpoint != nil || st.Published != nil {
		t.Fatalf("new store state = %+v, %v", st, err)
	}
	r := Round(0, 300)
	if err := s.Commit(r); err != nil {
		t.Fatal(err)
	}
	st, err := s.ReadState()
	if err != nil || st.Size != 300 || !bytes.Equal(st.Checkpoint, r.State.Checkpoint) || len(st.Range) != 2 || !bytes.Equal(st.Range[1], r.State.Range[1]) {
		t.Fatalf("ReadState = %+v, %v", st, err)
	}
	idx, found := make([]uint64, 3), make([]bool, 3)
	if err := s.LookupLeaves([][]byte{r.LeafHashes[7], hash([]byte("absent")), r.LeafHashes[299]}, idx, found); err != nil {
		t.Fatal(err)
	}
	if !found[0] || idx[0] != 7 || found[1] || !found[2] || idx[2] != 299 {
		t.Errorf("LookupLeaves = %v %v", idx, found)
	}
	var got [][]byte
	if err := s.Entries(5, 10, func(i uint64, e []byte) error { got = append(got, bytes.Clone(e)); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 10 || !bytes.Equal(got[0], r.Entries[5]) || !bytes.Equal(got[9], r.Entries[14]) {
		t.Errorf("Entries(5, 10) = %q", got)
	}
	if err := s.Entries(295, 10, func(uint64, []byte) error { return nil }); !errors.Is(err, storage.ErrCorrupt) {
		t.Errorf("Entries past the end: %v, want ErrCorrupt", err)
	}
	stop := errors.New("stop")
	if err := s.Entries(0, 10, func(uint64, []byte) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("Entries callback error: %v", err)
	}
	if tile, err := s.Tile(0, 1); err != nil || !bytes.Equal(tile, r.Tiles[0].Hashes) {
		t.Errorf("Tile(0, 1) = %x, %v", tile, err)
	}
	for _, at := range [][2]uint64{{0, 2}, {1, 0}, {256, 0}} {
		if _, err := s.Tile(at[0], at[1]); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("absent tile %d/%d: %v, want ErrNotFound", at[0], at[1], err)
		}
	}
	// A rewritten tile reads back as its latest version.
	r2 := Round(300, 5)
	r2.Tiles[0].Hashes = bytes.Repeat([]byte{0xaa}, 96)
	if err := s.Commit(r2); err != nil {
		t.Fatal(err)
	}
	if tile, err := s.Tile(0, 1); err != nil || !bytes.Equal(tile, r2.Tiles[0].Hashes) {
		t.Errorf("rewritten Tile(0, 1) = %x, %v", tile, err)
	}
}

func testMalformedRound(t *testing.T, o Opener) {
	s := o(t)
	defer closeStore(t, s)
	r := Round(0, 3)
	r.LeafHashes = r.LeafHashes[:2]
	if err := s.Commit(r); err == nil {
		t.Fatal("Commit of a malformed round succeeded")
	}
	bad := Round(0, 3)
	bad.Index = []storage.IndexKey{{Kind: 'd', Value: "v", Index: 3}}
	if err := s.Commit(bad); err == nil {
		t.Fatal("Commit of a round with an index key outside it succeeded")
	}
	if st, _ := s.ReadState(); st.Size != 0 {
		t.Errorf("state size %d after a refused round", st.Size)
	}
	if err := s.Entries(0, 1, func(uint64, []byte) error { return nil }); !errors.Is(err, storage.ErrCorrupt) {
		t.Errorf("entry 0 present after a refused round (%v)", err)
	}
}

// testDurable reopens the store after each of 20 rounds: every committed
// round is there, whole.
func testDurable(t *testing.T, o Opener) {
	rng := rand.New(rand.NewPCG(1, 2))
	size := uint64(0)
	for i := range 20 {
		s := o(t)
		n := 1 + rng.IntN(200)
		r := Round(size, n)
		if err := s.Commit(r); err != nil {
			t.Fatal(err)
		}
		size += uint64(n)
		closeStore(t, s)
		s = o(t)
		st, err := s.ReadState()
		if err != nil || st.Size != size || !bytes.Equal(st.Checkpoint, r.State.Checkpoint) {
			t.Fatalf("round %d: state after reopen %d, %v; want %d", i, st.Size, err, size)
		}
		want := uint64(0)
		if err := s.Entries(0, size, func(i uint64, e []byte) error {
			if i != want || !bytes.Equal(e, Entry(i)) {
				return fmt.Errorf("entry %d is %q", i, e)
			}
			want++
			return nil
		}); err != nil {
			t.Fatalf("entries after reopen: %v", err)
		}
		// Every bundle, at its width, and at a random one, in the bundle
		// encoding (tlog-tiles: uint16be length || entry).
		for b := uint64(0); b*storage.BundleSize < size; b++ {
			for _, w := range []uint64{min(storage.BundleSize, size-b*storage.BundleSize), 1 + rng.Uint64N(min(storage.BundleSize, size-b*storage.BundleSize))} {
				var want []byte
				for i := b * storage.BundleSize; i < b*storage.BundleSize+w; i++ {
					want = binary.BigEndian.AppendUint16(want, uint16(len(Entry(i))))
					want = append(want, Entry(i)...)
				}
				if got, err := s.AppendBundle([]byte{7}, b, w); err != nil || !bytes.Equal(got, append([]byte{7}, want...)) {
					t.Fatalf("round %d: AppendBundle(%d, %d) = %d bytes, %v; want %d bytes", i, b, w, len(got), err, 1+len(want))
				}
			}
		}
		closeStore(t, s)
	}
}

func testOrigin(t *testing.T, o Opener) {
	s := o(t)
	if got, err := s.Origin(); got != "" || err != nil {
		t.Fatalf("new store origin %q, %v", got, err)
	}
	if err := s.SetOrigin("example.com/log"); err != nil {
		t.Fatal(err)
	}
	closeStore(t, s)
	s = o(t)
	defer closeStore(t, s)
	if got, err := s.Origin(); got != "example.com/log" || err != nil {
		t.Errorf("origin after reopen %q, %v", got, err)
	}
}

func testTileInnerLevels(t *testing.T, o Opener) {
	s := o(t)
	defer closeStore(t, s)
	full := bytes.Repeat([]byte{7}, 256*32)
	inner := bytes.Repeat([]byte{9}, 254*32)
	r := Round(0, 3)
	r.Tiles = []storage.Tile{
		{Level: 0, Index: 0, Hashes: full, Inner: inner},
		{Level: 1, Index: 0, Hashes: full}, // full, stored without them
		{Level: 2, Index: 0, Hashes: full[:64]},
	}
	if err := s.Commit(r); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		level     uint64
		hashes    []byte
		wantInner []byte
	}{{0, full, inner}, {1, full, nil}, {2, full[:64], nil}} {
		h, err := s.Tile(tc.level, 0)
		if err != nil || !bytes.Equal(h, tc.hashes) {
			t.Errorf("Tile(%d, 0) = %d bytes, %v; want %d bytes", tc.level, len(h), err, len(tc.hashes))
		}
		var in []byte
		err = s.VisitTile(tc.level, 0, func(hashes, inner []byte) error {
			h, in = bytes.Clone(hashes), bytes.Clone(inner)
			return nil
		})
		if err != nil || !bytes.Equal(h, tc.hashes) || !bytes.Equal(in, tc.wantInner) || (in == nil) != (tc.wantInner == nil) {
			t.Errorf("VisitTile(%d, 0) = %d, %d bytes, %v; want %d, %d", tc.level, len(h), len(in), err, len(tc.hashes), len(tc.wantInner))
		}
	}
	// Inner levels only with a full tile, of the right size; a refused
	// round writes nothing.
	for _, bad := range []storage.Tile{
		{Level: 0, Index: 1, Hashes: full[:64], Inner: inner},
		{Level: 0, Index: 1, Hashes: full, Inner: inner[:64]},
	} {
		r := Round(3, 2)
		r.Tiles = []storage.Tile{bad}
		if err := s.Commit(r); err == nil {
			t.Errorf("Commit of tile of %d bytes with inner levels of %d bytes succeeded", len(bad.Hashes), len(bad.Inner))
		}
		if st, _ := s.ReadState(); st.Size != 3 {
			t.Fatalf("state size %d after a refused round", st.Size)
		}
	}
}

// testSearchIndex writes index keys under a few (kind, value) pairs,
// including the longest value and values that share prefixes, and pages
// through them.
func testSearchIndex(t *testing.T, o Opener) {
	s := o(t)
	defer closeStore(t, s)
	long := string(bytes.Repeat([]byte{'z'}, storage.MaxIndexValue))
	var size uint64
	for range 3 {
		r := Round(size, 50)
		for i := range uint64(50) {
			idx := size + i
			r.Index = append(r.Index, storage.IndexKey{Kind: 'd', Value: "sha256:aa", Index: idx, Tag: byte('a' + idx%3)})
			if idx%7 == 0 {
				r.Index = append(r.Index,
					storage.IndexKey{Kind: 'd', Value: "sha256:a", Index: idx, Tag: 'x'},
					storage.IndexKey{Kind: 'k', Value: "sha256:aa", Index: idx, Tag: 'y'},
					storage.IndexKey{Kind: 'd', Value: long, Index: idx, Tag: 'z'},
					storage.IndexKey{Kind: 'd', Value: "\x00bin\xff", Index: idx, Tag: 0})
			}
		}
		if err := s.Commit(r); err != nil {
			t.Fatal(err)
		}
		size = r.State.Size
	}
	tooLong := Round(size, 1)
	tooLong.Index = []storage.IndexKey{{Kind: 'd', Value: long + "z", Index: size}}
	if err := s.Commit(tooLong); err == nil {
		t.Error("Commit of an index value over MaxIndexValue succeeded")
	}
	// Paging through (d, sha256:aa): 150 hits, 40 at a time.
	var all []storage.Hit
	for from := uint64(0); ; {
		hits, more, err := s.SearchIndex('d', "sha256:aa", from, 40)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, hits...)
		if !more {
			break
		}
		if len(hits) != 40 {
			t.Fatalf("a page of %d hits with more following, want 40", len(hits))
		}
		from = hits[len(hits)-1].Index + 1
	}
	if len(all) != 150 {
		t.Fatalf("paged search found %d hits, want 150", len(all))
	}
	for i, h := range all {
		if h.Index != uint64(i) || h.Tag != byte('a'+i%3) {
			t.Fatalf("hit %d = %+v", i, h)
		}
	}
	sevens := func(from uint64) (n int) {
		for i := from; i < size; i++ {
			if i%7 == 0 {
				n++
			}
		}
		return n
	}
	for _, q := range []struct {
		kind  byte
		value string
		from  uint64
		tag   byte
		want  int
	}{
		{'d', "sha256:a", 0, 'x', sevens(0)},
		{'k', "sha256:aa", 0, 'y', sevens(0)},
		{'d', long, 10, 'z', sevens(10)},
		{'d', "\x00bin\xff", 0, 0, sevens(0)},
		{'d', "sha256:", 0, 0, 0},
		{'d', "sha256:aaa", 0, 0, 0},
		{'x', "sha256:aa", 0, 0, 0},
		{'d', long + "z", 0, 0, 0},
	} {
		hits, more, err := s.SearchIndex(q.kind, q.value, q.from, 1000)
		if err != nil || more || len(hits) != q.want {
			t.Errorf("SearchIndex(%c, %.12q, %d) = %d hits, more %t, %v; want %d", q.kind, q.value, q.from, len(hits), more, err, q.want)
		}
		for _, h := range hits {
			if h.Tag != q.tag || h.Index%7 != 0 || h.Index < q.from {
				t.Errorf("SearchIndex(%c, %.12q, %d): hit %+v", q.kind, q.value, q.from, h)
			}
		}
	}
	if hits, more, err := s.SearchIndex('d', "sha256:aa", 149, 1); err != nil || more || len(hits) != 1 || hits[0].Index != 149 {
		t.Errorf("the last hit: %v, more %t, %v", hits, more, err)
	}
	if hits, more, err := s.SearchIndex('d', "sha256:aa", 148, 1); err != nil || !more || len(hits) != 1 || hits[0].Index != 148 {
		t.Errorf("the last hit but one: %v, more %t, %v", hits, more, err)
	}
	for _, q := range []struct {
		kind     byte
		value    string
		index    uint64
		tag      byte
		expected bool
	}{
		{'d', "sha256:aa", 4, 'b', true},
		{'d', "sha256:aa", 4, 'a', false}, // another tag
		{'d', "sha256:a", 14, 'x', true},
		{'d', "sha256:a", 15, 'x', false},
		{'d', long, 21, 'z', true},
		{'d', "sha256:aa", size, 'a' + byte(size%3), false},
		{'k', "sha256:a", 14, 'x', false},
	} {
		if ok, err := s.HasIndex(q.kind, q.value, q.index, q.tag); err != nil || ok != q.expected {
			t.Errorf("HasIndex(%c, %.12q, %d, %c) = %t, %v; want %t", q.kind, q.value, q.index, q.tag, ok, err, q.expected)
		}
	}
}

func testPublished(t *testing.T, o Opener) {
	s := o(t)
	if err := s.Commit(Round(0, 10)); err != nil {
		t.Fatal(err)
	}
	if err := s.SetPublished([]byte("published 5")); err != nil {
		t.Fatal(err)
	}
	closeStore(t, s)
	s = o(t)
	defer closeStore(t, s)
	st, err := s.ReadState()
	if err != nil || string(st.Published) != "published 5" || st.Size != 10 || string(st.Checkpoint) != "checkpoint 10" {
		t.Fatalf("after reopen: published %q, size %d, checkpoint %q, %v", st.Published, st.Size, st.Checkpoint, err)
	}
	// Commit leaves it alone; nil removes it.
	if err := s.Commit(Round(10, 1)); err != nil {
		t.Fatal(err)
	}
	if st, err := s.ReadState(); err != nil || string(st.Published) != "published 5" {
		t.Fatalf("after a commit: published %q, %v", st.Published, err)
	}
	if err := s.SetPublished(nil); err != nil {
		t.Fatal(err)
	}
	if st, err := s.ReadState(); err != nil || st.Published != nil {
		t.Fatalf("after removing it: published %q, %v", st.Published, err)
	}
}

// BundleData returns n random bytes for bundle i: random, so that a
// store's compression does not shrink them.
func BundleData(i uint64, n int) []byte {
	b := make([]byte, n)
	rng := rand.NewChaCha8([32]byte{byte(i), byte(i >> 8), byte(i >> 16)})
	rng.Read(b)
	return b
}

func testBundles(t *testing.T, o Opener) {
	s := o(t)
	if _, err := s.Bundle(nil, 0); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Bundle of an empty store: %v, want ErrNotFound", err)
	}
	want := map[uint64][]byte{0: BundleData(0, 300<<10), 1: BundleData(1, 17), 1 << 40: BundleData(2, 64<<10)}
	for i, b := range want {
		if err := s.PutBundle(i, b); err != nil {
			t.Fatal(err)
		}
	}
	// A second PutBundle of the same bytes is harmless.
	if err := s.PutBundle(1, want[1]); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		for i, b := range want {
			if got, err := s.Bundle(nil, i); err != nil || !bytes.Equal(got, b) {
				t.Errorf("%s: Bundle(%d) = %d bytes, %v; want %d bytes", when, i, len(got), err, len(b))
			}
			// Appended to a buffer: after what it holds, in its spare
			// capacity when there is room.
			buf := append(make([]byte, 0, len(b)+8), "prefix"...)
			got, err := s.Bundle(buf, i)
			if err != nil || !bytes.Equal(got, append([]byte("prefix"), b...)) || &got[0] != &buf[:1][0] {
				t.Errorf("%s: Bundle(%d) appended to a buffer: %d bytes, %v", when, i, len(got), err)
			}
		}
		for _, i := range []uint64{2, 1<<40 - 1, 1<<40 + 1, 1<<64 - 1} {
			if _, err := s.Bundle(nil, i); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("%s: Bundle(%d) of an absent bundle: %v, want ErrNotFound", when, i, err)
			}
		}
	}
	check("written")
	// Bundles do not disturb the log's tables, and a commit makes them
	// durable if they were not yet.
	if err := s.Commit(Round(0, 300)); err != nil {
		t.Fatal(err)
	}
	if err := s.Entries(0, 300, func(uint64, []byte) error { return nil }); err != nil {
		t.Fatal(err)
	}
	closeStore(t, s)
	s = o(t)
	defer closeStore(t, s)
	check("after reopen")
}

// testPutBundleDuringCommits runs PutBundle from several goroutines while
// the sequencer commits (run it with -race).
func testPutBundleDuringCommits(t *testing.T, o Opener) {
	s := o(t)
	defer closeStore(t, s)
	const writers, perWriter, rounds = 4, 25, 50
	var wg sync.WaitGroup
	errs := make(chan error, writers+1)
	for w := range writers {
		wg.Go(func() {
			for j := range perWriter {
				i := uint64(w*perWriter + j)
				if err := s.PutBundle(i, BundleData(i, 32<<10)); err != nil {
					errs <- err
					return
				}
				if _, err := s.Bundle(nil, i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Go(func() {
		for i := range rounds {
			if err := s.Commit(Round(uint64(i*10), 10)); err != nil {
				errs <- err
				return
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i := range uint64(writers * perWriter) {
		if got, err := s.Bundle(nil, i); err != nil || !bytes.Equal(got, BundleData(i, 32<<10)) {
			t.Errorf("Bundle(%d) = %d bytes, %v", i, len(got), err)
		}
	}
	if st, err := s.ReadState(); err != nil || st.Size != rounds*10 {
		t.Errorf("state after the commits: %d, %v", st.Size, err)
	}
}

// testLookup checks that dedup lookups find every committed leaf and no
// other, after a reopen and while new rounds commit concurrently.
func testLookup(t *testing.T, o Opener) {
	s := o(t)
	var size uint64
	for range 10 {
		r := Round(size, 500)
		if err := s.Commit(r); err != nil {
			t.Fatal(err)
		}
		size = r.State.Size
	}
	closeStore(t, s)
	s = o(t)
	defer closeStore(t, s)
	check := func(upTo uint64) {
		t.Helper()
		var hashes [][]byte
		for i := range upTo {
			hashes = append(hashes, hash(Entry(i)))
		}
		hashes = append(hashes, hash([]byte("absent")), hash(Entry(upTo+100000)))
		slices.Reverse(hashes) // any order
		idx, found := make([]uint64, len(hashes)), make([]bool, len(hashes))
		if err := s.LookupLeaves(hashes, idx, found); err != nil {
			t.Fatal(err)
		}
		for j := range hashes {
			i := len(hashes) - 1 - j
			switch {
			case uint64(i) < upTo && (!found[j] || idx[j] != uint64(i)):
				t.Fatalf("leaf %d: found %v at %d", i, found[j], idx[j])
			case uint64(i) >= upTo && found[j]:
				t.Fatalf("absent leaf found at %d", idx[j])
			}
		}
	}
	var wg sync.WaitGroup
	committed := size
	wg.Go(func() {
		for range 10 {
			r := Round(committed, 300)
			if err := s.Commit(r); err != nil {
				t.Error(err)
				return
			}
			committed = r.State.Size
		}
	})
	check(size)
	wg.Wait()
	check(committed)
}
