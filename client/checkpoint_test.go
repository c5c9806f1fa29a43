package client_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
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

// TestOpenCheckpointSharedRules: the client reads checkpoints by the
// module's one parser (internal/checkpoint), as the witness does. An
// unknown key's line that does not decode at all is ignored too (which
// note.Open alone refuses); a text that is not canonical is ErrFormat; a
// checkpoint over the one cap is ErrFormat, one of 16 ML-DSA-44-sized
// cosignature lines is not.
func TestOpenCheckpointSharedRules(t *testing.T) {
	fl := newFuzzLog(t)
	v, err := note.NewVerifier(fl.vkey)
	if err != nil {
		t.Fatal(err)
	}
	for _, extra := range []string{"— witness.example/w1 !!!\n", "— \n", "— witness.example/w1 AAAAAAAAAAA\n"} {
		raw := append(bytes.Clone(fl.checkpoint), extra...)
		if _, err := note.Open(raw, note.VerifierList(v)); err == nil {
			t.Fatalf("note.Open accepts %q: the test needs a line it refuses", extra)
		}
		if cp, err := client.OpenCheckpoint(raw, v, ""); err != nil || cp.Size != 2 {
			t.Errorf("unknown key's line %q: %v, want it ignored", extra, err)
		}
	}
	text, _, _ := bytes.Cut(fl.checkpoint, []byte("\n\n"))
	for _, bad := range []string{"\n\n", "\n00\n"} {
		if _, err := client.OpenCheckpoint(append(bytes.Clone(text), bad...), v, ""); !errors.Is(err, client.ErrFormat) {
			t.Errorf("text %q: %v, want ErrFormat", string(text)+bad, err)
		}
	}
	cosigned := bytes.Clone(fl.checkpoint)
	for range 16 {
		cosigned = append(cosigned, "— witness.example/a-long-witness-name "+base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 4+8+2420))+"\n"...)
	}
	if _, err := client.OpenCheckpoint(cosigned, v, ""); err != nil {
		t.Errorf("checkpoint with 16 ML-DSA-44-sized cosignatures (%d bytes): %v", len(cosigned), err)
	}
	huge := append(bytes.Clone(fl.checkpoint), "— witness.example/w "+strings.Repeat("A", client.MaxCheckpointSize)+"\n"...)
	if _, err := client.OpenCheckpoint(huge, v, ""); !errors.Is(err, client.ErrFormat) {
		t.Errorf("checkpoint over MaxCheckpointSize: %v, want ErrFormat", err)
	}
}
