package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/provlog/provlog/event"
)

// TestKeyringHelp wants --help, with examples and exit codes, for every
// keyring command.
func TestKeyringHelp(t *testing.T) {
	for _, cmd := range []string{"keyring", "keyring propose", "keyring propose revoke", "keyring propose quarantine",
		"keyring propose unquarantine", "keyring approve", "keyring submit", "keyring show"} {
		r := runCLI(t, append(strings.Fields(cmd), "--help")...)
		if r.code != 0 || !strings.Contains(r.stdout, "Exit codes") || !strings.Contains(r.stdout, "Example") {
			t.Errorf("provlog %s --help: exit %d\n%s", cmd, r.code, r.stdout)
		}
	}
}

// TestKeyringProposeOffline makes each trust event without a log, checks
// what it holds, co-signs it, and wants every missing or bad flag refused
// (exit 2) naming the flag.
func TestKeyringProposeOffline(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	for _, k := range []string{"ci", "root1", "root2", "sec"} {
		priv, pub, err := event.GenerateKey(event.KeyEd25519)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(k+".key", priv, 0o600)
		os.WriteFile(k+".pub", pub, 0o644)
	}
	os.WriteFile("keyring.json", []byte(`{"keys": [
  {"name": "ci", "publicKeyFile": "ci.pub", "roles": ["builder"]},
  {"name": "root1", "publicKeyFile": "root1.pub", "roles": []},
  {"name": "root2", "publicKeyFile": "root2.pub", "roles": []}],
  "environments": [{"name": "dev"}], "admins": {"keys": ["root1", "root2"], "threshold": 2}}`), 0o644)
	os.WriteFile("app.tar.gz", []byte("app"), 0o644)
	ok := func(args ...string) string {
		t.Helper()
		r := runCLI(t, args...)
		if r.code != 0 {
			t.Fatalf("provlog %v: exit %d: %s", args, r.code, r.stderr)
		}
		return r.stdout
	}
	parse := func(file string) (*event.Envelope, *event.Event) {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		env, err := event.ParseEnvelope([]byte(strings.TrimSpace(string(b))))
		if err != nil {
			t.Fatal(err)
		}
		ev, err := event.ParseStatement(env.Payload)
		if err != nil {
			t.Fatal(err)
		}
		return env, ev
	}
	ok("keyring", "propose", "--keyring", "keyring.json", "--sign-key", "root1.key", "--out", "change.json")
	if env, ev := parse("change.json"); ev.Type != event.TypeKeyring || len(ev.Keyring.Keys) != 3 || len(env.Signatures) != 1 {
		t.Errorf("keyring change: %s event, %d signatures", ev.Type, len(env.Signatures))
	}
	if out := ok("keyring", "approve", "change.json", "--sign-key", "root2.key", "--sign-key", "root1.key"); !strings.Contains(out, "2 signature(s)") {
		t.Errorf("approve: %q", out)
	}
	ok("keyring", "propose", "revoke", "--key-file", "ci.pub", "--compromised-since", "3", "--reason", "leaked", "--sign-key", "root1.key", "--out", "revoke.json")
	if _, ev := parse("revoke.json"); ev.Type != event.TypeRevoke || ev.Revoke.CompromisedSince != 3 || ev.Revoke.Reason != "leaked" {
		t.Errorf("revoke: %+v", ev.Revoke)
	}
	ok("keyring", "propose", "unquarantine", "--artifact", "app.tar.gz", "--reason", "fixed", "--quarantine-index", "7", "--sign-key", "root1.key", "--out", "lift.json")
	if _, ev := parse("lift.json"); ev.Type != event.TypeUnquarantine || *ev.Quarantine.QuarantineIndex != 7 {
		t.Errorf("unquarantine: %+v", ev.Quarantine)
	}
	ok("keyring", "propose", "quarantine", "--artifact", "app.tar.gz", "--reason", "CVE", "--sign-key", "sec.key", "--out", "q.json")
	if _, ev := parse("q.json"); ev.Type != event.TypeQuarantine || ev.Quarantine.QuarantineIndex != nil {
		t.Errorf("quarantine: %+v", ev.Quarantine)
	}
	os.WriteFile("build.json", []byte(ok("attest", "build", "--artifact", "app.tar.gz", "--builder-id", "https://ci.example.com/r",
		"--build-type", "https://ci.example.com/t", "--source-repo", "git+https://git.example.com/a", "--source-commit", strings.Repeat("ab", 20),
		"--sign-key", "ci.key")), 0o644)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"keyring", "propose", "--sign-key", "root1.key"}, "--keyring is required"},
		{[]string{"keyring", "propose", "--keyring", "keyring.json"}, "--sign-key"},
		{[]string{"keyring", "propose", "--keyring", "nope.json", "--sign-key", "root1.key"}, "nope.json"},
		{[]string{"keyring", "propose", "revoke", "--compromised-since", "1", "--reason", "r", "--sign-key", "root1.key"}, "--key-id ID or --key-file PUB"},
		{[]string{"keyring", "propose", "revoke", "--key-file", "ci.pub", "--key-id", "ab", "--compromised-since", "1", "--reason", "r", "--sign-key", "root1.key"}, "one of them"},
		{[]string{"keyring", "propose", "revoke", "--key-file", "ci.pub", "--reason", "r", "--sign-key", "root1.key"}, "--compromised-since is required"},
		{[]string{"keyring", "propose", "revoke", "--key-file", "ci.pub", "--compromised-since", "1", "--sign-key", "root1.key"}, "--reason is required"},
		{[]string{"keyring", "propose", "revoke", "--key-id", "xyz", "--compromised-since", "1", "--reason", "r", "--sign-key", "root1.key"}, "--key-id \"xyz\": want a key id"},
		{[]string{"keyring", "propose", "quarantine", "--reason", "r", "--sign-key", "sec.key"}, "--artifact"},
		{[]string{"keyring", "propose", "quarantine", "--artifact", "app.tar.gz", "--sign-key", "sec.key"}, "--reason is required"},
		{[]string{"keyring", "propose", "quarantine", "--artifact", "app.tar.gz", "--reason", "r", "--quarantine-index", "1", "--sign-key", "sec.key"}, "unknown flag: --quarantine-index"},
		{[]string{"keyring", "approve", "build.json", "--sign-key", "root1.key"}, "is a build event, not a keyring"},
		{[]string{"keyring", "approve", "change.json"}, "--sign-key"},
		{[]string{"keyring", "submit", "build.json"}, "is a build event, not a keyring"},
		{[]string{"keyring", "submit"}, "accepts 1 arg"},
	} {
		r := runCLI(t, c.args...)
		if r.code != exitUsage || !strings.Contains(r.stderr, c.want) {
			t.Errorf("provlog %v: exit %d, stderr %q; want exit 2 naming %q", c.args, r.code, r.stderr, c.want)
		}
	}
}
