// Package storage is provlog's Pebble layout, and the only code that touches
// Pebble.
//
// # Key schema
//
// Every key starts with a one-byte table prefix. Integers are big-endian so
// that keys sort in index order.
//
//	'v'                         → schema version, uint32 (currently 4; a
//	                              store of schema 1 is migrated at Open,
//	                              see migrate.go, one of schema 2 is read
//	                              as it is, see bundlefile.go, and one of
//	                              schema 3 has its leaf-hash index moved
//	                              into a run, see leafindex.go)
//	'o'                         → the log's origin (checkpoint origin line)
//	's'                         → tree state: size uint64 || compact range
//	                              hashes (32 bytes each, as compact.Range.Hashes)
//	'c'                         → the latest signed checkpoint (signed note)
//	'p'                         → the latest published checkpoint when it is
//	                              held back for witnessing: the log's note
//	                              with the witnesses' cosignatures (or alone,
//	                              published fail-open); absent while the log
//	                              runs unwitnessed
//	'E' || bundle uint64        → full entry bundle: where its 256 entries,
//	                              in the bundle's encoding (uint16be length
//	                              || entry, each), are in its bundle file
//	                              (a bundleLoc, 16 bytes); under schema 2
//	                              the encoded entries themselves (see
//	                              chunks.go and bundlefile.go)
//	'P' || first uint64         → a chunk of the rightmost, partial bundle:
//	                              entries [first, first+n) as one round
//	                              wrote them, in the same encoding; deleted
//	                              when the bundle is written whole
//	'b' || index uint64         → the stored form of full entry bundle index
//	                              (entries [index*256, index*256+256)), as
//	                              PutBundle was given it: opaque to storage
//	                              (the caller's encoding, compressed or not).
//	                              Derived data, written unsynced and never
//	                              changed: a crash may lose it, and its
//	                              caller makes it again
//	'H' || start uint64         → the leaf hashes of entries [start,
//	                              start+n), 32 bytes each: one round's,
//	                              the leaf-hash index's journal until a
//	                              run in dir/leaves holds them, then
//	                              deleted (leafindex.go)
//	'L'                         → the leaf-hash index's manifest: its runs,
//	                              first uint64 || end uint64 || level
//	                              uint64 each
//	'R'                         → present when a damaged run was found
//	                              after Open: the next Open rebuilds the
//	                              leaf-hash index from the entries
//	'h' || leaf hash [32]byte   → index uint64: the leaf-hash index of
//	                              schema 3 and before, moved into a run
//	                              at Open
//	't' || level u8 || N uint64 → tlog-tiles hash tile: its hashes so far,
//	                              32 bytes each; the rightmost tile of a level
//	                              is rewritten as it grows, full tiles never
//	                              change. A full tile may be followed by its
//	                              inner levels 1–7 (254 hashes, as
//	                              merkle.TileTree.Inner), so that proofs need
//	                              not rehash it
//	'x' || kind u8 || len u16 || value || index uint64
//	                            → tag u8: the search index (IndexKey), e.g.
//	                              artifact digest → the events about it
//
// # Durability
//
// All the writes of one sequencing round — its entries (the location of
// a completed bundle, with the deletion of its chunks), its leaf hashes
// (one journal key), search-index keys, changed tiles, the new tree state and the checkpoint signed over it —
// go in one Pebble batch committed with Sync, after the bundles the round
// completed are written to their bundle file and synced (bundlefile.go).
// Entry bundles ('b') are the
// one exception: derived from synced entries, they are written unsynced,
// each on its own, and reach the disk with the next synced write. Pebble applies a batch
// atomically, so after a crash the store holds either all of a round or none
// of it, and the tree state always describes exactly the entries and tiles
// present. Reopening reads the state key and the rightmost tiles: its cost
// does not depend on the size of the log.
//
// # Performance
//
// Full bundles are written once, to bundle files, outside Pebble's WAL,
// memtables and compactions, and read with one ReadAt. Kept bundle forms
// (and a schema-2 store's full bundles) are separated into Pebble blob
// files (value separation, for the 'E' and 'b' tables only, and the
// schema-1 'e' while it is migrated), so compactions move references
// rather than entries; nothing in those tables is ever deleted, so blob
// files hold no garbage. A round writes one entry key per bundle it
// touches rather than one per entry.
//
// Pebble's write-ahead log is not preallocated and its memtables are
// 8 MiB, so that the store allocates on disk what it holds, and the WAL
// beside the log is at most about 32 MiB, in single-entry rounds as in
// large ones (see wal.go and TestDiskPerEntry).
//
// The leaf-hash index is not in Pebble's memtable: a round writes its
// hashes as one journal key, and a goroutine of the store keeps them in
// sorted run files merged four at a time (leafindex.go), so that its
// random keys cost neither skiplist inserts on the commit path nor
// compactions. An in-memory Bloom filter over every leaf hash (1.5 to 3
// bytes per entry, as its capacity doubles: about 22 MiB at 10M entries),
// filled in the background after Open, answers the dedup lookup of a new
// entry without reading the index; until it is filled, and for a hash it
// may hold, the index is read, so lookups are always exact.
package storage

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
)

