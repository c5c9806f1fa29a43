package witness

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Sentinel errors of AddCheckpoint, for errors.Is. The HTTP handler maps
// each to its C2SP tlog-witness status code in statusFor.
var (
	// ErrMalformed: the request or checkpoint does not parse (400).
	ErrMalformed = errors.New("malformed request")
	// ErrUnknownLog: the checkpoint's origin is not a configured log (404).
	ErrUnknownLog = errors.New("unknown log")
	// ErrUnverified: no valid signature from a configured key of the log,
	// or a signature by such a key that fails to verify (403).
	ErrUnverified = errors.New("no valid log signature")
	// ErrOldSizeTooLarge: the old size exceeds the checkpoint size (400).
	ErrOldSizeTooLarge = errors.New("old size larger than checkpoint size")
	// ErrInvalidProof: the consistency proof is malformed for the sizes, or
	// a size-zero checkpoint lacks the empty tree's root (422). Not, by
	// itself, evidence of a fork.
	ErrInvalidProof = errors.New("invalid consistency proof")
	// ErrInconsistent: the checkpoint is inconsistent with the one the
	// witness cosigned (422); the error is a *ForkError with the evidence.
	ErrInconsistent = errors.New("checkpoint inconsistent with the cosigned checkpoint")
	// ErrStateChanged is returned by State.CompareAndSwap when the stored
	// record is not the expected one.
	ErrStateChanged = errors.New("witness state changed concurrently")
)

// ConflictError is returned when the request's old size is not the size
// of the latest checkpoint the witness cosigned for the log (409).
type ConflictError struct {
	// Size is the size of the latest cosigned checkpoint (0 if none).
	Size uint64
	// Requested is the old size the request named.
	Requested uint64
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("old size %d does not match the cosigned size %d", e.Requested, e.Size)
}

// EvidenceKind names what a piece of fork evidence shows.
type EvidenceKind string

const (
	// KindSameSizeDifferentRoot: two log-signed checkpoints of one size
	// with different root hashes.
	KindSameSizeDifferentRoot EvidenceKind = "same-size-different-root"
	// KindInconsistentProof: a log-signed checkpoint larger than the
	// cosigned one, with a consistency proof that does not connect them.
	// The proof came from the client (push) or from the log's tiles
	// (polling); monitors should re-check it against the log.
	KindInconsistentProof EvidenceKind = "inconsistent-proof"
	// KindRollback: while polling, the log served a log-signed checkpoint
	// smaller than the one the witness cosigned.
	KindRollback EvidenceKind = "rollback"
)

// Evidence is a record of log misbehaviour: the checkpoint the witness had
// cosigned and a log-signed checkpoint it refused, with the proof offered.
// Both checkpoints verify with the log's key, so monitors can check the
// evidence independently.
type Evidence struct {
	Kind   EvidenceKind `json:"kind"`
	Origin string       `json:"origin"`
	// Observed is when the witness saw the refused checkpoint.
	Observed time.Time `json:"observed"`
	// Cosigned is the checkpoint the witness had cosigned: log signatures
	// and the witness's cosignature.
	Cosigned []byte `json:"cosigned"`
	// Refused is the refused checkpoint as received.
	Refused []byte `json:"refused"`
	// OldSize and Proof are the consistency proof offered from OldSize to
	// the refused checkpoint's size (empty for KindSameSizeDifferentRoot
	// and KindRollback).
	OldSize uint64   `json:"old_size"`
	Proof   [][]byte `json:"proof,omitempty"`
	// Detail is the verification failure, for humans.
	Detail string `json:"detail"`
}

// ID identifies the evidence by its content (all fields but Observed and
// Detail), so that the same misbehaviour seen twice is stored once.
func (e *Evidence) ID() string {
	h := sha256.New()
	for _, f := range [][]byte{[]byte(e.Kind), []byte(e.Origin), e.Cosigned, e.Refused, []byte(strconv.FormatUint(e.OldSize, 10))} {
		h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(f))))
		h.Write(f)
	}
	for _, p := range e.Proof {
		h.Write(p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// ForkError reports a checkpoint inconsistent with the cosigned one. It
// matches ErrInconsistent with errors.Is and carries the evidence, which
// the witness has already stored when it returns the error.
type ForkError struct {
	Evidence Evidence
	// Err is the verification failure.
	Err error
}

func (e *ForkError) Error() string {
	return fmt.Sprintf("%s: log %q (%s): %s", ErrInconsistent, e.Evidence.Origin, e.Evidence.Kind, e.Err)
}

// Unwrap returns ErrInconsistent and the verification failure.
func (e *ForkError) Unwrap() []error { return []error{ErrInconsistent, e.Err} }
