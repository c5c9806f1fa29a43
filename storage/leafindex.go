package storage

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// The leaf-hash index (schema 4), out of Pebble's memtable.
//
// Dedup looks every new entry's leaf hash up: hash → index. Under schema
// 3 and before, each entry wrote a 'h' || hash key in its round's batch.
// Those keys are random, so inserting them was 17% of the CPU of batched
// appends (the memtable's skiplist, on the committer's path) and most of
// Pebble's flushes and compactions; without them batched appends ran
// 1.3× faster (BENCHMARKS.md). Schema 4 keeps the index in three parts:
//
//   - The journal: a round writes its leaf hashes, in order, as one key
//     ('H' || start → 32 bytes per entry) in its synced batch: one
//     memtable insert per round, not one per entry. It is the index's
//     durable record until a run holds those entries.
//   - In memory: the hashes of every entry not yet in a run, in maps
//     (hash → index) filled as rounds commit and rebuilt from the journal
//     at Open.
//   - Runs: immutable files in dir/leaves, each the sorted (hash, index)
//     records of a contiguous range of entries. A goroutine of the store
//     writes the entries in memory as a run once there are
//     leafFlushEntries of them, and another merges runs leafMergeRuns at
//     a time as they accumulate, so that a lookup reads at most a few.
//     A failed write is logged and tried again; meanwhile the entries
//     stay in memory and in the journal. Memory is bounded: once the maps
//     hold leafBacklogRuns runs' worth, Commit waits for the flusher
//     (leafBacklogWait) and then refuses the round, writing nothing
//     (ErrIndexBehind), so that a log whose runs cannot be written stops
//     taking writes rather than running out of memory.
//
// Durability and crash safety: a run is written, synced and its directory
// synced before the batch that lists it (the manifest, 'L') is committed
// with Sync; that batch also deletes the journal keys of the entries the
// new run holds, which are durable by then (Commit puts a round's hashes
// in memory while the round syncs; a run waits for them). So the runs of the manifest and the journal always cover
// [0, size) exactly once, and a run file the manifest does not list (a
// flush or merge that crashed, or the inputs of a merge) is deleted at
// Open. Lookups are exact: the Bloom filter in front (leaffilter.go) only
// saves work.
//
// Run file format, integers big-endian:
//
//	records: n × (leaf hash [32]byte || index uint64), sorted by hash
//	         then index, in blocks of leafBlockRecords (the last partial)
//	fence:   per block, the first 8 bytes of its first hash || the
//	         block's CRC-32C (Castagnoli) uint32
//	trailer: n uint64 || first uint64 || end uint64 || CRC-32C of fence
//	         and the trailer's first 24 bytes uint32 || "pli1"
//
// A run covers entries [first, end) and holds n ≤ end - first records:
// fewer when a hash is there twice (an entry the log's dedup missed, or a
// schema-3 index, which kept one), only its last index. Open reads the
// fences (12 bytes per 256 entries) and keeps them in memory; a lookup
// reads one block (10 KiB), checked against its CRC.

const (
	leafRecordSize   = hashSize + 8
	leafBlockRecords = 256
	leafBlockSize    = leafRecordSize * leafBlockRecords
	leafFenceSize    = 12
	leafTrailerSize  = 32
	leafMagic        = "pli1"
	// leafMergeRuns is how many runs of one level a merge makes into one
	// of the next: a record is rewritten about log4(size/leafFlushEntries)
	// times (three times by 10M entries).
	leafMergeRuns = 4
)

// leafFlushEntries is how many entries in memory make a run: at most about
// 15 MiB of maps, twice over while a run is written. Tests lower it.
var leafFlushEntries uint64 = 1 << 17

// leafBacklogRuns is how many runs' worth of entries the maps may hold
// (about 2M entries, 150–250 MiB) before Commit waits for the flusher:
// only reached when run writes fail, since a run is written in well under
// a second and the maps hold at most two runs' worth otherwise.
// leafBacklogWait is how long it waits (two of the flusher's retries)
// before it refuses the round. leafRetry is how long the worker waits
// after a failed flush or merge. Tests lower them.
var (
	leafBacklogRuns uint64 = 16
	leafBacklogWait        = 10 * time.Second
	leafRetry              = 5 * time.Second
)

// errIndexAhead marks an index that covers entries past the tree: not a
// damaged index but a tree state that went back (entries that were
// committed are no longer in it), which Open refuses rather than rebuild
// the index over.
var errIndexAhead = errors.New("the leaf-hash index is ahead of the tree")

// ErrIndexBehind is returned (wrapped) by Commit when the leaf-hash
// index's runs cannot be written and the entries waiting for one fill the
// memory allowed them: nothing of the round is written, and the store
// takes rounds again once a run is written.
var ErrIndexBehind = errors.New("leaf-hash index behind")

var (
	keyLeafRuns    = []byte{'L'}
	keyLeafRebuild = []byte{'R'}
)

func journalKey(start uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{'H'}, start)
}

// leafRec is one record of a run.
type leafRec struct {
	hash  [hashSize]byte
	index uint64
}

func compareRec(a, b leafRec) int {
	// The first 8 bytes decide almost every comparison.
	if c := cmp.Compare(binary.BigEndian.Uint64(a.hash[:8]), binary.BigEndian.Uint64(b.hash[:8])); c != 0 {
		return c
	}
	if c := bytes.Compare(a.hash[8:], b.hash[8:]); c != 0 {
		return c
	}
	return cmp.Compare(a.index, b.index)
}

// leafRun is an open run file.
type leafRun struct {
	first, end uint64
	lvl        uint64
	count      uint64 // records
	name       string
	f          vfs.File
	// fence holds each block's first hash prefix; crcs its CRC-32C.
	fence []uint64
	crcs  []uint32
}

func (r *leafRun) n() uint64 { return r.count }

