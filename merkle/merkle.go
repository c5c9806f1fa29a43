// Package merkle holds the tile arithmetic of a C2SP tlog-tiles log and the
// building of RFC 6962 inclusion and consistency proofs from stored tiles.
//
// A tile at level L and index N holds up to 256 consecutive hashes of tree
// level 8*L (tlog-tiles, "Merkle Tree"): hash i is
// MTH(D[(N*256+i)*256**L : (N*256+i+1)*256**L]). Tree levels between tile
// levels are recomputed by hashing a tile's hashes, as in tlog-tiles and
// golang.org/x/mod/sumdb/tlog.
//
// Everything here is pure: no I/O, no logging. Proof functions visit tiles
// through a TreeVisitor the caller supplies (TileSet reads the rightmost
// tiles through a TileReader). Malformed input returns an
// error; broken internal arithmetic panics. Hashing and proof shapes come
// from github.com/transparency-dev/merkle.
package merkle

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"sync"

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

// digests are SHA-256 states reused by LeafHash: rfc6962.Hasher makes a new
// one for each hash, most of the garbage a log's appends made.
var digests = sync.Pool{New: func() any { return sha256.New() }}

// LeafHash returns the RFC 6962 leaf hash SHA-256(0x00 || entry).
func LeafHash(entry []byte) []byte {
	d := digests.Get().(hash.Hash)
	d.Reset()
	d.Write([]byte{rfc6962.RFC6962LeafHashPrefix})
	d.Write(entry)
	h := d.Sum(make([]byte, 0, HashSize))
	digests.Put(d)
	return h
}

// HashChildren returns the RFC 6962 hash of an inner node,
// SHA-256(0x01 || l || r), as rfc6962.Hasher.HashChildren does but without
// a SHA-256 state on the heap: it is a compact.HashFn.
func HashChildren(l, r []byte) []byte {
	var b [1 + 2*HashSize]byte
	b[0] = rfc6962.RFC6962NodeHashPrefix
	if len(l) != HashSize || len(r) != HashSize { // not reached from a tree
		return hasher.HashChildren(l, r)
	}
	copy(b[1:], l)
	copy(b[1+HashSize:], r)
	h := sha256.Sum256(b[:])
	return h[:]
}

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

// TileTree is a tile with its inner levels: Levels[0] are the tile's
// hashes, Levels[k] the hashes of the perfect subtrees of 2**k of them
// (complete pairs only), concatenated, HashSize bytes each. A TileTree of a
// full tile never changes, so it can be cached.
type TileTree struct {
	Levels [TileHeight][]byte
}

// NewTileTree computes the inner levels of a tile (a whole number of
// hashes; a partial tile is fine).
func NewTileTree(hashes []byte) *TileTree {
	if len(hashes)%HashSize != 0 {
		panic(fmt.Sprintf("merkle: tile of %d bytes", len(hashes)))
	}
	t := &TileTree{}
	t.Levels[0] = hashes
	for k := 1; k < TileHeight; k++ {
		below := t.Levels[k-1]
		n := len(below) / HashSize / 2
		level := make([]byte, 0, n*HashSize)
		for i := range n {
			l, r := below[2*i*HashSize:(2*i+1)*HashSize], below[(2*i+1)*HashSize:(2*i+2)*HashSize]
			level = append(level, HashChildren(l, r)...)
		}
		t.Levels[k] = level
	}
	return t
}

// InnerSize is the size of the inner levels 1 to TileHeight-1 of a full
// tile, as Inner returns them: 254 hashes.
const InnerSize = (TileWidth - 2) * HashSize

// Inner returns the inner levels 1 to TileHeight-1 of a full tile,
// concatenated, so that they can be stored beside it and
// TileTreeFromInner can rebuild the TileTree without hashing.
func (t *TileTree) Inner() []byte {
	b := make([]byte, 0, InnerSize)
	for _, level := range t.Levels[1:] {
		b = append(b, level...)
	}
	return b
}

