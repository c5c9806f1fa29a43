package client_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/provlog/provlog/client"
	provlogv1 "github.com/provlog/provlog/proto/provlog/v1"
)

// fakeClient serves srv over an in-memory connection and returns a Client
// for it.
func fakeClient(t *testing.T, srv provlogv1.LogServer, cfg client.Config) *client.Client {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	s := grpc.NewServer()
	provlogv1.RegisterLogServer(s, srv)
	go s.Serve(lis)
	t.Cleanup(s.Stop)
	conn, err := grpc.NewClient("passthrough:///fake",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if cfg.VerifierKey == "" {
		_, cfg.VerifierKey, _ = note.GenerateKey(rand.Reader, "example.com/fake")
	}
	c, err := client.New(conn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// pushbackServer fails the first `fail` Append and AppendBatch calls with
// code (and a RetryInfo delay if delay > 0), then succeeds.
type pushbackServer struct {
	provlogv1.UnimplementedLogServer
	code  codes.Code
	delay time.Duration
	fail  int

	mu    sync.Mutex
	calls []time.Time
}

func (s *pushbackServer) attempt() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, time.Now())
	if len(s.calls) > s.fail {
		return nil
	}
	st := status.New(s.code, "busy")
	if s.delay > 0 {
		st, _ = st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(s.delay)})
	}
	return st.Err()
}

func (s *pushbackServer) Append(context.Context, *provlogv1.AppendRequest) (*provlogv1.AppendResponse, error) {
	if err := s.attempt(); err != nil {
		return nil, err
	}
	return &provlogv1.AppendResponse{Index: 42}, nil
}

func (s *pushbackServer) AppendBatch(_ context.Context, req *provlogv1.AppendBatchRequest) (*provlogv1.AppendBatchResponse, error) {
	if err := s.attempt(); err != nil {
		return nil, err
	}
	resp := &provlogv1.AppendBatchResponse{}
	for i := range req.Entries {
		resp.Results = append(resp.Results, &provlogv1.AppendResponse{Index: uint64(i)})
	}
	return resp, nil
}

func TestRetryHonoursRetryInfo(t *testing.T) {
	srv := &pushbackServer{code: codes.ResourceExhausted, delay: 150 * time.Millisecond, fail: 2}
	c := fakeClient(t, srv, client.Config{Retry: client.RetryPolicy{InitialBackoff: time.Millisecond}})
	r, err := c.Append(testContext(t), []byte("x"))
	if err != nil || r.Index != 42 {
		t.Fatalf("Append = %+v, %v; want index 42", r, err)
	}
	if len(srv.calls) != 3 {
		t.Fatalf("%d calls, want 3", len(srv.calls))
	}
	for i := 1; i < len(srv.calls); i++ {
		if gap := srv.calls[i].Sub(srv.calls[i-1]); gap < srv.delay {
			t.Errorf("retry %d came %v after the pushback, want >= the RetryInfo delay %v", i, gap, srv.delay)
		}
	}
}

func TestRetryUnavailableBacksOff(t *testing.T) {
	srv := &pushbackServer{code: codes.Unavailable, fail: 4}
	c := fakeClient(t, srv, client.Config{Retry: client.RetryPolicy{InitialBackoff: 10 * time.Millisecond, MaxBackoff: 40 * time.Millisecond}})
	if _, err := c.AppendMany(testContext(t), entries("x", 10)); err != nil {
		t.Fatal(err)
	}
	// Waits are drawn from the upper half of 10, 20, 40, 40 ms.
	if total := srv.calls[4].Sub(srv.calls[0]); total < 55*time.Millisecond {
		t.Errorf("4 retries took %v, want >= 55ms of backoff", total)
	}
}

