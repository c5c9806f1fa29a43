package merkle

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/tlog"
)

// tree is a log built with TileSet, beside an independent sumdb/tlog copy.
type tree struct {
	size   uint64
	rng    *compact.Range
	ts     *TileSet
	tiles  map[TileID][]byte // what a store would hold
	stored []tlog.Hash       // sumdb/tlog's stored hashes, the reference
	// inner counts the full tiles flushed with their inner levels;
	// resumed is set once the tree continues from a NewTileSet.
	inner     int
	innerAt   map[uint64]int // full tiles with inner levels, by tile level
	resumed   bool
	resumedAt uint64
}

func newTree(t *testing.T) *tree {
	ts, err := NewTileSet(0, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := compact.RangeFactory{Hash: hasher.HashChildren}
	return &tree{rng: f.NewEmptyRange(0), ts: ts, tiles: map[TileID][]byte{}, innerAt: map[uint64]int{}}
}

func entry(i uint64) []byte { return fmt.Appendf(nil, "entry %d", i) }

// grow appends n entries, flushing tiles into tr.tiles as a store would.
func (tr *tree) grow(t *testing.T, n uint64) {
	t.Helper()
	for range n {
		e := entry(tr.size)
		if err := tr.rng.Append(LeafHash(e), tr.ts.Visit); err != nil {
			t.Fatal(err)
		}
		hs, err := tlog.StoredHashes(int64(tr.size), e, tlog.HashReaderFunc(tr.readStored))
		if err != nil {
			t.Fatal(err)
		}
		tr.stored = append(tr.stored, hs...)
		tr.size++
	}
	dirty, err := tr.ts.Flush()
	if err != nil {
		t.Fatal(err)
	}
	for id, ft := range dirty {
		tr.tiles[id] = ft.Hashes
		if ft.Inner != nil {
			// The inner levels from the range's nodes are the tile's,
			// as hashing it again gives them, and as sumdb/tlog stores
			// them at tree levels 8·Level+1 to 8·Level+7.
			if want := NewTileTree(ft.Hashes).Inner(); !bytes.Equal(ft.Inner, want) {
				t.Fatalf("tile %v: inner levels from the range differ from the tile's", id)
			}
			tr.checkInner(t, id, ft.Inner)
			tr.inner++
			tr.innerAt[id.Level]++
		} else if len(ft.Hashes) == TileWidth*HashSize && (!tr.resumed || id.Level == 0 && id.Index*TileWidth >= tr.resumedAt) {
			// Only a tile begun before a resume is hashed again.
			t.Fatalf("full tile %v flushed without its inner levels", id)
		}
	}
}

// checkInner compares the inner levels of full tile id with the hashes
// sumdb/tlog stores for the same nodes.
func (tr *tree) checkInner(t *testing.T, id TileID, inner []byte) {
	t.Helper()
	off := 0
	for k := 1; k < TileHeight; k++ {
		n := TileWidth >> k
		for j := range n {
			level := int(id.Level)*TileHeight + k
			want := tr.stored[tlog.StoredHashIndex(level, int64(id.Index)*int64(n)+int64(j))]
			if got := inner[off : off+HashSize]; !bytes.Equal(got, want[:]) {
				t.Fatalf("tile %v: inner node %d at tree level %d differs from sumdb/tlog's", id, j, level)
			}
			off += HashSize
		}
	}
}

func (tr *tree) readStored(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		out[i] = tr.stored[x]
	}
	return out, nil
}

func (tr *tree) readTile(level, index uint64) ([]byte, error) {
	h, ok := tr.tiles[TileID{level, index}]
	if !ok {
		return nil, ErrMissingTile
	}
	return h, nil
}

func (tr *tree) root(t *testing.T, size uint64) []byte {
	t.Helper()
	h, err := tlog.TreeHash(int64(size), tlog.HashReaderFunc(tr.readStored))
	if err != nil {
		t.Fatal(err)
	}
	return h[:]
}

// checkTiles compares every tile of the tree with sumdb/tlog's.
func (tr *tree) checkTiles(t *testing.T) {
	t.Helper()
	for _, want := range tlog.NewTiles(TileHeight, 0, int64(tr.size)) {
		got, err := tr.readTile(uint64(want.L), uint64(want.N))
		if err != nil {
			t.Fatalf("tile %v: %v", want.Path(), err)
		}
		wantData, err := tlog.ReadTileData(want, tlog.HashReaderFunc(tr.readStored))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got[:len(wantData)], wantData) {
			t.Fatalf("tile %s differs from sumdb/tlog's", want.Path())
		}
		if w := (TileID{uint64(want.L), uint64(want.N)}).Width(tr.size); w != uint64(want.W) {
			t.Fatalf("tile %s: Width = %d, want %d", want.Path(), w, want.W)
		}
	}
}

