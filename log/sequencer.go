package log

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/provlog/provlog/event"

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
	ctx = context.WithValue(ctx, nextIndexKey{}, l.latest.Load().Size)
	for i, e := range entries {
		a, err := l.admit(ctx, e)
		if err != nil {
			if len(entries) > 1 {
				err = fmt.Errorf("entry %d: %w", i, err)
			}
			l.metrics.rejected(err)
			return nil, err
		}
		if a.Alone && len(entries) > 1 {
			return nil, fmt.Errorf("%w: entry %d: a %s event must be submitted alone, not in a batch", ErrInvalidEntry, i, a.Type)
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
		return fmt.Errorf("%w: %s", ErrInvalidEntry, TooLarge(len(e), l.cfg.MaxEntrySize))
	}
	return nil
}

// TooLarge says why an entry of n bytes is refused under the entry cap,
// and how to log a large document (an SBOM) instead.
func TooLarge(n, maxSize int) string {
	size := fmt.Sprintf("%d bytes", n)
	if n < 0 { // unknown: more than the cap
		size = "too large"
	}
	return fmt.Sprintf("%s, want <= %d (the entry size cap; log a larger SBOM by reference: predicate type %s with its digest, size and media type)", size, maxSize, event.SBOMRefPredicateType)
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

// sequence is the sequencer goroutine: it prepares rounds until the queue
// is closed and drained, handing each to the committer (at most one round
// waits while another commits).
func (l *Log) sequence() {
	defer close(l.done)
	commits := make(chan *pendingRound, 1)
	committed := make(chan struct{})
	go l.commitLoop(commits, committed)
	defer func() { close(commits); <-committed }()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		batch, more := l.collect(timer)
		if len(batch) > 0 {
			if pr := l.prepare(batch); pr != nil {
				l.pendingRounds.Add(1)
				commits <- pr
			}
		}
		if !more {
			return
		}
	}
}

// collect gathers one round's requests: it blocks for the first, then takes
// more until BatchMaxEntries, or BatchMaxAge, or the committer has room for
// another round (group commit: fewer than maxPendingRounds prepared and not
// yet committed), whichever comes first. So an idle log commits an entry at
// once, and a busy one gathers what arrives while it syncs. more is false
// once the queue is closed and empty.
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
		if l.cfg.BatchMaxAge <= 0 || l.pendingRounds.Load() < maxPendingRounds {
			break
		}
		select {
		case r, ok := <-l.queue:
			if !ok {
				return batch, false
			}
			batch, n = append(batch, r), n+len(r.entries)
		case <-l.roundCommitted:
		case <-timer.C:
			return batch, true
		}
	}
	return batch, true
}

// maxPendingRounds is how many prepared rounds may wait for the committer
// before the sequencer gathers entries for longer: one committing, one
// prepared behind it, so the committer never waits for a round to be
// prepared.
const maxPendingRounds = 2

// pendingRound is a prepared round on its way to the committer.
type pendingRound struct {
	batch   []*request
	round   *storage.Round      // nil Entries: only duplicates to answer
	cp      *Checkpoint         // the checkpoint signed over the round
	hashes  map[string]struct{} // the round's new leaf hashes, in l.inflight
	started time.Time
}

func (l *Log) fail(batch []*request, err error) {
	for _, r := range batch {
		r.results, r.err = nil, err
		l.metrics.failed.Add(float64(len(r.entries)))
		close(r.done)
	}
}

