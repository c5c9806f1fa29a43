package storage

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

var quiet = slog.New(slog.DiscardHandler)

func openMem(t *testing.T, fs vfs.FS) *Store {
	t.Helper()
	s, err := Open("db", Options{FS: fs, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func hash(b []byte) []byte { h := sha256.Sum256(b); return h[:] }

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

func TestCommitRoundTrip(t *testing.T) {
	s := openMem(t, vfs.NewMem())
	defer s.Close()
	if st, err := s.ReadState(); err != nil || st.Size != 0 || st.Checkpoint != nil {
		t.Fatalf("new store state = %+v, %v", st, err)
	}
	r := round(0, 300)
	if err := s.Commit(r); err != nil {
		t.Fatal(err)
	}
	st, err := s.ReadState()
	if err != nil || st.Size != 300 || !bytes.Equal(st.Checkpoint, r.State.Checkpoint) || len(st.Range) != 2 || !bytes.Equal(st.Range[1], r.State.Range[1]) {
		t.Fatalf("ReadState = %+v, %v", st, err)
	}
	idx, found := make([]uint64, 3), make([]bool, 3)
	if err := s.LookupLeaves([][]byte{r.LeafHashes[7], hash([]byte("absent")), r.LeafHashes[299]}, idx, found); err != nil {
		t.Fatal(err)
	}
	if !found[0] || idx[0] != 7 || found[1] || !found[2] || idx[2] != 299 {
		t.Errorf("LookupLeaves = %v %v", idx, found)
	}
	var got [][]byte
	if err := s.Entries(5, 10, func(i uint64, e []byte) error { got = append(got, bytes.Clone(e)); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 10 || !bytes.Equal(got[0], r.Entries[5]) || !bytes.Equal(got[9], r.Entries[14]) {
		t.Errorf("Entries(5, 10) = %q", got)
	}
	if err := s.Entries(295, 10, func(uint64, []byte) error { return nil }); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Entries past the end: %v, want ErrCorrupt", err)
	}
	stop := errors.New("stop")
	if err := s.Entries(0, 10, func(uint64, []byte) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("Entries callback error: %v", err)
	}
	if tile, err := s.Tile(0, 1); err != nil || !bytes.Equal(tile, r.Tiles[0].Hashes) {
		t.Errorf("Tile(0, 1) = %x, %v", tile, err)
	}
	if _, err := s.Tile(0, 2); !errors.Is(err, ErrNotFound) {
		t.Errorf("absent tile: %v, want ErrNotFound", err)
	}
}

func TestMalformedRoundWritesNothing(t *testing.T) {
	s := openMem(t, vfs.NewMem())
	defer s.Close()
	r := round(0, 3)
	r.LeafHashes = r.LeafHashes[:2]
	if err := s.Commit(r); err == nil {
		t.Fatal("Commit of a malformed round succeeded")
	}
	if st, _ := s.ReadState(); st.Size != 0 {
		t.Errorf("state size %d after a refused round", st.Size)
	}
	if err := s.Entries(0, 1, func(uint64, []byte) error { return nil }); !errors.Is(err, ErrCorrupt) {
		t.Errorf("entry 0 present after a refused round (%v)", err)
	}
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

func TestOrigin(t *testing.T) {
	fs := vfs.NewMem()
	s := openMem(t, fs)
	if o, err := s.Origin(); o != "" || err != nil {
		t.Fatalf("new store origin %q, %v", o, err)
	}
	if err := s.SetOrigin("example.com/log"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openMem(t, fs)
	defer s.Close()
	if o, err := s.Origin(); o != "example.com/log" || err != nil {
		t.Errorf("origin after reopen %q, %v", o, err)
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

func TestTileInnerLevels(t *testing.T) {
	s := openMem(t, vfs.NewMem())
	defer s.Close()
	full := bytes.Repeat([]byte{7}, fullTileSize)
	inner := bytes.Repeat([]byte{9}, innerSize)
	r := round(0, 3)
	r.Tiles = []Tile{
		{Level: 0, Index: 0, Hashes: full, Inner: inner},
		{Level: 1, Index: 0, Hashes: full}, // full, stored without them
		{Level: 2, Index: 0, Hashes: full[:64]},
	}
	if err := s.Commit(r); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		level     uint64
		hashes    []byte
		wantInner []byte
	}{{0, full, inner}, {1, full, nil}, {2, full[:64], nil}} {
		h, err := s.Tile(tc.level, 0)
		if err != nil || !bytes.Equal(h, tc.hashes) {
			t.Errorf("Tile(%d, 0) = %d bytes, %v; want %d bytes", tc.level, len(h), err, len(tc.hashes))
		}
		var in []byte
		err = s.VisitTile(tc.level, 0, func(hashes, inner []byte) error {
			h, in = bytes.Clone(hashes), bytes.Clone(inner)
			return nil
		})
		if err != nil || !bytes.Equal(h, tc.hashes) || !bytes.Equal(in, tc.wantInner) || (in == nil) != (tc.wantInner == nil) {
			t.Errorf("VisitTile(%d, 0) = %d, %d bytes, %v; want %d, %d", tc.level, len(h), len(in), err, len(tc.hashes), len(tc.wantInner))
		}
	}
	// Inner levels only with a full tile, of the right size; a refused
	// round writes nothing.
	for _, bad := range []Tile{
		{Level: 0, Index: 1, Hashes: full[:64], Inner: inner},
		{Level: 0, Index: 1, Hashes: full, Inner: inner[:64]},
	} {
		r := round(3, 2)
		r.Tiles = []Tile{bad}
		if err := s.Commit(r); err == nil {
			t.Errorf("Commit of tile of %d bytes with inner levels of %d bytes succeeded", len(bad.Hashes), len(bad.Inner))
		}
		if st, _ := s.ReadState(); st.Size != 3 {
			t.Fatalf("state size %d after a refused round", st.Size)
		}
	}
}
