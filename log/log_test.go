package log

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/provlog/provlog/storage"
	flog "github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const testOrigin = "example.com/test-log"

var quiet = slog.New(slog.DiscardHandler)

// testEnv is a log over a store on an in-memory filesystem that survives
// reopening.
type testEnv struct {
	t        *testing.T
	fs       vfs.FS // nil for the OS filesystem, in dir
	dir      string
	signer   note.Signer
	verifier note.Verifier
	vkey     string // the verifier key, as DATA/log.pub holds it
	store    *storage.Store
	faults   *faultyStore
	log      *Log
}

func newEnv(t *testing.T) *testEnv {
	t.Helper()
	return newEnvOn(t, vfs.NewMem())
}

// newDiskEnv is newEnv with the store in a directory of the OS
// filesystem, whose bundle files the log sends from (OpenBundle).
func newDiskEnv(t *testing.T) *testEnv {
	t.Helper()
	return newEnvOn(t, nil)
}

func newEnvOn(t *testing.T, fs vfs.FS) *testEnv {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	e := &testEnv{t: t, fs: fs, vkey: vkey}
	if fs == nil {
		e.dir = t.TempDir()
	}
	if e.signer, err = note.NewSigner(skey); err != nil {
		t.Fatal(err)
	}
	if e.verifier, err = note.NewVerifier(vkey); err != nil {
		t.Fatal(err)
	}
	e.open(Config{})
	t.Cleanup(e.close)
	return e
}

// open opens the store and the log with cfg (Origin and Signer filled in).
func (e *testEnv) open(cfg Config) {
	e.t.Helper()
	dir := "db"
	if e.fs == nil { // the OS filesystem (newDiskEnv)
		dir = e.dir
	}
	st, err := storage.Open(dir, storage.Options{FS: e.fs, Logger: quiet})
	if err != nil {
		e.t.Fatal(err)
	}
	e.store, e.faults = st, &faultyStore{Store: st}
	cfg.Origin, cfg.Signer, cfg.Logger = testOrigin, e.signer, quiet
	if e.log, err = Open(context.Background(), cfg, e.faults); err != nil {
		e.t.Fatal(err)
	}
}

func (e *testEnv) close() {
	if e.faults != nil {
		e.faults.unblockCommits()
	}
	if e.log != nil {
		e.log.Close()
		e.store.Close()
		e.log = nil
	}
}

func (e *testEnv) reopen(cfg Config) {
	e.t.Helper()
	e.close()
	e.open(cfg)
}

func testEntry(i int) []byte {
	return fmt.Appendf(nil, "entry %d %x", i, bytes.Repeat([]byte{byte(i)}, i%97))
}

// checkpoint parses and verifies the published checkpoint.
func (e *testEnv) checkpoint() *flog.Checkpoint {
	e.t.Helper()
	cp, _, _, err := flog.ParseCheckpoint(e.log.Checkpoint().Note, testOrigin, e.verifier)
	if err != nil {
		e.t.Fatalf("published checkpoint does not verify: %v", err)
	}
	return cp
}

// verifyTree re-verifies the whole stored tree with sumdb/tlog: every entry
// hashed, every tile recomputed, the root equal to the signed checkpoint's.
// It returns the entries.
func (e *testEnv) verifyTree() [][]byte {
	e.t.Helper()
	cp := e.checkpoint()
	var entries [][]byte
	var stored []tlog.Hash
	read := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = stored[x]
		}
		return out, nil
	})
	err := e.store.Entries(0, cp.Size, func(i uint64, entry []byte) error {
		hs, err := tlog.StoredHashes(int64(i), entry, read)
		stored = append(stored, hs...)
		entries = append(entries, bytes.Clone(entry))
		return err
	})
	if err != nil {
		e.t.Fatalf("reading entries: %v", err)
	}
	root, err := tlog.TreeHash(int64(cp.Size), read)
	if err != nil {
		e.t.Fatal(err)
	}
	if cp.Size > 0 && !bytes.Equal(root[:], cp.Hash) {
		e.t.Fatalf("root of stored entries %x != checkpoint root %x at size %d", root, cp.Hash, cp.Size)
	}
	for _, tile := range tlog.NewTiles(8, 0, int64(cp.Size)) {
		want, err := tlog.ReadTileData(tile, read)
		if err != nil {
			e.t.Fatal(err)
		}
		got, err := e.log.Tile(context.Background(), uint64(tile.L), uint64(tile.N), partial(tile.W))
		if err != nil || !bytes.Equal(got, want) {
			e.t.Fatalf("tile %s: %v, differs from sumdb/tlog's", tile.Path(), err)
		}
	}
	return entries
}

