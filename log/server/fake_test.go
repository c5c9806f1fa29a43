package server

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"sync"
	"testing"

	"github.com/provlog/provlog/event"
	"github.com/provlog/provlog/log"
	"github.com/provlog/provlog/policy"
)

func TestMain(m *testing.M) {
	slog.SetDefault(slog.New(slog.DiscardHandler)) // internal errors are expected
	m.Run()
}

// *log.Log must satisfy Log with no adapter.
var _ Log = (*log.Log)(nil)

// fakeLog is a Log over a synthetic tree of size cp.Size whose entry i is
// fakeEntry(i, entrySize).
type fakeLog struct {
	cp        log.Checkpoint
	maxSize   int
	entrySize int   // size of each synthetic entry; 0 means 8
	err       error // if set, every method but Checkpoint fails with it
	// addBatch, if set, serves AddBatch.
	addBatch func(ctx context.Context, entries [][]byte) ([]log.AddResult, error)
	// leaves maps leaf hashes to indices for IndexOf.
	leaves map[string]uint64

	mu         sync.Mutex
	added      [][]byte // entries given to Add and AddBatch
	healthErr  error
	lastSearch searchQuery
}

func newFakeLog(size uint64) *fakeLog {
	return &fakeLog{
		cp:      log.Checkpoint{Size: size, Root: make([]byte, 32), Note: []byte(fmt.Sprintf("example.com/log\n%d\nroot\n\n— sig\n", size))},
		maxSize: 100,
		leaves:  map[string]uint64{},
	}
}

// fakeEntry is entry i of the synthetic tree: its index, padded to size.
func fakeEntry(i uint64, size int) []byte {
	if size == 0 {
		size = 8
	}
	e := make([]byte, size)
	binary.BigEndian.PutUint64(e, i)
	return e
}

func (f *fakeLog) Add(ctx context.Context, entry []byte) (log.AddResult, error) {
	res, err := f.AddBatch(ctx, [][]byte{entry})
	if err != nil {
		return log.AddResult{}, err
	}
	return res[0], nil
}

func (f *fakeLog) AddBatch(ctx context.Context, entries [][]byte) ([]log.AddResult, error) {
	if f.addBatch != nil {
		return f.addBatch(ctx, entries)
	}
	if f.err != nil {
		return nil, f.err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	res := make([]log.AddResult, len(entries))
	for i, e := range entries {
		res[i].Index = f.cp.Size + uint64(len(f.added))
		f.added = append(f.added, e)
	}
	return res, nil
}

func (f *fakeLog) numAdded() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.added)
}

func (f *fakeLog) Checkpoint() log.Checkpoint { return f.cp }

// IntegratedSize is the checkpoint's size: the fake publishes at once.
func (f *fakeLog) IntegratedSize() uint64 { return f.cp.Size }

// InclusionProof returns the proof [index, size] as single bytes.
func (f *fakeLog) InclusionProof(ctx context.Context, index, size uint64) ([][]byte, error) {
	if f.err != nil {
		return nil, f.err
	}
	if size > f.cp.Size || index >= size {
		return nil, fmt.Errorf("%w: index %d, size %d", log.ErrOutOfRange, index, size)
	}
	return [][]byte{{byte(index)}, {byte(size)}}, nil
}

func (f *fakeLog) IndexOf(ctx context.Context, leafHash []byte) (uint64, error) {
	if f.err != nil {
		return 0, f.err
	}
	i, ok := f.leaves[string(leafHash)]
	if !ok {
		return 0, fmt.Errorf("%w: leaf hash %x", log.ErrNotFound, leafHash)
	}
	return i, nil
}

// ConsistencyProof returns the proof [from, to] as single bytes.
func (f *fakeLog) ConsistencyProof(ctx context.Context, from, to uint64) ([][]byte, error) {
	if f.err != nil {
		return nil, f.err
	}
	if to > f.cp.Size || from > to {
		return nil, fmt.Errorf("%w: from %d, to %d", log.ErrOutOfRange, from, to)
	}
	return [][]byte{{byte(from)}, {byte(to)}}, nil
}

func (f *fakeLog) Entries(ctx context.Context, start, count uint64, fn func(uint64, []byte) error) error {
	if f.err != nil {
		return f.err
	}
	if start >= f.cp.Size || count > f.cp.Size-start {
		return fmt.Errorf("%w: entries [%d, +%d)", log.ErrOutOfRange, start, count)
	}
	for i := start; i < start+count; i++ {
		if err := fn(i, fakeEntry(i, f.entrySize)); err != nil {
			return err
		}
	}
	return nil
}

// Tile returns "tile L/N/W" for tiles with index < 1000000, else NotFound.
func (f *fakeLog) Tile(ctx context.Context, level, index uint64, width uint8) ([]byte, error) {
	if f.err != nil {
		return nil, f.err
	}
	if index >= 1000000 {
		return nil, fmt.Errorf("%w: tile %d/%d", log.ErrNotFound, level, index)
	}
	return fmt.Appendf(nil, "tile %d/%d/%d", level, index, width), nil
}

// EntryBundle returns "bundle N/W" repeated, for bundles with index <
// 1000000, else NotFound.
func (f *fakeLog) EntryBundle(ctx context.Context, index uint64, width uint8) ([]byte, error) {
	if f.err != nil {
		return nil, f.err
	}
	if index >= 1000000 {
		return nil, fmt.Errorf("%w: bundle %d", log.ErrNotFound, index)
	}
	var b []byte
	for range 100 {
		b = fmt.Appendf(b, "bundle %d/%d;", index, width)
	}
	return b, nil
}

// ServeEntryBundle serves EntryBundle, gzip-compressed if accepted.
func (f *fakeLog) ServeEntryBundle(ctx context.Context, index uint64, width uint8, acceptGzip bool) (log.ServedBundle, error) {
	b, err := f.EntryBundle(ctx, index, width)
	if err != nil || !acceptGzip {
		return log.ServedBundle{Data: b}, err
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return log.ServedBundle{Data: buf.Bytes(), Gzip: true}, nil
}

func (f *fakeLog) MaxEntrySize() int { return f.maxSize }

func (f *fakeLog) Healthy() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.healthErr
}

func (f *fakeLog) setHealth(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.healthErr = err
}

// searchQuery records the last Search call.
func (f *fakeLog) Search(ctx context.Context, kind byte, value string, from uint64, limit int) ([]log.SearchResult, uint64, error) {
	if f.err != nil {
		return nil, 0, f.err
	}
	f.mu.Lock()
	f.lastSearch = searchQuery{kind: kind, value: value, from: from, limit: limit}
	f.mu.Unlock()
	// Two results per page, three pages.
	if from >= 6 {
		return nil, 0, nil
	}
	res := []log.SearchResult{{Index: from, Type: "build", Entry: fakeEntry(from, 0)}, {Index: from + 1, Type: "sign", Entry: fakeEntry(from+1, 0)}}
	next := from + 2
	if next >= 6 {
		next = 0
	}
	return res, next, nil
}

// Signers knows no keyring, as a log with open admission.
func (f *fakeLog) Signers(context.Context, uint64, *event.Envelope) ([]*policy.Key, bool) {
	return nil, false
}

func (f *fakeLog) ProofBundle(ctx context.Context, index uint64) ([]byte, error) {
	if f.err != nil {
		return nil, f.err
	}
	if index >= f.cp.Size {
		return nil, fmt.Errorf("%w: index %d", log.ErrOutOfRange, index)
	}
	return fmt.Appendf(nil, "bundle %d", index), nil
}
