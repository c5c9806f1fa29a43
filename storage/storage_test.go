package storage

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

var quiet = slog.New(slog.DiscardHandler)

func openMem(t *testing.T, fs vfs.FS) *Store {
	t.Helper()
	s, err := Open("db", Options{FS: fs, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if s.rebuiltIndex {
		s.Close()
		t.Fatal("Open found the leaf-hash index damaged and rebuilt it")
	}
	return s
}

// hash is the RFC 6962 leaf hash of b, SHA-256(0x00 || b): what a Round's
// LeafHashes hold, and what the leaf-hash index is rebuilt from.
func hash(b []byte) []byte { h := sha256.Sum256(append([]byte{0}, b...)); return h[:] }

// round builds a round of n entries after start; its state and tiles are
// arbitrary but recognisable.
func round(start uint64, n int) *Round {
	r := &Round{Start: start}
	for i := range n {
		e := fmt.Appendf(nil, "entry %d", start+uint64(i))
		r.Entries, r.LeafHashes = append(r.Entries, e), append(r.LeafHashes, hash(e))
	}
	size := start + uint64(n)
	r.Tiles = []Tile{{Level: 0, Index: size / 256, Hashes: bytes.Repeat([]byte{byte(size)}, 64)}}
	r.State = State{Size: size, Range: [][]byte{hash([]byte{1}), hash([]byte{2})}, Checkpoint: fmt.Appendf(nil, "checkpoint %d", size)}
	return r
}

// TestCommitIsDurable crashes the filesystem after each Commit, keeping only
// synced data (and, in a second pass, a random part of the unsynced data):
// every committed round survives, whole.
func TestCommitIsDurable(t *testing.T) {
	for _, pct := range []int{0, 50} {
		fs := vfs.NewCrashableMem()
		s := openMem(t, fs)
		rng := rand.New(rand.NewPCG(uint64(pct), 1))
		size := uint64(0)
		for i := range 20 {
			n := 1 + rng.IntN(200)
			if err := s.Commit(round(size, n)); err != nil {
				t.Fatal(err)
			}
			size += uint64(n)
			crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: pct, RNG: rng})
			c := openMem(t, crashed)
			st, err := c.ReadState()
			if err != nil || st.Size != size {
				t.Fatalf("pass %d%%, round %d: state after crash %d, %v; want %d", pct, i, st.Size, err, size)
			}
			if err := c.Entries(0, size, func(uint64, []byte) error { return nil }); err != nil {
				t.Fatalf("entries after crash: %v", err)
			}
			c.Close()
		}
		s.Close()
	}
}

func TestSchemaVersionChecked(t *testing.T) {
	fs := vfs.NewMem()
	s := openMem(t, fs)
	if err := s.db.Set(keyVersion, []byte{0, 0, 0, 9}, nil); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open("db", Options{FS: fs, Logger: quiet}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Open of a version-9 store: %v, want ErrCorrupt", err)
	}
}

func TestDecodeStateRejectsCorrupt(t *testing.T) {
	for _, v := range [][]byte{nil, {1, 2, 3}, make([]byte, 8+31)} {
		if _, err := decodeState(v); !errors.Is(err, ErrCorrupt) {
			t.Errorf("decodeState(%d bytes): %v, want ErrCorrupt", len(v), err)
		}
	}
	st := State{Size: 5, Range: [][]byte{hash(nil), hash([]byte{1})}}
	got, err := decodeState(encodeState(st))
	if err != nil || got.Size != 5 || len(got.Range) != 2 || !bytes.Equal(got.Range[1], st.Range[1]) {
		t.Errorf("round trip: %+v, %v", got, err)
	}
}

var _ io.Closer = (*Store)(nil)

