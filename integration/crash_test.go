package integration

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	pb "github.com/provlog/provlog/proto/provlog/v1"
	"github.com/transparency-dev/merkle/proof"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var (
	crashRounds = flag.Int("crash.rounds", 20, "rounds of TestCrashUnderLoad: load, SIGKILL, restart, verify")
	crashSeed   = flag.Uint64("crash.seed", 0, "seed of TestCrashUnderLoad (0: time-based)")
)

const (
	// crashOrigin is the origin of the log TestCrashUnderLoad creates.
	crashOrigin = "example.com/provlog-crash"
	// crashWriters is the number of concurrent gRPC writers.
	crashWriters = 4
	// crashMaxDelay bounds the random time from the start of the load to
	// the SIGKILL.
	crashMaxDelay = 400 * time.Millisecond
	// crashFullCheckSize: up to this tree size every round re-reads and
	// re-hashes the whole log; beyond it, rounds other than every 25th and
	// the last re-read from the last bundle verified before.
	crashFullCheckSize = 100_000
)

// TestCrashUnderLoad loads provlogd with concurrent gRPC writers (Append
// and AppendBatch of distinct entries, with some resubmissions of
// acknowledged ones), kills it with SIGKILL after a random delay, restarts
// it on the same data directory, and verifies after each round, with code
// independent of provlog's packages:
//
//   - every acknowledged (index, entry) is in the entry bundles, identical;
//   - indices are contiguous from 0 and each entry is at exactly one index
//     (an entry sent but never acknowledged may be absent or present, but
//     at one index only), and nothing is logged that was never sent;
//   - the root recomputed with sumdb/tlog from all entries equals the root
//     of the checkpoint, which verifies with sumdb/note and DATA/log.pub,
//     and the hash tiles equal sumdb/tlog's;
//   - every checkpoint seen before a kill has the root of the recovered tree
//     at its size, and a gRPC consistency proof from the last one seen to
//     the recovered one verifies with transparency-dev/merkle;
//   - resubmitting acknowledged entries returns their index with duplicate
//     set, and resubmitting unacknowledged absent ones appends them anew;
//   - the published checkpoint never goes backwards across a kill: each
//     restart picks at random a plain log or one with a witness policy
//     whose only witness always fails and --witness-fail-open (so a log
//     gains and loses its policy, and fail-open checkpoints are published
//     while it is killed), and the first checkpoint served after a restart
//     is at least as large as every one seen before the kill.
//
// -crash.rounds sets the number of rounds, -crash.seed replays a run.
func TestCrashUnderLoad(t *testing.T) {
	seed := *crashSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	rounds := *crashRounds
	t.Logf("seed %d (replay with -crash.seed=%d), %d rounds", seed, seed, rounds)
	rng := rand.New(rand.NewPCG(seed, 0x637261736821))
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(rounds+10)*time.Minute)
	defer cancel()
	began := time.Now()

	dataDir := t.TempDir()
	d := mustStartProvlogd(t, dataDir, "--origin", crashOrigin)
	v, _, err := loadVerifier(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if v.Name() != crashOrigin {
		t.Fatalf("log.pub names %q, want %q", v.Name(), crashOrigin)
	}
	m := newCrashModel(seed)
	var cl crashLog
	cl.verify(ctx, t, d, v, m, rng, true, true)
	failOpen := failOpenArgs(t)
	witnessed := 0

	for r := range rounds {
		delay := time.Duration(rng.Int64N(int64(crashMaxDelay)))
		acked0 := m.ackedCount()
		cl.load(ctx, t, d, v, m, r, delay)
		var args []string
		if rng.IntN(2) == 0 {
			args = failOpen
			witnessed++
		}
		d, err = startProvlogd(t, dataDir, args...)
		if err != nil {
			t.Fatalf("round %d: restart after SIGKILL: %v", r, err)
		}
		cl.checkPublishedAfterKill(ctx, t, d, v, m, r)
		full := cl.size <= crashFullCheckSize || r%25 == 24 || r == rounds-1
		cl.verify(ctx, t, d, v, m, rng, full, true)
		if t.Failed() {
			t.FailNow()
		}
		if testing.Verbose() {
			t.Logf("%6.2fs: round %d: killed after %v; %d more entries with a known index; tree size %d after restart",
				time.Since(began).Seconds(), r, delay.Round(time.Millisecond), m.ackedCount()-acked0, cl.size)
		}
	}
	// Last, a clean stop and start: the whole log verifies once more.
	d.mustStop(t)
	d = mustStartProvlogd(t, dataDir)
	cl.verify(ctx, t, d, v, m, rng, true, false)
	d.mustStop(t)
	acked := 0
	for _, rec := range m.recs {
		if rec.acked {
			acked++
		}
	}
	t.Logf("%d rounds (%d restarted witnessed, fail-open) in %.1fs: %d entries acknowledged, %d lost; %d sent but unacknowledged when killed, of which %d were logged; %d checkpoints seen; final tree size %d",
		rounds, witnessed, time.Since(began).Seconds(), acked, cl.lost, m.unacked, cl.recovered, len(cl.seen), cl.size)
	if uint64(acked+cl.recovered) != cl.size {
		t.Errorf("%d entries acknowledged and %d found logged, but the tree has %d", acked, cl.recovered, cl.size)
	}
	if cl.lost != 0 {
		t.Fatalf("%d acknowledged entries lost", cl.lost)
	}
}

