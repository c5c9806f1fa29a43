package log

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"sync/atomic"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"

	"github.com/provlog/provlog/merkle"
	"github.com/provlog/provlog/storage"
)

// Served entry bundles. Monitors, witnesses, mirrors and auditors read the
// log through its tlog-tiles entry bundles, most of them accepting gzip. A
// bundle never changes once it exists at a width, so it is compressed at
// most once, on its first read, never per request:
//
//   - A full bundle's served form is kept in the store (storage Bundle,
//     PutBundle): the gzip stream, when it is smaller than the bundle by
//     at least an eighth, or else a marker saying the bundle is served as
//     it is (entries of random bytes do not compress, and gzip of them
//     would only cost every reader's CPU). Kept forms are derived data,
//     written without syncing: a crash loses at most some, which the next
//     read makes again.
//   - A partial bundle, which a monitor following the log reads while the
//     rightmost tile grows, is kept in a small memory cache by width; so
//     is a full bundle's served form made on its first read, which the
//     monitors and witnesses following the log then read in turn.
//   - Other reads of a full bundle go to the store, for the one response,
//     released once it is written (ServedBundle.Release): a bundle served
//     as it is, from a store that keeps it in a bundle file, as a section
//     of that file, which the HTTP server sends with sendfile(2) as a
//     static file server would; a kept gzip form, or a bundle of a store
//     without files, read into a pooled buffer.
//
// Concurrent first reads of one bundle compress it once (singleflight).
// A client that does not accept gzip gets the bundle as it is, assembled
// from the stored entries, without compression.

// Kept forms of a full bundle in the store: a tag byte, then the data.
const (
	bundleGzip byte = 'g' // the gzip stream of the bundle follows
	bundleRaw  byte = 'r' // nothing follows: the bundle does not compress
)

// bundleCacheSize is how many bundles' served forms the log keeps in
// memory: up to 16 MiB with 1 KiB entries.
const bundleCacheSize = 64

// ServedBundle is an entry bundle in the form it is best served in: in
// memory (Data), or a section of a file (Body) that the server sends
// without reading it.
type ServedBundle struct {
	// Data is the bundle (uint16be length || entry records), compressed
	// with gzip if Gzip is set; nil if the bundle is in a file.
	Data []byte
	// Gzip is set when the bundle is gzip-compressed, to be served with
	// Content-Encoding: gzip.
	Gzip bool
	// buf, if set, is the pooled buffer that holds Data (see Release).
	buf *[]byte
	// file, if set, holds the bundle: its n bytes from the file's offset;
	// sends counts it among the log's file sends until Release.
	file  *os.File
	n     int64
	sends *atomic.Int64
}

// Len is the bundle's length in bytes, as served.
func (sb *ServedBundle) Len() int64 {
	if sb.file != nil {
		return sb.n
	}
	return int64(len(sb.Data))
}

// Body returns a reader of the bundle as served, to be read once. For a
// bundle in a file it is an io.LimitedReader of an *os.File, which
// net/http's response writer (through io.Copy) sends with sendfile(2).
func (sb *ServedBundle) Body() io.Reader {
	if sb.file != nil {
		return &io.LimitedReader{R: sb.file, N: sb.n}
	}
	return bytes.NewReader(sb.Data)
}

// Release gives back the memory or closes the file that holds the bundle
// and clears sb: neither sb's Data or Body nor a copy's may be used after
// it, and it is to be called on one copy only. A server done writing a
// ServedBundle calls it; one of Data never released only leaves its
// memory to the collector, one of a file keeps a descriptor open until
// the collector finds it, and one of the log's maxFileSends for good.
func (sb *ServedBundle) Release() {
	if sb.buf != nil {
		putBuf(sb.buf)
	}
	if sb.file != nil {
		sb.file.Close()
		sb.sends.Add(-1)
	}
	*sb = ServedBundle{}
}

// bundleBufs holds buffers (*[]byte) into which the full bundles served
// from the store, in their kept forms and neither made nor cached now,
// are read: one per response in flight, where each response allocated its
// own 256 KiB and the collector cleared it (+42-67% bundles of random
// entries served, BenchmarkReads). Buffers grown past maxPooledBundle, by
// bundles of large entries, are left to the collector.
var bundleBufs sync.Pool

// pooledBuf returns an empty buffer from bundleBufs.
func pooledBuf() *[]byte {
	bp, _ := bundleBufs.Get().(*[]byte)
	if bp == nil {
		return new([]byte)
	}
	*bp = (*bp)[:0]
	return bp
}

// putBuf gives bp back to bundleBufs, unless it grew too large to keep.
func putBuf(bp *[]byte) {
	if cap(*bp) <= maxPooledBundle {
		bundleBufs.Put(bp)
	}
}

const maxPooledBundle = 1 << 20

