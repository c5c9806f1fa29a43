package storage

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
)

// leafFilter is an in-memory Bloom filter over every leaf hash in the store,
// consulted before the leaf-hash index so that the dedup lookup of a new
// entry, almost always a miss, costs no Pebble read. It never answers "no"
// for a hash that was inserted: LookupLeaves stays exact, the filter only
// saves work.
//
// It is a chain of blocked Bloom filters that doubles in capacity as the log
// grows (a scalable Bloom filter), so no size needs to be known in advance.
// Each key sets leafFilterK bits in one 512-bit block of the newest filter.
// The leaf hashes are SHA-256 outputs, so their bytes serve as the filter's
// hash functions. Lookups are lock-free; inserts are serialized by mu.
type leafFilter struct {
	mu    sync.Mutex
	chain atomic.Pointer[[]*bloomBlocks]
	// count is the number of keys inserted into the newest filter.
	count uint64
}

const (
	leafFilterBitsPerKey = 12
	leafFilterK          = 8
)

// minLeafFilterKeys is the capacity of a new log's first filter (1.5 MiB);
// tests lower it.
var minLeafFilterKeys uint64 = 1 << 20

// bloomBlocks is one blocked Bloom filter: blocks of 8 64-bit words.
type bloomBlocks struct {
	words    []atomic.Uint64
	nblocks  uint64
	capacity uint64
}

func newBloomBlocks(capacity uint64) *bloomBlocks {
	nblocks := (capacity*leafFilterBitsPerKey + 511) / 512
	return &bloomBlocks{words: make([]atomic.Uint64, nblocks*8), nblocks: nblocks, capacity: capacity}
}

// positions yields the block and the leafFilterK bit positions (0–511) of
// hash within it: the block from bytes 0–7, seven positions from the 63 low
// bits of bytes 8–15, the eighth from bytes 16–17. hash must be at least
// 18 bytes long.
func (b *bloomBlocks) positions(hash []byte, fn func(word, bit uint64) bool) bool {
	base := (binary.BigEndian.Uint64(hash[0:8]) % b.nblocks) * 8
	bits := binary.BigEndian.Uint64(hash[8:16])
	for i := range leafFilterK {
		pos := bits & 511
		bits >>= 9
		if i == leafFilterK-1 {
			pos = uint64(binary.BigEndian.Uint16(hash[16:18])) & 511
		}
		if !fn(base+pos/64, pos%64) {
			return false
		}
	}
	return true
}

func (b *bloomBlocks) add(hash []byte) {
	b.positions(hash, func(w, bit uint64) bool {
		b.words[w].Or(1 << bit)
		return true
	})
}

func (b *bloomBlocks) mayContain(hash []byte) bool {
	return b.positions(hash, func(w, bit uint64) bool {
		return b.words[w].Load()&(1<<bit) != 0
	})
}

// newLeafFilter returns an empty filter whose first block holds expected
// keys (at least minLeafFilterKeys).
func newLeafFilter(expected uint64) *leafFilter {
	f := &leafFilter{}
	chain := []*bloomBlocks{newBloomBlocks(max(expected, minLeafFilterKeys))}
	f.chain.Store(&chain)
	return f
}

// add inserts leaf hashes, starting a filter of twice the capacity when the
// newest one is full.
func (f *leafFilter) add(hashes [][]byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	chain := *f.chain.Load()
	newest := chain[len(chain)-1]
	for _, h := range hashes {
		if len(h) != hashSize {
			continue
		}
		if f.count >= newest.capacity {
			newest = newBloomBlocks(newest.capacity * 2)
			// A new slice each time: readers hold the published one.
			next := append(chain[:len(chain):len(chain)], newest)
			f.chain.Store(&next)
			chain = next
			f.count = 0
		}
		newest.add(h)
		f.count++
	}
}

// mayContain reports whether hash may have been inserted; false means it
// certainly was not.
func (f *leafFilter) mayContain(hash []byte) bool {
	if len(hash) != hashSize {
		return true
	}
	for _, b := range *f.chain.Load() {
		if b.mayContain(hash) {
			return true
		}
	}
	return false
}

// bytes is the filter's memory footprint.
func (f *leafFilter) bytes() uint64 {
	var n uint64
	for _, b := range *f.chain.Load() {
		n += uint64(len(b.words)) * 8
	}
	return n
}