// failOpenArgs returns provlogd flags for a witnessed log whose only
// witness refuses every checkpoint, published fail-open.
func failOpenArgs(t *testing.T) []string {
	t.Helper()
	dead := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "witness unavailable", http.StatusServiceUnavailable)
	}))
	t.Cleanup(dead.Close)
	_, vkey, err := note.GenerateKey(crand.Reader, "example.com/dead-witness")
	if err != nil {
		t.Fatal(err)
	}
	policy := filepath.Join(t.TempDir(), "witness-policy")
	text := fmt.Sprintf("witness dead %s %s\nquorum dead\n", vkey, dead.URL)
	if err := os.WriteFile(policy, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return []string{"--witness-policy", policy, "--witness-fail-open", "--witness-interval", "20ms"}
}

// checkPublishedAfterKill checks the first checkpoint d publishes after a
// restart against every checkpoint seen before the kill: the published
// tree never shrinks. A witnessed log publishes its latest checkpoint a
// little after it starts; this then waits until the published tree holds
// every acknowledged entry (acknowledged means durable, not published,
// when a log is witnessed), so that verify sees them all.
func (cl *crashLog) checkPublishedAfterKill(ctx context.Context, t *testing.T, d *provlogd, v note.Verifier, m *crashModel, r int) {
	t.Helper()
	cp, err := fetchCheckpoint(ctx, d.HTTPURL, v)
	if err != nil {
		t.Fatalf("round %d: checkpoint after restart: %v", r, err)
	}
	cl.mu.Lock()
	var largest uint64
	for size := range cl.seen {
		largest = max(largest, size)
	}
	cl.mu.Unlock()
	if cp.Size < largest {
		t.Fatalf("round %d: published size %d after restart, %d seen before the kill: the published checkpoint went backwards", r, cp.Size, largest)
	}
	m.mu.Lock()
	var need uint64
	for idx := range m.byIndex {
		need = max(need, idx+1)
	}
	m.mu.Unlock()
	for deadline := time.Now().Add(time.Minute); cp.Size < need; {
		if time.Now().After(deadline) {
			t.Fatalf("round %d: published size %d a minute after restart, acknowledged entries up to index %d", r, cp.Size, need-1)
		}
		time.Sleep(10 * time.Millisecond)
		if cp, err = fetchCheckpoint(ctx, d.HTTPURL, v); err != nil {
			t.Fatalf("round %d: checkpoint after restart: %v", r, err)
		}
	}
}