func partial(w int) uint8 {
	if w == 256 {
		return 0
	}
	return uint8(w)
}

func TestAddConcurrentVerify(t *testing.T) {
	e := newEnv(t)
	const writers, each = 8, 400
	var mu sync.Mutex
	got := map[uint64][]byte{}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				n := w*each + i
				var res []AddResult
				var err error
				if i%3 == 0 {
					res, err = e.log.AddBatch(context.Background(), [][]byte{testEntry(n)})
				} else {
					var r AddResult
					r, err = e.log.Add(context.Background(), testEntry(n))
					res = []AddResult{r}
				}
				if err != nil {
					t.Errorf("Add(%d): %v", n, err)
					return
				}
				mu.Lock()
				got[res[0].Index] = testEntry(n)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(got) != writers*each {
		t.Fatalf("%d distinct indices, want %d", len(got), writers*each)
	}
	entries := e.verifyTree()
	if len(entries) != writers*each {
		t.Fatalf("tree size %d, want %d", len(entries), writers*each)
	}
	for i, entry := range entries {
		if !bytes.Equal(got[uint64(i)], entry) {
			t.Fatalf("index %d holds %q, acknowledged %q", i, entry, got[uint64(i)])
		}
	}
	// Inclusion proofs verify with transparency-dev/merkle/proof.
	cp := e.checkpoint()
	for _, i := range []uint64{0, 1, 255, 256, 1000, cp.Size - 1} {
		p, err := e.log.InclusionProof(context.Background(), i, cp.Size)
		if err != nil {
			t.Fatal(err)
		}
		leaf := rfc6962.DefaultHasher.HashLeaf(entries[i])
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, i, cp.Size, leaf, p, cp.Hash); err != nil {
			t.Errorf("inclusion proof for %d: %v", i, err)
		}
		if idx, err := e.log.IndexOf(context.Background(), leaf); err != nil || idx != i {
			t.Errorf("IndexOf(leaf %d) = %d, %v", i, idx, err)
		}
	}
}

func TestDedup(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	first, err := e.log.Add(ctx, []byte("a"))
	if err != nil || first.Duplicate {
		t.Fatalf("Add(a) = %+v, %v", first, err)
	}
	res, err := e.log.AddBatch(ctx, [][]byte{[]byte("b"), []byte("a"), []byte("b"), []byte("c")})
	if err != nil {
		t.Fatal(err)
	}
	want := []AddResult{{1, false}, {0, true}, {1, true}, {2, false}}
	for i := range want {
		if res[i] != want[i] {
			t.Errorf("AddBatch result %d = %+v, want %+v", i, res[i], want[i])
		}
	}
	e.reopen(Config{})
	again, err := e.log.Add(ctx, []byte("c"))
	if err != nil || again != (AddResult{2, true}) {
		t.Errorf("Add(c) after reopen = %+v, %v; want index 2, duplicate", again, err)
	}
	if s := e.log.Checkpoint().Size; s != 3 {
		t.Errorf("size %d, want 3", s)
	}
}

