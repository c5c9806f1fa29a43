package checkpoint

// This file is the signed note around a checkpoint, C2SP signed-note: the
// text, a blank line, then signature lines "— <key name> <base64(key ID ||
// signature)>\n". Verification itself is note.Open's, run on the text and
// the known keys' lines only (see the package doc for which lines those
// are).

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// Split splits a signed note into its text (with the final newline) and
// its signature block, at the last blank line, as signed-note does ("the
// text is separated from the signatures by the last empty line in the
// note"). It checks the note's size (MaxSize) and that the block is a
// sequence of at most MaxSignatures signature lines of valid characters;
// Parse checks the text. Errors wrap ErrMalformed.
func Split(msg []byte) (text, sigs []byte, err error) {
	if len(msg) > MaxSize {
		return nil, nil, malformed(errNoteTooLarge, "%d bytes, want at most %d", len(msg), MaxSize)
	}
	i := bytes.LastIndex(msg, []byte("\n\n"))
	if i < 0 {
		return nil, nil, malformed(nil, "no blank line before the signatures")
	}
	text, sigs = msg[:i+1], msg[i+2:]
	if _, err := signatureLines(sigs); err != nil {
		return nil, nil, err
	}
	return text, sigs, nil
}

// Open parses the signed checkpoint msg strictly (Split, Parse) and
// verifies it with the keys verifiers returns for its origin. An error
// from verifiers (an unknown origin, say) is returned as is, after the
// note is known to be well-formed. Open returns the checkpoint and the
// verified signatures by known keys (Verify). Other errors wrap
// ErrMalformed or ErrUnverified.
func Open(msg []byte, verifiers func(origin string) (note.Verifiers, error)) (Checkpoint, []note.Signature, error) {
	text, sigs, err := Split(msg)
	if err != nil {
		return Checkpoint{}, nil, err
	}
	cp, err := Parse(text)
	if err != nil {
		return Checkpoint{}, nil, err
	}
	known, err := verifiers(cp.Origin)
	if err != nil {
		return Checkpoint{}, nil, err
	}
	verified, err := Verify(text, sigs, known)
	if err != nil {
		return Checkpoint{}, nil, fmt.Errorf("checkpoint for %q: %w", cp.Origin, err)
	}
	return cp, verified, nil
}

// Verify verifies the signature block sigs over text (as Split returns
// them) with known, by the rules of the package doc: lines of unknown
// keys are ignored however they are written, a known key's signature must
// be canonical base64 (rule 7) and must verify, and at least one must. It
// returns the verified signatures in their order in sigs, a key's repeats
// dropped, each exactly as written. Errors wrap ErrMalformed or
// ErrUnverified.
func Verify(text, sigs []byte, known note.Verifiers) ([]note.Signature, error) {
	lines, err := knownLines(sigs, known)
	if err != nil {
		return nil, err
	}
	for _, l := range lines {
		if l.b64 != base64.StdEncoding.EncodeToString(l.sig) {
			return nil, malformed(errSignatureNotCanonical, "signature by %q: %.40q...", l.name, l.b64)
		}
	}
	return verify(text, lines, known)
}

// VerifyDetached verifies signature lines received apart from any note,
// such as a C2SP tlog-witness add-checkpoint response, over text, with
// known. It is Verify but for rule 7: a known key's signature is read in
// any base64 that decodes to it (padded or not, stray trailing bits), and
// the returned signatures are canonically encoded. The caller must add
// them to a checkpoint only as FormatSignatures encodes them, so the
// checkpoint satisfies rule 7. Errors wrap ErrMalformed or ErrUnverified.
func VerifyDetached(text, lines []byte, known note.Verifiers) ([]note.Signature, error) {
	kl, err := knownLines(lines, known)
	if err != nil {
		return nil, err
	}
	return verify(text, kl, known)
}

// FormatSignatures encodes signatures as note signature lines, "— name
// base64\n" each.
func FormatSignatures(sigs []note.Signature) []byte {
	var b bytes.Buffer
	for _, s := range sigs {
		fmt.Fprintf(&b, "— %s %s\n", s.Name, s.Base64)
	}
	return b.Bytes()
}