func TestKV(t *testing.T) {
	fs := vfs.NewMem()
	kv, err := OpenKV("kv", 3, Options{FS: fs, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a/1", "a/2", "a\xff", "b/1"} {
		if err := kv.Set([]byte(k), []byte("v"+k)); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	if err := kv.Scan([]byte("a/"), func(k, v []byte) error { got = append(got, string(k)+"="+string(v)); return nil }); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[a/1=va/1 a/2=va/2]" {
		t.Errorf("Scan(a/) = %v", got)
	}
	if _, err := kv.Get([]byte("zz")); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(absent): %v", err)
	}
	if err := kv.Scan(nil, func(k, v []byte) error { return nil }); err == nil {
		t.Error("Scan of the empty prefix succeeded")
	}
	kv.Close()
	if _, err := OpenKV("kv", 4, Options{FS: fs, Logger: quiet}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("OpenKV with another version: %v", err)
	}
	kv, err = OpenKV("kv", 3, Options{FS: fs, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer kv.Close()
	if v, err := kv.Get([]byte("b/1")); err != nil || string(v) != "vb/1" {
		t.Errorf("after reopen: %q, %v", v, err)
	}
}

// walSyncFaults returns an in-memory FS on which syncing Pebble's WAL
// fails while armed is set.
func walSyncFaults(armed *atomic.Bool) vfs.FS {
	return errorfs.Wrap(vfs.NewMem(), errorfs.InjectorFunc(func(op errorfs.Op) error {
		if armed.Load() && strings.HasSuffix(op.Path, ".log") &&
			(op.Kind == errorfs.OpFileSync || op.Kind == errorfs.OpFileSyncData || op.Kind == errorfs.OpFileSyncTo) {
			return errorfs.ErrInjected
		}
		return nil
	}))
}

// TestSyncedWritesFailWithoutPanic fails the WAL's sync under each of the
// store's single synced writes: Pebble reports it as fatal (Fatalf, which
// panics in pebbleLogger), and each returns an error wrapping ErrFatal
// instead of panicking out of the package; the store then takes no
// commit. (Found by review: Open of a new store, SetPublished and
// SetOrigin panicked.)
func TestSyncedWritesFailWithoutPanic(t *testing.T) {
	t.Run("open", func(t *testing.T) {
		var armed atomic.Bool
		armed.Store(true)
		if s, err := Open("db", Options{FS: walSyncFaults(&armed), Logger: quiet}); !errors.Is(err, ErrFatal) {
			if err == nil {
				s.Close()
			}
			t.Fatalf("Open of a new store with WAL syncs failing: %v, want ErrFatal", err)
		}
	})
	for name, write := range map[string]func(*Store) error{
		"SetPublished":      func(s *Store) error { return s.SetPublished([]byte("cp")) },
		"SetPublished(nil)": func(s *Store) error { return s.SetPublished(nil) },
		"SetOrigin":         func(s *Store) error { return s.SetOrigin("example.com/log") },
	} {
		t.Run(name, func(t *testing.T) {
			var armed atomic.Bool
			s := openMem(t, walSyncFaults(&armed))
			defer s.Close()
			armed.Store(true)
			if err := write(s); !errors.Is(err, ErrFatal) {
				t.Fatalf("%s with WAL syncs failing: %v, want ErrFatal", name, err)
			}
			armed.Store(false)
			if err := s.Commit(round(0, 2)); !errors.Is(err, ErrFatal) {
				t.Errorf("Commit after a fatal write: %v, want ErrFatal", err)
			}
		})
	}
}

// TestKVSetFailsWithoutPanic: KV.Set under a failing WAL sync returns an
// error wrapping ErrFatal rather than panicking.
func TestKVSetFailsWithoutPanic(t *testing.T) {
	var armed atomic.Bool
	kv, err := OpenKV("kv", 1, Options{FS: walSyncFaults(&armed), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer kv.Close()
	armed.Store(true)
	if err := kv.Set([]byte("k"), []byte("v")); !errors.Is(err, ErrFatal) {
		t.Fatalf("KV.Set with WAL syncs failing: %v, want ErrFatal", err)
	}
}
