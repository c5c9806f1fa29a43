package witness

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	fnote "github.com/transparency-dev/formats/note"
	fwitness "github.com/transparency-dev/formats/witness"
	"golang.org/x/mod/sumdb/note"
)

// inProcessWitness is a witness with its own key behind an httptest server.
type inProcessWitness struct {
	*Witness
	srv  *httptest.Server
	vkey string
}

func newInProcessWitness(t *testing.T, name string, logs ...LogConfig) *inProcessWitness {
	t.Helper()
	skey, vkey, err := GenerateKey(name)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ParseKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	st, err := OpenState(t.TempDir(), StateOptions{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	w, err := New(Config{Signer: k.Signer, Logs: logs, State: st, Registry: prometheus.NewRegistry(), Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(w.Handler())
	t.Cleanup(srv.Close)
	return &inProcessWitness{Witness: w, srv: srv, vkey: vkey}
}

func TestClientQuorum(t *testing.T) {
	lg := newTestLog(t, "example.com/log")
	var ws []*inProcessWitness
	var policy strings.Builder
	for i := range 3 {
		w := newInProcessWitness(t, fmt.Sprintf("witness.test/w%d", i), lg.config(t))
		ws = append(ws, w)
		fmt.Fprintf(&policy, "witness w%d %s %s\n", i, w.vkey, w.srv.URL)
	}
	policy.WriteString("group g 2 w0 w1 w2\nquorum g\n")
	c, err := NewClient(ClientConfig{Policy: []byte(policy.String()), Timeout: 5 * time.Second, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	g, err := fwitness.ParsePolicy([]byte(policy.String()))
	if err != nil {
		t.Fatal(err)
	}
	logV, _ := note.NewVerifier(lg.vkey)

	grow := func(n int, wantSatisfied bool, wantCosigned int) {
		t.Helper()
		lg.add(t, n, "a")
		res, err := c.Cosign(t.Context(), lg.checkpoint(t, lg.n), lg.proofFunc(t))
		if err != nil {
			t.Fatal(err)
		}
		if res.Satisfied != wantSatisfied || len(res.Cosigned) != wantCosigned {
			t.Fatalf("size %d: satisfied %v with %d cosignatures (failed: %v), want %v with %d", lg.n, res.Satisfied, len(res.Cosigned), res.Failed, wantSatisfied, wantCosigned)
		}
		// The result is the log's checkpoint plus verifiable cosignatures,
		// and Satisfied agrees with the policy evaluated independently.
		if _, err := note.Open(res.Checkpoint, note.VerifierList(logV)); err != nil {
			t.Fatalf("result checkpoint: %v", err)
		}
		if g.Satisfied(res.Checkpoint) != wantSatisfied {
			t.Fatalf("policy on the result: %v, want %v", !wantSatisfied, wantSatisfied)
		}
	}
	grow(3, true, 3)  // all up; first contact (old 0)
	grow(4, true, 3)  // all up; proofs from the last size
	ws[2].srv.Close() // one down
	grow(2, true, 2)
	ws[1].srv.Close() // two down
	grow(5, false, 1)
}

// A client that does not know a witness's size learns it from the 409 and
// retries once with a proof from it.
func TestClientResyncsOn409(t *testing.T) {
	lg := newTestLog(t, "example.com/log")
	lg.add(t, 6, "a")
	w := newInProcessWitness(t, "witness.test/w", lg.config(t))
	// Another client of this log already brought the witness to size 6.
	if _, err := w.AddCheckpoint(t.Context(), &AddCheckpointRequest{Checkpoint: lg.checkpoint(t, 6)}); err != nil {
		t.Fatal(err)
	}
	lg.add(t, 5, "a")
	policy := fmt.Sprintf("witness w %s %s\nquorum w\n", w.vkey, w.srv.URL)
	var froms []uint64
	c, err := NewClient(ClientConfig{Policy: []byte(policy), Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	proof := func(ctx context.Context, from, to uint64) ([][]byte, error) {
		froms = append(froms, from)
		return lg.proofFunc(t)(ctx, from, to)
	}
	res, err := c.Cosign(t.Context(), lg.checkpoint(t, 11), proof)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Satisfied || len(froms) != 1 || froms[0] != 6 {
		t.Fatalf("satisfied %v, proofs from %v (failed %v); want satisfied with one proof from 6", res.Satisfied, froms, res.Failed)
	}
	// Next time the client knows the size: no 409.
	lg.add(t, 1, "a")
	if res, err := c.Cosign(t.Context(), lg.checkpoint(t, 12), proof); err != nil || !res.Satisfied || froms[1] != 11 {
		t.Fatalf("second: %v %v, proofs from %v", res, err, froms)
	}
}

// Witnesses that misbehave count as failed, and a hanging witness does
// not block Cosign beyond its timeout.
func TestClientWitnessFailures(t *testing.T) {
	lg := newTestLog(t, "example.com/log")
	lg.add(t, 4, "a")
	good := newInProcessWitness(t, "witness.test/good", lg.config(t))
	other := newInProcessWitness(t, "witness.test/other", lg.config(t)) // signs, but not with the key in the policy
	_, wrongKey, err := GenerateKey("witness.test/other")
	if err != nil {
		t.Fatal(err)
	}
	block := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { <-block }))
	t.Cleanup(func() { close(block); hang.Close() })
	conflictLoop := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "text/x.tlog.size")
		rw.WriteHeader(409)
		fmt.Fprintf(rw, "2\n")
	}))
	t.Cleanup(conflictLoop.Close)
	_, hangKey, _ := GenerateKey("witness.test/hang")
	_, loopKey, _ := GenerateKey("witness.test/loop")
	policy := fmt.Sprintf("witness good %s %s\nwitness other %s %s\nwitness hang %s %s\nwitness loop %s %s\ngroup all4 all good other hang loop\nquorum all4\n",
		good.vkey, good.srv.URL, wrongKey, other.srv.URL, hangKey, hang.URL, loopKey, conflictLoop.URL)
	c, err := NewClient(ClientConfig{Policy: []byte(policy), Timeout: 300 * time.Millisecond, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res, err := c.Cosign(t.Context(), lg.checkpoint(t, 4), lg.proofFunc(t))
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Cosign took %v with a 300ms timeout", d)
	}
	if res.Satisfied || len(res.Cosigned) != 1 || res.Cosigned[0] != good.srv.URL+"/add-checkpoint" || len(res.Failed) != 3 {
		t.Fatalf("cosigned %v, failed %v; want only the good witness", res.Cosigned, res.Failed)
	}
	for u, err := range res.Failed {
		t.Logf("%s: %v", u, err)
	}
	if _, err := c.Cosign(t.Context(), []byte("not a checkpoint"), lg.proofFunc(t)); err == nil {
		t.Error("Cosign of garbage: no error")
	}
}

// A witness may write its cosignature in non-canonical base64 (unpadded,
// stray trailing bits). The Client re-encodes what it copies, so that the
// cosigned checkpoint has canonical lines only and verifies with
// golang.org/x/mod/sumdb/note; other lines in the response are ignored.
func TestClientReencodesCosignatures(t *testing.T) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for name, rewrite := range map[string]func(b64 string) string{
		"unpadded": func(b64 string) string { return strings.TrimRight(b64, "=") },
		"trailing bits": func(b64 string) string {
			b := []byte(b64)
			k := len(strings.TrimRight(b64, "=")) - 1 // carries unused bits: 76 bytes
			b[k] = alphabet[strings.IndexByte(alphabet, b[k])^1]
			return string(b)
		},
		"with junk lines": func(b64 string) string {
			return b64 + "\n— junk.example/k !!!\n— junk.example/k AAAA"
		},
	} {
		t.Run(name, func(t *testing.T) {
			lg := newTestLog(t, "example.com/log")
			lg.add(t, 4, "a")
			real := newInProcessWitness(t, "witness.test/w", lg.config(t))
			srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
				rec := httptest.NewRecorder()
				real.Handler().ServeHTTP(rec, r)
				body := rec.Body.String()
				if rec.Code == 200 {
					line := strings.TrimSuffix(body, "\n")
					i := strings.LastIndexByte(line, ' ')
					body = line[:i+1] + rewrite(line[i+1:]) + "\n"
				}
				rw.WriteHeader(rec.Code)
				io.WriteString(rw, body)
			}))
			t.Cleanup(srv.Close)
			policy := fmt.Sprintf("witness w %s %s\nquorum w\n", real.vkey, srv.URL)
			c, err := NewClient(ClientConfig{Policy: []byte(policy), Logger: quietLogger()})
			if err != nil {
				t.Fatal(err)
			}
			res, err := c.Cosign(t.Context(), lg.checkpoint(t, 4), lg.proofFunc(t))
			if err != nil || !res.Satisfied {
				t.Fatalf("Cosign: %v, %v", err, res.Failed)
			}
			logV, _ := note.NewVerifier(lg.vkey)
			wV, err := fnote.NewVerifierForCosignatureV1(real.vkey)
			if err != nil {
				t.Fatal(err)
			}
			n, err := note.Open(res.Checkpoint, note.VerifierList(logV, wV))
			if err != nil || len(n.Sigs) != 2 || len(n.UnverifiedSigs) != 0 {
				t.Fatalf("cosigned checkpoint: %v, %d signatures, %d unverified\n%s", err, len(n.Sigs), len(n.UnverifiedSigs), res.Checkpoint)
			}
			for _, s := range n.Sigs {
				if b, err := base64.StdEncoding.Strict().DecodeString(s.Base64); err != nil || base64.StdEncoding.EncodeToString(b) != s.Base64 {
					t.Errorf("signature line of %s: %q is not canonical base64", s.Name, s.Base64)
				}
			}
		})
	}
}