// prepare runs steps 1 and 2 of a round (see the package doc) for the
// batch: dedup, then the new leaves appended to the tree in memory and a
// checkpoint signed over it. It answers the batch itself if the round
// fails, and returns nil then.
func (l *Log) prepare(batch []*request) *pendingRound {
	started := time.Now()
	for _, r := range batch {
		l.unreserve(r)
	}
	if p := l.fatal.Load(); p != nil {
		l.fail(batch, fmt.Errorf("%w: %w", ErrUnavailable, *p))
		return nil
	}
	n := 0
	for _, r := range batch {
		n += len(r.entries)
	}
	all := make([]Admitted, 0, n)
	for _, r := range batch {
		all = append(all, r.entries...)
	}
	hashes := make([][]byte, len(all))
	for i, e := range all {
		hashes[i] = merkle.LeafHash(e.Leaf)
	}
	indices, found, err := l.dedup(hashes)
	if err != nil {
		l.cfg.Logger.Error("leaf lookup failed; batch refused", "err", err)
		l.fail(batch, fmt.Errorf("%w: leaf lookup: %w", ErrUnavailable, err))
		return nil
	}
	size := l.rng.End()
	pr := &pendingRound{round: &storage.Round{Start: size, Entries: make([][]byte, 0, n), LeafHashes: make([][]byte, 0, n)},
		hashes: make(map[string]struct{}, n), started: started}
	k := 0 // the first entry of r in all, hashes, indices and found
	for bi, r := range batch {
		n := len(r.entries)
		rh, ri, rf := hashes[k:k+n], indices[k:k+n], found[k:k+n]
		k += n
		fresh, err := l.plan(r, size, uint64(len(pr.round.Entries)), rh, ri, rf)
		if err != nil { // refused at its index: nothing of it is written
			l.metrics.rejected(err)
			r.results, r.err = nil, err
			close(r.done)
			continue
		}
		pr.batch = append(pr.batch, r)
		for j, e := range r.entries {
			if !fresh[j] {
				continue
			}
			// The range and tiles change in memory only; if the commit
			// fails the sequencer stops for good.
			if err := l.rng.Append(rh[j], l.tiles.Visit); err != nil {
				// This request, those before it in the round and those
				// after it, unanswered yet.
				l.fail(append(pr.batch, batch[bi+1:]...), l.stop(fmt.Errorf("appending leaf %d: %w", ri[j], err)))
				return nil
			}
			l.addInflight(rh[j], ri[j])
			pr.hashes[string(rh[j])] = struct{}{}
			pr.round.Entries, pr.round.LeafHashes = append(pr.round.Entries, e.Leaf), append(pr.round.LeafHashes, rh[j])
			for _, t := range e.Terms {
				pr.round.Index = append(pr.round.Index, storage.IndexKey{Kind: t.Kind, Value: t.Value, Index: ri[j], Tag: t.Tag})
			}
		}
		r.results = make([]AddResult, n)
		for j := range r.entries {
			r.results[j] = AddResult{Index: ri[j], Duplicate: rf[j]}
		}
	}
	if len(pr.batch) == 0 {
		return nil
	}
	if len(pr.round.Entries) > 0 {
		if err := l.sign(pr); err != nil {
			l.fail(batch, l.stop(err))
			return nil
		}
	}
	return pr
}

// plan gives the request's entries their indices in a round that starts
// at size and holds queued entries so far: a duplicate (found in the log,
// earlier in this batch or in the request) its original index, a new entry
// (fresh) the next one. It calls each new entry's Admitted.Sequence with
// its index, in order, and returns the first error, before anything of
// the request is appended.
func (l *Log) plan(r *request, size, queued uint64, hashes [][]byte, indices []uint64, found []bool) (fresh []bool, err error) {
	fresh = make([]bool, len(r.entries))
	next := size + queued
	local := map[string]uint64{}
	for j, e := range r.entries {
		if found[j] {
			continue
		}
		if idx, ok := l.inflightIndex(hashes[j]); ok && idx >= size { // earlier in this batch
			indices[j], found[j] = idx, true
			continue
		}
		if idx, ok := local[string(hashes[j])]; ok { // earlier in this request
			indices[j], found[j] = idx, true
			continue
		}
		indices[j], fresh[j] = next, true
		local[string(hashes[j])] = next
		next++
		if e.Sequence != nil {
			if err := e.Sequence(indices[j]); err != nil {
				if len(r.entries) > 1 {
					err = fmt.Errorf("entry %d: %w", j, err)
				}
				return nil, err
			}
		}
	}
	return fresh, nil
}

// dedup looks the hashes up among the entries of rounds not yet committed,
// then in the store. The in-flight set is read first: a round leaves it only
// once committed, so an entry is always found in one or the other.
func (l *Log) dedup(hashes [][]byte) (indices []uint64, found []bool, err error) {
	indices, found = make([]uint64, len(hashes)), make([]bool, len(hashes))
	var rest [][]byte
	var restAt []int
	l.inflightMu.Lock()
	for i, h := range hashes {
		if idx, ok := l.inflight[string(h)]; ok {
			indices[i], found[i] = idx, true
		} else {
			rest, restAt = append(rest, h), append(restAt, i)
		}
	}
	l.inflightMu.Unlock()
	if len(rest) == 0 {
		return indices, found, nil
	}
	ri, rf := make([]uint64, len(rest)), make([]bool, len(rest))
	if err := l.store.LookupLeaves(rest, ri, rf); err != nil {
		return nil, nil, err
	}
	for j, i := range restAt {
		indices[i], found[i] = ri[j], rf[j]
	}
	return indices, found, nil
}

