package storagetest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	plog "github.com/provlog/provlog/log"
	"github.com/provlog/provlog/storage"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
)

// BenchCommit commits rounds of n random entries of size bytes each into
// st (ready for the log to write), one round per b.N iteration, and
// reports entries/s. Rounds are shaped as the log makes them: leaf hashes,
// the compact range and root, the level-0 tiles the round touched (full
// ones with inner levels) and the rightmost level-1 tile, a checkpoint,
// and with indexed one search-index key per entry (TermAdmission's).
// Building the rounds is not timed.
func BenchCommit(b *testing.B, st plog.Storage, n, size int, indexed bool) {
	state, err := st.ReadState()
	if err != nil {
		b.Fatal(err)
	}
	rf := compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	cr, err := rf.NewRange(0, state.Size, state.Range)
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.NewChaCha8([32]byte{byte(state.Size), byte(state.Size >> 8), byte(state.Size >> 16), byte(state.Size >> 24)})
	var leaves []byte // the level-0 hashes of the rightmost tile so far
	var elapsed time.Duration
	for range b.N {
		r := &storage.Round{Start: cr.End()}
		for range n {
			e := make([]byte, size)
			rng.Read(e)
			h := rfc6962.DefaultHasher.HashLeaf(e)
			r.Entries, r.LeafHashes = append(r.Entries, e), append(r.LeafHashes, h)
			if err := cr.Append(h, nil); err != nil {
				b.Fatal(err)
			}
			if indexed {
				d := sha256.Sum256(e)
				r.Index = append(r.Index, storage.IndexKey{Kind: plog.IndexDigest, Value: "sha256:" + hex.EncodeToString(d[:]), Index: cr.End() - 1, Tag: plog.TagBuild})
			}
		}
		for i := r.Start; i < cr.End(); i++ {
			if i%256 == 0 {
				leaves = leaves[:0]
			}
			leaves = append(leaves, r.LeafHashes[i-r.Start]...)
			if (i+1)%256 == 0 || i+1 == cr.End() {
				t := storage.Tile{Level: 0, Index: i / 256, Hashes: append([]byte(nil), leaves...)}
				if len(leaves) == 256*32 {
					t.Inner = make([]byte, 254*32) // the size of real inner levels
				}
				r.Tiles = append(r.Tiles, t)
			}
		}
		r.Tiles = append(r.Tiles, storage.Tile{Level: 1, Index: cr.End() / 65536, Hashes: make([]byte, 32*((cr.End()%65536)/256+1))})
		root, err := cr.GetRootHash(nil)
		if err != nil {
			b.Fatal(err)
		}
		r.State = storage.State{Size: cr.End(), Range: cr.Hashes(),
			Checkpoint: fmt.Appendf(nil, "example.com/bench\n%d\n%x\n\n— example.com/bench %x\n", cr.End(), root, root[:24])}
		start := time.Now()
		if err := st.Commit(r); err != nil {
			b.Fatal(err)
		}
		elapsed += time.Since(start)
	}
	b.ReportMetric(float64(b.N*n)/elapsed.Seconds(), "entries/s")
	b.SetBytes(int64(n * size))
}
