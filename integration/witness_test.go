package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/provlog/provlog/internal/provlogdproc"
)

// buildWitness builds cmd/provlog-witness into a temporary directory.
func buildWitness(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "provlog-witness")
	if err := provlogdproc.Build(context.Background(), "github.com/provlog/provlog/cmd/provlog-witness", bin); err != nil {
		t.Fatal(err)
	}
	return bin
}

// witnessLog is a tiny RFC 6962 log (sumdb/tlog) whose checkpoints are
// signed with a sumdb/note key; fork copies it, key included.
type witnessLog struct {
	signer note.Signer
	hashes []tlog.Hash
	n      int64
}

func (l *witnessLog) reader() tlog.HashReader {
	return tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = l.hashes[x]
		}
		return out, nil
	})
}

func (l *witnessLog) add(t *testing.T, n int, tag string) {
	for range n {
		hs, err := tlog.StoredHashes(l.n, fmt.Appendf(nil, "%s %d", tag, l.n), l.reader())
		if err != nil {
			t.Fatal(err)
		}
		l.hashes = append(l.hashes, hs...)
		l.n++
	}
}

// request is an add-checkpoint body from old to the current size.
func (l *witnessLog) request(t *testing.T, old int64) []byte {
	root, err := tlog.TreeHash(l.n, l.reader())
	if err != nil {
		t.Fatal(err)
	}
	cp, err := note.Sign(&note.Note{Text: fmt.Sprintf("%s\n%d\n%s\n", l.signer.Name(), l.n, base64.StdEncoding.EncodeToString(root[:]))}, l.signer)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "old %d\n", old)
	if old > 0 && old < l.n {
		p, err := tlog.ProveTree(l.n, old, l.reader())
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range p {
			fmt.Fprintf(&b, "%s\n", base64.StdEncoding.EncodeToString(h[:]))
		}
	}
	b.WriteString("\n")
	b.Write(cp)
	return b.Bytes()
}

type witnessProc struct {
	cmd  *exec.Cmd
	url  string
	vkey string
}

func startWitness(t *testing.T, bin string, args ...string) *witnessProc {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"--listen", "127.0.0.1:0"}, args...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// A witness that never prints its banner is killed, which ends the
	// scan below: the test fails rather than hangs.
	timer := time.AfterFunc(startTimeout, func() { cmd.Process.Kill() })
	defer timer.Stop()
	p := &witnessProc{cmd: cmd}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "verifier key: "); ok {
			p.vkey = v
		}
		if v, ok := strings.CutPrefix(sc.Text(), "http: "); ok {
			p.url = v
			break
		}
	}
	go io.Copy(io.Discard, out)
	if p.url == "" || p.vkey == "" {
		t.Fatalf("provlog-witness did not print its address and key")
	}
	return p
}

func (p *witnessProc) add(t *testing.T, body []byte) (int, string) {
	t.Helper()
	resp, err := http.Post(p.url+"add-checkpoint", "text/plain", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The witness binary cosigns a log, is killed with SIGKILL, restarts on
// the same data directory, and still refuses a fork of what it cosigned;
// then it stops cleanly on SIGTERM.
func TestWitnessKillRestart(t *testing.T) {
	bin := buildWitness(t)
	dir := t.TempDir()
	skey, vkey, err := note.GenerateKey(rand.Reader, "example.com/witnessed")
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := note.NewSigner(skey)
	cfg := filepath.Join(dir, "logs.txt")
	if err := os.WriteFile(cfg, []byte("log example.com/witnessed "+vkey+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"--config", cfg, "--data", filepath.Join(dir, "data")}

	lg := &witnessLog{signer: signer}
	lg.add(t, 4, "a")
	fork := &witnessLog{signer: signer, hashes: append([]tlog.Hash(nil), lg.hashes...), n: lg.n}
	lg.add(t, 4, "a")
	fork.add(t, 4, "b")

	w := startWitness(t, bin, args...)
	body := lg.request(t, 0)
	code, resp := w.add(t, body)
	if code != 200 {
		t.Fatalf("first add-checkpoint: %d %q", code, resp)
	}
	v, err := fnote.NewVerifierForCosignatureV1(w.vkey)
	if err != nil {
		t.Fatal(err)
	}
	cp := body[bytes.Index(body, []byte("\n\n"))+2:]
	if _, err := note.Open(append(bytes.Clone(cp), resp...), note.VerifierList(v)); err != nil {
		t.Fatalf("cosignature: %v", err)
	}

	w.cmd.Process.Signal(syscall.SIGKILL)
	w.cmd.Wait()
	w = startWitness(t, bin, args...)
	if code, resp := w.add(t, fork.request(t, 8)); code != 422 {
		t.Errorf("fork after kill -9: %d %q, want 422", code, resp)
	}
	if code, resp := w.add(t, fork.request(t, 0)); code != 409 || resp != "8\n" {
		t.Errorf("old 0 after kill -9: %d %q, want 409 \"8\\n\"", code, resp)
	}
	lg.add(t, 3, "a")
	if code, resp := w.add(t, lg.request(t, 8)); code != 200 {
		t.Errorf("consistent growth after kill -9: %d %q", code, resp)
	}
	resp2, err := http.Get(w.url + "evidence")
	if err != nil {
		t.Fatal(err)
	}
	ev, _ := io.ReadAll(resp2.Body)
	resp2.Body.Close()
	if !bytes.Contains(ev, []byte(`"same-size-different-root"`)) {
		t.Errorf("evidence after the fork: %s", ev)
	}

	w.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- w.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("provlog-witness did not stop on SIGTERM")
	}
}
