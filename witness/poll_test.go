package witness

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/storage/posix"
	"golang.org/x/mod/sumdb/note"
)

// tesseraLog is a Tessera POSIX log in a temp dir, served over HTTP.
type tesseraLog struct {
	dir      string
	srv      *httptest.Server
	appender *tessera.Appender
	awaiter  *tessera.PublicationAwaiter
	shutdown func(context.Context) error
	cancel   context.CancelFunc
	log      *testLog // the key; its tree is unused
}

func newTesseraLog(t *testing.T, origin string) *tesseraLog {
	t.Helper()
	tl := &tesseraLog{dir: t.TempDir(), log: newTestLog(t, origin)}
	// Cancelled by stop, before the temp dir is removed: Tessera's
	// background goroutines write into it until then.
	ctx, cancel := context.WithCancel(context.Background())
	tl.cancel = cancel
	driver, err := posix.New(ctx, posix.Config{Path: tl.dir})
	if err != nil {
		t.Fatal(err)
	}
	opts := tessera.NewAppendOptions().
		WithCheckpointSigner(tl.log.signer).
		WithBatching(64, 10*time.Millisecond).
		WithCheckpointInterval(100 * time.Millisecond).
		WithGarbageCollectionInterval(0) // no background deletes racing the temp dir cleanup
	a, shutdown, reader, err := tessera.NewAppender(ctx, driver, opts)
	if err != nil {
		t.Fatal(err)
	}
	tl.appender, tl.shutdown = a, shutdown
	tl.awaiter = tessera.NewPublicationAwaiter(ctx, reader.ReadCheckpoint, 10*time.Millisecond)
	tl.srv = httptest.NewServer(http.FileServer(http.Dir(tl.dir)))
	t.Cleanup(func() {
		tl.srv.Close()
		tl.stop(t)
	})
	return tl
}

// stop shuts the appender down, so that it publishes no more checkpoints;
// the files stay served.
func (tl *tesseraLog) stop(t *testing.T) {
	if tl.shutdown == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tl.shutdown(ctx); err != nil {
		t.Errorf("shutting down the Tessera appender: %v", err)
	}
	tl.shutdown = nil
	tl.cancel()
}

// add appends n entries and waits until a checkpoint covering them is
// published; it returns that checkpoint's size.
func (tl *tesseraLog) add(t *testing.T, n int) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var futures []tessera.IndexFuture
	for i := range n {
		futures = append(futures, tl.appender.Add(ctx, tessera.NewEntry(fmt.Appendf(nil, "entry %d %d", i, time.Now().UnixNano()))))
	}
	var size uint64
	for _, f := range futures {
		idx, cp, err := tl.awaiter.Await(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		c, err := ParseCheckpointText(splitText(cp))
		if err != nil {
			t.Fatal(err)
		}
		size = max(size, c.Size, idx.Index+1)
	}
	return size
}

func splitText(msg []byte) []byte {
	text, _, _ := splitNote(msg)
	return text
}

func (tl *tesseraLog) config(t *testing.T) LogConfig {
	c := tl.log.config(t)
	c.URL = tl.srv.URL + "/"
	return c
}

