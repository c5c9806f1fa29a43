package log

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

// TestKeyCreationCrashSafe: a start that crashed between writing one key
// file and the other leaves a directory the next start completes, whatever
// it holds.
func TestKeyCreationCrashSafe(t *testing.T) {
	const origin = "example.com/log"
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, key, pub string)
	}{
		{"nothing", func(*testing.T, string, string) {}},
		{"a lone pub file", func(t *testing.T, _, pub string) {
			_, vkey, err := note.GenerateKey(nil, origin)
			if err != nil {
				t.Fatal(err)
			}
			write(t, pub, vkey+"\n")
		}},
		{"a lone private key", func(t *testing.T, key, _ string) {
			skey, _, err := note.GenerateKey(nil, origin)
			if err != nil {
				t.Fatal(err)
			}
			write(t, key, skey+"\n")
		}},
		{"an empty pub file and a temporary file", func(t *testing.T, key, pub string) {
			write(t, pub, "")
			write(t, filepath.Join(filepath.Dir(key), ".log.key.tmp-123"), "PRIVATE+KEY+torn")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			key, pub := filepath.Join(dir, "log.key"), filepath.Join(dir, "log.pub")
			tc.setup(t, key, pub)
			k, err := LoadOrCreateKey(key, pub, origin)
			if err != nil {
				t.Fatalf("start after the crash: %v", err)
			}
			checkKeyFiles(t, k, key, pub)
			// And the next start loads the same key.
			k2, err := LoadOrCreateKey(key, pub, "")
			if err != nil || k2.Verifier != k.Verifier || k2.Created {
				t.Fatalf("restart: %+v, %v; want the same key loaded", k2, err)
			}
		})
	}
}

// checkKeyFiles checks that pub holds the verifier of the private key in
// key, independently derived with sumdb/note, and the key's mode.
func checkKeyFiles(t *testing.T, k *Key, key, pub string) {
	t.Helper()
	skey, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	vkey, err := os.ReadFile(pub)
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(vkey)) != k.Verifier {
		t.Fatalf("pub file %q, want %q", vkey, k.Verifier)
	}
	signer, err := note.NewSigner(strings.TrimSpace(string(skey)))
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := note.NewVerifier(k.Verifier)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := note.Sign(&note.Note{Text: "check\n"}, signer)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := note.Open(msg, note.VerifierList(verifier)); err != nil {
		t.Fatalf("pub file does not verify the private key's signature: %v", err)
	}
	if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}