// TileTreeFromInner returns the TileTree of a full tile from its hashes
// and the inner levels that Inner returned for it. It does not recompute
// them: they must come from storage the caller trusts as it trusts the
// hashes.
func TileTreeFromInner(hashes, inner []byte) (*TileTree, error) {
	if len(hashes) != TileWidth*HashSize || len(inner) != InnerSize {
		return nil, fmt.Errorf("full tile of %d bytes with inner levels of %d bytes, want %d and %d: %w",
			len(hashes), len(inner), TileWidth*HashSize, InnerSize, ErrMissingTile)
	}
	t := &TileTree{}
	t.Levels[0] = hashes
	for k, n := 1, TileWidth/2; k < TileHeight; k, n = k+1, n/2 {
		t.Levels[k], inner = inner[:n*HashSize:n*HashSize], inner[n*HashSize:]
	}
	return t, nil
}

// nodeTile returns the tile that holds node id.
func nodeTile(id compact.NodeID) TileID {
	first := id.Index << (id.Level % TileHeight) // first descendant at tree level 8*tileLevel
	return TileID{Level: uint64(id.Level / TileHeight), Index: first / TileWidth}
}

// nodeHashIn returns the hash of node id from tt, the TileTree of tile.
func nodeHashIn(tt *TileTree, tile TileID, id compact.NodeID) ([]byte, error) {
	k := id.Level % TileHeight
	at := ((id.Index << k) % TileWidth) >> k // the node's place in inner level k
	if level := tt.Levels[k]; uint64(len(level)) >= (at+1)*HashSize {
		return level[at*HashSize : (at+1)*HashSize], nil
	}
	return nil, fmt.Errorf("tile %d/%d has %d hashes, node %d/%d needs %d: %w",
		tile.Level, tile.Index, len(tt.Levels[0])/HashSize, id.Level, id.Index, (at+1)<<k, ErrMissingTile)
}

// TreeVisitor calls fn with the TileTree of a tile. The TileTree may be
// valid only during the call (it may alias a store's buffers): fn copies
// what it keeps.
type TreeVisitor func(level, index uint64, fn func(*TileTree) error) error

// InclusionProofVisiting returns the RFC 6962 (§2.1.1) inclusion proof of
// leaf index in the tree of the given size, built from the tiles of a tree
// at least that large, visiting each tile it needs once through visit,
// which may cache tiles or lend a store's buffers.
func InclusionProofVisiting(index, size uint64, visit TreeVisitor) ([][]byte, error) {
	if index >= size {
		return nil, fmt.Errorf("leaf index %d not in tree of size %d", index, size)
	}
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, fmt.Errorf("inclusion proof plan: %w", err)
	}
	return fetchProof(nodes, visit)
}

// ConsistencyProofVisiting returns the RFC 6962 (§2.1.2) consistency proof
// between trees of sizes from and to, built from the tiles of a tree at
// least as large as to, visiting each tile it needs once through visit, as
// for InclusionProofVisiting. The proof from size 0, or between equal
// sizes, is empty.
func ConsistencyProofVisiting(from, to uint64, visit TreeVisitor) ([][]byte, error) {
	if from > to {
		return nil, fmt.Errorf("tree size %d greater than %d", from, to)
	}
	nodes, err := proof.Consistency(from, to)
	if err != nil {
		return nil, fmt.Errorf("consistency proof plan: %w", err)
	}
	return fetchProof(nodes, visit)
}

// fetchProof reads the hashes of nodes.IDs, visiting each tile once, and
// folds the ephemeral node if the proof has one.
func fetchProof(nodes proof.Nodes, visit TreeVisitor) ([][]byte, error) {
	hashes := make([][]byte, len(nodes.IDs))
	buf := make([]byte, len(nodes.IDs)*HashSize) // the copies, in one allocation
	done := make([]bool, len(nodes.IDs))
	for i, id := range nodes.IDs {
		if done[i] {
			continue
		}
		tile := nodeTile(id)
		err := visit(tile.Level, tile.Index, func(tt *TileTree) error {
			for j := i; j < len(nodes.IDs); j++ {
				if done[j] || nodeTile(nodes.IDs[j]) != tile {
					continue
				}
				h, err := nodeHashIn(tt, tile, nodes.IDs[j])
				if err != nil {
					return err
				}
				// A copy: tt may be borrowed, and Rehash modifies hashes
				// in place.
				hashes[j], done[j] = append(buf[j*HashSize:j*HashSize:(j+1)*HashSize], h...), true
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("reading tile %d/%d for node %d/%d: %w", tile.Level, tile.Index, id.Level, id.Index, err)
		}
	}
	return nodes.Rehash(hashes, HashChildren)
}
