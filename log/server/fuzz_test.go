package server

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/provlog/provlog/log"
	provlogv1 "github.com/provlog/provlog/proto/provlog/v1"
)

// Fuzz targets for the gRPC request validators: the fuzzer's bytes are
// decoded as the request message (as the gRPC server decodes them), and the
// validator must not panic, must accept exactly the well-formed requests
// (checked against a plain restatement of each rule), and must refuse the
// others with codes.InvalidArgument and a short, valid UTF-8 message that
// starts with "<Request>.<field>", a field (or oneof) of that message.

// maxErrorMessage bounds the length of a validation error message: untrusted
// input quoted in it is clipped.
const maxErrorMessage = 512

// checkValidation checks the outcome of validating req: err must be nil if
// and only if ok, and otherwise a well-formed InvalidArgument naming a
// field of req.
func checkValidation(t *testing.T, req proto.Message, err error, ok bool) {
	t.Helper()
	name := string(req.ProtoReflect().Descriptor().Name())
	if err == nil {
		if !ok {
			t.Fatalf("%s accepted, want InvalidArgument: %v", name, req)
		}
		return
	}
	st, isStatus := status.FromError(err)
	if !isStatus || st.Code() != codes.InvalidArgument {
		t.Fatalf("%s: error %v (%T), want a status with code InvalidArgument", name, err, err)
	}
	msg := st.Message()
	if ok {
		t.Fatalf("%s refused with %q, want accepted: %v", name, msg, req)
	}
	if !utf8.ValidString(msg) || len(msg) > maxErrorMessage {
		t.Fatalf("%s: message of %d bytes, valid UTF-8 %t: %q", name, len(msg), utf8.ValidString(msg), msg)
	}
	path, _, found := strings.Cut(msg, ": ")
	typ, field, _ := strings.Cut(path, ".")
	if !found || typ != name {
		t.Fatalf("message %q does not start with %q", msg, name+".<field>: ")
	}
	if i := strings.IndexByte(field, '['); i >= 0 {
		field = field[:i]
	}
	d := req.ProtoReflect().Descriptor()
	if d.Fields().ByName(protoreflect.Name(field)) == nil && d.Oneofs().ByName(protoreflect.Name(field)) == nil {
		t.Fatalf("message %q names %q, not a field of %s", msg, field, name)
	}
}

// unmarshal decodes data into req as the gRPC server would; false if the
// bytes are not a valid encoding.
func unmarshal(data []byte, req proto.Message) bool {
	return proto.Unmarshal(data, req) == nil
}

