package merkle

import "fmt"

// The proofs over a TileReader, computing every tile's inner levels on each
// visit: the tests' simplest way to build proofs from stored tiles (the log
// builds them through a caching TreeVisitor).

// visitTiles returns a TreeVisitor that reads tiles with read and
// computes their inner levels on every visit.
func visitTiles(read TileReader) TreeVisitor {
	return func(level, index uint64, fn func(*TileTree) error) error {
		data, err := read(level, index)
		if err != nil {
			return err
		}
		if len(data)%HashSize != 0 {
			return fmt.Errorf("tile %d/%d of %d bytes: %w", level, index, len(data), ErrMissingTile)
		}
		return fn(NewTileTree(data))
	}
}

// InclusionProof returns the RFC 6962 (§2.1.1) inclusion proof of leaf index
// in the tree of the given size, built from the tiles of a tree at least
// that large.
func InclusionProof(index, size uint64, read TileReader) ([][]byte, error) {
	return InclusionProofVisiting(index, size, visitTiles(read))
}

// ConsistencyProof returns the RFC 6962 (§2.1.2) consistency proof between
// trees of sizes from and to, built from the tiles of a tree at least as
// large as to. The proof from size 0, or between equal sizes, is empty.
func ConsistencyProof(from, to uint64, read TileReader) ([][]byte, error) {
	return ConsistencyProofVisiting(from, to, visitTiles(read))
}
