package witness

// This file is the checkpoint format, C2SP tlog-checkpoint
// (https://c2sp.org/tlog-checkpoint) inside a C2SP signed note
// (https://c2sp.org/signed-note).
//
// A checkpoint is a signed note whose text is
//
//	<origin>\n
//	<tree size, ASCII decimal, no leading zeroes>\n
//	<root hash, standard base64 of 32 bytes>\n
//	[<extension line>\n ...]
//
// followed by a blank line and one or more signature lines
// "— <key name> <base64(key ID || signature)>\n". For example:
//
//	example.com/behind-the-sofa
//	20852163
//	CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=
//
//	— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=
//
// The witness parses strictly and canonically: the origin must be non-empty,
// the size must be the canonical decimal (no sign, no leading zeroes), the
// hash must be exactly 32 bytes in canonical padded base64 (the encoding
// that re-encodes to the same string), extension lines must be non-empty,
// and the text must be at most MaxCheckpointTextSize bytes and the whole note
// at most MaxCheckpointSize bytes. A text that parses therefore re-encodes
// (Checkpoint.Marshal) to exactly the bytes that were sent, and the witness
// cosigns that re-encoding: what it signs is what it interpreted.
//
// Signature lines are read as C2SP signed-note requires: "Verifiers MUST
// ignore signatures from unknown keys". A line from a key the witness does
// not know is dropped whatever its base64 (knownSignatures), so it cannot
// make the witness refuse an otherwise valid checkpoint; the log's own
// signatures are kept re-encoded in canonical base64.

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

const (
	// MaxCheckpointTextSize caps a checkpoint's note text (origin, size,
	// root hash and extension lines).
	MaxCheckpointTextSize = 4 << 10
	// MaxCheckpointSize caps a whole signed checkpoint. C2SP signed-note
	// requires accepting at least 16 signatures, which may be ML-DSA-44
	// signatures of about 3.3 kB in base64 each.
	MaxCheckpointSize = 96 << 10
	// maxExtensionLines caps the extension lines of a checkpoint.
	maxExtensionLines = 16
)

// Checkpoint is a parsed C2SP tlog-checkpoint body.
type Checkpoint struct {
	// Origin identifies the log; non-empty, no newline.
	Origin string
	// Size is the number of leaves in the tree.
	Size uint64
	// Hash is the RFC 6962 root hash of the tree at Size.
	Hash [32]byte
	// Extensions are the optional, opaque extension lines (each non-empty,
	// without the newline).
	Extensions []string
}

// Marshal returns the canonical note text of c: origin, size and base64
// root hash, then the extension lines, each ending in a newline.
func (c Checkpoint) Marshal() []byte {
	var b bytes.Buffer
	b.WriteString(c.Origin)
	b.WriteByte('\n')
	b.WriteString(strconv.FormatUint(c.Size, 10))
	b.WriteByte('\n')
	b.WriteString(base64.StdEncoding.EncodeToString(c.Hash[:]))
	b.WriteByte('\n')
	for _, e := range c.Extensions {
		b.WriteString(e)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// ParseCheckpointText parses a checkpoint note text strictly (see the file
// comment). It checks no signature. Errors wrap ErrMalformed.
func ParseCheckpointText(text []byte) (Checkpoint, error) {
	if len(text) > MaxCheckpointTextSize {
		return Checkpoint{}, fmt.Errorf("%w: checkpoint text of %d bytes, want at most %d", ErrMalformed, len(text), MaxCheckpointTextSize)
	}
	if len(text) == 0 || text[len(text)-1] != '\n' {
		return Checkpoint{}, fmt.Errorf("%w: checkpoint text does not end in a newline", ErrMalformed)
	}
	lines := strings.Split(string(text[:len(text)-1]), "\n")
	if len(lines) < 3 {
		return Checkpoint{}, fmt.Errorf("%w: checkpoint has %d lines, want at least 3", ErrMalformed, len(lines))
	}
	if len(lines)-3 > maxExtensionLines {
		return Checkpoint{}, fmt.Errorf("%w: checkpoint has %d extension lines, want at most %d", ErrMalformed, len(lines)-3, maxExtensionLines)
	}
	c := Checkpoint{Origin: lines[0]}
	if c.Origin == "" {
		return Checkpoint{}, fmt.Errorf("%w: empty checkpoint origin", ErrMalformed)
	}
	size, err := parseDecimal(lines[1])
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: checkpoint size: %w", ErrMalformed, err)
	}
	c.Size = size
	h, err := parseHash(lines[2])
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: checkpoint root hash: %w", ErrMalformed, err)
	}
	c.Hash = h
	for i, e := range lines[3:] {
		if e == "" {
			return Checkpoint{}, fmt.Errorf("%w: checkpoint extension line %d is empty", ErrMalformed, i+1)
		}
		c.Extensions = append(c.Extensions, e)
	}
	return c, nil
}

// parseDecimal parses a canonical ASCII decimal uint64: no sign, no
// leading zeroes unless the value is zero.
func parseDecimal(s string) (uint64, error) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a decimal uint64", s)
	}
	if strconv.FormatUint(n, 10) != s {
		return 0, fmt.Errorf("%q is not canonical decimal", s)
	}
	return n, nil
}

// parseHash parses a 32-byte hash in canonical standard padded base64.
func parseHash(s string) ([32]byte, error) {
	var h [32]byte
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || len(b) != len(h) {
		return h, fmt.Errorf("%q is not the base64 of a 32-byte hash", s)
	}
	if base64.StdEncoding.EncodeToString(b) != s {
		return h, fmt.Errorf("%q is not canonical base64", s)
	}
	copy(h[:], b)
	return h, nil
}

