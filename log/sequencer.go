package log

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/provlog/provlog/merkle"
	"github.com/provlog/provlog/storage"
	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

// request is one Add or AddBatch call waiting for the sequencer.
type request struct {
	entries []Admitted
	bytes   int64
	queued  time.Time
	results []AddResult
	err     error
	done    chan struct{} // closed once results or err is set
}

// Pending is a submitted request whose entries are being sequenced.
type Pending struct{ r *request }

// Wait returns the results, in submission order, once every entry is
// durable and covered by a signed checkpoint. If ctx ends first, Wait
// returns its error; the entries may still be sequenced.
func (p *Pending) Wait(ctx context.Context) ([]AddResult, error) {
	select {
	case <-p.r.done:
		return p.r.results, p.r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Add adds one entry and returns its index once it is durable and covered
// by a signed checkpoint (published at once, or, when the log is witnessed,
// once witnesses cosign it). An entry already in the log returns its
// original index with Duplicate set.
func (l *Log) Add(ctx context.Context, entry []byte) (AddResult, error) {
	res, err := l.AddBatch(ctx, [][]byte{entry})
	if err != nil {
		return AddResult{}, err
	}
	return res[0], nil
}

// AddBatch adds entries together, as Add does for one; results are in the
// order of entries. If any entry is invalid, none is added.
func (l *Log) AddBatch(ctx context.Context, entries [][]byte) ([]AddResult, error) {
	p, err := l.Submit(ctx, entries)
	if err != nil {
		return nil, err
	}
	return p.Wait(ctx)
}

// Submit validates and admits entries and queues them without waiting for
// them to be sequenced; Pending.Wait returns their results. If any entry is
// refused, none is queued. It fails fast with ErrPushback when the queue is
// full and ErrUnavailable when the log accepts no writes.
func (l *Log) Submit(ctx context.Context, entries [][]byte) (*Pending, error) {
	r, err := l.newRequest(ctx, entries)
	if err != nil {
		return nil, err
	}
	if err := l.enqueue(r); err != nil {
		l.metrics.rejected(err)
		return nil, err
	}
	return &Pending{r}, nil
}

func (l *Log) newRequest(ctx context.Context, entries [][]byte) (*request, error) {
	if len(entries) == 0 {
		return nil, fmt.Errorf("%w: no entries", ErrInvalidEntry)
	}
	r := &request{entries: make([]Admitted, len(entries)), done: make(chan struct{})}
	for i, e := range entries {
		a, err := l.admit(ctx, e)
		if err != nil {
			if len(entries) > 1 {
				err = fmt.Errorf("entry %d: %w", i, err)
			}
			l.metrics.rejected(err)
			return nil, err
		}
		r.entries[i] = a
		r.bytes += int64(len(a.Leaf))
	}
	return r, nil
}

// admit checks an entry's size, then runs the admission policy.
func (l *Log) admit(ctx context.Context, e []byte) (Admitted, error) {
	if err := l.checkEntry(e); err != nil {
		return Admitted{}, err
	}
	a, err := l.cfg.Admission.Admit(ctx, e)
	if err != nil {
		return Admitted{}, err
	}
	if err := checkSubmitter(ctx, a); err != nil {
		return Admitted{}, err
	}
	if err := l.checkEntry(a.Leaf); err != nil { // a canonical form may be larger
		return Admitted{}, fmt.Errorf("admitted form: %w", err)
	}
	return a, nil
}

func (l *Log) checkEntry(e []byte) error {
	switch {
	case len(e) == 0:
		return fmt.Errorf("%w: empty", ErrInvalidEntry)
	case len(e) > l.cfg.MaxEntrySize:
		return fmt.Errorf("%w: %d bytes, want <= %d", ErrInvalidEntry, len(e), l.cfg.MaxEntrySize)
	}
	return nil
}

// enqueue reserves queue room for r and hands it to the sequencer.
func (l *Log) enqueue(r *request) error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return fmt.Errorf("%w: shutting down", ErrUnavailable)
	}
	if p := l.fatal.Load(); p != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, *p)
	}
	n := int64(len(r.entries))
	if l.queuedN.Add(n) > int64(l.cfg.QueueMaxEntries) || l.queuedBytes.Add(r.bytes) > l.cfg.QueueMaxBytes {
		l.unreserve(r)
		return fmt.Errorf("%w: queue full", ErrPushback)
	}
	r.queued = time.Now()
	select {
	case l.queue <- r:
		return nil
	default: // cannot happen while reservations hold, but never block
		l.unreserve(r)
		return fmt.Errorf("%w: queue full", ErrPushback)
	}
}

