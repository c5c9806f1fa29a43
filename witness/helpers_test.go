package witness

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// testLog is an in-memory RFC 6962 log built with sumdb/tlog, signing
// checkpoints with an Ed25519 note key. fork copies it, key included, so
// two logs can diverge.
type testLog struct {
	origin string
	skey   string
	vkey   string
	signer note.Signer
	hashes []tlog.Hash // stored hashes (tlog layout)
	n      int64
}

func newTestLog(t testing.TB, origin string) *testLog {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return &testLog{origin: origin, skey: skey, vkey: vkey, signer: s}
}

func (l *testLog) reader() tlog.HashReader {
	return tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = l.hashes[x]
		}
		return out, nil
	})
}

// add appends n entries, named with prefix.
func (l *testLog) add(t testing.TB, n int, prefix string) {
	t.Helper()
	for range n {
		hs, err := tlog.StoredHashes(l.n, fmt.Appendf(nil, "%s-%d", prefix, l.n), l.reader())
		if err != nil {
			t.Fatal(err)
		}
		l.hashes = append(l.hashes, hs...)
		l.n++
	}
}

func (l *testLog) fork() *testLog {
	c := *l
	c.hashes = append([]tlog.Hash(nil), l.hashes...)
	return &c
}

func (l *testLog) root(t testing.TB, n int64) [32]byte {
	t.Helper()
	h, err := tlog.TreeHash(n, l.reader())
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// proof is the consistency proof from size from to size to.
func (l *testLog) proof(t testing.TB, from, to int64) [][]byte {
	t.Helper()
	if from == 0 || from == to {
		return nil
	}
	p, err := tlog.ProveTree(to, from, l.reader())
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]byte, len(p))
	for i := range p {
		out[i] = p[i][:]
	}
	return out
}

func (l *testLog) proofFunc(t testing.TB) ConsistencyProofFunc {
	return func(_ context.Context, from, to uint64) ([][]byte, error) {
		return l.proof(t, int64(from), int64(to)), nil
	}
}

// signText signs an arbitrary note text with the log key.
func (l *testLog) signText(t testing.TB, text string) []byte {
	t.Helper()
	msg, err := note.Sign(&note.Note{Text: text}, l.signer)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// checkpoint returns the signed checkpoint at size n.
func (l *testLog) checkpoint(t testing.TB, n int64) []byte {
	t.Helper()
	return l.signText(t, string(Checkpoint{Origin: l.origin, Size: uint64(n), Hash: l.root(t, n)}.Marshal()))
}

func (l *testLog) config(t testing.TB) LogConfig {
	t.Helper()
	v, err := note.NewVerifier(l.vkey)
	if err != nil {
		t.Fatal(err)
	}
	return LogConfig{Origin: l.origin, Verifiers: []note.Verifier{v}}
}

// request builds an add-checkpoint body from old to size n.
func (l *testLog) request(t testing.TB, old, n int64) []byte {
	t.Helper()
	return AddCheckpointRequest{OldSize: uint64(old), Proof: l.proof(t, old, n), Checkpoint: l.checkpoint(t, n)}.Marshal()
}

var testWitnessKey = func() *Key {
	skey, _, err := GenerateKey("witness.test/w1")
	if err != nil {
		panic(err)
	}
	k, err := ParseKey(skey)
	if err != nil {
		panic(err)
	}
	return k
}()

type testWitness struct {
	*Witness
	state *PebbleState
	dir   string
	key   *Key
}

// newTestWitness opens a witness with state in dir (a new temp dir if "").
func newTestWitness(t testing.TB, dir string, logs ...LogConfig) *testWitness {
	t.Helper()
	if dir == "" {
		dir = filepath.Join(t.TempDir(), "db")
	}
	st, err := OpenState(dir, StateOptions{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	w, err := New(Config{Signer: testWitnessKey.Signer, Logs: logs, State: st, Registry: prometheus.NewRegistry(), Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	return &testWitness{Witness: w, state: st, dir: dir, key: testWitnessKey}
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type response struct {
	code        int
	contentType string
	body        string
}

func do(t testing.TB, h http.Handler, method, path string, body []byte) response {
	t.Helper()
	r := httptest.NewRequest(method, path, bytes.NewReader(body))
	rw := httptest.NewRecorder()
	h.ServeHTTP(rw, r)
	return response{rw.Code, rw.Header().Get("Content-Type"), rw.Body.String()}
}

func fnoteVerifier(vkey string) (note.Verifier, error) {
	return fnote.NewVerifierForCosignatureV1(vkey)
}

// logCapture is a slog.Handler that keeps every record, for tests that
// assert what was logged. Handlers made by WithAttrs share its records.
type logCapture struct {
	log   *capturedLog
	attrs []slog.Attr
}

type capturedLog struct {
	mu      sync.Mutex
	records []capturedRecord
}

type capturedRecord struct {
	level slog.Level
	msg   string
	text  string // the record as slog's TextHandler prints it
}

func newLogCapture() (*slog.Logger, *logCapture) {
	c := &logCapture{log: &capturedLog{}}
	return slog.New(c), c
}

func (c *logCapture) Enabled(context.Context, slog.Level) bool { return true }

func (c *logCapture) Handle(ctx context.Context, r slog.Record) error {
	var b bytes.Buffer
	h := slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelDebug}).WithAttrs(c.attrs)
	if err := h.Handle(ctx, r); err != nil {
		return err
	}
	c.log.mu.Lock()
	defer c.log.mu.Unlock()
	c.log.records = append(c.log.records, capturedRecord{r.Level, r.Message, b.String()})
	return nil
}

func (c *logCapture) WithAttrs(as []slog.Attr) slog.Handler {
	return &logCapture{log: c.log, attrs: append(slices.Clone(c.attrs), as...)}
}

func (c *logCapture) WithGroup(string) slog.Handler { return c }

// captureLogs makes w log to a new logCapture, and returns it.
func (w *testWitness) captureLogs() *logCapture {
	logger, c := newLogCapture()
	w.logger = logger
	return c
}

// all returns every record logged so far.
func (c *logCapture) all() []capturedRecord {
	c.log.mu.Lock()
	defer c.log.mu.Unlock()
	return slices.Clone(c.log.records)
}

// at returns the records logged at level.
func (c *logCapture) at(level slog.Level) []capturedRecord {
	var out []capturedRecord
	for _, r := range c.all() {
		if r.level == level {
			out = append(out, r)
		}
	}
	return out
}
