package storage

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// LookupLeaves looks up leaf hashes in the leaf-hash index. For each hash it
// sets found[i] and, if found, indices[i]. Both slices must have len(hashes).
func (s *Store) LookupLeaves(hashes [][]byte, indices []uint64, found []bool) error {
	ready := s.filterReady.Load()
	var buf []byte
	for i, h := range hashes {
		if len(h) != hashSize || ready && !s.filter.mayContain(h) {
			found[i] = false
			continue
		}
		idx, ok, err := s.leaves.lookup(h, &buf)
		if err != nil {
			return err
		}
		found[i], indices[i] = ok, idx
	}
	return nil
}

// Tile returns a copy of the stored hashes of a tile, or ErrNotFound.
func (s *Store) Tile(level, index uint64) (hashes []byte, err error) {
	err = s.VisitTile(level, index, func(h, _ []byte) error {
		hashes = bytes.Clone(h)
		return nil
	})
	return hashes, err
}

// VisitTile calls fn with the stored hashes of a tile and, for a full tile
// stored with them, its inner levels (nil otherwise), or returns
// ErrNotFound. Both slices are the store's own buffers, valid only during
// the call: fn copies what it keeps.
func (s *Store) VisitTile(level, index uint64, fn func(hashes, inner []byte) error) error {
	if level > 255 {
		return fmt.Errorf("tile level %d: %w", level, ErrNotFound)
	}
	v, closer, err := s.db.Get(tileKey(level, index))
	if errors.Is(err, pebble.ErrNotFound) {
		return ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("reading tile %d/%d: %w", level, index, err)
	}
	defer closer.Close()
	switch {
	case len(v) == fullTileSize+innerSize:
		return fn(v[:fullTileSize:fullTileSize], v[fullTileSize:])
	case len(v) <= fullTileSize:
		return fn(v, nil)
	default:
		return fmt.Errorf("tile %d/%d of %d bytes: %w", level, index, len(v), ErrCorrupt)
	}
}

// Entries calls fn with each stored entry of [start, start+count) in order.
// A missing entry is ErrCorrupt: the caller only asks for indices below the
// stored size. The entry slice is valid only during the call.
func (s *Store) Entries(start, count uint64, fn func(index uint64, entry []byte) error) error {
	end := start + count
	if end < start {
		return fmt.Errorf("entries [%d, %d): %w", start, end, ErrCorrupt)
	}
	_, err := s.visitEntries(start, end, fn)
	return err
}
