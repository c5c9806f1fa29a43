// Package server holds provlog's front ends: thin gRPC and HTTP servers over
// the log.
//
// RegisterGRPC serves the provlog.v1.Log service (proto/provlog/v1), the
// standard gRPC health service and reflection. HTTPHandler serves the C2SP
// tlog-tiles read API (checkpoint, tiles, entry bundles), POST /add,
// /healthz, /metrics, the auditor's web page (package ui) and, under
// /api/v1/, the read RPCs in the standard proto3 JSON mapping, served by
// the gRPC handlers themselves (api.go); NewHTTPServer serves it with timeouts that a slow
// client cannot outlast. ServerOptions bounds the gRPC server likewise.
//
// Handlers only validate requests, call the Log and map its errors. Domain
// errors (the sentinels of package log) map to gRPC status codes in
// grpcError and to HTTP status codes in httpError; anything else is logged
// and reported as an internal error without details.
package server

import (
	"context"

	"github.com/provlog/provlog/event"
	"github.com/provlog/provlog/log"
	"github.com/provlog/provlog/policy"
)

// Log is what the servers need of *log.Log.
//
// Add and AddBatch return only once the entries are durable and covered by
// a signed checkpoint (published, unless the log is witnessed). Reads
// serve the integrated tree, up to IntegratedSize; the checkpoint served
// is the published one, which a witnessed log holds back for its quorum.
// Errors wrap the sentinels of package log (log.ErrInvalidEntry,
// log.ErrPushback, log.ErrUnavailable, log.ErrOutOfRange, log.ErrNotFound,
// log.ErrPermissionDenied, log.ErrFailedPrecondition)
// where one applies.
type Log interface {
	// Add adds one entry.
	Add(ctx context.Context, entry []byte) (log.AddResult, error)
	// AddBatch adds entries together; results are in the order of entries.
	AddBatch(ctx context.Context, entries [][]byte) ([]log.AddResult, error)
	// Checkpoint returns the latest published checkpoint.
	Checkpoint() log.Checkpoint
	// IntegratedSize is the size of the latest durable signed checkpoint:
	// reads serve up to it, which may be ahead of Checkpoint().Size.
	IntegratedSize() uint64
	// InclusionProof needs index < size <= IntegratedSize().
	InclusionProof(ctx context.Context, index, size uint64) ([][]byte, error)
	// IndexOf returns the index of the entry with an RFC 6962 leaf hash.
	IndexOf(ctx context.Context, leafHash []byte) (uint64, error)
	// ConsistencyProof needs from <= to <= IntegratedSize().
	ConsistencyProof(ctx context.Context, from, to uint64) ([][]byte, error)
	// Entries calls fn for each entry of [start, start+count) in order;
	// entry is valid only during the call.
	Entries(ctx context.Context, start, count uint64, fn func(index uint64, entry []byte) error) error
	// Tile returns a tlog-tiles hash tile; width 0 means the full tile.
	Tile(ctx context.Context, level, index uint64, width uint8) ([]byte, error)
	// ServeEntryBundle returns a tlog-tiles entry bundle (width as for
	// Tile) in the form to serve it in: gzip-compressed only if acceptGzip;
	// the server releases it (ServedBundle.Release) once written.
	ServeEntryBundle(ctx context.Context, index uint64, width uint8, acceptGzip bool) (log.ServedBundle, error)
	// Search returns published entries under an index term from index
	// from on, and the index to continue from (0 when done).
	Search(ctx context.Context, kind byte, value string, from uint64, limit int) ([]log.SearchResult, uint64, error)
	// ProofBundle returns a C2SP tlog-proof for one entry.
	ProofBundle(ctx context.Context, index uint64) ([]byte, error)
	// MaxEntrySize is the entry cap in bytes.
	MaxEntrySize() int
	// Healthy returns nil if the log accepts writes, else the reason.
	Healthy() error
	// Signers returns who signed env, the envelope of the entry at index,
	// by the log's trust history: the keys of the keyring in force at
	// index that verify its signatures, or byLog if the log key signed
	// it; neither for a log without a history (open admission). For
	// display only (decoded entries), not an admission decision.
	Signers(ctx context.Context, index uint64, env *event.Envelope) (keys []*policy.Key, byLog bool)
}
