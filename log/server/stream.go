package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/provlog/provlog/log"
	"github.com/provlog/provlog/merkle"
	provlogv1 "github.com/provlog/provlog/proto/provlog/v1"
)

const (
	// maxInFlight caps the requests of one AppendStream being sequenced
	// or waiting to be answered.
	maxInFlight = 64
	// Each GetEntriesResponse carries at most chunkEntries entries and,
	// unless a single entry is larger, at most chunkBytes bytes of them.
	chunkEntries = 256
	chunkBytes   = 1 << 20
	// maxGetEntries caps the entries of one GetEntries call: four entry
	// bundles (1024 entries, at most 64 MiB; Trillian's CT front end caps
	// get-entries at 1000). As RFC 6962 section 4.6 has it, "If a client
	// requests more than the permitted number of entries, the log SHALL
	// return the maximum number of entries permissible": a call asking for
	// more gets the first maxGetEntries entries of its range, and the
	// client continues from there (the proto documents it).
	maxGetEntries = 4 * merkle.TileWidth
)

// AppendStream answers each request with one response, in request order, as
// soon as its entries are durable. A receiving goroutine validates each
// request and hands it to its own AddBatch goroutine, at most maxInFlight
// at a time; the handler goroutine sends the results in order. The first
// error (invalid request, log error, receive error) ends the stream with
// its status, after the responses to the requests before it.
//
// Every goroutine ends once the handler returns: AddBatch goroutines when
// the stream's context is cancelled and the receiving one when Recv fails,
// which it does once the handler has returned.
func (s *grpcServer) AppendStream(stream provlogv1.Log_AppendStreamServer) (err error) {
	defer func() { s.opts.logRefusedGRPC(stream.Context(), provlogv1.Log_AppendStream_FullMethodName, err) }()
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	p := &appendPipeline{
		log:   s.log,
		opts:  s.opts,
		sem:   make(chan struct{}, maxInFlight),
		queue: make(chan chan batchResult, maxInFlight),
	}
	go p.receive(ctx, stream)
	return p.send(ctx, stream)
}

// batchResult is the outcome of one AppendStream request; err is a status
// error.
type batchResult struct {
	res []log.AddResult
	err error
}

// appendPipeline carries one AppendStream's requests from the receiving
// goroutine to the sending one, in order.
type appendPipeline struct {
	log  Log
	opts options
	// sem holds a token for each request in flight.
	sem chan struct{}
	// queue carries, in request order, the channel on which each request's
	// result arrives; the receiving goroutine owns it and closes it at EOF.
	queue chan chan batchResult
}

// receive reads requests until EOF or the first failure, which it queues
// as a failed result.
func (p *appendPipeline) receive(ctx context.Context, stream provlogv1.Log_AppendStreamServer) {
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			close(p.queue)
			return
		}
		if err == nil {
			err = validateAppendBatchRequest(req, p.log.MaxEntrySize())
		}
		actx := ctx
		if err == nil {
			if actx, err = p.opts.authorizeGRPC(ctx, len(req.Entries)); err != nil {
				err = grpcError(err)
			}
		}
		if err != nil {
			p.enqueue(ctx, func(ch chan batchResult) { ch <- batchResult{err: err} })
			return
		}
		if !p.enqueue(ctx, func(ch chan batchResult) { go p.add(actx, req.Entries, ch) }) {
			return
		}
	}
}

// enqueue waits for a slot, starts a request with start and queues its
// result channel; it reports false if ctx ended first.
func (p *appendPipeline) enqueue(ctx context.Context, start func(chan batchResult)) bool {
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return false
	}
	ch := make(chan batchResult, 1)
	start(ch)
	p.queue <- ch // never blocks: the queue has room for every token
	return true
}

func (p *appendPipeline) add(ctx context.Context, entries [][]byte, ch chan<- batchResult) {
	res, err := p.log.AddBatch(ctx, entries)
	if err != nil {
		err = grpcError(err)
	}
	ch <- batchResult{res: res, err: err}
}

