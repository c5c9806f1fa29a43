package checkpoint

// This file is the checkpoint note text, C2SP tlog-checkpoint: "a sequence
// of at least three non-empty lines", origin, tree size and root hash,
// then optional extension lines (see the package doc for the rules).

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

const (
	// MaxSize caps a whole signed checkpoint, its signature lines (the
	// log's and any cosignatures) included; see the package doc.
	MaxSize = 96 << 10
	// MaxTextSize caps a checkpoint's note text (origin, size, root hash
	// and extension lines).
	MaxTextSize = 4 << 10
	// MaxExtensions caps the extension lines of a checkpoint.
	MaxExtensions = 16
	// MaxSignatures caps the signature lines of a note, known or not, as
	// note.Open does (signed-note: verifiers "SHOULD apply a maximum limit
	// to the number of signatures in a note").
	MaxSignatures = 100
)

var (
	// ErrMalformed: the note or its checkpoint text does not parse, or
	// breaks one of the strictness rules of the package doc.
	ErrMalformed = errors.New("malformed checkpoint")
	// ErrUnverified: no signature by a known key verifies, or a known
	// key's signature fails to verify. It wraps the note package's
	// *note.UnverifiedNoteError or *note.InvalidSignatureError.
	ErrUnverified = errors.New("checkpoint not verified")
)

// The strictness rules of the package doc that note.Open and formats/log
// do not share, numbered as there; each error of such a refusal wraps one,
// so that tests can tell which rule refused a note.
var (
	errNoteTooLarge          = errors.New("note too large")                       // 1
	errTextTooLarge          = errors.New("text too large")                       // 2
	errTooManyExtensions     = errors.New("too many extension lines")             // 3
	errEmptyExtension        = errors.New("empty extension line")                 // 4
	errSizeNotCanonical      = errors.New("not canonical decimal")                // 5
	errHashNotCanonical      = errors.New("not the canonical base64 of 32 bytes") // 6
	errSignatureNotCanonical = errors.New("signature not canonical base64")       // 7
)

// malformed returns an error wrapping ErrMalformed and, if not nil, rule.
func malformed(rule error, format string, args ...any) error {
	if rule == nil {
		return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
	}
	return fmt.Errorf("%w: %w: %s", ErrMalformed, rule, fmt.Sprintf(format, args...))
}

// Checkpoint is a parsed C2SP tlog-checkpoint note text.
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

// Parse parses a checkpoint note text (with its final newline, as Split
// returns it) strictly: a text that parses is the Marshal of the result.
// It checks no signature. Errors wrap ErrMalformed.
func Parse(text []byte) (Checkpoint, error) {
	if len(text) > MaxTextSize {
		return Checkpoint{}, malformed(errTextTooLarge, "text of %d bytes, want at most %d", len(text), MaxTextSize)
	}
	if err := checkChars(text); err != nil {
		return Checkpoint{}, err
	}
	if len(text) == 0 || text[len(text)-1] != '\n' {
		return Checkpoint{}, malformed(nil, "text does not end in a newline")
	}
	lines := strings.Split(string(text[:len(text)-1]), "\n")
	if len(lines) < 3 {
		return Checkpoint{}, malformed(nil, "text has %d lines, want at least 3", len(lines))
	}
	if len(lines)-3 > MaxExtensions {
		return Checkpoint{}, malformed(errTooManyExtensions, "%d extension lines, want at most %d", len(lines)-3, MaxExtensions)
	}
	c := Checkpoint{Origin: lines[0]}
	if c.Origin == "" {
		return Checkpoint{}, malformed(nil, "empty origin")
	}
	var err error
	if c.Size, err = ParseDecimal(lines[1]); err != nil {
		return Checkpoint{}, fmt.Errorf("%w: tree size: %w", ErrMalformed, err)
	}
	if c.Hash, err = ParseHash(lines[2]); err != nil {
		return Checkpoint{}, fmt.Errorf("%w: root hash: %w", ErrMalformed, err)
	}
	for i, e := range lines[3:] {
		if e == "" {
			return Checkpoint{}, malformed(errEmptyExtension, "extension line %d is empty", i+1)
		}
		c.Extensions = append(c.Extensions, e)
	}
	return c, nil
}

// ParseDecimal parses a canonical ASCII decimal uint64 (no sign, no
// leading zeroes unless the value is zero), the tree size line of a
// checkpoint and the old size line of a C2SP tlog-witness request. Its
// errors, unlike Parse's, do not wrap ErrMalformed: the caller says what
// did not parse.
func ParseDecimal(s string) (uint64, error) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%.40q is not a decimal uint64", s)
	}
	if strconv.FormatUint(n, 10) != s {
		return 0, fmt.Errorf("%q: %w", s, errSizeNotCanonical)
	}
	return n, nil
}

// ParseHash parses a 32-byte hash in canonical standard padded base64,
// the root hash line of a checkpoint and a proof line of a C2SP
// tlog-witness request. Like ParseDecimal's, its errors do not wrap
// ErrMalformed.
func ParseHash(s string) ([32]byte, error) {
	var h [32]byte
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || len(b) != len(h) || base64.StdEncoding.EncodeToString(b) != s {
		return h, fmt.Errorf("%.60q: %w", s, errHashNotCanonical)
	}
	copy(h[:], b)
	return h, nil
}

// checkChars enforces signed-note: "Signed notes MUST be valid UTF-8 and
// MUST NOT contain any ASCII control characters (those below U+0020) other
// than newline."
func checkChars(b []byte) error {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return malformed(nil, "invalid UTF-8 at byte %d", i)
		}
		if r < 0x20 && r != '\n' {
			return malformed(nil, "control character %U at byte %d", r, i)
		}
		i += n
	}
	return nil
}
