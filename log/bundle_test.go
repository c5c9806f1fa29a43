package log

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/transparency-dev/tessera/api"

	"github.com/provlog/provlog/storage"
)

// jsonEntry is an entry that compresses, like a DSSE envelope.
func jsonEntry(i int) []byte {
	return fmt.Appendf(nil, `{"payloadType":"application/vnd.in-toto+json","payload":"%0400d","signatures":[{"keyid":"ci","sig":"%d"}]}`, i, i*7919)
}

// randomEntry is 1 KiB of random bytes, which does not compress.
func randomEntry(i int) []byte {
	r := rand.New(rand.NewPCG(uint64(i), 1))
	b := make([]byte, 1024)
	for j := range b {
		b[j] = byte(r.Uint32())
	}
	return b
}

func addEntries(t *testing.T, e *testEnv, n int, entry func(int) []byte) [][]byte {
	t.Helper()
	var all [][]byte
	for i := range n {
		all = append(all, entry(i))
	}
	if _, err := e.log.AddBatch(context.Background(), all); err != nil {
		t.Fatal(err)
	}
	return all
}

// checkBundle checks a served bundle against the entries, parsing it with
// Tessera's api.EntryBundle.
func checkBundle(t *testing.T, sb ServedBundle, want [][]byte) {
	t.Helper()
	data := sb.Data
	if sb.file != nil {
		var err error
		if data, err = io.ReadAll(sb.Body()); err != nil || int64(len(data)) != sb.Len() {
			t.Fatalf("reading the bundle from its file: %d of %d bytes, %v", len(data), sb.Len(), err)
		}
	}
	if sb.Gzip {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		if data, err = io.ReadAll(zr); err != nil {
			t.Fatal(err)
		}
	}
	var eb api.EntryBundle
	if err := eb.UnmarshalText(data); err != nil {
		t.Fatal(err)
	}
	if len(eb.Entries) != len(want) {
		t.Fatalf("bundle of %d entries, want %d", len(eb.Entries), len(want))
	}
	for i := range want {
		if !bytes.Equal(eb.Entries[i], want[i]) {
			t.Fatalf("bundle entry %d differs", i)
		}
	}
}

// TestServeEntryBundleCompressesOnce: a full bundle of entries that
// compress is served gzipped, compressed and kept once however many
// readers ask at once, then served from the store; a client without gzip
// gets it as it is.
func TestServeEntryBundleCompressesOnce(t *testing.T) {
	e := newEnv(t)
	entries := addEntries(t, e, 300, jsonEntry)
	ctx := context.Background()
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			sb, err := e.log.ServeEntryBundle(ctx, 0, 0, true)
			if err != nil || !sb.Gzip {
				t.Errorf("ServeEntryBundle: gzip %t, %v", sb.Gzip, err)
				return
			}
			checkBundle(t, sb, entries[:256])
		})
	}
	wg.Wait()
	if n := e.faults.puts(); n != 1 {
		t.Fatalf("%d bundles kept for 16 concurrent first reads, want 1", n)
	}
	kept, err := e.store.Bundle(nil, 0)
	if err != nil || kept[0] != bundleGzip || len(kept) > 256*len(entries[0])/2 {
		t.Fatalf("kept form: %d bytes, %v", len(kept), err)
	}
	// From memory, then, once other bundles pushed it out, from the store.
	for range 2 {
		sb, err := e.log.ServeEntryBundle(ctx, 0, 0, true)
		if err != nil || !sb.Gzip || !bytes.Equal(sb.Data, kept[1:]) || e.faults.puts() != 1 {
			t.Fatalf("later read: %v, %d puts", err, e.faults.puts())
		}
		e.log.bundles.recent.Purge()
	}
	sb, err := e.log.ServeEntryBundle(ctx, 0, 0, false)
	if err != nil || sb.Gzip {
		t.Fatalf("without gzip: gzip %t, %v", sb.Gzip, err)
	}
	checkBundle(t, sb, entries[:256])
	raw, err := e.log.EntryBundle(ctx, 0, 0)
	if err != nil || !bytes.Equal(raw, sb.Data) {
		t.Fatalf("EntryBundle differs from the identity form: %v", err)
	}
}

