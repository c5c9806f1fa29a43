package client_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/provlog/provlog/client"
)

// nonCanonical re-encodes a standard base64 signature with its spare bits
// set: lenient decoders (note.Open) read the same bytes, strict ones refuse.
func nonCanonical(t *testing.T, b64 string) string {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(raw)%3 == 0 {
		t.Fatalf("signature %q: %v (need spare bits)", b64, err)
	}
	enc := []byte(base64.StdEncoding.EncodeToString(raw))
	last := bytes.IndexByte(enc, '=') - 1
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	enc[last] = alphabet[bytes.IndexByte([]byte(alphabet), enc[last])|1]
	if _, err := base64.StdEncoding.Strict().DecodeString(string(enc)); err == nil {
		t.Fatal("re-encoding is still canonical")
	}
	return string(enc)
}

// TestOpenCheckpointIgnoresUnknownSignatures: signed-note, "Verifiers MUST
// ignore signatures from unknown keys": a witness's non-canonical line
// does not make the client reject the log, while the log's own signature
// must be canonical.
func TestOpenCheckpointIgnoresUnknownSignatures(t *testing.T) {
	fl := newFuzzLog(t)
	v, err := note.NewVerifier(fl.vkey)
	if err != nil {
		t.Fatal(err)
	}
	// A line of a key the client does not know, 4+64 bytes, spare bits set.
	sig := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0x5a}, 68))
	withUnknown := append(bytes.Clone(fl.checkpoint), "— witness.example/w1 "+nonCanonical(t, sig)+"\n"...)
	cp, err := client.OpenCheckpoint(withUnknown, v, "")
	if err != nil {
		t.Fatalf("checkpoint with an unknown key's non-canonical line refused: %v", err)
	}
	if cp.Size != 2 || !bytes.Equal(cp.Raw, withUnknown) {
		t.Errorf("opened %+v", cp)
	}
	// The log's own signature, non-canonical: refused, though note.Open
	// alone accepts it.
	text, sigs, _ := bytes.Cut(fl.checkpoint, []byte("\n\n"))
	line := bytes.TrimSuffix(sigs, []byte("\n"))
	i := bytes.LastIndexByte(line, ' ')
	mangled := append(append(append(text, "\n\n"...), line[:i+1]...), nonCanonical(t, string(line[i+1:]))+"\n"...)
	if _, err := note.Open(mangled, note.VerifierList(v)); err != nil {
		t.Fatalf("note.Open refuses the re-encoded signature (%v): the test needs a lenient decode", err)
	}
	if _, err := client.OpenCheckpoint(mangled, v, ""); !errors.Is(err, client.ErrFormat) {
		t.Errorf("log signature with spare bits set: %v, want ErrFormat", err)
	}
}