// crashModel is what the writers sent and what was acknowledged.
type crashModel struct {
	seed uint64

	mu      sync.Mutex
	recs    map[string]*crashRec // by entry
	byIndex map[uint64]string    // index → entry, for every entry whose index is known
	acked   []string             // entries with a known index, in order of learning it
	pending []string             // entries sent whose index is unknown, in order sent
	unacked int                  // entries sent in a round and not acknowledged when it was killed
}

// crashRec is one entry sent.
type crashRec struct {
	index int64 // -1 until acknowledged or found in the log
	acked bool  // an append answered with index (rather than found in the log)
}

func newCrashModel(seed uint64) *crashModel {
	return &crashModel{seed: seed, recs: map[string]*crashRec{}, byIndex: map[uint64]string{}}
}

// newEntry returns writer w's entry n of round r: distinct, 40 to ~250 bytes.
func (m *crashModel) newEntry(r, w, n int) []byte {
	g := rand.New(rand.NewPCG(m.seed, uint64(r)<<40|uint64(w)<<32|uint64(n)))
	b := fmt.Appendf(nil, "crash round %d writer %d entry %d;", r, w, n)
	for range g.IntN(200) {
		b = append(b, byte(g.Uint32()))
	}
	return b
}

// send records that entries are about to be sent.
func (m *crashModel) send(entries [][]byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range entries {
		if _, ok := m.recs[string(e)]; !ok {
			m.recs[string(e)] = &crashRec{index: -1}
			m.pending = append(m.pending, string(e))
		}
	}
}

// ack records results of an append of entries. An entry whose index is
// known must get it back as a duplicate; fresh says the entries were never
// sent before, so none may be a duplicate; no index may go to two entries.
func (m *crashModel) ack(entries [][]byte, res []*pb.AppendResponse, fresh bool) error {
	if len(res) != len(entries) {
		return fmt.Errorf("%d results for %d entries", len(res), len(entries))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, e := range entries {
		rec, r := m.recs[string(e)], res[i]
		switch {
		case rec.index >= 0 && (uint64(rec.index) != r.Index || !r.Duplicate):
			return fmt.Errorf("entry %.40q known at index %d acknowledged as (index %d, duplicate %t)", e, rec.index, r.Index, r.Duplicate)
		case rec.index >= 0:
			continue
		case r.Duplicate && fresh:
			return fmt.Errorf("entry %.40q, sent for the first time, acknowledged as a duplicate of index %d", e, r.Index)
		}
		if err := m.learn(string(e), r.Index); err != nil {
			return err
		}
		rec.acked = true
	}
	return nil
}

// learn records the index of entry e; m.mu is held.
func (m *crashModel) learn(e string, index uint64) error {
	if other, ok := m.byIndex[index]; ok && other != e {
		return fmt.Errorf("index %d given to entry %.40q and to entry %.40q", index, other, e)
	}
	m.recs[e].index = int64(index)
	m.byIndex[index] = e
	m.acked = append(m.acked, e)
	return nil
}

func (m *crashModel) ackedCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.acked)
}

// pick returns up to n distinct known-index entries chosen with rng.
func (m *crashModel) pick(rng *rand.Rand, n int) [][]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out [][]byte
	for _, i := range rng.Perm(len(m.acked))[:min(n, len(m.acked))] {
		out = append(out, []byte(m.acked[i]))
	}
	return out
}

// crashLog is the log as verified so far.
type crashLog struct {
	size      uint64
	entries   [][]byte
	hashes    hashStore
	cp        checkpoint        // the checkpoint verified last
	preKill   checkpoint        // the last checkpoint seen before the last kill
	seen      map[uint64][]byte // size → root of every checkpoint seen
	lost      int               // acknowledged entries missing or moved
	recovered int               // unacknowledged entries found logged
	mu        sync.Mutex        // guards seen while a load runs
}