// send sends the results in request order until the queue closes or a
// result is an error.
func (p *appendPipeline) send(ctx context.Context, stream provlogv1.Log_AppendStreamServer) error {
	for {
		var ch chan batchResult
		select {
		case c, ok := <-p.queue:
			if !ok {
				return nil
			}
			ch = c
		case <-ctx.Done():
			return grpcError(ctx.Err())
		}
		var r batchResult
		select {
		case r = <-ch:
		case <-ctx.Done():
			return grpcError(ctx.Err())
		}
		if r.err != nil {
			return r.err
		}
		if err := stream.Send(appendBatchResponse(r.res)); err != nil {
			return err
		}
		<-p.sem
	}
}

// GetEntries streams the first maxGetEntries entries of the requested
// range, which must lie within the log's integrated tree, in chunks of at
// most chunkEntries entries and about chunkBytes bytes (see getEntries).
func (s *grpcServer) GetEntries(req *provlogv1.GetEntriesRequest, stream provlogv1.Log_GetEntriesServer) error {
	return s.getEntries(stream.Context(), req, stream.Send)
}

// getEntries is GetEntries over any sender of its responses: the gRPC
// stream, or the JSON API's collector. An error from send ends it and is
// returned as it is.
func (s *grpcServer) getEntries(ctx context.Context, req *provlogv1.GetEntriesRequest, send func(*provlogv1.GetEntriesResponse) error) error {
	if err := validateGetEntriesRequest(req); err != nil {
		return err
	}
	if size := s.log.IntegratedSize(); req.Start >= size || req.Count > size-req.Start {
		return grpcError(fmt.Errorf("%w: entries [%d, %d) beyond the log's size %d", log.ErrOutOfRange, req.Start, req.Start+req.Count, size))
	}
	count := min(req.Count, maxGetEntries)
	c := &entriesChunker{send: send, decode: req.Decode, ctx: ctx, log: s.log, next: req.Start, resp: &provlogv1.GetEntriesResponse{}}
	err := s.log.Entries(ctx, req.Start, count, c.add)
	if err == nil {
		err = c.flush()
	}
	var se sendError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &se):
		return se.err
	}
	return grpcError(err)
}

// entriesChunker gathers entries into GetEntriesResponses and sends them.
type entriesChunker struct {
	send   func(*provlogv1.GetEntriesResponse) error
	decode bool                          // whether responses carry the entries decoded
	ctx    context.Context               // the request's, for decoding
	log    Log                           // the log, for decoding (its signers)
	next   uint64                        // index of the next entry to add
	resp   *provlogv1.GetEntriesResponse // the chunk being gathered
	bytes  int                           // size of the entries in resp (twice it when decoding)
}

// add adds the entry with the given index, first sending the chunk so far
// if the entry would make it too large. A decoded entry counts twice: its
// statement is most of the entry again.
func (c *entriesChunker) add(index uint64, entry []byte) error {
	if index != c.next {
		return fmt.Errorf("entries out of order: got %d, want %d", index, c.next)
	}
	n := len(entry)
	if c.decode {
		n *= 2
	}
	if len(c.resp.Entries) == chunkEntries || (len(c.resp.Entries) > 0 && c.bytes+n > chunkBytes) {
		if err := c.flush(); err != nil {
			return err
		}
	}
	if len(c.resp.Entries) == 0 {
		c.resp.Start = index
	}
	c.resp.Entries = append(c.resp.Entries, bytes.Clone(entry))
	if c.decode {
		c.resp.Decoded = append(c.resp.Decoded, decodeEntry(c.ctx, c.log, index, entry))
	}
	c.bytes += n
	c.next++
	return nil
}

// flush sends the chunk so far, if any.
func (c *entriesChunker) flush() error {
	if len(c.resp.Entries) == 0 {
		return nil
	}
	if err := c.send(c.resp); err != nil {
		return sendError{err}
	}
	c.resp = &provlogv1.GetEntriesResponse{}
	c.bytes = 0
	return nil
}

// sendError marks an error from sending on the stream, which is returned
// as it is rather than mapped.
type sendError struct{ err error }

func (e sendError) Error() string { return e.err.Error() }
func (e sendError) Unwrap() error { return e.err }
