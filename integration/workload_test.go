package integration

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	pb "github.com/provlog/provlog/proto/provlog/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// makeEntry returns the deterministic entry number seq: 16 to 1024 bytes,
// starting with "entry <seq>;" so that entries are distinct, then
// pseudo-random bytes (any byte value) seeded by seq.
func makeEntry(seq uint64) []byte {
	r := rand.New(rand.NewPCG(seq, 0x70726f766c6f67))
	b := make([]byte, 16+r.IntN(1024-16+1))
	n := copy(b, fmt.Sprintf("entry %d;", seq))
	for i := n; i < len(b); i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

// makeEntries returns entries first..first+n-1.
func makeEntries(first, n uint64) [][]byte {
	es := make([][]byte, n)
	for i := range es {
		es[i] = makeEntry(first + uint64(i))
	}
	return es
}

// ackLog records every acknowledged (entry, index) pair and checks that an
// entry gets one index and an index one entry.
type ackLog struct {
	mu    sync.Mutex
	index []int64          // by entry seq; -1 until acknowledged
	owner map[uint64]int64 // by log index: the entry seq acknowledged there

	acked     atomic.Int64  // entries with an index
	threshold int64         // acked count at which reached is closed
	reached   chan struct{} // closed once acked >= threshold
}

func newAckLog(n int, threshold int64) *ackLog {
	a := &ackLog{index: make([]int64, n), owner: make(map[uint64]int64, n), threshold: threshold, reached: make(chan struct{})}
	for i := range a.index {
		a.index[i] = -1
	}
	return a
}

// record records that entry seq was acknowledged with res. mayBeLogged says
// whether the entry may already be in the log: it was sent before in a call
// that failed. An entry sent for the first time must not be reported as a
// duplicate.
func (a *ackLog) record(seq int, res *pb.AppendResponse, mayBeLogged bool) error {
	if res == nil {
		return fmt.Errorf("entry %d: nil result", seq)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if res.Duplicate && !mayBeLogged {
		return fmt.Errorf("entry %d, submitted for the first time, acknowledged as a duplicate of index %d", seq, res.Index)
	}
	if prev := a.index[seq]; prev >= 0 {
		if uint64(prev) != res.Index {
			return fmt.Errorf("entry %d acknowledged at index %d and again at index %d", seq, prev, res.Index)
		}
		return nil
	}
	if other, ok := a.owner[res.Index]; ok && other != int64(seq) {
		return fmt.Errorf("index %d acknowledged for entry %d and for entry %d", res.Index, other, seq)
	}
	a.index[seq] = int64(res.Index)
	a.owner[res.Index] = int64(seq)
	if a.acked.Add(1) == a.threshold {
		close(a.reached)
	}
	return nil
}

// indexOf returns the index acknowledged for entry seq, or -1.
func (a *ackLog) indexOf(seq int) int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.index[seq]
}

// job is a unit of work of one appender: a run of consecutive entries sent
// with one method.
type job struct {
	method string  // "Append", "AppendBatch" or "AppendStream"
	seqs   [][]int // for AppendStream, the entries of each request; else one group
}

// planJobs splits entries 0..n-1 into jobs: mostly single Appends by count,
// but most entries go in AppendBatch calls of 100-500 entries and in
// AppendStream calls of 2-8 requests of 20-300 entries.
func planJobs(n int, seed uint64) []job {
	r := rand.New(rand.NewPCG(seed, seed^0x6a6f6273))
	var jobs []job
	next := 0
	take := func(k int) []int {
		k = min(k, n-next)
		s := make([]int, k)
		for i := range s {
			s[i] = next + i
		}
		next += k
		return s
	}
	for next < n {
		switch p := r.IntN(8); {
		case p < 6:
			jobs = append(jobs, job{method: "Append", seqs: [][]int{take(1)}})
		case p == 6:
			jobs = append(jobs, job{method: "AppendBatch", seqs: [][]int{take(100 + r.IntN(401))}})
		default:
			j := job{method: "AppendStream"}
			for range 2 + r.IntN(7) {
				if next < n {
					j.seqs = append(j.seqs, take(20+r.IntN(281)))
				}
			}
			jobs = append(jobs, j)
		}
	}
	return jobs
}

// appender runs jobs against the provlogd that current points to, retrying
// calls that fail with Unavailable or ResourceExhausted (possibly against a
// restarted provlogd).
type appender struct {
	entries [][]byte
	acks    *ackLog
	current *atomic.Pointer[provlogd]

	retries atomic.Int64 // failed calls that were retried
}

// errFatal marks an error that must not be retried.
var errFatal = errors.New("not retryable")

// retryable reports whether a call that failed with err may be retried: the
// log is shutting down, restarting or pushing back.
func retryable(err error) bool {
	if errors.Is(err, errFatal) {
		return false
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.ResourceExhausted:
		return true
	}
	return false
}

// run runs jobs[i] for each i that next hands out until none are left or
// one fails.
func (a *appender) run(ctx context.Context, jobs []job, next *atomic.Int64) error {
	for {
		i := int(next.Add(1)) - 1
		if i >= len(jobs) {
			return nil
		}
		if err := a.runJob(ctx, jobs[i]); err != nil {
			return fmt.Errorf("%s of entries %d..: %w", jobs[i].method, jobs[i].seqs[0][0], err)
		}
	}
}

// runJob runs one job to completion, retrying what may be retried.
func (a *appender) runJob(ctx context.Context, j job) error {
	pending := j.seqs
	mayBeLogged := false
	backoff := 10 * time.Millisecond
	for {
		d := a.current.Load()
		done, err := a.call(ctx, d.Log, j.method, pending, mayBeLogged)
		pending = pending[done:]
		if err == nil && len(pending) == 0 {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("%w: %d requests unanswered", errFatal, len(pending))
		}
		if !retryable(err) {
			return err
		}
		a.retries.Add(1)
		mayBeLogged = true
		select {
		case <-ctx.Done():
			return fmt.Errorf("retrying after %w: %w", err, ctx.Err())
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 200*time.Millisecond)
	}
}

// call sends the requests of reqs (one unless method is AppendStream) and
// records the results. It returns how many requests were answered and
// recorded, and the error that ended the call.
func (a *appender) call(ctx context.Context, c pb.LogClient, method string, reqs [][]int, mayBeLogged bool) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	switch method {
	case "Append":
		seq := reqs[0][0]
		res, err := c.Append(ctx, &pb.AppendRequest{Entry: a.entries[seq]})
		if err != nil {
			return 0, err
		}
		if err := a.acks.record(seq, res, mayBeLogged); err != nil {
			return 0, fmt.Errorf("%w: %w", errFatal, err)
		}
		return 1, nil
	case "AppendBatch":
		res, err := c.AppendBatch(ctx, a.batchRequest(reqs[0]))
		if err != nil {
			return 0, err
		}
		if err := a.recordBatch(reqs[0], res, mayBeLogged); err != nil {
			return 0, err
		}
		return 1, nil
	case "AppendStream":
		return a.stream(ctx, c, reqs, mayBeLogged)
	}
	return 0, fmt.Errorf("%w: unknown method %q", errFatal, method)
}

