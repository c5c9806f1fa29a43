package storage

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Bundle appends the stored form of full entry bundle index, as PutBundle
// stored it, to dst, or returns an error wrapping ErrNotFound.
func (s *Store) Bundle(dst []byte, index uint64) ([]byte, error) {
	v, err := s.appendValue(dst, bundleKey(index))
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("entry bundle %d: %w", index, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading entry bundle %d: %w", index, err)
	}
	return v, nil
}

// PutBundle stores data as the stored form of full entry bundle index
// (tlog-tiles: entries [index*256, index*256+256)). It is derived data,
// written without syncing: a crash may lose it and the caller then makes
// it again; once stored it is never changed (a second PutBundle of the
// same index may be ignored or overwrite with identical bytes).
//
// PutBundle may run concurrently with Commit, and a failed PutBundle
// returns an error and does nothing else: a Pebble panic (pebbleFatal) in
// its goroutine is returned as an ErrFatal error. Bundles share Pebble's
// WAL and commit pipeline with the log, so a failure of those is the whole
// store's, whichever write met it: a failed WAL write fails the next
// Commit, whose sync covers it, with ErrFatal, as any WAL failure does; a
// fatal error in PutBundle fails the store as a failed Commit does, so
// that the sequencer's next Commit returns ErrFatal at once instead of
// waiting on the broken pipeline; and a failure to rotate the WAL ends the
// process inside Pebble, under PutBundle as under Commit.
func (s *Store) PutBundle(index uint64, data []byte) error {
	if s.failed.Load() {
		return fmt.Errorf("storing entry bundle %d: %w: an earlier write failed; reopen the store", index, ErrFatal)
	}
	if err := s.recoverFatal(func() error { return s.db.Set(bundleKey(index), data, pebble.NoSync) }); err != nil {
		return fmt.Errorf("storing entry bundle %d: %w", index, err)
	}
	return nil
}

func bundleKey(index uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{'b'}, index)
}