// bundleKey names a served partial bundle: its index and width.
type bundleKey struct {
	index uint64
	width uint64
}

// bundles holds the log's served bundles; its methods are safe for
// concurrent use.
type bundles struct {
	flight singleflight.Group
	recent *lru.Cache[bundleKey, ServedBundle] // by width; full bundles as width 256
}

func newBundles() (*bundles, error) {
	c, err := lru.New[bundleKey, ServedBundle](bundleCacheSize)
	if err != nil {
		return nil, err
	}
	return &bundles{recent: c}, nil
}

// ServeEntryBundle returns entry bundle index at the given width (as for
// EntryBundle) in the form to serve it in: compressed, if acceptGzip and
// the bundle compresses, else as it is. It fails as EntryBundle does.
func (l *Log) ServeEntryBundle(ctx context.Context, index uint64, width uint8, acceptGzip bool) (ServedBundle, error) {
	w, err := l.tileWidth(merkle.TileID{Level: 0, Index: index}, width)
	if err != nil {
		return ServedBundle{}, err
	}
	if !acceptGzip {
		if w == merkle.TileWidth {
			bp := pooledBuf()
			sb, err := l.readFullBundle(index, bp)
			if err != nil {
				putBuf(bp)
			}
			return sb, err
		}
		raw, err := l.readBundle(nil, index, w)
		return ServedBundle{Data: raw}, err
	}
	key := bundleKey{index, w}
	if sb, ok := l.bundles.recent.Get(key); ok {
		return sb, nil
	}
	if w < merkle.TileWidth {
		return l.servePartialBundle(key)
	}
	sb, err := l.serveFullBundle(ctx, index)
	if err == nil && sb.buf == nil && sb.file == nil { // not made for this response alone
		l.bundles.recent.Add(key, sb)
	}
	return sb, err
}

// serveFullBundle returns the served form of full bundle index, from its
// kept form or made and kept now. One that was kept, read from the store
// into a pooled buffer for this response alone, is not cached: a cache of
// the bundles read last held few of those random readers ask for, and
// each cost an allocation, where the store's read is most of what serving
// one costs anyway.
func (l *Log) serveFullBundle(ctx context.Context, index uint64) (ServedBundle, error) {
	bp := pooledBuf()
	kept, err := l.store.Bundle(*bp, index)
	if err == nil {
		*bp = kept
		sb, err := l.fromKept(index, kept, bp)
		if err != nil {
			putBuf(bp)
		}
		return sb, err
	}
	putBuf(bp)
	if !errors.Is(err, storage.ErrNotFound) {
		return ServedBundle{}, fmt.Errorf("reading the kept form of entry bundle %d: %w", index, err)
	}
	v, err, _ := l.bundles.flight.Do(strconv.FormatUint(index, 10), func() (any, error) {
		// A flight that ended since the lookup above kept the form.
		if kept, err := l.store.Bundle(nil, index); err == nil {
			return l.fromKept(index, kept, nil)
		}
		raw, err := l.readBundle(nil, index, merkle.TileWidth)
		if err != nil {
			return ServedBundle{}, err
		}
		sb, kept := encodeBundle(raw)
		if err := l.store.PutBundle(index, kept); err != nil {
			// Only a cost: the next read compresses it again.
			l.cfg.Logger.WarnContext(ctx, "keeping the served form of an entry bundle", "index", index, "err", err)
		}
		return sb, nil
	})
	return v.(ServedBundle), err
}

// servePartialBundle returns the served form of a partial bundle, made
// now and kept in memory.
func (l *Log) servePartialBundle(key bundleKey) (ServedBundle, error) {
	v, err, _ := l.bundles.flight.Do(strconv.FormatUint(key.index, 10)+".p/"+strconv.FormatUint(key.width, 10), func() (any, error) {
		raw, err := l.readBundle(nil, key.index, key.width)
		if err != nil {
			return ServedBundle{}, err
		}
		sb, _ := encodeBundle(raw)
		l.bundles.recent.Add(key, sb)
		return sb, nil
	})
	return v.(ServedBundle), err
}

// fromKept returns the served form of full bundle index from its kept
// form, held in bp if bp is not nil; a bundle kept as it is is then read
// into bp, over its kept form (a marker), else into a new buffer.
func (l *Log) fromKept(index uint64, kept []byte, bp *[]byte) (ServedBundle, error) {
	switch {
	case len(kept) > 1 && kept[0] == bundleGzip:
		return ServedBundle{Data: kept[1:], Gzip: true, buf: bp}, nil
	case len(kept) == 1 && kept[0] == bundleRaw:
		return l.readFullBundle(index, bp)
	}
	return ServedBundle{}, fmt.Errorf("kept form of entry bundle %d (%d bytes): %w", index, len(kept), storage.ErrCorrupt)
}

