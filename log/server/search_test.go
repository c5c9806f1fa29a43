package server

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/provlog/provlog/log"
	provlogv1 "github.com/provlog/provlog/proto/provlog/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var testDigest = "sha256:" + strings.Repeat("ab", 32)

func TestValidateSearchRequest(t *testing.T) {
	for _, tc := range []struct {
		req  *provlogv1.SearchRequest
		want string // error substring; "" for valid
	}{
		{&provlogv1.SearchRequest{Key: &provlogv1.SearchRequest_Digest{Digest: testDigest}}, ""},
		{&provlogv1.SearchRequest{Key: &provlogv1.SearchRequest_Digest{Digest: "sha256:" + strings.Repeat("AB", 32)}}, "SearchRequest.digest"},
		{&provlogv1.SearchRequest{Key: &provlogv1.SearchRequest_Digest{Digest: "md5:abcd"}}, "SearchRequest.digest"},
		{&provlogv1.SearchRequest{}, "SearchRequest.key: unset"},
		{&provlogv1.SearchRequest{Key: &provlogv1.SearchRequest_BuilderId{BuilderId: ""}}, "SearchRequest.key"},
		{&provlogv1.SearchRequest{Key: &provlogv1.SearchRequest_BuilderId{BuilderId: "b"}, PageSize: 1001}, "SearchRequest.page_size"},
		{&provlogv1.SearchRequest{Key: &provlogv1.SearchRequest_BuilderId{BuilderId: "b"}, PageToken: "07"}, "SearchRequest.page_token"},
		{&provlogv1.SearchRequest{Key: &provlogv1.SearchRequest_BuilderId{BuilderId: "b"}, PageToken: "x"}, "SearchRequest.page_token"},
		{&provlogv1.SearchRequest{Key: &provlogv1.SearchRequest_SourceCommit{SourceCommit: "abc"}, PageToken: "7"}, ""},
	} {
		_, err := validateSearchRequest(tc.req)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%v: %v", tc.req, err)
		case tc.want != "" && (status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%v: %v, want InvalidArgument naming %s", tc.req, err, tc.want)
		}
	}
}

func TestSearchPages(t *testing.T) {
	f := newFakeLog(10)
	c := newClient(t, f)
	var got []uint64
	token := ""
	for range 10 {
		resp, err := c.Search(context.Background(), &provlogv1.SearchRequest{Key: &provlogv1.SearchRequest_Digest{Digest: testDigest}, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range resp.Results {
			got = append(got, r.Index)
		}
		if token = resp.NextPageToken; token == "" {
			break
		}
	}
	if fmt.Sprint(got) != "[0 1 2 3 4 5]" {
		t.Errorf("paged results %v", got)
	}
	if f.lastSearch.kind != log.IndexDigest || f.lastSearch.value != testDigest || f.lastSearch.limit != defaultPageSize {
		t.Errorf("log saw %+v", f.lastSearch)
	}
}

func TestProofBundleAndNewErrorCodes(t *testing.T) {
	f := newFakeLog(10)
	c := newClient(t, f)
	resp, err := c.GetProofBundle(context.Background(), &provlogv1.GetProofBundleRequest{Leaf: &provlogv1.GetProofBundleRequest_Index{Index: 3}})
	if err != nil || string(resp.Bundle) != "bundle 3" {
		t.Fatalf("GetProofBundle = %v, %v", resp, err)
	}
	if _, err := c.GetProofBundle(context.Background(), &provlogv1.GetProofBundleRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("unset leaf: %v", err)
	}
	for sentinel, want := range map[error]codes.Code{
		log.ErrPermissionDenied:   codes.PermissionDenied,
		log.ErrFailedPrecondition: codes.FailedPrecondition,
	} {
		if got := status.Code(grpcError(fmt.Errorf("x: %w", sentinel))); got != want {
			t.Errorf("grpcError(%v) = %v, want %v", sentinel, got, want)
		}
	}
}
