package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/mod/sumdb/note"

	"github.com/provlog/provlog/internal/buildinfo"
	"github.com/provlog/provlog/internal/daemon"
	"github.com/provlog/provlog/internal/provlogdproc"
	"github.com/provlog/provlog/witness"
)

// waitTimeout bounds every wait of these tests.
const waitTimeout = 30 * time.Second

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// execute runs provlogd with args in process and returns its exit code,
// stdout and stderr.
func execute(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var c config
	var stdout, stderr syncBuffer
	code := daemon.Execute(t.Context(), newCommand(&c, &stdout, &stderr), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// parse returns the configuration args give, as the command parses them.
func parse(t *testing.T, args ...string) (config, *cobra.Command) {
	t.Helper()
	var c config
	cmd := newCommand(&c, io.Discard, io.Discard)
	if err := cmd.ParseFlags(daemon.LongFlags(cmd, args)); err != nil {
		t.Fatalf("parsing %q: %v", args, err)
	}
	return c, cmd
}

// The flags are contracts (ARCHITECTURE.md, the README's flag table,
// scripts): each name and default stays as it was with Go's flag package.
func TestFlagNamesAndDefaults(t *testing.T) {
	want := map[string]string{
		"data":              "provlog-data",
		"origin":            "",
		"key":               "",
		"grpc-listen":       "127.0.0.1:7400",
		"http-listen":       "127.0.0.1:7401",
		"admission":         "attestations",
		"keyring":           "",
		"auth":              "",
		"tls-cert":          "",
		"tls-key":           "",
		"client-ca":         "",
		"witness-policy":    "",
		"witness-fail-open": "false",
		"witness-interval":  "500ms",
		"max-entry-size":    "65535",
		"batch-max-entries": "4096",
		"batch-max-age":     "1ms",
		"queue-max-entries": "65536",
		"read-concurrency":  "0",
		"storage":           "",
		"advertise":         "",
		"lease-ttl":         "3s",
		"debug-listen":      "",
		"shutdown-timeout":  "15s",
		"log-level":         "INFO",
		"log-format":        "text",
	}
	_, cmd := parse(t)
	for name := range want {
		f := cmd.Flags().Lookup(name)
		if f == nil {
			t.Errorf("no --%s flag", name)
			continue
		}
		if f.DefValue != want[name] {
			t.Errorf("--%s default %q, want %q", name, f.DefValue, want[name])
		}
	}
	var extra []string // --help and --version come when the command runs
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if _, ok := want[f.Name]; !ok {
			extra = append(extra, f.Name)
		}
	})
	if len(extra) > 0 {
		t.Errorf("flags %v are not in this test's list (add them, and to the README's flag table)", extra)
	}
}

// Flags are written --flag; the -flag form the daemons took with Go's
// flag package still works, with = or a separate value.
func TestFlagStyles(t *testing.T) {
	for _, args := range [][]string{
		{"--data", "/tmp/d", "--admission=open", "--batch-max-age", "-1ms", "--witness-fail-open"},
		{"-data", "/tmp/d", "-admission=open", "-batch-max-age", "-1ms", "-witness-fail-open"},
	} {
		c, _ := parse(t, args...)
		if c.data != "/tmp/d" || c.admission != "open" || c.batchMaxAge != -time.Millisecond || !c.witnessFailOpen {
			t.Errorf("%q: data %q, admission %q, batch-max-age %v, fail-open %v", args, c.data, c.admission, c.batchMaxAge, c.witnessFailOpen)
		}
	}
}

