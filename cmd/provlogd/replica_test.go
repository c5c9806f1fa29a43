package main

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/provlog/provlog/internal/pgtest"
)

// writeLogKey writes a new note private key named origin to dir/name.
func writeLogKey(t *testing.T, dir, name, origin string) string {
	t.Helper()
	skey, _, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(skey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestReplicaKeyChecks: with --storage postgres, a replica needs an
// existing key, and one named otherwise than the database's log is
// refused with both names.
func TestReplicaKeyChecks(t *testing.T) {
	pg := pgtest.New(t)
	if _, err := pg.CreateDB(t.Context(), "provlog"); err != nil {
		t.Fatal(err)
	}
	dsn := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/provlog?sslmode=disable", pg.Port())
	dir := t.TempDir()
	base := []string{"--storage", dsn, "--admission", "open", "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"}

	code, _, stderr := execute(t, append(base, "--data", filepath.Join(dir, "a"))...)
	if code == 0 || !strings.Contains(stderr, "needs the log key every replica shares") {
		t.Fatalf("no key: exit %d, stderr %q; want a refusal naming the shared key", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "a", "log.key")); err == nil {
		t.Fatal("a replica created its own key")
	}

	// The database takes the first key's name as its origin.
	k1 := writeLogKey(t, dir, "one.key", "example.com/one")
	s, err := openStore(t.Context(), config{storage: dsn, leaseTTL: 3e9}, "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := openKey(config{storage: dsn, key: k1, data: dir}, s); err != nil {
		t.Fatal(err)
	}
	s.Close()

	k2 := writeLogKey(t, dir, "two.key", "example.com/two")
	code, _, stderr = execute(t, append(base, "--data", filepath.Join(dir, "b"), "--key", k2)...)
	if code == 0 || !strings.Contains(stderr, `"example.com/one"`) || !strings.Contains(stderr, `"example.com/two"`) {
		t.Fatalf("other key: exit %d, stderr %q; want a refusal naming both logs", code, stderr)
	}
}
