package log

import "errors"

// Sentinel errors of the Log API, for errors.Is. Errors returned by Log
// methods wrap one of these where one applies.
var (
	// ErrInvalidEntry: the entry is empty or larger than the entry cap.
	// Nothing was written. Not retryable.
	ErrInvalidEntry = errors.New("invalid entry")
	// ErrPushback: the sequencing queue is full. Nothing was written;
	// retry after a short delay (identical entries deduplicate, so a
	// retry is always safe).
	ErrPushback = errors.New("log is busy, retry later")
	// ErrUnavailable: the write cannot be done now: the log is shutting
	// down, a storage fault stopped the sequencer (Healthy then reports
	// it, until a restart), or a storage read failed. Retry later,
	// elsewhere or after a restart.
	ErrUnavailable = errors.New("log is not accepting writes")
	// ErrOutOfRange: an index or tree size beyond the integrated tree,
	// or an impossible pair of sizes.
	ErrOutOfRange = errors.New("out of range")
	// ErrNotFound: no such entry, tile or bundle.
	ErrNotFound = errors.New("not found")
)

// AddResult is the outcome of adding one entry.
type AddResult struct {
	// Index is the entry's index in the log.
	Index uint64
	// Duplicate is true if the same bytes were already in the log; Index
	// is then the original index.
	Duplicate bool
}

// Checkpoint is a published, signed checkpoint.
type Checkpoint struct {
	// Size is the tree size.
	Size uint64
	// Root is the RFC 6962 root hash of the tree of that size.
	Root []byte
	// Note is the C2SP tlog-checkpoint as a signed note, as served: with
	// witness cosignatures when the log is witnessed.
	Note []byte

	witnessed bool // Note carries cosignatures meeting the witness policy
}