func TestTilesMatchSumdb(t *testing.T) {
	tr := newTree(t)
	// Uneven steps cross tile boundaries at levels 0 and 1 mid-step.
	for _, step := range []uint64{1, 2, 5, 248, 1, 255, 256, 777, 65000, 300} {
		tr.grow(t, step)
		tr.checkTiles(t)
	}
	// 66,845 leaves: 261 full tiles at level 0 and one at level 1, each
	// flushed with inner levels that sumdb/tlog's stored hashes confirm.
	if tr.innerAt[0] != 261 || tr.innerAt[1] != 1 {
		t.Errorf("full tiles flushed with inner levels: %v, want 261 at level 0 and 1 at level 1", tr.innerAt)
	}
}

func TestProofsVerify(t *testing.T) {
	tr := newTree(t)
	sizes := []uint64{1, 2, 3, 7, 8, 255, 256, 257, 511, 512, 1000, 65535, 65536, 65537, 70000}
	for _, size := range sizes {
		tr.grow(t, size-tr.size)
		root := tr.root(t, size)
		for _, idx := range []uint64{0, 1, size / 3, size / 2, size - 2, size - 1} {
			if idx >= size {
				continue
			}
			p, err := InclusionProof(idx, size, tr.readTile)
			if err != nil {
				t.Fatalf("InclusionProof(%d, %d): %v", idx, size, err)
			}
			if err := proof.VerifyInclusion(hasher, idx, size, LeafHash(entry(idx)), p, root); err != nil {
				t.Fatalf("InclusionProof(%d, %d) does not verify: %v", idx, size, err)
			}
		}
		for _, from := range sizes {
			if from > size {
				break
			}
			p, err := ConsistencyProof(from, size, tr.readTile)
			if err != nil {
				t.Fatalf("ConsistencyProof(%d, %d): %v", from, size, err)
			}
			if err := proof.VerifyConsistency(hasher, from, size, p, tr.root(t, from), root); err != nil {
				t.Fatalf("ConsistencyProof(%d, %d) does not verify: %v", from, size, err)
			}
		}
	}
	// Proofs at an old size still build once the tree has grown past it.
	p, err := InclusionProof(5, 300, tr.readTile)
	if err != nil {
		t.Fatal(err)
	}
	if err := proof.VerifyInclusion(hasher, 5, 300, LeafHash(entry(5)), p, tr.root(t, 300)); err != nil {
		t.Fatalf("old-size proof: %v", err)
	}
}

func TestProofErrors(t *testing.T) {
	tr := newTree(t)
	tr.grow(t, 10)
	if _, err := InclusionProof(10, 10, tr.readTile); err == nil {
		t.Error("InclusionProof(10, 10) succeeded")
	}
	if _, err := ConsistencyProof(11, 10, tr.readTile); err == nil {
		t.Error("ConsistencyProof(11, 10) succeeded")
	}
	// A tree larger than the tiles hold: the missing tile is reported.
	if _, err := InclusionProof(3, 600, tr.readTile); !errors.Is(err, ErrMissingTile) {
		t.Errorf("InclusionProof beyond stored tiles: %v, want ErrMissingTile", err)
	}
	short := func(level, index uint64) ([]byte, error) { return make([]byte, 3*HashSize), nil }
	if _, err := InclusionProof(3, 10, short); !errors.Is(err, ErrMissingTile) {
		t.Errorf("short tile: %v, want ErrMissingTile", err)
	}
}

func TestTileSetResumes(t *testing.T) {
	// A TileSet reopened at any size continues exactly as one that never
	// stopped: the tiles after growth match sumdb/tlog's.
	for _, stop := range []uint64{1, 255, 256, 257, 65536, 65793} {
		tr := newTree(t)
		tr.grow(t, stop)
		ts, err := NewTileSet(stop, tr.readTile)
		if err != nil {
			t.Fatalf("NewTileSet(%d): %v", stop, err)
		}
		f := compact.RangeFactory{Hash: hasher.HashChildren}
		rng, err := f.NewRange(0, stop, tr.rng.Hashes())
		if err != nil {
			t.Fatal(err)
		}
		tr.ts, tr.rng, tr.resumed, tr.resumedAt = ts, rng, true, stop
		tr.grow(t, 600)
		tr.checkTiles(t)
	}
	if _, err := NewTileSet(300, func(uint64, uint64) ([]byte, error) { return nil, nil }); !errors.Is(err, ErrMissingTile) {
		t.Errorf("NewTileSet with a short partial tile: %v, want ErrMissingTile", err)
	}
}

func TestVisitOutOfOrder(t *testing.T) {
	ts, _ := NewTileSet(0, nil)
	ts.Visit(compact.NodeID{Level: 0, Index: 1}, make([]byte, HashSize))
	if _, err := ts.Flush(); err == nil {
		t.Error("Flush after an out-of-order node succeeded")
	}
}