// level is the merge level of a run: 0 for a flush, one more than its
// inputs' for a merge. The runs, oldest first, are a counter in base
// leafMergeRuns: their levels never increase, at most leafMergeRuns-1 of
// each, so that however many entries each flush held, a record is
// rewritten once per level and a lookup reads at most one block per run.
func (r *leafRun) level() uint64 { return r.lvl }

// sizeLevel is the level of a run of n entries made by flushes of
// leafFlushEntries: the level given to a migrated index.
func sizeLevel(n uint64) uint64 {
	var l uint64
	for size := leafFlushEntries * leafMergeRuns; n >= size; size *= leafMergeRuns {
		l++
	}
	return l
}

// leafIndex is the leaf-hash index of a store: the maps of entries not
// yet in runs, and the runs. Commit adds to it (add); the worker (run)
// flushes and merges; lookups may run concurrently with both.
type leafIndex struct {
	fs     vfs.FS
	dir    string
	db     *pebble.DB
	logger *slog.Logger
	// commit commits a batch of the worker's with Sync, as Store.commitSync;
	// failed reports a store failed for good (Store.failed).
	commit func(*pebble.Batch) error
	failed func() bool

	// mu guards the maps. active holds [activeStart, end); frozen, while
	// a run is being made of it, [frozenStart, activeStart). spare is a
	// cleared map kept for the next freeze.
	mu                       sync.RWMutex
	active, frozen, spare    map[[hashSize]byte]uint64
	frozenStart, activeStart uint64
	end                      uint64
	// durable is the end of the last round committed; end is past it
	// while a round syncs. durableSig is signalled at each commit, and
	// when one fails.
	durable    uint64
	durableSig chan struct{}

	// runsMu guards runs, oldest first; a worker publishes a run before
	// it drops the map it came from, and lookups read the maps before the
	// runs, so an entry is never in neither.
	runsMu sync.RWMutex
	runs   []*leafRun
	closed bool // set by close, under runsMu
	// publishMu serializes the manifest's rewrites (publish).
	publishMu sync.Mutex

	// kick wakes the flusher, mergeKick the merger; working counts the
	// steps (a flush, the merges) under way; flushed is signalled after
	// each flush tried. flushFault and mergeFault hold the last flush's
	// and merge's error, nil once one succeeds.
	kick, mergeKick, flushed chan struct{}
	working                  atomic.Int32
	flushFault, mergeFault   atomic.Pointer[error]
	// damaged is the error of a damaged run the fill found (markRebuild).
	damaged atomic.Pointer[error]
}

// openLeafIndex opens the index of a store whose tree has size entries:
// its runs from the manifest, then the journal past them into memory.
// It removes run files the manifest does not list.
func openLeafIndex(fs vfs.FS, dbDir string, db *pebble.DB, size uint64, logger *slog.Logger) (*leafIndex, error) {
	x := &leafIndex{
		fs: fs, dir: fs.PathJoin(dbDir, "leaves"), db: db, logger: logger,
		active: map[[hashSize]byte]uint64{}, kick: make(chan struct{}, 1), mergeKick: make(chan struct{}, 1),
		flushed: make(chan struct{}, 1), durableSig: make(chan struct{}, 1),
	}
	if err := fs.MkdirAll(x.dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating the leaf-hash index directory %s: %w", x.dir, err)
	}
	for _, d := range []string{dbDir, x.dir} {
		if err := syncDir(fs, d); err != nil {
			return nil, fmt.Errorf("syncing the directory %s: %w", d, err)
		}
	}
	ok := false
	defer func() {
		if !ok {
			x.close()
		}
	}()
	ranges, err := x.readManifest()
	if err != nil {
		return nil, err
	}
	var w uint64
	for _, rg := range ranges {
		if rg[0] != w || rg[1] <= rg[0] {
			return nil, fmt.Errorf("leaf-hash index runs %v do not cover [0, %d) in order: %w", ranges, rg[1], ErrCorrupt)
		}
		r, err := x.openRun(rg[0], rg[1], rg[2])
		if err != nil {
			return nil, err
		}
		x.runs = append(x.runs, r)
		w = rg[1]
	}
	if w > size {
		return nil, fmt.Errorf("leaf-hash index runs cover [0, %d), beyond the tree's %d entries: %w: %w", w, size, errIndexAhead, ErrCorrupt)
	}
	if err := x.removeUnlisted(); err != nil {
		return nil, err
	}
	x.frozenStart, x.activeStart, x.end = w, w, w
	if err := x.loadJournal(size); err != nil {
		return nil, err
	}
	x.durable = size
	ok = true
	return x, nil
}

func (x *leafIndex) runName(first, end uint64) string {
	return x.fs.PathJoin(x.dir, fmt.Sprintf("%012d-%012d.run", first, end))
}

// readManifest returns the runs the manifest lists: first, end, level.
func (x *leafIndex) readManifest() ([][3]uint64, error) {
	v, closer, err := x.db.Get(keyLeafRuns)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the leaf-hash index manifest: %w", err)
	}
	defer closer.Close()
	if len(v)%24 != 0 {
		return nil, fmt.Errorf("leaf-hash index manifest of %d bytes: %w", len(v), ErrCorrupt)
	}
	var ranges [][3]uint64
	for ; len(v) > 0; v = v[24:] {
		ranges = append(ranges, [3]uint64{binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:]), binary.BigEndian.Uint64(v[16:])})
	}
	return ranges, nil
}

func encodeManifest(runs []*leafRun) []byte {
	b := make([]byte, 0, 24*len(runs))
	for _, r := range runs {
		b = binary.BigEndian.AppendUint64(b, r.first)
		b = binary.BigEndian.AppendUint64(b, r.end)
		b = binary.BigEndian.AppendUint64(b, r.lvl)
	}
	return b
}