func (l *Log) inflightIndex(h []byte) (uint64, bool) {
	l.inflightMu.Lock()
	defer l.inflightMu.Unlock()
	idx, ok := l.inflight[string(h)]
	return idx, ok
}

func (l *Log) addInflight(h []byte, idx uint64) {
	l.inflightMu.Lock()
	l.inflight[string(h)] = idx
	l.inflightMu.Unlock()
}

// sign completes the round's storage batch: the changed tiles, the new tree
// state and the checkpoint signed over it, held in memory until committed.
func (l *Log) sign(pr *pendingRound) error {
	tiles, err := l.tiles.Flush()
	if err != nil {
		return err
	}
	for id, ft := range tiles {
		t := storage.Tile{Level: id.Level, Index: id.Index, Hashes: ft.Hashes, Inner: ft.Inner}
		if t.Inner == nil && len(ft.Hashes) == merkle.TileWidth*merkle.HashSize {
			// Stored with its inner levels: a proof through a tile no
			// longer cached then costs a read, not 254 hashes. The
			// range computed them, unless the tile was begun before the
			// log was opened.
			t.Inner = merkle.NewTileTree(ft.Hashes).Inner()
		}
		pr.round.Tiles = append(pr.round.Tiles, t)
	}
	root, err := l.root()
	if err != nil {
		return err
	}
	size := l.rng.End()
	note, err := l.signCheckpoint(size, root)
	if err != nil {
		return err
	}
	// A deep copy: the sequencer goes on appending to the range while the
	// committer encodes this state.
	hashes := l.rng.Hashes()
	rangeCopy := make([][]byte, len(hashes))
	for i, h := range hashes {
		rangeCopy[i] = bytes.Clone(h)
	}
	pr.round.State = storage.State{Size: size, Range: rangeCopy, Checkpoint: note}
	pr.cp = &Checkpoint{Size: size, Root: root, Note: note}
	return nil
}

// commitLoop is the committer goroutine: it commits the prepared rounds in
// order, each in one synced batch (step 3), then publishes its checkpoint
// and answers its requests (step 4). After a failed commit it fails every
// later round without committing it.
func (l *Log) commitLoop(commits <-chan *pendingRound, done chan<- struct{}) {
	defer close(done)
	for pr := range commits {
		l.commitRound(pr)
		// Whatever became of the round, the committer has room again.
		l.pendingRounds.Add(-1)
		select {
		case l.roundCommitted <- struct{}{}:
		default:
		}
	}
}

// commitRound commits one prepared round and answers its requests, or
// fails them.
func (l *Log) commitRound(pr *pendingRound) {
	if p := l.fatal.Load(); p != nil {
		l.fail(pr.batch, fmt.Errorf("%w: %w", ErrUnavailable, *p))
		return
	}
	n := len(pr.round.Entries)
	if n > 0 {
		if err := l.store.Commit(pr.round); err != nil {
			l.fail(pr.batch, l.stop(fmt.Errorf("storage commit: %w", err)))
			return
		}
		l.latest.Store(pr.cp)
		if l.cfg.Witness == nil {
			l.publish(pr.cp)
		} else {
			l.kickWitness()
		}
		l.inflightMu.Lock()
		for h := range pr.hashes {
			delete(l.inflight, h)
		}
		l.inflightMu.Unlock()
	}
	l.answer(pr, n)
}

// answer closes the round's requests, whose results are set, and counts
// them.
func (l *Log) answer(pr *pendingRound, added int) {
	now := time.Now()
	l.metrics.batchEntries.Observe(float64(added))
	l.metrics.roundSeconds.Observe(now.Sub(pr.started).Seconds())
	total := 0
	for _, r := range pr.batch {
		l.metrics.integrationSeconds.Observe(now.Sub(r.queued).Seconds())
		total += len(r.entries)
		close(r.done)
	}
	l.metrics.appended(added, total-added)
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

// signCheckpoint returns the signed C2SP tlog-checkpoint for the tree.
func (l *Log) signCheckpoint(size uint64, root []byte) ([]byte, error) {
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
	want, err := l.signCheckpoint(size, root)
	if err != nil {
		return err
	}
	if !bytes.Equal(cp, want) {
		return errors.New("stored checkpoint differs from the one this key signs over the stored tree: wrong key or origin for this data")
	}
	return nil
}