// TestServeEntryBundleIncompressible: random entries are served as they
// are, and only a marker is kept (no disk for a copy that saves nothing).
func TestServeEntryBundleIncompressible(t *testing.T) {
	e := newEnv(t)
	entries := addEntries(t, e, 256, randomEntry)
	for range 2 {
		sb, err := e.log.ServeEntryBundle(context.Background(), 0, 0, true)
		if err != nil || sb.Gzip {
			t.Fatalf("ServeEntryBundle: gzip %t, %v", sb.Gzip, err)
		}
		checkBundle(t, sb, entries)
	}
	if kept, err := e.store.Bundle(nil, 0); err != nil || !bytes.Equal(kept, []byte{bundleRaw}) || e.faults.puts() != 1 {
		t.Fatalf("kept form %q, %v, %d puts; want the raw marker once", kept, err, e.faults.puts())
	}
}

// TestServePartialBundle: a partial bundle is served by width from memory,
// compressed once, and grows into the full one.
func TestServePartialBundle(t *testing.T) {
	e := newEnv(t)
	entries := addEntries(t, e, 100, jsonEntry)
	ctx := context.Background()
	first, err := e.log.ServeEntryBundle(ctx, 0, 100, true)
	if err != nil || !first.Gzip {
		t.Fatalf("partial bundle: gzip %t, %v", first.Gzip, err)
	}
	checkBundle(t, first, entries)
	again, err := e.log.ServeEntryBundle(ctx, 0, 100, true)
	if err != nil || &again.Data[0] != &first.Data[0] {
		t.Fatalf("second read of the partial bundle was not the cached form: %v", err)
	}
	if _, err := e.log.ServeEntryBundle(ctx, 0, 101, true); !errors.Is(err, ErrNotFound) {
		t.Fatalf("partial bundle beyond the tree: %v, want ErrNotFound", err)
	}
	if e.faults.puts() != 0 {
		t.Fatal("a partial bundle was kept in the store")
	}
	entries = append(entries, addEntries(t, e, 156, func(i int) []byte { return jsonEntry(100 + i) })...)
	full, err := e.log.ServeEntryBundle(ctx, 0, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	checkBundle(t, full, entries)
}

// TestServeEntryBundleStoreFaults: a kept form that cannot be stored is
// only a cost (the bundle is served, and made again next time); a corrupt
// one is reported as corruption.
func TestServeEntryBundleStoreFaults(t *testing.T) {
	e := newEnv(t)
	entries := addEntries(t, e, 256, jsonEntry)
	e.faults.mu.Lock()
	e.faults.failPut = true
	e.faults.mu.Unlock()
	ctx := context.Background()
	for range 2 {
		sb, err := e.log.ServeEntryBundle(ctx, 0, 0, true)
		if err != nil {
			t.Fatalf("ServeEntryBundle with a failing PutBundle: %v", err)
		}
		checkBundle(t, sb, entries)
		e.log.bundles.recent.Purge() // as when other bundles pushed it out
	}
	if e.faults.puts() != 2 {
		t.Errorf("%d PutBundle calls, want 2 (made again after the failure)", e.faults.puts())
	}
	if err := e.log.Healthy(); err != nil {
		t.Errorf("a failed PutBundle stopped the log: %v", err)
	}
	if err := e.store.PutBundle(0, []byte("x")); err != nil {
		t.Fatal(err)
	}
	e.log.bundles.recent.Purge()
	if _, err := e.log.ServeEntryBundle(ctx, 0, 0, true); !errors.Is(err, storage.ErrCorrupt) {
		t.Errorf("corrupt kept form: %v, want ErrCorrupt", err)
	}
}

// TestServeEntryBundleReleased: full bundles served from the store come
// in pooled buffers that each response releases, kept gzip forms and
// bundles served as they are alike; readers of many bundles at once,
// releasing as they go, each get their own bundle's bytes (the race
// detector watches the reuse), and releasing a cached form, which is not
// pooled, leaves it intact for later readers.
func TestServeEntryBundleReleased(t *testing.T) {
	e := newEnv(t)
	const bundles = 6
	entry := func(i int) []byte { // even bundles compress, odd ones do not
		if i/256%2 == 0 {
			return jsonEntry(i)
		}
		return randomEntry(i)
	}
	entries := addEntries(t, e, bundles*256+40, entry)
	ctx := context.Background()
	serve := func(b uint64, gz bool) {
		t.Helper()
		sb, err := e.log.ServeEntryBundle(ctx, b, 0, gz)
		if err != nil || sb.Gzip != (gz && b%2 == 0) {
			t.Errorf("bundle %d, gzip accepted %t: gzip %t, %v", b, gz, sb.Gzip, err)
			return
		}
		checkBundle(t, sb, entries[b*256:(b+1)*256])
		sb.Release()
	}
	// In turn: a released bundle's buffer serves the next bundle read, so
	// a released form still cached would now read as that bundle.
	for range 8 {
		e.log.bundles.recent.Purge() // as when other bundles pushed them out
		for _, b := range []uint64{0, 1, 0, 2, 1} {
			serve(b, true)
		}
	}
	partial, err := e.log.ServeEntryBundle(ctx, bundles, 40, true)
	if err != nil {
		t.Fatal(err)
	}
	cached := partial.Data
	partial.Release() // cached by width: must not be reused
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 60 {
				serve(uint64(g+i)%bundles, i%3 != 0)
			}
		})
	}
	wg.Wait()
	again, err := e.log.ServeEntryBundle(ctx, bundles, 40, true)
	if err != nil || &again.Data[0] != &cached[0] {
		t.Fatalf("the partial bundle was not served from its cached form: %v", err)
	}
	checkBundle(t, again, entries[bundles*256:])
}

