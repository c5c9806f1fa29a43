package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/provlog/provlog/log"
	provlogv1 "github.com/provlog/provlog/proto/provlog/v1"
)

// dialBufconn serves register's services on an in-memory listener and
// returns a client connection to them.
func dialBufconn(t *testing.T, register func(*grpc.Server)) *grpc.ClientConn {
	t.Helper()
	return dialBufconnWith(t, nil, register)
}

// dialBufconnWith is dialBufconn with a server of the given options.
func dialBufconnWith(t *testing.T, opts []grpc.ServerOption, register func(*grpc.Server)) *grpc.ClientConn {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	s := grpc.NewServer(opts...)
	register(s)
	go s.Serve(lis)
	t.Cleanup(s.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func newClient(t *testing.T, f *fakeLog) provlogv1.LogClient {
	t.Helper()
	return provlogv1.NewLogClient(dialBufconn(t, func(s *grpc.Server) { RegisterGRPC(s, f) }))
}

func wantCode(t *testing.T, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Fatalf("got %v (%v), want %v", got, err, want)
	}
}

func TestGRPCErrorMapping(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want codes.Code
	}{
		{fmt.Errorf("%w: too big", log.ErrInvalidEntry), codes.InvalidArgument},
		{fmt.Errorf("queue: %w", log.ErrPushback), codes.ResourceExhausted},
		{fmt.Errorf("stopping: %w", log.ErrUnavailable), codes.Unavailable},
		{fmt.Errorf("%w: size 9", log.ErrOutOfRange), codes.OutOfRange},
		{fmt.Errorf("%w: hash", log.ErrNotFound), codes.NotFound},
		{fmt.Errorf("waiting: %w", context.Canceled), codes.Canceled},
		{fmt.Errorf("waiting: %w", context.DeadlineExceeded), codes.DeadlineExceeded},
		{errors.New("pebble: secret internals"), codes.Internal},
	} {
		t.Run(tc.want.String(), func(t *testing.T) {
			f := newFakeLog(10)
			f.err = tc.err
			c := newClient(t, f)
			_, err := c.Append(t.Context(), &provlogv1.AppendRequest{Entry: []byte("e")})
			wantCode(t, err, tc.want)
			_, err = c.GetConsistencyProof(t.Context(), &provlogv1.GetConsistencyProofRequest{FromSize: 1, ToSize: 2})
			wantCode(t, err, tc.want)
			if tc.want == codes.Internal && strings.Contains(status.Convert(err).Message(), "secret") {
				t.Errorf("internal error leaked: %v", err)
			}
		})
	}
}

// TestGRPCPushbackRetryInfo: pushback and unavailability (a replica
// with no leader for a moment) carry RetryInfo, as HTTP's Retry-After.
func TestGRPCPushbackRetryInfo(t *testing.T) {
	for sentinel, code := range map[error]codes.Code{log.ErrPushback: codes.ResourceExhausted, log.ErrUnavailable: codes.Unavailable} {
		f := newFakeLog(10)
		f.err = sentinel
		_, err := newClient(t, f).AppendBatch(t.Context(), &provlogv1.AppendBatchRequest{Entries: [][]byte{[]byte("e")}})
		wantCode(t, err, code)
		found := false
		for _, d := range status.Convert(err).Details() {
			if ri, ok := d.(*errdetails.RetryInfo); ok {
				found = true
				if got := ri.RetryDelay.AsDuration(); got != time.Second {
					t.Errorf("%v: retry delay %v, want 1s", code, got)
				}
			}
		}
		if !found {
			t.Errorf("%v: no RetryInfo in %v", code, status.Convert(err).Details())
		}
	}
}

func TestGRPCAppend(t *testing.T) {
	f := newFakeLog(10)
	c := newClient(t, f)
	r, err := c.Append(t.Context(), &provlogv1.AppendRequest{Entry: []byte("a")})
	if err != nil || r.Index != 10 {
		t.Fatalf("Append: %v, %v; want index 10", r, err)
	}
	br, err := c.AppendBatch(t.Context(), &provlogv1.AppendBatchRequest{Entries: [][]byte{[]byte("b"), []byte("c")}})
	if err != nil || len(br.Results) != 2 || br.Results[0].Index != 11 || br.Results[1].Index != 12 {
		t.Fatalf("AppendBatch: %v, %v; want indices 11, 12", br, err)
	}
	_, err = c.Append(t.Context(), &provlogv1.AppendRequest{Entry: make([]byte, 101)})
	wantCode(t, err, codes.InvalidArgument)
	if f.numAdded() != 3 {
		t.Errorf("log saw %d entries, want 3", f.numAdded())
	}
}

