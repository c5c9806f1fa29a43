package checkpoint

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

const (
	testOrigin = "example.com/log"
	// emptyRoot is the RFC 6962 root of the empty tree, canonical base64.
	emptyRoot = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
	alphabet  = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
)

// testKey is an Ed25519 note key.
type testKey struct {
	signer   note.Signer
	verifier note.Verifier
}

func newTestKey(t testing.TB, name string) testKey {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{s, v}
}

// line returns k's signature line over text, its base64 as spell rewrites
// it (nil: canonical).
func (k testKey) line(t testing.TB, text string, spell func(string) string) string {
	t.Helper()
	sig, err := k.signer.Sign([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.StdEncoding.EncodeToString(append(binary.BigEndian.AppendUint32(nil, k.signer.KeyHash()), sig...))
	if spell != nil {
		b64 = spell(b64)
	}
	return "— " + k.signer.Name() + " " + b64 + "\n"
}

// sign returns text signed by k, canonically.
func (k testKey) sign(t testing.TB, text string) []byte {
	return []byte(text + "\n" + k.line(t, text, nil))
}

// spareBits sets a spare bit of the last base64 character of b64 (an
// encoding of 3n+1 or 3n+2 bytes): lenient decoders read the same bytes.
func spareBits(b64 string) string {
	b := []byte(b64)
	k := len(strings.TrimRight(b64, "=")) - 1
	b[k] = alphabet[strings.IndexByte(alphabet, b[k])^1]
	return string(b)
}

func unpadded(b64 string) string { return strings.TrimRight(b64, "=") }

func only(v note.Verifier) func(string) (note.Verifiers, error) {
	return func(string) (note.Verifiers, error) { return note.VerifierList(v), nil }
}

// TestParse: the canonical text parses and re-encodes to itself; each
// strictness rule refuses its case, naming the rule.
func TestParse(t *testing.T) {
	maxExt := testOrigin + "\n5\n" + emptyRoot + "\n" + strings.Repeat("e\n", MaxExtensions)
	// Exactly MaxTextSize bytes: pad the origin.
	head := "\n5\n" + emptyRoot + "\n"
	maxText := strings.Repeat("o", MaxTextSize-len(head)) + head
	for _, text := range []string{
		testOrigin + "\n0\n" + emptyRoot + "\n",
		testOrigin + "\n18446744073709551615\n" + emptyRoot + "\n",
		testOrigin + "\n5\n" + emptyRoot + "\next one\n",
		"origin with spaces + plus é\n5\n" + emptyRoot + "\n",
		maxExt,
		maxText,
	} {
		c, err := Parse([]byte(text))
		if err != nil {
			t.Errorf("Parse(%.60q): %v", text, err)
			continue
		}
		if got := string(c.Marshal()); got != text {
			t.Errorf("Parse(%.60q) re-encodes as %.60q", text, got)
		}
	}
	loose := spareBits(emptyRoot)
	if b, err := base64.StdEncoding.DecodeString(loose); err != nil || base64.StdEncoding.EncodeToString(b) != emptyRoot {
		t.Fatalf("%q does not decode leniently to the root", loose)
	}
	long := base64.StdEncoding.EncodeToString(make([]byte, 33))
	for _, c := range []struct {
		text string
		rule error // nil: refused, by a rule formats/log shares
	}{
		{maxText[:len(maxText)-len(head)] + "o" + head, errTextTooLarge},
		{maxExt + "e\n", errTooManyExtensions},
		{testOrigin + "\n5\n" + emptyRoot + "\n\n", errEmptyExtension},
		{testOrigin + "\n5\n" + emptyRoot + "\na\n\nb\n", errEmptyExtension},
		{testOrigin + "\n05\n" + emptyRoot + "\n", errSizeNotCanonical},
		{testOrigin + "\n00\n" + emptyRoot + "\n", errSizeNotCanonical},
		{testOrigin + "\n5\n" + loose + "\n", errHashNotCanonical},
		{testOrigin + "\n5\n" + unpadded(emptyRoot) + "\n", errHashNotCanonical},
		{testOrigin + "\n5\n" + long + "\n", errHashNotCanonical},
		{testOrigin + "\n5\n\n", errHashNotCanonical},
		{testOrigin + "\n+5\n" + emptyRoot + "\n", nil},
		{testOrigin + "\n-1\n" + emptyRoot + "\n", nil},
		{testOrigin + "\n18446744073709551616\n" + emptyRoot + "\n", nil},
		{testOrigin + "\n5\n" + emptyRoot[:20] + "\r" + emptyRoot[20:] + "\n", nil}, // decoders skip \r
		{"\n5\n" + emptyRoot + "\n", nil},
		{testOrigin + "\n5\n" + emptyRoot, nil},
		{testOrigin + "\n5\n", nil},
		{"o\xff\n5\n" + emptyRoot + "\n", nil},
		{"o\x01\n5\n" + emptyRoot + "\n", nil},
		{"", nil},
	} {
		_, err := Parse([]byte(c.text))
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("Parse(%.60q): %v, want ErrMalformed", c.text, err)
		}
		if c.rule != nil && !errors.Is(err, c.rule) {
			t.Errorf("Parse(%.60q): %v, want %v", c.text, err, c.rule)
		}
	}
}

// TestSplit: the text ends at the last blank line, which signed-note
// allows the text to contain; the whole note is capped.
func TestSplit(t *testing.T) {
	msg := []byte("a\n\nb\n\n— k AAAA\n")
	text, sigs, err := Split(msg)
	if err != nil || string(text) != "a\n\nb\n" || string(sigs) != "— k AAAA\n" {
		t.Errorf("Split: %q, %q, %v", text, sigs, err)
	}
	for _, bad := range []string{
		"a\n— k AAAA\n",
		"a\n\n",
		"a\n\n— k AAAA",
		"a\n\n— k AAAA\n\n",
		"a\n\nk AAAA\n",
		"a\n\n— k AA\x7fAA\n— k \x00\n",
		"a\n\n" + strings.Repeat("— k AAAA\n", MaxSignatures+1),
	} {
		if _, _, err := Split([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("Split(%.60q): %v, want ErrMalformed", bad, err)
		}
	}
	if _, _, err := Split([]byte("a\n\n" + strings.Repeat("— k AAAA\n", MaxSignatures))); err != nil {
		t.Errorf("%d signature lines: %v", MaxSignatures, err)
	}
	big := append([]byte("a\n\n— k "), bytes.Repeat([]byte("A"), MaxSize)...)
	if _, _, err := Split(append(big[:MaxSize-1:MaxSize-1], '\n')); err != nil {
		t.Errorf("note of MaxSize bytes: %v", err)
	}
	if _, _, err := Split(append(big[:MaxSize:MaxSize], '\n')); !errors.Is(err, errNoteTooLarge) {
		t.Errorf("note of MaxSize+1 bytes: %v, want %v", err, errNoteTooLarge)
	}
}

// TestOpenUnknownLinesIgnored: signed-note, "Verifiers MUST ignore
// signatures from unknown keys, even if they share a name or ID (but not
// both) with a known key": any such line, before or after the log's, is
// ignored and not returned; a line that is no signature line at all is
// malformed.
func TestOpenUnknownLinesIgnored(t *testing.T) {
	lg := newTestKey(t, testOrigin)
	other := newTestKey(t, "other.example/key")
	text := testOrigin + "\n5\n" + emptyRoot + "\n"
	logLine := lg.line(t, text, nil)
	for _, extra := range []string{
		"— other.example/key !!!not base64!!!\n",
		"— other.example/key AAAA\n",                                            // too short for a key ID and a signature
		"— other.example/key AAAAAAAAAAA\n",                                     // unpadded
		"— " + testOrigin + " AAAAAAAAAAAAAAA=\n",                               // the log's name, another key ID, trailing bits
		other.line(t, text, spareBits),                                          // a real signature by a key not known, spare bits
		other.line(t, text, unpadded),                                           // and unpadded
		"— other+key " + other.line(t, text, nil)[len("— other.example/key "):], // invalid name
		"— other.example/key\n",                                                 // no signature at all
		"— \n",
		"— other.example/key AAAAAAAA AAAA\n",
	} {
		for _, sigs := range []string{logLine + extra, extra + logLine} {
			msg := []byte(text + "\n" + sigs)
			cp, got, err := Open(msg, only(lg.verifier))
			if err != nil {
				t.Errorf("signature block %q: %v", sigs, err)
				continue
			}
			if cp.Size != 5 || len(got) != 1 || "— "+got[0].Name+" "+got[0].Base64+"\n" != logLine {
				t.Errorf("signature block %q: %+v, %+v", sigs, cp, got)
			}
		}
	}
	msg := []byte(text + "\n" + logLine + "not a signature line\n")
	if _, _, err := Open(msg, only(lg.verifier)); !errors.Is(err, ErrMalformed) {
		t.Errorf("a line without the em dash: %v, want ErrMalformed", err)
	}
}

// TestOpenKnownKeys: a known key's signature must be canonical (rule 7)
// and must verify; at least one must; every known key's verified
// signature is returned, in order, repeats dropped.
func TestOpenKnownKeys(t *testing.T) {
	lg := newTestKey(t, testOrigin)
	w := newTestKey(t, "witness.example/w")
	text := testOrigin + "\n5\n" + emptyRoot + "\n"
	both := func(string) (note.Verifiers, error) { return note.VerifierList(lg.verifier, w.verifier), nil }

	msg := []byte(text + "\n" + lg.line(t, text, nil) + w.line(t, text, nil) + lg.line(t, text, nil))
	_, sigs, err := Open(msg, both)
	if err != nil || len(sigs) != 2 || sigs[0].Name != testOrigin || sigs[1].Name != "witness.example/w" {
		t.Errorf("log and witness: %v, %+v", err, sigs)
	}

	for name, spell := range map[string]func(string) string{"spare bits": spareBits, "unpadded": unpadded} {
		for _, m := range []string{
			text + "\n" + lg.line(t, text, spell),
			text + "\n" + lg.line(t, text, nil) + w.line(t, text, spell),
		} {
			if _, _, err := Open([]byte(m), both); !errors.Is(err, errSignatureNotCanonical) || !errors.Is(err, ErrMalformed) {
				t.Errorf("%s %q: %v, want %v", name, m, err, errSignatureNotCanonical)
			}
		}
	}

	var invalid *note.InvalidSignatureError
	bad := text + "\n" + lg.line(t, testOrigin+"\n6\n"+emptyRoot+"\n", nil)
	if _, _, err := Open([]byte(bad), both); !errors.Is(err, ErrUnverified) || !errors.As(err, &invalid) {
		t.Errorf("signature over another text: %v, want ErrUnverified and *note.InvalidSignatureError", err)
	}
	var unverified *note.UnverifiedNoteError
	if _, _, err := Open([]byte(text+"\n"+w.line(t, text, nil)), only(lg.verifier)); !errors.Is(err, ErrUnverified) || !errors.As(err, &unverified) {
		t.Errorf("no known key's line: %v, want ErrUnverified and *note.UnverifiedNoteError", err)
	}

	errUnknown := errors.New("unknown origin")
	_, _, err = Open(lg.sign(t, text), func(o string) (note.Verifiers, error) {
		if o != testOrigin {
			t.Errorf("verifiers(%q)", o)
		}
		return nil, errUnknown
	})
	if err != errUnknown {
		t.Errorf("verifiers' error: %v, want it as is", err)
	}
	// A malformed note is malformed whatever its origin.
	_, _, err = Open([]byte(text+"\nnot a signature line\n"), func(string) (note.Verifiers, error) { return nil, errUnknown })
	if !errors.Is(err, ErrMalformed) {
		t.Errorf("malformed note of an unknown origin: %v, want ErrMalformed", err)
	}
}

// TestVerifyDetached: lines received apart from a checkpoint (a witness's
// response) are read in any base64 that decodes and returned canonical;
// Verify refuses the same lines (rule 7).
func TestVerifyDetached(t *testing.T) {
	w := newTestKey(t, "witness.example/w")
	text := testOrigin + "\n5\n" + emptyRoot + "\n"
	canonical := w.line(t, text, nil)
	for _, spell := range []func(string) string{spareBits, unpadded} {
		lines := "— junk.example/k !!!\n" + w.line(t, text, spell)
		sigs, err := VerifyDetached([]byte(text), []byte(lines), note.VerifierList(w.verifier))
		if err != nil || string(FormatSignatures(sigs)) != canonical {
			t.Errorf("VerifyDetached(%q): %q, %v; want %q", lines, FormatSignatures(sigs), err, canonical)
		}
		if _, err := Verify([]byte(text), []byte(lines), note.VerifierList(w.verifier)); !errors.Is(err, errSignatureNotCanonical) {
			t.Errorf("Verify(%q): %v, want %v", lines, err, errSignatureNotCanonical)
		}
	}
	if _, err := VerifyDetached([]byte(text), []byte("— junk.example/k !!!\n"), note.VerifierList(w.verifier)); !errors.Is(err, ErrUnverified) {
		t.Errorf("no line of the key: %v, want ErrUnverified", err)
	}
}

// TestMaxSizeFitsMLDSA44Cosignatures: a checkpoint with the log's
// signature and 16 ML-DSA-44 cosignatures (4-byte key ID, 8-byte
// timestamp, 2420-byte signature) under long key names fits in MaxSize
// with room to spare, as signed-note requires ("MUST accept at least up
// to 16 signatures").
func TestMaxSizeFitsMLDSA44Cosignatures(t *testing.T) {
	lg := newTestKey(t, testOrigin)
	text := testOrigin + "\n18446744073709551615\n" + emptyRoot + "\n" + strings.Repeat("an extension line of some length\n", 4)
	msg := lg.sign(t, text)
	for i := range 16 {
		sig := make([]byte, 4+8+2420)
		rand.Read(sig)
		msg = fmt.Appendf(msg, "— witness-%02d.example.com/a/rather/long/witness/name/%s %s\n", i, strings.Repeat("x", 20), base64.StdEncoding.EncodeToString(sig))
	}
	if len(msg) > MaxSize*3/4 {
		t.Errorf("checkpoint with 16 ML-DSA-44 cosignatures: %d bytes, want well under MaxSize (%d)", len(msg), MaxSize)
	}
	if _, sigs, err := Open(msg, only(lg.verifier)); err != nil || len(sigs) != 1 {
		t.Errorf("Open: %v, %d signatures", err, len(sigs))
	}
}