// removeUnlisted deletes the files of the index directory that are not
// runs of the manifest: what a flush or merge left when it was stopped,
// and the inputs of a merge committed before they were deleted.
func (x *leafIndex) removeUnlisted() error {
	names, err := x.fs.List(x.dir)
	if err != nil {
		return fmt.Errorf("listing the leaf-hash index directory %s: %w", x.dir, err)
	}
	listed := map[string]bool{}
	for _, r := range x.runs {
		listed[x.fs.PathBase(r.name)] = true
	}
	removed := false
	for _, n := range names {
		if listed[n] {
			continue
		}
		if err := x.fs.Remove(x.fs.PathJoin(x.dir, n)); err != nil && !oserrorNotExist(err) {
			return fmt.Errorf("removing %s, not a run of the leaf-hash index: %w", n, err)
		}
		removed = true
	}
	if removed {
		return syncDir(x.fs, x.dir)
	}
	return nil
}

// loadJournal reads the journal, which must cover [end, size) exactly,
// into the active map.
func (x *leafIndex) loadJournal(size uint64) error {
	it, err := x.db.NewIter(&pebble.IterOptions{LowerBound: []byte{'H'}, UpperBound: []byte{'H' + 1}})
	if err != nil {
		return fmt.Errorf("reading the leaf-hash journal: %w", err)
	}
	defer it.Close()
	for valid := it.First(); valid; valid = it.Next() {
		k, v := it.Key(), it.Value()
		if len(k) != 9 || len(v) == 0 || len(v)%hashSize != 0 {
			return fmt.Errorf("leaf-hash journal key %x of %d bytes: %w", k, len(v), ErrCorrupt)
		}
		if start := binary.BigEndian.Uint64(k[1:]); start != x.end {
			return fmt.Errorf("leaf-hash journal at entry %d, where the index ends at %d: %w", start, x.end, ErrCorrupt)
		}
		x.addLocked(v)
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("reading the leaf-hash journal: %w", err)
	}
	if x.end > size {
		return fmt.Errorf("leaf-hash index and journal cover [0, %d) of a tree of %d entries: %w: %w", x.end, size, errIndexAhead, ErrCorrupt)
	}
	if x.end != size {
		return fmt.Errorf("leaf-hash index and journal cover [0, %d) of a tree of %d entries: %w", x.end, size, ErrCorrupt)
	}
	return nil
}

// addLocked adds hashes (32 bytes each, concatenated), the entries from
// x.end on, to the active map.
func (x *leafIndex) addLocked(hashes []byte) {
	for ; len(hashes) >= hashSize; hashes = hashes[hashSize:] {
		x.active[[hashSize]byte(hashes)] = x.end
		x.end++
	}
}

// size returns the number of entries the index holds: the store's size
// once the round committing, if any, is.
func (x *leafIndex) size() uint64 {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.end
}

// add adds a committed round's leaf hashes, starting at entry start, and
// wakes the worker when the maps hold a run's worth.
func (x *leafIndex) add(start uint64, hashes [][]byte) {
	x.mu.Lock()
	if start != x.end { // not reached: Commit checks the round's start (size)
		x.mu.Unlock()
		panic(fmt.Sprintf("storage: leaf hashes from %d added to an index ending at %d", start, x.end))
	}
	for _, h := range hashes {
		x.active[[hashSize]byte(h)] = x.end
		x.end++
	}
	full := x.end-x.activeStart >= leafFlushEntries
	x.mu.Unlock()
	if full {
		select {
		case x.kick <- struct{}{}:
		default:
		}
	}
}

// committed records that the rounds added so far are durable, or, with
// ok false, that the last one failed (and with it the store).
func (x *leafIndex) committed(ok bool) {
	if ok {
		x.mu.Lock()
		x.durable = x.end
		x.mu.Unlock()
	}
	select {
	case x.durableSig <- struct{}{}:
	default:
	}
}

// waitDurable waits until the rounds up to end are durable.
func (x *leafIndex) waitDurable(ctx context.Context, end uint64) error {
	for {
		x.mu.RLock()
		d := x.durable
		x.mu.RUnlock()
		if d >= end {
			return nil
		}
		if x.failed() {
			return fmt.Errorf("%w: the store failed before entries [%d, %d) were durable", ErrFatal, d, end)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-x.durableSig:
		}
	}
}

// admit returns nil once the maps hold fewer than leafBacklogRuns runs'
// worth of entries, waiting up to leafBacklogWait for the flusher to write
// one, and else an error wrapping ErrIndexBehind.
func (x *leafIndex) admit() error {
	limit := leafBacklogRuns * leafFlushEntries
	var timeout <-chan time.Time
	for {
		backlog, err := x.backlog()
		if backlog < limit {
			return nil
		}
		if timeout == nil {
			t := time.NewTimer(leafBacklogWait)
			defer t.Stop()
			timeout = t.C
			select {
			case x.kick <- struct{}{}:
			default:
			}
		}
		select {
		case <-x.flushed:
		case <-timeout:
			if err == nil {
				err = errors.New("no run written in time")
			}
			// The faults are described, not wrapped: the round is refused
			// for the backlog, whatever the runs' trouble is.
			return fmt.Errorf("%w: %d entries wait in memory for a run (at most %d are kept), the last attempt: %v",
				ErrIndexBehind, backlog, limit, err)
		}
	}
}

// backlog returns how many entries the maps hold, not yet in a run, and
// the last error of the flusher or the merger, if the last attempt of
// either failed.
func (x *leafIndex) backlog() (uint64, error) {
	x.mu.RLock()
	n := x.end - x.frozenStart
	x.mu.RUnlock()
	var errs []error
	if p := x.flushFault.Load(); p != nil {
		errs = append(errs, fmt.Errorf("writing a run: %w", *p))
	}
	if p := x.mergeFault.Load(); p != nil {
		errs = append(errs, fmt.Errorf("merging runs: %w", *p))
	}
	if p := x.damaged.Load(); p != nil {
		errs = append(errs, fmt.Errorf("a run is damaged, rebuilt at the next start: %w", *p))
	}
	return n, errors.Join(errs...)
}

