package witness

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strconv"
	"time"
)

// EvidenceKind names what a piece of fork evidence shows.
type EvidenceKind string

const (
	// KindSameSizeDifferentRoot: two log-signed checkpoints of one size
	// with different root hashes.
	KindSameSizeDifferentRoot EvidenceKind = "same-size-different-root"
	// KindInconsistentProof: a log-signed checkpoint larger than the
	// cosigned one and a consistency proof between them that shows they
	// cannot both be true: either fetched from the log's own tiles
	// (polling), or pushed by a client whose proof hashes to the larger
	// checkpoint's root but gives another root than the cosigned one at
	// the cosigned size (see provenFork). A pushed proof that just does not
	// verify is no evidence (ErrInvalidProof).
	KindInconsistentProof EvidenceKind = "inconsistent-proof"
	// KindRollback: while polling, the log served a log-signed checkpoint
	// smaller than the one the witness cosigned, and the consistency proof
	// from the smaller to the cosigned size, fetched from the log's tiles,
	// does not connect them. (A smaller checkpoint that the tiles prove
	// consistent is only stale: see Witness.Poll.)
	KindRollback EvidenceKind = "rollback"
)

// Evidence is a record of log misbehaviour: the checkpoint the witness had
// cosigned and a log-signed checkpoint it refused, with the proof that
// shows they cannot both be true. Both checkpoints verify with the log's
// key, so monitors can check the evidence independently.
//
// In JSON, the checkpoints and proof hashes are standard base64 (the
// encoding/json form of []byte).
type Evidence struct {
	Kind   EvidenceKind `json:"kind"`
	Origin string       `json:"origin"`
	// Observed is when the witness saw the refused checkpoint.
	Observed time.Time `json:"observed"`
	// Cosigned is the checkpoint the witness had cosigned: log signatures
	// and the witness's cosignature.
	Cosigned []byte `json:"cosigned"`
	// Refused is the refused checkpoint: its text and the log signatures
	// that verified, canonically encoded (other signature lines dropped).
	Refused []byte `json:"refused"`
	// OldSize and Proof are the consistency proof from OldSize to the
	// larger of the two checkpoints: for KindInconsistentProof, from the
	// cosigned size to the refused one; for KindRollback, from the refused
	// size to the cosigned one. Empty for KindSameSizeDifferentRoot.
	OldSize uint64   `json:"old_size"`
	Proof   [][]byte `json:"proof,omitempty"`
	// Detail is the verification failure, for humans; hashes in base64.
	Detail string `json:"detail"`
}

// ID identifies the evidence by its content: the kind, the origin, the
// note texts of the two checkpoints (not their signature lines, which
// carry the witness's cosignature timestamp), the old size and the proof.
// The same misbehaviour seen twice is stored once.
func (e *Evidence) ID() string {
	h := sha256.New()
	for _, f := range [][]byte{[]byte(e.Kind), []byte(e.Origin), noteText(e.Cosigned), noteText(e.Refused), []byte(strconv.FormatUint(e.OldSize, 10))} {
		h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(f))))
		h.Write(f)
	}
	for _, p := range e.Proof {
		h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(p))))
		h.Write(p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// noteText returns the text of a signed note (up to and including the
// newline before its last blank line), or all of msg if it has none.
func noteText(msg []byte) []byte {
	if i := bytes.LastIndex(msg, []byte("\n\n")); i >= 0 {
		return msg[:i+1]
	}
	return msg
}
