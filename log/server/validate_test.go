package server

import (
	"bytes"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/provlog/provlog/log"
	provlogv1 "github.com/provlog/provlog/proto/provlog/v1"
)

// checkInvalid checks that err is nil if want is "", else InvalidArgument
// with message want.
func checkInvalid(t *testing.T, err error, want string) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Errorf("got error %v, want nil", err)
		}
		return
	}
	st, _ := status.FromError(err)
	if st.Code() != codes.InvalidArgument || st.Message() != want {
		t.Errorf("got %v %q, want InvalidArgument %q", st.Code(), st.Message(), want)
	}
}

func TestValidateAppendRequest(t *testing.T) {
	for _, tc := range []struct {
		entry []byte
		want  string
	}{
		{[]byte("x"), ""},
		{make([]byte, 65535), ""},
		{nil, "AppendRequest.entry: empty"},
		{[]byte{}, "AppendRequest.entry: empty"},
		{make([]byte, 70000), "AppendRequest.entry: " + log.TooLarge(70000, 65535)},
	} {
		checkInvalid(t, validateAppendRequest(&provlogv1.AppendRequest{Entry: tc.entry}, 65535), tc.want)
	}
}

func TestValidateAppendBatchRequest(t *testing.T) {
	entries := func(n int, bad int, e []byte) [][]byte {
		out := make([][]byte, n)
		for i := range out {
			out[i] = []byte("ok")
		}
		if bad >= 0 {
			out[bad] = e
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		entries [][]byte
		want    string
	}{
		{"one", entries(1, -1, nil), ""},
		{"max", entries(4096, -1, nil), ""},
		{"none", nil, "AppendBatchRequest.entries: empty"},
		{"too many", entries(4097, -1, nil), "AppendBatchRequest.entries: 4097 entries, want <= 4096"},
		{"empty entry", entries(5, 3, nil), "AppendBatchRequest.entries[3]: empty"},
		{"large entry", entries(5, 0, bytes.Repeat([]byte("a"), 11)), "AppendBatchRequest.entries[0]: " + log.TooLarge(11, 10)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkInvalid(t, validateAppendBatchRequest(&provlogv1.AppendBatchRequest{Entries: tc.entries}, 10), tc.want)
		})
	}
}

func TestValidateGetInclusionProofRequest(t *testing.T) {
	byHash := func(n int) *provlogv1.GetInclusionProofRequest {
		return &provlogv1.GetInclusionProofRequest{Leaf: &provlogv1.GetInclusionProofRequest_LeafHash{LeafHash: make([]byte, n)}}
	}
	for _, tc := range []struct {
		name string
		req  *provlogv1.GetInclusionProofRequest
		want string
	}{
		{"index", &provlogv1.GetInclusionProofRequest{Leaf: &provlogv1.GetInclusionProofRequest_Index{Index: 0}, TreeSize: 0}, ""},
		{"hash", byHash(32), ""},
		{"unset", &provlogv1.GetInclusionProofRequest{TreeSize: 5}, "GetInclusionProofRequest.leaf: unset"},
		{"short hash", byHash(31), "GetInclusionProofRequest.leaf_hash: 31 bytes, want 32"},
		{"empty hash", byHash(0), "GetInclusionProofRequest.leaf_hash: 0 bytes, want 32"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkInvalid(t, validateGetInclusionProofRequest(tc.req), tc.want)
		})
	}
}

func TestValidateGetConsistencyProofRequest(t *testing.T) {
	for _, tc := range []struct {
		from, to uint64
		want     string
	}{
		{0, 0, ""},
		{5, 0, ""}, // to_size 0 is the latest; the log checks from_size
		{3, 3, ""},
		{4, 3, "GetConsistencyProofRequest.from_size: 4, want <= to_size 3"},
	} {
		checkInvalid(t, validateGetConsistencyProofRequest(&provlogv1.GetConsistencyProofRequest{FromSize: tc.from, ToSize: tc.to}), tc.want)
	}
}

func TestValidateGetEntriesRequest(t *testing.T) {
	for _, tc := range []struct {
		start, count uint64
		want         string
	}{
		{0, 1, ""},
		{10, 1 << 40, ""},
		{0, 0, "GetEntriesRequest.count: 0, want > 0"},
		{2, ^uint64(0), "GetEntriesRequest.count: 18446744073709551615, start+count overflows"},
	} {
		checkInvalid(t, validateGetEntriesRequest(&provlogv1.GetEntriesRequest{Start: tc.start, Count: tc.count}), tc.want)
	}
}
