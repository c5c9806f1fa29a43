package witness

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

func TestAddCheckpointStatusCodes(t *testing.T) {
	lg := newTestLog(t, "example.com/log")
	lg.add(t, 10, "a")
	other := newTestLog(t, "example.com/other") // not configured
	other.add(t, 3, "o")
	impostor := newTestLog(t, "example.com/log") // same origin, another key
	impostor.add(t, 10, "a")
	w := newTestWitness(t, "", lg.config(t))
	h := w.Handler()
	post := func(body []byte) response { return do(t, h, "POST", "/add-checkpoint", body) }

	// Before anything is cosigned, the monitoring checkpoint is 404.
	if r := do(t, h, "GET", "/"+OriginHash(lg.origin)+"/checkpoint", nil); r.code != 404 {
		t.Fatalf("GET checkpoint before any cosignature: %d, want 404", r.code)
	}

	// Tamper with the log's signature: key name and ID match, signature bad.
	badSig := lg.checkpoint(t, 4)
	i := bytes.LastIndex(badSig, []byte(" ")) + 10
	badSig[i] ^= 'A' ^ 'B'
	if badSig[i] == '\n' || badSig[i] == '=' {
		t.Fatal("tampered the wrong byte")
	}

	emptyButRoot := lg.signText(t, string(Checkpoint{Origin: lg.origin, Size: 0, Hash: lg.root(t, 1)}.Marshal()))
	emptyOK := lg.signText(t, string(Checkpoint{Origin: lg.origin, Size: 0, Hash: emptyRoot}.Marshal()))

	for _, tc := range []struct {
		name string
		body []byte
		code int
	}{
		{"unknown origin", other.request(t, 0, 3), 404},
		{"signed by another key", impostor.request(t, 0, 4), 403},
		{"bad signature by the log key", AddCheckpointRequest{Checkpoint: badSig}.Marshal(), 403},
		{"no old line", lg.checkpoint(t, 4), 400},
		{"old with leading zero", append([]byte("old 00\n\n"), lg.checkpoint(t, 4)...), 400},
		{"no blank line", []byte("old 0\n"), 400},
		{"proof line not base64", append([]byte("old 0\n!!!\n\n"), lg.checkpoint(t, 4)...), 400},
		{"64 proof lines", AddCheckpointRequest{Proof: make([][]byte, 64), Checkpoint: lg.checkpoint(t, 4)}.Marshal(), 400},
		{"old larger than size", AddCheckpointRequest{OldSize: 5, Checkpoint: lg.checkpoint(t, 4)}.Marshal(), 400},
		{"size 0 with a non-empty root", AddCheckpointRequest{Checkpoint: emptyButRoot}.Marshal(), 422},
		{"old 0 with a proof", AddCheckpointRequest{Proof: lg.proof(t, 2, 4), Checkpoint: lg.checkpoint(t, 4)}.Marshal(), 422},
		{"old mismatch before any cosignature", AddCheckpointRequest{OldSize: 2, Proof: lg.proof(t, 2, 4), Checkpoint: lg.checkpoint(t, 4)}.Marshal(), 409},
		{"empty tree", AddCheckpointRequest{Checkpoint: emptyOK}.Marshal(), 200},
		{"first cosignature", lg.request(t, 0, 4), 200},
		{"stale old size", lg.request(t, 0, 6), 409},
		{"old ahead of the cosigned size", lg.request(t, 5, 6), 409},
		{"bad proof (wrong length)", AddCheckpointRequest{OldSize: 4, Proof: append(lg.proof(t, 4, 6), lg.proof(t, 4, 6)...), Checkpoint: lg.checkpoint(t, 6)}.Marshal(), 422},
		{"same size with a proof", AddCheckpointRequest{OldSize: 4, Proof: lg.proof(t, 2, 4), Checkpoint: lg.checkpoint(t, 4)}.Marshal(), 422},
		{"same checkpoint again", lg.request(t, 4, 4), 200},
		{"consistent growth", lg.request(t, 4, 10), 200},
		{"checkpoint older than cosigned", AddCheckpointRequest{OldSize: 10, Checkpoint: lg.checkpoint(t, 6)}.Marshal(), 400},
		{"body too large", append(make([]byte, MaxRequestSize), lg.request(t, 10, 10)...), 413},
	} {
		r := post(tc.body)
		if r.code != tc.code {
			t.Errorf("%s: status %d (%q), want %d", tc.name, r.code, r.body, tc.code)
			continue
		}
		switch r.code {
		case 409:
			if r.contentType != "text/x.tlog.size" {
				t.Errorf("%s: 409 Content-Type %q, want text/x.tlog.size", tc.name, r.contentType)
			}
			var want string
			if rec, ok, _ := w.state.Latest(t.Context(), lg.origin); ok {
				want = strconv.FormatUint(rec.Size, 10) + "\n"
			} else {
				want = "0\n"
			}
			if r.body != want {
				t.Errorf("%s: 409 body %q, want %q", tc.name, r.body, want)
			}
		case 200:
			checkCosignature(t, r.body, tc.body, w.key.Verifier)
		}
	}

	if r := do(t, h, "GET", "/add-checkpoint", nil); r.code != http.StatusMethodNotAllowed {
		t.Errorf("GET /add-checkpoint: %d, want 405", r.code)
	}

	// The monitoring checkpoint is size 10 with the log's signature and
	// our cosignature.
	r := do(t, h, "GET", "/"+OriginHash(lg.origin)+"/checkpoint", nil)
	if r.code != 200 {
		t.Fatalf("GET checkpoint: %d %q", r.code, r.body)
	}
	logV, _ := note.NewVerifier(lg.vkey)
	wV, err := fnote.NewVerifierForCosignatureV1(w.key.Verifier)
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open([]byte(r.body), note.VerifierList(logV, wV))
	if err != nil {
		t.Fatalf("served checkpoint does not verify: %v\n%s", err, r.body)
	}
	if len(n.Sigs) != 2 || n.Text != string(lg.checkpoint(t, 10)[:len(n.Text)]) || !strings.HasPrefix(n.Text, lg.origin+"\n10\n") {
		t.Errorf("served checkpoint: %d sigs, text %q", len(n.Sigs), n.Text)
	}
	if r := do(t, h, "GET", "/"+OriginHash(other.origin)+"/checkpoint", nil); r.code != 404 {
		t.Errorf("GET checkpoint of an unknown log: %d, want 404", r.code)
	}
	if r := do(t, h, "GET", "/healthz", nil); r.code != 200 {
		t.Errorf("healthz: %d", r.code)
	}
	if r := do(t, h, "GET", "/metrics", nil); r.code != 200 || !strings.Contains(r.body, `provlog_witness_add_checkpoint_requests_total{code="409"} 3`) || !strings.Contains(r.body, `provlog_witness_cosigned_tree_size{origin="example.com/log"} 10`) {
		t.Errorf("metrics: %d\n%s", r.code, r.body)
	}
	// No evidence: nothing above was a fork.
	if r := do(t, h, "GET", "/evidence", nil); r.code != 200 || strings.TrimSpace(r.body) != "[]" {
		t.Errorf("GET /evidence: %d %q, want 200 []", r.code, r.body)
	}
}

