package witness

import (
	"errors"
	"fmt"
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
	// ErrEvidenceFull is returned by State.AddEvidence when the log already
	// has the most evidence records allowed and e is not among them.
	ErrEvidenceFull = errors.New("evidence records full for this log")
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

// ForkError reports a checkpoint inconsistent with the cosigned one. It
// matches ErrInconsistent with errors.Is and carries the evidence, which
// the witness has already stored when it returns the error, unless the
// log's evidence was at Config.MaxEvidence.
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
