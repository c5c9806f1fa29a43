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
// The format is internal/checkpoint's, which the witness and the log use
// too: OpenCheckpoint accepts exactly the checkpoints the witness does. It
// accepts only the canonical form ("007" or a non-canonical base64 root is
// refused, which formats/log alone accepts; the root is 32 bytes), and the
// log's signature must be canonical base64 (note.Open decodes leniently,
// so a signature's spare bits could otherwise be flipped without
// detection). Lines of unknown keys are ignored, as signed-note requires,
// however they are encoded.

import (
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/note"

	"github.com/provlog/provlog/internal/checkpoint"
)

// MaxCheckpointSize caps a signed checkpoint, cosignatures included: the
// module's one cap, checkpoint.MaxSize, in which 16 ML-DSA-44
// cosignatures fit.
const MaxCheckpointSize = checkpoint.MaxSize

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
// verifier v and parses it strictly (checkpoint.Open). origin is the
// origin the checkpoint must name; if empty, v.Name(). Errors wrap
// ErrFormat (malformed or oversized) or ErrLogSignature (no valid
// signature by v, or another origin).
func OpenCheckpoint(raw []byte, v note.Verifier, origin string) (*Checkpoint, error) {
	if origin == "" {
		origin = v.Name()
	}
	cp, _, err := checkpoint.Open(raw, func(o string) (note.Verifiers, error) {
		if o != origin {
			return nil, fmt.Errorf("%w: checkpoint origin %q, want %q", ErrLogSignature, o, origin)
		}
		return note.VerifierList(v), nil
	})
	switch {
	case errors.Is(err, checkpoint.ErrMalformed):
		return nil, fmt.Errorf("%w: %w", ErrFormat, err)
	case errors.Is(err, checkpoint.ErrUnverified):
		return nil, fmt.Errorf("%w: %w", ErrLogSignature, err)
	case err != nil:
		return nil, err
	}
	return &Checkpoint{Origin: cp.Origin, Size: cp.Size, Hash: cp.Hash[:], Raw: raw}, nil
}

// newLogVerifier parses a note verifier key (C2SP signed-note vkey).
func newLogVerifier(vkey string) (note.Verifier, error) {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("log verifier key %q: %w", vkey, err)
	}
	return v, nil
}
