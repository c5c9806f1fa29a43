package integration

// Tests of how the provlog binary fails and waits: at once when no log
// listens, naming the log key when a checkpoint does not verify, and
// provlog wait for a log being started.

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCLIFailsFastWithoutLog runs each gRPC command against a port nothing
// listens on. Each exits 3 at once with one line saying so; a command that
// retried instead would run into --timeout and say something else.
func TestCLIFailsFastWithoutLog(t *testing.T) {
	dir := t.TempDir()
	local := cli{t: t, dir: dir}
	local.ok("keygen", "--type", "log", "--name", testOrigin, "--out", "log")
	local.ok("keygen", "--type", "submitter", "--name", "ci", "--out", "ci")
	writeFile(t, dir, "entry", "an entry")
	addr := freeAddr(t, "127.0.0.1")
	c := cli{t: t, dir: dir, global: []string{"--log", addr, "--log-key", "@log.pub", "--timeout", "20s"}}
	want := "provlog: no log at " + addr + " (connection refused): is provlogd running?\n"
	for _, args := range [][]string{
		{"checkpoint"},
		{"submit", "entry"},
		{"submit", "--wait", "entry"},
		{"get", "0"},
		{"prove", "0"},
		{"search", "--digest", "sha256:" + strings.Repeat("ab", 32)},
		{"attest", "build", "--digest", "sha256:" + strings.Repeat("ab", 32), "--builder-id", "https://ci.example.com",
			"--build-type", "https://ci.example.com/go", "--source-commit", strings.Repeat("5e", 20), "--sign-key", "ci.key", "--submit"},
		{"attest", "promote", "--digest", "sha256:" + strings.Repeat("ab", 32), "--to", "dev", "--sign-key", "ci.key", "--submit"}, // looks up the build first
	} {
		if r := c.run(nil, args...); r.code != 3 || r.stderr != want || r.stdout != "" {
			t.Errorf("want exit 3 and %q; %v", want, r)
		}
	}
}

// TestCLIWaitForLog starts provlog wait before the log it waits for, in a
// directory without the log's key: it waits for provlogd to write
// provlog-data/log.pub and to serve, then exits 0. Without a log, it gives
// up after --timeout saying what it waited for.
func TestCLIWaitForLog(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t, "127.0.0.1")
	c := cli{t: t, dir: dir, global: []string{"--log", addr}}
	r := c.want(3, "wait", "--timeout", "300ms")
	if want := "provlog: gave up after 300ms waiting for the log: no log key file provlog-data/log.pub yet (provlogd writes it when it first starts)\n"; r.stderr != want {
		t.Errorf("wait without a key file: stderr %q, want %q", r.stderr, want)
	}

	// provlog wait, then the log.
	wait := exec.Command(provlogCLI(t), "wait", "--log", addr, "--timeout", "2m")
	wait.Dir = dir
	wait.Env = withoutProvlogEnv()
	var stdout, stderr bytes.Buffer
	wait.Stdout, wait.Stderr = &stdout, &stderr
	if err := wait.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = wait.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		wait.Process.Kill()
		<-exited
	})
	d := mustStartProvlogd(t, filepath.Join(dir, "provlog-data"), "--grpc-listen", addr)
	<-exited // provlog wait gives up by itself after its --timeout
	if waitErr != nil || stdout.String() != "ready: localhost/provlog at "+addr+", tree size 0\n" {
		t.Fatalf("provlog wait started before the log: %v\nstdout %q\nstderr %q", waitErr, stdout.String(), stderr.String())
	}
	// The key it waited for is the default of every command.
	if out := c.ok("checkpoint", "--json"); !strings.Contains(out, `"size": 0`) {
		t.Errorf("checkpoint with the default key after wait: %q", out)
	}
	var ready struct {
		Ready  bool
		Origin string
	}
	if err := json.Unmarshal([]byte(c.ok("wait", "--json")), &ready); err != nil || !ready.Ready || ready.Origin != "localhost/provlog" {
		t.Errorf("wait --json on a running log: %+v, %v", ready, err)
	}

	d.mustStop(t)
	r = c.want(3, "wait", "--timeout", "300ms")
	if want := "provlog: gave up after 300ms waiting for the log: no log at " + addr + " (connection refused): is provlogd running?\n"; r.stderr != want {
		t.Errorf("wait for a stopped log: stderr %q, want %q", r.stderr, want)
	}
}

