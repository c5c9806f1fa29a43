package storage

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// migrateChildEnv names the store a child of TestMigrationKilled opens.
const migrateChildEnv = "PROVLOG_MIGRATE_CHILD"

// killedEntry is entry i of TestMigrationKilled's store: 300 bytes.
func killedEntry(i uint64) []byte {
	e := fmt.Appendf(nil, "killed %d;", i)
	for len(e) < 300 {
		e = append(e, byte('a'+(i+uint64(len(e)))%26))
	}
	return e
}

// TestMigrationKilled kills a real process (SIGKILL) while it migrates a
// schema-1 store of 12 batches of bundles, at a point chosen from how
// long a whole migration takes, until a kill lands part way through (the
// next Open's log says it resumed from an entry after 0); that Open
// finishes the migration, every entry reads back exactly, and no
// schema-1 key is left.
func TestMigrationKilled(t *testing.T) {
	if dir := os.Getenv(migrateChildEnv); dir != "" {
		s, err := Open(dir, Options{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		s.Close()
		os.Exit(0)
	}
	const size = 12*migrateBatchBundles*BundleSize + 100
	base := filepath.Join(t.TempDir(), "base")
	writeSchema1(t, base, size)

	child := func(dir string, kill time.Duration) (killed bool, took time.Duration) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestMigrationKilled$", "-test.count=1")
		cmd.Env = append(os.Environ(), migrateChildEnv+"="+dir,
			"GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		began := time.Now()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		var timer <-chan time.Time
		if kill > 0 {
			timer = time.After(kill)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("migrating child: %v\n%s", err, stderr.Bytes())
			}
			return false, time.Since(began)
		case <-timer:
			cmd.Process.Kill()
			<-done
			return true, time.Since(began)
		}
	}

	// How long a whole migration takes in a child, start-up included.
	whole := filepath.Join(t.TempDir(), "whole")
	if err := os.CopyFS(whole, os.DirFS(base)); err != nil {
		t.Fatal(err)
	}
	_, took := child(whole, 0)
	resumedFrom := regexp.MustCompile(`migrating the store to schema 2: entries as bundles.* from=(\d+)`)
	for attempt, frac := range []float64{0.6, 0.4, 0.75, 0.3, 0.85, 0.5, 0.2, 0.9} {
		dir := filepath.Join(t.TempDir(), strconv.Itoa(attempt))
		if err := os.CopyFS(dir, os.DirFS(base)); err != nil {
			t.Fatal(err)
		}
		if killed, _ := child(dir, time.Duration(frac*float64(took))); !killed {
			continue // it finished first
		}
		var logs bytes.Buffer
		s, err := Open(dir, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		if err != nil {
			t.Fatalf("reopening after the kill: %v", err)
		}
		checkMigrated(t, s, size)
		s.Close()
		m := resumedFrom.FindSubmatch(logs.Bytes())
		if m == nil || string(m[1]) == "0" {
			continue // killed before its first batch, or after its last
		}
		t.Logf("killed after %v of a %v migration; resumed from entry %s of %d", time.Duration(frac*float64(took)).Round(time.Millisecond), took.Round(time.Millisecond), m[1], size)
		return
	}
	t.Fatalf("no kill landed part way through a migration of %v", took)
}

// writeSchema1 writes a store of schema 1 in dir holding size entries
// (killedEntry), one key each, and the tree state: what provlog wrote
// before schema 2, through the same Pebble options.
func writeSchema1(t *testing.T, dir string, size uint64) {
	t.Helper()
	s, err := Open(dir, Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	b := s.db.NewBatch()
	b.Set(keyVersion, binary.BigEndian.AppendUint32(nil, 1), nil)
	b.Set(keyState, encodeState(State{Size: size}), nil)
	b.Set(keyCheckpoint, []byte("cp"), nil)
	for i := range size {
		b.Set(v1EntryKey(i), killedEntry(i), nil)
		if b.Len() > 16<<20 {
			if err := b.Commit(pebble.NoSync); err != nil {
				t.Fatal(err)
			}
			b = s.db.NewBatch()
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// checkMigrated checks that s holds exactly entries [0, size) of
// killedEntry, under schema 2 only.
func checkMigrated(t *testing.T, s *Store, size uint64) {
	t.Helper()
	if k, err := s.firstKey([]byte{'e'}, []byte{'f'}); err == nil {
		t.Fatalf("schema-1 key %x left after Open", k)
	}
	n := uint64(0)
	if err := s.Entries(0, size, func(i uint64, e []byte) error {
		if i != n || !bytes.Equal(e, killedEntry(i)) {
			return fmt.Errorf("entry %d = %q", i, e)
		}
		n++
		return nil
	}); err != nil || n != size {
		t.Fatalf("entries after migration: %v (read %d of %d)", err, n, size)
	}
	if err := s.Entries(size, 1, func(uint64, []byte) error { return nil }); err == nil {
		t.Fatal("an entry past the tree's size after migration")
	}
}
