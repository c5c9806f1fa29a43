package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// loadSpec is one load: who writes what, how fast, for how long.
type loadSpec struct {
	Mode    string
	Writers int
	// PerCall is the entries of one call (1 for single and http).
	PerCall int
	// Rate is the target entries per second over all writers; 0 is as
	// fast as the log acknowledges.
	Rate float64
	// Duration bounds the load; Entries, if positive, bounds it instead.
	Duration time.Duration
	Entries  int64
	// Source makes entry i (counted from 0 within this load).
	Source func(i int64) []byte
	// Progress, if positive, logs progress at this interval.
	Progress time.Duration
}

// call is one acknowledged call.
type call struct {
	start    time.Time     // when the call was due (rate-limited) or sent
	latency  time.Duration // until its acknowledgement
	maxIndex uint64        // largest index it was given
	n        int           // entries
}

// loadResult is what a load measured.
type loadResult struct {
	calls     []call
	entries   int64
	elapsed   time.Duration // from the start to the last acknowledgement
	pushbacks int64
}

// runLoad runs spec against t and returns every acknowledged call. The
// first failed call (other than pushback, which is retried) stops the load
// and is returned.
func runLoad(ctx context.Context, t target, spec loadSpec) (*loadResult, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	l := &loader{spec: spec, t: t, start: time.Now()}
	if spec.Progress > 0 {
		go l.progress(ctx)
	}
	var wg sync.WaitGroup
	results := make([][]call, spec.Writers)
	for i := range spec.Writers {
		w, err := t.NewWriter(spec.Mode, i)
		if err != nil {
			cancel(err)
			break
		}
		wg.Go(func() {
			defer w.close()
			calls, err := l.write(ctx, w)
			results[i] = calls
			if err != nil {
				cancel(err)
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	return l.result(slices.Concat(results...)), nil
}

// loader is the state the writers of one load share.
type loader struct {
	spec      loadSpec
	t         target
	start     time.Time
	next      atomic.Int64 // the next call number
	acked     atomic.Int64 // entries acknowledged
	pushbacks atomic.Int64
	lastAck   atomic.Int64 // unix nanos of the latest acknowledgement
}

// write is one writer's loop: take the next call number, wait for its
// turn if rate-limited, send it, record it.
func (l *loader) write(ctx context.Context, w writer) ([]call, error) {
	var calls []call
	per := int64(l.spec.PerCall)
	for ctx.Err() == nil {
		first := l.next.Add(1)*per - per
		n := per
		if l.spec.Entries > 0 {
			n = min(per, l.spec.Entries-first)
		} else if time.Since(l.start) >= l.spec.Duration {
			break
		}
		if n <= 0 {
			break
		}
		due, err := l.wait(ctx, first)
		if err != nil {
			return calls, err
		}
		entries := make([][]byte, n)
		for i := range entries {
			entries[i] = l.spec.Source(first + int64(i))
		}
		idx, err := l.send(ctx, w, entries)
		if err != nil {
			return calls, err
		}
		now := time.Now()
		calls = append(calls, call{start: due, latency: now.Sub(due), maxIndex: idx, n: int(n)})
		l.acked.Add(n)
		l.lastAck.Store(now.UnixNano())
	}
	return calls, ctx.Err()
}

// wait sleeps until entry first is due at the target rate and returns when
// it was due: latency counts from then, so a log that falls behind the
// schedule is charged for the wait (no coordinated omission). Without a
// rate the entry is due now.
func (l *loader) wait(ctx context.Context, first int64) (time.Time, error) {
	if l.spec.Rate <= 0 {
		return time.Now(), nil
	}
	due := l.start.Add(time.Duration(float64(first) / l.spec.Rate * float64(time.Second)))
	if d := time.Until(due); d > 0 {
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return due, ctx.Err()
		}
	}
	return due, nil
}

// send adds entries, retrying pushback with a growing pause.
func (l *loader) send(ctx context.Context, w writer, entries [][]byte) (uint64, error) {
	backoff := time.Millisecond
	for {
		idx, err := w.add(ctx, entries)
		if !errors.Is(err, errPushback) {
			return idx, err
		}
		l.pushbacks.Add(1)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		backoff = min(2*backoff, 100*time.Millisecond)
	}
}

func (l *loader) progress(ctx context.Context) {
	tick := time.NewTicker(l.spec.Progress)
	defer tick.Stop()
	var prev int64
	prevT := l.start
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			n := l.acked.Load()
			slog.Info("progress", "target", l.t.Name(), "mode", l.spec.Mode, "acked", n,
				"entries/s", int(float64(n-prev)/now.Sub(prevT).Seconds()))
			prev, prevT = n, now
		}
	}
}

func (l *loader) result(calls []call) *loadResult {
	r := &loadResult{calls: calls, entries: l.acked.Load(), pushbacks: l.pushbacks.Load()}
	if last := l.lastAck.Load(); last > 0 {
		r.elapsed = time.Unix(0, last).Sub(l.start)
	}
	return r
}

func (r *loadResult) perSecond() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.entries) / r.elapsed.Seconds()
}

