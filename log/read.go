package log

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/provlog/provlog/merkle"
	"github.com/provlog/provlog/storage"
)

// Reads serve the integrated tree: everything a durable signed checkpoint
// covers, which is the published tree, or, when the log is witnessed, may
// run ahead of it while the latest checkpoint waits for its quorum. The
// checkpoints sent to witnesses are public (a witness serves what it
// cosigned), and C2SP tlog-tiles says "Logs MUST serve partial tiles
// corresponding to tree sizes for which a checkpoint was produced", so
// tiles, entries and proofs up to that size are served; only the
// published checkpoint (Checkpoint, and the proof bundles and search that
// are answered against it) waits for the witnesses. Nothing beyond a
// durable signed checkpoint is ever served.

// IntegratedSize returns the size of the latest durable signed checkpoint,
// up to which reads serve the tree.
func (l *Log) IntegratedSize() uint64 { return l.latest.Load().Size }

// InclusionProof returns the RFC 6962 inclusion proof of entry index in the
// tree of the given size; it needs index < size <= the integrated size.
func (l *Log) InclusionProof(ctx context.Context, index, size uint64) ([][]byte, error) {
	if have := l.IntegratedSize(); size > have {
		return nil, fmt.Errorf("%w: tree size %d beyond the log's size %d", ErrOutOfRange, size, have)
	}
	if index >= size {
		return nil, fmt.Errorf("%w: index %d not in tree of size %d", ErrOutOfRange, index, size)
	}
	p, err := merkle.InclusionProofVisiting(index, size, l.treeVisitor(size))
	if err != nil {
		return nil, fmt.Errorf("inclusion proof for %d in %d: %w", index, size, err)
	}
	return p, nil
}

// ConsistencyProof returns the RFC 6962 consistency proof between the trees
// of sizes from and to; it needs from <= to <= the integrated size. The
// proof from 0, or between equal sizes, is empty.
func (l *Log) ConsistencyProof(ctx context.Context, from, to uint64) ([][]byte, error) {
	if have := l.IntegratedSize(); to > have {
		return nil, fmt.Errorf("%w: tree size %d beyond the log's size %d", ErrOutOfRange, to, have)
	}
	if from > to {
		return nil, fmt.Errorf("%w: from size %d greater than to size %d", ErrOutOfRange, from, to)
	}
	p, err := merkle.ConsistencyProofVisiting(from, to, l.treeVisitor(to))
	if err != nil {
		return nil, fmt.Errorf("consistency proof %d to %d: %w", from, to, err)
	}
	return p, nil
}

// IndexOf returns the index of the entry with the given RFC 6962 leaf hash,
// or ErrNotFound if the integrated tree has no such entry.
func (l *Log) IndexOf(ctx context.Context, leafHash []byte) (uint64, error) {
	if len(leafHash) != merkle.HashSize {
		return 0, fmt.Errorf("%w: leaf hash of %d bytes", ErrNotFound, len(leafHash))
	}
	idx, found := []uint64{0}, []bool{false}
	if err := l.store.LookupLeaves([][]byte{leafHash}, idx, found); err != nil {
		return 0, fmt.Errorf("looking up leaf hash: %w", err)
	}
	if !found[0] || idx[0] >= l.IntegratedSize() {
		return 0, fmt.Errorf("%w: no entry with leaf hash %x", ErrNotFound, leafHash)
	}
	return idx[0], nil
}

// Entries calls fn with each entry of [start, start+count) in order; the
// range must lie within the integrated tree. The entry slice is valid only
// during the call. An error from fn stops the iteration and is returned.
func (l *Log) Entries(ctx context.Context, start, count uint64, fn func(index uint64, entry []byte) error) error {
	if have := l.IntegratedSize(); start >= have || count > have-start {
		return fmt.Errorf("%w: entries [%d, %d+%d) beyond the log's size %d", ErrOutOfRange, start, start, count, have)
	}
	return l.store.Entries(start, count, func(i uint64, e []byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		return fn(i, e)
	})
}

