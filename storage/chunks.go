package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/cockroachdb/pebble/v2"
)

// Entries are stored in entry-bundle form (tlog-tiles: each entry as a
// big-endian uint16 length and its bytes), never one key per entry:
//
//   - a full bundle is written whole to its bundle file by the round that
//     completes it, never changed, and located by 'E' || bundle index
//     (see bundlefile.go; under schema 2 the 'E' value is the bundle);
//   - the rightmost, partial bundle is in chunks, 'P' || first, runs of
//     consecutive entries as rounds wrote them; the round that completes
//     the bundle deletes its chunks in the batch that locates it.
//
// So a full bundle is served from one read (where 256 entry keys took
// 256), a round of 4096 entries writes 16 bundle locations rather than
// 4096 entry keys, and chunks are not separated from the LSM (see
// entriesOnlySeparated): compactions drop them with their deletion.
//
// The completing round builds the bundle from the Store's copy of the
// rightmost bundle's records (tail), kept as rounds commit, so the
// sequencer reads nothing back; a round that does not continue the tail
// (the first after Open, or after a failed Commit) reloads it from the
// store first.

// BundleSize is the number of entries in a full entry bundle
// (tlog-tiles).
const BundleSize = 256

// MaxEntrySize is the largest entry a store holds: an entry-bundle
// record's length is a uint16.
const MaxEntrySize = 1<<16 - 1

// tail is the rightmost bundle's records as committed: entries
// [start, end) with start a multiple of BundleSize; valid only if ok.
type tail struct {
	ok         bool
	start, end uint64
	records    []byte
	// off is where the bundle the tail starts goes in its bundle file
	// (see bundlefile.go): the end of the last bundle committed to it.
	off int64
}

// AppendRecord appends entry e to dst as an entry-bundle record: its
// length as a big-endian uint16, then its bytes; e is at most
// MaxEntrySize bytes.
func AppendRecord(dst, e []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(e)))
	return append(dst, e...)
}

// nextRecord splits the first record off b.
func nextRecord(b []byte) (entry, rest []byte, err error) {
	if len(b) < 2 {
		return nil, nil, fmt.Errorf("entry record of %d bytes: %w", len(b), ErrCorrupt)
	}
	n := int(binary.BigEndian.Uint16(b))
	if len(b) < 2+n {
		return nil, nil, fmt.Errorf("entry record of length %d in %d bytes: %w", n, len(b)-2, ErrCorrupt)
	}
	return b[2 : 2+n : 2+n], b[2+n:], nil
}

// spanRecords counts the records at the start of b, at most max of them,
// and returns their count and the offset after them.
func spanRecords(b []byte, max uint64) (n uint64, off int, err error) {
	for ; off < len(b) && n < max; n++ {
		if len(b)-off < 2 {
			return 0, 0, fmt.Errorf("chunk ends after %d bytes: %w", off, ErrCorrupt)
		}
		off += 2 + int(binary.BigEndian.Uint16(b[off:]))
		if off > len(b) {
			return 0, 0, fmt.Errorf("entry record past the chunk's end: %w", ErrCorrupt)
		}
	}
	return n, off, nil
}

// bundleEntriesKey is full bundle index's key; chunkKey the key of a
// chunk of the rightmost bundle from entry first.
func bundleEntriesKey(index uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{'E'}, index)
}

func chunkKey(first uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{'P'}, first)
}

