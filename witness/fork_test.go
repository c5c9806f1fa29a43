package witness

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

// Two logs with the same key and origin diverge after 5 entries. The
// witness, which follows one, refuses the other on first contact, and the
// evidence is stored and served.
func TestForkRefusedWithEvidence(t *testing.T) {
	lg := newTestLog(t, "example.com/log")
	lg.add(t, 5, "a")
	fork := lg.fork()
	lg.add(t, 4, "a")
	fork.add(t, 6, "b")
	w := newTestWitness(t, "", lg.config(t))
	ctx := t.Context()

	if _, err := w.AddCheckpoint(ctx, &AddCheckpointRequest{Checkpoint: lg.checkpoint(t, 9)}); err != nil {
		t.Fatal(err)
	}
	// Same size, other root.
	_, err := w.AddCheckpoint(ctx, &AddCheckpointRequest{OldSize: 9, Checkpoint: fork.checkpoint(t, 9)})
	var fe *ForkError
	if !errors.As(err, &fe) || !errors.Is(err, ErrInconsistent) || fe.Evidence.Kind != KindSameSizeDifferentRoot {
		t.Fatalf("same size, other root: %v, want a *ForkError of kind %s", err, KindSameSizeDifferentRoot)
	}
	// Larger, with the fork's own (valid for the fork) proof.
	_, err = w.AddCheckpoint(ctx, &AddCheckpointRequest{OldSize: 9, Proof: fork.proof(t, 9, 11), Checkpoint: fork.checkpoint(t, 11)})
	if !errors.As(err, &fe) || fe.Evidence.Kind != KindInconsistentProof {
		t.Fatalf("larger fork: %v, want a *ForkError of kind %s", err, KindInconsistentProof)
	}
	// The same request again is the same evidence, stored once.
	if _, err := w.AddCheckpoint(ctx, &AddCheckpointRequest{OldSize: 9, Proof: fork.proof(t, 9, 11), Checkpoint: fork.checkpoint(t, 11)}); !errors.Is(err, ErrInconsistent) {
		t.Fatal(err)
	}

	r := do(t, w.Handler(), "GET", "/"+OriginHash(lg.origin)+"/evidence", nil)
	if r.code != 200 {
		t.Fatalf("GET evidence: %d", r.code)
	}
	var ev []Evidence
	if err := json.Unmarshal([]byte(r.body), &ev); err != nil || len(ev) != 2 {
		t.Fatalf("evidence: %d records (%v), want 2\n%s", len(ev), err, r.body)
	}
	logV, _ := note.NewVerifier(lg.vkey)
	for _, e := range ev {
		// Both checkpoints verify with the log key: the evidence stands
		// on its own.
		a, err := note.Open(e.Cosigned, note.VerifierList(logV))
		if err != nil {
			t.Fatalf("%s: cosigned checkpoint: %v", e.Kind, err)
		}
		b, err := note.Open(e.Refused, note.VerifierList(logV))
		if err != nil {
			t.Fatalf("%s: refused checkpoint: %v", e.Kind, err)
		}
		ca, _ := ParseCheckpointText([]byte(a.Text))
		cb, _ := ParseCheckpointText([]byte(b.Text))
		switch e.Kind {
		case KindSameSizeDifferentRoot:
			if ca.Size != cb.Size || ca.Hash == cb.Hash {
				t.Errorf("same-size evidence: %d %x vs %d %x", ca.Size, ca.Hash, cb.Size, cb.Hash)
			}
		case KindInconsistentProof:
			if err := proof.VerifyConsistency(rfc6962.DefaultHasher, ca.Size, cb.Size, e.Proof, ca.Hash[:], cb.Hash[:]); err == nil {
				t.Error("inconsistent-proof evidence: the proof verifies")
			}
		default:
			t.Errorf("unexpected evidence kind %q", e.Kind)
		}
	}
	if r := do(t, w.Handler(), "GET", "/evidence", nil); r.code != 200 || json.Unmarshal([]byte(r.body), &ev) != nil || len(ev) != 2 {
		t.Errorf("GET /evidence: %d, %d records", r.code, len(ev))
	}
	if r := do(t, w.Handler(), "GET", "/"+OriginHash("nope")+"/evidence", nil); r.code != 404 {
		t.Errorf("evidence of an unknown log: %d, want 404", r.code)
	}
	// The witness still follows the honest log.
	if _, err := w.AddCheckpoint(ctx, &AddCheckpointRequest{OldSize: 9, Proof: lg.proof(t, 9, 9), Checkpoint: lg.checkpoint(t, 9)}); err != nil {
		t.Errorf("honest log after the fork: %v", err)
	}
}

