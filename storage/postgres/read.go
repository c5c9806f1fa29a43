package postgres

import (
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/provlog/provlog/storage"
)

// ReadState returns the stored tree state and the published checkpoint,
// read in one statement; the zero State for a new store.
func (s *Store) ReadState() (storage.State, error) {
	ctx, cancel := s.opContext()
	defer cancel()
	var size int64
	var rng []byte
	var st storage.State
	err := s.pool.QueryRow(ctx, `SELECT t.size, t.compact_range, t.checkpoint, p.checkpoint
		FROM provlog_tree t LEFT JOIN provlog_published p ON p.id = 1 WHERE t.id = 1`).
		Scan(&size, &rng, &st.Checkpoint, &st.Published)
	if err != nil {
		return storage.State{}, fmt.Errorf("reading the tree state: %w", err)
	}
	if size < 0 || len(rng)%hashSize != 0 || (size > 0) != (st.Checkpoint != nil) {
		return storage.State{}, fmt.Errorf("tree state of size %d, %d bytes of compact range, checkpoint %t: %w",
			size, len(rng), st.Checkpoint != nil, storage.ErrCorrupt)
	}
	st.Size = uint64(size)
	for h := rng; len(h) > 0; h = h[hashSize:] {
		st.Range = append(st.Range, h[:hashSize:hashSize])
	}
	return st, nil
}

// lookupChunk bounds the hashes of one lookup statement.
const lookupChunk = 8192

// LookupLeaves looks up leaf hashes in the leaf-hash index (WHERE hash =
// ANY($1)): exact, with no in-memory filter. For each hash it sets
// found[i] and, if found, indices[i]. Both slices must have len(hashes).
func (s *Store) LookupLeaves(hashes [][]byte, indices []uint64, found []bool) error {
	ctx, cancel := s.opContext()
	defer cancel()
	if err := s.step(ctx, "lookup", nil); err != nil {
		return fmt.Errorf("looking up leaf hashes: %w", err)
	}
	at := make(map[string]int64, len(hashes))
	for start := 0; start < len(hashes); start += lookupChunk {
		rows, err := s.pool.Query(ctx, `SELECT hash, idx FROM provlog_leaves WHERE hash = ANY($1)`, hashes[start:min(len(hashes), start+lookupChunk)])
		if err != nil {
			return fmt.Errorf("looking up leaf hashes: %w", err)
		}
		var h []byte
		var idx int64
		_, err = pgx.ForEachRow(rows, []any{&h, &idx}, func() error {
			at[string(h)] = idx
			return nil
		})
		if err != nil {
			return fmt.Errorf("looking up leaf hashes: %w", err)
		}
	}
	for i, h := range hashes {
		idx, ok := at[string(h)]
		found[i] = ok
		if ok {
			indices[i] = uint64(idx)
		}
	}
	return nil
}

// Tile returns a copy of the stored hashes of a tile, or ErrNotFound.
func (s *Store) Tile(level, index uint64) ([]byte, error) {
	var hashes []byte
	err := s.VisitTile(level, index, func(h, _ []byte) error {
		hashes = h
		return nil
	})
	return hashes, err
}

// VisitTile calls fn with the stored hashes of a tile and, for a full tile
// stored with them, its inner levels (nil otherwise), or returns an error
// wrapping storage.ErrNotFound.
func (s *Store) VisitTile(level, index uint64, fn func(hashes, inner []byte) error) error {
	if level > 255 || index > 1<<63-1 {
		return fmt.Errorf("tile %d/%d: %w", level, index, storage.ErrNotFound)
	}
	ctx, cancel := s.opContext()
	defer cancel()
	var hashes, inner []byte
	err := s.pool.QueryRow(ctx, `SELECT hashes, inner_levels FROM provlog_tiles WHERE level = $1 AND idx = $2`,
		int16(level), int64(index)).Scan(&hashes, &inner)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("tile %d/%d: %w", level, index, storage.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("reading tile %d/%d: %w", level, index, err)
	}
	if len(hashes) > fullTileSize || len(hashes)%hashSize != 0 || inner != nil && (len(hashes) != fullTileSize || len(inner) != innerSize) {
		return fmt.Errorf("tile %d/%d of %d bytes with %d bytes of inner levels: %w", level, index, len(hashes), len(inner), storage.ErrCorrupt)
	}
	return fn(hashes, inner)
}