func TestHelp(t *testing.T) {
	for _, arg := range []string{"--help", "-h", "-help"} {
		code, out, errOut := execute(t, arg)
		if code != 0 || errOut != "" {
			t.Fatalf("%s: exit %d, stderr %q", arg, code, errOut)
		}
		for _, want := range []string{"Usage:\n  provlogd [flags]", "Examples:\n", "Exit codes:\n", "  0  stopped cleanly", "  2  usage", "--data directory", "--log-format format", "--version"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s: help lacks %q:\n%s", arg, want, out)
			}
		}
		_, cmd := parse(t)
		cmd.Flags().VisitAll(func(f *pflag.Flag) {
			if !strings.Contains(out, "--"+f.Name+" ") {
				t.Errorf("%s: help does not list --%s", arg, f.Name)
			}
			if strings.Contains(out, " -"+f.Name+" ") {
				t.Errorf("%s: help shows the one-dash -%s", arg, f.Name)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	code, out, errOut := execute(t, "--version")
	if want := "provlogd " + buildinfo.Read().String() + "\n"; code != 0 || out != want || errOut != "" {
		t.Errorf("--version: exit %d, stdout %q, stderr %q; want 0 and %q", code, out, errOut, want)
	}
}

// Bad flags and arguments exit 2 with one line naming what is wrong, before
// anything is bound or written.
func TestUsageErrors(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--no-such-flag"}, "unknown flag: --no-such-flag"},
		{[]string{"--log-format", "xml"}, `invalid argument "xml" for "--log-format" flag: want text or json`},
		{[]string{"--log-level", "loud"}, `"--log-level"`},
		{[]string{"--batch-max-entries", "many"}, `"--batch-max-entries"`},
		{[]string{"extra"}, `unknown command "extra"`},
		{[]string{"--admission", "closed"}, `--admission "closed": want attestations or open`},
		{[]string{"--read-concurrency", "-1"}, "--read-concurrency -1"},
		{[]string{"--client-ca", "ca.pem"}, "--client-ca needs --tls-cert and --tls-key"},
	} {
		code, out, errOut := execute(t, append([]string{"--data", dir}, tc.args...)...)
		if code != 2 || out != "" || !strings.HasPrefix(errOut, "provlogd: ") || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 2 and one line with %q", tc.args, code, out, errOut, tc.want)
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a usage error created the data directory: %v", err)
	}
}

// busy returns an address that a listener holds until the test ends.
func busy(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l.Addr().String()
}

// A busy port fails the start of a new log with exit 1 and one line naming
// the flag and the address, and leaves nothing behind: no data directory,
// no key, no keyring, no database.
func TestBusyPortLeavesNoFiles(t *testing.T) {
	for _, flag := range []string{"grpc-listen", "http-listen", "debug-listen"} {
		t.Run(flag, func(t *testing.T) {
			dir := t.TempDir()
			data, key := filepath.Join(dir, "data"), filepath.Join(dir, "elsewhere.key")
			addr := busy(t)
			args := map[string]string{"grpc-listen": "127.0.0.1:0", "http-listen": "127.0.0.1:0", "debug-listen": "127.0.0.1:0"}
			args[flag] = addr
			code, out, errOut := execute(t, "--data", data, "--key", key,
				"--grpc-listen", args["grpc-listen"], "--http-listen", args["http-listen"], "--debug-listen", args["debug-listen"])
			want := fmt.Sprintf("provlogd: --%s %s: bind: address already in use", flag, addr)
			if code != 1 || out != "" || !strings.HasPrefix(errOut, want) || strings.Count(errOut, "\n") != 1 {
				t.Errorf("exit %d, stdout %q, stderr %q; want 1 and one line starting %q", code, out, errOut, want)
			}
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				t.Errorf("a failed start left %s", e.Name())
			}
		})
	}
}

// running is a run of provlogd in process.
type running struct {
	provlogdproc.Banner
	cancel context.CancelFunc
	done   chan error
}

// start runs run(c) in process until the test ends and returns once it
// has printed its banner.
func start(t *testing.T, c config) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	r := &running{cancel: cancel, done: make(chan error, 1)}
	go func() {
		err := run(ctx, c, pw)
		pw.Close()
		r.done <- err
	}()
	t.Cleanup(func() {
		cancel()
		pr.Close()
		select {
		case <-r.done:
		case <-time.After(waitTimeout):
			t.Error("run did not return after its context ended")
		}
	})
	// A run that never prints its banner fails the read, not the test
	// binary's timeout.
	timer := time.AfterFunc(waitTimeout, func() { pr.CloseWithError(errors.New("no banner within the wait")) })
	defer timer.Stop()
	b, _, err := provlogdproc.ReadBanner(pr, nil)
	if err != nil {
		t.Fatalf("banner: %v", err)
	}
	r.Banner = b
	return r
}

