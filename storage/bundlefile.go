package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"slices"
	"sync"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Full entry bundles in files (schema 3).
//
// A full bundle never changes, and it is most of what the log stores and
// most of what its readers fetch. Schema 2 kept it in Pebble: its records
// went through the WAL, then into a blob file at the next flush, and each
// read went through the block cache (a cgo allocation, cleared, and a
// checksum of the 256 KiB value) before being copied out. Schema 3 writes
// it once, to an append-only bundle file beside the database, and keeps in
// Pebble ('E' || bundle) only where it is: a bundleLoc of locSize bytes.
//
//   - Files: dir/bundles/NNNNNNNNNNNN.bundles, one per segmentBundles
//     bundles (256Ki entries), each bundle's records (as served) one after
//     the other, in bundle order.
//   - Durability: the round that completes bundles writes them at the end
//     of the file (WriteAt at the offset after the last committed bundle),
//     syncs the file's data (and the directory, for a file it created),
//     and only then commits its Pebble batch, which holds their locations,
//     with Sync. A location in Pebble is therefore always of synced bytes;
//     bytes past the last committed location (a round that crashed or
//     failed between the two syncs) belong to no bundle, and the next
//     round that completes a bundle writes over them.
//   - A failed file write or sync fails the store (ErrFatal), as a failed
//     WAL write does: after a failed fsync the page cache may hold bytes
//     the disk does not.
//   - Reads are a Pebble point read of the location and one ReadAt, whose
//     bytes are checked against the location's CRC-32C; once a bundle has
//     been read and checked in the process, OpenBundle gives its file
//     section to be sent without reading it (sendfile), unchecked.
//
// A schema-2 store is opened as it is: its full bundles stay in Pebble
// ('E' values of records, at least 2 bytes for each of 256 entries, so
// never locSize bytes), and the bundles completed after the upgrade go to
// files.

// segmentBundles is how many full bundles one bundle file holds.
const segmentBundles = 1024

// locSize is the size of an encoded bundleLoc: offset uint64 || length
// uint32 || CRC-32C (Castagnoli) uint32, big-endian.
const locSize = 16

// bundleLoc is where a full bundle's records are in its bundle file.
type bundleLoc struct {
	off int64
	n   uint32
	crc uint32
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func (l bundleLoc) encode() []byte {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, locSize), uint64(l.off))
	b = binary.BigEndian.AppendUint32(b, l.n)
	return binary.BigEndian.AppendUint32(b, l.crc)
}

// decodeLoc decodes an 'E' value that is a location; ok is false for a
// bundle stored in Pebble as records (schema 2).
func decodeLoc(v []byte) (l bundleLoc, ok bool) {
	if len(v) != locSize {
		return bundleLoc{}, false
	}
	return bundleLoc{
		off: int64(binary.BigEndian.Uint64(v)),
		n:   binary.BigEndian.Uint32(v[8:]),
		crc: binary.BigEndian.Uint32(v[12:]),
	}, true
}

// bundleFiles is a store's bundle files; its methods are safe for
// concurrent use, but only the committer (under Store.commitMu) writes.
//
// Readers and the writer have separate locks, so that a read never waits
// for a round's fsync. Each segment's file is opened for reading once and
// kept open until Close: one descriptor per segmentBundles bundles (256Ki
// entries), so 3,815 for a billion entries, well within the limit a Go
// process runs with (Go raises the soft RLIMIT_NOFILE to the hard limit
// at start; systemd's default hard limit is 524,288).
type bundleFiles struct {
	fs  vfs.FS
	dir string
	// osFS is set when fs is the OS filesystem, whose files OpenBundle
	// opens as *os.File; checked holds the bundles it has checked.
	osFS    bool
	checked bitset

	rmu     sync.RWMutex
	readers map[uint64]vfs.File // read-only handles, by segment
	closed  bool

	wmu    sync.Mutex
	writer vfs.File // the segment being written, read-write
	wseg   uint64
	// dirty is set while writer holds bytes not yet synced; created while
	// the directory is not known to be synced since writer was opened.
	dirty, created bool
}