// A witness that refuses with a 409 and no tree size (as omniwitness does
// for a same-size fork) is logged as refusing, with the status and the
// body; while it keeps failing it is retried with exponential backoff, not
// on every Cosign; the client logs one WARN when it starts failing and one
// INFO when it recovers, and the backoff starts over after a success.
func TestClientBacksOffFailingWitness(t *testing.T) {
	lg := newTestLog(t, "example.com/log")
	lg.add(t, 4, "a")
	real := newInProcessWitness(t, "witness.test/w", lg.config(t))
	var refuse atomic.Bool
	var requests atomic.Int64
	refuse.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if refuse.Load() {
			rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
			rw.WriteHeader(http.StatusConflict)
			io.WriteString(rw, "same size, different root hash\n")
			return
		}
		real.Handler().ServeHTTP(rw, r)
	}))
	t.Cleanup(srv.Close)
	logger, logs := newLogCapture()
	policy := fmt.Sprintf("witness w %s %s\nquorum w\n", real.vkey, srv.URL)
	c, err := NewClient(ClientConfig{Policy: []byte(policy), Logger: logger, MinBackoff: time.Second, MaxBackoff: 4 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_000_000_000, 0)
	c.now = func() time.Time { return now }
	cp := lg.checkpoint(t, 4)
	cosign := func(calls int, wantSatisfied bool) {
		t.Helper()
		for range calls {
			res, err := c.Cosign(t.Context(), cp, lg.proofFunc(t))
			if err != nil || res.Satisfied != wantSatisfied {
				t.Fatalf("at %v: Cosign: %v, failed %v; want satisfied %v", now, err, res.Failed, wantSatisfied)
			}
			now = now.Add(100 * time.Millisecond)
		}
	}
	cosign(60, false) // 6 s: tries at 0 s, 1 s and 3 s (backoff 1, 2, then 4 s)
	if n := requests.Load(); n != 3 {
		t.Errorf("%d requests to a refusing witness over 60 Cosign calls in 6 s, want 3", n)
	}
	warns := logs.at(slog.LevelWarn)
	if len(warns) != 1 {
		t.Fatalf("%d WARN lines, want 1: %v", len(warns), warns)
	}
	t.Logf("WARN: %s", warns[0].text)
	if w := warns[0].text; !strings.Contains(w, "refused") || !strings.Contains(w, "409") || !strings.Contains(w, "same size, different root hash") || strings.Contains(w, "malformed") {
		t.Errorf("WARN line does not say the witness refused, with the status and body: %s", w)
	}

	refuse.Store(false)
	now = now.Add(time.Second) // 7 s: the next try
	cosign(20, true)
	if n := requests.Load(); n != 3+20 {
		t.Errorf("%d requests after recovery, want 23", n)
	}
	var recovered []capturedRecord
	for _, r := range logs.at(slog.LevelInfo) {
		if strings.Contains(r.msg, "recovered") {
			recovered = append(recovered, r)
		}
	}
	if len(recovered) != 1 || len(logs.at(slog.LevelWarn)) != 1 {
		t.Errorf("%d recovery INFO lines and %d WARN lines, want 1 and 1", len(recovered), len(logs.at(slog.LevelWarn)))
	}

	// Failing again: the backoff starts over from MinBackoff.
	refuse.Store(true)
	cosign(11, false) // tries at 0 and 1 s
	if n := requests.Load(); n != 23+2 {
		t.Errorf("%d requests, want 25: the backoff did not start over after the success", n)
	}
	if n := len(logs.at(slog.LevelWarn)); n != 2 {
		t.Errorf("%d WARN lines after failing again, want 2", n)
	}
}