// stop ends the run and returns its error.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err // for the cleanup
		return err
	case <-time.After(waitTimeout):
		t.Fatal("run did not return after its context ended")
		return nil
	}
}

// testConfig is the configuration of a log in dir on ephemeral ports.
func testConfig(t *testing.T, dir string, args ...string) config {
	t.Helper()
	c, _ := parse(t, append([]string{"--data", dir, "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"}, args...)...)
	return c
}

// captureLog sends the default logger's lines, as JSON, to the returned
// buffer until the test ends.
func captureLog(t *testing.T) *syncBuffer {
	t.Helper()
	var buf syncBuffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	t.Cleanup(func() { slog.SetDefault(old) })
	return &buf
}

// logLines returns the JSON log lines in buf whose msg is msg.
func logLines(t *testing.T, buf *syncBuffer, msg string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for l := range strings.Lines(buf.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", l, err)
		}
		if m["msg"] == msg {
			lines = append(lines, m)
		}
	}
	return lines
}

// post adds entry with POST /add and returns the answer.
func post(t *testing.T, base, entry string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"add", strings.NewReader(entry))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The shutdown line gives the integrated size and the published one: a
// log whose witness cannot be reached integrates entries but publishes
// none of them.
func TestStopLineGivesBothSizes(t *testing.T) {
	dir := t.TempDir()
	wk, err := witness.CreateKey(filepath.Join(dir, "w.key"), filepath.Join(dir, "w.pub"), "w.test/w1")
	if err != nil {
		t.Fatal(err)
	}
	policy := filepath.Join(dir, "policy")
	// Nothing listens on a port a listener held and closed (but for a
	// race with another process, which only makes the witness answer
	// wrongly): every round of witnessing fails.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	if err := os.WriteFile(policy, []byte("witness w1 "+wk.Verifier+" http://"+dead+"\nquorum w1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	logs := captureLog(t)
	r := start(t, testConfig(t, filepath.Join(dir, "data"), "--admission", "open", "--witness-policy", policy, "--witness-interval", "10ms"))
	for i, e := range []string{"a", "b", "c"} {
		if code, body := post(t, r.HTTPURL, e); code != 200 || body != fmt.Sprint(i) {
			t.Fatalf("POST /add %q: %d %q, want 200 %d", e, code, body, i)
		}
	}
	if err := r.stop(t); err != nil {
		t.Fatalf("run: %v", err)
	}
	lines := logLines(t, logs, "provlogd stopped")
	if len(lines) != 1 || lines[0]["size"] != 3.0 || lines[0]["published"] != 0.0 {
		t.Errorf("stop lines %v, want one with size 3 and published 0", lines)
	}
}

// The log's files are written before its ports accept a connection, and
// nothing is written until both are bound; see also TestStartOrder for
// what a client sees.
func TestStartWritesBeforeServing(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	r := start(t, testConfig(t, data))
	for _, name := range []string{"log.key", "log.pub", "keyring.json", "db"} {
		if _, err := os.Stat(filepath.Join(data, name)); err != nil {
			t.Errorf("serving, but %v", err)
		}
	}
	pub, err := os.ReadFile(filepath.Join(data, "log.pub"))
	if err != nil || strings.TrimSpace(string(pub)) != r.VerifierKey {
		t.Fatalf("log.pub %q (%v), banner's verifier key %q", pub, err, r.VerifierKey)
	}
	if _, err := note.NewVerifier(r.VerifierKey); err != nil {
		t.Errorf("verifier key: %v", err)
	}
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
}

// dialErr dials addr once and returns the error, nil if it connected.
func dialErr(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err == nil {
		c.Close()
	}
	return err
}

// isRefused reports whether err is a refused connection.
func isRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }
