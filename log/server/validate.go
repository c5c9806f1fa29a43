package server

import (
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/provlog/provlog/event"
	"github.com/provlog/provlog/log"
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
		return log.TooLarge(len(entry), maxSize)
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

const (
	// defaultPageSize is the page size of a SearchRequest that gives none.
	defaultPageSize = 100
	// maxSearchValue caps builder ids and source commits in a search.
	maxSearchValue = 1024
)

// searchQuery is a validated SearchRequest.
type searchQuery struct {
	kind  byte
	value string
	from  uint64
	limit int
}

func validateSearchRequest(req *provlogv1.SearchRequest) (searchQuery, error) {
	q := searchQuery{limit: int(req.GetPageSize())}
	switch k := req.GetKey().(type) {
	case *provlogv1.SearchRequest_Digest:
		d, err := event.ParseDigest(k.Digest)
		if err != nil {
			return q, invalid("SearchRequest.digest: %q, want sha256:<64 hex> or sha512:<128 hex>", clip(k.Digest))
		}
		q.kind, q.value = log.IndexDigest, d.String()
	case *provlogv1.SearchRequest_BuilderId:
		q.kind, q.value = log.IndexBuilder, k.BuilderId
	case *provlogv1.SearchRequest_SourceCommit:
		q.kind, q.value = log.IndexCommit, k.SourceCommit
	case *provlogv1.SearchRequest_SignerKeyId:
		// Signers are indexed by their keyring key's securesystemslib key
		// id: a SHA-256, 64 lowercase hex digits.
		if id := k.SignerKeyId; len(id) != 64 || strings.Trim(id, "0123456789abcdef") != "" {
			return q, invalid("SearchRequest.signer_key_id: %q, want a key id of 64 lowercase hex digits (provlog keygen prints it; provlog search --key-file computes it)", clip(id))
		}
		q.kind, q.value = log.IndexSigner, k.SignerKeyId
	case *provlogv1.SearchRequest_TrustEvents:
		if !k.TrustEvents {
			return q, invalid("SearchRequest.trust_events: false, want true (or another key)")
		}
		q.kind, q.value = log.IndexTrust, log.TrustIndexValue
	default:
		return q, invalid("SearchRequest.key: unset, want digest, builder_id, source_commit, signer_key_id or trust_events")
	}
	if q.value == "" || len(q.value) > maxSearchValue {
		return q, invalid("SearchRequest.key: %d bytes, want 1 to %d", len(q.value), maxSearchValue)
	}
	switch {
	case q.limit == 0:
		q.limit = defaultPageSize
	case q.limit > log.MaxSearchResults:
		return q, invalid("SearchRequest.page_size: %d, want <= %d", q.limit, log.MaxSearchResults)
	}
	if t := req.GetPageToken(); t != "" {
		from, err := strconv.ParseUint(t, 10, 64)
		if err != nil || strconv.FormatUint(from, 10) != t {
			return q, invalid("SearchRequest.page_token: malformed")
		}
		q.from = from
	}
	return q, nil
}

func validateGetProofBundleRequest(req *provlogv1.GetProofBundleRequest) error {
	switch l := req.GetLeaf().(type) {
	case *provlogv1.GetProofBundleRequest_Index:
	case *provlogv1.GetProofBundleRequest_LeafHash:
		if len(l.LeafHash) != hashSize {
			return invalid("GetProofBundleRequest.leaf_hash: %d bytes, want %d", len(l.LeafHash), hashSize)
		}
	default:
		return invalid("GetProofBundleRequest.leaf: unset, want index or leaf_hash")
	}
	return nil
}

// clip shortens untrusted text quoted in an error.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
