// Package merkle holds the tile arithmetic of a C2SP tlog-tiles log and the
// building of RFC 6962 inclusion and consistency proofs from stored tiles.
//
// A tile at level L and index N holds up to 256 consecutive hashes of tree
// level 8*L (tlog-tiles, "Merkle Tree"): hash i is
// MTH(D[(N*256+i)*256**L : (N*256+i+1)*256**L]). Tree levels between tile
// levels are recomputed by hashing a tile's hashes, as in tlog-tiles and
// golang.org/x/mod/sumdb/tlog.
//
// Everything here is pure: no I/O, no logging. Proof functions read tiles
// through a TileReader the caller supplies. Malformed input returns an
// error; broken internal arithmetic panics. Hashing and proof shapes come
// from github.com/transparency-dev/merkle.
package merkle

import (
	"errors"
	"fmt"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

const (
	// TileHeight is the height of a tile: tile level L holds tree level 8*L.
	TileHeight = 8
	// TileWidth is the number of hashes in a full tile.
	TileWidth = 1 << TileHeight
	// HashSize is the size of one SHA-256 hash.
	HashSize = 32
)

// ErrMissingTile is returned (wrapped) when a TileReader cannot supply the
// hashes a proof needs.
var ErrMissingTile = errors.New("tile missing or too short")

var hasher = rfc6962.DefaultHasher

// LeafHash returns the RFC 6962 leaf hash SHA-256(0x00 || entry).
func LeafHash(entry []byte) []byte { return hasher.HashLeaf(entry) }

// TileID names a tile by level and index.
type TileID struct {
	Level, Index uint64
}

// Width returns the number of hashes the tile has in a tree of the given
// size: 256 for a full tile, 1..255 for the partial tile at the right edge,
// 0 for a tile that does not exist yet (tlog-tiles, "Partial Tiles").
func (t TileID) Width(size uint64) uint64 {
	if t.Level >= 8 { // 256**8 > 2**63 leaves: no such tile can hold a hash.
		return 0
	}
	n := size >> (TileHeight * t.Level) // hashes at tree level 8*L
	switch start := t.Index * TileWidth; {
	case t.Index > (1<<64-1)/TileWidth || n <= start:
		return 0
	case n-start >= TileWidth:
		return TileWidth
	default:
		return n - start
	}
}

// TileReader returns the stored hashes of a tile: at least as many as the
// caller's tree size covers, 32 bytes each. It may return more (a tile only
// grows) but never different ones.
type TileReader func(level, index uint64) ([]byte, error)

// NodeHash returns the hash of tree node (level, index), computed from the
// tile that holds its subtree: the node's 2**(level%8) descendants at tile
// level level/8 are hashed up to it.
func NodeHash(id compact.NodeID, read TileReader) ([]byte, error) {
	tileLevel, k := uint64(id.Level/TileHeight), id.Level%TileHeight
	first := id.Index << k // first descendant at tree level 8*tileLevel
	tile := TileID{Level: tileLevel, Index: first / TileWidth}
	data, err := read(tile.Level, tile.Index)
	if err != nil {
		return nil, fmt.Errorf("reading tile %d/%d for node %d/%d: %w", tile.Level, tile.Index, id.Level, id.Index, err)
	}
	lo, n := first%TileWidth, uint64(1)<<k
	if uint64(len(data)) < (lo+n)*HashSize {
		return nil, fmt.Errorf("tile %d/%d has %d bytes, node %d/%d needs %d: %w",
			tile.Level, tile.Index, len(data), id.Level, id.Index, (lo+n)*HashSize, ErrMissingTile)
	}
	return subtreeHash(data[lo*HashSize : (lo+n)*HashSize]), nil
}

// subtreeHash returns the RFC 6962 hash of a perfect subtree given its
// leaves' hashes (a power-of-two count of them, concatenated).
func subtreeHash(hashes []byte) []byte {
	level := make([][]byte, len(hashes)/HashSize)
	for i := range level {
		level[i] = hashes[i*HashSize : (i+1)*HashSize]
	}
	for len(level) > 1 {
		if len(level)%2 != 0 {
			panic(fmt.Sprintf("merkle: subtree of %d hashes is not perfect", len(level)))
		}
		next := level[:len(level)/2]
		for i := range next {
			next[i] = hasher.HashChildren(level[2*i], level[2*i+1])
		}
		level = next
	}
	return level[0]
}

// InclusionProof returns the RFC 6962 (§2.1.1) inclusion proof of leaf index
// in the tree of the given size, built from the tiles of a tree at least
// that large.
func InclusionProof(index, size uint64, read TileReader) ([][]byte, error) {
	if index >= size {
		return nil, fmt.Errorf("leaf index %d not in tree of size %d", index, size)
	}
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, fmt.Errorf("inclusion proof plan: %w", err)
	}
	return fetchProof(nodes, read)
}

// ConsistencyProof returns the RFC 6962 (§2.1.2) consistency proof between
// trees of sizes from and to, built from the tiles of a tree at least as
// large as to. The proof from size 0, or between equal sizes, is empty.
func ConsistencyProof(from, to uint64, read TileReader) ([][]byte, error) {
	if from > to {
		return nil, fmt.Errorf("tree size %d greater than %d", from, to)
	}
	nodes, err := proof.Consistency(from, to)
	if err != nil {
		return nil, fmt.Errorf("consistency proof plan: %w", err)
	}
	return fetchProof(nodes, read)
}

// fetchProof reads the hashes of nodes.IDs, reading each tile once, and
// folds the ephemeral node if the proof has one.
func fetchProof(nodes proof.Nodes, read TileReader) ([][]byte, error) {
	tiles := make(map[TileID][]byte, 4)
	cached := func(level, index uint64) ([]byte, error) {
		id := TileID{Level: level, Index: index}
		if t, ok := tiles[id]; ok {
			return t, nil
		}
		t, err := read(level, index)
		if err == nil {
			tiles[id] = t
		}
		return t, err
	}
	hashes := make([][]byte, len(nodes.IDs))
	for i, id := range nodes.IDs {
		h, err := NodeHash(id, cached)
		if err != nil {
			return nil, err
		}
		hashes[i] = h
	}
	return nodes.Rehash(hashes, hasher.HashChildren)
}
