package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/provlog/provlog/internal/buildinfo"
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

// keygen runs "provlog-witness keygen ARGS".
func keygen(args []string, stdout, stderr io.Writer) int {
	return execute(context.Background(), append([]string{"keygen"}, args...), stdout, stderr)
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

	reserved := false
	testHookReserved = func(a net.Addr) {
		reserved = true
		if _, err := os.Stat(c.data); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("--listen bound, and the data directory exists already (%v)", err)
		}
		if conn, err := net.DialTimeout("tcp", a.String(), 5*time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
			if err == nil {
				conn.Close()
			}
			t.Errorf("reserved %s: dial %v, want connection refused until the key is written", a, err)
		}
	}
	t.Cleanup(func() { testHookReserved = nil })

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
	if !reserved {
		t.Error("run did not reserve --listen")
	}
	if pub, err := os.ReadFile(filepath.Join(c.data, "witness.pub")); err != nil || strings.TrimSpace(string(pub)) != vk {
		t.Errorf("serving, but witness.pub = %q (%v), want %q", pub, err, vk)
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

// serve runs newHTTPServer(h, l) on a loopback port until the test ends,
// and returns its address.
func serve(t *testing.T, h http.Handler, l serverLimits) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := newHTTPServer(h, l)
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	return ln.Addr().String()
}

// dial connects to addr; the connection is closed when the test ends, and
// no read or write on it outlives deadline.
func dial(t *testing.T, addr string, deadline time.Time) net.Conn {
	t.Helper()
	ctx, cancel := context.WithDeadline(t.Context(), deadline)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(deadline)
	return conn
}

// A client that reads a large response one byte at a time cannot hold the
// handler: the write timeout fails its writes, and the server closes the
// connection.
func TestHTTPServerSlowReader(t *testing.T) {
	const size = 64 << 20 // far more than the socket buffers hold
	handlerDone := make(chan error, 1)
	big := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		for n := 0; n < size; n += len(chunk) {
			if _, err := rw.Write(chunk); err != nil {
				handlerDone <- err
				return
			}
		}
		handlerDone <- nil
	})
	addr := serve(t, big, serverLimits{write: 500 * time.Millisecond})
	deadline := time.Now().Add(20 * time.Second)
	conn := dial(t, addr, deadline)
	if _, err := io.WriteString(conn, "GET /big HTTP/1.1\r\nHost: witness\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	// The reader takes one byte every 10 ms until the handler is done,
	// then drains what the kernel buffered as fast as it can.
	readerDone := make(chan error, 1)
	var fast atomic.Bool
	var read atomic.Int64
	go func() {
		b := make([]byte, 1)
		for {
			if fast.Load() && len(b) == 1 {
				b = make([]byte, 64<<10)
			}
			n, err := conn.Read(b)
			read.Add(int64(n))
			if err != nil {
				readerDone <- err
				return
			}
			if !fast.Load() {
				time.Sleep(10 * time.Millisecond)
			}
		}
	}()
	select {
	case err := <-handlerDone:
		if err == nil {
			t.Fatal("the handler wrote 64 MiB to a client reading 100 bytes a second")
		}
	case <-time.After(time.Until(deadline)):
		t.Fatal("the handler is still writing to a slow reader after 20 s: no write timeout")
	}
	// The server closed the connection: after what was buffered, the
	// reader sees its end (EOF or a reset), not its own deadline, and the
	// response is cut short.
	fast.Store(true)
	select {
	case err := <-readerDone:
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("the connection stayed open until the client's deadline (%d bytes read)", read.Load())
		}
		if read.Load() >= size {
			t.Errorf("read %d bytes, the whole response", read.Load())
		}
	case <-time.After(time.Until(deadline) + time.Second):
		t.Fatal("reader did not stop")
	}
}

// A client that sends its request one byte at a time is cut off by the
// header timeout, and oversized headers are refused.
func TestHTTPServerSlowSenderAndHeaderCap(t *testing.T) {
	addr := serve(t, http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {}),
		serverLimits{readHeader: 300 * time.Millisecond, read: 300 * time.Millisecond})
	deadline := time.Now().Add(20 * time.Second)
	conn := dial(t, addr, deadline)
	closed := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, conn) // returns when the server closes
		closed <- err
	}()
	req := "GET /healthz HTTP/1.1\r\nHost: witness\r\nX-Slow: " + strings.Repeat("a", 1000) + "\r\n\r\n"
	sent := 0
send:
	for ; sent < len(req); sent++ {
		select {
		case err := <-closed:
			// A close with unread bytes in the server's buffer reaches the
			// client as a reset: closed by the server all the same.
			if err != nil && !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("connection ended with %v, want the server to close it", err)
			}
			break send
		case <-time.After(10 * time.Millisecond):
		}
		if _, err := conn.Write([]byte{req[sent]}); err != nil {
			break // closed by the server
		}
	}
	if sent == len(req) {
		t.Fatalf("the server read a %d-byte request sent at 100 bytes a second", len(req))
	}

	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(func() *http.Request {
		r, _ := http.NewRequestWithContext(t.Context(), "GET", "http://"+addr+"/", nil)
		r.Header.Set("X-Big", strings.Repeat("a", 100<<10))
		return r
	}())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("100 KiB of headers: %d, want 431", resp.StatusCode)
	}
}

