package server

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"

	"github.com/provlog/provlog/log"
	provlogv1 "github.com/provlog/provlog/proto/provlog/v1"
)

// TestGetEntriesCapped: a GetEntries call returns at most 1024 entries
// (the cap the proto documents), the first of its range, and ends without
// error; 2^40 entries were streamed before. The range itself must still
// lie within the published tree.
func TestGetEntriesCapped(t *testing.T) {
	const wantCap = 1024
	f := newFakeLog(1 << 41)
	c := newClient(t, f)
	for _, tc := range []struct{ start, count, want uint64 }{
		{5, 1 << 40, wantCap},
		{0, wantCap + 1, wantCap},
		{7, wantCap, wantCap},
		{1<<41 - 3, 3, 3},
		{9, 1000, 1000},
	} {
		got, err := readEntriesAtMost(t, c, tc.start, tc.count, wantCap)
		if err != nil || got != tc.want {
			t.Errorf("GetEntries(%d, %d): %d entries, %v; want %d", tc.start, tc.count, got, err, tc.want)
		}
	}
	_, err := readEntriesAtMost(t, c, 1<<41-3, 1<<40, wantCap)
	wantCode(t, err, codes.OutOfRange)
}

// readEntriesAtMost reads a GetEntries stream, checking that its chunks
// are contiguous from start, and fails once more than limit entries have
// come (so that an uncapped server cannot hold the test).
func readEntriesAtMost(t *testing.T, c provlogv1.LogClient, start, count, limit uint64) (uint64, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	stream, err := c.GetEntries(ctx, &provlogv1.GetEntriesRequest{Start: start, Count: count})
	if err != nil {
		return 0, err
	}
	var n uint64
	for {
		r, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if r.Start != start+n {
			t.Fatalf("chunk at %d, want %d", r.Start, start+n)
		}
		if n += uint64(len(r.Entries)); n > limit {
			t.Fatalf("GetEntries(%d, %d): more than %d entries", start, count, limit)
		}
	}
}

// TestMaxRequestSize: the receive cap is computed from the entry and
// batch caps, and the largest valid batch fits under it.
func TestMaxRequestSize(t *testing.T) {
	for maxEntry, want := range map[int]int{
		log.MaxEntrySizeLimit: 16<<20 + 4096*4 + 4096, // capped by maxBatchBytes
		1024:                  4096*1024 + 4096*4 + 4096,
		10:                    4096*10 + 4096*4 + 4096,
	} {
		if got := maxRequestSize(maxEntry); got != want {
			t.Errorf("maxRequestSize(%d) = %d, want %d", maxEntry, got, want)
		}
	}
}

// TestGRPCMessageCap serves with ServerOptions for a log of 10-byte
// entries: the largest valid batch is accepted, an oversize entry in a
// batch under the cap is InvalidArgument naming it, and a message over the
// cap is ResourceExhausted, with nothing added.
func TestGRPCMessageCap(t *testing.T) {
	f := newFakeLog(10)
	f.maxSize = 10
	c := provlogv1.NewLogClient(dialBufconnWith(t, ServerOptions(GRPCConfig{MaxEntrySize: 10}), func(s *grpc.Server) { RegisterGRPC(s, f) }))
	batch := func(n, size int) *provlogv1.AppendBatchRequest {
		req := &provlogv1.AppendBatchRequest{}
		for i := range n {
			req.Entries = append(req.Entries, fakeEntry(uint64(i), size))
		}
		return req
	}
	if _, err := c.AppendBatch(t.Context(), batch(maxBatchEntries, 10)); err != nil {
		t.Fatalf("largest valid batch: %v", err)
	}
	_, err := c.AppendBatch(t.Context(), batch(maxBatchEntries, 11))
	wantCode(t, err, codes.InvalidArgument)
	_, err = c.Append(t.Context(), &provlogv1.AppendRequest{Entry: make([]byte, 100_000)})
	wantCode(t, err, codes.ResourceExhausted)
	if n := f.numAdded(); n != maxBatchEntries {
		t.Errorf("log saw %d entries, want %d", n, maxBatchEntries)
	}
}

// blockingAdds is a fakeLog whose adds block until released (or their
// context ends, or the test is cleaned up), reporting each on entered.
func blockingAdds(t *testing.T) (f *fakeLog, entered <-chan struct{}, release func()) {
	f = newFakeLog(10)
	in := make(chan struct{}, 16)
	done := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(done) }) }
	t.Cleanup(release)
	f.addBatch = func(ctx context.Context, entries [][]byte) ([]log.AddResult, error) {
		in <- struct{}{}
		select {
		case <-done:
			return make([]log.AddResult, len(entries)), nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return f, in, release
}

// TestGRPCMaxConcurrentStreams: with MaxConcurrentStreams 2, a third call
// on the connection waits for a stream and never reaches the handler
// while two are in progress.
func TestGRPCMaxConcurrentStreams(t *testing.T) {
	f, entered, release := blockingAdds(t)
	c := provlogv1.NewLogClient(dialBufconnWith(t, ServerOptions(GRPCConfig{MaxConcurrentStreams: 2}), func(s *grpc.Server) { RegisterGRPC(s, f) }))
	errc := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := c.Append(t.Context(), &provlogv1.AppendRequest{Entry: []byte("e")})
			errc <- err
		}()
	}
	for i := range 2 {
		select {
		case <-entered:
		case <-time.After(30 * time.Second):
			t.Fatalf("only %d of 2 calls reached the handler", i)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	_, err := c.Append(ctx, &provlogv1.AppendRequest{Entry: []byte("third")})
	if len(entered) != 0 {
		t.Errorf("a third concurrent call reached the handler")
	}
	wantCode(t, err, codes.DeadlineExceeded)
	release()
	for range 2 {
		if err := <-errc; err != nil {
			t.Errorf("blocked call: %v", err)
		}
	}
}

// TestGRPCMaxConnectionIdle: the server closes a connection idle for
// MaxConnectionIdle (the keepalive server parameters are applied).
func TestGRPCMaxConnectionIdle(t *testing.T) {
	f := newFakeLog(10)
	conn := dialBufconnWith(t, ServerOptions(GRPCConfig{MaxConnectionIdle: 100 * time.Millisecond}), func(s *grpc.Server) { RegisterGRPC(s, f) })
	if _, err := provlogv1.NewLogClient(conn).GetCheckpoint(t.Context(), &provlogv1.GetCheckpointRequest{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for s := conn.GetState(); s == connectivity.Ready; s = conn.GetState() {
		if !conn.WaitForStateChange(ctx, s) {
			t.Fatalf("connection still %v after 10 s idle; want it closed after 100 ms", s)
		}
	}
}