const (
	schemaVersion = 4
	hashSize      = 32
	// fullTileSize is a full tile's hashes; innerSize its inner levels
	// (merkle.InnerSize), stored after them.
	fullTileSize = 256 * hashSize
	innerSize    = 254 * hashSize
)

var (
	keyVersion    = []byte{'v'}
	keyOrigin     = []byte{'o'}
	keyState      = []byte{'s'}
	keyCheckpoint = []byte{'c'}
	keyPublished  = []byte{'p'}
)

// ErrNotFound is returned (wrapped) for an absent entry, entry bundle, tile
// or leaf hash.
var ErrNotFound = errors.New("not found")

// ErrCorrupt is returned (wrapped) when stored data cannot be decoded.
var ErrCorrupt = errors.New("corrupt store")

// Options configures a Store. The zero value is ready to use.
type Options struct {
	// FS is the filesystem Pebble uses. If nil, it is the OS filesystem
	// (vfs.Default). Tests inject faults through it.
	FS vfs.FS
	// CacheBytes is Pebble's block cache size. If zero, 192 MiB, chosen
	// when the leaf-hash index was in Pebble (schema 3) to keep its
	// filter and index blocks and the hot tiles resident at 10M entries
	// with peak RSS under 512 MiB (see BENCHMARKS.md); it now holds the
	// tiles, bundle locations and search index.
	CacheBytes int64
	// Logger receives Pebble's own log lines. If nil, slog.Default().
	Logger *slog.Logger
}

// Store is a log's Pebble database. Its methods are safe for concurrent use.
// The log's sequencer is the only writer of the log (Commit, SetOrigin,
// SetPublished); PutBundle, called by readers, writes derived data only.
type Store struct {
	db *pebble.DB
	// filter holds every committed leaf hash once filterReady is set; until
	// then (while loadFilter fills it in the background after Open)
	// LookupLeaves reads the leaf-hash index for every hash.
	filter      *leafFilter
	filterReady atomic.Bool
	filterDone  chan struct{}
	// rebuiltIndex is set when Open rebuilt a damaged leaf-hash index:
	// crash and fault tests check that none of theirs needed it.
	rebuiltIndex bool
	// leaves is the leaf-hash index (leafindex.go); its worker runs until
	// stopIndex, then closes indexDone.
	leaves    *leafIndex
	stopIndex context.CancelFunc
	indexDone chan struct{}
	logger    *slog.Logger
	// failed is set once a commit hit a fatal Pebble error: Pebble's commit
	// pipeline is then unusable, and every later Commit fails.
	failed atomic.Bool
	// commitMu serializes Commits, and guards tail.
	commitMu sync.Mutex
	tail     tail
	// files holds the full bundles (see bundlefile.go); scratch, guarded
	// by commitMu, is the buffer the committer builds them in.
	files   *bundleFiles
	scratch []byte
}