// TestLoadKeyAfterCrash: whatever a start that crashed while creating the
// witness key left in the data directory, the next start completes it.
func TestLoadKeyAfterCrash(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string)
	}{
		{"nothing", func(*testing.T, string) {}},
		{"a lone pub file", func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, "witness.pub"), "witness.test/old+00000000+AQ==\n")
		}},
		{"a key without its pub file", func(t *testing.T, dir string) {
			if _, err := loadKey(config{data: dir, name: "witness.test/w"}); err != nil {
				t.Fatal(err)
			}
			os.Remove(filepath.Join(dir, "witness.pub"))
		}},
		{"a torn temporary key", func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, ".witness.key.tmp-1"), "PRIVATE+KEY+torn")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.setup(t, dir)
			k, err := loadKey(config{data: dir, name: "witness.test/w"})
			if err != nil {
				t.Fatalf("start after the crash: %v", err)
			}
			pub, err := os.ReadFile(filepath.Join(dir, "witness.pub"))
			if err != nil || strings.TrimSpace(string(pub)) != k.Verifier {
				t.Fatalf("witness.pub = %q, %v; want %q", pub, err, k.Verifier)
			}
			v, err := fnote.NewVerifierForCosignatureV1(k.Verifier)
			if err != nil {
				t.Fatal(err)
			}
			msg, err := note.Sign(&note.Note{Text: "o\n1\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"}, k.Signer)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := note.Open(msg, note.VerifierList(v)); err != nil {
				t.Fatalf("witness.pub does not verify the key's cosignature: %v", err)
			}
		})
	}
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// run executes provlog-witness with args in process.
func runCommand(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := execute(t.Context(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestHelpAndVersion(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-help"}, {"keygen", "--help"}} {
		code, out, errOut := runCommand(t, args...)
		if code != 0 || errOut != "" || !strings.Contains(out, "Examples:\n") || !strings.Contains(out, "Exit codes") {
			t.Errorf("%q: exit %d, stderr %q, help:\n%s", args, code, errOut, out)
		}
	}
	_, out, _ := runCommand(t, "--help")
	for _, flag := range []string{"--config file", "--data directory", "--key file", "--name name", "--listen address", "--poll-interval duration", "--shutdown-timeout duration", "--log-level level", "--log-format format", "--version"} {
		if !strings.Contains(out, flag) {
			t.Errorf("help lacks %q", flag)
		}
	}
	code, out, errOut := runCommand(t, "--version")
	if want := "provlog-witness " + buildinfo.Read().String() + "\n"; code != 0 || out != want || errOut != "" {
		t.Errorf("--version: exit %d, %q, %q; want %q", code, out, errOut, want)
	}
}

func TestFlagDefaults(t *testing.T) {
	cmd := newCommand(io.Discard, io.Discard)
	for name, want := range map[string]string{
		"config": "", "key": "", "name": defaultName, "data": "provlog-witness-data", "listen": "127.0.0.1:7402",
		"poll-interval": "1m0s", "shutdown-timeout": "10s", "log-level": "INFO", "log-format": "text",
	} {
		if f := cmd.Flags().Lookup(name); f == nil || f.DefValue != want {
			t.Errorf("--%s: %v, want default %q", name, f, want)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "--config is required"},
		{[]string{"--config", "x", "--poll-interval", "0s"}, "--poll-interval 0s must be positive"},
		{[]string{"--config", "x", "--log-format", "xml"}, `invalid argument "xml" for "--log-format"`},
		{[]string{"--config", "x", "stray"}, `unknown command "stray"`},
		{[]string{"keygen", "--name", "w.test/w"}, "--name and --key are required"},
	} {
		code, out, errOut := runCommand(t, tc.args...)
		if code != 2 || out != "" || !strings.HasPrefix(errOut, "provlog-witness: ") || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 2 and %q", tc.args, code, out, errOut, tc.want)
		}
	}
}

// logsFile writes a config file witnessing one log.
func logsFile(t *testing.T, dir string) string {
	t.Helper()
	_, vkey, err := note.GenerateKey(rand.Reader, "example.com/log")
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "logs.txt")
	write(t, cfg, "log example.com/log "+vkey+"\n")
	return cfg
}

// A busy --listen fails the start with exit 1, naming the flag and the
// address, and creates neither the data directory nor a key.
func TestBusyPortLeavesNoFiles(t *testing.T) {
	dir := t.TempDir()
	cfg := logsFile(t, dir)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	data := filepath.Join(dir, "data")
	code, out, errOut := runCommand(t, "--config", cfg, "--data", data, "--listen", l.Addr().String())
	want := "provlog-witness: --listen " + l.Addr().String() + ": bind: address already in use"
	if code != 1 || out != "" || !strings.HasPrefix(errOut, want) {
		t.Errorf("exit %d, stdout %q, stderr %q; want 1 and %q", code, out, errOut, want)
	}
	if _, err := os.Stat(data); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed start left the data directory (%v)", err)
	}
}
