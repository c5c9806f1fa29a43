package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/provlog/provlog/internal/buildinfo"
	provlogv1 "github.com/provlog/provlog/proto/provlog/v1"
)

// cliResult is one in-process run of provlog.
type cliResult struct {
	code           int
	stdout, stderr string
}

// runCLI runs provlog in-process with args, in the current directory and
// without PROVLOG_ variables.
func runCLI(t *testing.T, args ...string) cliResult {
	t.Helper()
	for _, v := range []string{"PROVLOG_LOG", "PROVLOG_LOG_KEY", "PROVLOG_TILES", "PROVLOG_TOKEN"} {
		t.Setenv(v, "")
	}
	var stdout, stderr bytes.Buffer
	code := execute(context.Background(), args, strings.NewReader(""), &stdout, &stderr)
	return cliResult{code, stdout.String(), stderr.String()}
}

// want fails the test unless the run exited with code and its stderr
// holds each of says.
func (r cliResult) want(t *testing.T, code int, says ...string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit %d, want %d; stdout %q, stderr %q", r.code, code, r.stdout, r.stderr)
	}
	for _, s := range says {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("stderr %q lacks %q", r.stderr, s)
		}
	}
}

func TestVersion(t *testing.T) {
	want := "provlog " + buildinfo.Read().String() + "\n"
	for _, args := range [][]string{{"version"}, {"--version"}} {
		if r := runCLI(t, args...); r.code != 0 || r.stdout != want {
			t.Errorf("provlog %s: exit %d, stdout %q; want %q", args[0], r.code, r.stdout, want)
		}
	}
	var v struct {
		Version, GoVersion string
	}
	if r := runCLI(t, "version", "--json"); r.code != 0 || json.Unmarshal([]byte(r.stdout), &v) != nil || v.Version == "" || v.GoVersion == "" {
		t.Errorf("provlog version --json: exit %d, %q", r.code, r.stdout)
	}
}

func TestCompletion(t *testing.T) {
	for shell, marker := range map[string]string{
		"bash": "__start_provlog",
		"zsh":  "#compdef provlog",
		"fish": "complete -c provlog",
	} {
		if r := runCLI(t, "completion", shell); r.code != 0 || !strings.Contains(r.stdout, marker) {
			t.Errorf("provlog completion %s: exit %d, no %q in %.200q (stderr %q)", shell, r.code, marker, r.stdout, r.stderr)
		}
	}
	// What the scripts call: the commands and flags provlog has.
	if r := runCLI(t, "__complete", "attest", "b"); r.code != 0 || !strings.Contains(r.stdout, "build") {
		t.Errorf("completing \"attest b\": exit %d, %q", r.code, r.stdout)
	}
	if r := runCLI(t, "__complete", "wait", "--ti"); !strings.Contains(r.stdout, "--timeout") {
		t.Errorf("completing \"wait --ti\": %q", r.stdout)
	}
	help := runCLI(t, "--help").stdout
	for _, cmd := range []string{"completion", "version", "wait"} {
		if !strings.Contains(help, "\n  "+cmd+" ") {
			t.Errorf("provlog --help does not list %s:\n%s", cmd, help)
		}
	}
	for _, cmd := range []string{"version", "wait"} {
		if r := runCLI(t, cmd, "--help"); r.code != 0 || !strings.Contains(r.stdout, "Exit codes") || !strings.Contains(r.stdout, "Example") {
			t.Errorf("provlog %s --help: %+v", cmd, r)
		}
	}
}

