package storage

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// State is the tree state of a store: the size and the compact range
// [0, Size) from which the sequencer continues, and the checkpoint signed
// over it.
type State struct {
	// Size is the number of entries in the log.
	Size uint64
	// Range is the compact range [0, Size): one 32-byte hash per perfect
	// subtree, as compact.Range.Hashes returns them.
	Range [][]byte
	// Checkpoint is the signed checkpoint over this tree, nil if Size is 0
	// and none was signed yet.
	Checkpoint []byte
	// Published is the last checkpoint published after witnessing
	// (SetPublished), nil if none; it may be older than Checkpoint. Commit
	// ignores it.
	Published []byte
}

// Tile is one hash tile to write.
type Tile struct {
	Level, Index uint64
	// Hashes are the tile's hashes so far, 32 bytes each.
	Hashes []byte
	// Inner, for a full tile only, are its inner levels (merkle.TileTree's
	// Inner), stored after the hashes so that proofs need not recompute
	// them; nil otherwise.
	Inner []byte
}

// Round is everything one sequencing round writes.
type Round struct {
	// Start is the index of Entries[0]; it must equal the stored size.
	Start uint64
	// Entries are the new entries, with their RFC 6962 leaf hashes.
	Entries, LeafHashes [][]byte
	// Tiles are the hash tiles the round changed.
	Tiles []Tile
	// Index are the search-index keys of the new entries.
	Index []IndexKey
	// State is the tree state after the round, its checkpoint included.
	State State
}

// ReadState returns the stored tree state; the zero State for a new store.
func (s *Store) ReadState() (State, error) {
	v, err := s.get(keyState)
	if errors.Is(err, ErrNotFound) {
		return State{}, nil
	}
	if err != nil {
		return State{}, err
	}
	st, err := decodeState(v)
	if err != nil {
		return State{}, err
	}
	if st.Size > 0 {
		if st.Checkpoint, err = s.get(keyCheckpoint); err != nil {
			return State{}, fmt.Errorf("reading checkpoint of tree size %d: %w", st.Size, err)
		}
	}
	if st.Published, err = s.get(keyPublished); errors.Is(err, ErrNotFound) {
		err = nil
	}
	return st, err
}

// SetPublished durably records the checkpoint published after witnessing
// (the log's note with cosignatures, or alone when published fail-open),
// so that a restart serves it again. A nil cp durably removes the record:
// a log that publishes its latest checkpoint unwitnessed does so, since
// the record no longer says what was published.
func (s *Store) SetPublished(cp []byte) error {
	if cp == nil {
		if err := s.recoverFatal(func() error { return s.db.Delete(keyPublished, pebble.Sync) }); err != nil {
			return fmt.Errorf("removing published checkpoint: %w", err)
		}
		return nil
	}
	if err := s.recoverFatal(func() error { return s.db.Set(keyPublished, cp, pebble.Sync) }); err != nil {
		return fmt.Errorf("writing published checkpoint: %w", err)
	}
	return nil
}

func encodeState(st State) []byte {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(st.Range)*hashSize), st.Size)
	for _, h := range st.Range {
		b = append(b, h...)
	}
	return b
}

func decodeState(v []byte) (State, error) {
	if len(v) < 8 || (len(v)-8)%hashSize != 0 {
		return State{}, fmt.Errorf("tree state of %d bytes: %w", len(v), ErrCorrupt)
	}
	st := State{Size: binary.BigEndian.Uint64(v)}
	for h := v[8:]; len(h) > 0; h = h[hashSize:] {
		st.Range = append(st.Range, h[:hashSize:hashSize])
	}
	return st, nil
}

