package client

// The C2SP tlog-checkpoint (c2sp.org/tlog-checkpoint) in a C2SP signed note
// (c2sp.org/signed-note):
//
//	<origin>\n
//	<tree size, decimal, no leading zeros>\n
//	<root hash, base64 of 32 bytes>\n
//	[<extension line>\n]...
//	\n
//	— <key name> <base64(key hash || signature)>\n
//	...
//
// OpenCheckpoint accepts only that canonical form, in addition to what
// note.Open checks: the first three lines must be exactly what
// formats/log.Checkpoint.Marshal produces from the parsed values (so "007"
// or a non-canonical base64 root is rejected, which log.ParseCheckpoint
// alone accepts), the root is 32 bytes, and every verified signature line
// is canonical base64 (note.Open decodes leniently, so a signature's spare
// bits could otherwise be flipped without detection). Lines of unknown
// keys are ignored, as signed-note requires, however they are encoded.

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
)

// MaxCheckpointSize caps a signed checkpoint, cosignatures included.
const MaxCheckpointSize = 64 << 10

// Checkpoint is a checkpoint whose signature by the log's key and whose
// origin have been verified.
type Checkpoint struct {
	// Origin is the log's origin line.
	Origin string
	// Size is the number of entries in the tree.
	Size uint64
	// Hash is the RFC 6962 root hash of the tree, 32 bytes.
	Hash []byte
	// Raw is the signed note exactly as the log served it, with any
	// witness cosignatures.
	Raw []byte
}

// OpenCheckpoint verifies raw, a signed checkpoint, with the log's
// verifier v and parses it strictly. origin is the origin the checkpoint
// must name; if empty, v.Name(). Errors wrap ErrFormat (malformed or
// oversized) or ErrLogSignature (no valid signature by v, or another
// origin).
func OpenCheckpoint(raw []byte, v note.Verifier, origin string) (*Checkpoint, error) {
	if origin == "" {
		origin = v.Name()
	}
	if len(raw) > MaxCheckpointSize {
		return nil, fmt.Errorf("%w: checkpoint of %d bytes, want <= %d", ErrFormat, len(raw), MaxCheckpointSize)
	}
	n, err := note.Open(raw, note.VerifierList(v))
	if err != nil {
		var unverified *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		if errors.As(err, &unverified) || errors.As(err, &invalid) {
			return nil, fmt.Errorf("%w: %w", ErrLogSignature, err)
		}
		return nil, fmt.Errorf("%w: checkpoint: %w", ErrFormat, err)
	}
	// signed-note: "Verifiers MUST ignore signatures from unknown keys", so
	// only the verified signatures are held to canonical base64; a witness
	// or mirror line this client cannot verify never makes it reject the
	// log's checkpoint.
	for _, s := range n.Sigs {
		if _, err := base64.StdEncoding.Strict().DecodeString(s.Base64); err != nil {
			return nil, fmt.Errorf("%w: checkpoint signature by %q: not canonical base64", ErrFormat, s.Name)
		}
	}
	var cp log.Checkpoint
	if _, err := cp.Unmarshal([]byte(n.Text)); err != nil {
		return nil, fmt.Errorf("%w: checkpoint text: %w", ErrFormat, err)
	}
	if len(cp.Hash) != sha256.Size || !bytes.HasPrefix([]byte(n.Text), cp.Marshal()) {
		return nil, fmt.Errorf("%w: checkpoint text %q: not canonical", ErrFormat, firstLines(n.Text, 3))
	}
	if cp.Origin != origin {
		return nil, fmt.Errorf("%w: checkpoint origin %q, want %q", ErrLogSignature, cp.Origin, origin)
	}
	return &Checkpoint{Origin: cp.Origin, Size: cp.Size, Hash: cp.Hash, Raw: raw}, nil
}

// firstLines returns the first n lines of s, for messages.
func firstLines(s string, n int) string {
	i := 0
	for k := 0; k < n; k++ {
		j := bytes.IndexByte([]byte(s[i:]), '\n')
		if j < 0 {
			return s
		}
		i += j + 1
	}
	return s[:i]
}

// newLogVerifier parses a note verifier key (C2SP signed-note vkey).
func newLogVerifier(vkey string) (note.Verifier, error) {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("log verifier key %q: %w", vkey, err)
	}
	return v, nil
}
