package main

import (
	"context"
	"fmt"

	provlogv1 "github.com/provlog/provlog/proto/provlog/v1"
)

// streamDepth is how many load goroutines share one AppendStream: each
// stream carries that many requests in flight, answered in order.
const streamDepth = 8

// sharedStream is one AppendStream used by several writers. Sends are
// serialized by mu; each sender queues a channel in waiters, in send
// order, and the receiving goroutine answers them in that order.
type sharedStream struct {
	mu      chan struct{} // a one-token semaphore: held while queueing and sending
	stream  provlogv1.Log_AppendStreamClient
	cancel  context.CancelFunc
	waiters chan chan streamResult
	refs    int // guarded by provlog.streamsMu
}

type streamResult struct {
	resp *provlogv1.AppendBatchResponse
	err  error
}

// streamWriter returns a writer on shared stream n, opening it if needed.
func (p *provlog) streamWriter(n int) (writer, error) {
	p.streamsMu.Lock()
	defer p.streamsMu.Unlock()
	s := p.streams[n]
	if s == nil {
		ctx, cancel := context.WithCancel(context.Background())
		st, err := p.client(n).AppendStream(ctx)
		if err != nil {
			cancel()
			return nil, fmt.Errorf("AppendStream: %w", err)
		}
		s = &sharedStream{mu: make(chan struct{}, 1), stream: st, cancel: cancel,
			waiters: make(chan chan streamResult, 4*streamDepth)}
		go s.receive()
		p.streams[n] = s
	}
	s.refs++
	return &streamWriter{p: p, n: n, s: s}, nil
}

// receive answers the waiters in send order. After a receive error every
// later waiter gets that error.
func (s *sharedStream) receive() {
	var failed error
	for w := range s.waiters {
		if failed != nil {
			w <- streamResult{err: failed}
			continue
		}
		resp, err := s.stream.Recv()
		if err != nil {
			failed = grpcErr("AppendStream", err)
		}
		w <- streamResult{resp: resp, err: failed}
	}
}

type streamWriter struct {
	p *provlog
	n int
	s *sharedStream
}

func (w *streamWriter) add(ctx context.Context, entries [][]byte) (uint64, error) {
	ch := make(chan streamResult, 1)
	select {
	case w.s.mu <- struct{}{}:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	w.s.waiters <- ch
	// A failed Send means a broken stream: Recv reports why, to this
	// waiter too, so its error is not needed here.
	_ = w.s.stream.Send(&provlogv1.AppendBatchRequest{Entries: entries})
	<-w.s.mu
	select {
	case r := <-ch:
		if r.err != nil {
			return 0, r.err
		}
		return maxIndex(r.resp.Results)
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// close releases the writer's share; the last one closes the stream.
func (w *streamWriter) close() error {
	w.p.streamsMu.Lock()
	defer w.p.streamsMu.Unlock()
	if w.s.refs--; w.s.refs > 0 {
		return nil
	}
	delete(w.p.streams, w.n)
	err := w.s.stream.CloseSend()
	close(w.s.waiters)
	w.s.cancel()
	if err != nil {
		return fmt.Errorf("closing AppendStream: %w", err)
	}
	return nil
}