// lookup returns the index of hash, the last one should it be there twice.
func (x *leafIndex) lookup(hash []byte, buf *[]byte) (uint64, bool, error) {
	k := [hashSize]byte(hash)
	x.mu.RLock()
	i, ok := x.active[k]
	if !ok && x.frozen != nil {
		i, ok = x.frozen[k]
	}
	x.mu.RUnlock()
	if ok {
		return i, true, nil
	}
	x.runsMu.RLock()
	defer x.runsMu.RUnlock()
	if x.closed {
		return 0, false, errIndexClosed
	}
	for j := len(x.runs) - 1; j >= 0; j-- {
		if i, ok, err := x.runs[j].lookup(k, buf); ok || err != nil {
			return i, ok, err
		}
	}
	return 0, false, nil
}

func (r *leafRun) lookup(k [hashSize]byte, buf *[]byte) (uint64, bool, error) {
	p := binary.BigEndian.Uint64(k[:8])
	// The blocks that may hold k: from the last one whose first prefix is
	// below p (k may be at its end) through those starting with p.
	b, _ := slices.BinarySearch(r.fence, p)
	b = max(b-1, 0)
	var idx uint64
	found := false
	for ; b < len(r.fence) && r.fence[b] <= p; b++ {
		recs, err := r.block(b, buf)
		if err != nil {
			return 0, false, err
		}
		n := len(recs) / leafRecordSize
		lo, hi := 0, n
		for lo < hi {
			m := int(uint(lo+hi) >> 1)
			if bytes.Compare(recs[m*leafRecordSize:m*leafRecordSize+hashSize], k[:]) < 0 {
				lo = m + 1
			} else {
				hi = m
			}
		}
		for ; lo < n && bytes.Equal(recs[lo*leafRecordSize:lo*leafRecordSize+hashSize], k[:]); lo++ {
			idx, found = binary.BigEndian.Uint64(recs[lo*leafRecordSize+hashSize:]), true
		}
		if lo < n { // a record past k in this block: no later block holds k
			break
		}
	}
	return idx, found, nil
}

// block reads block b into *buf, checked against its CRC.
func (r *leafRun) block(b int, buf *[]byte) ([]byte, error) {
	if cap(*buf) < leafBlockSize {
		*buf = make([]byte, leafBlockSize)
	}
	return r.readBlocks((*buf)[:leafBlockSize], b)
}

// readBlocks reads the blocks from b on into buf, as many as it holds
// (fewer at the end of the run), each checked against its CRC; it
// returns the part of buf read.
func (r *leafRun) readBlocks(buf []byte, b int) ([]byte, error) {
	off := int64(b) * leafBlockSize
	v := buf[:min(int64(len(buf)), int64(r.n())*leafRecordSize-off)]
	if _, err := r.f.ReadAt(v, off); err != nil {
		if errors.Is(err, io.EOF) {
			err = fmt.Errorf("%w: %w", err, ErrCorrupt)
		}
		return nil, fmt.Errorf("reading block %d of leaf-hash run %s: %w", b, r.name, err)
	}
	for rest, i := v, b; len(rest) > 0; i++ {
		blk := rest[:min(len(rest), leafBlockSize)]
		rest = rest[len(blk):]
		if c := crc32.Checksum(blk, castagnoli); c != r.crcs[i] {
			return nil, fmt.Errorf("block %d of leaf-hash run %s has CRC-32C %08x, want %08x: %w", i, r.name, c, r.crcs[i], ErrCorrupt)
		}
	}
	return v, nil
}

// openRun opens the run of [first, end) and reads its fence.
func (x *leafIndex) openRun(first, end, level uint64) (*leafRun, error) {
	r := &leafRun{first: first, end: end, lvl: level, name: x.runName(first, end)}
	f, err := x.fs.Open(r.name)
	if err != nil {
		if oserrorNotExist(err) {
			err = fmt.Errorf("%w: %w", err, ErrCorrupt)
		}
		return nil, fmt.Errorf("opening leaf-hash run %s: %w", r.name, err)
	}
	r.f = f
	if err := r.readFence(); err != nil {
		f.Close()
		return nil, err
	}
	return r, nil
}

func (r *leafRun) readFence() error {
	fi, err := r.f.Stat()
	if err != nil {
		return fmt.Errorf("leaf-hash run %s: %w", r.name, err)
	}
	if fi.Size() < leafTrailerSize {
		return fmt.Errorf("leaf-hash run %s of %d bytes: %w", r.name, fi.Size(), ErrCorrupt)
	}
	tr := make([]byte, leafTrailerSize)
	if _, err := r.f.ReadAt(tr, fi.Size()-leafTrailerSize); err != nil {
		return fmt.Errorf("reading the trailer of leaf-hash run %s: %w", r.name, err)
	}
	r.count = binary.BigEndian.Uint64(tr)
	if string(tr[28:]) != leafMagic || r.count > r.end-r.first ||
		binary.BigEndian.Uint64(tr[8:]) != r.first || binary.BigEndian.Uint64(tr[16:]) != r.end {
		return fmt.Errorf("leaf-hash run %s: bad trailer: %w", r.name, ErrCorrupt)
	}
	blocks := (r.count + leafBlockRecords - 1) / leafBlockRecords
	recBytes := int64(r.count) * leafRecordSize
	if want := recBytes + int64(blocks)*leafFenceSize + leafTrailerSize; fi.Size() != want {
		return fmt.Errorf("leaf-hash run %s of %d bytes, want %d for %d records: %w", r.name, fi.Size(), want, r.count, ErrCorrupt)
	}
	tail := make([]byte, fi.Size()-recBytes)
	if _, err := r.f.ReadAt(tail, recBytes); err != nil {
		return fmt.Errorf("reading the fence of leaf-hash run %s: %w", r.name, err)
	}
	if crc32.Checksum(tail[:len(tail)-8], castagnoli) != binary.BigEndian.Uint32(tail[len(tail)-8:]) {
		return fmt.Errorf("leaf-hash run %s: fence CRC mismatch: %w", r.name, ErrCorrupt)
	}
	r.fence, r.crcs = make([]uint64, blocks), make([]uint32, blocks)
	for b := range blocks {
		e := tail[b*leafFenceSize:]
		r.fence[b], r.crcs[b] = binary.BigEndian.Uint64(e), binary.BigEndian.Uint32(e[8:])
	}
	return nil
}