// sampleSize is how much of a bundle is compressed first to see whether
// the whole is worth compressing: a bundle of random bytes then costs a
// thirtieth of compressing it all. Eight 1 KiB entries judge as the whole
// bundle does: gzip of 8 KiB of JSON-like entries, of DSSE envelopes (JSON
// around base64) and of random bytes came within 0.01-0.02 of the whole
// bundle's ratio (0.65, 0.77, 1.00), far from the threshold (0.875).
const sampleSize = 8 << 10

// encodeBundle compresses raw once and returns its served form and the
// form to keep in the store: gzip, if it saves at least an eighth.
func encodeBundle(raw []byte) (ServedBundle, []byte) {
	if len(raw) > 2*sampleSize {
		if gz := gzipped(nil, raw[:sampleSize]); !worthIt(len(gz), sampleSize) {
			return ServedBundle{Data: raw}, []byte{bundleRaw}
		}
	}
	kept := gzipped([]byte{bundleGzip}, raw)
	if gz := kept[1:]; worthIt(len(gz), len(raw)) {
		return ServedBundle{Data: gz, Gzip: true}, kept
	}
	return ServedBundle{Data: raw}, []byte{bundleRaw}
}

func worthIt(compressed, raw int) bool { return compressed < raw-raw/8 }

// gzipWriters holds gzip writers at BestSpeed for reuse: a new writer's
// state (about 1 MiB to allocate and clear) cost more than compressing
// an 8 KiB sample.
var gzipWriters = sync.Pool{New: func() any {
	zw, err := gzip.NewWriterLevel(nil, gzip.BestSpeed)
	if err != nil {
		panic(err) // BestSpeed is a valid level
	}
	return zw
}}

// gzipped appends the gzip stream of data, at BestSpeed, to dst.
func gzipped(dst, data []byte) []byte {
	buf := bytes.NewBuffer(dst)
	zw := gzipWriters.Get().(*gzip.Writer)
	zw.Reset(buf)
	zw.Write(data) // a bytes.Buffer does not fail
	zw.Close()
	zw.Reset(nil)
	gzipWriters.Put(zw)
	return buf.Bytes()
}

// EntryBundle returns tlog-tiles entry bundle index at the given width (as
// for Tile): each entry as a big-endian uint16 length and its bytes.
func (l *Log) EntryBundle(ctx context.Context, index uint64, width uint8) ([]byte, error) {
	w, err := l.tileWidth(merkle.TileID{Level: 0, Index: index}, width)
	if err != nil {
		return nil, err
	}
	return l.readBundle(nil, index, w)
}

// bundleOpener is a store whose full bundles can be sent from their
// files (storage.Store.OpenBundle).
type bundleOpener interface {
	OpenBundle(index uint64) (*os.File, int64, error)
}

// maxFileSends bounds the responses sending a bundle from its file at
// once, each holding a file descriptor (and, for a bundle no longer in
// the page cache, a thread blocked in sendfile on the disk) until it is
// written, outside the server's read slots; past it, bundles are read
// into pooled buffers under the slots, as before files.
const maxFileSends = 256

// readFullBundle returns full bundle index as the store holds it, for one
// response: as a section of its file, if the store can give one (bp is
// then given back), else read into the pooled buffer bp (see
// ServedBundle.Release) if it is not nil, else into a new one; the tree
// must have it.
func (l *Log) readFullBundle(index uint64, bp *[]byte) (ServedBundle, error) {
	if bp == nil {
		b, err := l.readBundle(nil, index, merkle.TileWidth)
		return ServedBundle{Data: b}, err
	}
	if o, ok := l.store.(bundleOpener); ok && l.fileSends.Add(1) <= maxFileSends {
		f, n, err := o.OpenBundle(index)
		if err == nil {
			putBuf(bp)
			return ServedBundle{file: f, n: n, sends: &l.fileSends}, nil
		}
		l.fileSends.Add(-1)
		// Not sendable (not yet checked, not in a file), or the file
		// could not be opened (out of descriptors): the read below, on
		// the store's own handle, serves it, or reports what is wrong.
		if errors.Is(err, storage.ErrCorrupt) {
			return ServedBundle{}, l.readErr(fmt.Sprintf("entry bundle %d", index), err)
		}
	} else if ok {
		l.fileSends.Add(-1)
	}
	b, err := l.readBundle((*bp)[:0], index, merkle.TileWidth)
	if err != nil {
		return ServedBundle{}, err
	}
	*bp = b
	return ServedBundle{Data: b, buf: bp}, nil
}

// readBundle appends the first w entries of bundle index as the store
// holds them to dst; the tree must have them.
func (l *Log) readBundle(dst []byte, index, w uint64) ([]byte, error) {
	b, err := l.store.AppendBundle(dst, index, w)
	if err != nil {
		return nil, l.readErr(fmt.Sprintf("entry bundle %d", index), err)
	}
	return b, nil
}