// TestServeEntryBundleFromFile: from a store on the OS filesystem, a full
// bundle served as it is (random entries, with or without gzip accepted)
// is a section of its bundle file, an io.LimitedReader of an *os.File as
// net/http sends with sendfile(2), of a handle of its own that Release
// closes; bundles that compress are still served from their kept gzip
// form, partial ones from memory; a bundle file damaged before the
// bundle's first serving is reported as corruption, not sent.
func TestServeEntryBundleFromFile(t *testing.T) {
	e := newDiskEnv(t)
	entries := addEntries(t, e, 2*256, randomEntry)
	entries = append(entries, addEntries(t, e, 256+10, func(i int) []byte { return jsonEntry(512 + i) })...)
	ctx := context.Background()
	for b := range uint64(2) { // the first read with gzip accepted judges, keeps the marker and caches
		sb, err := e.log.ServeEntryBundle(ctx, b, 0, true)
		if err != nil || sb.Gzip {
			t.Fatalf("first read of bundle %d: gzip %t, %v", b, sb.Gzip, err)
		}
		checkBundle(t, sb, entries[b*256:(b+1)*256])
	}
	for _, gz := range []bool{false, true, true} {
		e.log.bundles.recent.Purge() // as when other bundles pushed them out
		for b := range uint64(2) {
			sb, err := e.log.ServeEntryBundle(ctx, b, 0, gz)
			if err != nil || sb.Gzip {
				t.Fatalf("bundle %d, gzip accepted %t: gzip %t, %v", b, gz, sb.Gzip, err)
			}
			lr, ok := sb.Body().(*io.LimitedReader)
			if !ok {
				t.Fatalf("bundle %d, gzip accepted %t: body %T, want an io.LimitedReader of its file", b, gz, sb.Body())
			}
			f, ok := lr.R.(*os.File)
			if !ok || sb.Data != nil || lr.N != sb.Len() {
				t.Fatalf("bundle %d: body of %T, %d bytes (Len %d)", b, lr.R, lr.N, sb.Len())
			}
			checkBundle(t, sb, entries[b*256:(b+1)*256])
			sb.Release()
			if _, err := f.Read(make([]byte, 1)); !errors.Is(err, os.ErrClosed) {
				t.Fatalf("bundle %d: its file after Release: %v, want closed", b, err)
			}
		}
	}
	for _, w := range []uint8{0, 10} {
		sb, err := e.log.ServeEntryBundle(ctx, 2, w, true)
		if err != nil || !sb.Gzip || sb.file != nil {
			t.Fatalf("compressible bundle 2 (width %d): gzip %t, file %v, %v", w, sb.Gzip, sb.file != nil, err)
		}
		checkBundle(t, sb, entries[512 : 512+256][:map[uint8]int{0: 256, 10: 10}[w]])
		sb.Release()
	}

	// Damage bundle 1 of a reopened log, before its first serving there.
	e.reopen(Config{})
	name := filepath.Join(e.dir, "bundles", "000000000000.bundles")
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	raw0, _ := e.log.EntryBundle(ctx, 0, 0)
	b[len(raw0)+500] ^= 0x40
	if err := os.WriteFile(name, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if sb, err := e.log.ServeEntryBundle(ctx, 1, 0, false); !errors.Is(err, storage.ErrCorrupt) {
		sb.Release()
		t.Fatalf("serving a damaged bundle: %v, want ErrCorrupt", err)
	}
	sb, err := e.log.ServeEntryBundle(ctx, 0, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	checkBundle(t, sb, entries[:256])
	sb.Release()
}

// TestServeEntryBundleFileSends: responses sending bundles from their
// files at once each have a descriptor of their own (read in turns, they
// all read their bundle whole); at most maxFileSends are held at once,
// the next ones being read into memory, until one is released.
func TestServeEntryBundleFileSends(t *testing.T) {
	e := newDiskEnv(t)
	entries := addEntries(t, e, 256, randomEntry)
	ctx := context.Background()
	if _, err := e.log.EntryBundle(ctx, 0, 0); err != nil { // checked: sendable from now on
		t.Fatal(err)
	}
	var held []ServedBundle
	defer func() {
		for i := range held {
			held[i].Release()
		}
	}()
	for range maxFileSends {
		sb, err := e.log.ServeEntryBundle(ctx, 0, 0, false)
		if err != nil || sb.file == nil {
			t.Fatalf("response %d: file %v, %v", len(held), sb.file != nil, err)
		}
		held = append(held, sb)
	}
	bodies := make([]io.Reader, len(held))
	got := make([][]byte, len(held))
	for i := range held {
		bodies[i] = held[i].Body()
	}
	for chunk := 0; chunk < 256*(2+1024); chunk += 4096 { // in turns: a shared handle would interleave
		for i, r := range bodies {
			b := make([]byte, 4096)
			n, _ := io.ReadFull(r, b)
			got[i] = append(got[i], b[:n]...)
		}
	}
	raw, _ := e.log.EntryBundle(ctx, 0, 0)
	for i := range got {
		if !bytes.Equal(got[i], raw) {
			t.Fatalf("response %d read %d bytes, not the bundle's %d", i, len(got[i]), len(raw))
		}
	}
	over, err := e.log.ServeEntryBundle(ctx, 0, 0, false)
	if err != nil || over.file != nil {
		t.Fatalf("response past maxFileSends: file %v, %v; want it read into memory", over.file != nil, err)
	}
	checkBundle(t, over, entries)
	over.Release()
	held[0].Release()
	again, err := e.log.ServeEntryBundle(ctx, 0, 0, false)
	if err != nil || again.file == nil {
		t.Fatalf("response after a release: file %v, %v; want its file", again.file != nil, err)
	}
	held[0] = again
	if n := e.log.fileSends.Load(); n != maxFileSends {
		t.Errorf("%d file sends counted, want %d", n, maxFileSends)
	}
}
