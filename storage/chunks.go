package storage

import (
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Entries are stored in chunks: runs of consecutive entries within one
// entry bundle, in the bundle's own encoding (tlog-tiles: each entry as a
// big-endian uint16 length and its bytes), under the index of their first
// entry ('E' || first). A round writes one chunk per bundle it touches,
// and the round that completes a bundle writes the whole bundle as one
// chunk at its first index and deletes the bundle's other chunks, in the
// same batch. So every full bundle is one key whose value is the served
// bundle (one read to serve it, where 256 entry keys took 256), a round
// of 4096 entries writes 16 entry keys rather than 4096, and only the
// rightmost, partial bundle may be in several chunks.
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

func chunkKey(first uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{'E'}, first)
}

func putChunkKey(dst []byte, first uint64) {
	dst[0] = 'E'
	binary.BigEndian.PutUint64(dst[1:], first)
}

// batchEntries adds the round's entries to b as chunks, given the tail
// the round continues, and returns the tail after it.
func batchEntries(b *pebble.Batch, t tail, start uint64, entries [][]byte) (tail, error) {
	next := t
	for i := 0; i < len(entries); {
		first := start + uint64(i)
		bundle := first / BundleSize
		n := min(uint64(len(entries)-i), (bundle+1)*BundleSize-first)
		seg := entries[i : i+int(n)]
		i += int(n)
		size := 0
		for _, e := range seg {
			size += 2 + len(e)
		}
		full := (first+n)%BundleSize == 0
		prefix := []byte(nil) // the tail's records before this segment, if it completes their bundle
		keyAt := first
		if full && first%BundleSize != 0 {
			prefix, keyAt = t.records, t.start
		}
		op := b.SetDeferred(1+8, len(prefix)+size)
		putChunkKey(op.Key, keyAt)
		v := append(op.Value[:0], prefix...)
		for _, e := range seg {
			v = AppendRecord(v, e)
		}
		if err := op.Finish(); err != nil {
			return tail{}, fmt.Errorf("batching entries [%d, %d): %w", first, first+n, err)
		}
		switch {
		case full && prefix != nil:
			// The bundle's other chunks, all after its first index.
			if err := b.DeleteRange(chunkKey(t.start+1), chunkKey(first+n), nil); err != nil {
				return tail{}, fmt.Errorf("batching the chunks of bundle %d: %w", bundle, err)
			}
			next = tail{ok: true, start: first + n, end: first + n}
		case full:
			next = tail{ok: true, start: first + n, end: first + n}
		case first%BundleSize == 0:
			next = tail{ok: true, start: first, end: first + n, records: append([]byte(nil), v...)}
		default: // continues the tail
			r := make([]byte, 0, len(t.records)+len(v))
			next = tail{ok: true, start: t.start, end: first + n, records: append(append(r, t.records...), v...)}
		}
		t = next
	}
	return next, nil
}

// loadTail reads the records of the rightmost bundle below size.
func (s *Store) loadTail(size uint64) (tail, error) {
	start := size - size%BundleSize
	t := tail{ok: true, start: start, end: size}
	if size == start {
		return t, nil
	}
	var err error
	t.records, err = s.AppendBundle(nil, start/BundleSize, size-start)
	return t, err
}

// AppendBundle appends the first width entries of entry bundle index to
// dst in the bundle's encoding (tlog-tiles: each entry as a big-endian
// uint16 length and its bytes). The entries must be stored (the caller
// asks only below the tree size); a missing one is ErrCorrupt.
func (s *Store) AppendBundle(dst []byte, index, width uint64) ([]byte, error) {
	if width == 0 || width > BundleSize || index > (1<<64-1)/BundleSize-1 {
		return nil, fmt.Errorf("entry bundle %d of width %d: %w", index, width, ErrNotFound)
	}
	start := index * BundleSize
	end := start + width
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: chunkKey(start), UpperBound: chunkKey(end)})
	if err != nil {
		return nil, fmt.Errorf("reading entry bundle %d: %w", index, err)
	}
	defer it.Close()
	want := start
	for ok := it.First(); ok && want < end; ok = it.Next() {
		first := binary.BigEndian.Uint64(it.Key()[1:])
		if first != want {
			return nil, fmt.Errorf("entry %d missing (next chunk starts at %d): %w", want, first, ErrCorrupt)
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, fmt.Errorf("reading entries from %d: %w", first, err)
		}
		n, off, err := spanRecords(v, end-first)
		if err != nil {
			return nil, fmt.Errorf("chunk at %d: %w", first, err)
		}
		dst = append(dst, v[:off]...)
		want += n
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("reading entry bundle %d: %w", index, err)
	}
	if want != end {
		return nil, fmt.Errorf("entry %d missing: %w", want, ErrCorrupt)
	}
	return dst, nil
}