// openBundleFiles opens (creating) the bundle directory in the store's
// directory dbDir. It syncs the directory and its parent every time,
// whether or not it created them: a process killed after creating either,
// or a segment file, before syncing its directory, may have left a name
// that a power loss would still lose.
func openBundleFiles(fs vfs.FS, osFS bool, dbDir string) (*bundleFiles, error) {
	dir := fs.PathJoin(dbDir, "bundles")
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating the bundle directory %s: %w", dir, err)
	}
	for _, d := range []string{dbDir, dir} {
		if err := syncDir(fs, d); err != nil {
			return nil, fmt.Errorf("syncing the directory %s: %w", d, err)
		}
	}
	return &bundleFiles{fs: fs, osFS: osFS, dir: dir, readers: map[uint64]vfs.File{}}, nil
}

func oserrorNotExist(err error) bool { return err != nil && errors.Is(err, os.ErrNotExist) }

func syncDir(fs vfs.FS, dir string) error {
	d, err := fs.OpenDir(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return err
	}
	return d.Close()
}

func (f *bundleFiles) name(seg uint64) string {
	return f.fs.PathJoin(f.dir, fmt.Sprintf("%012d.bundles", seg))
}

// write writes data at off in the file of segment seg, creating it if
// need be. Any error fails the store.
func (f *bundleFiles) write(seg uint64, off int64, data []byte) error {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	if f.writer == nil || f.wseg != seg {
		if f.dirty {
			// Rounds sync before they commit, so a writer moves on only
			// once synced; this keeps the invariant should one not.
			if err := f.writer.SyncData(); err != nil {
				return fmt.Errorf("syncing bundle file %s: %w", f.name(f.wseg), err)
			}
			f.dirty = false
		}
		if f.writer != nil {
			f.writer.Close()
			f.writer = nil
		}
		name := f.name(seg)
		w, err := f.fs.OpenReadWrite(name, vfs.WriteCategoryUnspecified)
		if err != nil {
			return fmt.Errorf("opening bundle file %s: %w", name, err)
		}
		// The file may have been created now, or by a process killed
		// before it synced the directory: either way its name is durable
		// once the directory is synced, which the next sync does.
		f.writer, f.wseg, f.created = w, seg, true
	}
	f.dirty = true
	if _, err := f.writer.WriteAt(data, off); err != nil {
		return fmt.Errorf("writing %d bytes at %d to bundle file %s: %w", len(data), off, f.name(seg), err)
	}
	return nil
}

// sync makes what write wrote durable: the file's data, then the
// directory if the file was opened since the last sync.
func (f *bundleFiles) sync() error {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	if f.dirty {
		if err := f.writer.SyncData(); err != nil {
			return fmt.Errorf("syncing bundle file %s: %w", f.name(f.wseg), err)
		}
		f.dirty = false
	}
	if f.created {
		if err := syncDir(f.fs, f.dir); err != nil {
			return fmt.Errorf("syncing the bundle directory %s: %w", f.dir, err)
		}
		f.created = false
	}
	return nil
}

// read appends full bundle index's records, at l, to dst, checked
// against l's CRC.
func (f *bundleFiles) read(dst []byte, index uint64, l bundleLoc) ([]byte, error) {
	seg := index / segmentBundles
	r, err := f.reader(seg)
	if err != nil {
		return nil, err
	}
	n := len(dst)
	dst = slices.Grow(dst, int(l.n))[:n+int(l.n)] // not cleared: ReadAt fills it
	got, err := r.ReadAt(dst[n:], l.off)
	if err != nil && !(errors.Is(err, io.EOF) && got == int(l.n)) {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("entry bundle %d: bundle file %s ends %d bytes into the bundle's %d at offset %d: %w",
				index, f.name(seg), got, l.n, l.off, ErrCorrupt)
		}
		return nil, fmt.Errorf("reading entry bundle %d from bundle file %s: %w", index, f.name(seg), err)
	}
	if c := crc32.Checksum(dst[n:], castagnoli); c != l.crc {
		return nil, fmt.Errorf("entry bundle %d: the %d bytes at offset %d of bundle file %s have CRC-32C %08x, want %08x: %w",
			index, l.n, l.off, f.name(seg), c, l.crc, ErrCorrupt)
	}
	return dst, nil
}

// errFilesClosed is returned by reads after close.
var errFilesClosed = errors.New("storage: bundle files closed")