// Concurrent Cosign calls share the witnesses' state safely (run with
// -race), and a witness's change of state is still logged once.
func TestClientConcurrentCosign(t *testing.T) {
	lg := newTestLog(t, "example.com/log")
	lg.add(t, 4, "a")
	good := newInProcessWitness(t, "witness.test/good", lg.config(t))
	bad := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		http.Error(rw, "overloaded", http.StatusServiceUnavailable)
	}))
	t.Cleanup(bad.Close)
	_, badKey, _ := GenerateKey("witness.test/bad")
	policy := fmt.Sprintf("witness good %s %s\nwitness bad %s %s\ngroup g any good bad\nquorum g\n", good.vkey, good.srv.URL, badKey, bad.URL)
	logger, logs := newLogCapture()
	c, err := NewClient(ClientConfig{Policy: []byte(policy), Logger: logger, MinBackoff: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	cp := lg.checkpoint(t, 4)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 10 {
				if res, err := c.Cosign(t.Context(), cp, lg.proofFunc(t)); err != nil || !res.Satisfied {
					t.Errorf("Cosign: %v, failed %v", err, res.Failed)
				}
			}
		})
	}
	wg.Wait()
	if warns := logs.at(slog.LevelWarn); len(warns) != 1 || !strings.Contains(warns[0].text, "503") {
		t.Errorf("WARN lines %v, want one naming the 503", warns)
	}
}