// writeLogKey writes a new log verifier key to dir/name and returns it.
func writeLogKey(t *testing.T, dir, name, origin string) string {
	t.Helper()
	_, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(vkey+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return vkey
}

// TestLogKeyForms gives the log key each way it may come, and the wrong
// ways, and checks what is used and what is said.
func TestLogKeyForms(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	vkey := writeLogKey(t, dir, "keys/log.pub", "example.com/log")
	os.WriteFile("garbage.pub", []byte("not a key\n"), 0o644)
	os.WriteFile("empty.pub", nil, 0o644)
	for _, tc := range []struct {
		arg, source string
		file        string // the file read, if any
		err         string // what the error says, if any
	}{
		{arg: vkey, source: keyFromFlag},
		{arg: "@keys/log.pub", source: keyFromFlag, file: "keys/log.pub"},
		{arg: "keys/log.pub", source: keyFromFlag, file: "keys/log.pub"}, // a path without the @
		{arg: "keys/nosuch.pub", err: `--log-key "keys/nosuch.pub" is neither a verifier key (malformed verifier id) nor a file (stat keys/nosuch.pub: no such file or directory)`},
		{arg: "keys", err: `--log-key "keys" is not a verifier key (malformed verifier id) and not a regular file`},
		{arg: "@garbage.pub", err: "log key file garbage.pub (--log-key): malformed verifier id"},
		{arg: "garbage.pub", err: "log key file garbage.pub (--log-key): malformed verifier id"},
		{arg: "@empty.pub", err: "log key file empty.pub (--log-key) is empty"},
		{arg: "@nosuch.pub", err: "reading the log key (--log-key): open nosuch.pub: no such file or directory"},
	} {
		k, err := loadLogKey(tc.arg, keyFromFlag)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("loadLogKey(%q) = %v, want an error saying %q", tc.arg, err, tc.err)
			}
		case err != nil:
			t.Errorf("loadLogKey(%q): %v", tc.arg, err)
		case k.vkey != vkey || k.source != tc.source || k.file != tc.file:
			t.Errorf("loadLogKey(%q) = %+v, want key %q from %s, file %q", tc.arg, k, vkey, tc.source, tc.file)
		}
	}

	// Without any, the command says how to give one.
	runCLI(t, "verify", "x.tlog-proof").want(t, exitUsage, "no log verifier key: pass --log-key", "provlog wait waits for it")
	// The environment, and the default file, are named as the sources.
	g := &globals{}
	g.cmd = newRoot(g)
	t.Setenv("PROVLOG_LOG_KEY", "@keys/log.pub")
	if _, err := g.verifierKey(); err != nil || g.key.source != keyFromEnv || !strings.Contains(g.key.String(), "from keys/log.pub (PROVLOG_LOG_KEY)") {
		t.Errorf("key from PROVLOG_LOG_KEY: %v, %v", g.key, err)
	}
	t.Setenv("PROVLOG_LOG_KEY", "")
	writeLogKey(t, dir, defaultLogKeyFile, "example.com/other")
	if _, err := g.verifierKey(); err != nil || g.key.source != keyFromDefault ||
		!strings.Contains(g.key.String(), "from provlog-data/log.pub, the default when neither --log-key nor PROVLOG_LOG_KEY is set") {
		t.Errorf("key from the default file: %v, %v", g.key, err)
	}
	if s := g.key.String(); !strings.HasPrefix(s, "log key example.com/other+") || strings.Count(s, "+") != 1 {
		t.Errorf("the key is named %q, want its name and hash only", s)
	}
}

func TestKeygenNames(t *testing.T) {
	t.Chdir(t.TempDir())
	for _, tc := range []struct{ typ, name, says string }{
		{"log", "not a url", `--name "not a url" has a space: a log key's name is the log's origin, a schemeless URL such as example.com/provlog`},
		{"log", "", `--name "" is empty`},
		{"log", "https://example.com/log", "has a scheme"},
		{"witness", "w+1", `has a '+': a witness key's name is the witness's name`},
	} {
		runCLI(t, "keygen", "--type", tc.typ, "--name", tc.name, "--out", "k").want(t, exitUsage, tc.says)
		if _, err := os.Stat("k.key"); err == nil {
			t.Fatalf("keygen --name %q wrote k.key", tc.name)
		}
	}
	if r := runCLI(t, "keygen", "--type", "log", "--name", "example.com/log", "--out", "k"); r.code != 0 || !strings.Contains(r.stdout, "verifier key: example.com/log+") {
		t.Errorf("keygen of a valid log name: %+v", r)
	}
}