// batchEntries adds the round's entries to b, given the tail the round
// continues, and returns the tail after it: a bundle the round completes
// is written to its bundle file (not yet synced) and its location to b,
// with the deletion of its chunks; the others' entries go to b as chunks.
// scratch is a buffer to reuse for the bundles written.
func batchEntries(b *pebble.Batch, files *bundleFiles, scratch *[]byte, t tail, start uint64, entries [][]byte) (tail, error) {
	off := t.off // where the next bundle completed goes
	for i := 0; i < len(entries); {
		first := start + uint64(i)
		bundle := first / BundleSize
		n := min(uint64(len(entries)-i), (bundle+1)*BundleSize-first)
		seg := entries[i : i+int(n)]
		i += int(n)
		if (first+n)%BundleSize == 0 {
			v := (*scratch)[:0]
			if first%BundleSize != 0 { // the tail's records before this segment
				v = append(v, t.records...)
			}
			for _, e := range seg {
				v = AppendRecord(v, e)
			}
			*scratch = v
			if bundle%segmentBundles == 0 {
				off = 0
			}
			loc := bundleLoc{off: off, n: uint32(len(v)), crc: crc32.Checksum(v, castagnoli)}
			if err := files.write(bundle/segmentBundles, off, v); err != nil {
				return tail{}, fmt.Errorf("%w: entry bundle %d: %w", ErrFatal, bundle, err)
			}
			off += int64(len(v))
			if err := b.Set(bundleEntriesKey(bundle), loc.encode(), nil); err != nil {
				return tail{}, fmt.Errorf("batching the location of entry bundle %d: %w", bundle, err)
			}
			if first%BundleSize != 0 { // the bundle's chunks, now in it
				if err := b.DeleteRange(chunkKey(bundle*BundleSize), chunkKey(first), nil); err != nil {
					return tail{}, fmt.Errorf("batching the chunks of bundle %d: %w", bundle, err)
				}
			}
			t = tail{ok: true, start: first + n, end: first + n, off: off}
			continue
		}
		size := 0
		for _, e := range seg {
			size += 2 + len(e)
		}
		key := chunkKey(first)
		op := b.SetDeferred(len(key), size)
		copy(op.Key, key)
		v := op.Value[:0]
		for _, e := range seg {
			v = AppendRecord(v, e)
		}
		if err := op.Finish(); err != nil {
			return tail{}, fmt.Errorf("batching entries [%d, %d): %w", first, first+n, err)
		}
		if first%BundleSize == 0 {
			t = tail{ok: true, start: first, end: first + n, records: append([]byte(nil), v...), off: off}
		} else { // continues the tail, appended in place: the tail before
			// this round still reads as it was, should the commit fail
			t = tail{ok: true, start: t.start, end: first + n, records: append(t.records, v...), off: t.off}
		}
	}
	return t, nil
}

// loadTail reads the records of the rightmost bundle below size.
func (s *Store) loadTail(size uint64) (tail, error) {
	start := size - size%BundleSize
	t := tail{ok: true, start: start, end: size}
	if bundle := start / BundleSize; bundle%segmentBundles != 0 {
		// The bundle goes after the one before it, if that is in the same
		// file; a store of schema 2 starts a file at its first bundle
		// completed under schema 3.
		v, err := s.get(bundleEntriesKey(bundle - 1))
		if err != nil && !errors.Is(err, ErrNotFound) {
			return tail{}, fmt.Errorf("reading the location of entry bundle %d: %w", bundle-1, err)
		}
		if l, ok := decodeLoc(v); ok {
			t.off = l.off + int64(l.n)
		}
	}
	if size == start {
		return t, nil
	}
	var err error
	t.records, err = s.AppendBundle(nil, start/BundleSize, size-start)
	return t, err
}

// errStop ends a visit early.
var errStop = errors.New("stop")

// visitBundle calls fn with the stored runs of bundle index's entries, in
// order: the full bundle's one value, or the rightmost bundle's chunks;
// fn is given the index of the run's first entry, and the records, valid
// only during the call. A bundle with nothing stored is not an error
// here: its callers find its entries missing.
func (s *Store) visitBundle(index uint64, fn func(first uint64, records []byte) error) error {
	v, closer, err := s.db.Get(bundleEntriesKey(index))
	switch {
	case err == nil:
		l, ok := decodeLoc(v)
		if !ok { // in Pebble (schema 2)
			defer closer.Close()
			return fn(index*BundleSize, v)
		}
		closer.Close()
		records, err := s.files.read(nil, index, l)
		if err != nil {
			return err
		}
		return fn(index*BundleSize, records)
	case !errors.Is(err, pebble.ErrNotFound):
		return fmt.Errorf("reading entry bundle %d: %w", index, err)
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: chunkKey(index * BundleSize), UpperBound: chunkKey((index + 1) * BundleSize)})
	if err != nil {
		return fmt.Errorf("reading entry bundle %d: %w", index, err)
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return fmt.Errorf("reading entry bundle %d: %w", index, err)
		}
		if err := fn(binary.BigEndian.Uint64(it.Key()[1:]), v); err != nil {
			return err
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("reading entry bundle %d: %w", index, err)
	}
	return nil
}