// Open opens or creates the store in dir.
func Open(dir string, o Options) (*Store, error) {
	if o.CacheBytes == 0 {
		o.CacheBytes = 192 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	fs := o.FS
	if fs == nil {
		fs = vfs.Default
	}
	opts := &pebble.Options{
		// WAL files are not preallocated, so that they take on disk what
		// they hold (see wal.go).
		FS:                 noWALPreallocFS{fs},
		CacheSize:          o.CacheBytes,
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             pebbleLogger{o.Logger.With("component", "pebble")},
		// The WAL holds a memtable's worth of writes, and Pebble keeps
		// three more flushed WAL files to recycle (see wal.go): with
		// 8 MiB memtables that is at most about 32 MiB, where 64 MiB
		// ones kept 250 MiB. Under schema 3, 8 MiB made batched appends
		// slower (0.84× in BenchmarkAdd) and growing a log to 3M entries
		// slower (37-50 s against 30-38 s with 16 MiB): the memtables
		// then held the random leaf-hash keys. Since schema 4, 8 MiB and
		// 16 MiB grow a log to 3M entries in the same 20-21 s, batched
		// appends are as fast (BENCHMARKS.md), and the WAL is half.
		MemTableSize: 8 << 20,
		// Chosen when compactions were mostly of the leaf-hash index
		// (schema 3), whose random keys overlap every file below them: a
		// small base level and eight L0 files merged at a time rewrote it
		// less often, and a second compaction could run when Pebble fell
		// behind. Growing one log to 10M entries took 86-90 s with a
		// 256 MiB base level, 4 L0 files and one compaction, 72 s with
		// these (go run ./cmd/provlog-bench -mode scale). Since schema 4
		// the index is outside Pebble (leafindex.go) and the remaining
		// keys are mostly sequential; these were kept, not measured again.
		LBaseMaxBytes:              64 << 20,
		L0CompactionThreshold:      8,
		L0StopWritesThreshold:      24,
		CompactionConcurrencyRange: func() (int, int) { return 1, 2 },
	}
	// Point reads that miss (a schema-3 store's leaf-hash lookups, as it
	// was; now mostly the search index) are answered by a Bloom filter
	// without reading blocks.
	opts.Levels[0].FilterPolicy = bloom.FilterPolicy(10)
	// Entries and entry bundles go to blob files as they are flushed and
	// compactions then move only their references, not the values: the
	// LSM proper holds the small keys (tiles, locations, search index),
	// so compactions stay cheap and its filter and index blocks few as the
	// log grows. Full bundles and kept forms are never overwritten or
	// deleted, so blob files hold no garbage to rewrite; the other
	// tables, whose values are rewritten (the rightmost bundle's chunks,
	// tiles, checkpoints) or tiny, stay in the sstables, where compactions
	// drop what was deleted.
	opts.Experimental.ValueSeparationPolicy = func() pebble.ValueSeparationPolicy {
		return pebble.ValueSeparationPolicy{
			Enabled:               true,
			MinimumSize:           256,
			MaxBlobReferenceDepth: 10,
			RewriteMinimumAge:     5 * time.Minute,
			TargetGarbageRatio:    1.0,
		}
	}
	opts.Experimental.SpanPolicyFunc = entriesOnlySeparated
	opts.EnsureDefaults()
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("opening pebble at %s: %w", dir, err)
	}
	s := &Store{db: db, logger: o.Logger, filterDone: make(chan struct{})}
	// The version first: a store of an unknown schema gets no bundle
	// directory. Schema 1's migration writes its bundles into Pebble, as
	// schema 2 did, so it needs no files.
	if err := s.checkVersion(fs, dir); err != nil {
		db.Close()
		return nil, err
	}
	if s.files, err = openBundleFiles(fs, o.FS == nil, dir); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.checkBundleFile(); err != nil {
		s.files.close()
		db.Close()
		return nil, err
	}
	if err := s.startIndex(fs, dir); err != nil {
		s.files.close()
		db.Close()
		return nil, err
	}
	return s, nil
}