// see records a verified checkpoint; the same size must always have the
// same root.
func (cl *crashLog) see(cp checkpoint) error {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.seen == nil {
		cl.seen = map[uint64][]byte{}
	}
	if root, ok := cl.seen[cp.Size]; ok && !bytes.Equal(root, cp.Root) {
		return fmt.Errorf("two checkpoints of size %d with roots %x and %x", cp.Size, root, cp.Root)
	}
	cl.seen[cp.Size] = cp.Root
	return nil
}

// load runs round r: crashWriters writers append to d until it is killed
// with SIGKILL after delay, while a poller watches its checkpoint.
func (cl *crashLog) load(ctx context.Context, t *testing.T, d *provlogd, v note.Verifier, m *crashModel, r int, delay time.Duration) {
	t.Helper()
	var killed atomic.Bool
	m.mu.Lock()
	pending0 := len(m.pending)
	m.mu.Unlock()
	stop := make(chan struct{})
	errc := make(chan error, crashWriters+1)
	var wg sync.WaitGroup
	for w := range crashWriters {
		wr := rand.New(rand.NewPCG(m.seed, uint64(r)<<8|uint64(w)))
		wg.Go(func() {
			if err := cl.write(ctx, d, m, wr, r, w, stop, &killed); err != nil {
				errc <- fmt.Errorf("round %d writer %d: %w", r, w, err)
			}
		})
	}
	wg.Go(func() {
		if err := cl.poll(ctx, d, v, stop, &killed); err != nil {
			errc <- fmt.Errorf("round %d checkpoint poller: %w", r, err)
		}
	})

	time.Sleep(delay)
	pre, err := fetchCheckpoint(ctx, d.HTTPURL, v)
	if err == nil {
		err = cl.see(pre)
	}
	if err != nil {
		t.Errorf("round %d: checkpoint before the kill: %v", r, err)
	}
	select {
	case <-d.exited:
		t.Fatalf("round %d: provlogd exited before it was killed (%v)", r, d.waitErr)
	default:
	}
	killed.Store(true)
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("round %d: SIGKILL: %v", r, err)
	}
	<-d.exited
	var ee *exec.ExitError
	if !errors.As(d.waitErr, &ee) || !ee.Sys().(syscall.WaitStatus).Signaled() || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("round %d: provlogd exit status %v, want killed by SIGKILL", r, d.waitErr)
	}
	close(stop)
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	if pre.Size < cl.cp.Size {
		t.Fatalf("round %d: checkpoint of size %d before the kill, %d at the start of the round", r, pre.Size, cl.cp.Size)
	}
	cl.preKill = pre
	m.mu.Lock()
	for _, e := range m.pending[pending0:] {
		if m.recs[e].index < 0 {
			m.unacked++
		}
	}
	m.mu.Unlock()
}

// write is one writer of round r: single Appends and AppendBatches of 2 to
// 32 fresh entries, a quarter of the batches also carrying an entry whose
// index is known. It returns at stop or at the first error after the kill;
// any other error is returned.
func (cl *crashLog) write(ctx context.Context, d *provlogd, m *crashModel, rng *rand.Rand, r, w int, stop <-chan struct{}, killed *atomic.Bool) error {
	for n := 0; ; {
		select {
		case <-stop:
			return nil
		default:
		}
		k := 1
		if rng.IntN(5) >= 3 {
			k = 2 + rng.IntN(31)
		}
		entries := make([][]byte, k)
		for i := range entries {
			entries[i] = m.newEntry(r, w, n+i)
		}
		n += k
		m.send(entries)
		var known [][]byte
		if k > 1 && rng.IntN(4) == 0 {
			known = m.pick(rng, 1)
		}
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		var res []*pb.AppendResponse
		var err error
		if k == 1 {
			var a *pb.AppendResponse
			if a, err = d.Log.Append(cctx, &pb.AppendRequest{Entry: entries[0]}); err == nil {
				res = []*pb.AppendResponse{a}
			}
		} else {
			var b *pb.AppendBatchResponse
			if b, err = d.Log.AppendBatch(cctx, &pb.AppendBatchRequest{Entries: append(entries, known...)}); err == nil {
				res = b.Results
			}
		}
		cancel()
		switch {
		case err == nil:
			if len(res) != len(entries)+len(known) {
				return fmt.Errorf("%d results for %d entries", len(res), len(entries)+len(known))
			}
			if err := m.ack(entries, res[:len(entries)], true); err != nil {
				return err
			}
			if err := m.ack(known, res[len(entries):], false); err != nil {
				return err
			}
		case killed.Load():
			return nil // in flight at the kill: unknown
		case status.Code(err) == codes.ResourceExhausted:
			time.Sleep(10 * time.Millisecond)
		default:
			return fmt.Errorf("append before the kill: %w", err)
		}
	}
}