// visitEntries calls fn with each entry of [start, end), in order, and
// returns the index after the last it reached: end, unless fn failed or
// an entry is missing.
func (s *Store) visitEntries(start, end uint64, fn func(index uint64, entry []byte) error) (uint64, error) {
	want := start
	for want < end {
		before := want
		err := s.visitBundle(want/BundleSize, func(first uint64, v []byte) error {
			if first > want {
				return fmt.Errorf("entry %d missing (the next stored is %d): %w", want, first, ErrCorrupt)
			}
			skipped, off, err := spanRecords(v, want-first)
			if err != nil {
				return fmt.Errorf("entries from %d: %w", first, err)
			}
			if skipped != want-first {
				return nil // a run before want
			}
			for rest := v[off:]; len(rest) > 0 && want < end; want++ {
				var e []byte
				if e, rest, err = nextRecord(rest); err != nil {
					return fmt.Errorf("entries from %d, entry %d: %w", first, want, err)
				}
				if err := fn(want, e); err != nil {
					return err
				}
			}
			if want == end {
				return errStop
			}
			return nil
		})
		if err != nil && err != errStop {
			return want, err
		}
		if want == before || (want < end && want%BundleSize != 0) {
			return want, fmt.Errorf("entry %d missing: %w", want, ErrCorrupt)
		}
	}
	return want, nil
}

// AppendBundle appends the first width entries of entry bundle index to
// dst in the bundle's encoding (tlog-tiles: each entry as a big-endian
// uint16 length and its bytes). The entries must be stored (the caller
// asks only below the tree size); a missing one is ErrCorrupt.
func (s *Store) AppendBundle(dst []byte, index, width uint64) ([]byte, error) {
	if width == 0 || width > BundleSize || index > (1<<64-1)/BundleSize-1 {
		return nil, fmt.Errorf("entry bundle %d of width %d: %w", index, width, ErrNotFound)
	}
	if width == BundleSize {
		// A full bundle in its file is read straight into dst.
		v, closer, err := s.db.Get(bundleEntriesKey(index))
		if err != nil && !errors.Is(err, pebble.ErrNotFound) {
			return nil, fmt.Errorf("reading entry bundle %d: %w", index, err)
		}
		if err == nil {
			l, ok := decodeLoc(v)
			closer.Close()
			if ok {
				return s.appendFileBundle(dst, index, l)
			}
		}
	}
	start := index * BundleSize
	end := start + width
	want := start
	err := s.visitBundle(index, func(first uint64, v []byte) error {
		if first != want {
			return fmt.Errorf("entry %d missing (the next stored is %d): %w", want, first, ErrCorrupt)
		}
		n, off, err := spanRecords(v, end-first)
		if err != nil {
			return fmt.Errorf("entries from %d: %w", first, err)
		}
		dst = append(dst, v[:off]...)
		if want += n; want == end {
			return errStop
		}
		return nil
	})
	if err != nil && err != errStop {
		return nil, err
	}
	if want != end {
		return nil, fmt.Errorf("entry %d missing: %w", want, ErrCorrupt)
	}
	return dst, nil
}

// appendFileBundle appends full bundle index, at l in its file, to dst,
// checking that it holds BundleSize records.
func (s *Store) appendFileBundle(dst []byte, index uint64, l bundleLoc) ([]byte, error) {
	n := len(dst)
	dst, err := s.files.read(dst, index, l)
	if err != nil {
		return nil, err
	}
	if got, off, err := spanRecords(dst[n:], BundleSize); err != nil || got != BundleSize || off != int(l.n) {
		return nil, fmt.Errorf("entry bundle %d: %d records in %d of its %d bytes (%v): %w", index, got, off, l.n, err, ErrCorrupt)
	}
	if s.files.osFS {
		s.files.checked.add(index) // OpenBundle may send it from now on
	}
	return dst, nil
}
