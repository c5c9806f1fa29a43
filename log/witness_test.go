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
	if cp := e.log.Checkpoint(); len(cp.Note) != 0 {
		t.Fatalf("published %d bytes without witnesses", len(cp.Note))
	}
	if _, err := e.log.InclusionProof(ctx, 0, 1); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("proof from an unpublished tree: %v", err)
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