func TestRetryGivesUp(t *testing.T) {
	t.Run("deadline before RetryInfo delay", func(t *testing.T) {
		srv := &pushbackServer{code: codes.ResourceExhausted, delay: time.Hour, fail: 1000}
		c := fakeClient(t, srv, client.Config{})
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		start := time.Now()
		_, err := c.Append(ctx, []byte("x"))
		if !errors.Is(err, client.ErrUnavailable) || status.Code(err) != codes.ResourceExhausted {
			t.Errorf("Append = %v, want ErrUnavailable wrapping ResourceExhausted", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("Append took %v to give up, want no pointless wait", d)
		}
	})
	t.Run("max attempts", func(t *testing.T) {
		srv := &pushbackServer{code: codes.Unavailable, fail: 1000}
		c := fakeClient(t, srv, client.Config{Retry: client.RetryPolicy{InitialBackoff: time.Millisecond, MaxAttempts: 3}})
		if _, err := c.Append(testContext(t), []byte("x")); !errors.Is(err, client.ErrUnavailable) || len(srv.calls) != 3 {
			t.Errorf("Append = %v after %d calls, want ErrUnavailable after 3", err, len(srv.calls))
		}
	})
	t.Run("context cancelled", func(t *testing.T) {
		srv := &pushbackServer{code: codes.Unavailable, fail: 1000}
		c := fakeClient(t, srv, client.Config{Retry: client.RetryPolicy{InitialBackoff: 20 * time.Millisecond}})
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		if _, err := c.Append(ctx, []byte("x")); !errors.Is(err, context.Canceled) {
			t.Errorf("Append = %v, want context.Canceled", err)
		}
	})
	t.Run("ResourceExhausted without RetryInfo not retried", func(t *testing.T) {
		// What gRPC reports for a message over the server's size cap: the
		// same request would fail for ever.
		srv := &pushbackServer{code: codes.ResourceExhausted, fail: 1000}
		c := fakeClient(t, srv, client.Config{Retry: client.RetryPolicy{InitialBackoff: time.Millisecond}})
		_, err := c.Append(testContext(t), []byte("x"))
		if status.Code(err) != codes.ResourceExhausted || len(srv.calls) != 1 {
			t.Errorf("Append = %v after %d calls, want ResourceExhausted after 1", err, len(srv.calls))
		}
	})
	for _, code := range []codes.Code{codes.InvalidArgument, codes.FailedPrecondition, codes.PermissionDenied} {
		t.Run(code.String()+" not retried", func(t *testing.T) {
			srv := &pushbackServer{code: code, fail: 1}
			c := fakeClient(t, srv, client.Config{})
			_, err := c.Append(testContext(t), []byte("x"))
			if !errors.Is(err, client.ErrRejected) || status.Code(err) != code || len(srv.calls) != 1 {
				t.Errorf("Append = %v after %d calls, want ErrRejected (%v) after 1", err, len(srv.calls), code)
			}
		})
	}
}

// searchServer serves results with indices 0..n-1 for digest "sha256:aa",
// pageSize at a time; the page token is the next index. If loop is set it
// sends the same page token forever.
type searchServer struct {
	provlogv1.UnimplementedLogServer
	n, pageSize int
	loop        bool
	pages       int
}

func (s *searchServer) Search(_ context.Context, req *provlogv1.SearchRequest) (*provlogv1.SearchResponse, error) {
	if req.GetDigest() != "sha256:aa" {
		return nil, status.Error(codes.InvalidArgument, "SearchRequest.digest: unknown")
	}
	s.pages++
	from := 0
	if req.PageToken != "" {
		from, _ = strconv.Atoi(req.PageToken)
	}
	resp := &provlogv1.SearchResponse{}
	for i := from; i < min(from+s.pageSize, s.n); i++ {
		resp.Results = append(resp.Results, &provlogv1.SearchResult{Index: uint64(i), EventType: "build", Entry: fmt.Appendf(nil, "e%d", i)})
	}
	if from+s.pageSize < s.n {
		resp.NextPageToken = strconv.Itoa(from + s.pageSize)
	}
	if s.loop {
		resp.NextPageToken = "0"
	}
	return resp, nil
}

func TestSearchAllPages(t *testing.T) {
	srv := &searchServer{n: 250, pageSize: 100}
	c := fakeClient(t, srv, client.Config{})
	var got []uint64
	for r, err := range c.Search(testContext(t), client.SearchKey{Digest: "sha256:aa"}) {
		if err != nil {
			t.Fatal(err)
		}
		if string(r.Entry) != fmt.Sprintf("e%d", r.Index) || r.EventType != "build" {
			t.Fatalf("result %+v", r)
		}
		got = append(got, r.Index)
	}
	if len(got) != 250 || got[249] != 249 || srv.pages != 3 {
		t.Errorf("Search gave %d results in %d pages, want 250 in 3", len(got), srv.pages)
	}

	// Stopping early fetches no more pages.
	srv.pages = 0
	for r := range c.Search(testContext(t), client.SearchKey{Digest: "sha256:aa"}) {
		if r.Index == 5 {
			break
		}
	}
	if srv.pages != 1 {
		t.Errorf("breaking after 6 results fetched %d pages, want 1", srv.pages)
	}
}

func TestSearchErrors(t *testing.T) {
	ctx := testContext(t)
	c := fakeClient(t, &searchServer{n: 250, pageSize: 100, loop: true}, client.Config{})
	var err error
	n := 0
	for _, err = range c.Search(ctx, client.SearchKey{Digest: "sha256:aa"}) {
		if err != nil {
			break
		}
		n++
	}
	if !errors.Is(err, client.ErrLogMisbehaved) || n > 100 {
		t.Errorf("Search of a looping server: %d results then %v, want ErrLogMisbehaved", n, err)
	}
	for _, key := range []client.SearchKey{{}, {Digest: "sha256:aa", BuilderID: "b"}} {
		for _, err := range c.Search(ctx, key) {
			if err == nil {
				t.Errorf("Search(%+v) gave a result, want an error", key)
			}
		}
	}
	for _, err := range c.Search(ctx, client.SearchKey{Digest: "sha256:bb"}) {
		if !errors.Is(err, client.ErrRejected) {
			t.Errorf("Search(unknown digest) = %v, want ErrRejected", err)
		}
	}
	// The real server answers Unimplemented until Search is written: that
	// is an error, not an empty result.
	c2 := fakeClient(t, &provlogv1.UnimplementedLogServer{}, client.Config{})
	for _, err := range c2.Search(ctx, client.SearchKey{Digest: "sha256:aa"}) {
		if status.Code(err) != codes.Unimplemented {
			t.Errorf("Search(unimplemented) = %v, want Unimplemented", err)
		}
	}
}
