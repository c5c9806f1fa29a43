package integration

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tourStep is one block of the README's tour: shell to run, and the lines
// its output must show.
type tourStep struct {
	line   int // of the block in the README
	script string
	want   []string
}

// readTour returns the README's tour: every ```sh block after a
// "<!-- tour -->" line, each with the ```text block after a following
// "<!-- tour output -->" line, in order.
func readTour(t *testing.T, path string) []tourStep {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	var steps []tourStep
	block := func(i int, fence string) (body []string, end int) {
		if i >= len(lines) || lines[i] != fence {
			t.Fatalf("README.md:%d: want %s after the tour marker, got %q", i+1, fence, lines[min(i, len(lines)-1)])
		}
		for j := i + 1; j < len(lines); j++ {
			if lines[j] == "```" {
				return lines[i+1 : j], j
			}
		}
		t.Fatalf("README.md:%d: unterminated block", i+1)
		return nil, 0
	}
	for i := 0; i < len(lines); i++ {
		switch strings.TrimSpace(lines[i]) {
		case "<!-- tour -->":
			body, end := block(i+1, "```sh")
			steps = append(steps, tourStep{line: i + 2, script: strings.Join(body, "\n")})
			i = end
		case "<!-- tour output -->":
			if len(steps) == 0 || steps[len(steps)-1].want != nil {
				t.Fatalf("README.md:%d: tour output without its block", i+1)
			}
			body, end := block(i+1, "```text")
			steps[len(steps)-1].want = body
			i = end
		}
	}
	return steps
}

// outputMatches reports whether every non-empty line of want matches a
// line of got, in order ("…" in want matches any text); it returns the
// first line that does not.
func outputMatches(got, want []string) (string, bool) {
	j := 0
	for _, w := range want {
		if strings.TrimSpace(w) == "" {
			continue
		}
		re := regexp.MustCompile("^" + strings.ReplaceAll(regexp.QuoteMeta(w), "…", ".*") + "$")
		for j < len(got) && !re.MatchString(got[j]) {
			j++
		}
		if j == len(got) {
			return w, false
		}
		j++
	}
	return "", true
}

// tourPorts are the default addresses the tour's daemons listen on.
var tourPorts = []string{"127.0.0.1:7400", "127.0.0.1:7401", "127.0.0.1:7402"}

func portsInUse() []string {
	var busy []string
	for _, a := range tourPorts {
		if c, err := net.DialTimeout("tcp", a, 200*time.Millisecond); err == nil {
			c.Close()
			busy = append(busy, a)
		}
	}
	return busy
}

// lockTour takes a machine-wide lock: tours of concurrent test runs would
// fight over the default ports.
func lockTour(ctx context.Context, t *testing.T) {
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "provlog-readme-tour.lock"), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() }) // closing releases the lock
	for syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		select {
		case <-ctx.Done():
			t.Fatal("another test run's README tour held the lock until the deadline")
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// TestREADMETour runs the README's tour, every block marked as such, as
// one bash script from the repository's root on freshly built binaries,
// and checks the outputs the README shows (indices, the search listing,
// valid:, ALLOW and DENY, the cosigned checkpoint). It also checks that the
// tour stops everything it starts: no process left, the ports free.
func TestREADMETour(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("the README tour uses curl, which is not installed (.ci/run installs it)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	lockTour(ctx, t)
	for busy := portsInUse(); len(busy) > 0; busy = portsInUse() {
		select {
		case <-ctx.Done():
			t.Fatalf("the tour's ports %v are in use: is a provlogd or provlog-witness running?", busy)
		case <-time.After(500 * time.Millisecond):
		}
	}

	steps := readTour(t, "../README.md")
	if len(steps) < 5 {
		t.Fatalf("%d tour blocks in README.md", len(steps))
	}
	var script strings.Builder
	script.WriteString("set -euo pipefail\n")
	for i, s := range steps {
		fmt.Fprintf(&script, "echo '@@tour step %d@@'\n%s\n", i, s.script)
	}
	script.WriteString("echo '@@tour step end@@'\n")
	path := filepath.Join(t.TempDir(), "tour.sh")
	if err := os.WriteFile(path, []byte(script.String()), 0o644); err != nil {
		t.Fatal(err)
	}

	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, "bash", path)
	cmd.Dir = root
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PROVLOG_") && !strings.HasPrefix(kv, "TMPDIR=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	tmp := t.TempDir()
	cmd.Env = append(cmd.Env, "TMPDIR="+tmp)
	// The tour and whatever it starts in the background are one process
	// group, killed whole on timeout and at the end.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	pgid := cmd.Process.Pid
	leftover := syscall.Kill(-pgid, 0) == nil
	t.Cleanup(func() { syscall.Kill(-pgid, syscall.SIGKILL) })

	// Split the output at the step markers.
	outputs := map[int][]string{}
	step, done := -1, false
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		l := sc.Text()
		var n int
		if _, err := fmt.Sscanf(l, "@@tour step %d@@", &n); err == nil {
			step = n
			continue
		}
		if l == "@@tour step end@@" {
			done = true
			continue
		}
		outputs[step] = append(outputs[step], l)
	}
	if runErr != nil || !done {
		t.Fatalf("the tour failed in the block at README.md:%d: %v\noutput of that block:\n%s\nstderr (last 4 KiB):\n%s",
			steps[max(step, 0)].line, runErr, strings.Join(outputs[step], "\n"), lastBytes(stderr.String(), 4096))
	}
	for i, s := range steps {
		if w, ok := outputMatches(outputs[i], s.want); !ok {
			t.Errorf("README.md:%d: the block's output shows no line %q after the ones before it; it printed:\n%s", s.line, w, strings.Join(outputs[i], "\n"))
		}
	}
	if leftover {
		t.Error("the tour left processes running")
	}
	if busy := portsInUse(); len(busy) > 0 {
		t.Errorf("after the tour, %v still listen", busy)
	}
}

// lastBytes returns the last n bytes of s.
func lastBytes(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

func TestOutputMatches(t *testing.T) {
	got := []string{"0", "x", "valid: sha256:ab at index 4 of o (checkpoint size 5)", "DENY y"}
	if _, ok := outputMatches(got, []string{"0", "", "valid: … at index 4 of o (checkpoint size 5)", "DENY y"}); !ok {
		t.Error("in-order lines with a wildcard do not match")
	}
	if w, ok := outputMatches(got, []string{"DENY y", "0"}); ok || w != "0" {
		t.Errorf("out of order: %q %v", w, ok)
	}
	if _, ok := outputMatches(got, []string{"valid: …5"}); ok {
		t.Error("a partial line matched")
	}
}
