package merkle

import (
	"fmt"

	"github.com/transparency-dev/merkle/compact"
)

// TileSet tracks the rightmost tile of each level while leaves are appended
// to a compact range, and records which tiles changed. Feed it every node a
// compact.Range visits (Visit is a compact.VisitFn); it keeps the hashes of
// tree levels that are multiples of 8. It holds at most one tile per level,
// so at most 8 tiles of 8 KiB.
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
	if id.Level%TileHeight != 0 || ts.err != nil {
		return
	}
	level := uint64(id.Level / TileHeight)
	index, slot := id.Index/TileWidth, id.Index%TileWidth
	t := ts.right[level]
	if t == nil || t.index != index {
		t = &tile{index: index, hashes: make([]byte, 0, TileWidth*HashSize)}
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

// Flush returns a copy of every tile changed since the last Flush, keyed by
// tile, and forgets them. It returns the first ordering error Visit saw.
func (ts *TileSet) Flush() (map[TileID][]byte, error) {
	if ts.err != nil {
		return nil, ts.err
	}
	out := make(map[TileID][]byte, len(ts.dirty))
	for id, t := range ts.dirty {
		out[id] = append([]byte(nil), t.hashes...)
	}
	clear(ts.dirty)
	return out, nil
}