// maxIndex is the largest index any call was given.
func (r *loadResult) maxIndex() uint64 {
	var m uint64
	for _, c := range r.calls {
		m = max(m, c.maxIndex)
	}
	return m
}

// ackLatencies returns each entry's acknowledgement latency (the latency of
// its call, once per entry).
func (r *loadResult) ackLatencies() []time.Duration {
	d := make([]time.Duration, 0, r.entries)
	for _, c := range r.calls {
		for range c.n {
			d = append(d, c.latency)
		}
	}
	return d
}

// opaqueSource returns a source of distinct entries of size bytes: a run
// tag and the entry number, then pseudo-random bytes (incompressible, so
// that bytes on disk are not flattered by compression).
func opaqueSource(size int, offset int64) func(int64) []byte {
	tag := rand.Uint64()
	return func(i int64) []byte {
		var seed [32]byte
		binary.BigEndian.PutUint64(seed[:], tag)
		binary.BigEndian.PutUint64(seed[8:], uint64(offset+i))
		e := make([]byte, size)
		rand.NewChaCha8(seed).Read(e) //nolint:errcheck // ChaCha8.Read never fails
		copy(e, seed[:16])
		return e
	}
}

// checkpointWatch polls a target's checkpoint and records when each new
// size was first seen.
type checkpointWatch struct {
	mu   sync.Mutex
	seen []sizeSeen // sizes increasing
	err  error
	stop context.CancelFunc
	done chan struct{}
}

type sizeSeen struct {
	at   time.Time
	size uint64
}

// checkpointPoll is how often checkpointWatch polls: the resolution of
// time-to-checkpoint figures.
const checkpointPoll = 2 * time.Millisecond

func watchCheckpoints(t target) *checkpointWatch {
	ctx, cancel := context.WithCancel(context.Background())
	w := &checkpointWatch{stop: cancel, done: make(chan struct{})}
	go w.poll(ctx, t)
	return w
}

func (w *checkpointWatch) poll(ctx context.Context, t target) {
	defer close(w.done)
	tick := time.NewTicker(checkpointPoll)
	defer tick.Stop()
	for {
		size, err := t.CheckpointSize(ctx)
		now := time.Now()
		w.mu.Lock()
		switch {
		case err != nil && ctx.Err() == nil:
			w.err = err
		case err == nil && (len(w.seen) == 0 || size > w.seen[len(w.seen)-1].size):
			w.seen = append(w.seen, sizeSeen{now, size})
		}
		w.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// latest returns the largest size seen, 0 if none yet.
func (w *checkpointWatch) latest() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.seen) == 0 {
		return 0
	}
	return w.seen[len(w.seen)-1].size
}

// waitFor waits until a checkpoint of at least size has been seen.
func (w *checkpointWatch) waitFor(ctx context.Context, size uint64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		w.mu.Lock()
		ok := len(w.seen) > 0 && w.seen[len(w.seen)-1].size >= size
		err := w.err
		w.mu.Unlock()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(checkpointPoll):
		}
	}
	return fmt.Errorf("no checkpoint of size %d within %v", size, timeout)
}

// close stops polling and returns what was seen.
func (w *checkpointWatch) close() ([]sizeSeen, error) {
	w.stop()
	<-w.done
	return w.seen, w.err
}

// timeToCheckpoint returns, for each entry, the time from its call's start
// to the first signed checkpoint seen that covers the call's largest index,
// and how many calls no checkpoint seen covers.
func timeToCheckpoint(calls []call, seen []sizeSeen) ([]time.Duration, int) {
	d := make([]time.Duration, 0, len(calls))
	missing := 0
	for _, c := range calls {
		i, _ := slices.BinarySearchFunc(seen, c.maxIndex+1, func(s sizeSeen, size uint64) int {
			return cmpUint(s.size, size)
		})
		if i == len(seen) {
			missing++
			continue
		}
		for range c.n {
			d = append(d, max(seen[i].at.Sub(c.start), 0))
		}
	}
	return d, missing
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
