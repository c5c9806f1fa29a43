package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

func TestKeygen(t *testing.T) {
	key := filepath.Join(t.TempDir(), "w.key")
	var out, errOut bytes.Buffer
	if code := keygen([]string{"--name", "witness.test/w", "--key", key}, &out, &errOut); code != 0 {
		t.Fatalf("keygen: exit %d, %s", code, errOut.String())
	}
	if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v", fi, err)
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil || out.String() != "verifier key: "+string(pub) {
		t.Fatalf("stdout %q, .pub %q (%v)", out.String(), pub, err)
	}
	if code := keygen([]string{"--name", "witness.test/w", "--key", key}, &out, &errOut); code == 0 {
		t.Error("keygen over an existing key: exit 0")
	}
	if code := keygen(nil, &out, &errOut); code == 0 {
		t.Error("keygen without flags: exit 0")
	}
}

func TestRun(t *testing.T) {
	dir := t.TempDir()
	_, vkey, err := note.GenerateKey(rand.Reader, "example.com/log")
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "logs.txt")
	if err := os.WriteFile(cfg, []byte("log example.com/log "+vkey+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := config{configFile: cfg, data: filepath.Join(dir, "data"), name: defaultName, listen: "127.0.0.1:0", pollInterval: time.Minute, shutdownTimeout: time.Second}

	if err := run(t.Context(), config{data: c.data}, io.Discard); err == nil {
		t.Error("run without --config: no error")
	}

	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- run(ctx, c, pw); pw.Close() }()
	sc := bufio.NewScanner(pr)
	var addr, vk string
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "verifier key: "); ok {
			vk = v
		}
		if v, ok := strings.CutPrefix(line, "http: "); ok {
			addr = v
			break
		}
	}
	go io.Copy(io.Discard, pr)
	if vk == "" || !strings.HasPrefix(addr, "http://127.0.0.1:") || strings.HasSuffix(addr, ":0/") {
		t.Fatalf("start output: verifier key %q, address %q", vk, addr)
	}
	resp, err := http.Get(addr + "healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	resp.Body.Close()
	resp, err = http.Post(addr+"add-checkpoint", "text/plain", strings.NewReader("old 0\n\nexample.com/nope\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n— x AAAAAAA=\n"))
	if err != nil || resp.StatusCode != 404 {
		t.Fatalf("add-checkpoint for an unknown log: %v %v", resp, err)
	}
	resp.Body.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run after cancel: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("run did not stop")
	}
	if _, err := os.Stat(filepath.Join(c.data, "witness.key")); err != nil {
		t.Errorf("no key created in the data dir: %v", err)
	}
}