// checkCosignature checks that resp is one cosignature line that verifies
// with vkey over the checkpoint in the request body, with a timestamp now.
func checkCosignature(t *testing.T, resp string, reqBody []byte, vkey string) {
	t.Helper()
	req, err := ParseAddCheckpointRequest(reqBody)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(resp, "\n") != 1 || !strings.HasPrefix(resp, "— witness.test/w1 ") {
		t.Fatalf("cosignature response %q: want one line from witness.test/w1", resp)
	}
	v, err := fnote.NewVerifierForCosignatureV1(vkey)
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(append(bytes.Clone(req.Checkpoint), resp...), note.VerifierList(v))
	if err != nil {
		t.Fatalf("cosignature does not verify: %v", err)
	}
	ts, err := fnote.CoSigV1Timestamp(n.Sigs[0])
	if err != nil || time.Since(ts) > time.Minute || time.Until(ts) > time.Minute {
		t.Errorf("cosignature timestamp %v (%v), want about now", ts, err)
	}
}

// The cosignature is over the canonical re-encoding; since parsing is
// strict, any non-canonical encoding of a log-signed checkpoint is refused
// rather than cosigned.
func TestNonCanonicalCheckpointsRejected(t *testing.T) {
	lg := newTestLog(t, "example.com/log")
	lg.add(t, 5, "a")
	w := newTestWitness(t, "", lg.config(t))
	h := w.Handler()
	root := lg.root(t, 5)
	b64 := base64.StdEncoding.EncodeToString(root[:])
	// The last base64 character of a 32-byte hash carries 2 unused bits;
	// setting one gives a string that decodes to the same bytes unless
	// decoding is strict.
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	loose := []byte(b64)
	loose[42] = alphabet[strings.IndexByte(alphabet, loose[42])^1]
	if got, err := base64.StdEncoding.DecodeString(string(loose)); err != nil || !bytes.Equal(got, root[:]) {
		t.Fatalf("loose encoding %q does not decode leniently to the root", loose)
	}
	for _, text := range []string{
		lg.origin + "\n05\n" + b64 + "\n",
		lg.origin + "\n+5\n" + b64 + "\n",
		lg.origin + "\n5\n" + strings.TrimRight(b64, "=") + "\n",
		lg.origin + "\n5\n" + string(loose) + "\n",
		lg.origin + "\n5\n" + b64 + "\n\n",                      // empty extension line
		lg.origin + "\n5\n" + b64[:20] + "\r" + b64[20:] + "\n", // base64 decoders skip \r
		lg.origin + "\n5\n" + base64.StdEncoding.EncodeToString(append(root[:], 0)) + "\n",
		"\n5\n" + b64 + "\n",
	} {
		r := do(t, h, "POST", "/add-checkpoint", AddCheckpointRequest{Checkpoint: lg.signText(t, text)}.Marshal())
		if r.code != 400 && r.code != 404 {
			t.Errorf("checkpoint text %q: status %d (%q), want 400", text, r.code, r.body)
		}
	}
	// The canonical one, with an extension line, is cosigned over exactly
	// its text.
	text := lg.origin + "\n5\n" + b64 + "\next one\n"
	body := AddCheckpointRequest{Checkpoint: lg.signText(t, text)}.Marshal()
	r := do(t, h, "POST", "/add-checkpoint", body)
	if r.code != 200 {
		t.Fatalf("canonical checkpoint: %d %q", r.code, r.body)
	}
	checkCosignature(t, r.body, body, w.key.Verifier)
	cp, err := ParseCheckpointText([]byte(text))
	if err != nil || string(cp.Marshal()) != text {
		t.Fatalf("re-encoding %q, %v; want %q", cp.Marshal(), err, text)
	}
}