func TestRejectionsWriteNothing(t *testing.T) {
	e := newEnv(t)
	e.reopen(Config{MaxEntrySize: 10})
	ctx := context.Background()
	if _, err := e.log.Add(ctx, []byte("ok")); err != nil {
		t.Fatal(err)
	}
	before := e.log.Checkpoint()
	for name, batch := range map[string][][]byte{
		"empty":          {{}},
		"too large":      {bytes.Repeat([]byte("x"), 11)},
		"no entries":     {},
		"one bad in two": {[]byte("fine"), {}},
	} {
		if _, err := e.log.AddBatch(ctx, batch); !errors.Is(err, ErrInvalidEntry) {
			t.Errorf("%s: %v, want ErrInvalidEntry", name, err)
		}
	}
	if _, err := e.log.InclusionProof(ctx, 1, 1); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("InclusionProof(1, 1): %v, want ErrOutOfRange", err)
	}
	if _, err := e.log.InclusionProof(ctx, 0, 2); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("InclusionProof beyond the tree: %v, want ErrOutOfRange", err)
	}
	if _, err := e.log.ConsistencyProof(ctx, 1, 0); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("ConsistencyProof(1, 0): %v, want ErrOutOfRange", err)
	}
	if _, err := e.log.Tile(ctx, 0, 0, 2); !errors.Is(err, ErrNotFound) {
		t.Errorf("tile wider than the tree: %v, want ErrNotFound", err)
	}
	if _, err := e.log.EntryBundle(ctx, 0, 0); !errors.Is(err, ErrNotFound) {
		t.Errorf("full bundle of a 1-entry tree: %v, want ErrNotFound", err)
	}
	if err := e.log.Entries(ctx, 0, 2, func(uint64, []byte) error { return nil }); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("Entries beyond the tree: %v, want ErrOutOfRange", err)
	}
	if after := e.log.Checkpoint(); !bytes.Equal(after.Note, before.Note) {
		t.Errorf("checkpoint changed after rejections")
	}
	if n := len(e.verifyTree()); n != 1 {
		t.Errorf("%d entries stored, want 1", n)
	}
}

func TestRestartResumes(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, n := range []int{1, 255, 1, 300, 65} {
		base := int(e.log.Checkpoint().Size)
		old := e.checkpoint()
		batch := make([][]byte, n)
		for i := range batch {
			batch[i] = testEntry(base + i)
		}
		if _, err := e.log.AddBatch(ctx, batch); err != nil {
			t.Fatal(err)
		}
		e.reopen(Config{})
		cp := e.checkpoint()
		if cp.Size != uint64(base+n) {
			t.Fatalf("size after reopen %d, want %d", cp.Size, base+n)
		}
		p, err := e.log.ConsistencyProof(ctx, old.Size, cp.Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, old.Size, cp.Size, p, old.Hash, cp.Hash); err != nil && old.Size > 0 {
			t.Fatalf("checkpoints %d and %d inconsistent: %v", old.Size, cp.Size, err)
		}
	}
	e.verifyTree()
}

func TestReopenWithOtherKeyFails(t *testing.T) {
	e := newEnv(t)
	if _, err := e.log.Add(context.Background(), []byte("x")); err != nil {
		t.Fatal(err)
	}
	e.close()
	st, err := storage.Open("db", storage.Options{FS: e.fs})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	skey, _, _ := note.GenerateKey(rand.Reader, testOrigin)
	other, _ := note.NewSigner(skey)
	if _, err := Open(context.Background(), Config{Origin: testOrigin, Signer: other}, st); err == nil {
		t.Fatal("Open with another key succeeded")
	}
}

