package storage

import (
	"crypto/sha256"
	"fmt"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// rebuildLeafIndex rebuilds the leaf-hash index of a tree of size entries
// from the entries themselves, for an index that Open found damaged (a
// run cut short, missing or unreadable, a manifest or journal that does
// not cover the tree) or that a fill marked so ('R', see markRebuild):
// the index is derived data, and a log whose entries are whole must not
// be refused for it. It removes every run file, writes runs of
// leafFlushEntries entries (level 0, merged later as flushes' runs are),
// syncs them and their directory, then commits in one synced batch the
// manifest listing them, the deletion of the journal and of the mark,
// which it set first: stopped part way, it is done again at the next
// Open. An entry that cannot be read fails it.
func (s *Store) rebuildLeafIndex(fs vfs.FS, dbDir string, size uint64) error {
	x := &leafIndex{fs: fs, dir: fs.PathJoin(dbDir, "leaves"), db: s.db, logger: s.logger}
	if err := fs.MkdirAll(x.dir, 0o755); err != nil {
		return fmt.Errorf("creating the leaf-hash index directory %s: %w", x.dir, err)
	}
	if err := syncDir(fs, dbDir); err != nil {
		return fmt.Errorf("syncing the directory %s: %w", dbDir, err)
	}
	// The mark first, synced: a rebuild stopped part way is done again
	// at the next Open even if the old manifest then looks whole (a run
	// recreated under its old name, torn).
	if err := writeRebuildMark(s.db, s.commitSync); err != nil {
		return fmt.Errorf("recording the rebuild: %w", err)
	}
	if err := x.removeUnlisted(); err != nil { // no runs listed: every file
		return err
	}
	began, reported := time.Now(), time.Now()
	var runs []*leafRun
	recs := make([]leafRec, 0, min(size, leafFlushEntries))
	h := sha256.New()
	for first := uint64(0); first < size; first += leafFlushEntries {
		end := min(first+leafFlushEntries, size)
		recs = recs[:0]
		if _, err := s.visitEntries(first, end, func(i uint64, e []byte) error {
			// RFC 6962 leaf hash: SHA-256(0x00 || entry).
			h.Reset()
			h.Write([]byte{0})
			h.Write(e)
			var r leafRec
			h.Sum(r.hash[:0])
			r.index = i
			recs = append(recs, r)
			return nil
		}); err != nil {
			return fmt.Errorf("reading entries [%d, %d): %w", first, end, err)
		}
		if err := x.writeRebuiltRun(first, end, recs); err != nil {
			return err
		}
		runs = append(runs, &leafRun{first: first, end: end})
		if time.Since(reported) > 5*time.Second {
			reported = time.Now()
			s.logger.Info("rebuilding the leaf-hash index", "done", end, "entries", size, "elapsed", time.Since(began).Round(time.Second))
		}
	}
	if err := syncDir(fs, x.dir); err != nil {
		return fmt.Errorf("syncing the leaf-hash index directory %s: %w", x.dir, err)
	}
	b := s.db.NewBatch()
	defer b.Close()
	if err := b.Set(keyLeafRuns, encodeManifest(runs), nil); err != nil {
		return fmt.Errorf("batching the leaf-hash manifest: %w", err)
	}
	if err := b.DeleteRange([]byte{'H'}, []byte{'H' + 1}, nil); err != nil {
		return fmt.Errorf("batching the deletion of the leaf-hash journal: %w", err)
	}
	if err := b.Delete(keyLeafRebuild, nil); err != nil {
		return fmt.Errorf("batching the deletion of the rebuild mark: %w", err)
	}
	if err := s.commitSync(b); err != nil {
		return fmt.Errorf("committing the rebuilt leaf-hash index: %w", err)
	}
	s.logger.Info("rebuilt the leaf-hash index from the entries", "entries", size, "runs", len(runs), "took", time.Since(began).Round(time.Millisecond))
	return nil
}

// writeRebuiltRun writes the run of entries [first, end) from their
// records, in any order: sorted, and of a hash there twice only its last
// index, as a flush keeps it.
func (x *leafIndex) writeRebuiltRun(first, end uint64, recs []leafRec) error {
	slices.SortFunc(recs, compareRec)
	w, err := x.createRun(first, end)
	if err != nil {
		return err
	}
	for i, r := range recs {
		if i+1 < len(recs) && recs[i+1].hash == r.hash {
			continue // a later index of the same hash follows
		}
		if err := w.add(r); err != nil {
			w.abort(x.fs)
			return err
		}
	}
	if err := w.finish(); err != nil {
		w.abort(x.fs)
		return err
	}
	return nil
}
