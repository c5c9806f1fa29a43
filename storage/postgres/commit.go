package postgres

import (
	"context"
	"crypto/sha256"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/provlog/provlog/storage"
)

// Commit writes a round in one transaction, fenced by the store's lease
// (see the package doc): the lease row re-read FOR SHARE and checked, the
// tree state compare-and-swapped on r.Start, the round's rows written,
// then COMMIT. When Commit returns nil the round is durable. A failed
// guard returns an error wrapping ErrFenced, and nothing was written; any
// other error may leave the round durable or not (a lost COMMIT): the
// caller stops writing and trusts only ReadState, as with storage.Store.
func (s *Store) Commit(r *storage.Round) error {
	if err := checkRound(r); err != nil {
		return err
	}
	l, ok := s.Lease()
	if !ok {
		return fmt.Errorf("committing round [%d, %d): %w: the store holds no lease", r.Start, r.State.Size, ErrFenced)
	}
	ctx, cancel := s.opContext()
	defer cancel()
	if err := s.inTx(ctx, func(tx pgx.Tx) error { return s.writeRound(ctx, tx, l, r) }); err != nil {
		if isCode(err, "23505") { // unique_violation: rows of the round exist
			err = fmt.Errorf("%w: %w", ErrFenced, err)
		}
		return fmt.Errorf("committing round [%d, %d): %w", r.Start, r.State.Size, err)
	}
	return nil
}

// checkRound refuses a malformed round before anything is written.
func checkRound(r *storage.Round) error {
	if len(r.Entries) != len(r.LeafHashes) || r.State.Size != r.Start+uint64(len(r.Entries)) {
		return fmt.Errorf("malformed round: %d entries, %d leaf hashes, start %d, new size %d",
			len(r.Entries), len(r.LeafHashes), r.Start, r.State.Size)
	}
	if _, err := dbIndex(r.State.Size); err != nil {
		return fmt.Errorf("malformed round: %w", err)
	}
	for _, h := range r.State.Range {
		if len(h) != hashSize {
			return fmt.Errorf("malformed round: compact range hash of %d bytes", len(h))
		}
	}
	for _, k := range r.Index {
		if k.Index < r.Start || k.Index >= r.State.Size {
			return fmt.Errorf("index key for entry %d outside round [%d, %d)", k.Index, r.Start, r.State.Size)
		}
		if len(k.Value) > storage.MaxIndexValue {
			return fmt.Errorf("index value of %d bytes", len(k.Value))
		}
	}
	for _, t := range r.Tiles {
		if t.Level > 255 {
			return fmt.Errorf("tile level %d", t.Level)
		}
		if _, err := dbIndex(t.Index); err != nil {
			return fmt.Errorf("tile %d/%d: %w", t.Level, t.Index, err)
		}
		if t.Inner != nil && (len(t.Hashes) != fullTileSize || len(t.Inner) != innerSize) {
			return fmt.Errorf("tile %d/%d of %d bytes with inner levels of %d bytes", t.Level, t.Index, len(t.Hashes), len(t.Inner))
		}
	}
	return nil
}

