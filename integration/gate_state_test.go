package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGateStateDetectsFork: with --state the gate proves every event's
// checkpoint consistent with the last checkpoint it verified. A log
// restarted from scratch with the same key and origin (a fork: another
// tree under the same signatures) is a reason to deny, with the evidence
// written beside the state file.
func TestGateStateDetectsFork(t *testing.T) {
	dir := t.TempDir()
	local := cli{t: t, dir: dir}
	local.ok("keygen", "--type", "submitter", "--name", "ci", "--out", "ci")
	writeFile(t, dir, "keyring.json", `{"keys": [{"name": "ci", "publicKeyFile": "ci.pub", "roles": ["builder"]}]}`)
	writeFile(t, dir, "policy.json", `{"builders": ["https://ci.example.com/b"]}`)
	writeFile(t, dir, "app.tar.gz", "app")
	writeFile(t, dir, "other.tar.gz", "other")
	key := filepath.Join(dir, "log.key")
	build := func(c cli, artifact, commit string) uint64 {
		return index(t, c.ok("attest", "build", "--artifact", artifact, "--builder-id", "https://ci.example.com/b", "--build-type", "https://ci.example.com/t",
			"--source-repo", "https://git.example.com/app", "--source-commit", strings.Repeat(commit, 20), "--sign-key", "ci.key", "--submit"))
	}
	start := func(data string) (*provlogd, cli) {
		d := mustStartProvlogd(t, filepath.Join(dir, data), "--origin", testOrigin, "--key", key,
			"--admission", "attestations", "--keyring", filepath.Join(dir, "keyring.json"))
		pub := filepath.Join(dir, "log.pub")
		if _, err := os.Stat(pub); err != nil {
			b, err := os.ReadFile(filepath.Join(d.DataDir, "log.pub"))
			if err != nil {
				// The key was given with --key: its verifier key is beside it.
				b, err = os.ReadFile(key + ".pub")
			}
			if err != nil {
				t.Fatalf("log verifier key: %v", err)
			}
			writeFile(t, dir, "log.pub", string(b))
		}
		return d, cli{t: t, dir: dir, global: []string{"--log", d.GRPCAddr, "--log-key", "@" + pub, "--tiles", d.HTTPURL}}
	}

	a, c := start("a")
	build(c, "app.tar.gz", "a1")
	size := build(c, "other.tar.gz", "b2") + 1 // after the log's own entries (its genesis keyring) and ours
	r := c.want(1, "gate", "--artifact", "app.tar.gz", "--env", "dev", "--policy", "policy.json", "--state", "gate.state")
	if !strings.Contains(r.stdout, fmt.Sprintf("consistency: every event's checkpoint is consistent with gate.state (size 0, now %d)", size)) {
		t.Fatalf("first gate with --state:\n%s", r.stdout)
	}
	// Again: consistent with itself.
	if r := c.want(1, "gate", "--artifact", "app.tar.gz", "--env", "dev", "--policy", "policy.json", "--state", "gate.state"); !strings.Contains(r.stdout, fmt.Sprintf("(size %d, now %d)", size, size)) {
		t.Fatalf("second gate with --state:\n%s", r.stdout)
	}
	a.mustStop(t)

	// The same key and origin, another tree of the same size.
	b, c := start("b")
	defer b.mustStop(t)
	build(c, "other.tar.gz", "c3")
	if n := build(c, "app.tar.gz", "a1") + 1; n != size {
		t.Fatalf("the second log has size %d, want %d", n, size)
	}
	twoRoots := fmt.Sprintf("two roots for size %d", size)
	r = c.want(1, "gate", "--artifact", "app.tar.gz", "--env", "dev", "--policy", "policy.json", "--state", "gate.state")
	if !strings.Contains(r.stdout, "the log is not consistent with the checkpoint in gate.state") || !strings.Contains(r.stdout, twoRoots) {
		t.Fatalf("gate over a forked log:\n%s", r.stdout)
	}
	ev, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	found := false
	for _, f := range ev {
		if b, err := os.ReadFile(f); err == nil && strings.Contains(string(b), twoRoots) {
			found = true
		}
	}
	if !found {
		t.Errorf("no evidence file beside gate.state among %v", ev)
	}
	// Without --state the same gate has nothing to compare with: it decides
	// over the new tree (deny here for want of a promotion only).
	if r := c.want(1, "gate", "--artifact", "app.tar.gz", "--env", "dev", "--policy", "policy.json"); strings.Contains(r.stdout, "not consistent") {
		t.Errorf("gate without --state:\n%s", r.stdout)
	}
}
