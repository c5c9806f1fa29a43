package server

import (
	"context"
	"encoding/binary"
	"io"
	"runtime"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/provlog/provlog/log"
	provlogv1 "github.com/provlog/provlog/proto/provlog/v1"
)

// gatedAdds serves AddBatch for requests whose first entry is a big-endian
// request number: request i blocks until release(i) and then gets index
// 1000*i + j for its entry j.
type gatedAdds struct {
	mu       sync.Mutex
	gates    map[uint64]chan struct{}
	inFlight int
	maxSeen  int
	started  chan uint64
}

func newGatedAdds(n int) *gatedAdds {
	return &gatedAdds{gates: map[uint64]chan struct{}{}, started: make(chan uint64, n)}
}

func (g *gatedAdds) gate(i uint64) chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.gates[i] == nil {
		g.gates[i] = make(chan struct{})
	}
	return g.gates[i]
}

func (g *gatedAdds) release(i uint64) { close(g.gate(i)) }

func (g *gatedAdds) addBatch(ctx context.Context, entries [][]byte) ([]log.AddResult, error) {
	i := binary.BigEndian.Uint64(entries[0])
	g.mu.Lock()
	g.inFlight++
	g.maxSeen = max(g.maxSeen, g.inFlight)
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		g.inFlight--
		g.mu.Unlock()
	}()
	g.started <- i
	select {
	case <-g.gate(i):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	res := make([]log.AddResult, len(entries))
	for j := range res {
		res[j].Index = 1000*i + uint64(j)
	}
	return res, nil
}

func (g *gatedAdds) stats() (inFlight, maxSeen int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.inFlight, g.maxSeen
}

func streamRequest(i uint64, n int) *provlogv1.AppendBatchRequest {
	req := &provlogv1.AppendBatchRequest{}
	for range n {
		req.Entries = append(req.Entries, binary.BigEndian.AppendUint64(nil, i))
	}
	return req
}

// recvInOrder receives n responses and checks they answer requests 0..n-1.
func recvInOrder(t *testing.T, s provlogv1.Log_AppendStreamClient, n int) {
	t.Helper()
	for i := range uint64(n) {
		r, err := s.Recv()
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		if len(r.Results) != 2 || r.Results[0].Index != 1000*i || r.Results[1].Index != 1000*i+1 {
			t.Fatalf("response %d: %v, want indices %d, %d", i, r, 1000*i, 1000*i+1)
		}
	}
}

func TestAppendStreamOrder(t *testing.T) {
	const n = 10
	g := newGatedAdds(n)
	f := newFakeLog(0)
	f.addBatch = g.addBatch
	s, err := newClient(t, f).AppendStream(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for i := range uint64(n) {
		if err := s.Send(streamRequest(i, 2)); err != nil {
			t.Fatal(err)
		}
	}
	for range n { // all n are sequenced concurrently
		<-g.started
	}
	for i := n - 1; i >= 0; i-- { // and complete in reverse order
		g.release(uint64(i))
	}
	recvInOrder(t, s, n)
	s.CloseSend()
	if _, err := s.Recv(); err != io.EOF {
		t.Errorf("after CloseSend: %v, want EOF", err)
	}
}

func TestAppendStreamBounded(t *testing.T) {
	const n = 3 * maxInFlight
	g := newGatedAdds(n)
	f := newFakeLog(0)
	f.addBatch = g.addBatch
	s, err := newClient(t, f).AppendStream(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for i := range uint64(n) {
			s.Send(streamRequest(i, 2))
		}
		s.CloseSend()
	}()
	for range maxInFlight {
		<-g.started
	}
	time.Sleep(50 * time.Millisecond) // give a 65th request the chance to start
	if _, m := g.stats(); m != maxInFlight {
		t.Errorf("%d requests in flight, want %d", m, maxInFlight)
	}
	for i := range uint64(n) {
		g.release(i)
	}
	recvInOrder(t, s, n)
	if _, err := s.Recv(); err != io.EOF {
		t.Errorf("at end: %v, want EOF", err)
	}
}

func TestAppendStreamErrors(t *testing.T) {
	pushback := func(ctx context.Context, entries [][]byte) ([]log.AddResult, error) {
		if binary.BigEndian.Uint64(entries[0]) == 3 {
			return nil, log.ErrPushback
		}
		return newGatedAddsReleased().addBatch(ctx, entries)
	}
	for _, tc := range []struct {
		name     string
		addBatch func(context.Context, [][]byte) ([]log.AddResult, error)
		bad      *provlogv1.AppendBatchRequest // request 3, if set
		want     codes.Code
	}{
		{"invalid request", newGatedAddsReleased().addBatch, &provlogv1.AppendBatchRequest{}, codes.InvalidArgument},
		{"pushback", pushback, nil, codes.ResourceExhausted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeLog(0)
			f.addBatch = tc.addBatch
			s, err := newClient(t, f).AppendStream(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			for i := range uint64(5) {
				req := streamRequest(i, 2)
				if i == 3 && tc.bad != nil {
					req = tc.bad
				}
				s.Send(req)
			}
			recvInOrder(t, s, 3)
			_, err = s.Recv()
			wantCode(t, err, tc.want)
		})
	}
}

// newGatedAddsReleased is gatedAdds whose requests never block.
func newGatedAddsReleased() *gatedAdds {
	g := newGatedAdds(1 << 10)
	for i := range uint64(1 << 10) {
		g.release(i)
	}
	return g
}

func TestAppendStreamCancelNoLeak(t *testing.T) {
	g := newGatedAdds(100)
	f := newFakeLog(0)
	f.addBatch = g.addBatch
	c := newClient(t, f)
	if _, err := c.GetCheckpoint(t.Context(), &provlogv1.GetCheckpointRequest{}); err != nil {
		t.Fatal(err) // connect before counting goroutines
	}
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(t.Context())
	s, err := c.AppendStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range uint64(10) {
		s.Send(streamRequest(i, 1))
	}
	for range 10 {
		<-g.started
	}
	cancel()
	if _, err := s.Recv(); status.Code(err) != codes.Canceled {
		t.Errorf("after cancel: %v, want Canceled", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		inFlight, _ := g.stats()
		n := runtime.NumGoroutine()
		if inFlight == 0 && n <= before {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d adds in flight, %d goroutines (was %d):\n%s", inFlight, n, before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}