// A witness that has cosigned a larger tree than the checkpoint (the log is
// behind it, or a fork of it) is sent nothing, and that does not count as
// its failure: the next checkpoint beyond its size goes to it at once,
// with no backoff. (TestWitnessedLog's fork relies on it: the fork's first
// checkpoints are below the witnesses' size.)
func TestClientWitnessAheadIsNoFailure(t *testing.T) {
	lg := newTestLog(t, "example.com/log")
	lg.add(t, 8, "a")
	w := newInProcessWitness(t, "witness.test/w", lg.config(t))
	if _, err := w.AddCheckpoint(t.Context(), &AddCheckpointRequest{Checkpoint: lg.checkpoint(t, 6)}); err != nil {
		t.Fatal(err)
	}
	logger, logs := newLogCapture()
	policy := fmt.Sprintf("witness w %s %s\nquorum w\n", w.vkey, w.srv.URL)
	c, err := NewClient(ClientConfig{Policy: []byte(policy), Logger: logger, MinBackoff: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_000_000_000, 0)
	c.now = func() time.Time { return now } // no time passes
	for range 3 {
		res, err := c.Cosign(t.Context(), lg.checkpoint(t, 4), lg.proofFunc(t))
		if err != nil || res.Satisfied || !errors.Is(res.Failed[w.srv.URL+"/add-checkpoint"], ErrWitnessAhead) {
			t.Fatalf("checkpoint below the witness: %v, failed %v; want ErrWitnessAhead", err, res.Failed)
		}
	}
	if res, err := c.Cosign(t.Context(), lg.checkpoint(t, 8), lg.proofFunc(t)); err != nil || !res.Satisfied {
		t.Fatalf("checkpoint beyond the witness: %v, failed %v; want cosigned at once", err, res.Failed)
	}
	if n := len(logs.at(slog.LevelWarn)); n != 0 {
		t.Errorf("%d WARN lines, want none: the witness never failed", n)
	}
}
