package server

import (
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	provlogv1 "github.com/provlog/provlog/proto/provlog/v1"
)

// Request validation, Trillian style: pure functions that check the shape
// of a request and return codes.InvalidArgument naming the offending field.
// Whether indices and sizes lie within the tree is the log's to decide.

const (
	// maxBatchEntries caps the entries of one AppendBatchRequest.
	maxBatchEntries = 4096
	// hashSize is the size of an RFC 6962 (SHA-256) hash.
	hashSize = 32
)

func invalid(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

// entryProblem returns what is wrong with an entry under the entry cap,
// or "" if nothing is.
func entryProblem(entry []byte, maxSize int) string {
	switch {
	case len(entry) == 0:
		return "empty"
	case len(entry) > maxSize:
		return fmt.Sprintf("%d bytes, want <= %d", len(entry), maxSize)
	}
	return ""
}

func validateAppendRequest(req *provlogv1.AppendRequest, maxSize int) error {
	if p := entryProblem(req.GetEntry(), maxSize); p != "" {
		return invalid("AppendRequest.entry: %s", p)
	}
	return nil
}

func validateAppendBatchRequest(req *provlogv1.AppendBatchRequest, maxSize int) error {
	entries := req.GetEntries()
	switch {
	case len(entries) == 0:
		return invalid("AppendBatchRequest.entries: empty")
	case len(entries) > maxBatchEntries:
		return invalid("AppendBatchRequest.entries: %d entries, want <= %d", len(entries), maxBatchEntries)
	}
	for i, e := range entries {
		if p := entryProblem(e, maxSize); p != "" {
			return invalid("AppendBatchRequest.entries[%d]: %s", i, p)
		}
	}
	return nil
}

func validateGetInclusionProofRequest(req *provlogv1.GetInclusionProofRequest) error {
	switch leaf := req.GetLeaf().(type) {
	case nil:
		return invalid("GetInclusionProofRequest.leaf: unset")
	case *provlogv1.GetInclusionProofRequest_LeafHash:
		if n := len(leaf.LeafHash); n != hashSize {
			return invalid("GetInclusionProofRequest.leaf_hash: %d bytes, want %d", n, hashSize)
		}
	}
	return nil
}

func validateGetConsistencyProofRequest(req *provlogv1.GetConsistencyProofRequest) error {
	from, to := req.GetFromSize(), req.GetToSize()
	if to != 0 && from > to {
		return invalid("GetConsistencyProofRequest.from_size: %d, want <= to_size %d", from, to)
	}
	return nil
}

func validateGetEntriesRequest(req *provlogv1.GetEntriesRequest) error {
	start, count := req.GetStart(), req.GetCount()
	switch {
	case count == 0:
		return invalid("GetEntriesRequest.count: 0, want > 0")
	case start+count < start:
		return invalid("GetEntriesRequest.count: %d, start+count overflows", count)
	}
	return nil
}