func TestGRPCGetCheckpoint(t *testing.T) {
	f := newFakeLog(10)
	r, err := newClient(t, f).GetCheckpoint(t.Context(), &provlogv1.GetCheckpointRequest{})
	if err != nil || !bytes.Equal(r.Checkpoint, f.cp.Note) {
		t.Fatalf("GetCheckpoint: %v, %v", r, err)
	}
}

func TestGRPCGetInclusionProof(t *testing.T) {
	f := newFakeLog(10)
	hash := bytes.Repeat([]byte{7}, 32)
	f.leaves[string(hash)] = 6
	c := newClient(t, f)
	byIndex := func(i, size uint64) *provlogv1.GetInclusionProofRequest {
		return &provlogv1.GetInclusionProofRequest{Leaf: &provlogv1.GetInclusionProofRequest_Index{Index: i}, TreeSize: size}
	}
	byHash := func(h []byte, size uint64) *provlogv1.GetInclusionProofRequest {
		return &provlogv1.GetInclusionProofRequest{Leaf: &provlogv1.GetInclusionProofRequest_LeafHash{LeafHash: h}, TreeSize: size}
	}
	for _, tc := range []struct {
		name       string
		req        *provlogv1.GetInclusionProofRequest
		want       codes.Code
		index      uint64
		size       uint64
		checkpoint bool
	}{
		{"index at size", byIndex(3, 5), codes.OK, 3, 5, false},
		{"index at latest", byIndex(3, 0), codes.OK, 3, 10, true},
		{"hash at size", byHash(hash, 7), codes.OK, 6, 7, false},
		{"hash at latest", byHash(hash, 0), codes.OK, 6, 10, true},
		{"hash beyond size", byHash(hash, 6), codes.OutOfRange, 0, 0, false},
		{"unknown hash", byHash(make([]byte, 32), 0), codes.NotFound, 0, 0, false},
		{"index beyond size", byIndex(5, 5), codes.OutOfRange, 0, 0, false},
		{"size beyond tree", byIndex(1, 11), codes.OutOfRange, 0, 0, false},
		{"short hash", byHash(hash[:31], 0), codes.InvalidArgument, 0, 0, false},
		{"unset", &provlogv1.GetInclusionProofRequest{}, codes.InvalidArgument, 0, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := c.GetInclusionProof(t.Context(), tc.req)
			wantCode(t, err, tc.want)
			if err != nil {
				return
			}
			if r.Index != tc.index || r.TreeSize != tc.size || len(r.Proof) != 2 || r.Proof[0][0] != byte(tc.index) || r.Proof[1][0] != byte(tc.size) {
				t.Errorf("got %v, want index %d size %d", r, tc.index, tc.size)
			}
			if tc.checkpoint != bytes.Equal(r.Checkpoint, f.cp.Note) {
				t.Errorf("checkpoint %q, want it only for tree_size 0", r.Checkpoint)
			}
		})
	}
}

func TestGRPCGetConsistencyProof(t *testing.T) {
	f := newFakeLog(10)
	c := newClient(t, f)
	r, err := c.GetConsistencyProof(t.Context(), &provlogv1.GetConsistencyProofRequest{FromSize: 4})
	if err != nil || r.FromSize != 4 || r.ToSize != 10 || !bytes.Equal(r.Checkpoint, f.cp.Note) || r.Proof[1][0] != 10 {
		t.Fatalf("to latest: %v, %v", r, err)
	}
	r, err = c.GetConsistencyProof(t.Context(), &provlogv1.GetConsistencyProofRequest{FromSize: 4, ToSize: 8})
	if err != nil || r.ToSize != 8 || r.Checkpoint != nil || r.Proof[1][0] != 8 {
		t.Fatalf("to 8: %v, %v", r, err)
	}
	_, err = c.GetConsistencyProof(t.Context(), &provlogv1.GetConsistencyProofRequest{FromSize: 11})
	wantCode(t, err, codes.OutOfRange)
	_, err = c.GetConsistencyProof(t.Context(), &provlogv1.GetConsistencyProofRequest{FromSize: 9, ToSize: 8})
	wantCode(t, err, codes.InvalidArgument)
}

// getEntries returns the chunks of a GetEntries call.
func getEntries(t *testing.T, c provlogv1.LogClient, start, count uint64) ([]*provlogv1.GetEntriesResponse, error) {
	t.Helper()
	stream, err := c.GetEntries(t.Context(), &provlogv1.GetEntriesRequest{Start: start, Count: count})
	if err != nil {
		return nil, err
	}
	var chunks []*provlogv1.GetEntriesResponse
	for {
		r, err := stream.Recv()
		if err != nil {
			if status.Code(err) == codes.OK || err.Error() == "EOF" {
				return chunks, nil
			}
			return chunks, err
		}
		chunks = append(chunks, r)
	}
}