// reader returns a read-only handle on segment seg's file, opened once.
func (f *bundleFiles) reader(seg uint64) (vfs.File, error) {
	f.rmu.RLock()
	r, ok := f.readers[seg]
	closed := f.closed
	f.rmu.RUnlock()
	switch {
	case closed:
		return nil, errFilesClosed
	case ok:
		return r, nil
	}
	f.rmu.Lock()
	defer f.rmu.Unlock()
	if f.closed {
		return nil, errFilesClosed
	}
	if r, ok := f.readers[seg]; ok {
		return r, nil
	}
	r, err := f.fs.Open(f.name(seg))
	if oserrorNotExist(err) {
		return nil, fmt.Errorf("bundle file %s is missing: %w", f.name(seg), ErrCorrupt)
	}
	if err != nil {
		return nil, fmt.Errorf("opening bundle file %s: %w", f.name(seg), err)
	}
	f.readers[seg] = r
	return r, nil
}

// close closes every handle; the readers' handles cannot be reopened
// after it.
func (f *bundleFiles) close() error {
	var errs []error
	f.rmu.Lock()
	f.closed = true
	for seg, r := range f.readers {
		errs = append(errs, r.Close())
		delete(f.readers, seg)
	}
	f.rmu.Unlock()
	f.wmu.Lock()
	if f.writer != nil {
		errs = append(errs, f.writer.Close())
		f.writer = nil
	}
	f.wmu.Unlock()
	return errors.Join(errs...)
}

// ErrNotInFile is returned (wrapped) by OpenBundle for a full bundle that
// is to be read with AppendBundle instead: one kept in Pebble by schema 2,
// any bundle of a store on another filesystem than the OS's
// (Options.FS), and a bundle not yet checked in this process.
var ErrNotInFile = errors.New("entry bundle not sendable from its bundle file")

// OpenBundle returns full entry bundle index as a section of its bundle
// file, for a server to send it from the file (net/http sends an
// io.LimitedReader of an *os.File with sendfile(2), without copying it
// through the process): f is a handle of its own, positioned at the
// bundle's first byte, which the caller closes; n is the bundle's length.
// The tree must have the bundle (the caller asks only below the tree
// size); ErrNotInFile says to read it with AppendBundle instead.
//
// sendfile cannot check what it sends, so a bundle is sent from its file
// only once AppendBundle has read it in this process and found its bytes
// to match its CRC-32C and to hold BundleSize records: its first serving
// is a read, the later ones are sent unchecked, as a static file server
// sends its files. Readers check each bundle against the tree in any
// case (its entries' hashes against the level-0 tile); a file cut short
// since the check sends fewer bytes than n, which the caller can see.
func (s *Store) OpenBundle(index uint64) (f *os.File, n int64, err error) {
	if !s.files.osFS {
		return nil, 0, fmt.Errorf("entry bundle %d, on another filesystem: %w", index, ErrNotInFile)
	}
	if !s.files.checked.has(index) {
		return nil, 0, fmt.Errorf("entry bundle %d, not read yet: %w", index, ErrNotInFile)
	}
	v, err := s.get(bundleEntriesKey(index))
	if err != nil {
		return nil, 0, fmt.Errorf("reading the location of entry bundle %d: %w", index, err)
	}
	l, ok := decodeLoc(v)
	if !ok { // not reached: a bundle in Pebble is never marked checked
		return nil, 0, fmt.Errorf("entry bundle %d, in Pebble: %w", index, ErrNotInFile)
	}
	name := s.files.name(index / segmentBundles)
	f, err = os.Open(name)
	if err != nil {
		if oserrorNotExist(err) {
			err = fmt.Errorf("%w: %w", err, ErrCorrupt)
		}
		return nil, 0, fmt.Errorf("opening bundle file %s for entry bundle %d: %w", name, index, err)
	}
	if _, err := f.Seek(l.off, io.SeekStart); err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("entry bundle %d at offset %d of bundle file %s: %w", index, l.off, name, err)
	}
	return f, int64(l.n), nil
}

// bitset is a set of bundle indexes, safe for concurrent use.
type bitset struct {
	mu   sync.RWMutex
	bits []uint64
}

func (b *bitset) has(i uint64) bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return i/64 < uint64(len(b.bits)) && b.bits[i/64]&(1<<(i%64)) != 0
}

func (b *bitset) add(i uint64) {
	if b.has(i) { // most adds are of bundles read before: no write lock
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if w := i/64 + 1; w > uint64(len(b.bits)) {
		b.bits = append(b.bits, make([]uint64, w-uint64(len(b.bits)))...)
	}
	b.bits[i/64] |= 1 << (i % 64)
}