// A witness that first meets the fork follows the fork and refuses the
// other branch: there is no "right" branch, only the first one seen.
func TestForkFirstContactFromTheOtherSide(t *testing.T) {
	lg := newTestLog(t, "example.com/log")
	lg.add(t, 3, "a")
	fork := lg.fork()
	lg.add(t, 3, "a")
	fork.add(t, 3, "b")
	w := newTestWitness(t, "", lg.config(t))
	h := w.Handler()
	if r := do(t, h, "POST", "/add-checkpoint", fork.request(t, 0, 6)); r.code != 200 {
		t.Fatalf("fork first: %d", r.code)
	}
	if r := do(t, h, "POST", "/add-checkpoint", lg.request(t, 6, 6)); r.code != 422 {
		t.Fatalf("other branch: %d, want 422", r.code)
	}
	if ev, err := w.Evidence(t.Context(), ""); err != nil || len(ev) != 1 {
		t.Fatalf("evidence: %d %v", len(ev), err)
	}
}

// A client cannot plant evidence: fifty pushes of the honest log's own
// current checkpoint with random proof hashes are fifty 422s, with no
// evidence stored and no ERROR logged; the honest proof still works after.
func TestRandomProofIsNotEvidence(t *testing.T) {
	lg := newTestLog(t, "example.com/log")
	lg.add(t, 5, "a")
	w := newTestWitness(t, "", lg.config(t))
	logs := w.captureLogs()
	h := w.Handler()
	if r := do(t, h, "POST", "/add-checkpoint", lg.request(t, 0, 5)); r.code != 200 {
		t.Fatalf("first cosignature: %d %q", r.code, r.body)
	}
	lg.add(t, 15, "a")
	n := len(lg.proof(t, 5, 20))
	for i := range 50 {
		p := make([][]byte, n)
		for j := range p {
			p[j] = make([]byte, 32)
			rand.Read(p[j])
		}
		body := AddCheckpointRequest{OldSize: 5, Proof: p, Checkpoint: lg.checkpoint(t, 20)}.Marshal()
		if r := do(t, h, "POST", "/add-checkpoint", body); r.code != 422 {
			t.Fatalf("push %d with a random proof: %d %q, want 422", i, r.code, r.body)
		}
	}
	if ev, err := w.Evidence(t.Context(), ""); err != nil || len(ev) != 0 {
		t.Errorf("evidence after random proofs: %d records (%v), want none", len(ev), err)
	}
	if errs := logs.at(slog.LevelError); len(errs) != 0 {
		t.Errorf("%d ERROR lines after random proofs, want none; first: %s", len(errs), errs[0].text)
	}
	if r := do(t, h, "POST", "/add-checkpoint", lg.request(t, 5, 20)); r.code != 200 {
		t.Errorf("honest proof after the random ones: %d %q", r.code, r.body)
	}
}

// Evidence is deduplicated by content: the same fork pushed again with an
// extra signature line from an unknown key, or after the witness cosigned
// the honest checkpoint again, is one record.
func TestEvidenceDeduplicatedByContent(t *testing.T) {
	lg := newTestLog(t, "example.com/log")
	lg.add(t, 5, "a")
	fork := lg.fork()
	lg.add(t, 3, "a")
	fork.add(t, 3, "b")
	w := newTestWitness(t, "", lg.config(t))
	h := w.Handler()
	if r := do(t, h, "POST", "/add-checkpoint", lg.request(t, 0, 8)); r.code != 200 {
		t.Fatalf("first cosignature: %d %q", r.code, r.body)
	}
	other := newTestLog(t, "example.com/other")
	forked := fork.checkpoint(t, 8)
	cosigned := other.signText(t, string(splitText(forked)))
	extra := append(bytes.Clone(forked), cosigned[bytes.LastIndex(cosigned, []byte("\n\n"))+2:]...)
	push := func(cp []byte) {
		t.Helper()
		if r := do(t, h, "POST", "/add-checkpoint", AddCheckpointRequest{OldSize: 8, Checkpoint: cp}.Marshal()); r.code != 422 {
			t.Fatalf("fork push: %d %q, want 422", r.code, r.body)
		}
	}
	push(forked)
	push(extra)
	time.Sleep(time.Second) // a new cosignature timestamp
	if r := do(t, h, "POST", "/add-checkpoint", lg.request(t, 8, 8)); r.code != 200 {
		t.Fatalf("honest push: %d %q", r.code, r.body)
	}
	push(forked)
	if ev, err := w.Evidence(t.Context(), ""); err != nil || len(ev) != 1 {
		t.Errorf("evidence: %d records (%v), want 1", len(ev), err)
	}
}