func (l *Log) unreserve(r *request) {
	l.queuedN.Add(-int64(len(r.entries)))
	l.queuedBytes.Add(-r.bytes)
}

// sequence is the sequencer goroutine: it runs rounds until the queue is
// closed and drained.
func (l *Log) sequence() {
	defer close(l.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		batch, more := l.collect(timer)
		if len(batch) > 0 {
			l.round(batch)
		}
		if !more {
			return
		}
	}
}

// collect gathers one round's requests: it blocks for the first, then takes
// more until BatchMaxEntries or BatchMaxAge. more is false once the queue is
// closed and empty.
func (l *Log) collect(timer *time.Timer) (batch []*request, more bool) {
	r, ok := <-l.queue
	if !ok {
		return nil, false
	}
	batch, n := []*request{r}, len(r.entries)
	if l.cfg.BatchMaxAge > 0 {
		timer.Reset(l.cfg.BatchMaxAge)
		defer timer.Stop()
	}
	for n < l.cfg.BatchMaxEntries {
		select {
		case r, ok := <-l.queue:
			if !ok {
				return batch, false
			}
			batch, n = append(batch, r), n+len(r.entries)
			continue
		default:
		}
		if l.cfg.BatchMaxAge <= 0 {
			break
		}
		select {
		case r, ok := <-l.queue:
			if !ok {
				return batch, false
			}
			batch, n = append(batch, r), n+len(r.entries)
		case <-timer.C:
			return batch, true
		}
	}
	return batch, true
}

// round runs one sequencing round (see the package doc) and answers every
// request of the batch.
func (l *Log) round(batch []*request) {
	start := time.Now()
	for _, r := range batch {
		l.unreserve(r)
	}
	if p := l.fatal.Load(); p != nil {
		l.fail(batch, fmt.Errorf("%w: %w", ErrUnavailable, *p))
		return
	}
	n, err := l.integrate(batch)
	if err != nil {
		l.fail(batch, err)
		return
	}
	now := time.Now()
	l.metrics.batchEntries.Observe(float64(n))
	l.metrics.roundSeconds.Observe(now.Sub(start).Seconds())
	total := 0
	for _, r := range batch {
		l.metrics.integrationSeconds.Observe(now.Sub(r.queued).Seconds())
		total += len(r.entries)
		close(r.done)
	}
	l.metrics.appended(n, total-n)
}

func (l *Log) fail(batch []*request, err error) {
	for _, r := range batch {
		r.results, r.err = nil, err
		l.metrics.failed.Add(float64(len(r.entries)))
		close(r.done)
	}
}