// poll fetches GET /checkpoint every few milliseconds until the kill; each
// must verify and not go back.
func (cl *crashLog) poll(ctx context.Context, d *provlogd, v note.Verifier, stop <-chan struct{}, killed *atomic.Bool) error {
	var last uint64
	for {
		select {
		case <-stop:
			return nil
		case <-time.After(5 * time.Millisecond):
		}
		cp, err := fetchCheckpoint(ctx, d.HTTPURL, v)
		if err != nil {
			if killed.Load() {
				return nil
			}
			return err
		}
		if cp.Size < last {
			return fmt.Errorf("checkpoint size went back from %d to %d", last, cp.Size)
		}
		last = cp.Size
		if err := cl.see(cp); err != nil {
			return err
		}
	}
}

// verify checks the log d serves against the model (see TestCrashUnderLoad)
// and then, if resubmit is set, resubmits some entries. If full is false, only the entry
// bundles from the one holding the previous tree size on are re-read.
func (cl *crashLog) verify(ctx context.Context, t *testing.T, d *provlogd, v note.Verifier, m *crashModel, rng *rand.Rand, full, resubmit bool) {
	t.Helper()
	// Both front ends serve the published checkpoint. A witnessed
	// fail-open log just restarted may publish its integrated tree between
	// the two reads, so they must agree once it stops moving (bounded).
	var cp checkpoint
	for attempt := 0; ; attempt++ {
		var err error
		if cp, err = fetchCheckpoint(ctx, d.HTTPURL, v); err != nil {
			t.Fatal(err)
		}
		g, err := d.Log.GetCheckpoint(ctx, &pb.GetCheckpointRequest{})
		if err != nil {
			t.Fatalf("gRPC GetCheckpoint: %v", err)
		}
		if bytes.Equal(g.Checkpoint, cp.Raw) {
			break
		}
		if attempt == 100 {
			t.Fatalf("gRPC GetCheckpoint differs from GET /checkpoint after %d tries:\n%s\nvs\n%s", attempt+1, g.Checkpoint, cp.Raw)
		}
		time.Sleep(20 * time.Millisecond)
	}
	prev := cl.size
	if cp.Size < prev {
		m.mu.Lock()
		for idx := range m.byIndex {
			if idx >= cp.Size {
				cl.lost++
			}
		}
		m.mu.Unlock()
		t.Fatalf("tree size %d after restart, %d verified before: %d acknowledged entries lost", cp.Size, prev, cl.lost)
	}

	// Entries: every bundle from the first one not known to be full.
	from := uint64(0)
	if !full {
		from = prev / 256
	}
	refs := bundlesForSize(cp.Size)[from:]
	bodies, err := fetchAll(ctx, d.HTTPURL, refs)
	if err != nil {
		t.Fatal(err)
	}
	var got [][]byte
	for i, b := range bodies {
		es, err := parseBundle(b)
		if err != nil {
			t.Fatalf("%s: %v", refs[i].Path(), err)
		}
		if len(es) != refs[i].Width {
			t.Fatalf("%s: %d entries, want %d", refs[i].Path(), len(es), refs[i].Width)
		}
		got = append(got, es...)
	}
	start := from * 256
	for i, e := range got {
		idx := start + uint64(i)
		if idx < uint64(len(cl.entries)) {
			if !bytes.Equal(cl.entries[idx], e) {
				t.Fatalf("entry %d changed across a restart: %.40q, was %.40q", idx, e, cl.entries[idx])
			}
			continue
		}
		hs, err := tlog.StoredHashes(int64(idx), e, cl.hashes)
		if err != nil {
			t.Fatal(err)
		}
		cl.hashes = append(cl.hashes, hs...)
		cl.entries = append(cl.entries, bytes.Clone(e))
	}
	cl.size, cl.cp = cp.Size, cp
	root, err := cl.hashes.treeHash(cp.Size)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(root, cp.Root) {
		t.Fatalf("root recomputed from the %d entries %x != checkpoint root %x", cp.Size, root, cp.Root)
	}
	cl.reconcile(t, m, start)
	cl.checkTiles(ctx, t, d, prev, full)
	if err := cl.see(cp); err != nil {
		t.Fatal(err)
	}
	if cp.Size < cl.preKill.Size {
		t.Fatalf("tree size %d after restart, %d published before the kill", cp.Size, cl.preKill.Size)
	}

	// Every checkpoint seen is of a prefix of this tree; the last one seen
	// before the kill and the one verified before are consistent with this
	// one by a served proof.
	for size, root := range cl.seen {
		if size > cp.Size {
			t.Fatalf("checkpoint of size %d seen, but the tree recovered to size %d", size, cp.Size)
		}
		if want, _ := cl.hashes.treeHash(size); size > 0 && !bytes.Equal(root, want) {
			t.Fatalf("checkpoint of size %d seen with root %x; the recovered tree has %x", size, root, want)
		}
	}
	for _, old := range []uint64{cl.preKill.Size, prev} {
		if old == 0 || old == cp.Size {
			continue
		}
		res, err := d.Log.GetConsistencyProof(ctx, &pb.GetConsistencyProofRequest{FromSize: old, ToSize: cp.Size})
		if err != nil {
			t.Fatalf("GetConsistencyProof(%d, %d): %v", old, cp.Size, err)
		}
		if err := proof.VerifyConsistency(hasher, old, cp.Size, res.Proof, cl.seen[old], cp.Root); err != nil {
			t.Fatalf("consistency proof from %d (before the kill) to %d: %v", old, cp.Size, err)
		}
	}
	cl.checkInclusion(ctx, t, d, m, rng)
	if resubmit {
		cl.resubmit(ctx, t, d, m, rng)
	}
}