func TestPushback(t *testing.T) {
	e := newEnv(t)
	e.reopen(Config{QueueMaxEntries: 4, BatchMaxEntries: 1, BatchMaxAge: -1})
	e.faults.blockCommits()
	ctx := context.Background()
	// The sequencer pipelines rounds: with the first round blocked in
	// Commit, it prepares a second (waiting in the committer's channel) and
	// a third (waiting to be handed over), and only then stops taking
	// requests from the queue. So three adds leave the queue before four
	// more fill it; wait for each stage rather than assume a timing.
	var pending []*Pending
	submit := func(i int) {
		t.Helper()
		p, err := e.log.Submit(ctx, [][]byte{testEntry(i)})
		if err != nil {
			t.Fatalf("Submit(%d): %v", i, err)
		}
		pending = append(pending, p)
	}
	submit(0)
	e.faults.waitBlocked(t)
	for i := 1; i <= maxPendingRounds; i++ {
		submit(i)
		waitFor(t, "the sequencer to take the add", func() bool { return e.log.queuedN.Load() == 0 })
	}
	for i := range 4 {
		submit(maxPendingRounds + 1 + i)
	}
	if _, err := e.log.Submit(ctx, [][]byte{testEntry(99)}); !errors.Is(err, ErrPushback) {
		t.Fatalf("Submit over the queue bound: %v, want ErrPushback", err)
	}
	e.faults.unblockCommits()
	waitCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for i, p := range pending {
		res, err := p.Wait(waitCtx)
		if err != nil || res[0].Index != uint64(i) {
			t.Errorf("pending %d: %+v, %v", i, res, err)
		}
	}
	// Room again once the rounds are committed.
	if _, err := e.log.Add(waitCtx, testEntry(99)); err != nil {
		t.Errorf("Add after the queue drained: %v", err)
	}
}

func TestCloseDrains(t *testing.T) {
	e := newEnv(t)
	e.reopen(Config{BatchMaxEntries: 16})
	var wg sync.WaitGroup
	acked := make(chan AddResult, 2000)
	for w := range 8 {
		wg.Go(func() {
			for i := range 250 {
				res, err := e.log.Add(context.Background(), testEntry(w*250+i))
				if err != nil {
					if !errors.Is(err, ErrUnavailable) {
						t.Errorf("Add during close: %v, want ErrUnavailable", err)
					}
					return
				}
				acked <- res
			}
		})
	}
	time.Sleep(5 * time.Millisecond)
	if err := e.log.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(acked)
	e.store.Close()
	e.log = nil
	e.open(Config{})
	size := e.log.Checkpoint().Size
	n := 0
	for res := range acked {
		n++
		if res.Index >= size {
			t.Errorf("acknowledged index %d lost: size after restart %d", res.Index, size)
		}
	}
	if uint64(n) != size {
		t.Errorf("%d acknowledged, %d stored", n, size)
	}
	e.verifyTree()
}

// faultyStore injects faults into a real store.
type faultyStore struct {
	*storage.Store
	mu         sync.Mutex
	failLookup bool
	commit     commitFault
	block      chan struct{} // if set, Commit waits for it to close (blockCommits)
	blocked    chan struct{} // closed once a Commit waits on block
	unblock    func()        // closes block, once
	putBundles int           // PutBundle calls
	failPut    bool          // PutBundle fails
}

func (f *faultyStore) PutBundle(index uint64, data []byte) error {
	f.mu.Lock()
	f.putBundles++
	fail := f.failPut
	f.mu.Unlock()
	if fail {
		return errInjected
	}
	return f.Store.PutBundle(index, data)
}

func (f *faultyStore) puts() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.putBundles
}

type commitFault int

const (
	commitOK commitFault = iota
	commitFailNotPersisted
	commitFailPersisted
)

var errInjected = errors.New("injected fault")

func (f *faultyStore) LookupLeaves(h [][]byte, idx []uint64, found []bool) error {
	f.mu.Lock()
	fail := f.failLookup
	f.mu.Unlock()
	if fail {
		return errInjected
	}
	return f.Store.LookupLeaves(h, idx, found)
}

func (f *faultyStore) Commit(r *storage.Round) error {
	f.mu.Lock()
	mode, block := f.commit, f.block
	if block != nil && f.blocked == nil {
		f.blocked = make(chan struct{})
		close(f.blocked)
	}
	f.mu.Unlock()
	if block != nil {
		<-block
	}
	switch mode {
	case commitFailNotPersisted:
		return errInjected
	case commitFailPersisted:
		if err := f.Store.Commit(r); err != nil {
			return err
		}
		return errInjected
	}
	return f.Store.Commit(r)
}

