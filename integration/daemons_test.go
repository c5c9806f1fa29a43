package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/provlog/provlog/proto/provlog/v1"
)

// Whoever can connect to a port of a starting provlogd finds its files
// written (issue 18, item 2): a client polls both ports of the real binary
// as it starts in a new data directory, and the moment a connection
// succeeds, log.pub holds the whole verifier key and the keyring exists.
func TestProvlogdPortOpenMeansKeysWritten(t *testing.T) {
	for i := range 3 {
		data := filepath.Join(t.TempDir(), "data")
		grpcAddr, httpAddr := freeAddr(t, "127.0.0.1"), freeAddr(t, "127.0.0.1")
		cmd := exec.Command(provlogdBin, "--data", data, "--grpc-listen", grpcAddr, "--http-listen", httpAddr)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{}) // closed once Wait has set waitErr
		var waitErr error
		go func() { waitErr = cmd.Wait(); close(exited) }()
		t.Cleanup(func() {
			cmd.Process.Kill()
			<-exited
		})
		deadline := time.Now().Add(startTimeout)
		for _, addr := range []string{grpcAddr, httpAddr} {
			for {
				c, err := net.DialTimeout("tcp", addr, time.Second)
				if err == nil {
					c.Close()
					break
				}
				select {
				case <-exited:
					t.Fatalf("start %d: provlogd exited (%v):\n%s", i, waitErr, stderr.String())
				default:
				}
				if time.Now().After(deadline) {
					t.Fatalf("start %d: %s not open within %v: %v", i, addr, startTimeout, err)
				}
				time.Sleep(time.Millisecond)
			}
			pub, err := os.ReadFile(filepath.Join(data, "log.pub"))
			if err != nil {
				t.Fatalf("start %d: %s accepts connections, but %v", i, addr, err)
			}
			if _, err := note.NewVerifier(strings.TrimSpace(string(pub))); err != nil || !bytes.HasSuffix(pub, []byte("\n")) {
				t.Fatalf("start %d: %s accepts connections, but log.pub is %q (%v)", i, addr, pub, err)
			}
			if _, err := os.Stat(filepath.Join(data, "keyring.json")); err != nil {
				t.Fatalf("start %d: %s accepts connections, but %v", i, addr, err)
			}
		}
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
			if waitErr != nil {
				t.Fatalf("start %d: after SIGTERM: %v\n%s", i, waitErr, stderr.String())
			}
		case <-time.After(stopTimeout):
			t.Fatalf("start %d: provlogd did not stop within %v", i, stopTimeout)
		}
	}
}

// A busy port fails a new log's start (issue 18, item 9): exit 1, one line
// naming the flag and the address, and no data directory.
func TestProvlogdBusyPort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	data := filepath.Join(t.TempDir(), "data")
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, provlogdBin, "--data", data, "--grpc-listen", "127.0.0.1:0", "--http-listen", l.Addr().String())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("provlogd on a busy port: %v, want exit status 1", err)
	}
	want := "provlogd: --http-listen " + l.Addr().String() + ": bind: address already in use"
	if !strings.HasPrefix(stderr.String(), want) || strings.Count(stderr.String(), "\n") != 1 || stdout.Len() != 0 {
		t.Errorf("stdout %q, stderr %q; want one line starting %q", stdout.String(), stderr.String(), want)
	}
	if _, err := os.Stat(data); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed start left the data directory (%v)", err)
	}
}

// With --log-format json every line provlogd logs is a JSON object; at
// --log-level debug each refused submission is logged with its reason and
// the writer's identity, never its token (issue 18, item 10); the last
// line gives the integrated and the published size.
func TestProvlogdJSONLogsRefusals(t *testing.T) {
	dir := t.TempDir()
	const token = "s3cret-integration-token"
	h := sha256.Sum256([]byte(token))
	auth := filepath.Join(dir, "auth.json")
	if err := os.WriteFile(auth, []byte(`{"identities":[{"name":"ci","tokenSHA256":"`+hex.EncodeToString(h[:])+`","roles":["writer"]}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	d := mustStartProvlogd(t, filepath.Join(dir, "data"), "--admission", "attestations", "--auth", auth,
		"--log-format", "json", "--log-level", "debug")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// The log starts with its genesis keyring; the refusals add nothing.
	v, err := note.NewVerifier(d.VerifierKey)
	if err != nil {
		t.Fatal(err)
	}
	start, err := fetchCheckpoint(ctx, d.HTTPURL, v)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.HTTPURL+"add", strings.NewReader("not an event"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	code, body, _, err := httpDo(req)
	if err != nil || code != http.StatusBadRequest {
		t.Fatalf("POST /add of garbage: %d %q %v", code, body, err)
	}
	bad := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer not-"+token)
	if _, err := d.Log.Append(bad, &pb.AppendRequest{Entry: []byte("x")}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("Append with an unknown token: %v", err)
	}
	d.mustStop(t)

	raw, err := os.ReadFile(d.logPath)
	if err != nil {
		t.Fatal(err)
	}
	var refused, stopped []map[string]any
	for line := range strings.Lines(string(raw)) {
		if strings.HasPrefix(line, "integration: ") || strings.HasPrefix(line, "stdout: ") {
			continue // the test's own lines, and the banner
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("log line %q is not JSON: %v", line, err)
			continue
		}
		switch m["msg"] {
		case "submission refused":
			refused = append(refused, m)
		case "provlogd stopped":
			stopped = append(stopped, m)
		}
	}
	if strings.Contains(string(raw), "s3cret") {
		t.Errorf("a token appears in the log:\n%s", raw)
	}
	want := []string{
		"POST /add 400 ci " + strings.TrimSpace(string(body)),
		"/provlog.v1.Log/Append Unauthenticated unauthenticated",
	}
	if len(refused) != len(want) {
		t.Fatalf("refusals logged: %v, want %d", refused, len(want))
	}
	for i, m := range refused {
		got := fmt.Sprintf("%v %v %v %v", m["method"], m["code"], m["identity"], m["reason"])
		if !strings.HasPrefix(got, want[i]) || m["level"] != "DEBUG" || m["peer"] == "" {
			t.Errorf("refusal %d: %v, want %q", i, m, want[i])
		}
	}
	if n := float64(start.Size); len(stopped) != 1 || stopped[0]["size"] != n || stopped[0]["published"] != n {
		t.Errorf("stop lines %v, want one with size and published %d", stopped, start.Size)
	}
}
