package log

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"sync"
	"testing"
	"time"

	flog "github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// fakeWitness cosigns by appending a line, after checking the consistency
// proof from the last size it cosigned, when ok is set.
type fakeWitness struct {
	t        *testing.T
	mu       sync.Mutex
	ok       bool
	block    chan struct{} // if set, Witness waits for it
	lastSize uint64
	lastRoot []byte
	calls    int
}

// cosig is a well-formed signature line of a key the log does not know.
var cosig = []byte("— witness.example " + base64.StdEncoding.EncodeToString(make([]byte, 4+72)) + "\n")

func (w *fakeWitness) Witness(ctx context.Context, cp []byte, proofFn func(ctx context.Context, from, to uint64) ([][]byte, error)) ([]byte, bool, error) {
	w.mu.Lock()
	block, ok := w.block, w.ok
	w.calls++
	w.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
	}
	if !ok {
		return cp, false, nil
	}
	c, err := parseTestCheckpoint(cp)
	if err != nil {
		return nil, false, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.lastSize > 0 && c.Size > w.lastSize {
		p, err := proofFn(ctx, w.lastSize, c.Size)
		if err != nil {
			return nil, false, err
		}
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, w.lastSize, c.Size, p, w.lastRoot, c.Hash); err != nil {
			w.t.Errorf("witness got an inconsistent checkpoint: %v", err)
			return nil, false, err
		}
	}
	w.lastSize, w.lastRoot = c.Size, c.Hash
	return append(bytes.Clone(cp), cosig...), true, nil
}

func (w *fakeWitness) set(ok bool) { w.mu.Lock(); w.ok = ok; w.mu.Unlock() }

// parseTestCheckpoint parses a checkpoint note's text with formats/log.
func parseTestCheckpoint(n []byte) (*flog.Checkpoint, error) {
	text, _, ok := bytes.Cut(n, []byte("\n\n"))
	if !ok {
		return nil, errors.New("malformed note")
	}
	var c flog.Checkpoint
	if _, err := c.Unmarshal(append(text, '\n')); err != nil {
		return nil, err
	}
	return &c, nil
}

// waitFor polls cond until it holds; the bound is generous (a loaded
// machine under the race detector is slow), it only turns a hang into a
// failure.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestWitnessedPublishing(t *testing.T) {
	e := newEnv(t)
	w := &fakeWitness{t: t}
	e.reopen(Config{Witness: w, WitnessInterval: 10 * time.Millisecond})
	ctx := context.Background()
	// Fail closed: adds are acknowledged, nothing new is published.
	for i := range 5 {
		if _, err := e.log.Add(ctx, testEntry(i)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "a witnessing attempt", func() bool { w.mu.Lock(); defer w.mu.Unlock(); return w.calls > 0 })
	// A new log publishes its empty tree, signed, until witnesses cosign.
	if cp := e.checkpoint(); cp.Size != 0 || bytes.HasSuffix(e.log.Checkpoint().Note, cosig) {
		t.Fatalf("published size %d without witnesses, want the log-signed empty tree", cp.Size)
	}
	// Witnesses come back: the latest checkpoint is published, cosigned.
	w.set(true)
	waitFor(t, "the witnessed checkpoint", func() bool { return e.log.Checkpoint().Size == 5 })
	if cp := e.log.Checkpoint(); !bytes.HasSuffix(cp.Note, cosig) {
		t.Errorf("published checkpoint lacks the cosignature: %q", cp.Note)
	}
	e.checkpoint() // still verifies with the log key
	// Adds do not wait for witnesses.
	w.mu.Lock()
	w.block = make(chan struct{})
	w.mu.Unlock()
	done := make(chan error)
	go func() { _, err := e.log.Add(ctx, testEntry(100)); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Add waited for a blocked witness")
	}
	if e.log.Checkpoint().Size != 5 {
		t.Error("published beyond the witnessed checkpoint")
	}
	close(w.block)
	w.mu.Lock()
	w.block = nil
	w.mu.Unlock()
	waitFor(t, "the next witnessed checkpoint", func() bool { return e.log.Checkpoint().Size == 6 })

	// A restart serves the stored witnessed checkpoint even with the
	// witnesses down.
	w.set(false)
	e.reopen(Config{Witness: w, WitnessInterval: 10 * time.Millisecond})
	if cp := e.log.Checkpoint(); cp.Size != 6 || !bytes.HasSuffix(cp.Note, cosig) {
		t.Errorf("after restart: published size %d, note %q", cp.Size, cp.Note)
	}
}