// blockCommits makes Commit wait until unblockCommits, which the test
// environment also calls on cleanup, so a failing test never leaves the
// committer blocked and the package hung.
func (f *faultyStore) blockCommits() {
	f.mu.Lock()
	defer f.mu.Unlock()
	block := make(chan struct{})
	f.block, f.blocked, f.unblock = block, nil, sync.OnceFunc(func() { close(block) })
}

// unblockCommits releases the commits blockCommits holds; it may be called
// more than once.
func (f *faultyStore) unblockCommits() {
	f.mu.Lock()
	unblock := f.unblock
	f.mu.Unlock()
	if unblock != nil {
		unblock()
	}
}

// waitBlocked waits until a Commit is held by blockCommits.
func (f *faultyStore) waitBlocked(t *testing.T) {
	t.Helper()
	waitFor(t, "the sequencer to reach Commit", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.blocked != nil
	})
}

func TestStorageFaults(t *testing.T) {
	for _, tc := range []struct {
		name       string
		lookup     bool
		commit     commitFault
		fatal      bool // the sequencer stops
		persistent bool // the failed round is in the store after reopen
	}{
		{name: "lookup fails", lookup: true},
		{name: "commit fails, not persisted", commit: commitFailNotPersisted, fatal: true},
		{name: "commit fails but persisted", commit: commitFailPersisted, fatal: true, persistent: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			for i := range 300 {
				if _, err := e.log.Add(ctx, testEntry(i)); err != nil {
					t.Fatal(err)
				}
			}
			before := e.checkpoint()
			e.faults.mu.Lock()
			e.faults.failLookup, e.faults.commit = tc.lookup, tc.commit
			e.faults.mu.Unlock()

			_, err := e.log.AddBatch(ctx, [][]byte{testEntry(1000), testEntry(1001)})
			if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("add during fault: %v, want ErrUnavailable", err)
			}
			if cp := e.checkpoint(); cp.Size != before.Size {
				t.Fatalf("checkpoint moved to %d after a failed round", cp.Size)
			}
			// The failed round leaves the committer's count of pending
			// rounds, which group commit relies on, as it found it.
			for deadline := time.Now().Add(5 * time.Second); e.log.pendingRounds.Load() != 0; {
				if time.Now().After(deadline) {
					t.Fatalf("%d rounds still pending after the failed round was answered", e.log.pendingRounds.Load())
				}
				time.Sleep(time.Millisecond)
			}
			e.verifyTree()
			e.faults.mu.Lock()
			e.faults.failLookup, e.faults.commit = false, commitOK
			e.faults.mu.Unlock()
			_, err = e.log.Add(ctx, testEntry(2000))
			if tc.fatal != (err != nil) || (err != nil && !errors.Is(err, ErrUnavailable)) {
				t.Fatalf("add after fault cleared: %v (sequencer should stop: %v)", err, tc.fatal)
			}
			if tc.fatal != (e.log.Healthy() != nil) {
				t.Errorf("Healthy() = %v, fatal %v", e.log.Healthy(), tc.fatal)
			}
			e.reopen(Config{})
			entries := e.verifyTree()
			want := before.Size
			switch {
			case tc.persistent:
				want += 2
			case !tc.fatal:
				want++ // entry 2000 went in
			}
			if uint64(len(entries)) != want {
				t.Fatalf("%d entries after reopen, want %d", len(entries), want)
			}
			after := e.checkpoint()
			p, err := e.log.ConsistencyProof(ctx, before.Size, after.Size)
			if err != nil {
				t.Fatal(err)
			}
			if err := proof.VerifyConsistency(rfc6962.DefaultHasher, before.Size, after.Size, p, before.Hash, after.Hash); err != nil {
				t.Fatalf("checkpoint before the fault inconsistent with the one after: %v", err)
			}
			// The reopened log accepts writes, and a retry of the failed
			// batch is answered (as duplicates when the round persisted).
			res, err := e.log.AddBatch(ctx, [][]byte{testEntry(1000), testEntry(1001)})
			if err != nil || res[0].Duplicate != tc.persistent {
				t.Fatalf("retry after reopen: %+v, %v", res, err)
			}
			e.verifyTree()
		})
	}
}

