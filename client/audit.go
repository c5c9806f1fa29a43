package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"
)

// AuditOptions configures Audit. The zero value audits the log against its
// key alone.
type AuditOptions struct {
	// Origin is the origin the checkpoint must name. If empty, the
	// verifier key's name.
	Origin string
	// HTTPClient fetches the tiles. If nil, a client with a one-minute
	// timeout.
	HTTPClient *http.Client
	// Previous, if not nil, is a raw checkpoint audited before (it must
	// verify with the same key). The audited tree must extend it: its
	// first Previous.Size entries must hash to Previous's root.
	Previous []byte
	// Progress, if not nil, is called after each entry bundle with the
	// entries audited so far and the tree size. It is called from Audit's
	// goroutine.
	Progress func(done, total uint64)
	// Concurrency is how many entry bundles (with their level-0 tiles) are
	// fetched ahead. If zero, 8.
	Concurrency int
}

// AuditSummary is what an Audit checked.
type AuditSummary struct {
	// Checkpoint is the audited checkpoint.
	Checkpoint *Checkpoint
	// Entries is the number of entries replayed (the tree size).
	Entries uint64
	// Bundles is the number of entry bundles read.
	Bundles int
	// Tiles is the number of hash tiles (all levels, full and partial)
	// recomputed and compared.
	Tiles int
	// Bytes is the number of response bytes read.
	Bytes int64
	// Duration is how long the audit took.
	Duration time.Duration
}

// Audit replays the whole log served under tilesURL (C2SP tlog-tiles): it
// fetches and verifies the checkpoint with verifierKey, fetches every entry
// bundle, recomputes every leaf hash and every hash tile of every level,
// full and partial, compares them byte for byte with the tiles the log
// serves, recomputes the root and compares it with the signed one. A
// difference is an *AuditError (wrapping ErrAuditMismatch) naming the tile
// or bundle; a tree that does not extend opts.Previous is an
// *InconsistencyError.
func Audit(ctx context.Context, tilesURL, verifierKey string, opts AuditOptions) (*AuditSummary, error) {
	start := time.Now()
	v, err := newLogVerifier(verifierKey)
	if err != nil {
		return nil, err
	}
	f, err := newTilesFetcher(tilesURL, opts.HTTPClient)
	if err != nil {
		return nil, err
	}
	raw, err := f.checkpoint(ctx)
	if err != nil {
		return nil, fmt.Errorf("audit: fetching checkpoint: %w", err)
	}
	cp, err := OpenCheckpoint(raw, v, opts.Origin)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	var prev *Checkpoint
	if opts.Previous != nil {
		if prev, err = OpenCheckpoint(opts.Previous, v, opts.Origin); err != nil {
			return nil, fmt.Errorf("audit: previous checkpoint: %w", err)
		}
		if prev.Size > cp.Size {
			return nil, &InconsistencyError{Older: prev.Raw, Newer: cp.Raw,
				Reason: fmt.Errorf("checkpoint of size %d after the audited one of size %d (rollback)", cp.Size, prev.Size)}
		}
	}
	a := &auditor{f: f, size: cp.Size, sum: &AuditSummary{Checkpoint: cp, Entries: cp.Size}, prev: prev}
	if prev != nil && prev.Size == 0 {
		a.prevRoot = rfc6962.DefaultHasher.EmptyRoot()
	}
	if err := a.run(ctx, opts); err != nil {
		return nil, err
	}
	if err := a.checkRoots(cp); err != nil {
		return nil, err
	}
	a.sum.Bytes = f.read.Load()
	a.sum.Duration = time.Since(start)
	return a.sum, nil
}

// auditor holds the state of one Audit; one goroutine owns it.
type auditor struct {
	f    *tilesFetcher
	size uint64 // the audited tree size
	sum  *AuditSummary
	prev *Checkpoint // the previously audited checkpoint, or nil

	rf       compact.RangeFactory
	tree     *compact.Range // over all leaf hashes so far
	prevRoot []byte         // the root recomputed at prev.Size
	// levels[L] holds the hashes of the tile at level L being filled, and
	// full[L] counts the full tiles of level L already compared.
	levels [][][]byte
	full   []uint64
}