// Tile returns the hashes of tlog-tiles tile (level, index) at the given
// width (1..255 for a partial tile, 0 for the full tile), or ErrNotFound if
// the integrated tree does not have the tile at that width.
func (l *Log) Tile(ctx context.Context, level, index uint64, width uint8) ([]byte, error) {
	w, err := l.tileWidth(merkle.TileID{Level: level, Index: index}, width)
	if err != nil {
		return nil, err
	}
	data, err := l.store.Tile(level, index)
	if err != nil {
		return nil, l.readErr(fmt.Sprintf("tile %d/%d", level, index), err)
	}
	if uint64(len(data)) < w*merkle.HashSize {
		return nil, fmt.Errorf("tile %d/%d has %d bytes, want %d: %w", level, index, len(data), w*merkle.HashSize, storage.ErrCorrupt)
	}
	return data[:w*merkle.HashSize], nil
}

// tileWidth checks that the integrated tree has the tile at the requested
// width (0 meaning full) and returns that width.
func (l *Log) tileWidth(id merkle.TileID, width uint8) (uint64, error) {
	want := uint64(width)
	if want == 0 {
		want = merkle.TileWidth
	}
	if have := id.Width(l.IntegratedSize()); have < want {
		return 0, fmt.Errorf("%w: tile %d/%d of width %d (the tree has width %d)", ErrNotFound, id.Level, id.Index, want, have)
	}
	return want, nil
}

func (l *Log) readErr(what string, err error) error {
	if errors.Is(err, storage.ErrNotFound) {
		// The integrated tree has it, so the store must: report corruption.
		return fmt.Errorf("%s missing from store: %w", what, storage.ErrCorrupt)
	}
	return fmt.Errorf("reading %s: %w", what, err)
}

// tileTreeCacheSize is how many tiles with their inner levels (about
// 16 KiB each when full) the log keeps for building proofs: the upper
// tiles and the rightmost ones (treeVisitor).
const tileTreeCacheSize = 1024

// treeVisitor returns the visitor of tiles and their inner levels with
// which proofs in the tree of the given size are built. Full tiles never
// change, and a tile only grows, so a cached tile serves every proof in a
// tree whose width in that tile it covers; otherwise the tile is read once
// from the store. A full level-0 tile is then used in place, without
// copying or caching it: a large log has too many of them for a cache, and
// the 16 KiB copy was a quarter of the cost of reading one. Any other tile
// read is copied and cached, replacing a narrower cached copy.
func (l *Log) treeVisitor(size uint64) merkle.TreeVisitor {
	return func(level, index uint64, fn func(*merkle.TileTree) error) error {
		id := merkle.TileID{Level: level, Index: index}
		if t, ok := l.trees.Get(id); ok && uint64(len(t.Levels[0])) >= id.Width(size)*merkle.HashSize {
			return fn(t)
		}
		return l.store.VisitTile(level, index, func(hashes, inner []byte) error {
			if len(hashes)%merkle.HashSize != 0 || len(hashes) > merkle.TileWidth*merkle.HashSize {
				return fmt.Errorf("tile %d/%d of %d bytes: %w", level, index, len(hashes), storage.ErrCorrupt)
			}
			if level == 0 && inner != nil {
				t, err := merkle.TileTreeFromInner(hashes, inner)
				if err != nil {
					return fmt.Errorf("tile %d/%d: %w", level, index, storage.ErrCorrupt)
				}
				return fn(t)
			}
			var t *merkle.TileTree
			if inner != nil {
				var err error
				if t, err = merkle.TileTreeFromInner(bytes.Clone(hashes), bytes.Clone(inner)); err != nil {
					return fmt.Errorf("tile %d/%d: %w", level, index, storage.ErrCorrupt)
				}
			} else {
				t = merkle.NewTileTree(bytes.Clone(hashes)) // a partial tile, or a full one stored without them
			}
			l.trees.Add(id, t)
			return fn(t)
		})
	}
}
