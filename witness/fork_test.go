package witness

import (
	"encoding/json"
	"errors"
	"testing"

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