// integrate sequences the batch's entries, commits them and publishes the
// new checkpoint. It returns the number of new entries.
func (l *Log) integrate(batch []*request) (int, error) {
	var all []Admitted
	for _, r := range batch {
		all = append(all, r.entries...)
	}
	hashes := make([][]byte, len(all))
	for i, e := range all {
		hashes[i] = merkle.LeafHash(e.Leaf)
	}
	// Step 1: dedup against the log and within the batch.
	indices, found := make([]uint64, len(all)), make([]bool, len(all))
	if err := l.store.LookupLeaves(hashes, indices, found); err != nil {
		l.cfg.Logger.Error("leaf lookup failed; batch refused", "err", err)
		return 0, fmt.Errorf("%w: leaf lookup: %w", ErrUnavailable, err)
	}
	size := l.rng.End()
	round := &storage.Round{Start: size}
	inBatch := make(map[string]uint64)
	for i, e := range all {
		if found[i] {
			continue
		}
		if idx, ok := inBatch[string(hashes[i])]; ok {
			indices[i], found[i] = idx, true
			continue
		}
		// Step 2: append the new leaf. The range and tiles change in memory
		// only; if the commit below fails the sequencer stops for good.
		idx := size + uint64(len(round.Entries))
		if err := l.rng.Append(hashes[i], l.tiles.Visit); err != nil {
			return 0, l.stop(fmt.Errorf("appending leaf %d: %w", idx, err))
		}
		inBatch[string(hashes[i])], indices[i] = idx, idx
		round.Entries, round.LeafHashes = append(round.Entries, e.Leaf), append(round.LeafHashes, hashes[i])
		for _, t := range e.Terms {
			round.Index = append(round.Index, storage.IndexKey{Kind: t.Kind, Value: t.Value, Index: idx, Tag: t.Tag})
		}
	}
	if len(round.Entries) > 0 {
		if err := l.commit(round); err != nil {
			return 0, err
		}
	}
	// Step 4: answer. Duplicates found in storage are durable, as are the
	// new entries now.
	k := 0
	for _, r := range batch {
		r.results = make([]AddResult, len(r.entries))
		for j := range r.entries {
			r.results[j] = AddResult{Index: indices[k], Duplicate: found[k]}
			k++
		}
	}
	return len(round.Entries), nil
}

// commit signs the round's checkpoint, writes the round durably (step 3)
// and publishes the checkpoint.
func (l *Log) commit(round *storage.Round) error {
	tiles, err := l.tiles.Flush()
	if err != nil {
		return l.stop(err)
	}
	for id, h := range tiles {
		round.Tiles = append(round.Tiles, storage.Tile{Level: id.Level, Index: id.Index, Hashes: h})
	}
	root, err := l.root()
	if err != nil {
		return l.stop(err)
	}
	size := l.rng.End()
	cp, err := l.sign(size, root)
	if err != nil {
		return l.stop(err)
	}
	round.State = storage.State{Size: size, Range: l.rng.Hashes(), Checkpoint: cp}
	if err := l.store.Commit(round); err != nil {
		return l.stop(fmt.Errorf("storage commit: %w", err))
	}
	next := &Checkpoint{Size: size, Root: root, Note: cp}
	l.latest.Store(next)
	if l.cfg.Witness == nil {
		l.publish(next)
	} else {
		l.kickWitness()
	}
	return nil
}

// stop records a fatal error: the sequencer signs and acknowledges nothing
// more. It returns the error, wrapped in ErrUnavailable, for the batch.
func (l *Log) stop(err error) error {
	l.fatal.CompareAndSwap(nil, &err)
	l.metrics.fatal.Set(1)
	l.cfg.Logger.Error("sequencer stopped: writes refused until restart", "err", err)
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

func (l *Log) root() ([]byte, error) {
	root, err := l.rng.GetRootHash(nil)
	if err != nil {
		return nil, fmt.Errorf("computing root: %w", err)
	}
	if l.rng.End() == 0 {
		root = rfc6962.DefaultHasher.EmptyRoot()
	}
	return root, nil
}

// sign returns the signed C2SP tlog-checkpoint for the tree.
func (l *Log) sign(size uint64, root []byte) ([]byte, error) {
	body := log.Checkpoint{Origin: l.cfg.Origin, Size: size, Hash: root}.Marshal()
	n, err := note.Sign(&note.Note{Text: string(body)}, l.cfg.Signer)
	if err != nil {
		return nil, fmt.Errorf("signing checkpoint of size %d: %w", size, err)
	}
	return n, nil
}

// checkStoredCheckpoint checks that the stored checkpoint is the one this
// log's key signs over the stored tree (Ed25519 signing is deterministic),
// so a log is never resumed with another key or origin.
func (l *Log) checkStoredCheckpoint(cp []byte, size uint64, root []byte) error {
	want, err := l.sign(size, root)
	if err != nil {
		return err
	}
	if !bytes.Equal(cp, want) {
		return errors.New("stored checkpoint differs from the one this key signs over the stored tree: wrong key or origin for this data")
	}
	return nil
}