func TestGRPCGetEntries(t *testing.T) {
	for _, tc := range []struct {
		name         string
		entrySize    int
		start, count uint64
		wantChunks   []int
	}{
		{"one", 8, 5, 1, []int{1}},
		{"by count", 8, 10, 600, []int{256, 256, 88}},
		{"by bytes", 60000, 1, 40, []int{17, 17, 6}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeLog(1000)
			f.entrySize = tc.entrySize
			chunks, err := getEntries(t, newClient(t, f), tc.start, tc.count)
			if err != nil {
				t.Fatal(err)
			}
			next := tc.start
			for i, c := range chunks {
				if i >= len(tc.wantChunks) || len(c.Entries) != tc.wantChunks[i] || c.Start != next {
					t.Fatalf("chunk %d: start %d, %d entries; want start %d, chunks %v", i, c.Start, len(c.Entries), next, tc.wantChunks)
				}
				for _, e := range c.Entries {
					if !bytes.Equal(e, fakeEntry(next, tc.entrySize)) {
						t.Fatalf("entry %d wrong", next)
					}
					next++
				}
			}
			if next != tc.start+tc.count {
				t.Errorf("got entries up to %d, want %d", next, tc.start+tc.count)
			}
		})
	}
}

func TestGRPCGetEntriesErrors(t *testing.T) {
	f := newFakeLog(10)
	c := newClient(t, f)
	for _, tc := range []struct {
		start, count uint64
		want         codes.Code
	}{
		{0, 0, codes.InvalidArgument},
		{1, ^uint64(0), codes.InvalidArgument},
		{10, 1, codes.OutOfRange},
		{5, 6, codes.OutOfRange},
	} {
		_, err := getEntries(t, c, tc.start, tc.count)
		wantCode(t, err, tc.want)
	}
}

func TestGRPCHealth(t *testing.T) {
	f := newFakeLog(10)
	hc := healthpb.NewHealthClient(dialBufconn(t, func(s *grpc.Server) { RegisterGRPC(s, f) }))
	check := func(service string, want healthpb.HealthCheckResponse_ServingStatus) {
		t.Helper()
		r, err := hc.Check(t.Context(), &healthpb.HealthCheckRequest{Service: service})
		if err != nil || r.Status != want {
			t.Errorf("Check(%q) = %v, %v; want %v", service, r, err, want)
		}
	}
	check("", healthpb.HealthCheckResponse_SERVING)
	check("provlog.v1.Log", healthpb.HealthCheckResponse_SERVING)
	f.setHealth(errors.New("storage fault"))
	check("", healthpb.HealthCheckResponse_NOT_SERVING)
	check("provlog.v1.Log", healthpb.HealthCheckResponse_NOT_SERVING)
	_, err := hc.Check(t.Context(), &healthpb.HealthCheckRequest{Service: "nope"})
	wantCode(t, err, codes.NotFound)
}

func TestGRPCHealthWatch(t *testing.T) {
	f := newFakeLog(10)
	conn := dialBufconn(t, func(s *grpc.Server) {
		h := newHealthServer(f)
		h.interval = 10 * time.Millisecond
		healthpb.RegisterHealthServer(s, h)
	})
	w, err := healthpb.NewHealthClient(conn).Watch(t.Context(), &healthpb.HealthCheckRequest{Service: "provlog.v1.Log"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []healthpb.HealthCheckResponse_ServingStatus{healthpb.HealthCheckResponse_SERVING, healthpb.HealthCheckResponse_NOT_SERVING} {
		r, err := w.Recv()
		if err != nil || r.Status != want {
			t.Fatalf("Watch: %v, %v; want %v", r, err, want)
		}
		f.setHealth(errors.New("storage fault"))
	}
}

func TestGRPCReflection(t *testing.T) {
	conn := dialBufconn(t, func(s *grpc.Server) { RegisterGRPC(s, newFakeLog(1)) })
	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	req := &reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}
	if err := stream.Send(req); err != nil {
		t.Fatal(err)
	}
	r, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range r.GetListServicesResponse().GetService() {
		names = append(names, s.Name)
	}
	for _, want := range []string{"provlog.v1.Log", "grpc.health.v1.Health"} {
		if !slices.Contains(names, want) {
			t.Errorf("services %v, want %s", names, want)
		}
	}
}