// runWriter writes a run file from records given in order.
type runWriter struct {
	f          vfs.File
	name       string
	block      []byte
	fence      []byte
	n          uint64
	sinceSync  int
	first, end uint64
}

func (x *leafIndex) createRun(first, end uint64) (*runWriter, error) {
	name := x.runName(first, end)
	f, err := x.fs.Create(name, vfs.WriteCategoryUnspecified)
	if err != nil {
		return nil, fmt.Errorf("creating leaf-hash run %s: %w", name, err)
	}
	return &runWriter{f: f, name: name, block: make([]byte, 0, leafBlockSize), first: first, end: end}, nil
}

// runSyncBytes is how much a run writer writes between syncs, so that a
// large merge does not leave one long sync to the end, in front of the
// committer's.
const runSyncBytes = 8 << 20

func (w *runWriter) add(r leafRec) error {
	if len(w.block) == 0 {
		w.fence = binary.BigEndian.AppendUint64(w.fence, binary.BigEndian.Uint64(r.hash[:8]))
	}
	w.block = append(w.block, r.hash[:]...)
	w.block = binary.BigEndian.AppendUint64(w.block, r.index)
	w.n++
	if len(w.block) == leafBlockSize {
		return w.flushBlock()
	}
	return nil
}

func (w *runWriter) flushBlock() error {
	w.fence = binary.BigEndian.AppendUint32(w.fence, crc32.Checksum(w.block, castagnoli))
	if _, err := w.f.Write(w.block); err != nil {
		return fmt.Errorf("writing leaf-hash run %s: %w", w.name, err)
	}
	w.sinceSync += len(w.block)
	w.block = w.block[:0]
	if w.sinceSync >= runSyncBytes {
		w.sinceSync = 0
		if err := w.f.SyncData(); err != nil {
			return fmt.Errorf("syncing leaf-hash run %s: %w", w.name, err)
		}
	}
	return nil
}

// finish writes the fence and trailer and syncs the file; the caller syncs
// the directory.
func (w *runWriter) finish() error {
	if w.n > w.end-w.first {
		return fmt.Errorf("leaf-hash run %s: %d records for entries [%d, %d)", w.name, w.n, w.first, w.end)
	}
	if len(w.block) > 0 {
		if err := w.flushBlock(); err != nil {
			return err
		}
	}
	t := binary.BigEndian.AppendUint64(w.fence, w.n)
	t = binary.BigEndian.AppendUint64(t, w.first)
	t = binary.BigEndian.AppendUint64(t, w.end)
	t = binary.BigEndian.AppendUint32(t, crc32.Checksum(t, castagnoli))
	t = append(t, leafMagic...)
	if _, err := w.f.Write(t); err != nil {
		return fmt.Errorf("writing leaf-hash run %s: %w", w.name, err)
	}
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("syncing leaf-hash run %s: %w", w.name, err)
	}
	err := w.f.Close()
	w.f = nil
	if err != nil {
		return fmt.Errorf("closing leaf-hash run %s: %w", w.name, err)
	}
	return nil
}

// abort closes and removes a run not finished.
func (w *runWriter) abort(fs vfs.FS) {
	if w.f != nil {
		w.f.Close()
	}
	fs.Remove(w.name)
}

// runReader reads a run's records in order, checking each block
// against its CRC.
type runReader struct {
	r     *leafRun
	buf   []byte
	block int // the next block to read
	recs  []byte
	// cur is the current record (recs[:leafRecordSize]), once next
	// has started.
	cur     leafRec
	started bool
}

// runReadBlocks is how many blocks a runReader reads at a time (640 KiB).
const runReadBlocks = 64

func (r *leafRun) reader() *runReader {
	return &runReader{r: r, buf: make([]byte, runReadBlocks*leafBlockSize)}
}

// chunk returns the next blocks' records, whole records in block order,
// or nil at the end; the slice is valid until the next call.
func (rr *runReader) chunk() ([]byte, error) {
	if rr.block >= len(rr.r.fence) {
		return nil, nil
	}
	v, err := rr.r.readBlocks(rr.buf, rr.block)
	if err != nil {
		return nil, err
	}
	rr.block += (len(v) + leafBlockSize - 1) / leafBlockSize
	return v, nil
}

// next moves to the next record, cur, reading on as needed; it returns
// false at the end.
func (rr *runReader) next() (bool, error) {
	if rr.started {
		rr.recs = rr.recs[leafRecordSize:]
	}
	rr.started = true
	if len(rr.recs) == 0 {
		var err error
		if rr.recs, err = rr.chunk(); err != nil || rr.recs == nil {
			return false, err
		}
	}
	rr.cur = leafRec{[hashSize]byte(rr.recs), binary.BigEndian.Uint64(rr.recs[hashSize:])}
	return true, nil
}