// addSeeds adds the encodings of reqs to the corpus, each with the extra
// arguments args.
func addSeeds(f *testing.F, reqs []proto.Message, args ...any) {
	for _, r := range reqs {
		b, err := proto.Marshal(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(append([]any{b}, args...)...)
	}
}

// entrySizeCap maps a fuzzed cap to the range a log accepts, 1..65535.
func entrySizeCap(c uint16) int { return max(int(c), 1) }

func entryOK(e []byte, maxSize int) bool { return len(e) > 0 && len(e) <= maxSize }

func FuzzValidateAppendRequest(f *testing.F) {
	addSeeds(f, []proto.Message{
		&provlogv1.AppendRequest{Entry: []byte("hello, log")},
		&provlogv1.AppendRequest{},
		&provlogv1.AppendRequest{Entry: bytes.Repeat([]byte{0xff}, 300)},
	}, uint16(65535))
	f.Add([]byte{0x0a, 0x02, 'h', 'i'}, uint16(1))
	f.Fuzz(func(t *testing.T, data []byte, c uint16) {
		req := new(provlogv1.AppendRequest)
		if !unmarshal(data, req) {
			return
		}
		maxSize := entrySizeCap(c)
		checkValidation(t, req, validateAppendRequest(req, maxSize), entryOK(req.Entry, maxSize))
	})
}

func FuzzValidateAppendBatchRequest(f *testing.F) {
	addSeeds(f, []proto.Message{
		&provlogv1.AppendBatchRequest{Entries: [][]byte{[]byte("a"), []byte("bc")}},
		&provlogv1.AppendBatchRequest{},
		&provlogv1.AppendBatchRequest{Entries: [][]byte{[]byte("a"), nil, []byte("c")}},
		&provlogv1.AppendBatchRequest{Entries: [][]byte{bytes.Repeat([]byte("x"), 100)}},
	}, uint16(64))
	f.Fuzz(func(t *testing.T, data []byte, c uint16) {
		req := new(provlogv1.AppendBatchRequest)
		if !unmarshal(data, req) {
			return
		}
		maxSize := entrySizeCap(c)
		ok := len(req.Entries) > 0 && len(req.Entries) <= maxBatchEntries
		for _, e := range req.Entries {
			ok = ok && entryOK(e, maxSize)
		}
		checkValidation(t, req, validateAppendBatchRequest(req, maxSize), ok)
	})
}

func FuzzValidateGetInclusionProofRequest(f *testing.F) {
	addSeeds(f, []proto.Message{
		&provlogv1.GetInclusionProofRequest{Leaf: &provlogv1.GetInclusionProofRequest_Index{Index: 7}, TreeSize: 10},
		&provlogv1.GetInclusionProofRequest{Leaf: &provlogv1.GetInclusionProofRequest_LeafHash{LeafHash: make([]byte, 32)}},
		&provlogv1.GetInclusionProofRequest{Leaf: &provlogv1.GetInclusionProofRequest_LeafHash{LeafHash: make([]byte, 31)}},
		&provlogv1.GetInclusionProofRequest{TreeSize: 3},
	})
	f.Fuzz(func(t *testing.T, data []byte) {
		req := new(provlogv1.GetInclusionProofRequest)
		if !unmarshal(data, req) {
			return
		}
		var ok bool
		switch l := req.Leaf.(type) {
		case *provlogv1.GetInclusionProofRequest_Index:
			ok = true
		case *provlogv1.GetInclusionProofRequest_LeafHash:
			ok = len(l.LeafHash) == 32
		}
		checkValidation(t, req, validateGetInclusionProofRequest(req), ok)
	})
}

func FuzzValidateGetConsistencyProofRequest(f *testing.F) {
	addSeeds(f, []proto.Message{
		&provlogv1.GetConsistencyProofRequest{FromSize: 3, ToSize: 10},
		&provlogv1.GetConsistencyProofRequest{FromSize: 10, ToSize: 3},
		&provlogv1.GetConsistencyProofRequest{FromSize: 10},
		&provlogv1.GetConsistencyProofRequest{FromSize: 1<<64 - 1, ToSize: 1<<64 - 2},
	})
	f.Fuzz(func(t *testing.T, data []byte) {
		req := new(provlogv1.GetConsistencyProofRequest)
		if !unmarshal(data, req) {
			return
		}
		ok := req.ToSize == 0 || req.FromSize <= req.ToSize
		checkValidation(t, req, validateGetConsistencyProofRequest(req), ok)
	})
}

func FuzzValidateGetEntriesRequest(f *testing.F) {
	addSeeds(f, []proto.Message{
		&provlogv1.GetEntriesRequest{Start: 0, Count: 256},
		&provlogv1.GetEntriesRequest{Start: 5},
		&provlogv1.GetEntriesRequest{Start: 1<<64 - 1, Count: 1},
		&provlogv1.GetEntriesRequest{Start: 1 << 63, Count: 1 << 63},
	})
	f.Fuzz(func(t *testing.T, data []byte) {
		req := new(provlogv1.GetEntriesRequest)
		if !unmarshal(data, req) {
			return
		}
		ok := req.Count > 0 && req.Start <= 1<<64-1-req.Count
		checkValidation(t, req, validateGetEntriesRequest(req), ok)
	})
}

func FuzzValidateSearchRequest(f *testing.F) {
	digest := "sha256:" + strings.Repeat("ab", 32)
	addSeeds(f, []proto.Message{
		&provlogv1.SearchRequest{Key: &provlogv1.SearchRequest_Digest{Digest: digest}},
		&provlogv1.SearchRequest{Key: &provlogv1.SearchRequest_Digest{Digest: "sha512:" + strings.Repeat("0", 128)}, PageSize: 1000, PageToken: "42"},
		&provlogv1.SearchRequest{Key: &provlogv1.SearchRequest_Digest{Digest: "SHA256:" + strings.Repeat("AB", 32)}},
		&provlogv1.SearchRequest{Key: &provlogv1.SearchRequest_BuilderId{BuilderId: "https://github.com/actions/runner"}, PageSize: 1001},
		&provlogv1.SearchRequest{Key: &provlogv1.SearchRequest_SourceCommit{SourceCommit: strings.Repeat("f", 40)}, PageToken: "007"},
		&provlogv1.SearchRequest{Key: &provlogv1.SearchRequest_SourceCommit{SourceCommit: ""}},
		&provlogv1.SearchRequest{PageSize: 5},
		&provlogv1.SearchRequest{Key: &provlogv1.SearchRequest_SignerKeyId{SignerKeyId: strings.Repeat("0f", 32)}},
		&provlogv1.SearchRequest{Key: &provlogv1.SearchRequest_SignerKeyId{SignerKeyId: "SHA256:abc"}},
		&provlogv1.SearchRequest{Key: &provlogv1.SearchRequest_BuilderId{BuilderId: strings.Repeat("é", 600)}},
		&provlogv1.SearchRequest{Key: &provlogv1.SearchRequest_TrustEvents{TrustEvents: true}},
		&provlogv1.SearchRequest{Key: &provlogv1.SearchRequest_TrustEvents{TrustEvents: false}},
	})
	f.Fuzz(func(t *testing.T, data []byte) {
		req := new(provlogv1.SearchRequest)
		if !unmarshal(data, req) {
			return
		}
		q, err := validateSearchRequest(req)
		var value string
		var kind byte
		ok := true
		switch k := req.Key.(type) {
		case *provlogv1.SearchRequest_Digest:
			kind, value = log.IndexDigest, k.Digest
			alg, hex, _ := strings.Cut(k.Digest, ":")
			n := map[string]int{"sha256": 64, "sha512": 128}[alg]
			ok = n > 0 && len(hex) == n && strings.Trim(hex, "0123456789abcdef") == ""
		case *provlogv1.SearchRequest_BuilderId:
			kind, value = log.IndexBuilder, k.BuilderId
		case *provlogv1.SearchRequest_SourceCommit:
			kind, value = log.IndexCommit, k.SourceCommit
		case *provlogv1.SearchRequest_SignerKeyId:
			kind, value = log.IndexSigner, k.SignerKeyId
			ok = len(value) == 64 && strings.Trim(value, "0123456789abcdef") == ""
		case *provlogv1.SearchRequest_TrustEvents:
			kind, value = log.IndexTrust, log.TrustIndexValue
			ok = k.TrustEvents
		default:
			ok = false
		}
		ok = ok && value != "" && len(value) <= maxSearchValue && req.PageSize <= log.MaxSearchResults
		if tok := req.PageToken; tok != "" {
			n, perr := strconv.ParseUint(tok, 10, 64)
			ok = ok && perr == nil && strconv.FormatUint(n, 10) == tok
		}
		checkValidation(t, req, err, ok)
		if err != nil {
			return
		}
		wantLimit := int(req.PageSize)
		if wantLimit == 0 {
			wantLimit = defaultPageSize
		}
		from, _ := strconv.ParseUint(req.PageToken, 10, 64)
		if q.kind != kind || q.value != value || q.limit != wantLimit || q.from != from {
			t.Fatalf("query %+v for %v, want kind %q value %q limit %d from %d", q, req, kind, value, wantLimit, from)
		}
	})
}

func FuzzValidateGetProofBundleRequest(f *testing.F) {
	addSeeds(f, []proto.Message{
		&provlogv1.GetProofBundleRequest{Leaf: &provlogv1.GetProofBundleRequest_Index{Index: 0}},
		&provlogv1.GetProofBundleRequest{Leaf: &provlogv1.GetProofBundleRequest_LeafHash{LeafHash: make([]byte, 32)}},
		&provlogv1.GetProofBundleRequest{Leaf: &provlogv1.GetProofBundleRequest_LeafHash{}},
		&provlogv1.GetProofBundleRequest{},
	})
	f.Fuzz(func(t *testing.T, data []byte) {
		req := new(provlogv1.GetProofBundleRequest)
		if !unmarshal(data, req) {
			return
		}
		var ok bool
		switch l := req.Leaf.(type) {
		case *provlogv1.GetProofBundleRequest_Index:
			ok = true
		case *provlogv1.GetProofBundleRequest_LeafHash:
			ok = len(l.LeafHash) == 32
		}
		checkValidation(t, req, validateGetProofBundleRequest(req), ok)
	})
}
