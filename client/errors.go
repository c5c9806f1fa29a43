package client

import (
	"errors"
	"fmt"
)

// Sentinel errors. Errors returned by this package wrap at most one of them
// (plus, for gRPC failures, the gRPC status, so that status.Code works on
// them too); test with errors.Is.
var (
	// ErrFormat: the input (a bundle, checkpoint text, proof response, tile
	// or entry bundle) is malformed or not in canonical form.
	ErrFormat = errors.New("malformed input")
	// ErrLogSignature: a checkpoint is not validly signed by the log's key,
	// or names another origin.
	ErrLogSignature = errors.New("checkpoint not signed by the log")
	// ErrInclusionProof: an inclusion proof does not bind the entry to the
	// checkpoint's root.
	ErrInclusionProof = errors.New("inclusion proof does not verify")
	// ErrPolicyNotSatisfied: the checkpoint's witness cosignatures do not
	// satisfy the witness policy.
	ErrPolicyNotSatisfied = errors.New("witness policy not satisfied")
	// ErrEntryMismatch: a bundle carries another entry than the expected one.
	ErrEntryMismatch = errors.New("entry does not match")
	// ErrInconsistent: the log presented two views of its history that
	// cannot both be true. Errors wrapping it are *InconsistencyError.
	ErrInconsistent = errors.New("log is inconsistent")
	// ErrAuditMismatch: something the log serves does not match what the
	// audit recomputed. Errors wrapping it are *AuditError.
	ErrAuditMismatch = errors.New("audit mismatch")
	// ErrRejected: the log refused the request (InvalidArgument,
	// FailedPrecondition, PermissionDenied, ...); retrying will not help.
	ErrRejected = errors.New("rejected by the log")
	// ErrUnavailable: the log was unavailable or pushing back, and the
	// context ended (or the attempts ran out) before a retry succeeded.
	ErrUnavailable = errors.New("log unavailable")
	// ErrLogMisbehaved: the log answered a well-formed request with a
	// response that contradicts it (wrong count, wrong index, a page token
	// that loops); this is a fault of the log, not of the caller.
	ErrLogMisbehaved = errors.New("log sent an invalid response")
)

// InconsistencyError is evidence that a log forked or rolled back: two
// checkpoints, both validly signed by the log, that no append-only log can
// have produced, and the consistency proof (if any) the log offered to link
// them.
type InconsistencyError struct {
	// Older is the raw signed checkpoint verified earlier (the monitor's
	// stored one, or the previously audited one).
	Older []byte
	// Newer is the raw signed checkpoint that contradicts it.
	Newer []byte
	// Proof is the consistency proof from Older's size to Newer's size the
	// log served, or nil if none was needed to see the contradiction (same
	// size with another root, or a smaller size) or the audit recomputed
	// the tree instead.
	Proof [][]byte
	// EvidenceFile is the file the evidence was written to, or "" if it
	// was not written.
	EvidenceFile string
	// Reason says what contradicts what.
	Reason error
}

func (e *InconsistencyError) Error() string {
	s := fmt.Sprintf("log is inconsistent: %v", e.Reason)
	if e.EvidenceFile != "" {
		s += " (evidence in " + e.EvidenceFile + ")"
	}
	return s
}

// Unwrap returns the reason and ErrInconsistent.
func (e *InconsistencyError) Unwrap() []error { return []error{ErrInconsistent, e.Reason} }

// AuditError reports a difference between what a log serves and what
// [Audit] recomputed from its entries.
type AuditError struct {
	// Path is the tlog-tiles resource that differs, e.g. "tile/0/001" or
	// "tile/entries/x001/234.p/7", or "checkpoint".
	Path string
	// Index is the index within the resource of the first differing hash
	// or entry, or -1 if the difference is not about one element (a wrong
	// length, the root).
	Index int
	// Reason describes the difference.
	Reason string
}

func (e *AuditError) Error() string {
	if e.Index >= 0 {
		return fmt.Sprintf("audit mismatch: %s [%d]: %s", e.Path, e.Index, e.Reason)
	}
	return fmt.Sprintf("audit mismatch: %s: %s", e.Path, e.Reason)
}

// Unwrap returns ErrAuditMismatch.
func (e *AuditError) Unwrap() error { return ErrAuditMismatch }
