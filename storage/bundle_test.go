package storage

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// bundleData returns n random bytes for bundle i: random, so that Pebble's
// block compression does not shrink them.
func bundleData(i uint64, n int) []byte {
	b := make([]byte, n)
	rng := rand.NewChaCha8([32]byte{byte(i), byte(i >> 8), byte(i >> 16)})
	rng.Read(b)
	return b
}

// TestBundlesSeparated: bundles read back from the memtable and, once
// flushed, from blob files, as entries are (the backend-independent round
// trip is storagetest's Bundles).
func TestBundlesSeparated(t *testing.T) {
	s := openMem(t, vfs.NewMem())
	defer s.Close()
	want := map[uint64][]byte{0: bundleData(0, 300<<10), 1: bundleData(1, 17), 1 << 40: bundleData(2, 64<<10)}
	for i, b := range want {
		if err := s.PutBundle(i, b); err != nil {
			t.Fatal(err)
		}
	}
	check := func(when string) {
		t.Helper()
		for i, b := range want {
			if got, err := s.Bundle(nil, i); err != nil || !bytes.Equal(got, b) {
				t.Errorf("%s: Bundle(%d) = %d bytes, %v; want %d bytes", when, i, len(got), err, len(b))
			}
		}
	}
	check("in the memtable")
	if err := s.db.Flush(); err != nil {
		t.Fatal(err)
	}
	check("flushed")
	// Bundles are separated into blob files, like entries.
	if m := s.db.Metrics(); m.BlobFiles.ValueSize < 360<<10 {
		t.Errorf("blob files hold %d bytes of values after flushing 364 KiB of bundles", m.BlobFiles.ValueSize)
	}
}

// TestBundleSurvivesReopen: a bundle written unsynced is durable once a
// later Commit syncs the WAL, and a crash before that loses it whole or
// keeps it whole.
func TestBundleSurvivesReopen(t *testing.T) {
	fs := vfs.NewCrashableMem()
	s := openMem(t, fs)
	defer s.Close()
	b0, b1 := bundleData(0, 256<<10), bundleData(1, 256<<10)
	if err := s.PutBundle(0, b0); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(round(0, 10)); err != nil {
		t.Fatal(err)
	}
	if err := s.PutBundle(1, b1); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, pct := range []int{0, 50, 100} {
		c := openMem(t, fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: pct, RNG: rng}))
		if got, err := c.Bundle(nil, 0); err != nil || !bytes.Equal(got, b0) {
			t.Errorf("%d%% unsynced kept: bundle 0 (synced by a Commit) = %d bytes, %v", pct, len(got), err)
		}
		if got, err := c.Bundle(nil, 1); !errors.Is(err, ErrNotFound) && (err != nil || !bytes.Equal(got, b1)) {
			t.Errorf("%d%% unsynced kept: unsynced bundle 1 = %d bytes, %v; want it whole or ErrNotFound", pct, len(got), err)
		}
		if st, err := c.ReadState(); err != nil || st.Size != 10 {
			t.Errorf("%d%% unsynced kept: state %d, %v", pct, st.Size, err)
		}
		c.Close()
	}
}

// TestPutBundleFault fails the WAL's writes while a bundle is written.
// PutBundle does not wait for its write, so it returns nil; the sequencer's
// next Commit, whose sync covers that write, returns ErrFatal (the WAL is
// broken: whether its own batch reached the disk is unknown), as it does
// after any failed WAL write, and later PutBundles return ErrFatal too. No
// panic reaches the reader's or the sequencer's goroutine.
func TestPutBundleFault(t *testing.T) {
	var armed atomic.Bool
	var injected atomic.Int32
	fs := errorfs.Wrap(vfs.NewMem(), errorfs.InjectorFunc(func(op errorfs.Op) error {
		if armed.Load() && strings.HasSuffix(op.Path, ".log") && op.Kind.ReadOrWrite() == errorfs.OpIsWrite {
			injected.Add(1)
			return errorfs.ErrInjected
		}
		return nil
	}))
	s := openMem(t, fs)
	if err := s.Commit(round(0, 10)); err != nil {
		t.Fatal(err)
	}
	armed.Store(true)
	putErr := s.PutBundle(0, bundleData(0, 4<<10)) // small: it must not rotate the WAL
	done := make(chan error, 1)
	go func() { done <- s.Commit(round(10, 10)) }()
	select {
	case err := <-done:
		t.Logf("PutBundle: %v; Commit: %v; %d faults injected", putErr, err, injected.Load())
		if !errors.Is(err, ErrFatal) || injected.Load() == 0 {
			t.Errorf("Commit after a failed bundle write: %v, want ErrFatal", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Commit after a failed bundle write did not return")
	}
	if err := s.PutBundle(1, []byte("x")); !errors.Is(err, ErrFatal) {
		t.Errorf("PutBundle on a failed store: %v, want ErrFatal", err)
	}
	// Reads still work; the failed round may or may not be there, as
	// Commit documents.
	if st, err := s.ReadState(); err != nil || (st.Size != 10 && st.Size != 20) {
		t.Errorf("ReadState on a failed store: %d, %v", st.Size, err)
	}
	// The store is abandoned, as the log abandons it: Pebble's Close after
	// a fatal commit error may fail or wait on the broken pipeline.
}