// Each log keeps at most MaxEvidence records, the first ones; the rest are
// counted. The evidence endpoints page through what is kept.
func TestEvidenceCapAndPages(t *testing.T) {
	lg := newTestLog(t, "example.com/log")
	lg.add(t, 8, "a")
	w := newTestWitness(t, "", lg.config(t))
	w.maxEv = 5
	logs := w.captureLogs()
	h := w.Handler()
	if r := do(t, h, "POST", "/add-checkpoint", lg.request(t, 0, 8)); r.code != 200 {
		t.Fatalf("first cosignature: %d %q", r.code, r.body)
	}
	var first []string // the IDs of the first five forks, which are kept
	for i := range 7 {
		c := Checkpoint{Origin: lg.origin, Size: 8, Hash: [32]byte{byte(i + 1)}}
		req := &AddCheckpointRequest{OldSize: 8, Checkpoint: lg.signText(t, string(c.Marshal()))}
		if r := do(t, h, "POST", "/add-checkpoint", req.Marshal()); r.code != 422 {
			t.Fatalf("fork %d: %d %q, want 422", i, r.code, r.body)
		}
		if i < 5 {
			_, err := w.AddCheckpoint(t.Context(), req) // the same again: stored already
			var fe *ForkError
			if !errors.As(err, &fe) {
				t.Fatalf("fork %d again: %v", i, err)
			}
			first = append(first, fe.Evidence.ID())
		}
	}
	if n := len(logs.at(slog.LevelError)); n != 5 {
		t.Errorf("%d ERROR lines, want 5 (one per stored record)", n)
	}
	if n := len(logs.at(slog.LevelWarn)); n != 2 {
		t.Errorf("%d WARN lines, want 2 (one per dropped record)", n)
	}
	metrics := do(t, h, "GET", "/metrics", nil).body
	if !strings.Contains(metrics, `provlog_witness_evidence_dropped_total{origin="example.com/log"} 2`) ||
		!strings.Contains(metrics, `provlog_witness_fork_evidence_total{kind="same-size-different-root",origin="example.com/log"} 5`) {
		t.Errorf("metrics:\n%s", metrics)
	}

	for _, path := range []string{"/evidence", "/" + OriginHash(lg.origin) + "/evidence"} {
		var got []string
		next := path + "?limit=2"
		for pages := 0; next != ""; pages++ {
			if pages == 3 {
				t.Fatalf("%s: more than 3 pages of 2 for 5 records", path)
			}
			rw := httptest.NewRecorder()
			h.ServeHTTP(rw, httptest.NewRequest("GET", next, nil))
			var ev []Evidence
			if err := json.Unmarshal(rw.Body.Bytes(), &ev); rw.Code != 200 || err != nil || len(ev) == 0 || len(ev) > 2 {
				t.Fatalf("GET %s: %d, %d records (%v)", next, rw.Code, len(ev), err)
			}
			for _, e := range ev {
				got = append(got, e.ID())
			}
			next = ""
			if link := rw.Header().Get("Link"); link != "" {
				u, ok := strings.CutPrefix(link, "<")
				u, ok2 := strings.CutSuffix(u, `>; rel="next"`)
				if !ok || !ok2 {
					t.Fatalf("Link header %q", link)
				}
				next = u
			}
		}
		slices.Sort(got)
		if want := slices.Sorted(slices.Values(first)); !slices.Equal(got, want) {
			t.Errorf("%s: paged IDs %v, want the first five %v", path, got, want)
		}
	}
	for _, q := range []string{"limit=0", "limit=1001", "limit=02", "limit=x", "after=zz", "after=" + strings.Repeat("0", 64) + "/" + strings.Repeat("0", 64)} {
		path := "/" + OriginHash(lg.origin) + "/evidence?" + q
		if r := do(t, h, "GET", path, nil); r.code != 400 {
			t.Errorf("GET %s: %d, want 400", path, r.code)
		}
	}
}

// Hashes print as base64 in evidence and in log lines, never as Go byte
// slices ("[12 34 ...]").
func TestEvidenceHashesInBase64(t *testing.T) {
	lg := newTestLog(t, "example.com/log")
	lg.add(t, 5, "a")
	fork := lg.fork()
	lg.add(t, 4, "a")
	fork.add(t, 6, "b")
	w := newTestWitness(t, "", lg.config(t))
	logs := w.captureLogs()
	ctx := t.Context()
	if _, err := w.AddCheckpoint(ctx, &AddCheckpointRequest{Checkpoint: lg.checkpoint(t, 9)}); err != nil {
		t.Fatal(err)
	}
	for _, req := range []*AddCheckpointRequest{
		{OldSize: 9, Checkpoint: fork.checkpoint(t, 9)},
		{OldSize: 9, Proof: fork.proof(t, 9, 11), Checkpoint: fork.checkpoint(t, 11)},
		{OldSize: 9, Proof: lg.proof(t, 5, 9)[:len(fork.proof(t, 9, 11))], Checkpoint: fork.checkpoint(t, 11)}, // not evidence
	} {
		if _, err := w.AddCheckpoint(ctx, req); err == nil {
			t.Fatal("a fork was cosigned")
		}
	}
	byteSlice := regexp.MustCompile(`\[[0-9]+( [0-9]+)+\]`)
	r := do(t, w.Handler(), "GET", "/evidence", nil)
	if byteSlice.MatchString(r.body) {
		t.Errorf("evidence JSON prints a Go byte slice:\n%s", r.body)
	}
	root := lg.root(t, 9)
	if strings.Count(r.body, base64.StdEncoding.EncodeToString(root[:])) != 2 {
		t.Errorf("the two details do not name the cosigned root in base64:\n%s", r.body)
	}
	for _, rec := range logs.all() {
		if byteSlice.MatchString(rec.text) {
			t.Errorf("log line prints a Go byte slice: %s", rec.text)
		}
	}
	if n := len(logs.at(slog.LevelError)); n != 2 {
		t.Errorf("%d ERROR lines, want the two forks", n)
	}
}