func TestWitnessFailOpen(t *testing.T) {
	e := newEnv(t)
	w := &fakeWitness{t: t}
	e.reopen(Config{Witness: w, WitnessFailOpen: true, WitnessInterval: 10 * time.Millisecond})
	if _, err := e.log.Add(context.Background(), testEntry(1)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the unwitnessed checkpoint", func() bool { return e.log.Checkpoint().Size == 1 })
	if bytes.HasSuffix(e.log.Checkpoint().Note, cosig) {
		t.Error("fail-open checkpoint claims a cosignature")
	}
	e.checkpoint()
}

func TestWitnessFailOpenSurvivesRestart(t *testing.T) {
	e := newEnv(t)
	w := &fakeWitness{t: t}
	cfg := Config{Witness: w, WitnessFailOpen: true, WitnessInterval: 10 * time.Millisecond}
	e.reopen(cfg)
	for i := range 20 {
		if _, err := e.log.Add(context.Background(), testEntry(i)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the fail-open checkpoint", func() bool { return e.log.Checkpoint().Size == 20 })
	// The published size never goes backwards across a restart: not with
	// fail-open, nor when the operator drops fail-open.
	for _, restart := range []Config{cfg, {Witness: w, WitnessInterval: 10 * time.Millisecond}} {
		e.reopen(restart)
		if got := e.checkpoint().Size; got != 20 {
			t.Fatalf("published size after restart %d, want 20", got)
		}
	}
	// When the witnesses come back, the same tree is published cosigned.
	w.set(true)
	waitFor(t, "the cosigned checkpoint", func() bool { return bytes.HasSuffix(e.log.Checkpoint().Note, cosig) })
	if got := e.checkpoint().Size; got != 20 {
		t.Errorf("cosigned size %d, want 20", got)
	}
}

func TestAddingWitnessPolicyKeepsPublished(t *testing.T) {
	e := newEnv(t)
	for i := range 20 {
		if _, err := e.log.Add(context.Background(), testEntry(i)); err != nil {
			t.Fatal(err)
		}
	}
	// The log had published size 20 unwitnessed; a witness policy whose
	// witnesses are down must not take that back.
	w := &fakeWitness{t: t}
	e.reopen(Config{Witness: w, WitnessInterval: 10 * time.Millisecond})
	waitFor(t, "a witnessing attempt", func() bool { w.mu.Lock(); defer w.mu.Unlock(); return w.calls > 0 })
	if got := e.checkpoint().Size; got != 20 {
		t.Fatalf("published size %d after adding a witness policy, want 20", got)
	}
	// Fail-open publishes 21 and stores it; then the log runs unwitnessed
	// to 25, and witnessed again: it must not go back to the stored 21.
	e.reopen(Config{Witness: w, WitnessFailOpen: true, WitnessInterval: 10 * time.Millisecond})
	if _, err := e.log.Add(context.Background(), testEntry(20)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the fail-open checkpoint", func() bool { return e.log.Checkpoint().Size == 21 })
	e.reopen(Config{})
	for i := 21; i < 25; i++ {
		if _, err := e.log.Add(context.Background(), testEntry(i)); err != nil {
			t.Fatal(err)
		}
	}
	e.reopen(Config{Witness: w, WitnessInterval: 10 * time.Millisecond})
	if got := e.checkpoint().Size; got != 25 {
		t.Fatalf("published size %d witnessed after an unwitnessed run to 25", got)
	}
}

// TestReadsServeIntegratedTree: checkpoints sent to witnesses are public,
// and tlog-tiles says "Logs MUST serve partial tiles corresponding to tree
// sizes for which a checkpoint was produced": while the quorum is not met,
// tiles, entries and proofs still serve the integrated tree.
func TestReadsServeIntegratedTree(t *testing.T) {
	e := newEnv(t)
	w := &fakeWitness{t: t}
	e.reopen(Config{Witness: w, WitnessInterval: 10 * time.Millisecond})
	ctx := context.Background()
	var entries [][]byte
	for i := range 300 {
		entries = append(entries, testEntry(i))
	}
	if _, err := e.log.AddBatch(ctx, entries); err != nil {
		t.Fatal(err)
	}
	if got := e.log.Checkpoint().Size; got != 0 {
		t.Fatalf("published %d without witnesses", got)
	}
	// The checkpoint the witnesses were sent, and an independent check of
	// what is served against it.
	cp, err := parseTestCheckpoint(e.log.latest.Load().Note)
	if err != nil || cp.Size != 300 {
		t.Fatalf("latest checkpoint: %+v, %v", cp, err)
	}
	if _, err := e.log.Tile(ctx, 0, 1, 300-256); err != nil {
		t.Errorf("partial tile at the integrated size: %v", err)
	}
	if _, err := e.log.EntryBundle(ctx, 1, 300-256); err != nil {
		t.Errorf("partial entry bundle at the integrated size: %v", err)
	}
	for _, i := range []uint64{0, 255, 299} {
		p, err := e.log.InclusionProof(ctx, i, 300)
		if err != nil {
			t.Fatalf("inclusion proof of %d: %v", i, err)
		}
		leaf := rfc6962.DefaultHasher.HashLeaf(entries[i])
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, i, 300, leaf, p, cp.Hash); err != nil {
			t.Errorf("inclusion proof of %d: %v", i, err)
		}
	}
	if _, err := e.log.InclusionProof(ctx, 0, 301); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("proof beyond the integrated tree: %v, want ErrOutOfRange", err)
	}
	if _, err := e.log.ConsistencyProof(ctx, 10, 300); err != nil {
		t.Errorf("consistency proof to the integrated size: %v", err)
	}
	n := 0
	if err := e.log.Entries(ctx, 0, 300, func(uint64, []byte) error { n++; return nil }); err != nil || n != 300 {
		t.Errorf("Entries: %d, %v", n, err)
	}
	// Search and proof bundles answer against the published checkpoint.
	if _, err := e.log.ProofBundle(ctx, 0); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("proof bundle beyond the published checkpoint: %v, want ErrOutOfRange", err)
	}
}
