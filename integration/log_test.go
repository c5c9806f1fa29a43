package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pb "github.com/provlog/provlog/proto/provlog/v1"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/tessera/client"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// testOrigin is the origin of the logs the tests create.
const testOrigin = "example.com/provlog-integration"

// appenders is the number of concurrent gRPC clients appending.
const appenders = 8

// restartState is what the restart in the middle of the workload observed.
type restartState struct {
	d2          *provlogd  // the restarted provlogd
	preStop     checkpoint // GET /checkpoint just before SIGTERM
	postRestart checkpoint // GET /checkpoint of the restarted provlogd before any append
	ackedAtStop int64      // entries acknowledged when the first provlogd had exited
}

// TestAppendRestartVerify appends many distinct entries with concurrent
// clients over every append method, restarts provlogd (SIGTERM, then start
// on the same data) in the middle, and then verifies the whole log with
// independent code: the signed checkpoint, every entry bundle and hash tile,
// gRPC inclusion and consistency proofs, Tessera's client over the tiles,
// and GetEntries.
func TestAppendRestartVerify(t *testing.T) {
	n := 100_000
	if testing.Short() {
		n = 10_000
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	began := time.Now()
	phase := func(format string, args ...any) {
		t.Logf("%6.2fs: %s", time.Since(began).Seconds(), fmt.Sprintf(format, args...))
	}

	// Entries 0..n-1 are the workload; entry n is for the in-batch
	// duplicate check.
	entries := makeEntries(0, uint64(n)+1)
	dataDir := t.TempDir()
	d1 := mustStartProvlogd(t, dataDir, "--origin", testOrigin)
	v := checkKeyFiles(t, d1, testOrigin)
	phase("provlogd started: grpc %s, http %s", d1.GRPCAddr, d1.HTTPURL)

	// Steps 1 and 2: the workload, with a restart once half is acknowledged.
	acks := newAckLog(len(entries), int64(n/2))
	var current atomic.Pointer[provlogd]
	current.Store(d1)
	app := &appender{entries: entries, acks: acks, current: &current}
	jobs := planJobs(n, 1)
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	errc := make(chan error, appenders+1)
	var wg sync.WaitGroup
	var next atomic.Int64
	for range appenders {
		wg.Go(func() {
			if err := app.run(wctx, jobs, &next); err != nil {
				errc <- err
				wcancel()
			}
		})
	}
	var rs restartState
	wg.Go(func() {
		if err := restartMidway(wctx, t, d1, v, acks, &current, &rs, phase); err != nil {
			errc <- fmt.Errorf("restart: %w", err)
			wcancel()
		}
	})
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	calls := map[string]int{}
	for _, j := range jobs {
		calls[j.method]++
	}
	phase("appended %d entries in %d calls %v (%d failed calls retried); restart at %d acknowledged, tree sizes %d before SIGTERM and %d after restart",
		n, len(jobs), calls, app.retries.Load(), rs.ackedAtStop, rs.preStop.Size, rs.postRestart.Size)
	d2 := rs.d2
	if got := acks.acked.Load(); got != int64(n) {
		t.Fatalf("%d entries acknowledged, want %d", got, n)
	}
	cp, err := fetchCheckpoint(ctx, d2.HTTPURL, v)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size != uint64(n) {
		t.Fatalf("checkpoint size after appending %d distinct entries = %d", n, cp.Size)
	}

	// Step 3: re-submitting logged entries returns their original indices.
	resubmitLogged(ctx, t, d2, acks, entries, n)
	if cp2, err := fetchCheckpoint(ctx, d2.HTTPURL, v); err != nil {
		t.Fatal(err)
	} else if cp2.Size != cp.Size || !bytes.Equal(cp2.Root, cp.Root) {
		t.Errorf("re-submitting logged entries changed the checkpoint from size %d root %x to size %d root %x", cp.Size, cp.Root, cp2.Size, cp2.Root)
	}
	checkInBatchDuplicate(ctx, t, d2, acks, entries, n)
	total := uint64(n) + 1
	phase("re-submitted logged entries")

	// Step 4: verify everything with independent code.
	final, err := fetchCheckpoint(ctx, d2.HTTPURL, v)
	if err != nil {
		t.Fatal(err)
	}
	if final.Size != total {
		t.Fatalf("final checkpoint size = %d, want %d distinct entries", final.Size, total)
	}
	checkGRPCCheckpoint(ctx, t, d2, v, final)
	logEntries := entriesByIndex(t, acks, entries, total)
	if t.Failed() {
		t.FailNow()
	}
	checkBundles(ctx, t, d2, logEntries)
	phase("checked %d entry bundles", len(bundlesForSize(total)))

	hs, err := newHashStore(logEntries)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []checkpoint{rs.preStop, rs.postRestart, final} {
		root, err := hs.treeHash(c.Size)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(root, c.Root) {
			t.Errorf("checkpoint of size %d has root %x; the tree of the acknowledged entries has root %x", c.Size, c.Root, root)
		}
	}
	checkTiles(ctx, t, d2, hs, total)
	phase("checked %d hash tiles", len(tilesForSize(total)))

	sample := sampleIndices(total, []uint64{rs.preStop.Size, rs.postRestart.Size}, 200)
	checkInclusionProofs(ctx, t, d2, v, hs, logEntries, final, rs.preStop, sample)
	checkConsistencyProofs(ctx, t, d2, v, hs, final, rs.preStop, rs.postRestart)
	phase("checked gRPC inclusion proofs for %d indices and consistency proofs", len(sample))

	checkTesseraClient(ctx, t, d2, v, logEntries, rs.preStop, final, sample)
	phase("checked with Tessera's client")

	mid := rs.postRestart.Size
	from, to := mid-min(mid, 3000), min(total, mid+3000)
	checkGetEntries(ctx, t, d2, logEntries, from, to-from)
	checkGetEntries(ctx, t, d2, logEntries, 0, total)
	phase("checked GetEntries [%d, %d) and [0, %d)", from, to, total)

	d2.mustStop(t)
	phase("provlogd stopped")
}

// restartMidway waits until half the workload is acknowledged, stops d1
// with SIGTERM, starts provlogd again on the same data (without --origin:
// it must come from the key) and points current at it.
func restartMidway(ctx context.Context, t *testing.T, d1 *provlogd, v note.Verifier, acks *ackLog, current *atomic.Pointer[provlogd], rs *restartState, phase func(string, ...any)) error {
	select {
	case <-acks.reached:
	case <-ctx.Done():
		return nil
	}
	var err error
	if rs.preStop, err = fetchCheckpoint(ctx, d1.HTTPURL, v); err != nil {
		return err
	}
	phase("stopping provlogd at %d acknowledged, tree size %d", acks.acked.Load(), rs.preStop.Size)
	if err := d1.Stop(); err != nil {
		return err
	}
	rs.ackedAtStop = acks.acked.Load()
	d2, err := startProvlogd(t, d1.DataDir)
	if err != nil {
		return fmt.Errorf("starting again on the same data: %w", err)
	}
	rs.d2 = d2
	if d2.VerifierKey != d1.VerifierKey {
		return fmt.Errorf("verifier key after restart %q, want %q", d2.VerifierKey, d1.VerifierKey)
	}
	if rs.postRestart, err = fetchCheckpoint(ctx, d2.HTTPURL, v); err != nil {
		return fmt.Errorf("after restart: %w", err)
	}
	if rs.postRestart.Size < rs.preStop.Size {
		return fmt.Errorf("tree size %d after restart, %d before SIGTERM", rs.postRestart.Size, rs.preStop.Size)
	}
	// Nothing has reached d2 yet, so every acknowledgement so far came
	// from d1: each must be durable, covered by the tree d2 starts with.
	// (The entries themselves are compared with the tiles at the end.)
	acks.mu.Lock()
	for idx := range acks.owner {
		if idx >= rs.postRestart.Size {
			err = fmt.Errorf("index %d was acknowledged before SIGTERM, but the tree after restart has size %d", idx, rs.postRestart.Size)
			break
		}
	}
	acks.mu.Unlock()
	if err != nil {
		return err
	}
	current.Store(d2)
	phase("provlogd restarted on the same data: tree size %d", rs.postRestart.Size)
	return nil
}

// checkKeyFiles checks the key files provlogd created on first start and
// returns the verifier of log.pub.
func checkKeyFiles(t *testing.T, d *provlogd, origin string) note.Verifier {
	t.Helper()
	keyPath := filepath.Join(d.DataDir, "log.key")
	fi, err := os.Stat(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("log.key mode %v, want 0600", perm)
	}
	skey, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(strings.TrimSpace(string(skey)))
	if err != nil {
		t.Fatalf("log.key is not a note private key: %v", err)
	}
	v, vkey, err := loadVerifier(d.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	if vkey != d.VerifierKey {
		t.Errorf("log.pub holds %q; provlogd printed verifier key %q", vkey, d.VerifierKey)
	}
	if v.Name() != origin || signer.Name() != origin {
		t.Errorf("key names: log.pub %q, log.key %q; want the origin %q", v.Name(), signer.Name(), origin)
	}
	if signer.KeyHash() != v.KeyHash() {
		t.Errorf("log.key (key hash %08x) and log.pub (key hash %08x) are not one key pair", signer.KeyHash(), v.KeyHash())
	}
	return v
}

// resubmitLogged re-submits a sample of logged entries over Append,
// AppendBatch and AppendStream: each must come back with its original index
// and duplicate set.
func resubmitLogged(ctx context.Context, t *testing.T, d *provlogd, acks *ackLog, entries [][]byte, n int) {
	t.Helper()
	r := rand.New(rand.NewPCG(3, 3))
	seqs := []int{0, n - 1}
	for len(seqs) < 300 {
		seqs = append(seqs, r.IntN(n))
	}
	check := func(how string, seq int, res *pb.AppendResponse) {
		t.Helper()
		if want := acks.indexOf(seq); res.Index != uint64(want) || !res.Duplicate {
			t.Errorf("%s of logged entry %d = index %d, duplicate %v; want index %d, duplicate true", how, seq, res.Index, res.Duplicate, want)
		}
	}
	for _, s := range seqs[:100] {
		res, err := d.Log.Append(ctx, &pb.AppendRequest{Entry: entries[s]})
		if err != nil {
			t.Fatalf("Append of logged entry %d: %v", s, err)
		}
		check("Append", s, res)
	}
	batch := func(seqs []int) *pb.AppendBatchRequest {
		req := &pb.AppendBatchRequest{}
		for _, s := range seqs {
			req.Entries = append(req.Entries, entries[s])
		}
		return req
	}
	res, err := d.Log.AppendBatch(ctx, batch(seqs[100:200]))
	if err != nil {
		t.Fatalf("AppendBatch of logged entries: %v", err)
	}
	if len(res.Results) != 100 {
		t.Fatalf("AppendBatch of 100 logged entries: %d results", len(res.Results))
	}
	for i, s := range seqs[100:200] {
		check("AppendBatch", s, res.Results[i])
	}
	st, err := d.Log.AppendStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	parts := [][]int{seqs[200:250], seqs[250:300]}
	for _, p := range parts {
		if err := st.Send(batch(p)); err != nil {
			t.Fatalf("AppendStream Send: %v", err)
		}
	}
	if err := st.CloseSend(); err != nil {
		t.Fatal(err)
	}
	for _, p := range parts {
		res, err := st.Recv()
		if err != nil {
			t.Fatalf("AppendStream of logged entries: %v", err)
		}
		if len(res.Results) != len(p) {
			t.Fatalf("AppendStream: %d results for %d logged entries", len(res.Results), len(p))
		}
		for i, s := range p {
			check("AppendStream", s, res.Results[i])
		}
	}
	if _, err := st.Recv(); err != io.EOF {
		t.Errorf("AppendStream after its responses: %v, want the end of the stream", err)
	}
}

// checkInBatchDuplicate appends a batch holding a new entry twice and a
// logged one: the new entry gets one index, the next one, and its second
// copy and the logged entry are duplicates.
func checkInBatchDuplicate(ctx context.Context, t *testing.T, d *provlogd, acks *ackLog, entries [][]byte, n int) {
	t.Helper()
	res, err := d.Log.AppendBatch(ctx, &pb.AppendBatchRequest{Entries: [][]byte{entries[n], entries[n], entries[7]}})
	if err != nil {
		t.Fatalf("AppendBatch [new, same new, logged]: %v", err)
	}
	if len(res.Results) != 3 {
		t.Fatalf("AppendBatch of 3 entries: %d results", len(res.Results))
	}
	r0, r1, r2 := res.Results[0], res.Results[1], res.Results[2]
	if r0.Index != uint64(n) || r0.Duplicate || r1.Index != uint64(n) || !r1.Duplicate {
		t.Errorf("AppendBatch of a new entry twice to a log of size %d: (index %d, duplicate %v), (index %d, duplicate %v); want (%d, false), (%d, true)",
			n, r0.Index, r0.Duplicate, r1.Index, r1.Duplicate, n, n)
	}
	if want := acks.indexOf(7); r2.Index != uint64(want) || !r2.Duplicate {
		t.Errorf("logged entry 7 in a batch: index %d, duplicate %v; want %d, true", r2.Index, r2.Duplicate, want)
	}
	if err := acks.record(n, r0, false); err != nil {
		t.Fatal(err)
	}
}

// checkGRPCCheckpoint checks that GetCheckpoint serves a checkpoint that
// verifies and agrees with cp.
func checkGRPCCheckpoint(ctx context.Context, t *testing.T, d *provlogd, v note.Verifier, cp checkpoint) {
	t.Helper()
	res, err := d.Log.GetCheckpoint(ctx, &pb.GetCheckpointRequest{})
	if err != nil {
		t.Fatalf("GetCheckpoint: %v", err)
	}
	got, err := openCheckpoint(res.Checkpoint, v)
	if err != nil {
		t.Fatalf("GetCheckpoint: %v", err)
	}
	if got.Size != cp.Size || !bytes.Equal(got.Root, cp.Root) {
		t.Errorf("GetCheckpoint: size %d root %x; GET /checkpoint: size %d root %x", got.Size, got.Root, cp.Size, cp.Root)
	}
}

// entriesByIndex returns the acknowledged entries in log order, checking
// that their indices are exactly 0..total-1, each once.
func entriesByIndex(t *testing.T, acks *ackLog, entries [][]byte, total uint64) [][]byte {
	t.Helper()
	byIndex := make([][]byte, total)
	for seq := range entries {
		idx := acks.indexOf(seq)
		switch {
		case idx < 0:
			t.Errorf("entry %d was never acknowledged", seq)
		case uint64(idx) >= total:
			t.Errorf("entry %d acknowledged at index %d, beyond the tree size %d", seq, idx, total)
		case byIndex[idx] != nil:
			t.Errorf("index %d acknowledged twice", idx)
		default:
			byIndex[idx] = entries[seq]
		}
	}
	for i, e := range byIndex {
		if e == nil {
			t.Errorf("no entry acknowledged at index %d", i)
			break
		}
	}
	return byIndex
}

// checkBundles fetches every entry bundle of the tree of len(logEntries)
// entries and compares it with the acknowledged entries.
func checkBundles(ctx context.Context, t *testing.T, d *provlogd, logEntries [][]byte) {
	t.Helper()
	size := uint64(len(logEntries))
	refs := bundlesForSize(size)
	bodies, err := fetchAll(ctx, d.HTTPURL, refs)
	if err != nil {
		t.Fatal(err)
	}
	for i, ref := range refs {
		got, err := parseBundle(bodies[i])
		if err != nil {
			t.Fatalf("%s: %v", ref.Path(), err)
		}
		start := ref.Index * 256
		if err := equalEntries(start, got, logEntries[start:start+uint64(ref.Width)]); err != nil {
			t.Fatalf("%s: %v", ref.Path(), err)
		}
	}
	// Beyond the tree there is nothing: the full bundle of the last,
	// partial one, and the bundle after.
	beyond := []tileRef{{Entries: true, Index: size / 256, Width: 256}, {Entries: true, Index: size/256 + 1, Width: 256}}
	if w := size % 256; w > 0 && w < 255 {
		beyond = append(beyond, tileRef{Entries: true, Index: size / 256, Width: int(w) + 1})
	}
	for _, ref := range beyond {
		checkStatus(ctx, t, d.HTTPURL+ref.Path(), 404)
	}
}

// checkTiles fetches every hash tile of the tree of the given size and
// compares it with the tile recomputed by golang.org/x/mod/sumdb/tlog.
func checkTiles(ctx context.Context, t *testing.T, d *provlogd, hs hashStore, size uint64) {
	t.Helper()
	refs := tilesForSize(size)
	// tilesForSize follows the tlog-tiles text; sumdb/tlog agrees.
	var want []tileRef
	for _, tile := range tlog.NewTiles(8, 0, int64(size)) {
		want = append(want, tileRef{Level: tile.L, Index: uint64(tile.N), Width: tile.W})
	}
	if !slices.Equal(refs, want) {
		t.Fatalf("tiles for size %d: tlog-tiles says %v, sumdb/tlog says %v", size, refs, want)
	}
	bodies, err := fetchAll(ctx, d.HTTPURL, refs)
	if err != nil {
		t.Fatal(err)
	}
	for i, ref := range refs {
		want, err := hs.tileData(ref)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(bodies[i], want) {
			t.Errorf("%s: %d bytes served differ from the %d bytes recomputed", ref.Path(), len(bodies[i]), len(want))
		}
	}
	top := refs[len(refs)-1].Level
	beyond := []tileRef{{Level: 0, Index: size/256 + 1, Width: 256}, {Level: top + 1, Index: 0, Width: 1}}
	if size%256 != 0 {
		beyond = append(beyond, tileRef{Level: 0, Index: size / 256, Width: 256})
	}
	for _, ref := range beyond {
		checkStatus(ctx, t, d.HTTPURL+ref.Path(), 404)
	}
}

// checkStatus checks that GET u answers one of the status codes want.
func checkStatus(ctx context.Context, t *testing.T, u string, want ...int) {
	t.Helper()
	code, body, _, err := httpGet(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(want, code) {
		t.Errorf("GET %s: status %d (%q), want one of %v", u, code, firstLine(body), want)
	}
}

// sampleIndices returns about k distinct indices below size: the edges of
// the tree, of tiles, of the given sizes, and random ones.
func sampleIndices(size uint64, sizes []uint64, k int) []uint64 {
	cand := []uint64{0, 1, 2, 255, 256, 257, 511, 512, 65535, 65536, 65537, size / 2, size - 2, size - 1}
	for _, s := range sizes {
		cand = append(cand, s-1, s, s+1)
	}
	r := rand.New(rand.NewPCG(4, 4))
	for len(cand) < k {
		cand = append(cand, r.Uint64N(size))
	}
	var out []uint64
	for _, c := range cand {
		if c < size && !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

// checkInclusionProofs verifies gRPC inclusion proofs for each sampled
// index, by index and by leaf hash, at the latest size, at a random older
// size and at the size before the restart.
func checkInclusionProofs(ctx context.Context, t *testing.T, d *provlogd, v note.Verifier, hs hashStore, logEntries [][]byte, final, preStop checkpoint, sample []uint64) {
	t.Helper()
	r := rand.New(rand.NewPCG(5, 5))
	for _, i := range sample {
		entry := logEntries[i]
		leafHash := hasher.HashLeaf(entry)
		older := i + 1 + r.Uint64N(final.Size-i)
		olderRoot, err := hs.treeHash(older)
		if err != nil {
			t.Fatal(err)
		}
		type query struct {
			req  *pb.GetInclusionProofRequest
			root []byte // nil: that of the checkpoint in the response
			size uint64
		}
		queries := []query{
			{&pb.GetInclusionProofRequest{Leaf: &pb.GetInclusionProofRequest_Index{Index: i}}, nil, final.Size},
			{&pb.GetInclusionProofRequest{Leaf: &pb.GetInclusionProofRequest_LeafHash{LeafHash: leafHash}}, nil, final.Size},
			{&pb.GetInclusionProofRequest{Leaf: &pb.GetInclusionProofRequest_Index{Index: i}, TreeSize: older}, olderRoot, older},
			{&pb.GetInclusionProofRequest{Leaf: &pb.GetInclusionProofRequest_LeafHash{LeafHash: leafHash}, TreeSize: older}, olderRoot, older},
		}
		if i < preStop.Size {
			queries = append(queries, query{&pb.GetInclusionProofRequest{Leaf: &pb.GetInclusionProofRequest_Index{Index: i}, TreeSize: preStop.Size}, preStop.Root, preStop.Size})
		}
		for _, q := range queries {
			res, err := d.Log.GetInclusionProof(ctx, q.req)
			if err != nil {
				t.Fatalf("GetInclusionProof(%v): %v", q.req, err)
			}
			if res.Index != i || res.TreeSize != q.size {
				t.Errorf("GetInclusionProof(%v): index %d tree size %d, want %d and %d", q.req, res.Index, res.TreeSize, i, q.size)
				continue
			}
			root := q.root
			if root == nil {
				cp, err := openCheckpoint(res.Checkpoint, v)
				if err != nil {
					t.Errorf("GetInclusionProof(%v): checkpoint: %v", q.req, err)
					continue
				}
				if cp.Size != final.Size || !bytes.Equal(cp.Root, final.Root) {
					t.Errorf("GetInclusionProof(%v): checkpoint size %d root %x, want the latest, %d %x", q.req, cp.Size, cp.Root, final.Size, final.Root)
				}
				root = cp.Root
			}
			if err := verifyInclusion(i, q.size, entry, res.Proof, root); err != nil {
				t.Errorf("GetInclusionProof(%v): %v", q.req, err)
			}
		}
	}
}

// checkConsistencyProofs verifies gRPC consistency proofs between the
// checkpoints around the restart and the final one, and between other sizes
// whose roots are recomputed here.
func checkConsistencyProofs(ctx context.Context, t *testing.T, d *provlogd, v note.Verifier, hs hashStore, final, preStop, postRestart checkpoint) {
	t.Helper()
	n := final.Size
	pairs := [][2]uint64{
		{preStop.Size, n}, {postRestart.Size, n}, {preStop.Size, postRestart.Size},
		{1, n}, {n - 1, n}, {n, n}, {255, 257}, {256, 65536}, {1000, 70000},
	}
	r := rand.New(rand.NewPCG(6, 6))
	for range 20 {
		a, b := 1+r.Uint64N(n), 1+r.Uint64N(n)
		pairs = append(pairs, [2]uint64{min(a, b), max(a, b)})
	}
	for _, p := range pairs {
		from, to := p[0], p[1]
		if from == 0 || to > n {
			continue
		}
		root1, err := hs.treeHash(from)
		if err != nil {
			t.Fatal(err)
		}
		root2, err := hs.treeHash(to)
		if err != nil {
			t.Fatal(err)
		}
		res, err := d.Log.GetConsistencyProof(ctx, &pb.GetConsistencyProofRequest{FromSize: from, ToSize: to})
		if err != nil {
			t.Fatalf("GetConsistencyProof(%d, %d): %v", from, to, err)
		}
		if res.FromSize != from || res.ToSize != to {
			t.Errorf("GetConsistencyProof(%d, %d): sizes %d, %d", from, to, res.FromSize, res.ToSize)
		}
		if err := proof.VerifyConsistency(hasher, from, to, res.Proof, root1, root2); err != nil {
			t.Errorf("GetConsistencyProof(%d, %d): %v", from, to, err)
		}
	}
	// to_size 0: to the latest checkpoint, which comes with the proof.
	res, err := d.Log.GetConsistencyProof(ctx, &pb.GetConsistencyProofRequest{FromSize: preStop.Size})
	if err != nil {
		t.Fatalf("GetConsistencyProof(%d, latest): %v", preStop.Size, err)
	}
	cp, err := openCheckpoint(res.Checkpoint, v)
	if err != nil {
		t.Fatalf("GetConsistencyProof(%d, latest): checkpoint: %v", preStop.Size, err)
	}
	if res.ToSize != cp.Size || cp.Size != n {
		t.Errorf("GetConsistencyProof(%d, latest): to size %d, checkpoint size %d, want %d", preStop.Size, res.ToSize, cp.Size, n)
	}
	if err := proof.VerifyConsistency(hasher, preStop.Size, cp.Size, res.Proof, preStop.Root, cp.Root); err != nil {
		t.Errorf("GetConsistencyProof(%d, latest): %v", preStop.Size, err)
	}
}

// checkTesseraClient verifies the log over its tiles with Tessera's client:
// the log state tracker moves from the checkpoint before the restart to the
// final one (proving consistency), and proof builders at both sizes build
// inclusion proofs for the sample.
func checkTesseraClient(ctx context.Context, t *testing.T, d *provlogd, v note.Verifier, logEntries [][]byte, preStop, final checkpoint, sample []uint64) {
	t.Helper()
	u, err := url.Parse(d.HTTPURL)
	if err != nil {
		t.Fatal(err)
	}
	f, err := client.NewHTTPFetcher(u, httpClient)
	if err != nil {
		t.Fatal(err)
	}
	lst, err := client.NewLogStateTracker(ctx, f.ReadTile, preStop.Raw, v, testOrigin, client.UnilateralConsensus(f.ReadCheckpoint))
	if err != nil {
		t.Fatalf("NewLogStateTracker from the checkpoint before the restart: %v", err)
	}
	oldRaw, p, newRaw, err := lst.Update(ctx)
	if err != nil {
		t.Fatalf("LogStateTracker.Update from size %d: %v", preStop.Size, err)
	}
	if !bytes.Equal(oldRaw, preStop.Raw) || len(p) == 0 {
		t.Errorf("LogStateTracker.Update: old checkpoint %q and %d proof hashes; want the one before the restart and a proof", oldRaw, len(p))
	}
	latest := lst.Latest()
	if latest.Size != final.Size || !bytes.Equal(latest.Hash, final.Root) {
		t.Errorf("LogStateTracker.Latest: size %d root %x, want %d %x\n%s", latest.Size, latest.Hash, final.Size, final.Root, newRaw)
	}

	for _, c := range []checkpoint{final, preStop} {
		pb, err := client.NewProofBuilder(ctx, c.Size, f.ReadTile)
		if err != nil {
			t.Fatal(err)
		}
		for _, i := range sample {
			if i >= c.Size {
				continue
			}
			p, err := pb.InclusionProof(ctx, i)
			if err != nil {
				t.Fatalf("Tessera ProofBuilder(%d).InclusionProof(%d): %v", c.Size, i, err)
			}
			if err := verifyInclusion(i, c.Size, logEntries[i], p, c.Root); err != nil {
				t.Errorf("Tessera ProofBuilder: %v", err)
			}
		}
	}
	pbFinal, err := client.NewProofBuilder(ctx, final.Size, f.ReadTile)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := pbFinal.ConsistencyProof(ctx, preStop.Size, final.Size)
	if err != nil {
		t.Fatalf("Tessera ProofBuilder.ConsistencyProof(%d, %d): %v", preStop.Size, final.Size, err)
	}
	if err := proof.VerifyConsistency(hasher, preStop.Size, final.Size, cp, preStop.Root, final.Root); err != nil {
		t.Errorf("Tessera ProofBuilder.ConsistencyProof(%d, %d): %v", preStop.Size, final.Size, err)
	}
}

// checkGetEntries checks that GetEntries streams exactly the acknowledged
// entries [start, start+count), in order.
func checkGetEntries(ctx context.Context, t *testing.T, d *provlogd, logEntries [][]byte, start, count uint64) {
	t.Helper()
	got, err := getEntries(ctx, d, start, count)
	if err != nil {
		t.Fatal(err)
	}
	if err := equalEntries(start, got, logEntries[start:start+count]); err != nil {
		t.Errorf("GetEntries(%d, %d): %v", start, count, err)
	}
}

// getEntries reads [start, start+count) with GetEntries, a call at a time
// from where the last one ended, checking that the chunks are contiguous
// and that no call sends more than the documented cap.
func getEntries(ctx context.Context, d *provlogd, start, count uint64) ([][]byte, error) {
	var got [][]byte
	for uint64(len(got)) < count {
		from := start + uint64(len(got))
		page, err := getEntriesCall(ctx, d, from, count-uint64(len(got)))
		if err != nil {
			return nil, err
		}
		if len(page) == 0 || len(page) > maxGetEntries {
			return nil, fmt.Errorf("GetEntries(%d, %d) sent %d entries, want 1 to %d", from, count-uint64(len(got)), len(page), maxGetEntries)
		}
		got = append(got, page...)
	}
	return got, nil
}

// maxGetEntries is the most entries one GetEntries call sends (the proto's
// GetEntriesRequest.count).
const maxGetEntries = 1024

// getEntriesCall is one GetEntries call.
func getEntriesCall(ctx context.Context, d *provlogd, start, count uint64) ([][]byte, error) {
	st, err := d.Log.GetEntries(ctx, &pb.GetEntriesRequest{Start: start, Count: count})
	if err != nil {
		return nil, err
	}
	var got [][]byte
	for {
		res, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return got, nil
		}
		if err != nil {
			return nil, fmt.Errorf("GetEntries(%d, %d) after %d entries: %w", start, count, len(got), err)
		}
		if want := start + uint64(len(got)); res.Start != want {
			return nil, fmt.Errorf("GetEntries(%d, %d): chunk starts at %d, want %d", start, count, res.Start, want)
		}
		if len(res.Entries) == 0 {
			return nil, fmt.Errorf("GetEntries(%d, %d): empty chunk at %d", start, count, res.Start)
		}
		got = append(got, res.Entries...)
	}
}

// grpcCode returns the status code of err, OK for nil.
func grpcCode(err error) codes.Code {
	return status.Code(err)
}