// startIndex opens the leaf-hash index, creates its filter with the
// hashes in memory, and starts the index's worker, which fills the filter
// from the runs in the background, so that opening a large log stays
// fast; every later Commit adds its own hashes.
func (s *Store) startIndex(fs vfs.FS, dir string) error {
	st, err := s.ReadState()
	if err != nil {
		return err
	}
	s.leaves, err = openLeafIndex(fs, dir, s.db, st.Size, s.logger)
	if err == nil {
		if _, merr := s.get(keyLeafRebuild); merr == nil {
			s.leaves.close()
			err = fmt.Errorf("a damaged run was found after the last Open: %w", ErrCorrupt)
		} else if !errors.Is(merr, ErrNotFound) {
			s.leaves.close()
			return merr
		}
	}
	if errors.Is(err, ErrCorrupt) && !errors.Is(err, errIndexAhead) {
		// The index is derived from the entries: rebuild it from them
		// rather than refuse a log whose entries are whole. (Integration
		// tests look for this message: none of theirs damages an index.)
		s.logger.Error("the leaf-hash (dedup) index is damaged; rebuilding it from the entries", "err", err, "entries", st.Size)
		if err := s.rebuildLeafIndex(fs, dir, st.Size); err != nil {
			return fmt.Errorf("rebuilding the damaged leaf-hash index: %w", err)
		}
		s.rebuiltIndex = true
		s.leaves, err = openLeafIndex(fs, dir, s.db, st.Size, s.logger)
	}
	if err != nil {
		return err
	}
	s.leaves.commit, s.leaves.failed = s.commitSync, s.failed.Load
	s.filter = newLeafFilter(st.Size + st.Size/2)
	pending := make([][]byte, 0, len(s.leaves.active))
	for h := range s.leaves.active {
		pending = append(pending, bytes.Clone(h[:]))
	}
	s.filter.add(pending)
	ctx, cancel := context.WithCancel(context.Background())
	s.stopIndex = cancel
	s.indexDone = make(chan struct{})
	go func() {
		defer close(s.indexDone)
		start := time.Now()
		s.leaves.run(ctx, s.filter, func(err error) {
			defer close(s.filterDone)
			if err != nil {
				if ctx.Err() == nil { // else closed: not a failure
					s.logger.Error("loading the leaf-hash filter failed; dedup lookups read the index", "err", err)
				}
				return
			}
			s.filterReady.Store(true)
			s.logger.Debug("leaf-hash filter loaded", "bytes", s.filter.bytes(), "took", time.Since(start))
		})
	}()
	return nil
}

// checkVersion writes the schema version into a new store, upgrades a
// store of schema 1 or 2, and refuses a store of another version. Schema 2
// needs nothing rewritten (its full bundles are read where they are, see
// bundlefile.go); schema 1 has its entries migrated (see migrate.go). The
// version is raised first, so that an older provlog, which could not read
// the bundles in files, refuses the store.
func (s *Store) checkVersion(fs vfs.FS, dir string) error {
	v, err := s.get(keyVersion)
	if errors.Is(err, ErrNotFound) {
		if err := s.recoverFatal(func() error {
			return s.db.Set(keyVersion, binary.BigEndian.AppendUint32(nil, schemaVersion), pebble.Sync)
		}); err != nil {
			return fmt.Errorf("writing schema version %d: %w", schemaVersion, err)
		}
		return nil
	}
	if err != nil {
		return err
	}
	if len(v) != 4 {
		return fmt.Errorf("store schema version %x, want %d: %w", v, schemaVersion, ErrCorrupt)
	}
	switch binary.BigEndian.Uint32(v) {
	case 1, 2:
		// Raised to 3 first, so that an older provlog, which could not
		// read the bundles in files, refuses the store; migrateLeafHashes
		// raises it to 4.
		if err := s.recoverFatal(func() error {
			return s.db.Set(keyVersion, binary.BigEndian.AppendUint32(nil, 3), pebble.Sync)
		}); err != nil {
			return fmt.Errorf("writing schema version 3: %w", err)
		}
		fallthrough
	case 3:
		if err := s.migrateV1(); err != nil {
			return err
		}
		return s.migrateLeafHashes(fs, dir)
	case schemaVersion:
		return nil
	}
	return fmt.Errorf("store schema version %d, want %d (or 1, 2 or 3, upgraded): %w", binary.BigEndian.Uint32(v), schemaVersion, ErrCorrupt)
}

// checkBundleFile refuses a store whose last full bundle is located past
// the end of its bundle file (a file truncated, replaced or lost since),
// so that an operator learns it at Open rather than from a reader.
func (s *Store) checkBundleFile() error {
	st, err := s.ReadState()
	if err != nil || st.Size < BundleSize {
		return err
	}
	last := st.Size/BundleSize - 1
	v, err := s.get(bundleEntriesKey(last))
	if errors.Is(err, ErrNotFound) {
		return fmt.Errorf("entry bundle %d of a tree of size %d is missing: %w", last, st.Size, ErrCorrupt)
	}
	if err != nil {
		return fmt.Errorf("reading the location of entry bundle %d: %w", last, err)
	}
	l, ok := decodeLoc(v)
	if !ok {
		return nil
	}
	name := s.files.name(last / segmentBundles)
	fi, err := s.files.fs.Stat(name)
	if oserrorNotExist(err) {
		return fmt.Errorf("entry bundle %d: bundle file %s is missing: %w", last, name, ErrCorrupt)
	}
	if err != nil {
		return fmt.Errorf("entry bundle %d: bundle file: %w", last, err)
	}
	if end := l.off + int64(l.n); fi.Size() < end {
		return fmt.Errorf("entry bundle %d ends at byte %d of bundle file %s, which holds %d: %w", last, end, name, fi.Size(), ErrCorrupt)
	}
	return nil
}

