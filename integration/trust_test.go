package integration

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/provlog/provlog/event"
)

// TestTrustKeyRotationRevocationQuarantine tells issue 15's story with
// the provlog binary against a real provlogd whose keyring names two
// admins (2 of 2): a good build and a bad one (the CI key leaked) are
// promoted to dev; the admins rotate the CI key (keyring propose, approve,
// submit) and revoke the old one as compromised since before the bad
// build; the gate then denies the bad build's promotion and still allows
// the good one's, in proof and replay mode. A quarantine denies the good
// build everywhere, naming the entry, until the admins lift it. provlog
// audit finds no entry that should have been refused; keyring show --at
// prints the old keyring before the rotation and the new one after.
// Changes the rules refuse (below the threshold, by a revoked key, an
// unknown role, no admin left, the last admins revoked) are refused with
// their reason and nothing is written.
func TestTrustKeyRotationRevocationQuarantine(t *testing.T) {
	dir := t.TempDir()
	local := cli{t: t, dir: dir}
	ids := map[string]string{}
	for _, k := range []string{"ci", "ci2", "alice", "sec", "root1", "root2", "root3"} {
		var res struct{ KeyID string }
		if err := json.Unmarshal([]byte(local.ok("keygen", "--type", "submitter", "--name", k, "--out", k, "--json")), &res); err != nil {
			t.Fatal(err)
		}
		ids[k] = res.KeyID
	}
	writeFile(t, dir, "keyring.json", `{
  "keys": [
    {"name": "ci", "publicKeyFile": "ci.pub", "roles": ["builder"]},
    {"name": "alice", "publicKeyFile": "alice.pub", "roles": ["promoter"]},
    {"name": "sec", "publicKeyFile": "sec.pub", "roles": ["security"]},
    {"name": "root1", "publicKeyFile": "root1.pub", "roles": []},
    {"name": "root2", "publicKeyFile": "root2.pub", "roles": []}
  ],
  "environments": [{"name": "dev"}, {"name": "prod", "from": "dev"}],
  "admins": {"keys": ["root1", "root2"], "threshold": 2}
}`)
	// The rotation: ci2 replaces ci; a third admin joins (2 of 3).
	writeFile(t, dir, "keyring-v2.json", `{
  "keys": [
    {"name": "ci2", "publicKeyFile": "ci2.pub", "roles": ["builder"]},
    {"name": "alice", "publicKeyFile": "alice.pub", "roles": ["promoter"]},
    {"name": "sec", "publicKeyFile": "sec.pub", "roles": ["security"]},
    {"name": "root1", "publicKeyFile": "root1.pub", "roles": []},
    {"name": "root2", "publicKeyFile": "root2.pub", "roles": []},
    {"name": "root3", "publicKeyFile": "root3.pub", "roles": []}
  ],
  "environments": [{"name": "dev"}, {"name": "prod", "from": "dev"}],
  "admins": {"keys": ["root1", "root2", "root3"], "threshold": 2}
}`)
	d := mustStartProvlogd(t, filepath.Join(dir, "data"), "--origin", testOrigin,
		"--admission", "attestations", "--keyring", filepath.Join(dir, "keyring.json"))
	defer d.mustStop(t)
	c := cli{t: t, dir: dir, global: []string{"--log", d.GRPCAddr, "--log-key", "@" + filepath.Join(d.DataDir, "log.pub"), "--tiles", d.HTTPURL}}
	size := func() uint64 {
		t.Helper()
		var cp struct{ Size uint64 }
		if err := json.Unmarshal([]byte(c.ok("checkpoint", "--json")), &cp); err != nil {
			t.Fatal(err)
		}
		return cp.Size
	}
	if n := size(); n != 1 {
		t.Fatalf("a new log holds %d entries, want 1 (its genesis keyring)", n)
	}
	const builderID = "https://ci.example.com/runner@v2"
	build := func(artifact, key string) uint64 {
		t.Helper()
		writeFile(t, dir, artifact, "the contents of "+artifact)
		return index(t, c.ok("attest", "build", "--artifact", artifact, "--builder-id", builderID,
			"--build-type", "https://ci.example.com/go@v1", "--source-repo", "git+https://git.example.com/app",
			"--source-commit", strings.Repeat("5e", 20), "--sign-key", key+".key", "--submit"))
	}
	promote := func(artifact string, buildIndex uint64) uint64 {
		t.Helper()
		return index(t, c.ok("attest", "promote", "--artifact", artifact, "--to", "dev",
			"--build-index", strconv.FormatUint(buildIndex, 10), "--sign-key", "alice.key", "--submit"))
	}
	good := build("good.tar.gz", "ci")
	promote("good.tar.gz", good)
	bad := build("bad.tar.gz", "ci") // made with the leaked CI key
	badPromotion := promote("bad.tar.gz", bad)
	writeFile(t, dir, "policy.json", `{"builders": ["`+builderID+`"], "promotionPath": ["dev"]}`)
	c.ok("gate", "--artifact", "bad.tar.gz", "--env", "dev", "--policy", "policy.json") // before the revocation

	// The admins rotate the CI key: propose, approve, submit.
	out := c.ok("keyring", "propose", "--keyring", "keyring-v2.json", "--sign-key", "root1.key", "--out", "change.json")
	if out != "" {
		t.Errorf("propose --out printed %q", out)
	}
	if r := c.want(3, "keyring", "submit", "change.json"); !strings.Contains(r.stderr, "signed by 1 admin keys ([root1]), the keyring in force needs 2 of [root1 root2]") {
		t.Errorf("a change below threshold: %v", r)
	}
	out = c.ok("keyring", "approve", "change.json", "--sign-key", "root2.key")
	if !strings.Contains(out, "change.json: keyring of 6 keys (ci2, alice, sec, root1, root2, root3), admins root1, root2, root3, threshold 2, 2 signature(s)") {
		t.Errorf("approve output %q", out)
	}
	rotation := index(t, c.ok("keyring", "submit", "change.json"))
	// The old key is revoked as compromised since before the bad build.
	c.ok("keyring", "propose", "revoke", "--key-file", "ci.pub", "--compromised-since", strconv.FormatUint(bad, 10),
		"--reason", "CI token leaked", "--sign-key", "root1.key", "--sign-key", "root2.key", "--out", "revoke.json")
	revocation := index(t, c.ok("keyring", "submit", "revoke.json"))
	if r := c.want(3, "attest", "build", "--artifact", "good.tar.gz", "--builder-id", builderID, "--build-type", "https://ci.example.com/go@v1",
		"--source-repo", "git+https://git.example.com/app", "--source-commit", strings.Repeat("5e", 20), "--invocation-id", "again",
		"--sign-key", "ci.key", "--submit"); !strings.Contains(r.stderr, "no keyring key verifies") {
		t.Errorf("a build by the rotated-out key: %v", r)
	}
	build("new.tar.gz", "ci2")

	// The gate denies the bad build's promotion, allows the good one's.
	for _, mode := range [][]string{nil, {"--replay"}} {
		r := c.want(1, append([]string{"gate", "--artifact", "bad.tar.gz", "--env", "dev", "--policy", "policy.json"}, mode...)...)
		if !strings.Contains(r.stdout, "DENY ") || !strings.Contains(r.stdout, "trust history: ") {
			t.Errorf("gate %v for the bad build after the revocation: %v", mode, r)
		}
		t.Logf("gate %v, bad build:\n%s", mode, r.stdout)
		if out := c.ok(append([]string{"gate", "--artifact", "good.tar.gz", "--env", "dev", "--policy", "policy.json"}, mode...)...); !strings.HasPrefix(out, "ALLOW ") {
			t.Errorf("gate %v for the good build: %q", mode, out)
		}
	}
	var dec struct {
		Decision string
		Reasons  []string
		Events   []struct{ Index uint64 }
	}
	r := c.want(1, "gate", "--artifact", "bad.tar.gz", "--env", "dev", "--policy", "policy.json", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &dec); err != nil || dec.Decision != "deny" {
		t.Fatalf("gate --json: %v\n%s", err, r.stdout)
	}
	for _, e := range dec.Events {
		if e.Index == bad {
			t.Errorf("the bad build (entry %d), signed by a key void since, still counts: %+v", bad, dec)
		}
	}
	if !strings.Contains(fmt.Sprint(dec.Reasons), fmt.Sprintf("promotion into dev at index %d is for a build the policy does not accept", badPromotion)) {
		t.Logf("reasons: %v", dec.Reasons)
	}

	// gate serve, from its own replay of the log, decides the same.
	gs := startGateServe(t, c, "--policy", "policy.json", "--interval", "100ms")
	digestOf := func(artifact string) string {
		sum := sha256.Sum256([]byte("the contents of " + artifact))
		return "sha256:" + hex.EncodeToString(sum[:])
	}
	served := func(what, artifact, want string, entries []uint64) {
		t.Helper()
		waitUntil(t, what, func() (bool, string) {
			d := decide(t, http.DefaultClient, gs.url, digestOf(artifact), "dev")
			ok := d.Decision == want
			if want == "deny" && entries != nil {
				ok = ok && slices.ContainsFunc(d.Reasons, func(r struct {
					Text    string
					Entries []uint64
				}) bool {
					return slices.Equal(r.Entries, entries) && strings.Contains(r.Text, "quarantined")
				})
			}
			return ok, fmt.Sprintf("%+v", d)
		})
	}
	served("gate serve denies the bad build", "bad.tar.gz", "deny", nil)
	served("gate serve allows the good build", "good.tar.gz", "allow", nil)

	// A quarantine denies the good build everywhere, naming the entry.
	c.ok("keyring", "propose", "quarantine", "--artifact", "good.tar.gz", "--reason", "CVE-2026-0001 in a dependency", "--sign-key", "sec.key", "--out", "quarantine.json")
	quarantine := index(t, c.ok("keyring", "submit", "quarantine.json"))
	for _, mode := range [][]string{nil, {"--replay"}} {
		r := c.want(1, append([]string{"gate", "--artifact", "good.tar.gz", "--env", "dev", "--policy", "policy.json"}, mode...)...)
		want := fmt.Sprintf("is quarantined by entry %d (CVE-2026-0001 in a dependency): it may not be deployed to any environment", quarantine)
		if !strings.Contains(r.stdout, want) {
			t.Errorf("gate %v for the quarantined build: %v\nwant %q", mode, r, want)
		}
	}
	served("gate serve denies the quarantined build, naming the entry", "good.tar.gz", "deny", []uint64{quarantine})
	if r := c.want(3, "attest", "promote", "--artifact", "good.tar.gz", "--from", "dev", "--to", "prod",
		"--build-index", strconv.FormatUint(good, 10), "--sign-key", "alice.key", "--submit"); !strings.Contains(r.stderr, fmt.Sprintf("is quarantined by entry %d", quarantine)) {
		t.Errorf("promoting a quarantined artifact: %v", r)
	}
	// Lifting it needs the admins: the security key alone is refused.
	c.ok("keyring", "propose", "unquarantine", "--artifact", "good.tar.gz", "--reason", "not affected: the vulnerable code is not linked",
		"--quarantine-index", strconv.FormatUint(quarantine, 10), "--sign-key", "sec.key", "--out", "lift.json")
	if r := c.want(3, "keyring", "submit", "lift.json"); !strings.Contains(r.stderr, "not an admin") {
		t.Errorf("an unquarantine by the security key: %v", r)
	}
	c.ok("keyring", "propose", "unquarantine", "--artifact", "good.tar.gz", "--reason", "not affected: the vulnerable code is not linked",
		"--quarantine-index", strconv.FormatUint(quarantine, 10), "--sign-key", "root1.key", "--out", "lift.json")
	c.ok("keyring", "approve", "lift.json", "--sign-key", "root3.key")
	lift := index(t, c.ok("keyring", "submit", "lift.json"))
	if out := c.ok("gate", "--artifact", "good.tar.gz", "--env", "dev", "--policy", "policy.json"); !strings.HasPrefix(out, "ALLOW ") {
		t.Errorf("gate after the unquarantine: %q", out)
	}
	served("gate serve allows the good build once lifted", "good.tar.gz", "allow", nil)

	// Refusals: each with its reason, nothing written.
	c.ok("keyring", "propose", "revoke", "--key-id", ids["root3"], "--compromised-since", strconv.FormatUint(lift+1, 10),
		"--reason", "root3's laptop lost", "--sign-key", "root1.key", "--sign-key", "root2.key", "--out", "revoke-root3.json")
	c.ok("keyring", "submit", "revoke-root3.json")
	before := size()
	refused := func(what, reason string, args ...string) {
		t.Helper()
		r := c.want(3, args...)
		if !strings.Contains(r.stderr, reason) {
			t.Errorf("%s: stderr %q, want %q", what, r.stderr, reason)
		}
		if n := size(); n != before {
			t.Errorf("%s: the log grew from %d to %d entries", what, before, n)
		}
	}
	c.ok("keyring", "propose", "--keyring", "keyring-v2.json", "--sign-key", "root3.key", "--sign-key", "root1.key", "--out", "by-revoked.json")
	refused("a change signed by a revoked key", "key root3 was revoked by entry", "keyring", "submit", "by-revoked.json")
	writeFile(t, dir, "no-admins.json", `{"keys": [{"name": "ci2", "publicKeyFile": "ci2.pub", "roles": ["builder"]}], "environments": [{"name": "dev"}]}`)
	c.ok("keyring", "propose", "--keyring", "no-admins.json", "--sign-key", "root1.key", "--sign-key", "root2.key", "--out", "no-admins-change.json")
	refused("a change leaving no admin", "the change leaves no admin", "keyring", "submit", "no-admins-change.json")
	c.ok("keyring", "propose", "revoke", "--key-id", ids["root1"], "--compromised-since", strconv.FormatUint(before, 10),
		"--reason", "r", "--sign-key", "root1.key", "--sign-key", "root2.key", "--out", "revoke-root1.json")
	refused("revoking the last admins", "would leave 1 usable admin keys, under the threshold 2", "keyring", "submit", "revoke-root1.json")
	// An unknown role: the CLI refuses the file, and the log a hand-made event.
	writeFile(t, dir, "unknown-role.json", strings.Replace(readFile(t, dir, "keyring-v2.json"), `"roles": ["builder"]`, `"roles": ["deployer"]`, 1))
	if r := c.want(2, "keyring", "propose", "--keyring", "unknown-role.json", "--sign-key", "root1.key"); !strings.Contains(r.stderr, `"deployer"`) {
		t.Errorf("propose with an unknown role: %v", r)
	}
	writeFile(t, dir, "unknown-role-change.json", withUnknownRole(t, c, readFile(t, dir, "change.json")))
	refused("a change naming an unknown role", "deployer", "submit", "unknown-role-change.json")

	// The audit replays the whole log: no entry should have been refused.
	out = c.ok("audit")
	t.Logf("audit:\n%s", out)
	if want := "trust: replayed " + strconv.FormatUint(before, 10) + " entries: 2 keyring versions, 2 revocations, 0 quarantines in force; every entry admitted by the rules in force at its index"; !strings.Contains(out, want) {
		t.Errorf("audit output lacks %q:\n%s", want, out)
	}

	// keyring show --at: the old keyring before the rotation, the new one after.
	for _, mode := range [][]string{nil, {"--replay"}} {
		old := c.ok(append([]string{"keyring", "show", "--at", strconv.FormatUint(rotation, 10)}, mode...)...)
		t.Logf("keyring show --at %d %v:\n%s", rotation, mode, old)
		if !strings.Contains(old, "brought by entry 0, signed by the log key") || !strings.Contains(old, ids["ci"]) || strings.Contains(old, ids["ci2"]) {
			t.Errorf("keyring show --at %d %v: want the genesis keyring with ci:\n%s", rotation, mode, old)
		}
		now := c.ok(append([]string{"keyring", "show"}, mode...)...)
		t.Logf("keyring show %v:\n%s", mode, now)
		for _, want := range []string{fmt.Sprintf("brought by entry %d, signed by root1, root2", rotation), ids["ci2"],
			"admins: root1, root2, root3 (threshold 2)", "REVOKED by entry", fmt.Sprintf("entry %d  revoke ci (", revocation),
			fmt.Sprintf("entry %d  quarantine sha256:", quarantine), fmt.Sprintf("entry %d  unquarantine sha256:", lift)} {
			if !strings.Contains(now, want) {
				t.Errorf("keyring show %v lacks %q:\n%s", mode, want, now)
			}
		}
	}
	var show struct {
		At      uint64
		Keyring struct {
			Index uint64
			Keys  []struct {
				Name    string
				Revoked *struct{ Index, CompromisedSince uint64 }
			}
		}
		Quarantines []struct{ Index uint64 }
		History     []struct{ Index uint64 }
	}
	if err := json.Unmarshal([]byte(c.ok("keyring", "show", "--at", strconv.FormatUint(lift, 10), "--json")), &show); err != nil {
		t.Fatal(err)
	}
	if show.Keyring.Index != rotation || len(show.Quarantines) != 1 || show.Quarantines[0].Index != quarantine || len(show.History) != 4 {
		t.Errorf("keyring show --at %d --json: %+v", lift, show)
	}
	c.want(2, "keyring", "show", "--at", "100000")
}

func readFile(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// withUnknownRole returns the keyring change envelope with its first
// builder role renamed "deployer", signed again by root1 and root2 (the
// statement no longer parses, so no provlog command signs it).
func withUnknownRole(t *testing.T, c cli, envelope string) string {
	t.Helper()
	var env struct {
		Payload string `json:"payload"`
	}
	if err := json.Unmarshal([]byte(envelope), &env); err != nil {
		t.Fatal(err)
	}
	st, err := base64.StdEncoding.DecodeString(env.Payload)
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(st), `"roles":["builder"]`, `"roles":["deployer"]`, 1)
	if bad == string(st) {
		t.Fatalf("no builder role in %s", st)
	}
	var keys []event.SigningKey
	for _, name := range []string{"root1", "root2"} {
		k, err := event.LoadSigningKey([]byte(readFile(t, c.dir, name+".key")))
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	signed, err := event.SignEnvelope(context.Background(), []byte(bad), keys...)
	if err != nil {
		t.Fatal(err)
	}
	return string(signed)
}