// countingStore counts the reads Open makes.
type countingStore struct {
	*storage.Store
	tiles, entries, lookups int
}

func (c *countingStore) Tile(level, index uint64) ([]byte, error) {
	c.tiles++
	return c.Store.Tile(level, index)
}

func (c *countingStore) Entries(start, count uint64, fn func(uint64, []byte) error) error {
	c.entries++
	return c.Store.Entries(start, count, fn)
}

func (c *countingStore) LookupLeaves(h [][]byte, idx []uint64, found []bool) error {
	c.lookups++
	return c.Store.LookupLeaves(h, idx, found)
}

// TestOpenDoesNotReplay checks that reopening reads the tree state and at
// most one partial tile per level, never the entries: its cost does not
// grow with the log.
func TestOpenDoesNotReplay(t *testing.T) {
	e := newEnv(t)
	batch := make([][]byte, 70000)
	for i := range batch {
		batch[i] = testEntry(i)
	}
	for i := 0; i < len(batch); i += 4096 {
		if _, err := e.log.AddBatch(context.Background(), batch[i:min(i+4096, len(batch))]); err != nil {
			t.Fatal(err)
		}
	}
	e.close()
	st, err := storage.Open("db", storage.Options{FS: e.fs, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c := &countingStore{Store: st}
	l, err := Open(context.Background(), Config{Origin: testOrigin, Signer: e.signer, Logger: quiet}, c)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// 70000 entries: partial tiles at levels 0 (width 112), 1 (17), 2 (1).
	if c.entries != 0 || c.lookups != 0 || c.tiles != 3 {
		t.Errorf("Open read %d entry ranges, %d leaf lookups, %d tiles; want 0, 0, 3", c.entries, c.lookups, c.tiles)
	}
	if got := l.Checkpoint().Size; got != 70000 {
		t.Errorf("size %d after reopen, want 70000", got)
	}
}

// TestProofsAtOlderSizes asks for proofs in trees of every size the log
// went through, newest first and then oldest first, so that cached partial
// tiles wider than a proof's tree serve it: each proof verifies with
// transparency-dev/merkle/proof against the checkpoint of its size.
func TestProofsAtOlderSizes(t *testing.T) {
	e := newEnv(t)
	var cps []*flog.Checkpoint
	var leaves [][]byte
	n := 0
	for _, size := range []int{1, 5, 255, 256, 257, 300, 511, 512, 600, 65536 + 300} {
		var batch [][]byte
		for ; n < size; n++ {
			batch = append(batch, testEntry(n))
			leaves = append(leaves, rfc6962.DefaultHasher.HashLeaf(testEntry(n)))
		}
		if _, err := e.log.AddBatch(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
		cps = append(cps, e.checkpoint())
	}
	check := func(cp *flog.Checkpoint) {
		t.Helper()
		for _, i := range []uint64{0, cp.Size / 2, cp.Size - 1} {
			p, err := e.log.InclusionProof(context.Background(), i, cp.Size)
			if err != nil {
				t.Fatal(err)
			}
			if err := proof.VerifyInclusion(rfc6962.DefaultHasher, i, cp.Size, leaves[i], p, cp.Hash); err != nil {
				t.Fatalf("inclusion proof for %d in %d: %v", i, cp.Size, err)
			}
		}
		for _, old := range cps {
			if old.Size > cp.Size {
				continue
			}
			p, err := e.log.ConsistencyProof(context.Background(), old.Size, cp.Size)
			if err != nil {
				t.Fatal(err)
			}
			if err := proof.VerifyConsistency(rfc6962.DefaultHasher, old.Size, cp.Size, p, old.Hash, cp.Hash); err != nil {
				t.Fatalf("consistency proof %d to %d: %v", old.Size, cp.Size, err)
			}
		}
	}
	for i := len(cps) - 1; i >= 0; i-- {
		check(cps[i])
	}
	for _, cp := range cps {
		check(cp)
	}
}