// fetched is one entry bundle and its level-0 hash tile.
type fetched struct {
	bundle, tile         []byte
	bundleFull, tileFull bool // fell back to the full resource
	err                  error
}

// run replays the entry bundles in order, fetching opts.Concurrency ahead.
func (a *auditor) run(ctx context.Context, opts AuditOptions) error {
	a.rf = compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	a.tree = a.rf.NewEmptyRange(0)
	conc := opts.Concurrency
	if conc <= 0 {
		conc = 8
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	n := (a.size + layout.EntryBundleWidth - 1) / layout.EntryBundleWidth
	pending := make(chan chan fetched, conc)
	go func() {
		defer close(pending)
		for b := range n {
			ch := make(chan fetched, 1)
			select {
			case pending <- ch:
			case <-ctx.Done():
				return
			}
			go func() { ch <- a.fetch(ctx, b) }()
		}
	}()
	b := uint64(0)
	for ch := range pending {
		r := <-ch
		if r.err != nil {
			return fmt.Errorf("audit: %w", r.err)
		}
		if err := a.bundle(ctx, b, r); err != nil {
			return err
		}
		b++
		if opts.Progress != nil {
			opts.Progress(min(b*layout.EntryBundleWidth, a.size), a.size)
		}
	}
	if b != n {
		return fmt.Errorf("audit: %w", ctx.Err())
	}
	return a.finishLevels(ctx)
}

// fetch fetches entry bundle b and tile 0/b.
func (a *auditor) fetch(ctx context.Context, b uint64) fetched {
	w := layout.PartialTileSize(0, b, a.size)
	var r fetched
	r.bundle, r.bundleFull, r.err = a.f.partialOrFull(ctx, w, maxBundleSize, func(p uint8) string { return layout.EntriesPath(b, p) })
	if r.err != nil {
		return r
	}
	r.tile, r.tileFull, r.err = a.f.partialOrFull(ctx, w, maxTileSize, func(p uint8) string { return layout.TilePath(0, b, p) })
	return r
}

// bundle checks entry bundle b against its level-0 tile and feeds its leaf
// hashes into the tree and the tiles above.
func (a *auditor) bundle(ctx context.Context, b uint64, r fetched) error {
	w := int(layout.PartialTileSize(0, b, a.size))
	path := layout.EntriesPath(b, uint8(w))
	want := w
	if w == 0 || r.bundleFull {
		want = layout.EntryBundleWidth
	}
	var eb api.EntryBundle
	if err := eb.UnmarshalText(r.bundle); err != nil {
		return &AuditError{Path: path, Index: -1, Reason: err.Error()}
	}
	if len(eb.Entries) != want {
		return &AuditError{Path: path, Index: -1, Reason: fmt.Sprintf("%d entries, want %d", len(eb.Entries), want)}
	}
	if w == 0 {
		w = layout.EntryBundleWidth
	}
	leaves := make([][]byte, w)
	for i, e := range eb.Entries[:w] {
		leaves[i] = rfc6962.DefaultHasher.HashLeaf(e)
	}
	tpath := layout.TilePath(0, b, uint8(w%layout.TileWidth))
	if err := compareTile(tpath, r.tile, r.tileFull, leaves); err != nil {
		if err.Index >= 0 {
			err.Reason = fmt.Sprintf("leaf hash of entry %d (from %s): %s", b*layout.EntryBundleWidth+uint64(err.Index), path, err.Reason)
		}
		return err
	}
	a.sum.Bundles++
	a.sum.Tiles++
	for _, l := range leaves {
		if err := a.tree.Append(l, nil); err != nil {
			panic(err) // appending to a range starting at 0 cannot fail
		}
		if a.prev != nil && a.tree.End() == a.prev.Size {
			a.prevRoot = a.root()
		}
	}
	if w == layout.TileWidth {
		return a.push(ctx, 1, subtreeRoot(a.rf, leaves))
	}
	return nil
}

// push adds the root of a full tile of level L-1 to the tile of level L
// being filled; when that is full, it is compared with the log's and its
// own root pushed up.
func (a *auditor) push(ctx context.Context, level int, h []byte) error {
	for len(a.levels) <= level {
		a.levels = append(a.levels, nil)
		a.full = append(a.full, 0)
	}
	a.levels[level] = append(a.levels[level], h)
	if len(a.levels[level]) < layout.TileWidth {
		return nil
	}
	hashes := a.levels[level]
	if err := a.compareLogTile(ctx, uint64(level), a.full[level], hashes); err != nil {
		return err
	}
	a.levels[level] = nil
	a.full[level]++
	return a.push(ctx, level+1, subtreeRoot(a.rf, hashes))
}

// finishLevels compares the partial tiles of levels 1 and up.
func (a *auditor) finishLevels(ctx context.Context) error {
	for level := 1; level < len(a.levels); level++ {
		if hashes := a.levels[level]; len(hashes) > 0 {
			if err := a.compareLogTile(ctx, uint64(level), a.full[level], hashes); err != nil {
				return err
			}
		}
	}
	return nil
}

// compareLogTile fetches tile (level, index) of len(hashes) hashes and
// compares it with hashes.
func (a *auditor) compareLogTile(ctx context.Context, level, index uint64, hashes [][]byte) error {
	p := uint8(len(hashes) % layout.TileWidth)
	raw, full, err := a.f.partialOrFull(ctx, p, maxTileSize, func(p uint8) string { return layout.TilePath(level, index, p) })
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	a.sum.Tiles++
	if err := compareTile(layout.TilePath(level, index, p), raw, full, hashes); err != nil {
		return err
	}
	return nil
}

// checkRoots compares the recomputed root with the checkpoint's and, if
// there is a previous checkpoint, the root recomputed at its size with its.
func (a *auditor) checkRoots(cp *Checkpoint) error {
	root := a.root()
	if !bytes.Equal(root, cp.Hash) {
		return &AuditError{Path: layout.CheckpointPath, Index: -1,
			Reason: fmt.Sprintf("root recomputed from the %d entries is %x, the checkpoint signs %x", cp.Size, root, cp.Hash)}
	}
	if a.prev != nil && !bytes.Equal(a.prevRoot, a.prev.Hash) {
		return &InconsistencyError{Older: a.prev.Raw, Newer: cp.Raw, Reason: fmt.Errorf(
			"the first %d entries of the tree of size %d hash to %x, the previously audited checkpoint signs %x",
			a.prev.Size, cp.Size, a.prevRoot, a.prev.Hash)}
	}
	return nil
}

// root returns the root of the leaves appended so far.
func (a *auditor) root() []byte {
	if a.tree.End() == 0 {
		return rfc6962.DefaultHasher.EmptyRoot()
	}
	r, err := a.tree.GetRootHash(nil)
	if err != nil {
		panic(err) // a range starting at 0 always has a root
	}
	return r
}

// subtreeRoot returns the root of the perfect subtree whose level-0 nodes
// are hashes (a power of two of them).
func subtreeRoot(rf compact.RangeFactory, hashes [][]byte) []byte {
	r := rf.NewEmptyRange(0)
	for _, h := range hashes {
		if err := r.Append(h, nil); err != nil {
			panic(err)
		}
	}
	root, err := r.GetRootHash(nil)
	if err != nil {
		panic(err)
	}
	return root
}

// compareTile compares the served tile raw (a full tile if full, though
// len(want) hashes were asked for) with the recomputed hashes want.
func compareTile(path string, raw []byte, full bool, want [][]byte) *AuditError {
	n := len(want)
	if full {
		n = layout.TileWidth
	}
	if len(raw) != n*sha256.Size {
		return &AuditError{Path: path, Index: -1, Reason: fmt.Sprintf("%d bytes, want %d hashes of %d bytes", len(raw), n, sha256.Size)}
	}
	for i, h := range want {
		if got := raw[i*sha256.Size : (i+1)*sha256.Size]; !bytes.Equal(got, h) {
			return &AuditError{Path: path, Index: i, Reason: fmt.Sprintf("tile has %x, recomputed %x", got, h)}
		}
	}
	return nil
}