// withoutProvlogEnv is the environment without PROVLOG_ variables, as cli
// runs provlog.
func withoutProvlogEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PROVLOG_") {
			env = append(env, kv)
		}
	}
	return env
}

// TestCLINamesTheKey runs commands against a log with another log's key in
// the default provlog-data/log.pub: each failure names the key and that it
// is the default, and submit --wait prints the index of what it appended
// before failing on the proof.
func TestCLINamesTheKey(t *testing.T) {
	dir := t.TempDir()
	local := cli{t: t, dir: dir}
	d := mustStartProvlogd(t, filepath.Join(dir, "real"))
	defer d.mustStop(t)
	local.ok("keygen", "--type", "log", "--name", "localhost/provlog", "--out", "other")
	other, _ := os.ReadFile(filepath.Join(dir, "other.pub"))
	otherID := strings.Join(strings.SplitN(strings.TrimSpace(string(other)), "+", 3)[:2], "+")
	os.MkdirAll(filepath.Join(dir, "provlog-data"), 0o755)
	writeFile(t, dir, "provlog-data/log.pub", string(other))
	writeFile(t, dir, "entry", "an entry")
	c := cli{t: t, dir: dir, global: []string{"--log", d.GRPCAddr}}
	named := "(checked with the log key " + otherID + " from provlog-data/log.pub, the default when neither --log-key nor PROVLOG_LOG_KEY is set; is it this log's key?)"

	if r := c.want(3, "checkpoint"); !strings.Contains(r.stderr, "checkpoint not signed by the log") || !strings.Contains(r.stderr, named) {
		t.Errorf("checkpoint with another log's key: stderr %q, want the reason and %q", r.stderr, named)
	}
	r := c.want(3, "submit", "--wait", "entry")
	if r.stdout != "0\n" || !strings.Contains(r.stderr, "entry: appended at index 0, but no proof: checkpoint not signed by the log") || !strings.Contains(r.stderr, named) {
		t.Errorf("submit --wait with another log's key: want index 0 on stdout and the key named; %v", r)
	}
	r = c.want(3, "submit", "--wait", "--json", "entry")
	var results []struct {
		Index     uint64
		Duplicate bool
		Error     string
	}
	if err := json.Unmarshal([]byte(r.stdout), &results); err != nil || len(results) != 1 || !results[0].Duplicate || !strings.Contains(results[0].Error, "not signed by the log") {
		t.Errorf("submit --wait --json with another log's key: %v (%v)", r, err)
	}

	// The real key, as a path without @; then verify with the wrong default.
	realKey := filepath.Join("real", "log.pub")
	c.ok("prove", "0", "--log-key", realKey, "--out", "entry.tlog-proof")
	if r := c.want(1, "verify", "entry.tlog-proof"); !strings.Contains(r.stderr, "invalid: checkpoint not signed by the log") || !strings.Contains(r.stderr, named) {
		t.Errorf("verify with another log's key: stderr %q, want %q", r.stderr, named)
	}
	if r := c.want(1, "verify", "entry.tlog-proof", "--log-key", "@other.pub"); !strings.Contains(r.stderr, "(checked with the log key "+otherID+" from other.pub (--log-key))") {
		t.Errorf("verify with --log-key @other.pub: stderr %q", r.stderr)
	}
	c.ok("verify", "entry.tlog-proof", "--log-key", realKey)
	if r := c.want(2, "verify", "entry", "--log-key", realKey); !strings.Contains(r.stderr, "entry is not a tlog-proof bundle") {
		t.Errorf("verify of a file that is not a bundle: %v", r)
	}
}