// sigLine is a signature line by a known key.
type sigLine struct {
	name string
	b64  string // as written
	sig  []byte // key ID || signature, decoded from b64
}

// verify runs note.Open on text and lines, which are known keys' lines
// only, re-encoded canonically.
func verify(text []byte, lines []sigLine, known note.Verifiers) ([]note.Signature, error) {
	if len(text) == 0 || text[len(text)-1] != '\n' {
		return nil, malformed(nil, "text does not end in a newline")
	}
	if len(lines) == 0 {
		return nil, fmt.Errorf("%w: %w", ErrUnverified, &note.UnverifiedNoteError{Note: &note.Note{Text: string(text)}})
	}
	var block []byte
	for _, l := range lines {
		block = fmt.Appendf(block, "— %s %s\n", l.name, base64.StdEncoding.EncodeToString(l.sig))
	}
	n, err := note.Open(slices.Concat(text, []byte("\n"), block), known)
	if err != nil {
		var unverified *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		if errors.As(err, &unverified) || errors.As(err, &invalid) {
			return nil, fmt.Errorf("%w: %w", ErrUnverified, err)
		}
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if n.Text != string(text) {
		// text ends in a newline and block has no blank line, so note.Open
		// splits where the caller did; a difference is a bug here.
		panic("checkpoint: note.Open split the note elsewhere")
	}
	return n.Sigs, nil
}

// knownLines returns the lines of the signature block sigs whose name and
// key ID are a key of known. Signed-note: "Verifiers MUST ignore
// signatures from unknown keys, even if they share a name or ID (but not
// both) with a known key." So a line with another name, with base64 that
// does not decode to more than a key ID (it names no key), or with another
// key ID is dropped, not a reason to refuse the note. The block itself
// must be well-formed (signatureLines).
func knownLines(sigs []byte, known note.Verifiers) ([]sigLine, error) {
	all, err := signatureLines(sigs)
	if err != nil {
		return nil, err
	}
	var out []sigLine
	for _, rest := range all {
		name, b64, _ := strings.Cut(rest, " ")
		sig, ok := decodeSignature(b64)
		if !ok {
			continue
		}
		var unknown *note.UnknownVerifierError
		if _, err := known.Verifier(name, binary.BigEndian.Uint32(sig)); errors.As(err, &unknown) {
			continue
		}
		out = append(out, sigLine{name: name, b64: b64, sig: sig})
	}
	return out, nil
}

// signatureLines checks that the signature block sigs is one or more
// lines, each ending in a newline and starting with "— ", at most
// MaxSignatures, in valid characters (checkChars), and returns each line
// without the em dash, the space and the newline.
func signatureLines(sigs []byte) ([]string, error) {
	if len(sigs) == 0 || sigs[len(sigs)-1] != '\n' {
		return nil, malformed(nil, "signature block is empty or unterminated")
	}
	if err := checkChars(sigs); err != nil {
		return nil, err
	}
	var out []string
	for line := range bytes.Lines(sigs) {
		rest, ok := bytes.CutPrefix(bytes.TrimSuffix(line, []byte("\n")), []byte("— "))
		if !ok {
			return nil, malformed(nil, "signature line %.40q does not start with an em dash and a space", line)
		}
		if len(out) == MaxSignatures {
			return nil, malformed(nil, "more than %d signature lines", MaxSignatures)
		}
		out = append(out, string(rest))
	}
	return out, nil
}

// decodeSignature decodes the base64 of a signature line leniently (padded
// or not, stray trailing bits), to find the key ID it names; ok is false
// unless it decodes to a key ID and at least one byte of signature.
func decodeSignature(s string) (sig []byte, ok bool) {
	t := strings.TrimSuffix(strings.TrimSuffix(s, "="), "=")
	if strings.Contains(t, "=") { // checkChars already refused \r, which the decoder would skip
		return nil, false
	}
	b, err := base64.RawStdEncoding.DecodeString(t)
	return b, err == nil && len(b) > 4
}
