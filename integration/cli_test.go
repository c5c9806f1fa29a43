package integration

// Tests of the provlog command-line client, run as a binary against real
// provlogd processes.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/provlog/provlog/internal/provlogdproc"
)

var (
	provlogCLIOnce sync.Once
	provlogCLIBin  string
	provlogCLIErr  error
)

// provlogCLI builds cmd/provlog once, beside the provlogd binary TestMain
// built (and removes).
func provlogCLI(t *testing.T) string {
	t.Helper()
	provlogCLIOnce.Do(func() {
		bin := filepath.Join(filepath.Dir(provlogdBin), "provlog")
		if provlogCLIErr = provlogdproc.Build(context.Background(), "github.com/provlog/provlog/cmd/provlog", bin); provlogCLIErr != nil {
			return
		}
		provlogCLIBin = bin
	})
	if provlogCLIErr != nil {
		t.Fatal(provlogCLIErr)
	}
	return provlogCLIBin
}

// cliRun is one run of the provlog binary.
type cliRun struct {
	args           []string
	code           int
	stdout, stderr string
}

func (r cliRun) String() string {
	return fmt.Sprintf("provlog %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// cli runs provlog in dir with args and stdin, without any PROVLOG_
// variable from the environment.
type cli struct {
	t      *testing.T
	dir    string
	global []string // flags prepended to every run
}

func (c cli) run(stdin []byte, args ...string) cliRun {
	c.t.Helper()
	all := append(append([]string{}, c.global...), args...)
	cmd := exec.Command(provlogCLI(c.t), all...)
	cmd.Dir = c.dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PROVLOG_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := cliRun{args: args, stdout: stdout.String(), stderr: stderr.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatalf("running provlog %s: %v", strings.Join(args, " "), err)
	}
	if r.code != 0 && strings.Count(strings.TrimSuffix(r.stderr, "\n"), "\n") > 0 && !strings.Contains(strings.Join(args, " "), "audit") {
		c.t.Errorf("provlog %s: error is not one line on stderr:\n%s", strings.Join(args, " "), r.stderr)
	}
	return r
}

// ok runs provlog and fails unless it exits 0; it returns stdout.
func (c cli) ok(args ...string) string {
	c.t.Helper()
	r := c.run(nil, args...)
	if r.code != 0 {
		c.t.Fatalf("%v", r)
	}
	return r.stdout
}

// want runs provlog and fails unless it exits with code.
func (c cli) want(code int, args ...string) cliRun {
	c.t.Helper()
	r := c.run(nil, args...)
	if r.code != code {
		c.t.Fatalf("want exit %d; %v", code, r)
	}
	return r
}

// index parses the index a submission printed.
func index(t *testing.T, out string) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(strings.TrimSpace(out), 10, 64)
	if err != nil {
		t.Fatalf("output %q: want an index", out)
	}
	return n
}

// TestCLIArtifactStory tells one artifact's life with the provlog binary:
// keys, a keyring, build, sign, promotions dev → staging → prod with a
// second approval, search, the deploy gate allowing and denying, offline
// verification of a proof bundle and of tampered copies, get, prove,
// checkpoint, audit and monitor.
func TestCLIArtifactStory(t *testing.T) {
	dir := t.TempDir()
	local := cli{t: t, dir: dir}

	// Submitter keys and the keyring naming them.
	keyIDs := map[string]string{}
	for _, k := range []struct{ name, kind string }{
		{"builder", "ed25519"}, {"signer", "ecdsa-p256"}, {"alice", "ecdsa-p256"}, {"bob", "ed25519"},
	} {
		var res struct {
			KeyID, PrivateKeyFile string
		}
		out := local.ok("keygen", "--type", "submitter", "--kind", k.kind, "--name", k.name, "--out", k.name, "--json")
		if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.KeyID) != 64 {
			t.Fatalf("keygen --json = %q (%v)", out, err)
		}
		keyIDs[k.name] = res.KeyID
		if fi, err := os.Stat(filepath.Join(dir, k.name+".key")); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s.key: %v, %v; want mode 0600", k.name, fi, err)
		}
	}
	local.want(2, "keygen", "--type", "submitter", "--name", "again", "--out", "bob") // never overwrites
	writeFile(t, dir, "keyring.json", `{
  "keys": [
    {"name": "builder", "publicKeyFile": "builder.pub", "roles": ["builder"]},
    {"name": "signer", "publicKeyFile": "signer.pub", "roles": ["signer"]},
    {"name": "alice", "publicKeyFile": "alice.pub", "roles": ["promoter"]},
    {"name": "bob", "publicKeyFile": "bob.pub", "roles": ["approver"]}
  ],
  "environments": [
    {"name": "dev"},
    {"name": "staging", "from": "dev"},
    {"name": "prod", "from": "staging", "approvals": 2}
  ]
}`)
	d := mustStartProvlogd(t, filepath.Join(dir, "data"), "--origin", testOrigin,
		"--admission", "attestations", "--keyring", filepath.Join(dir, "keyring.json"))
	defer d.mustStop(t)
	logKey := "@" + filepath.Join(d.DataDir, "log.pub")
	c := cli{t: t, dir: dir, global: []string{"--log", d.GRPCAddr, "--log-key", logKey, "--tiles", d.HTTPURL}}

	// The artifact's life.
	writeFile(t, dir, "app.tar.gz", "the contents of app 1.2.3")
	writeFile(t, dir, "app.sig", "a signature made by the release key")
	sum := sha256.Sum256([]byte("the contents of app 1.2.3"))
	digest := "sha256:" + hex.EncodeToString(sum[:])
	const builderID = "https://ci.example.com/runner@v2"
	// The log may hold entries of its own before ours (an attestation log
	// starts with its genesis keyring): ours follow from its size.
	var cp struct {
		Origin string
		Size   uint64
	}
	if err := json.Unmarshal([]byte(c.ok("checkpoint", "--json")), &cp); err != nil || cp.Origin != testOrigin {
		t.Fatalf("checkpoint --json before the first event: %+v (%v)", cp, err)
	}
	first := cp.Size
	build := index(t, c.ok("attest", "build", "--artifact", "app.tar.gz",
		"--builder-id", builderID, "--build-type", "https://ci.example.com/go@v1",
		"--source-repo", "git+https://git.example.com/app", "--source-commit", strings.Repeat("5e", 20),
		"--invocation-id", "run-7", "--started", "2026-01-02T15:04:05Z", "--finished", "2026-01-02T15:09:00Z",
		"--dependency", "pkg:golang/golang.org/x/mod@v0.42.0=sha256:"+strings.Repeat("ab", 32),
		"--sign-key", "builder.key", "--submit"))
	sign := index(t, c.ok("attest", "sign", "--artifact", "app.tar.gz", "--algorithm", "ecdsa-p256-sha256",
		"--signature-key-id", "release", "--signature-file", "app.sig", "--sign-key", "signer.key", "--submit"))
	dev := index(t, c.ok("attest", "promote", "--artifact", "app.tar.gz", "--to", "dev", "--sign-key", "alice.key", "--submit"))
	staging := index(t, c.ok("attest", "promote", "--digest", digest, "--from", "dev", "--to", "staging",
		"--build-index", strconv.FormatUint(build, 10), "--sign-key", "alice.key", "--submit"))
	c.ok("attest", "promote", "--artifact", "app.tar.gz", "--from", "staging", "--to", "prod",
		"--rationale", "release 1.2.3", "--change-ref", "CHG-42", "--sign-key", "alice.key", "--out", "prod.json")
	if r := c.want(3, "submit", "prod.json"); !strings.Contains(r.stderr, "approvals") {
		t.Errorf("prod promotion with one approval: stderr %q, want the log's reason", r.stderr)
	}
	c.ok("approve", "--envelope", "prod.json", "--sign-key", "bob.key", "--out", "prod.json")
	prod := index(t, c.ok("submit", "--wait", "prod.json"))
	if got, want := []uint64{build, sign, dev, staging, prod}, []uint64{first, first + 1, first + 2, first + 3, first + 4}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("indices %v, want %v", got, want)
	}
	// The same event again gets its index back.
	if again := index(t, c.ok("submit", "prod.json")); again != prod {
		t.Errorf("resubmitted prod promotion got index %d, want %d", again, prod)
	}

	// Search lists the five events.
	lines := strings.Split(strings.TrimSpace(c.ok("search", "--digest", digest)), "\n")
	var types []string
	for _, l := range lines {
		f := strings.Split(l, "\t")
		types = append(types, f[0]+":"+f[1])
	}
	if want := fmt.Sprintf("[%d:build %d:sign %d:promote %d:promote %d:promote]", build, sign, dev, staging, prod); fmt.Sprint(types) != want {
		t.Errorf("search --digest lists %v, want %s:\n%s", types, want, strings.Join(lines, "\n"))
	}
	var found []struct {
		Index   uint64
		Type    string
		Signers []string
		Promote *struct{ From, To string }
	}
	if err := json.Unmarshal([]byte(c.ok("search", "--artifact", "app.tar.gz", "--json")), &found); err != nil || len(found) != 5 {
		t.Fatalf("search --json: %d events, %v", len(found), err)
	}
	if p := found[4]; p.Type != "promote" || p.Promote == nil || p.Promote.To != "prod" || len(p.Signers) != 2 {
		t.Errorf("search --json, last event: %+v", p)
	}
	if out := c.ok("search", "--builder-id", builderID); !strings.HasPrefix(out, fmt.Sprintf("%d\tbuild\t", build)) || strings.Count(out, "\n") != 1 {
		t.Errorf("search --builder-id = %q", out)
	}

	// The deploy gate allows prod.
	writeFile(t, dir, "policy.json", `{
  "builders": ["`+builderID+`"],
  "sourceRepositories": ["git+https://git.example.com/*"],
  "keys": {"signer": "signer.pub", "bob": "bob.pub"},
  "requiredSigners": ["signer"],
  "promotionPath": ["dev", "staging", "prod"],
  "approvals": {"prod": {"count": 2, "keys": ["bob", "`+keyIDs["alice"]+`"]}}
}`)
	if out := c.ok("gate", "--artifact", "app.tar.gz", "--env", "prod", "--policy", "policy.json"); !strings.HasPrefix(out, "ALLOW "+digest+" to prod") {
		t.Errorf("gate output %q", out)
	}
	var dec struct {
		Decision string
		Reasons  []string
		Events   []json.RawMessage
	}
	if err := json.Unmarshal([]byte(c.ok("gate", "--digest", digest, "--env", "staging", "--policy", "policy.json", "--json")), &dec); err != nil ||
		dec.Decision != "allow" || len(dec.Reasons) != 0 || len(dec.Events) != 5 {
		t.Errorf("gate --json for staging: %+v (%v)", dec, err)
	}

	// An artifact that was built but not signed nor promoted is denied, with
	// every reason.
	writeFile(t, dir, "other.tar.gz", "an unreleased build")
	other := index(t, c.ok("attest", "build", "--artifact", "other.tar.gz", "--builder-id", builderID, "--build-type", "https://ci.example.com/go@v1",
		"--source-repo", "git+https://git.example.com/app", "--source-commit", strings.Repeat("6f", 20), "--sign-key", "builder.key", "--submit"))
	r := c.want(1, "gate", "--artifact", "other.tar.gz", "--env", "prod", "--policy", "policy.json")
	for _, reason := range []string{"DENY sha256:", "no sign event signed by signer", "no promotion into dev",
		"no promotion into staging from dev", "no promotion into prod from staging"} {
		if !strings.Contains(r.stdout, reason) {
			t.Errorf("gate for an unpromoted artifact: output lacks %q:\n%s", reason, r.stdout)
		}
	}
	if !strings.Contains(r.stderr, "deny") {
		t.Errorf("gate deny: stderr %q", r.stderr)
	}
	// A policy the artifact's build does not meet: every reason is listed.
	writeFile(t, dir, "strict.json", `{
  "builders": ["https://other.example.com/builder"],
  "sourceRepositories": ["git+https://git.example.com/app/"],
  "promotionPath": ["dev", "staging", "prod"],
  "approvals": {"prod": {"count": 3}}
}`)
	r = c.want(1, "gate", "--artifact", "app.tar.gz", "--env", "prod", "--policy", "strict.json", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &dec); err != nil || dec.Decision != "deny" {
		t.Fatalf("gate --json deny: %v\n%s", err, r.stdout)
	}
	joined := strings.Join(dec.Reasons, "\n")
	for _, reason := range []string{`builder "` + builderID + `" is not allowed`, `source repository "git+https://git.example.com/app" is not allowed`,
		fmt.Sprintf("promotion into dev at index %d is for a build the policy does not accept", dev), fmt.Sprintf("promotion into prod from staging at index %d", prod)} {
		if !strings.Contains(joined, reason) {
			t.Errorf("strict gate: reasons lack %q:\n%s", reason, joined)
		}
	}
	if r := c.want(1, "gate", "--artifact", "app.tar.gz", "--env", "qa", "--policy", "policy.json"); !strings.Contains(r.stdout, `"qa" is not on the policy's promotion path`) {
		t.Errorf("gate for an unknown environment: %v", r)
	}
	writeFile(t, dir, "bad-policy.json", `{"builder": []}`)
	c.want(2, "gate", "--artifact", "app.tar.gz", "--env", "prod", "--policy", "bad-policy.json")

	// Offline verification of the bundle submit --wait wrote.
	bundle, err := os.ReadFile(filepath.Join(dir, "prod.json.tlog-proof"))
	if err != nil {
		t.Fatal(err)
	}
	offline := cli{t: t, dir: dir, global: []string{"--log-key", logKey, "--log", "127.0.0.1:1"}} // no log needed
	if out := offline.ok("verify", "prod.json.tlog-proof", "--artifact", "app.tar.gz"); !strings.HasPrefix(out, "valid: promote event about [") {
		t.Errorf("verify output %q", out)
	}
	if r := offline.want(1, "verify", "prod.json.tlog-proof", "--artifact", "other.tar.gz"); !strings.Contains(r.stderr, "not sha256:") {
		t.Errorf("verify against another artifact: %v", r)
	}
	for name, b := range tamperedBundles(t, bundle) {
		writeFile(t, dir, "tampered.tlog-proof", string(b))
		// A flipped byte may leave a bundle that does not verify (exit 1)
		// or a file that is not a tlog-proof bundle at all (exit 2); never
		// a valid one.
		r := offline.run(nil, "verify", "tampered.tlog-proof")
		malformed := strings.HasPrefix(name, "byte ") && r.code == 2 && strings.Contains(r.stderr, "is not a tlog-proof bundle")
		if !malformed && (r.code != 1 || !strings.Contains(r.stderr, "invalid")) {
			t.Errorf("bundle with %s: want exit 1 with the reason (or 2 if no longer a bundle); %v", name, r)
		}
	}
	// Another log's key, even with the same origin, rejects the bundle.
	local.ok("keygen", "--type", "log", "--name", testOrigin, "--out", "other-log")
	if r := local.want(1, "verify", "prod.json.tlog-proof", "--log-key", "@other-log.pub"); !strings.Contains(r.stderr, "not signed by the log") {
		t.Errorf("verify with another log's key: %v", r)
	}

	// get, prove, checkpoint.
	var ev struct {
		Type    string
		Signers []string
		Promote struct{ From, To, ChangeRef string }
	}
	if err := json.Unmarshal([]byte(c.ok("get", strconv.FormatUint(prod, 10), "--json")), &ev); err != nil ||
		ev.Type != "promote" || ev.Promote.To != "prod" || ev.Promote.ChangeRef != "CHG-42" || len(ev.Signers) != 2 {
		t.Errorf("get --json: %+v (%v)", ev, err)
	}
	if raw, _ := os.ReadFile(filepath.Join(dir, "prod.json")); c.ok("get", strconv.FormatUint(prod, 10)) != string(raw) {
		t.Errorf("get prints another envelope than the one submitted")
	}
	c.want(3, "get", "1000")
	c.ok("prove", strconv.FormatUint(sign, 10), "--out", "sign.tlog-proof")
	if out := offline.ok("verify", "sign.tlog-proof", "--digest", digest); !strings.Contains(out, "sign event") {
		t.Errorf("verify of a proved sign event: %q", out)
	}
	size := other + 1 // the last entry is the unreleased build
	if err := json.Unmarshal([]byte(c.ok("checkpoint", "--json")), &cp); err != nil || cp.Origin != testOrigin || cp.Size != size {
		t.Errorf("checkpoint --json: %+v (%v), want size %d", cp, err, size)
	}

	// Audit (twice, the second against the first's state) and one monitor poll.
	if out := c.ok("audit", "--state", "audit.state"); !strings.Contains(out, "audit OK") || !strings.Contains(out, fmt.Sprintf("tree size %d,", size)) {
		t.Errorf("audit output %q", out)
	}
	if out := c.ok("audit", "--state", "audit.state"); !strings.Contains(out, fmt.Sprintf("extends the previously audited checkpoint of size %d\n", size)) {
		t.Errorf("second audit output %q", out)
	}
	if out := c.ok("monitor", "--state", "monitor.state", "--once"); !strings.Contains(out, fmt.Sprintf(" size %d ", size)) {
		t.Errorf("monitor --once output %q", out)
	}
}