// run is the index's worker: it fills the filter from the runs (then
// calls filled with the outcome) and merges, in a goroutine, while it
// flushes, until ctx is done or the store fails. Merges wait for the fill,
// which reads the runs they remove; flushes wait for neither, so that a
// fill or a long merge does not hold entries in memory. A failed flush or
// merge is logged and tried again later; what it would have written stays
// in memory and the journal, so lookups stay exact.
func (x *leafIndex) run(ctx context.Context, filter *leafFilter, filled func(error)) {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		filled(x.fillRetrying(ctx, filter))
		x.loop(ctx, "merging leaf-hash index runs", x.mergeKick, &x.mergeFault, func() (bool, error) { return false, x.merge(ctx) })
	})
	x.loop(ctx, "writing a leaf-hash index run", x.kick, &x.flushFault, func() (bool, error) {
		did, err := x.flush(ctx)
		if did {
			select {
			case x.mergeKick <- struct{}{}:
			default:
			}
		}
		return did, err
	})
}

// loop calls step until it does nothing more, then waits for kick (or
// leafRetry after an error), until ctx is done or the store fails. It
// keeps the last step's error in fault (nil after a success).
func (x *leafIndex) loop(ctx context.Context, what string, kick <-chan struct{}, fault *atomic.Pointer[error], step func() (bool, error)) {
	for {
		var err error
		for did := true; did && err == nil; {
			if x.failed() {
				return // the store is reopened to write again
			}
			x.working.Add(1)
			did, err = step()
			x.working.Add(-1)
			if err != nil && ctx.Err() == nil {
				e := err // a copy: err is the loop's
				fault.Store(&e)
			} else if err == nil {
				fault.Store(nil)
			}
			select {
			case x.flushed <- struct{}{}:
			default:
			}
		}
		if x.failed() {
			return
		}
		if err != nil && ctx.Err() == nil {
			// Only the timer: a kick (every round, once the maps hold a
			// run's worth) would retry a persistent failure at once.
			x.logger.Error(what+" failed; its entries stay in memory and the journal, and it is tried again", "err", err, "retry", leafRetry)
			select {
			case <-ctx.Done():
				return
			case <-time.After(leafRetry):
			}
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-kick:
		}
	}
}

// leafFillTries is how many times the filter's fill is tried: merges
// wait for it (they close the runs it reads), so a read error that lasts
// must not hold them back for good.
const leafFillTries = 4

// fillRetrying fills the filter (fill), trying again leafRetry after a
// failure that may pass (a read error, not a damaged run: ErrCorrupt), at
// most leafFillTries times, until ctx is done or the store fails: until
// it succeeds every dedup lookup reads the runs. Adding a hash twice to
// the filter is harmless, so a retry starts over.
func (x *leafIndex) fillRetrying(ctx context.Context, filter *leafFilter) error {
	for try := 1; ; try++ {
		err := x.fill(ctx, filter)
		if errors.Is(err, ErrCorrupt) {
			x.markRebuild(err)
		}
		if err == nil || errors.Is(err, ErrCorrupt) || ctx.Err() != nil || x.failed() || try == leafFillTries {
			return err
		}
		x.logger.Error("loading the leaf-hash filter failed; dedup lookups read the index's runs until it loads, and it is tried again", "err", err, "retry", leafRetry)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(leafRetry):
		}
	}
}

// markRebuild records that a run is damaged (err): LeafIndexBacklog
// reports it, and a durable mark ('R') makes the next Open rebuild the
// index from the entries (rebuildLeafIndex). Until then lookups that
// read the damaged block fail.
func (x *leafIndex) markRebuild(err error) {
	x.damaged.Store(&err)
	x.logger.Error("a leaf-hash index run is damaged: dedup lookups that read it fail; the index is rebuilt from the entries at the next start", "err", err)
	if x.failed() {
		return // Pebble's commit pipeline may be unusable; Open finds the run
	}
	if serr := writeRebuildMark(x.db, x.commit); serr != nil {
		x.logger.Error("recording that the leaf-hash index is to be rebuilt failed", "err", serr)
	}
}

// writeRebuildMark commits the mark ('R') that makes Open rebuild the
// leaf-hash index, with commit (a synced commit).
func writeRebuildMark(db *pebble.DB, commit func(*pebble.Batch) error) error {
	b := db.NewBatch()
	defer b.Close()
	if err := b.Set(keyLeafRebuild, []byte{1}, nil); err != nil {
		return err
	}
	return commit(b)
}

// fill adds every hash of the runs to the filter; the maps' hashes are
// added by Open and Commit.
func (x *leafIndex) fill(ctx context.Context, filter *leafFilter) error {
	x.runsMu.RLock()
	runs := slices.Clone(x.runs)
	x.runsMu.RUnlock()
	batch := make([][]byte, 0, leafBlockRecords)
	for _, r := range runs {
		rr := r.reader()
		for {
			if err := ctx.Err(); err != nil {
				return err
			}
			recs, err := rr.chunk()
			if err != nil {
				return err
			}
			if recs == nil {
				break
			}
			for len(recs) > 0 {
				batch = batch[:0]
				for ; len(recs) > 0 && len(batch) < cap(batch); recs = recs[leafRecordSize:] {
					batch = append(batch, recs[:hashSize])
				}
				filter.add(batch)
			}
		}
	}
	return nil
}

