package storagetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"

	plog "github.com/provlog/provlog/log"
	flog "github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Trees are re-verified with golang.org/x/mod/sumdb/tlog (root, tiles)
// and checkpoints with golang.org/x/mod/sumdb/note, not with provlog's
// merkle package.

// TermAdmission admits any entry and indexes it under its SHA-256 digest
// (EntryTerm), so that rounds also write search-index keys.
type TermAdmission struct{}

// Admit implements log.Admitter.
func (TermAdmission) Admit(_ context.Context, e []byte) (plog.Admitted, error) {
	return plog.Admitted{Leaf: e, Terms: []plog.IndexTerm{EntryTerm(e)}}, nil
}

// EntryTerm is the search-index term TermAdmission gives entry e.
func EntryTerm(e []byte) plog.IndexTerm {
	d := sha256.Sum256(e)
	return plog.IndexTerm{Kind: plog.IndexDigest, Value: "sha256:" + hex.EncodeToString(d[:]), Tag: plog.TagBuild}
}

// Tree is a store's tree, re-verified.
type Tree struct {
	Size    uint64
	Root    []byte
	Entries [][]byte
	Hashes  HashStore
}

// Verify re-verifies the whole stored tree of a log of origin whose
// entries were admitted by TermAdmission: the stored checkpoint verifies
// with v, the root recomputed from every entry with sumdb/tlog equals the
// checkpoint's, every stored hash tile equals sumdb/tlog's, entries are
// distinct, the leaf-hash index and the search index agree with the
// entries, and nothing is stored beyond the tree size.
func Verify(st plog.Storage, origin string, v note.Verifier) (Tree, error) {
	state, err := st.ReadState()
	if err != nil {
		return Tree{}, fmt.Errorf("ReadState: %w", err)
	}
	var out Tree
	if state.Size == 0 {
		return out, nil
	}
	cp, _, _, err := flog.ParseCheckpoint(state.Checkpoint, origin, v)
	if err != nil {
		return Tree{}, fmt.Errorf("stored checkpoint does not verify: %w\n%s", err, state.Checkpoint)
	}
	if cp.Size != state.Size {
		return Tree{}, fmt.Errorf("stored checkpoint has size %d, tree state %d", cp.Size, state.Size)
	}
	out.Size = cp.Size
	out.Root = cp.Hash
	seen := map[string]uint64{}
	err = st.Entries(0, cp.Size, func(i uint64, e []byte) error {
		if j, ok := seen[string(e)]; ok {
			return fmt.Errorf("entry %d is a copy of entry %d", i, j)
		}
		seen[string(e)] = i
		hs, err := tlog.StoredHashes(int64(i), e, out.Hashes)
		if err != nil {
			return err
		}
		out.Hashes = append(out.Hashes, hs...)
		out.Entries = append(out.Entries, bytes.Clone(e))
		return nil
	})
	if err != nil {
		return Tree{}, fmt.Errorf("reading the %d entries: %w", cp.Size, err)
	}
	root, err := tlog.TreeHash(int64(cp.Size), out.Hashes)
	if err != nil {
		return Tree{}, err
	}
	if !bytes.Equal(root[:], cp.Hash) {
		return Tree{}, fmt.Errorf("root recomputed from the %d stored entries %x != checkpoint root %x", cp.Size, root, cp.Hash)
	}
	for _, tile := range tlog.NewTiles(8, 0, int64(cp.Size)) {
		want, err := tlog.ReadTileData(tile, out.Hashes)
		if err != nil {
			return Tree{}, err
		}
		got, err := st.Tile(uint64(tile.L), uint64(tile.N))
		if err != nil || !bytes.Equal(got, want) {
			return Tree{}, fmt.Errorf("stored tile %s (%d bytes, %v) differs from sumdb/tlog's (%d bytes)", tile.Path(), len(got), err, len(want))
		}
	}
	if err := st.Entries(cp.Size, 1, func(uint64, []byte) error { return nil }); err == nil {
		return Tree{}, fmt.Errorf("an entry is stored at index %d, beyond the tree size", cp.Size)
	}
	hashes := make([][]byte, len(out.Entries))
	for i, e := range out.Entries {
		h := tlog.RecordHash(e)
		hashes[i] = h[:]
	}
	idx, found := make([]uint64, len(hashes)), make([]bool, len(hashes))
	if err := st.LookupLeaves(hashes, idx, found); err != nil {
		return Tree{}, err
	}
	for i, e := range out.Entries {
		if !found[i] || idx[i] != uint64(i) {
			return Tree{}, fmt.Errorf("leaf-hash index for entry %d: found %t at %d", i, found[i], idx[i])
		}
		term := EntryTerm(e)
		if ok, err := st.HasIndex(term.Kind, term.Value, uint64(i), term.Tag); err != nil || !ok {
			return Tree{}, fmt.Errorf("search index lacks entry %d: %t, %v", i, ok, err)
		}
	}
	return out, nil
}