// Close closes the database.
func (s *Store) Close() error {
	s.stopIndex()
	if s.failed.Load() {
		// A write of the index's worker may be stuck in Pebble's commit
		// pipeline, which a fatal error leaves unusable.
		select {
		case <-s.indexDone:
		case <-time.After(5 * time.Second):
			s.logger.Error("closing a failed store without waiting for its leaf-hash index's worker")
		}
	} else {
		<-s.indexDone
	}
	return errors.Join(s.leaves.close(), s.db.Close(), s.files.close())
}

// LeafIndexBacklog returns how many entries the leaf-hash index holds in
// memory, not yet written to a run, and the error of the index's last
// attempt to write or merge runs if that attempt failed, and of a damaged
// run if one was found (to be rebuilt at the next Open); nil otherwise.
// Rounds are refused (ErrIndexBehind) once the backlog reaches its bound.
func (s *Store) LeafIndexBacklog() (uint64, error) { return s.leaves.backlog() }

// get returns a copy of the value of key, or ErrNotFound.
func (s *Store) get(key []byte) ([]byte, error) { return s.appendValue(nil, key) }

// appendValue appends key's value to dst (to a copy, if dst is nil), or
// returns ErrNotFound.
func (s *Store) appendValue(dst, key []byte) ([]byte, error) {
	v, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("reading key %q: %w", key[:1], err)
	}
	defer closer.Close()
	if dst == nil {
		return bytes.Clone(v), nil
	}
	return append(dst, v...), nil
}

// Origin returns the origin recorded in the store, or "" for a new store.
func (s *Store) Origin() (string, error) {
	v, err := s.get(keyOrigin)
	if errors.Is(err, ErrNotFound) {
		return "", nil
	}
	return string(v), err
}

// SetOrigin records the log's origin, synced. It is written once, when a
// log is created.
func (s *Store) SetOrigin(origin string) error {
	if err := s.recoverFatal(func() error { return s.db.Set(keyOrigin, []byte(origin), pebble.Sync) }); err != nil {
		return fmt.Errorf("writing origin: %w", err)
	}
	return nil
}

// entriesOnlySeparated is the span policy that lets Pebble separate the
// values of full bundles ('E', and schema 1's entries 'e') and kept bundle
// forms ('b') alone. Its spans end at each table prefix, so that every
// sstable Pebble writes holds one table: the sequential tables (entries,
// bundles, tiles) then do not share files with the randomly keyed
// leaf-hash index, and compactions can move them down a level without
// rewriting them.
func entriesOnlySeparated(start []byte) (pebble.SpanPolicy, []byte, error) {
	var table byte
	if len(start) > 0 {
		table = start[0]
	}
	end := []byte{table + 1}
	if table == 0xff {
		end = nil
	}
	if table == 'E' || table == 'b' || table == 'e' {
		return pebble.SpanPolicy{}, end, nil
	}
	return pebble.SpanPolicy{ValueStoragePolicy: pebble.ValueStorageLowReadLatency}, end, nil
}

func tileKey(level, index uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{'t', byte(level)}, index)
}

// pebbleLogger sends Pebble's log lines to slog; its chatty info lines at debug level.
//
// Pebble calls Fatalf when it cannot go on, and must not return from it: on
// a failed commit it would otherwise carry on as if the write had worked.
// Fatalf panics with a pebbleFatal. Store.Commit recovers that panic in its
// own goroutine and returns it as an ErrFatal error, so that the log stops
// writing but keeps serving what it published; a Fatalf in Pebble's
// background work (flushes, compactions, the manifest) ends the process,
// and a restart recovers from the last synced state.
type pebbleLogger struct{ l *slog.Logger }

// pebbleFatal is the panic value of pebbleLogger.Fatalf.
type pebbleFatal struct{ msg string }

// ErrFatal is returned (wrapped) by Commit when Pebble reports a fatal
// error: the store takes no more writes until it is reopened.
var ErrFatal = errors.New("fatal storage error")

func (p pebbleLogger) Infof(format string, args ...any) { p.l.Debug(fmt.Sprintf(format, args...)) }
func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...))
}
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error(msg)
	panic(pebbleFatal{msg})
}