// checkTiles compares the hash tiles that hold hashes beyond the previous
// tree size (all of them if full) with sumdb/tlog's.
func (cl *crashLog) checkTiles(ctx context.Context, t *testing.T, d *provlogd, prev uint64, full bool) {
	t.Helper()
	var refs []tileRef
	for _, r := range tilesForSize(cl.size) {
		if full || (r.Index+1)*256 > prev>>(8*r.Level) {
			refs = append(refs, r)
		}
	}
	bodies, err := fetchAll(ctx, d.HTTPURL, refs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range refs {
		want, err := cl.hashes.tileData(r)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(bodies[i], want) {
			t.Fatalf("%s differs from the tile sumdb/tlog computes", r.Path())
		}
	}
}

// reconcile checks the entries from index start on against the model, and
// every entry with a known index against the log.
func (cl *crashLog) reconcile(t *testing.T, m *crashModel, start uint64) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := start; i < cl.size; i++ {
		e := cl.entries[i]
		rec := m.recs[string(e)]
		switch {
		case rec == nil:
			t.Fatalf("entry %d %.40q was never sent", i, e)
		case rec.index >= 0 && uint64(rec.index) != i:
			t.Fatalf("entry %.40q at index %d, but known at index %d", e, i, rec.index)
		case rec.index < 0:
			// Sent, not acknowledged, logged: from now on it is known here.
			if err := m.learn(string(e), i); err != nil {
				t.Fatal(err)
			}
			cl.recovered++
		}
	}
	lost := 0
	for idx, e := range m.byIndex {
		if idx >= cl.size || !bytes.Equal(cl.entries[idx], []byte(e)) {
			if lost++; lost <= 10 {
				t.Errorf("entry %.40q acknowledged at index %d is not there after the restart (tree size %d)", e, idx, cl.size)
			}
		}
	}
	if lost > 0 {
		cl.lost += lost
		t.Errorf("%d acknowledged entries lost", lost)
	}
	pending := m.pending[:0]
	for _, e := range m.pending {
		if m.recs[e].index < 0 {
			pending = append(pending, e)
		}
	}
	m.pending = pending
}