// stream sends reqs on one AppendStream while receiving the responses,
// which must come one per request, in order, followed by the end of the
// stream.
func (a *appender) stream(ctx context.Context, c pb.LogClient, reqs [][]int, mayBeLogged bool) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := c.AppendStream(ctx)
	if err != nil {
		return 0, err
	}
	sent := make(chan error, 1)
	go func() {
		for _, r := range reqs {
			// An error here also ends the stream for Recv, which
			// reports the status.
			if err := st.Send(a.batchRequest(r)); err != nil {
				sent <- nil
				return
			}
		}
		sent <- st.CloseSend()
	}()
	for i, r := range reqs {
		res, err := st.Recv()
		if err == io.EOF {
			return i, fmt.Errorf("%w: AppendStream ended after %d responses to %d requests", errFatal, i, len(reqs))
		}
		if err != nil {
			return i, err
		}
		if err := a.recordBatch(r, res, mayBeLogged); err != nil {
			return i, err
		}
	}
	if _, err := st.Recv(); err != io.EOF {
		return len(reqs), fmt.Errorf("%w: AppendStream after its %d responses: got %v, want the end of the stream", errFatal, len(reqs), err)
	}
	if err := <-sent; err != nil {
		return len(reqs), fmt.Errorf("%w: CloseSend: %w", errFatal, err)
	}
	return len(reqs), nil
}

func (a *appender) batchRequest(seqs []int) *pb.AppendBatchRequest {
	req := &pb.AppendBatchRequest{Entries: make([][]byte, len(seqs))}
	for i, s := range seqs {
		req.Entries[i] = a.entries[s]
	}
	return req
}

func (a *appender) recordBatch(seqs []int, res *pb.AppendBatchResponse, mayBeLogged bool) error {
	if len(res.Results) != len(seqs) {
		return fmt.Errorf("%w: %d results for %d entries", errFatal, len(res.Results), len(seqs))
	}
	for i, s := range seqs {
		if err := a.acks.record(s, res.Results[i], mayBeLogged); err != nil {
			return fmt.Errorf("%w: %w", errFatal, err)
		}
	}
	return nil
}
