package witness

// Checkpoints (C2SP tlog-checkpoint in a C2SP signed note) are parsed and
// opened by internal/checkpoint, which owns the format for the whole
// module; this file adapts it to the witness's errors. Parsing is strict
// and canonical, so a text that parses re-encodes (Checkpoint.Marshal) to
// exactly the bytes that were sent, and the witness cosigns that
// re-encoding: what it signs is what it interpreted. Signature lines of
// keys the witness does not know are ignored however they are written, as
// C2SP signed-note requires; the log's own signatures must be canonical
// base64 (the package's rule 7).

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/note"

	"github.com/provlog/provlog/internal/checkpoint"
)

const (
	// MaxCheckpointTextSize caps a checkpoint's note text (origin, size,
	// root hash and extension lines).
	MaxCheckpointTextSize = checkpoint.MaxTextSize
	// MaxCheckpointSize caps a whole signed checkpoint: the module's one
	// cap, checkpoint.MaxSize (16 ML-DSA-44 cosignatures fit).
	MaxCheckpointSize = checkpoint.MaxSize
)

// Checkpoint is a parsed C2SP tlog-checkpoint body.
type Checkpoint = checkpoint.Checkpoint

// ParseCheckpointText parses a checkpoint note text strictly
// (checkpoint.Parse). It checks no signature. Errors wrap ErrMalformed.
func ParseCheckpointText(text []byte) (Checkpoint, error) {
	c, err := checkpoint.Parse(text)
	return c, checkpointError(err)
}

// splitNote splits a signed note into its text (with the final newline)
// and its signature block (checkpoint.Split). Errors wrap ErrMalformed.
func splitNote(msg []byte) (text, sigs []byte, err error) {
	text, sigs, err = checkpoint.Split(msg)
	return text, sigs, checkpointError(err)
}

// openCheckpoint parses a signed checkpoint strictly and verifies it with
// the log's verifiers (checkpoint.Open). lookup returns the verifiers for
// an origin, or false if the origin is unknown. It returns the checkpoint
// and the log's verified signatures; signature lines of other keys are
// ignored. Errors wrap ErrMalformed, ErrUnknownLog or ErrUnverified.
func openCheckpoint(msg []byte, lookup func(origin string) ([]note.Verifier, bool)) (Checkpoint, []note.Signature, error) {
	cp, sigs, err := checkpoint.Open(msg, func(origin string) (note.Verifiers, error) {
		vs, ok := lookup(origin)
		if !ok {
			return nil, fmt.Errorf("%w: origin %q", ErrUnknownLog, origin)
		}
		return note.VerifierList(vs...), nil
	})
	return cp, sigs, checkpointError(err)
}

// openNote verifies the signature lines sigs of a witness's response over
// text with known (checkpoint.VerifyDetached): lines of other keys are
// ignored, a known key's are read in any base64 that decodes, and the
// returned note's signatures are the verified ones, canonically encoded,
// ready for formatSignatures.
func openNote(text, sigs []byte, known note.Verifiers) (*note.Note, error) {
	verified, err := checkpoint.VerifyDetached(text, sigs, known)
	if err != nil {
		return nil, err
	}
	return &note.Note{Text: string(text), Sigs: verified}, nil
}

// formatSignatures encodes note signature lines ("— name base64\n").
func formatSignatures(sigs []note.Signature) []byte { return checkpoint.FormatSignatures(sigs) }

// parseDecimal parses a canonical ASCII decimal uint64, as the checkpoint's
// size line is (checkpoint.ParseDecimal).
func parseDecimal(s string) (uint64, error) { return checkpoint.ParseDecimal(s) }

// parseHash parses a 32-byte hash in canonical padded base64, as the
// checkpoint's root hash line is (checkpoint.ParseHash).
func parseHash(s string) ([32]byte, error) { return checkpoint.ParseHash(s) }

// checkpointError wraps an error of package checkpoint with the witness's
// sentinel for it: ErrMalformed or ErrUnverified.
func checkpointError(err error) error {
	switch {
	case errors.Is(err, checkpoint.ErrMalformed):
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	case errors.Is(err, checkpoint.ErrUnverified):
		return fmt.Errorf("%w: %w", ErrUnverified, err)
	}
	return err
}

// OriginHash returns the lowercase hex SHA-256 of origin, the path
// component that names a log in the witness's monitoring URLs.
func OriginHash(origin string) string {
	h := sha256.Sum256([]byte(origin))
	return hex.EncodeToString(h[:])
}