func TestPollTesseraPOSIXLog(t *testing.T) {
	tl := newTesseraLog(t, "example.com/tessera")
	w := newTestWitness(t, "", tl.config(t))
	ctx := t.Context()
	origin := tl.log.origin

	cosigned := func(want uint64) []byte {
		t.Helper()
		rec, ok, err := w.state.Latest(ctx, origin)
		if err != nil || !ok || rec.Size < want {
			t.Fatalf("cosigned %d (%v, %v), want at least %d", rec.Size, ok, err, want)
		}
		return rec.Checkpoint
	}

	size := tl.add(t, 300) // more than a full tile: proofs span tile levels
	firstSize := size
	cosig, err := w.Poll(ctx, origin)
	if err != nil || cosig == nil {
		t.Fatalf("first poll: %q, %v", cosig, err)
	}
	first := cosigned(size)
	if cosig, err := w.Poll(ctx, origin); err != nil || cosig != nil {
		t.Errorf("poll of an unchanged log: %q, %v; want nothing to do", cosig, err)
	}

	size = tl.add(t, 50)
	if cosig, err = w.Poll(ctx, origin); err != nil || cosig == nil {
		t.Fatalf("second poll: %q, %v", cosig, err)
	}
	second := cosigned(size)
	wV, _ := witnessVerifier(t, w)
	logV, _ := note.NewVerifier(tl.log.vkey)
	if n, err := note.Open(second, note.VerifierList(logV, wV)); err != nil || len(n.Sigs) != 2 {
		t.Fatalf("cosigned checkpoint does not verify: %v", err)
	}

	// The log grows further, unseen by the witness, and stops; then we
	// make it misbehave by rewriting its checkpoint file.
	size3 := tl.add(t, 20)
	tl.stop(t)
	real3, err := os.ReadFile(filepath.Join(tl.dir, "checkpoint"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		checkpoint []byte
		kind       EvidenceKind
	}{
		// Stale, not a fork: the tiles prove it consistent (this case
		// was rollback evidence before).
		{"the first cosigned checkpoint again", trimCosig(first), ""},
		{"smaller, root not backed by the tiles", tl.log.signText(t, string(Checkpoint{Origin: origin, Size: firstSize, Hash: [32]byte{3}}.Marshal())), KindRollback},
		{"same size, other root", tl.log.signText(t, string(Checkpoint{Origin: origin, Size: size, Hash: [32]byte{1}}.Marshal())), KindSameSizeDifferentRoot},
		{"larger, root not backed by the tiles", tl.log.signText(t, string(Checkpoint{Origin: origin, Size: size3, Hash: [32]byte{2}}.Marshal())), KindInconsistentProof},
	} {
		if err := os.WriteFile(filepath.Join(tl.dir, "checkpoint"), tc.checkpoint, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err = w.Poll(ctx, origin)
		var fe *ForkError
		switch {
		case tc.kind == "" && err != nil:
			t.Errorf("%s: %v, want no error", tc.name, err)
		case tc.kind != "" && (!errors.As(err, &fe) || fe.Evidence.Kind != tc.kind):
			t.Errorf("%s: %v, want a *ForkError of kind %s", tc.name, err, tc.kind)
		}
		if rec, _, _ := w.state.Latest(ctx, origin); rec.Size != size {
			t.Fatalf("%s: cosigned size %d after a refusal, want %d", tc.name, rec.Size, size)
		}
	}
	if ev, err := w.Evidence(ctx, origin); err != nil || len(ev) != 3 {
		t.Errorf("evidence: %d records (%v), want 3", len(ev), err)
	}
	// The real checkpoint is still consistent and gets cosigned.
	if err := os.WriteFile(filepath.Join(tl.dir, "checkpoint"), real3, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Poll(ctx, origin); err != nil {
		t.Fatalf("real checkpoint after the refusals: %v", err)
	}
	cosigned(size3)
}

// trimCosig drops the last signature line (the witness's) of a checkpoint.
func trimCosig(cp []byte) []byte {
	i := len(cp) - 1
	for i > 0 && cp[i-1] != '\n' {
		i--
	}
	return cp[:i]
}

func witnessVerifier(t *testing.T, w *testWitness) (note.Verifier, error) {
	t.Helper()
	v, err := fnoteVerifier(w.key.Verifier)
	if err != nil {
		t.Fatal(err)
	}
	return v, nil
}

func TestRunPollsAndStops(t *testing.T) {
	tl := newTesseraLog(t, "example.com/tessera")
	size := tl.add(t, 5)
	w := newTestWitness(t, "", tl.config(t))
	w.interval = 10 * time.Millisecond
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		rec, ok, _ := w.state.Latest(t.Context(), tl.log.origin)
		if ok && rec.Size == size {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Run did not cosign the log")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop")
	}
}

// A witness that cosigned size N by push and then polls the log serving a
// smaller checkpoint M < N, consistent with N by the log's tiles, records
// no evidence: the log is stale, which provlog_witness_polled_tree_size
// and the "stale" poll result show. A smaller checkpoint inconsistent with
// N is rollback evidence.
func TestPollStaleIsNotEvidence(t *testing.T) {
	tl := newTesseraLog(t, "example.com/tessera")
	w := newTestWitness(t, "", tl.config(t))
	ctx := t.Context()
	origin := tl.log.origin
	cpFile := filepath.Join(tl.dir, "checkpoint")

	small := tl.add(t, 20)
	older, err := os.ReadFile(cpFile)
	if err != nil {
		t.Fatal(err)
	}
	big := tl.add(t, 30)
	tl.stop(t)
	newer, err := os.ReadFile(cpFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.AddCheckpoint(ctx, &AddCheckpointRequest{Checkpoint: newer}); err != nil {
		t.Fatalf("push of size %d: %v", big, err)
	}
	if err := os.WriteFile(cpFile, older, 0o644); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if cosig, err := w.Poll(ctx, origin); err != nil || cosig != nil {
			t.Fatalf("poll of a stale log: %q, %v; want nothing, no error", cosig, err)
		}
	}
	if ev, err := w.Evidence(ctx, origin); err != nil || len(ev) != 0 {
		t.Fatalf("evidence after stale polls: %d (%v), want none", len(ev), err)
	}
	metrics := do(t, w.Handler(), "GET", "/metrics", nil).body
	for _, want := range []string{
		fmt.Sprintf("provlog_witness_polled_tree_size{origin=%q} %d\n", origin, small),
		fmt.Sprintf("provlog_witness_cosigned_tree_size{origin=%q} %d\n", origin, big),
		fmt.Sprintf("provlog_witness_polls_total{origin=%q,result=\"stale\"} 2\n", origin),
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q:\n%s", want, metrics)
		}
	}

	forged := tl.log.signText(t, string(Checkpoint{Origin: origin, Size: small, Hash: [32]byte{4}}.Marshal()))
	if err := os.WriteFile(cpFile, forged, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = w.Poll(ctx, origin)
	var fe *ForkError
	if !errors.As(err, &fe) || fe.Evidence.Kind != KindRollback {
		t.Fatalf("poll of a smaller inconsistent checkpoint: %v, want a *ForkError of kind %s", err, KindRollback)
	}
	ev, err := w.Evidence(ctx, origin)
	if err != nil || len(ev) != 1 {
		t.Fatalf("evidence: %d (%v), want 1", len(ev), err)
	}
	// The evidence stands on its own: the proof connects the cosigned
	// root to no tree whose root at the smaller size is the refused one.
	e := ev[0]
	c, err := ParseCheckpointText(noteText(e.Refused))
	if err != nil || c.Size != small || e.OldSize != small {
		t.Fatalf("refused checkpoint %+v (%v), old size %d", c, err, e.OldSize)
	}
	rec, _, _ := w.state.Latest(ctx, origin)
	if proof.VerifyConsistency(rfc6962.DefaultHasher, small, big, e.Proof, c.Hash[:], rec.Hash[:]) == nil {
		t.Error("rollback evidence: the proof verifies")
	}
	if real, err := ParseCheckpointText(splitText(older)); err != nil || proof.VerifyConsistency(rfc6962.DefaultHasher, small, big, e.Proof, real.Hash[:], rec.Hash[:]) != nil {
		t.Errorf("rollback evidence: the proof is not the log's own (%v)", err)
	}
}

// TestPollLoopLogsChangesOfState: a log whose polls keep failing is logged
// once when they start failing and once when they succeed again, not on
// every poll.
func TestPollLoopLogsChangesOfState(t *testing.T) {
	tl := newTesseraLog(t, "example.com/tessera")
	size := tl.add(t, 3)
	var down atomic.Bool
	down.Store(true)
	files := http.FileServer(http.Dir(tl.dir))
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(rw, "down", http.StatusServiceUnavailable)
			return
		}
		files.ServeHTTP(rw, r)
	}))
	t.Cleanup(srv.Close)
	cfg := tl.config(t)
	cfg.URL = srv.URL + "/"
	w := newTestWitness(t, "", cfg)
	w.interval = 5 * time.Millisecond
	logs := w.captureLogs()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); w.pollLoop(ctx, cfg) }()
	t.Cleanup(func() { cancel(); <-done })
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	waitUntil("20 failed polls", func() bool { return len(logs.at(slog.LevelDebug)) >= 19 })
	down.Store(false)
	waitUntil("the cosigned log", func() bool {
		rec, ok, _ := w.state.Latest(t.Context(), tl.log.origin)
		return ok && rec.Size == size
	})
	recovered := func() (n int) {
		for _, r := range logs.at(slog.LevelInfo) {
			if r.msg == "polling log recovered" {
				n++
			}
		}
		return n
	}
	waitUntil("the recovery line", func() bool { return recovered() > 0 })
	time.Sleep(50 * time.Millisecond) // more successful polls
	if warns := logs.at(slog.LevelWarn); len(warns) != 1 || !strings.Contains(warns[0].text, "503") {
		t.Errorf("%d WARN lines for a log down for 20 polls, want 1 naming the failure: %v", len(warns), warns)
	}
	if n := recovered(); n != 1 {
		t.Errorf("%d recovery lines, want 1", n)
	}
}