func TestEvidenceJSON(t *testing.T) {
	e := Evidence{Kind: KindRollback, Origin: "o", Cosigned: []byte("a"), Refused: []byte("b"), Proof: [][]byte{{1}}}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	var got Evidence
	if err := json.Unmarshal(b, &got); err != nil || got.ID() != e.ID() {
		t.Fatalf("round trip: %v, ID %s want %s", err, got.ID(), e.ID())
	}
	e2 := e
	e2.Refused = []byte("c")
	if e2.ID() == e.ID() {
		t.Error("different evidence, same ID")
	}
}

// C2SP signed-note: "Verifiers MUST ignore signatures from unknown keys,
// even if they share a name or ID (but not both) with a known key." A
// checkpoint with garbage signature lines from other keys, before or after
// the log's, is cosigned, and the checkpoint the witness serves keeps only
// the log's signature. The log's own signature must be canonical base64
// (internal/checkpoint rule 7): written with stray trailing bits, which a
// lenient decoder reads as the same signature, it is refused (400), as
// clients refuse it, rather than cosigned and re-encoded.
func TestUnknownSignatureLinesIgnored(t *testing.T) {
	lg := newTestLog(t, "example.com/log")
	lg.add(t, 5, "a")
	cp := lg.checkpoint(t, 5)
	i := bytes.LastIndex(cp, []byte("\n\n")) + 2
	logLine := string(cp[i:])
	// The log's Ed25519 signature is 68 bytes: its base64 ends in "=" and
	// its last character carries two unused bits.
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	loose := []byte(logLine)
	k := len(loose) - len("=\n") - 1
	loose[k] = alphabet[strings.IndexByte(alphabet, loose[k])^1]
	for _, extra := range []string{
		"— other.example/key !!!not base64!!!\n",
		"— other.example/key AAAA\n",           // too short for a key ID and a signature
		"— other.example/key AAAAAAAAAAA\n",    // unpadded
		"— example.com/log AAAAAAAAAAAAAAA=\n", // the log's name, another key ID, trailing bits
		"— other.example/key\n",                // no signature at all
		"— \n",
	} {
		for _, sigs := range []string{logLine + extra, extra + logLine} {
			msg := append(bytes.Clone(cp[:i]), sigs...)
			w := newTestWitness(t, "", lg.config(t)) // a fresh one each time: old 0
			h := w.Handler()
			r := do(t, h, "POST", "/add-checkpoint", AddCheckpointRequest{Checkpoint: msg}.Marshal())
			if r.code != 200 {
				t.Errorf("signature block %q: %d %q, want 200", sigs, r.code, r.body)
				continue
			}
			checkCosignature(t, r.body, AddCheckpointRequest{Checkpoint: cp}.Marshal(), w.key.Verifier)
			served := do(t, h, "GET", "/"+OriginHash(lg.origin)+"/checkpoint", nil).body
			if want := string(cp) + r.body; served != want {
				t.Errorf("signature block %q: served\n%s\nwant\n%s", sigs, served, want)
			}
		}
	}
	// The log's own line with stray trailing bits: refused, whatever lines
	// of other keys come with it.
	for _, sigs := range []string{string(loose), "— other.example/key !!!\n" + string(loose)} {
		msg := append(bytes.Clone(cp[:i]), sigs...)
		r := do(t, newTestWitness(t, "", lg.config(t)).Handler(), "POST", "/add-checkpoint", AddCheckpointRequest{Checkpoint: msg}.Marshal())
		if r.code != 400 {
			t.Errorf("log signature with stray trailing bits, block %q: %d %q, want 400", sigs, r.code, r.body)
		}
	}
	// Lines that are no signature lines at all still make the note malformed.
	msg := append(bytes.Clone(cp), "not a signature line\n"...)
	if r := do(t, newTestWitness(t, "", lg.config(t)).Handler(), "POST", "/add-checkpoint", AddCheckpointRequest{Checkpoint: msg}.Marshal()); r.code != 400 {
		t.Errorf("a line without the em dash: %d, want 400", r.code)
	}
}