// checkInclusion verifies gRPC inclusion proofs of a few known entries, the
// latest among them.
func (cl *crashLog) checkInclusion(ctx context.Context, t *testing.T, d *provlogd, m *crashModel, rng *rand.Rand) {
	t.Helper()
	if cl.size == 0 {
		return
	}
	for _, i := range []uint64{cl.size - 1, rng.Uint64N(cl.size), rng.Uint64N(cl.size)} {
		res, err := d.Log.GetInclusionProof(ctx, &pb.GetInclusionProofRequest{Leaf: &pb.GetInclusionProofRequest_Index{Index: i}, TreeSize: cl.size})
		if err != nil {
			t.Fatalf("GetInclusionProof(%d, %d): %v", i, cl.size, err)
		}
		if err := verifyInclusion(i, cl.size, cl.entries[i], res.Proof, cl.cp.Root); err != nil {
			t.Fatal(err)
		}
	}
}

// resubmit appends again a few entries with a known index (each must come
// back as a duplicate at that index) and up to 16 entries sent but never
// logged (each must be appended anew).
func (cl *crashLog) resubmit(ctx context.Context, t *testing.T, d *provlogd, m *crashModel, rng *rand.Rand) {
	t.Helper()
	known := m.pick(rng, 12)
	m.mu.Lock()
	var absent [][]byte
	for _, e := range m.pending[:min(16, len(m.pending))] {
		absent = append(absent, []byte(e))
	}
	m.mu.Unlock()
	for _, e := range known[:min(4, len(known))] {
		res, err := d.Log.Append(ctx, &pb.AppendRequest{Entry: e})
		if err != nil {
			t.Fatalf("resubmitting an acknowledged entry: %v", err)
		}
		if err := m.ack([][]byte{e}, []*pb.AppendResponse{res}, false); err != nil {
			t.Fatalf("resubmitting an acknowledged entry: %v", err)
		}
	}
	batch := append(known[min(4, len(known)):], absent...)
	if len(batch) == 0 {
		return
	}
	res, err := d.Log.AppendBatch(ctx, &pb.AppendBatchRequest{Entries: batch})
	if err != nil {
		t.Fatalf("resubmitting %d entries: %v", len(batch), err)
	}
	if err := m.ack(batch, res.Results, false); err != nil {
		t.Fatalf("resubmitting: %v", err)
	}
	// An entry absent from the log the check read must come back at an
	// index past it: new, or a duplicate there when an earlier sending
	// whose answer never reached the load (it gave up, or the answer was
	// lost with a stopped replica) was sequenced after that read (seen
	// in TestFailoverSIGSTOPLeader: a duplicate at the read size itself).
	// m.ack records the index, which later checks verify.
	for _, r := range res.Results[len(batch)-len(absent):] {
		if r.Index < cl.size {
			t.Fatalf("an entry absent from the log of size %d resubmitted: (index %d, duplicate %t), want an index past the log read", cl.size, r.Index, r.Duplicate)
		}
	}
	m.mu.Lock()
	m.pending = m.pending[len(absent):]
	m.mu.Unlock()
}
