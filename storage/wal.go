package storage

import (
	"strings"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// What Pebble's write-ahead log takes on disk.
//
// Pebble keeps every write in the WAL until the memtable holding it is
// flushed. Left to its defaults the WAL took ten times what it held:
// after 10,000 single-entry rounds the store allocated 563 MiB (59 KB per
// 1 KiB entry) for 55 MiB of content, in eight WAL files of 70.4 MiB
// allocated each (TestDiskPerEntry, as the smoke test's 564 MB allocated
// for 57 MB after 43,000 entries). Two causes:
//
//   - Preallocation: Pebble fallocates every new WAL file to 110% of
//     MemTableSize (70.4 MiB for 64 MiB memtables; FALLOC_FL_KEEP_SIZE, so
//     the space is allocated while the apparent size stays small), while
//     the first memtables of a DB are small (256 KiB, doubling), so the
//     first WAL files held 0.2 to 48 MiB each. noWALPreallocFS makes
//     Preallocate a no-op for WAL files: they take what they hold.
//   - The memtable size: the WAL holds a memtable's worth of writes, and
//     Pebble keeps the last three flushed WAL files
//     (MemTableStopWritesThreshold+1) to overwrite rather than create new
//     ones, each as large as the memtable it held. Single-entry rounds rewrite the rightmost
//     tiles each time (5.5 KB of WAL per 1 KiB entry), so with 64 MiB
//     memtables four WAL files of 62.4 MiB stood beside 60 MB of log
//     after 50,000 such rounds. Open uses 8 MiB memtables: the WAL then
//     takes at most about 32 MiB.
//
// Recycling stays: a synced append to a recycled file, which already has
// its blocks and size, does not update the file's metadata, and turning it
// off made single-entry appends 10-15% slower (BenchmarkAdd).

// noWALPreallocFS is a vfs.FS whose WAL files (*.log) ignore Preallocate.
type noWALPreallocFS struct{ vfs.FS }

func (fs noWALPreallocFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, category)
	return noWALPrealloc(name, f), err
}

func (fs noWALPreallocFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, category)
	return noWALPrealloc(newname, f), err
}

func noWALPrealloc(name string, f vfs.File) vfs.File {
	if f == nil || !strings.HasSuffix(name, ".log") {
		return f
	}
	return noPreallocFile{f}
}

// noPreallocFile is a file whose Preallocate does nothing.
type noPreallocFile struct{ vfs.File }

func (noPreallocFile) Preallocate(offset, length int64) error { return nil }
