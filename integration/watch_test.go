package integration

// Tests of provlog monitor --watch and its --exec hook, run as binaries
// against a real provlogd admitting signed events.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// watchSetup is a log admitting events of the keys ci and other, and a
// watch file naming the repository https://git.example.com/app and the
// key ci.
type watchSetup struct {
	t   *testing.T
	dir string
	c   cli // with the log's flags
}

func newWatchSetup(t *testing.T) *watchSetup {
	dir := t.TempDir()
	local := cli{t: t, dir: dir}
	for _, k := range []string{"ci", "other"} {
		local.ok("keygen", "--type", "submitter", "--name", k, "--out", k)
	}
	writeFile(t, dir, "keyring.json", `{"keys": [
		{"name": "ci", "publicKeyFile": "ci.pub", "roles": ["builder"]},
		{"name": "other", "publicKeyFile": "other.pub", "roles": ["builder"]}
	]}`)
	writeFile(t, dir, "watch.json", `{
		"repositories": ["https://git.example.com/app"],
		"keys": [{"name": "ci", "publicKeyFile": "ci.pub"}]
	}`)
	d := mustStartProvlogd(t, filepath.Join(dir, "data"), "--origin", testOrigin,
		"--admission", "attestations", "--keyring", filepath.Join(dir, "keyring.json"))
	t.Cleanup(func() { d.mustStop(t) })
	return &watchSetup{t: t, dir: dir, c: cli{t: t, dir: dir, global: []string{
		"--log", d.GRPCAddr, "--log-key", "@" + filepath.Join(d.DataDir, "log.pub"), "--tiles", d.HTTPURL}}}
}

// build logs a build event of repo signed by key and returns its index.
func (s *watchSetup) build(n int, repo, key string) uint64 {
	s.t.Helper()
	return index(s.t, s.c.ok("attest", "build", "--digest", fmt.Sprintf("sha256:%064x", n),
		"--builder-id", "https://ci.example.com/runner", "--build-type", "https://ci.example.com/go@v1",
		"--source-repo", repo, "--source-commit", strings.Repeat("5e", 20), "--sign-key", key+".key", "--submit"))
}

// alertLine is the part of a --json alert line the tests read.
type alertLine struct {
	Alert   bool   `json:"alert"`
	Index   uint64 `json:"index"`
	Type    string `json:"type"`
	Matches []struct {
		Rule, Value string
	} `json:"matches"`
	Subjects []string        `json:"subjects"`
	Entry    json.RawMessage `json:"entry"`
}

// alerts parses the alert lines of monitor --json output (every line must
// be one JSON object), keyed by index, with their raw lines.
func alerts(t *testing.T, stdout string) (map[uint64]alertLine, map[uint64]string) {
	t.Helper()
	got, raw := map[uint64]alertLine{}, map[uint64]string{}
	for line := range strings.Lines(stdout) {
		var a alertLine
		if err := json.Unmarshal([]byte(line), &a); err != nil {
			t.Fatalf("monitor --json line %q: %v", line, err)
		}
		if a.Alert {
			got[a.Index], raw[a.Index] = a, line
		}
	}
	return got, raw
}