// flush writes the entries in memory as a run, if there are enough, and
// reports whether it wrote one.
func (x *leafIndex) flush(ctx context.Context) (bool, error) {
	x.mu.Lock()
	if x.frozen == nil { // else a flush failed before: retry it
		if x.end-x.activeStart < leafFlushEntries {
			x.mu.Unlock()
			return false, nil
		}
		x.frozen, x.frozenStart = x.active, x.activeStart
		x.active, x.spare, x.activeStart = x.spare, nil, x.end
		if x.active == nil {
			x.active = make(map[[hashSize]byte]uint64, len(x.frozen))
		}
	}
	frozen, first, end := x.frozen, x.frozenStart, x.activeStart
	x.mu.Unlock()
	// Commit adds a round's hashes while the round syncs: the frozen map
	// may hold a round not yet durable. Its run, and the deletion of its
	// journal keys, wait until it is.
	if err := x.waitDurable(ctx, end); err != nil {
		return false, err
	}

	// frozen is not written while it is frozen: reading it here is safe
	// beside the lookups.
	recs := make([]leafRec, 0, len(frozen))
	for h, i := range frozen {
		recs = append(recs, leafRec{h, i})
	}
	slices.SortFunc(recs, compareRec)
	w, err := x.createRun(first, end)
	if err != nil {
		return false, err
	}
	for i, r := range recs {
		if i%(1<<16) == 0 && ctx.Err() != nil {
			w.abort(x.fs)
			return false, ctx.Err()
		}
		if err := w.add(r); err != nil {
			w.abort(x.fs)
			return false, err
		}
	}
	if err := w.finish(); err != nil {
		w.abort(x.fs)
		return false, err
	}
	if _, err := x.publish(ctx, w.name, first, end, 0, func(b *pebble.Batch) error {
		return b.DeleteRange(journalKey(first), journalKey(end), nil)
	}); err != nil {
		return false, err
	}
	x.mu.Lock()
	x.frozen, x.frozenStart = nil, x.activeStart
	x.mu.Unlock()
	if uint64(len(frozen)) <= 2*leafFlushEntries { // a map never shrinks: keep only one of about a run's size
		clear(frozen) // no lookup holds it now
		x.mu.Lock()
		x.spare = frozen
		x.mu.Unlock()
	}
	x.logger.Debug("leaf-hash index run written", "first", first, "end", end)
	return true, nil
}

// publish makes the run just written to name, of [first, end), part of
// the index: it syncs the directory, commits the manifest in which it
// replaces the runs that [first, end) covers (with extra's writes, in the
// same batch), and opens it. It returns the runs it replaced, for the
// caller to remove.
//
// A failure before the commit removes the file. A failed commit leaves
// it: Pebble may have written the batch to its WAL before the sync
// failed, and then the manifest naming it, and the deletion of its
// journal keys, are there at the next Open; a file the manifest does not
// name is removed then.
func (x *leafIndex) publish(ctx context.Context, name string, first, end, level uint64, extra func(*pebble.Batch) error) (_ []*leafRun, err error) {
	committing := false
	defer func() {
		if err != nil && !committing {
			x.fs.Remove(name)
		}
	}()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := syncDir(x.fs, x.dir); err != nil {
		return nil, fmt.Errorf("syncing the leaf-hash index directory %s: %w", x.dir, err)
	}
	r, err := x.openRun(first, end, level)
	if err != nil {
		return nil, err
	}
	// One publish at a time: flushes and merges both rewrite the manifest.
	x.publishMu.Lock()
	defer x.publishMu.Unlock()
	if x.failed() {
		r.f.Close()
		return nil, fmt.Errorf("%w: the store failed; its leaf-hash index stays in the journal", ErrFatal)
	}
	x.runsMu.RLock()
	var next, replaced []*leafRun
	for _, o := range x.runs {
		if o.first >= first && o.end <= end {
			replaced = append(replaced, o)
		} else {
			next = append(next, o)
		}
	}
	x.runsMu.RUnlock()
	next = append(next, r)
	slices.SortFunc(next, func(a, b *leafRun) int { return cmp.Compare(a.first, b.first) })
	b := x.db.NewBatch()
	defer b.Close()
	err = b.Set(keyLeafRuns, encodeManifest(next), nil)
	if err == nil && extra != nil {
		err = extra(b)
	}
	if err == nil {
		committing = true
		err = x.commit(b)
	}
	if err != nil {
		r.f.Close()
		return nil, fmt.Errorf("committing the leaf-hash index manifest: %w", err)
	}
	x.runsMu.Lock()
	if x.closed { // a failed store's Close, which did not wait (Store.Close)
		x.runsMu.Unlock()
		r.f.Close()
		return nil, errIndexClosed
	}
	x.runs = next
	x.runsMu.Unlock()
	return replaced, nil
}

// mergeable returns the first leafMergeRuns runs of the oldest level that
// has that many, or nil. A level's runs are consecutive (levels never
// increase from the oldest run on), and the run before them is of a
// higher level, so the merged run, one level up, keeps the order; flushes
// that publish while a merge runs only add runs of level 0 after it.
func mergeable(runs []*leafRun) []*leafRun {
	for i := 0; i+leafMergeRuns <= len(runs); {
		j := i + 1
		for j < len(runs) && runs[j].level() == runs[i].level() {
			j++
		}
		if j-i >= leafMergeRuns {
			return slices.Clone(runs[i : i+leafMergeRuns])
		}
		i = j
	}
	return nil
}

// merge merges runs while some level has leafMergeRuns of them.
func (x *leafIndex) merge(ctx context.Context) error {
	for {
		x.runsMu.RLock()
		in := mergeable(x.runs)
		x.runsMu.RUnlock()
		if in == nil {
			return nil
		}
		if err := x.mergeRuns(ctx, in); err != nil {
			return err
		}
	}
}

func (x *leafIndex) mergeRuns(ctx context.Context, in []*leafRun) error {
	first, end := in[0].first, in[len(in)-1].end
	began := time.Now()
	w, err := x.createRun(first, end)
	if err != nil {
		return err
	}
	if err := mergeInto(ctx, w, in); err != nil {
		w.abort(x.fs)
		return err
	}
	if err := w.finish(); err != nil {
		w.abort(x.fs)
		return err
	}
	replaced, err := x.publish(ctx, w.name, first, end, in[0].lvl+1, nil)
	if err != nil {
		return err
	}
	for _, r := range replaced {
		r.f.Close()
		if err := x.fs.Remove(r.name); err != nil {
			x.logger.Warn("removing a merged leaf-hash run failed; the next Open removes it", "run", r.name, "err", err)
		}
	}
	x.logger.Debug("leaf-hash index runs merged", "runs", len(in), "first", first, "end", end, "took", time.Since(began))
	return nil
}

