package merkle

import (
	"fmt"

	"github.com/transparency-dev/merkle/compact"
)

// TileSet tracks the rightmost tile of each level while leaves are appended
// to a compact range, and records which tiles changed. Feed it every node a
// compact.Range visits (Visit is a compact.VisitFn); it keeps the hashes of
// tree levels that are multiples of 8 as tiles, and those of the levels
// between as the rightmost tiles' inner levels. It holds at most one tile
// per level, so at most 8 tiles of 16 KiB.
//
// A TileSet is not safe for concurrent use.
type TileSet struct {
	right map[uint64]*tile // tile level → its rightmost tile
	dirty map[TileID]*tile // tiles changed since the last Flush
	err   error            // first inconsistency seen by Visit
}

type tile struct {
	index  uint64
	hashes []byte // len is a multiple of HashSize, at most TileWidth hashes
	// inner are the tile's inner levels 1 to TileHeight-1 as the range
	// visited them, kept while visited: false for a tile resumed part way
	// (NewTileSet), whose earlier inner nodes were never visited.
	inner    [TileHeight - 1][]byte
	innerBuf []byte // backs inner
	visited  bool
}

// Tile is a tile changed since the last Flush: its hashes so far and, for
// a full tile whose every node was visited, its inner levels as
// TileTree.Inner gives them (nil otherwise), taken from the nodes the
// range computed rather than hashed again.
type Tile struct {
	Hashes, Inner []byte
}

// NewTileSet returns a TileSet for a tree of the given size whose partial
// tiles are read with read (only the partial rightmost tile of each level
// is read; full tiles never change).
func NewTileSet(size uint64, read TileReader) (*TileSet, error) {
	ts := &TileSet{right: map[uint64]*tile{}, dirty: map[TileID]*tile{}}
	for level := uint64(0); level < 8 && size>>(TileHeight*level) > 0; level++ {
		id := TileID{Level: level, Index: (size >> (TileHeight * level)) / TileWidth}
		w := id.Width(size)
		if w == 0 || w == TileWidth {
			continue // the next hash at this level starts a new tile
		}
		data, err := read(id.Level, id.Index)
		if err != nil {
			return nil, fmt.Errorf("reading partial tile %d/%d: %w", id.Level, id.Index, err)
		}
		if uint64(len(data)) < w*HashSize {
			return nil, fmt.Errorf("partial tile %d/%d has %d bytes, tree size %d needs %d: %w",
				id.Level, id.Index, len(data), size, w*HashSize, ErrMissingTile)
		}
		hashes := make([]byte, w*HashSize, TileWidth*HashSize)
		copy(hashes, data)
		ts.right[level] = &tile{index: id.Index, hashes: hashes}
	}
	return ts, nil
}

// Visit records the hash of a node of the tree; it has the signature of a
// compact.VisitFn. Nodes must arrive in the order a compact range appending
// leaves produces them; any other order is recorded as an error for Flush.
func (ts *TileSet) Visit(id compact.NodeID, hash []byte) {
	if ts.err != nil {
		return
	}
	level := uint64(id.Level / TileHeight)
	if k := id.Level % TileHeight; k != 0 {
		// An inner node, at level k of tile id.Index >> (8-k) of its
		// tile level.
		t := ts.right[level]
		shift := TileHeight - uint(k)
		if t == nil || !t.visited || t.index != id.Index>>shift {
			return
		}
		if slot := id.Index & (1<<shift - 1); uint64(len(t.inner[k-1])) != slot*HashSize {
			t.visited = false // not reached: Flush hashes the tile again
			return
		}
		t.inner[k-1] = append(t.inner[k-1], hash...)
		return
	}
	index, slot := id.Index/TileWidth, id.Index%TileWidth
	t := ts.right[level]
	if t == nil || t.index != index {
		t = &tile{index: index, hashes: make([]byte, 0, TileWidth*HashSize), visited: true}
		// The inner levels in one array, in TileTree.Inner's order, each
		// level a slice of it with room for exactly its hashes.
		t.innerBuf = make([]byte, InnerSize)
		off := 0
		for k := range t.inner {
			n := (TileWidth >> (k + 1)) * HashSize
			t.inner[k] = t.innerBuf[off : off : off+n]
			off += n
		}
		ts.right[level] = t
	}
	if uint64(len(t.hashes)) != slot*HashSize {
		ts.err = fmt.Errorf("merkle: node %d/%d out of order: tile %d/%d holds %d hashes",
			id.Level, id.Index, level, index, len(t.hashes)/HashSize)
		return
	}
	t.hashes = append(t.hashes, hash...)
	ts.dirty[TileID{Level: level, Index: index}] = t
}

// Flush returns a copy of the hashes of every tile changed since the last
// Flush, keyed by tile, and forgets them; a full tile's Inner is the
// set's own array, never written again, which the caller must not modify
// either. It returns the first ordering error Visit saw.
func (ts *TileSet) Flush() (map[TileID]Tile, error) {
	if ts.err != nil {
		return nil, ts.err
	}
	out := make(map[TileID]Tile, len(ts.dirty))
	for id, t := range ts.dirty {
		ft := Tile{Hashes: append([]byte(nil), t.hashes...)}
		if len(t.hashes) == TileWidth*HashSize && t.visited {
			complete := true
			for k, l := range t.inner {
				complete = complete && len(l) == (TileWidth>>(k+1))*HashSize
			}
			if complete {
				// A full tile never changes: its levels, in place, are
				// Inner's bytes.
				ft.Inner = t.innerBuf
			}
		}
		out[id] = ft
	}
	clear(ts.dirty)
	return out, nil
}