// Entries calls fn with each stored entry of [start, start+count) in
// order. A missing entry is storage.ErrCorrupt: the caller only asks for
// indices below the stored size. The entry slice is valid only during the
// call.
func (s *Store) Entries(start, count uint64, fn func(index uint64, entry []byte) error) error {
	if count == 0 {
		return nil
	}
	end := start + count
	if end < start || end > 1<<63-1 {
		return fmt.Errorf("entries [%d, %d): %w", start, end, storage.ErrCorrupt)
	}
	ctx, cancel := s.opContext()
	defer cancel()
	rows, err := s.pool.Query(ctx, `SELECT idx, entry FROM provlog_entries WHERE idx >= $1 AND idx < $2 ORDER BY idx`,
		int64(start), int64(end))
	if err != nil {
		return fmt.Errorf("reading entries [%d, %d): %w", start, end, err)
	}
	defer rows.Close()
	want := start
	for rows.Next() {
		var idx int64
		var e []byte
		if err := rows.Scan(&idx, &e); err != nil {
			return fmt.Errorf("reading entry %d: %w", want, err)
		}
		if uint64(idx) != want {
			return fmt.Errorf("entry %d missing (next stored is %d): %w", want, idx, storage.ErrCorrupt)
		}
		if err := fn(want, e); err != nil {
			return err
		}
		want++
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading entries [%d, %d): %w", start, end, err)
	}
	if want != end {
		return fmt.Errorf("entry %d missing: %w", want, storage.ErrCorrupt)
	}
	return nil
}

// AppendBundle appends the first width entries of entry bundle index to
// dst in the bundle's encoding (each entry as a big-endian uint16 length
// and its bytes), read as Entries reads them.
func (s *Store) AppendBundle(dst []byte, index, width uint64) ([]byte, error) {
	if width == 0 || width > storage.BundleSize || index > (1<<63-1)/storage.BundleSize {
		return nil, fmt.Errorf("entry bundle %d of width %d: %w", index, width, storage.ErrNotFound)
	}
	err := s.Entries(index*storage.BundleSize, width, func(_ uint64, e []byte) error {
		dst = storage.AppendRecord(dst, e)
		return nil
	})
	return dst, err
}

// Bundle appends the stored form of full entry bundle index, as PutBundle
// stored it, to dst, or returns an error wrapping storage.ErrNotFound.
func (s *Store) Bundle(dst []byte, index uint64) ([]byte, error) {
	i, err := dbIndex(index)
	if err != nil {
		return nil, fmt.Errorf("entry bundle: %w: %w", err, storage.ErrNotFound)
	}
	ctx, cancel := s.opContext()
	defer cancel()
	var data []byte
	err = s.pool.QueryRow(ctx, `SELECT data FROM provlog_bundles WHERE idx = $1`, i).Scan(&data)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("entry bundle %d: %w", index, storage.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading entry bundle %d: %w", index, err)
	}
	if dst == nil {
		return data, nil
	}
	return append(dst, data...), nil
}

// HasIndex reports whether the search index holds exactly (kind, value,
// index) with the given tag.
func (s *Store) HasIndex(kind byte, value string, index uint64, tag byte) (bool, error) {
	if len(value) > storage.MaxIndexValue || index > 1<<63-1 {
		return false, nil
	}
	ctx, cancel := s.opContext()
	defer cancel()
	vh := sha256.Sum256([]byte(value))
	var got int16
	err := s.pool.QueryRow(ctx, `SELECT tag FROM provlog_index WHERE kind = $1 AND vhash = $2 AND idx = $3 AND value = $4`,
		int16(kind), vh[:], int64(index), []byte(value)).Scan(&got)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading the search index: %w", err)
	}
	return got == int16(tag), nil
}

// SearchIndex returns up to limit hits under (kind, value) with index >=
// from, in index order, and whether more follow.
func (s *Store) SearchIndex(kind byte, value string, from uint64, limit int) ([]storage.Hit, bool, error) {
	if len(value) > storage.MaxIndexValue || from > 1<<63-1 {
		return nil, false, nil
	}
	ctx, cancel := s.opContext()
	defer cancel()
	vh := sha256.Sum256([]byte(value))
	// One row more than asked tells whether more follow; a negative limit
	// is no limit.
	var lim any
	if limit >= 0 {
		lim = int64(limit) + 1
	}
	rows, err := s.pool.Query(ctx, `SELECT idx, tag FROM provlog_index WHERE kind = $1 AND vhash = $2 AND value = $3 AND idx >= $4
		ORDER BY idx LIMIT $5`, int16(kind), vh[:], []byte(value), int64(from), lim)
	if err != nil {
		return nil, false, fmt.Errorf("searching the index: %w", err)
	}
	var hits []storage.Hit
	var idx int64
	var tag int16
	_, err = pgx.ForEachRow(rows, []any{&idx, &tag}, func() error {
		if tag < 0 || tag > 255 {
			return fmt.Errorf("index tag %d: %w", tag, storage.ErrCorrupt)
		}
		hits = append(hits, storage.Hit{Index: uint64(idx), Tag: byte(tag)})
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("searching the index: %w", err)
	}
	if limit >= 0 && len(hits) > limit {
		return hits[:limit], true, nil
	}
	return hits, false, nil
}