// TestCLIMonitorWatchExec follows a log with --watch and an --exec hook:
// the first run alerts on nothing (no state: only new events), the next on
// exactly the events in the watched names, each hook receiving its alert's
// JSON on stdin and its index and type in the environment; a failing hook
// is reported and the state moves on; a hook past --exec-timeout is killed
// with its children.
func TestCLIMonitorWatchExec(t *testing.T) {
	s := newWatchSetup(t)
	s.build(0, "git+https://git.example.com/app", "other") // before the first poll: no alert
	watch := []string{"monitor", "--state", "state", "--once", "--watch", "watch.json"}
	if out := s.c.ok(append(watch, "--json")...); strings.Contains(out, `"alert"`) {
		t.Fatalf("first run without state alerted:\n%s", out)
	}

	repo := s.build(1, "git+https://git.example.com/app@refs/heads/main", "other")
	s.build(2, "git+https://git.example.com/app2", "other")
	key := s.build(3, "https://git.example.com/lib", "ci")
	both := s.build(4, "https://git.example.com/app.git", "ci")
	hook := `cat > "hook-$PROVLOG_INDEX.json"; printf %s "$PROVLOG_EVENT_TYPE" > "type-$PROVLOG_INDEX"`
	r := s.c.run(nil, append(watch, "--json", "--exec", hook)...)
	if r.code != 0 {
		t.Fatalf("%v", r)
	}
	got, raw := alerts(t, r.stdout)
	want := map[uint64]string{repo: "repository https://git.example.com/app", key: "key ci", both: "repository https://git.example.com/app, key ci"}
	if len(got) != len(want) {
		t.Errorf("alerts on %v, want on %v:\n%s", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)), r.stdout)
	}
	for i, w := range want {
		a, ok := got[i]
		var ms []string
		for _, m := range a.Matches {
			ms = append(ms, m.Rule+" "+m.Value)
		}
		if !ok || a.Type != "build" || strings.Join(ms, ", ") != w || len(a.Subjects) != 1 || !json.Valid(a.Entry) {
			t.Errorf("alert on entry %d: %+v, want a build event matching %s", i, a, w)
			continue
		}
		stdin, err := os.ReadFile(filepath.Join(s.dir, fmt.Sprintf("hook-%d.json", i)))
		if err != nil || string(stdin) != raw[i] {
			t.Errorf("hook of entry %d read %q (%v) on stdin, want the alert line %q", i, stdin, err, raw[i])
		}
		if typ, _ := os.ReadFile(filepath.Join(s.dir, fmt.Sprintf("type-%d", i))); string(typ) != "build" {
			t.Errorf("hook of entry %d: PROVLOG_EVENT_TYPE %q, want build", i, typ)
		}
	}
	if hooks, _ := filepath.Glob(filepath.Join(s.dir, "hook-*.json")); len(hooks) != len(want) {
		t.Errorf("hooks ran for %v, want one per alert", hooks)
	}

	// A failing hook is reported; the alert is printed and the state moves on.
	failing := s.build(5, "https://git.example.com/app", "other")
	r = s.c.run(nil, append(watch, "--exec", "echo hook says no >&2; exit 7")...)
	wantLine := fmt.Sprintf(" ALERT entry %d build event matches repository https://git.example.com/app\n", failing)
	if r.code != 0 || !strings.Contains(r.stdout, wantLine) || !strings.Contains(r.stderr, "hook says no") ||
		!strings.Contains(r.stderr, fmt.Sprintf("--exec on entry %d: exit status 7", failing)) {
		t.Errorf("monitor with a failing hook: %v\nwant exit 0, stdout with %q and the failure on stderr", r, wantLine)
	}
	if out := s.c.ok(watch...); strings.Contains(out, "ALERT") {
		t.Errorf("the run after the failing hook alerted again:\n%s", out)
	}

	// A hook past --exec-timeout is killed, with what it started.
	slow := s.build(6, "https://git.example.com/app", "other")
	start := time.Now()
	r = s.c.run(nil, append(watch, "--exec-timeout", "300ms", "--exec", "sleep 60 & echo $! > sleep.pid; wait")...)
	if r.code != 0 || !strings.Contains(r.stderr, fmt.Sprintf("--exec on entry %d: killed after 300ms", slow)) {
		t.Errorf("monitor with a slow hook: %v\nwant exit 0 and the kill on stderr", r)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("monitor with a hook killed after 300ms took %v", d)
	}
	pidText, err := os.ReadFile(filepath.Join(s.dir, "sleep.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(pidText)))
	if err != nil {
		t.Fatal(err)
	}
	if !processGone(pid, 10*time.Second) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Errorf("the hook's child %d outlived the hook's timeout", pid)
	}

	// Misuse is a usage error.
	for _, args := range [][]string{
		{"monitor", "--state", "state", "--once", "--exec", "true"},
		{"monitor", "--state", "state", "--once", "--watch-from", "0"},
		{"monitor", "--state", "state", "--once", "--watch", "absent.json"},
	} {
		s.c.want(2, args...)
	}
}

// TestCLIMonitorWatchSIGTERM stops a monitor with SIGTERM while its hook
// runs: the monitor exits 0 at once, the hook is killed, and the alert is
// delivered again by the next run (at least once).
func TestCLIMonitorWatchSIGTERM(t *testing.T) {
	s := newWatchSetup(t)
	s.c.ok("monitor", "--state", "state", "--once", "--watch", "watch.json")
	first := s.build(0, "https://git.example.com/app", "ci")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	args := append(append([]string{}, s.c.global...), "monitor", "--state", "state", "--watch", "watch.json",
		"--interval", "50ms", "--exec", `echo $$ > hook.pid; exec sleep 60`)
	cmd := exec.CommandContext(ctx, provlogCLI(t), args...)
	cmd.Dir = s.dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	hookPID := 0
	for hookPID == 0 {
		if b, err := os.ReadFile(filepath.Join(s.dir, "hook.pid")); err == nil && bytes.HasSuffix(b, []byte("\n")) {
			hookPID, _ = strconv.Atoi(strings.TrimSpace(string(b)))
			break
		}
		select {
		case err := <-done:
			t.Fatalf("monitor exited (%v) before its hook ran:\n%s%s", err, stdout.String(), stderr.String())
		case <-ctx.Done():
			t.Fatalf("the hook never ran:\n%s%s", stdout.String(), stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	stopped := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		done <- err // for the cleanup
		if err != nil {
			t.Errorf("monitor stopped by SIGTERM: %v, want exit 0\n%s", err, stderr.String())
		}
	case <-ctx.Done():
		t.Fatal("monitor did not stop after SIGTERM")
	}
	if d := time.Since(stopped); d > 20*time.Second {
		t.Errorf("monitor took %v to stop with a hook running", d)
	}
	if !processGone(hookPID, 10*time.Second) {
		syscall.Kill(hookPID, syscall.SIGKILL)
		t.Errorf("the hook %d outlived the monitor's SIGTERM", hookPID)
	}
	if !strings.Contains(stdout.String(), fmt.Sprintf("ALERT entry %d ", first)) {
		t.Errorf("monitor printed no alert on entry %d:\n%s", first, stdout.String())
	}
	// The alert's hook did not finish, so the next run alerts again.
	if out := s.c.ok("monitor", "--state", "state", "--once", "--watch", "watch.json"); !strings.Contains(out, fmt.Sprintf("ALERT entry %d ", first)) {
		t.Errorf("the run after SIGTERM did not deliver the interrupted alert again:\n%s", out)
	}
}

// processGone waits up to d for process pid to be gone (or a zombie).
func processGone(pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if errors.Is(err, os.ErrNotExist) {
			return true
		}
		// The state follows the command name in parentheses: "Z" is dead.
		if i := bytes.LastIndexByte(stat, ')'); err == nil && i >= 0 && bytes.HasPrefix(bytes.TrimSpace(stat[i+1:]), []byte("Z")) {
			return true
		}
		if err != nil && syscall.Kill(pid, 0) == syscall.ESRCH {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}