// tamperedBundles returns copies of a tlog-proof bundle each with one
// change: a bit of the entry, the index, each proof hash, the checkpoint's
// origin, size, root and signature, and single bytes across the file.
func tamperedBundles(t *testing.T, bundle []byte) map[string][]byte {
	t.Helper()
	lines := strings.Split(string(bundle), "\n")
	if len(lines) < 9 || !strings.HasPrefix(lines[1], "extra ") || !strings.HasPrefix(lines[2], "index ") {
		t.Fatalf("bundle is not a tlog-proof with an entry:\n%s", bundle)
	}
	blank := 3
	for lines[blank] != "" {
		blank++
	}
	out := map[string][]byte{}
	edit := func(name string, line int, f func(string) string) {
		l := append([]string{}, lines...)
		l[line] = f(l[line])
		out[name] = []byte(strings.Join(l, "\n"))
	}
	flipB64 := func(s string) string {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			t.Fatalf("bundle line %q: %v", s, err)
		}
		b[len(b)/2] ^= 0x01
		return base64.StdEncoding.EncodeToString(b)
	}
	edit("a bit of the entry flipped", 1, func(s string) string { return "extra " + flipB64(strings.TrimPrefix(s, "extra ")) })
	edit("another index", 2, func(s string) string {
		n, _ := strconv.Atoi(strings.TrimPrefix(s, "index "))
		return fmt.Sprintf("index %d", n+1)
	})
	if blank == 3 {
		t.Fatalf("bundle has no proof hashes")
	}
	for i := 3; i < blank; i++ {
		edit(fmt.Sprintf("proof line %d flipped", i-3), i, flipB64)
	}
	cp := blank + 1 // origin, size, root, "", signatures
	edit("another origin", cp, func(s string) string { return s + "x" })
	edit("another size", cp+1, func(s string) string {
		n, _ := strconv.Atoi(s)
		return strconv.Itoa(n + 1)
	})
	edit("the root flipped", cp+2, flipB64)
	edit("the log signature flipped", cp+4, func(s string) string {
		i := strings.LastIndex(s, " ")
		return s[:i+1] + flipB64(s[i+1:])
	})
	for i := 0; i < len(bundle); i += len(bundle)/40 + 1 {
		b := bytes.Clone(bundle)
		b[i] ^= 0x01
		out[fmt.Sprintf("byte %d flipped", i)] = b
	}
	return out
}