// VerifyAppend checks that the store holds the verified tree durable
// extended by one entry, next, acknowledged with r: the new checkpoint
// verifies and its root is sumdb/tlog's.
func VerifyAppend(st plog.Storage, origin string, v note.Verifier, durable Tree, r plog.AddResult, next []byte) error {
	state, err := st.ReadState()
	if err != nil {
		return err
	}
	if r.Index != durable.Size || r.Duplicate || state.Size != durable.Size+1 {
		return fmt.Errorf("acknowledged as %+v, tree size %d → %d", r, durable.Size, state.Size)
	}
	cp, _, _, err := flog.ParseCheckpoint(state.Checkpoint, origin, v)
	if err != nil {
		return fmt.Errorf("stored checkpoint does not verify: %w", err)
	}
	hs, err := tlog.StoredHashes(int64(r.Index), next, durable.Hashes)
	if err != nil {
		return err
	}
	root, err := tlog.TreeHash(int64(state.Size), append(slices.Clip(durable.Hashes), hs...))
	if err != nil {
		return err
	}
	if cp.Size != state.Size || !bytes.Equal(root[:], cp.Hash) {
		return fmt.Errorf("checkpoint (%d, %x), want (%d, %x)", cp.Size, cp.Hash, state.Size, root)
	}
	return st.Entries(r.Index, 1, func(_ uint64, e []byte) error {
		if !bytes.Equal(e, next) {
			return fmt.Errorf("entry %d is %.20q, want %.20q", r.Index, e, next)
		}
		return nil
	})
}

// RootAt returns the root of the verified tree's first n entries.
func (v Tree) RootAt(n uint64) []byte {
	if n == 0 {
		h := sha256.Sum256(nil)
		return h[:]
	}
	h, err := tlog.TreeHash(int64(n), v.Hashes)
	if err != nil {
		panic(err) // n <= size, checked by the callers
	}
	return h[:]
}

// HashStore is a tlog.HashReader over stored hashes in tlog's layout.
type HashStore []tlog.Hash

// ReadHashes implements tlog.HashReader.
func (s HashStore) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		if x < 0 || x >= int64(len(s)) {
			return nil, fmt.Errorf("stored hash %d not in %d", x, len(s))
		}
		out[i] = s[x]
	}
	return out, nil
}

// CheckPublished checks that a checkpoint the log published verifies and
// describes a prefix of the durable tree, and returns its size.
func CheckPublished(raw []byte, origin string, v note.Verifier, durable Tree) (uint64, error) {
	cp, _, _, err := flog.ParseCheckpoint(raw, origin, v)
	if err != nil {
		return 0, fmt.Errorf("published checkpoint does not verify: %w\n%s", err, raw)
	}
	if cp.Size > durable.Size {
		return 0, fmt.Errorf("published checkpoint of size %d beyond the durable tree of size %d", cp.Size, durable.Size)
	}
	if !bytes.Equal(cp.Hash, durable.RootAt(cp.Size)) {
		return 0, fmt.Errorf("published checkpoint of size %d has root %x, the durable tree at that size %x", cp.Size, cp.Hash, durable.RootAt(cp.Size))
	}
	return cp.Size, nil
}
