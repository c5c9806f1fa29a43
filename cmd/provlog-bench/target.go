package main

import (
	"context"
	"errors"
	"time"
)

// Load modes. Tessera has no RPC of its own: in every mode its writer
// calls the library's Add once per entry and waits for all the futures of
// its call.
const (
	modeSingle = "single" // gRPC Append, one entry per call
	modeBatch  = "batch"  // gRPC AppendBatch
	modeStream = "stream" // gRPC AppendStream, several requests in flight per stream
	modeHTTP   = "http"   // POST /add, one entry per request
	modeEvents = "events" // signed build events through AppendBatch
	modeMixed  = "mixed"  // POST /add, one entry per request, beside readers of bundles and tiles
)

// target is a log under test.
type target interface {
	// Name is "provlog" or "tessera".
	Name() string
	// NewWriter returns a writer for one load goroutine, the i-th of a
	// load in the given mode.
	NewWriter(mode string, i int) (writer, error)
	// CheckpointSize returns the size of the latest published checkpoint,
	// after verifying its signature.
	CheckpointSize(ctx context.Context) (uint64, error)
	// TileBaseURL is the URL the tlog-tiles paths are relative to.
	TileBaseURL() string
	// PID is the process whose CPU and memory are the log's; 0 if unknown.
	PID() int
	// DataDir holds the log's data and nothing else; "" if unknown.
	DataDir() string
	// CheckpointInterval is how often the log publishes a checkpoint when
	// it grows (0: after every durable batch).
	CheckpointInterval() time.Duration
	Close() error
}

// writer adds entries to a target for one load goroutine.
type writer interface {
	// add adds the entries and returns, once all are durable, the largest
	// index assigned. It returns an error wrapping errPushback if the log
	// refused the call for load; nothing was added then.
	add(ctx context.Context, entries [][]byte) (uint64, error)
	close() error
}

// errPushback marks a call the log refused for load, to be retried.
var errPushback = errors.New("pushback")