// TestAttestFlagsNamed checks that flags the event package would refuse
// as statement fields are refused naming the flag.
func TestAttestFlagsNamed(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	runCLI(t, "keygen", "--type", "submitter", "--name", "ci", "--out", "ci").want(t, 0)
	os.WriteFile("app", []byte("app"), 0o644)
	commit := strings.Repeat("5e", 20)
	build := []string{"attest", "build", "--artifact", "app", "--builder-id", "https://ci.example.com", "--build-type", "https://ci.example.com/go",
		"--source-repo", "git+https://git.example.com/app", "--sign-key", "ci.key"}
	sign := []string{"attest", "sign", "--artifact", "app", "--build-index", "0", "--sign-key", "ci.key"}
	promote := []string{"attest", "promote", "--artifact", "app", "--build-index", "0", "--sign-key", "ci.key"}
	for _, tc := range []struct {
		args []string
		says string
	}{
		{append(build, "--source-commit", "abc123"), `--source-commit "abc123": want a 40- or 64-digit lowercase hex commit id`},
		{append(build, "--source-commit", strings.ToUpper(commit)), "(in lowercase)"},
		{append(build, "--source-commit", " "), "--source-commit is required"},
		{append(build, "--source-commit", commit, "--started", "2026-01-02T15:04:05Z", "--finished", "2026-01-02T15:00:00Z"), "--finished 2026-01-02T15:00:00Z is before --started"},
		{append(sign, "--algorithm", "ECDSA P-256", "--signature-key-id", "r", "--signature", "AAAA"), `--algorithm "ECDSA P-256": want a short token`},
		{append(sign, "--algorithm", "ed25519", "--signature-key-id", strings.Repeat("k", 300), "--signature", "AAAA"), "--signature-key-id: 300 bytes, want at most 256"},
		{append(sign, "--algorithm", "ed25519", "--signature-key-id", "r", "--signature", "not base64!"), "--signature: want the signature in standard base64"},
		{append(promote, "--to", "Prod"), `--to "Prod": want an environment name`},
		{append(promote, "--from", "dev env", "--to", "prod"), `--from "dev env": want an environment name`},
		{append(promote, "--from", "dev", "--to", "dev"), `--from and --to are both "dev"`},
	} {
		r := runCLI(t, tc.args...)
		r.want(t, exitUsage, tc.says)
		if strings.Contains(r.stderr, "statement") {
			t.Errorf("%s: the error names the statement's field, not the flag: %q", strings.Join(tc.args, " "), r.stderr)
		}
	}
	if r := runCLI(t, append(build, "--source-commit", commit)...); r.code != 0 {
		t.Errorf("attest build with good flags: %+v", r)
	}
}

func TestVerifyMalformedBundleIsUsage(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	writeLogKey(t, dir, "log.pub", "example.com/log")
	os.WriteFile("envelope.json", []byte(`{"payloadType": "application/vnd.in-toto+json"}`), 0o644)
	runCLI(t, "verify", "envelope.json", "--log-key", "@log.pub").want(t, exitUsage, "envelope.json is not a tlog-proof bundle: malformed input")
}

// pushbackLog answers the first fail Appends with ResourceExhausted and a
// RetryInfo delay, as provlogd pushes back, then appends at index 7.
type pushbackLog struct {
	provlogv1.UnimplementedLogServer
	fail int

	mu    sync.Mutex
	calls int
}

func (s *pushbackLog) Append(context.Context, *provlogv1.AppendRequest) (*provlogv1.AppendResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.calls++; s.calls <= s.fail {
		st, _ := status.New(codes.ResourceExhausted, "sequencer queue full").WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(10 * time.Millisecond)})
		return nil, st.Err()
	}
	return &provlogv1.AppendResponse{Index: 7}, nil
}

// TestPushbackIsSaid submits to a live log that pushes back twice: the
// entry is appended, and each wait is one line on stderr saying why.
func TestPushbackIsSaid(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	provlogv1.RegisterLogServer(s, &pushbackLog{fail: 2})
	go s.Serve(lis)
	t.Cleanup(s.Stop)
	writeLogKey(t, dir, "log.pub", "example.com/log")
	os.WriteFile("entry", []byte("an entry"), 0o644)
	r := runCLI(t, "submit", "entry", "--log", lis.Addr().String(), "--log-key", "@log.pub", "--timeout", "30s")
	if r.code != 0 || r.stdout != "7\n" {
		t.Fatalf("submit to a log pushing back: %+v, want index 7", r)
	}
	lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
	want := "provlog: the log at " + lis.Addr().String() + " is pushing back (ResourceExhausted: sequencer queue full); retrying append in "
	if len(lines) != 2 || !strings.HasPrefix(lines[0], want) || !strings.HasPrefix(lines[1], want) {
		t.Errorf("stderr %q, want two lines starting %q", r.stderr, want)
	}
}
