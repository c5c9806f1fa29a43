package storage

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Schema 1 stored each entry under its own key ('e' || index). Open
// migrates such a store to schema 2 before it returns: it rewrites the
// entries as bundles (the last, partial bundle as one chunk) and removes
// their 'e' keys, a batch of bundles at a time, each batch writing the
// bundles and deleting the keys they replace, so that a
// migration stopped at any point (a crash, a kill) leaves every entry
// under exactly one of the two layouts and the next Open finishes it.
// The version is set to 2 first, so that an older provlog refuses the
// store rather than read it half migrated, and every Open of a schema-2
// store looks for schema-1 keys left (one seek).

func v1EntryKey(index uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{'e'}, index)
}

// migrateBatchBundles is how many bundles one migration batch rewrites:
// 16 MiB of 1 KiB entries.
const migrateBatchBundles = 64

// migrateV1 rewrites the entries of a store still under schema-1 keys as
// chunks; the schema version is already 2.
func (s *Store) migrateV1() error {
	st, err := s.ReadState()
	if err != nil {
		return fmt.Errorf("migrating from schema 1: %w", err)
	}
	// The first entry still under a schema-1 key: a migration that
	// stopped part way resumes after the bundles it rewrote.
	var from uint64
	switch k, err := s.firstKey([]byte{'e'}, []byte{'e' + 1}); {
	case errors.Is(err, ErrNotFound):
		from = st.Size
	case err != nil:
		return err
	case len(k) != 9 || binary.BigEndian.Uint64(k[1:])%BundleSize != 0:
		return fmt.Errorf("schema-1 entries from key %x, not at a bundle's start: %w", k, ErrCorrupt)
	default:
		from = binary.BigEndian.Uint64(k[1:])
	}
	began, reported := time.Now(), time.Now()
	if from < st.Size {
		s.logger.Info("migrating the store to schema 2: entries as bundles", "entries", st.Size, "from", from)
	}
	buf := make([]byte, 0, migrateBatchBundles*BundleSize*64)
	for start := from; start < st.Size; {
		end := min(st.Size, start+migrateBatchBundles*BundleSize)
		b := s.db.NewBatch()
		err := s.migrateRange(b, start, end, buf)
		if err == nil {
			err = s.recoverFatal(func() error { return b.Commit(pebble.NoSync) })
		}
		b.Close()
		if err != nil {
			return fmt.Errorf("migrating entries [%d, %d) to schema 2: %w", start, end, err)
		}
		start = end
		if time.Since(reported) > 5*time.Second {
			reported = time.Now()
			s.logger.Info("migrating the store to schema 2", "done", start, "entries", st.Size, "elapsed", time.Since(began).Round(time.Second))
		}
	}
	if from < st.Size {
		if err := s.recoverFatal(func() error { return s.db.LogData(nil, pebble.Sync) }); err != nil {
			return fmt.Errorf("syncing the migration: %w", err)
		}
		// Drop the old keys' values from the disk now rather than when
		// compactions reach them.
		if err := s.db.Compact(context.Background(), v1EntryKey(0), []byte{'e' + 1}, true); err != nil {
			s.logger.Warn("compacting the schema-1 entries away", "err", err)
		}
		s.logger.Info("migrated the store to schema 2", "entries", st.Size, "took", time.Since(began).Round(time.Millisecond))
	}
	return nil
}

// migrateRange adds to b the chunks of entries [start, end), one per
// bundle, read from their schema-1 keys, and the deletion of those keys.
func (s *Store) migrateRange(b *pebble.Batch, start, end uint64, buf []byte) error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: v1EntryKey(start), UpperBound: v1EntryKey(end)})
	if err != nil {
		return err
	}
	defer it.Close()
	want, first := start, start
	chunk := buf[:0]
	for ok := it.First(); ok; ok = it.Next() {
		if got := binary.BigEndian.Uint64(it.Key()[1:]); got != want {
			return fmt.Errorf("entry %d missing (next stored is %d): %w", want, got, ErrCorrupt)
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return fmt.Errorf("reading entry %d: %w", want, err)
		}
		if len(v) > MaxEntrySize {
			return fmt.Errorf("entry %d of %d bytes: %w", want, len(v), ErrCorrupt)
		}
		chunk = AppendRecord(chunk, v)
		want++
		if want%BundleSize == 0 || want == end {
			key := bundleEntriesKey(first / BundleSize)
			if want%BundleSize != 0 {
				key = chunkKey(first) // the rightmost bundle, partial
			}
			if err := b.Set(key, chunk, nil); err != nil {
				return err
			}
			chunk, first = chunk[:0], want
		}
	}
	if err := it.Error(); err != nil {
		return err
	}
	if want != end {
		return fmt.Errorf("entry %d missing: %w", want, ErrCorrupt)
	}
	return b.DeleteRange(v1EntryKey(start), v1EntryKey(end), nil)
}

// firstKey returns a copy of the first key in [lower, upper), or
// ErrNotFound.
func (s *Store) firstKey(lower, upper []byte) ([]byte, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	if !it.First() {
		if err := it.Error(); err != nil {
			return nil, err
		}
		return nil, ErrNotFound
	}
	return append([]byte(nil), it.Key()...), nil
}