// Commit writes a round in one Pebble batch and syncs it. When Commit
// returns nil the round is durable. When it returns an error the round may
// or may not be durable (a failed sync may follow a successful write): the
// caller must stop writing and reopen, trusting only ReadState. An error
// from writing or syncing the round is ErrFatal, and every later Commit
// fails too; a malformed round is refused before anything is written,
// and the store takes the next one, as is a round that finds the
// leaf-hash index too far behind (ErrIndexBehind, see leafindex.go).
func (s *Store) Commit(r *Round) error {
	if s.failed.Load() {
		return fmt.Errorf("%w: an earlier commit failed; reopen the store", ErrFatal)
	}
	if len(r.Entries) != len(r.LeafHashes) || r.State.Size != r.Start+uint64(len(r.Entries)) {
		return fmt.Errorf("malformed round: %d entries, %d leaf hashes, start %d, new size %d",
			len(r.Entries), len(r.LeafHashes), r.Start, r.State.Size)
	}
	for i, e := range r.Entries {
		if len(e) > MaxEntrySize {
			return fmt.Errorf("malformed round: entry %d of %d bytes (at most %d)", r.Start+uint64(i), len(e), MaxEntrySize)
		}
	}
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	if have := s.leaves.size(); r.Start != have {
		return fmt.Errorf("malformed round: it starts at entry %d, the store holds %d", r.Start, have)
	}
	if err := s.leaves.admit(); err != nil {
		return fmt.Errorf("refusing round [%d, %d): %w", r.Start, r.State.Size, err)
	}
	t := s.tail
	if !t.ok || t.end != r.Start {
		var err error
		if t, err = s.loadTail(r.Start); err != nil {
			return fmt.Errorf("reading the rightmost entry bundle below %d: %w", r.Start, err)
		}
	}
	size := 64
	end := r.Start + uint64(len(r.Entries))
	inFiles := end - end%BundleSize // entries below go to bundle files, not the batch
	for i, e := range r.Entries {
		size += hashSize + 16 + locSize
		if r.Start+uint64(i) >= inFiles {
			size += 2 + len(e)
		}
	}
	for _, tl := range r.Tiles {
		size += 16 + len(tl.Hashes) + len(tl.Inner)
	}
	for _, k := range r.Index {
		size += 24 + len(k.Value)
	}
	b := s.db.NewBatchWithSize(size)
	defer b.Close()
	next, err := batchEntries(b, s.files, &s.scratch, t, r.Start, r.Entries)
	if err != nil {
		if errors.Is(err, ErrFatal) {
			s.failed.Store(true)
		}
		return err
	}
	// The round's leaf hashes, as one journal key (see leafindex.go).
	if len(r.LeafHashes) > 0 {
		op := b.SetDeferred(9, hashSize*len(r.LeafHashes))
		copy(op.Key, journalKey(r.Start))
		for i, h := range r.LeafHashes {
			if len(h) != hashSize {
				return fmt.Errorf("leaf hash %d of %d bytes", r.Start+uint64(i), len(h))
			}
			copy(op.Value[i*hashSize:], h)
		}
		if err := op.Finish(); err != nil {
			return fmt.Errorf("batching the round's leaf hashes: %w", err)
		}
	}
	for _, k := range r.Index {
		if k.Index < r.Start || k.Index >= r.State.Size {
			return fmt.Errorf("index key for entry %d outside round [%d, %d)", k.Index, r.Start, r.State.Size)
		}
		if err := k.check(); err != nil {
			return err
		}
		if err := b.Set(k.key(), []byte{k.Tag}, nil); err != nil {
			return fmt.Errorf("batching index key: %w", err)
		}
	}
	for _, t := range r.Tiles {
		v := t.Hashes
		if t.Inner != nil {
			if len(t.Hashes) != fullTileSize || len(t.Inner) != innerSize {
				return fmt.Errorf("tile %d/%d of %d bytes with inner levels of %d bytes", t.Level, t.Index, len(t.Hashes), len(t.Inner))
			}
			v = append(t.Hashes[:len(t.Hashes):len(t.Hashes)], t.Inner...)
		}
		if err := b.Set(tileKey(t.Level, t.Index), v, nil); err != nil {
			return fmt.Errorf("batching tile %d/%d: %w", t.Level, t.Index, err)
		}
	}
	if err := b.Set(keyState, encodeState(r.State), nil); err != nil {
		return fmt.Errorf("batching tree state: %w", err)
	}
	if err := b.Set(keyCheckpoint, r.State.Checkpoint, nil); err != nil {
		return fmt.Errorf("batching checkpoint: %w", err)
	}
	// The round's hashes go into the filter and the leaf-hash index's
	// memory while the round syncs, on the CPU its syncs leave idle. A
	// lookup may then find an entry of the round before Commit returns
	// (the log, which sequenced it, answers for it already); a committed
	// hash is never missing from either. The index now holds the round,
	// so any error from here on fails the store: it must be reopened, and
	// its index rebuilt from what is durable.
	indexed := make(chan struct{})
	go func() {
		defer close(indexed)
		s.filter.add(r.LeafHashes)
		s.leaves.add(r.Start, r.LeafHashes)
	}()
	// The bundles the round completed are durable before the batch that
	// locates them is (see bundlefile.go).
	err = s.files.sync()
	if err == nil {
		err = s.commitSync(b)
	}
	<-indexed
	if err != nil {
		s.failed.Store(true)
		s.leaves.committed(false)
		s.tail = tail{}
		if !errors.Is(err, ErrFatal) {
			err = fmt.Errorf("%w: %w", ErrFatal, err)
		}
		return fmt.Errorf("committing round [%d, %d): %w", r.Start, r.State.Size, err)
	}
	s.tail = next
	s.leaves.committed(true)
	return nil
}

// commitSync commits b with Sync (see recoverFatal).
func (s *Store) commitSync(b *pebble.Batch) error {
	return s.recoverFatal(func() error { return b.Commit(pebble.Sync) })
}

// recoverFatal runs a Pebble write, turning Pebble's fatal commit error
// into an ErrFatal error (pebbleWrite) and failing the store for good:
// Pebble's commit pipeline, shared by every write, is then unusable.
func (s *Store) recoverFatal(write func() error) error {
	fatal, err := pebbleWrite(write)
	if fatal {
		s.failed.Store(true)
	}
	return err
}

// pebbleWrite runs a Pebble write, turning Pebble's fatal commit error (a
// pebbleFatal panic from pebbleLogger.Fatalf in this goroutine: a failed
// WAL write or sync) into an error wrapping ErrFatal, with fatal set, so
// that no write of ours panics out of the package.
func pebbleWrite(write func() error) (fatal bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(pebbleFatal)
			if !ok {
				panic(r)
			}
			fatal, err = true, fmt.Errorf("%w: %s", ErrFatal, f.msg)
		}
	}()
	return false, write()
}
