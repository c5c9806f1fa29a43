package witness

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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