// splitNote splits a signed note into its text (with the final newline) and
// its signature block, at the last blank line, as C2SP signed-note does.
// It checks only the structure; note.Open checks the rest.
func splitNote(msg []byte) (text, sigs []byte, err error) {
	if len(msg) > MaxCheckpointSize {
		return nil, nil, fmt.Errorf("%w: checkpoint of %d bytes, want at most %d", ErrMalformed, len(msg), MaxCheckpointSize)
	}
	i := bytes.LastIndex(msg, []byte("\n\n"))
	if i < 0 {
		return nil, nil, fmt.Errorf("%w: checkpoint has no signature block", ErrMalformed)
	}
	text, sigs = msg[:i+1], msg[i+2:]
	if len(sigs) == 0 || sigs[len(sigs)-1] != '\n' {
		return nil, nil, fmt.Errorf("%w: checkpoint signature block is empty or unterminated", ErrMalformed)
	}
	return text, sigs, nil
}

// openCheckpoint parses a signed checkpoint strictly and verifies it with
// the log's verifiers. lookup returns the verifiers for an origin, or false
// if the origin is unknown. It returns the checkpoint and the log's verified
// signatures, canonically encoded; signature lines of other keys are
// ignored (openNote). Errors wrap ErrMalformed, ErrUnknownLog or
// ErrUnverified.
func openCheckpoint(msg []byte, lookup func(origin string) ([]note.Verifier, bool)) (Checkpoint, []note.Signature, error) {
	text, sigs, err := splitNote(msg)
	if err != nil {
		return Checkpoint{}, nil, err
	}
	cp, err := ParseCheckpointText(text)
	if err != nil {
		return Checkpoint{}, nil, err
	}
	vs, ok := lookup(cp.Origin)
	if !ok {
		return Checkpoint{}, nil, fmt.Errorf("%w: origin %q", ErrUnknownLog, cp.Origin)
	}
	n, err := openNote(text, sigs, note.VerifierList(vs...))
	if err != nil {
		var unverified *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		if errors.As(err, &unverified) || errors.As(err, &invalid) {
			return Checkpoint{}, nil, fmt.Errorf("%w: checkpoint for %q: %w", ErrUnverified, cp.Origin, err)
		}
		return Checkpoint{}, nil, fmt.Errorf("%w: checkpoint note: %w", ErrMalformed, err)
	}
	if n.Text != string(text) {
		// Both split at the last blank line; a difference is a bug here.
		panic("witness: note text split disagrees with note.Open")
	}
	return cp, n.Sigs, nil
}

// openNote verifies the note of text and signature block sigs (as
// splitNote returns them) with known, after dropping every signature line
// that is not from a known key (knownSignatures). The returned note's
// signatures are the verified ones, canonically encoded; a note with no
// signature line from a known key is a *note.UnverifiedNoteError.
func openNote(text, sigs []byte, known note.Verifiers) (*note.Note, error) {
	lines, err := knownSignatures(sigs, known)
	if err != nil {
		return nil, err
	}
	if len(lines) == 0 {
		return nil, &note.UnverifiedNoteError{Note: &note.Note{Text: string(text)}}
	}
	return note.Open(slices.Concat(text, []byte("\n"), lines), known)
}

// knownSignatures returns the lines of the signature block sigs that are
// signatures by a key of known, each re-encoded canonically: "— ", the key
// name, a space, the standard padded base64 of key ID || signature, and a
// newline. C2SP signed-note: "Verifiers MUST ignore signatures from unknown
// keys, even if they share a name or ID (but not both) with a known key."
// So a line with another name, with base64 that does not decode (it names
// no key ID) or with another key ID is dropped rather than a reason to
// refuse the note. A known key's signature is read in any base64 that
// decodes (padded or not, stray trailing bits), since what is verified and
// kept is its canonical re-encoding. Only a line that is no signature line
// at all (not "— " first) is malformed.
func knownSignatures(sigs []byte, known note.Verifiers) ([]byte, error) {
	var out []byte
	for line := range bytes.Lines(sigs) {
		rest, ok := bytes.CutPrefix(bytes.TrimSuffix(line, []byte("\n")), []byte("— "))
		if !ok {
			return nil, fmt.Errorf("%w: signature line %.40q does not start with an em dash and a space", ErrMalformed, line)
		}
		name, b64, _ := strings.Cut(string(rest), " ")
		sig, ok := decodeSignature(b64)
		if !ok {
			continue
		}
		var unknown *note.UnknownVerifierError
		if _, err := known.Verifier(name, binary.BigEndian.Uint32(sig)); errors.As(err, &unknown) {
			continue
		}
		out = fmt.Appendf(out, "— %s %s\n", name, base64.StdEncoding.EncodeToString(sig))
	}
	return out, nil
}

// decodeSignature decodes the base64 of a signature line leniently (padded
// or not, stray trailing bits); ok is false unless it decodes to a key ID
// and at least one byte of signature.
func decodeSignature(s string) (sig []byte, ok bool) {
	t := strings.TrimSuffix(strings.TrimSuffix(s, "="), "=")
	if strings.ContainsAny(t, "\r\n=") { // the decoder would skip \r and \n
		return nil, false
	}
	b, err := base64.RawStdEncoding.DecodeString(t)
	return b, err == nil && len(b) > 4
}

// formatSignatures encodes note signature lines ("— name base64\n").
func formatSignatures(sigs []note.Signature) []byte {
	var b bytes.Buffer
	for _, s := range sigs {
		fmt.Fprintf(&b, "— %s %s\n", s.Name, s.Base64)
	}
	return b.Bytes()
}

// OriginHash returns the lowercase hex SHA-256 of origin, the path
// component that names a log in the witness's monitoring URLs.
func OriginHash(origin string) string {
	h := sha256.Sum256([]byte(origin))
	return hex.EncodeToString(h[:])
}