// mergeInto writes the records of runs, in order, to w.
func mergeInto(ctx context.Context, w *runWriter, runs []*leafRun) error {
	var live []*runReader
	// advance moves rr on, keeping it in live while it has records.
	advance := func(rr *runReader) error {
		ok, err := rr.next()
		if err == nil && !ok {
			live = slices.DeleteFunc(live, func(o *runReader) bool { return o == rr })
		}
		return err
	}
	for _, r := range runs {
		live = append(live, r.reader())
	}
	for _, rr := range slices.Clone(live) {
		if err := advance(rr); err != nil {
			return err
		}
	}
	for n := 0; len(live) > 0; n++ {
		if n%(1<<16) == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		m := live[0]
		for _, rr := range live[1:] {
			if compareRec(rr.cur, m.cur) < 0 {
				m = rr
			}
		}
		if err := w.add(m.cur); err != nil {
			return err
		}
		if err := advance(m); err != nil {
			return err
		}
	}
	return nil
}

// errIndexClosed is returned by lookups after Close.
var errIndexClosed = errors.New("storage: leaf-hash index closed")

// close closes the runs' files; lookups fail after it.
func (x *leafIndex) close() error {
	x.runsMu.Lock()
	defer x.runsMu.Unlock()
	x.closed = true
	var errs []error
	for _, r := range x.runs {
		errs = append(errs, r.f.Close())
	}
	x.runs = nil
	return errors.Join(errs...)
}

// migrateLeafHashes moves a schema-3 store's leaf-hash index ('h' || hash
// → index, every entry's key in the tree's batches) into one run covering
// [0, size) (none for an empty tree), at the level flushes would have
// made it, then commits, in one synced batch, the manifest listing it,
// the deletion of the 'h' keys and schema version 4. A migration stopped
// before that batch leaves an unlisted run file, which the next Open
// removes before it migrates again. The 'h' keys are read in hash order,
// the run's order.
func (s *Store) migrateLeafHashes(fs vfs.FS, dbDir string) error {
	if _, err := s.get(keyLeafRuns); err == nil {
		return fmt.Errorf("both a schema-3 leaf-hash index and a schema-4 manifest: %w", ErrCorrupt)
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	st, err := s.ReadState()
	if err != nil {
		return err
	}
	x := &leafIndex{fs: fs, dir: fs.PathJoin(dbDir, "leaves"), db: s.db, logger: s.logger}
	if err := fs.MkdirAll(x.dir, 0o755); err != nil {
		return fmt.Errorf("creating the leaf-hash index directory %s: %w", x.dir, err)
	}
	if err := syncDir(fs, dbDir); err != nil { // the directory's name, before a manifest names a run in it
		return fmt.Errorf("syncing the directory %s: %w", dbDir, err)
	}
	if err := x.removeUnlisted(); err != nil {
		return err
	}
	s.logger.Info("migrating the store to schema 4: the leaf-hash index out of Pebble", "entries", st.Size)
	began, reported := time.Now(), time.Now()
	w, err := x.createRun(0, st.Size)
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			w.abort(fs)
		}
	}()
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{'h'}, UpperBound: []byte{'h' + 1}})
	if err != nil {
		return fmt.Errorf("reading the schema-3 leaf-hash index: %w", err)
	}
	defer it.Close()
	for valid := it.First(); valid; valid = it.Next() {
		k, v := it.Key(), it.Value()
		if len(k) != 1+hashSize || len(v) != 8 || binary.BigEndian.Uint64(v) >= st.Size {
			return fmt.Errorf("leaf-hash index key %x → %x in a tree of %d entries: %w", k, v, st.Size, ErrCorrupt)
		}
		if err := w.add(leafRec{[hashSize]byte(k[1:]), binary.BigEndian.Uint64(v)}); err != nil {
			return err
		}
		if time.Since(reported) > 5*time.Second {
			reported = time.Now()
			s.logger.Info("migrating the leaf-hash index", "done", w.n, "of", st.Size)
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("reading the leaf-hash index: %w", err)
	}
	if err := w.finish(); err != nil {
		return err
	}
	if err := syncDir(fs, x.dir); err != nil {
		return fmt.Errorf("syncing the leaf-hash index directory %s: %w", x.dir, err)
	}
	b := s.db.NewBatch()
	defer b.Close()
	var runs []*leafRun
	if st.Size > 0 {
		runs = []*leafRun{{first: 0, end: st.Size, lvl: sizeLevel(st.Size)}}
	} else {
		w.abort(fs) // an empty tree has no run
	}
	if err := b.Set(keyLeafRuns, encodeManifest(runs), nil); err != nil {
		return fmt.Errorf("batching the leaf-hash manifest: %w", err)
	}
	if err := b.DeleteRange([]byte{'h'}, []byte{'h' + 1}, nil); err != nil {
		return fmt.Errorf("batching the deletion of the schema-3 leaf-hash index: %w", err)
	}
	if err := b.Set(keyVersion, binary.BigEndian.AppendUint32(nil, schemaVersion), nil); err != nil {
		return fmt.Errorf("batching schema version %d: %w", schemaVersion, err)
	}
	if err := s.commitSync(b); err != nil {
		return fmt.Errorf("committing the schema-4 leaf-hash index: %w", err)
	}
	ok = true
	s.logger.Info("migrated the store to schema 4", "hashes", w.n, "took", time.Since(began))
	return nil
}