// writeRound is the body of Commit's transaction.
func (s *Store) writeRound(ctx context.Context, tx pgx.Tx, l Lease, r *storage.Round) error {
	// 1. The lease: still ours, unexpired, and locked against a takeover
	// until this transaction ends.
	if err := s.checkLease(ctx, tx, l); err != nil {
		return err
	}
	// 2. The tree state, compare-and-swapped on the round's start.
	if err := s.step(ctx, "cas", tx); err != nil {
		return err
	}
	var rng []byte
	for _, h := range r.State.Range {
		rng = append(rng, h...)
	}
	tag, err := tx.Exec(ctx, `UPDATE provlog_tree SET size = $1, compact_range = $2, checkpoint = $3 WHERE id = 1 AND size = $4`,
		int64(r.State.Size), rng, r.State.Checkpoint, int64(r.Start))
	if err != nil {
		return fmt.Errorf("swapping the tree state: %w", err)
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("%w: the stored tree is no longer of size %d", ErrFenced, r.Start)
	}
	// 3. The round's rows: entries, leaf hashes and index keys, each table
	// in one INSERT of unnested arrays, whose primary keys refuse rows
	// already written. Not COPY: a client that stalls in the middle of a
	// COPY (stopped, partitioned) leaves its backend waiting for the data
	// with no timeout that PostgreSQL honours there (it processes a
	// statement timeout only between messages), holding the lease row's
	// lock against every takeover; a stalled single statement leaves the
	// session idle in transaction, which idle_in_transaction_session_timeout
	// ends (the failover tests' SIGSTOP and partition scenarios hit it).
	if err := s.step(ctx, "entries", tx); err != nil {
		return err
	}
	if n := len(r.Entries); n > 0 {
		idx := make([]int64, n)
		for i := range idx {
			idx[i] = int64(r.Start) + int64(i)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO provlog_entries (idx, entry) SELECT * FROM unnest($1::BIGINT[], $2::BYTEA[])`, idx, r.Entries); err != nil {
			return fmt.Errorf("writing entries: %w", err)
		}
		if err := s.step(ctx, "leaves", tx); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO provlog_leaves (hash, idx) SELECT * FROM unnest($1::BYTEA[], $2::BIGINT[])`, r.LeafHashes, idx); err != nil {
			return fmt.Errorf("writing leaf hashes: %w", err)
		}
	}
	if err := s.step(ctx, "index", tx); err != nil {
		return err
	}
	if n := len(r.Index); n > 0 {
		kinds, tags := make([]int16, n), make([]int16, n)
		vhashes, values := make([][]byte, n), make([][]byte, n)
		idx := make([]int64, n)
		for i, k := range r.Index {
			vh := sha256.Sum256([]byte(k.Value))
			kinds[i], vhashes[i], values[i], idx[i], tags[i] = int16(k.Kind), vh[:], []byte(k.Value), int64(k.Index), int16(k.Tag)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO provlog_index (kind, vhash, value, idx, tag)
			SELECT * FROM unnest($1::SMALLINT[], $2::BYTEA[], $3::BYTEA[], $4::BIGINT[], $5::SMALLINT[])`,
			kinds, vhashes, values, idx, tags); err != nil {
			return fmt.Errorf("writing index keys: %w", err)
		}
	}
	if err := s.step(ctx, "tiles", tx); err != nil {
		return err
	}
	return writeTiles(ctx, tx, r.Tiles)
}

// writeTiles upserts tiles in one statement (one statement, for the
// reason the rows above are not written by COPY: a client stalling within
// a pipeline of statements leaves its backend waiting with no timeout).
func writeTiles(ctx context.Context, tx pgx.Tx, tiles []storage.Tile) error {
	if len(tiles) == 0 {
		return nil
	}
	levels, idx := make([]int16, len(tiles)), make([]int64, len(tiles))
	hashes, inner := make([][]byte, len(tiles)), make([][]byte, len(tiles))
	for i, t := range tiles {
		levels[i], idx[i], hashes[i], inner[i] = int16(t.Level), int64(t.Index), t.Hashes, t.Inner
	}
	if _, err := tx.Exec(ctx, `INSERT INTO provlog_tiles (level, idx, hashes, inner_levels)
		SELECT * FROM unnest($1::SMALLINT[], $2::BIGINT[], $3::BYTEA[], $4::BYTEA[])
		ON CONFLICT (level, idx) DO UPDATE SET hashes = excluded.hashes, inner_levels = excluded.inner_levels`,
		levels, idx, hashes, inner); err != nil {
		return fmt.Errorf("writing %d tiles: %w", len(tiles), err)
	}
	return nil
}

// SetPublished durably records the checkpoint published after witnessing
// (nil: removes the record), fenced by the store's lease as Commit is.
func (s *Store) SetPublished(cp []byte) error {
	l, ok := s.Lease()
	if !ok {
		return fmt.Errorf("writing the published checkpoint: %w: the store holds no lease", ErrFenced)
	}
	ctx, cancel := s.opContext()
	defer cancel()
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := s.checkLease(ctx, tx, l); err != nil {
			return err
		}
		var err error
		if cp == nil {
			_, err = tx.Exec(ctx, `DELETE FROM provlog_published WHERE id = 1`)
		} else {
			_, err = tx.Exec(ctx, `INSERT INTO provlog_published (id, checkpoint) VALUES (1, $1)
				ON CONFLICT (id) DO UPDATE SET checkpoint = excluded.checkpoint`, cp)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("writing the published checkpoint: %w", err)
	}
	return nil
}

// PutBundle stores data as the stored form of full entry bundle index. It
// is derived data, written by any replica without the lease; once stored
// it is never changed (a second PutBundle of the index is ignored).
func (s *Store) PutBundle(index uint64, data []byte) error {
	i, err := dbIndex(index)
	if err != nil {
		return fmt.Errorf("storing entry bundle: %w", err)
	}
	ctx, cancel := s.opContext()
	defer cancel()
	if _, err := s.pool.Exec(ctx, `INSERT INTO provlog_bundles (idx, data) VALUES ($1, $2) ON CONFLICT (idx) DO NOTHING`, i, data); err != nil {
		return fmt.Errorf("storing entry bundle %d: %w", index, err)
	}
	return nil
}
