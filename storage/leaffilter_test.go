package storage

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

func indexHash(tag byte, i uint64) []byte {
	var b [9]byte
	b[0] = tag
	binary.BigEndian.PutUint64(b[1:], i)
	h := sha256.Sum256(b[:])
	return h[:]
}

func TestLeafFilterGrowsWithoutFalseNegatives(t *testing.T) {
	defer func(m uint64) { minLeafFilterKeys = m }(minLeafFilterKeys)
	minLeafFilterKeys = 1 << 16
	f := newLeafFilter(0)
	n := 3 * minLeafFilterKeys
	batch := make([][]byte, 0, 1000)
	for i := range n {
		batch = append(batch, indexHash('a', i))
		if len(batch) == cap(batch) {
			f.add(batch)
			batch = batch[:0]
		}
	}
	f.add(batch)
	if got := len(*f.chain.Load()); got != 2 {
		t.Errorf("chain of %d filters for %d keys from %d, want 2 (the first, then one of twice its size)", got, n, minLeafFilterKeys)
	}
	for i := range n {
		if !f.mayContain(indexHash('a', i)) {
			t.Fatalf("inserted hash %d reported absent", i)
		}
	}
	var fp int
	const probes = 100000
	for i := range uint64(probes) {
		if f.mayContain(indexHash('b', i)) {
			fp++
		}
	}
	// Two full filters at 12 bits per key, 8 bits per key in a 512-bit
	// block: about 0.5% each.
	if rate := float64(fp) / probes; rate > 0.02 {
		t.Errorf("false-positive rate %.4f over %d absent hashes, want < 2%%", rate, probes)
	}
	if !f.mayContain([]byte("short")) {
		t.Error("a hash of the wrong size must be looked up, not reported absent")
	}
}

// TestLookupExactAcrossReopen checks that dedup lookups through the filter
// find every committed leaf, before and after the background load that
// follows a reopen, while new rounds commit concurrently.
func TestLookupExactAcrossReopen(t *testing.T) {
	fs := vfs.NewMem()
	s := openMem(t, fs)
	var size uint64
	for range 20 {
		r := round(size, 500)
		if err := s.Commit(r); err != nil {
			t.Fatal(err)
		}
		size = r.State.Size
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openMem(t, fs)
	defer s.Close()
	check := func(upTo uint64) {
		t.Helper()
		var hashes [][]byte
		for i := range upTo {
			hashes = append(hashes, hash(fmt.Appendf(nil, "entry %d", i)))
		}
		hashes = append(hashes, hash([]byte("absent")))
		idx, found := make([]uint64, len(hashes)), make([]bool, len(hashes))
		if err := s.LookupLeaves(hashes, idx, found); err != nil {
			t.Fatal(err)
		}
		for i := range upTo {
			if !found[i] || idx[i] != i {
				t.Fatalf("leaf %d: found %v at %d (filter ready %v)", i, found[i], idx[i], s.filterReady.Load())
			}
		}
		if found[upTo] {
			t.Fatal("absent leaf found")
		}
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for range 10 {
			r := round(size, 300)
			if err := s.Commit(r); err != nil {
				t.Error(err)
				return
			}
			size = r.State.Size
		}
	})
	check(10000) // may run before, during or after the load
	wg.Wait()
	<-s.filterDone
	if !s.filterReady.Load() {
		t.Fatal("filter not ready after its load")
	}
	check(size)
}