func TestWidth(t *testing.T) {
	for _, tc := range []struct {
		id         TileID
		size, want uint64
	}{
		{TileID{0, 0}, 0, 0},
		{TileID{0, 0}, 1, 1},
		{TileID{0, 0}, 256, 256},
		{TileID{0, 1}, 256, 0},
		{TileID{0, 273}, 70000, 112},
		{TileID{1, 0}, 70000, 256},
		{TileID{1, 1}, 70000, 17},
		{TileID{2, 0}, 70000, 1},
		{TileID{3, 0}, 70000, 0},
		{TileID{0, 1 << 60}, 1<<63 - 1, 0},
		{TileID{8, 0}, 1<<64 - 1, 0},
	} {
		if got := tc.id.Width(tc.size); got != tc.want {
			t.Errorf("%v.Width(%d) = %d, want %d", tc.id, tc.size, got, tc.want)
		}
	}
}

// TestTileTreeFromInner checks the stored inner levels of full tiles
// against sumdb/tlog's node hashes, and proofs built from them.
func TestTileTreeFromInner(t *testing.T) {
	tr := newTree(t)
	tr.grow(t, 3*TileWidth+17)
	stored := map[TileID]*TileTree{}
	for id, h := range tr.tiles {
		if len(h) != TileWidth*HashSize {
			continue
		}
		inner := NewTileTree(h).Inner()
		if len(inner) != InnerSize {
			t.Fatalf("tile %v: Inner of %d bytes, want %d", id, len(inner), InnerSize)
		}
		tt, err := TileTreeFromInner(h, inner)
		if err != nil {
			t.Fatal(err)
		}
		for k := 1; k < TileHeight; k++ {
			level := tt.Levels[k]
			if len(level) != (TileWidth>>k)*HashSize {
				t.Fatalf("tile %v inner level %d of %d bytes", id, k, len(level))
			}
			for j := range uint64(TileWidth >> k) {
				n := id.Index*(TileWidth>>k) + j
				want := tr.stored[tlog.StoredHashIndex(int(id.Level)*TileHeight+k, int64(n))]
				if !bytes.Equal(level[j*HashSize:(j+1)*HashSize], want[:]) {
					t.Fatalf("tile %v inner level %d node %d differs from sumdb/tlog's", id, k, j)
				}
			}
		}
		stored[id] = tt
	}
	if len(stored) != 3 {
		t.Fatalf("%d full tiles, want 3", len(stored))
	}
	visit := func(level, index uint64, fn func(*TileTree) error) error {
		if tt, ok := stored[TileID{level, index}]; ok {
			return fn(tt)
		}
		return visitTiles(tr.readTile)(level, index, fn)
	}
	for _, i := range []uint64{0, 255, 256, 700, tr.size - 1} {
		p, err := InclusionProofVisiting(i, tr.size, visit)
		if err != nil {
			t.Fatal(err)
		}
		if err := proof.VerifyInclusion(hasher, i, tr.size, LeafHash(entry(i)), p, tr.root(t, tr.size)); err != nil {
			t.Fatalf("proof of %d: %v", i, err)
		}
	}
	h := tr.tiles[TileID{0, 0}]
	for _, bad := range [][2]int{{len(h) - HashSize, InnerSize}, {len(h), InnerSize - HashSize}, {len(h), 0}} {
		if _, err := TileTreeFromInner(h[:bad[0]], make([]byte, bad[1])); !errors.Is(err, ErrMissingTile) {
			t.Errorf("TileTreeFromInner(%d, %d bytes) = %v, want ErrMissingTile", bad[0], bad[1], err)
		}
	}
}

// TestHashesMatchRFC6962 checks LeafHash and HashChildren, which reuse
// SHA-256 states, against transparency-dev's rfc6962 hasher, from several
// goroutines at once (the pooled states are shared).
func TestHashesMatchRFC6962(t *testing.T) {
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			for i := range 2000 {
				e := make([]byte, []int{0, 1, 63, 64, 1024, 70000}[i%6])
				for j := range e {
					e[j] = byte(rng.Uint32())
				}
				if got, want := LeafHash(e), rfc6962.DefaultHasher.HashLeaf(e); !bytes.Equal(got, want) {
					t.Errorf("LeafHash of %d bytes = %x, want %x", len(e), got, want)
					return
				}
				l, r := LeafHash(e), LeafHash(append(e, 1))
				if got, want := HashChildren(l, r), rfc6962.DefaultHasher.HashChildren(l, r); !bytes.Equal(got, want) {
					t.Errorf("HashChildren = %x, want %x", got, want)
					return
				}
			}
		})
	}
	wg.Wait()
}