// writeFile writes content to dir/name.
func writeFile(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestCLIHelp checks that every command has help with examples and exit
// codes, exiting 0.
func TestCLIHelp(t *testing.T) {
	c := cli{t: t, dir: t.TempDir()}
	for _, cmd := range []string{"", "keygen", "attest", "attest build", "attest sign", "attest promote", "approve",
		"submit", "get", "search", "prove", "checkpoint", "verify", "gate", "audit", "monitor", "keyring", "keyring propose", "keyring propose revoke",
		"keyring propose quarantine", "keyring propose unquarantine", "keyring approve", "keyring submit", "keyring show"} {
		r := c.run(nil, append(strings.Fields(cmd), "--help")...)
		if r.code != 0 || !strings.Contains(r.stdout, "Exit codes") || (cmd != "attest" && !strings.Contains(r.stdout, "Example")) {
			t.Errorf("provlog %s --help: %v", cmd, r)
		}
	}
	// Usage errors exit 2.
	for _, args := range [][]string{{"nonsense"}, {"get"}, {"get", "x"}, {"keygen", "--type", "bogus", "--out", "x"}, {"verify", "--bogus", "f"}} {
		if r := c.run(nil, args...); r.code != 2 {
			t.Errorf("want exit 2; %v", r)
		}
	}
}

// TestCLIAuditAndMonitorFindFaults serves a log's tiles with one entry
// altered and expects audit to name it, then makes two logs under one key
// diverge and expects monitor to report the fork with its evidence file.
func TestCLIAuditAndMonitorFindFaults(t *testing.T) {
	dir := t.TempDir()
	local := cli{t: t, dir: dir}
	local.ok("keygen", "--type", "log", "--name", testOrigin, "--out", "log")
	key := filepath.Join(dir, "log.key")
	a := mustStartProvlogd(t, filepath.Join(dir, "a"), "--key", key)
	defer a.mustStop(t)
	ca := cli{t: t, dir: dir, global: []string{"--log", a.GRPCAddr, "--log-key", "@log.pub", "--tiles", a.HTTPURL}}
	ca.ok(append([]string{"submit"}, entryFiles(t, dir, "a", 300)...)...)
	ca.ok("audit")
	ca.ok("monitor", "--state", "state", "--once")

	// A proxy that alters one byte of the first entry bundle.
	target, _ := url.Parse(a.HTTPURL)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp, err := http.Get(target.JoinPath(r.URL.Path).String())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if strings.HasPrefix(r.URL.Path, "/tile/entries/000") && len(body) > 10 {
			body[10] ^= 0x01
		}
		w.WriteHeader(resp.StatusCode)
		w.Write(body)
	}))
	defer proxy.Close()
	r := local.want(1, "audit", "--log-key", "@log.pub", "--tiles", proxy.URL+"/")
	if !strings.Contains(r.stderr, "tile/entries/000") {
		t.Errorf("audit of an altered log: %v", r)
	}

	// A second log under the same key, with other entries: a fork.
	b := mustStartProvlogd(t, filepath.Join(dir, "b"), "--key", key)
	defer b.mustStop(t)
	cb := cli{t: t, dir: dir, global: []string{"--log", b.GRPCAddr, "--log-key", "@log.pub"}}
	cb.ok(append([]string{"submit"}, entryFiles(t, dir, "b", 310)...)...)
	start := time.Now()
	r = local.want(1, "monitor", "--log-key", "@log.pub", "--state", "state", "--evidence", "evidence", "--tiles", b.HTTPURL, "--interval", "50ms")
	if !strings.Contains(r.stderr, "fork detected") || !strings.Contains(r.stderr, filepath.Join("evidence", "fork-evidence-")) {
		t.Errorf("monitor of a forked log: %v", r)
	}
	if ev, _ := filepath.Glob(filepath.Join(dir, "evidence", "fork-evidence-*.json")); len(ev) != 1 {
		t.Errorf("evidence files %v, want one", ev)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("monitor took %v to see the fork, want the first poll", time.Since(start))
	}
}

// entryFiles writes n files, each an entry, and returns their names.
func entryFiles(t *testing.T, dir, prefix string, n int) []string {
	t.Helper()
	var names []string
	for i := range n {
		name := fmt.Sprintf("%s-entry-%d", prefix, i)
		writeFile(t, dir, name, fmt.Sprintf("entry %d of log %s", i, prefix))
		names = append(names, name)
	}
	return names
}
