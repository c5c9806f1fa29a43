package integration

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	"github.com/secure-systems-lab/go-securesystemslib/signerverifier"

	"github.com/provlog/provlog/event"
)

// TestCLIGateAttest runs the deploy gate with --attest against provlogd:
// the gate's verification summaries (a PASSED one for dev, a FAILED one for
// prod) are logged by a key with the verifier role, verify with
// securesystemslib's DSSE verifier, parse as vsa events naming the policy
// by digest and every event the decision used by log index and the digest
// of the entry the log serves; a key with another role is refused and
// nothing is logged.
func TestCLIGateAttest(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	local := cli{t: t, dir: dir}
	for _, k := range []string{"builder", "alice", "gate", "scanner"} {
		local.ok("keygen", "--type", "submitter", "--kind", "ecdsa-p256", "--name", k, "--out", k)
	}
	writeFile(t, dir, "keyring.json", `{
  "keys": [
    {"name": "builder", "publicKeyFile": "builder.pub", "roles": ["builder"]},
    {"name": "alice", "publicKeyFile": "alice.pub", "roles": ["promoter"]},
    {"name": "gate", "publicKeyFile": "gate.pub", "roles": ["verifier"]},
    {"name": "scanner", "publicKeyFile": "scanner.pub", "roles": ["attester"]}
  ],
  "environments": [{"name": "dev"}, {"name": "prod", "from": "dev"}]
}`)
	d := mustStartProvlogd(t, filepath.Join(dir, "data"), "--origin", testOrigin,
		"--admission", "attestations", "--keyring", filepath.Join(dir, "keyring.json"))
	defer d.mustStop(t)
	c := cli{t: t, dir: dir, global: []string{"--log", d.GRPCAddr, "--log-key", "@" + filepath.Join(d.DataDir, "log.pub"), "--tiles", d.HTTPURL}}

	writeFile(t, dir, "app.tar.gz", "the contents of app 2.0")
	sum := sha256.Sum256([]byte("the contents of app 2.0"))
	digest := "sha256:" + hex.EncodeToString(sum[:])
	const builderID = "https://ci.example.com/runner@v2"
	build := index(t, c.ok("attest", "build", "--artifact", "app.tar.gz", "--builder-id", builderID, "--build-type", "https://ci.example.com/go@v1",
		"--source-repo", "git+https://git.example.com/app", "--source-commit", strings.Repeat("5e", 20), "--sign-key", "builder.key", "--submit"))
	promote := index(t, c.ok("attest", "promote", "--artifact", "app.tar.gz", "--to", "dev", "--sign-key", "alice.key", "--submit"))
	policy := `{"builders": ["` + builderID + `"], "promotionPath": ["dev", "prod"]}`
	writeFile(t, dir, "policy.json", policy)

	attest := func(env, key, out string) []string {
		return []string{"gate", "--artifact", "app.tar.gz", "--env", env, "--policy", "policy.json",
			"--attest", "--sign-key", key, "--out", out, "--submit", "--verifier-id", "https://gate.example.com/deploy"}
	}
	// The VSAs are the next two entries after the promotion.
	devVSA, prodVSA := promote+1, promote+2
	if out := c.ok(attest("dev", "gate.key", "dev.vsa.json")...); !strings.HasPrefix(out, "ALLOW "+digest+" to dev\n") || !strings.HasSuffix(out, fmt.Sprintf("VSA PASSED written to dev.vsa.json, logged at index %d\n", devVSA)) {
		t.Errorf("gate --attest for dev: stdout %q", out)
	}
	if r := c.want(1, attest("prod", "gate.key", "prod.vsa.json")...); !strings.HasPrefix(r.stdout, "DENY "+digest+" to prod\n") || !strings.HasSuffix(r.stdout, fmt.Sprintf("VSA FAILED written to prod.vsa.json, logged at index %d\n", prodVSA)) {
		t.Errorf("gate --attest for prod: stdout %q", r.stdout)
	}
	if r := c.want(3, attest("dev", "scanner.key", "scanner.vsa.json")...); !strings.Contains(r.stderr, "verification summary") || !strings.Contains(r.stderr, "PermissionDenied") && !strings.Contains(r.stderr, "permission denied") {
		t.Errorf("gate --attest signed by an attester: stderr %q, want the log's refusal", r.stderr)
	}

	entries, err := getEntries(ctx, d, 0, prodVSA+1)
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(c.ok("search", "--digest", digest)), "\n"); len(lines) != 4 ||
		!strings.HasPrefix(lines[2], fmt.Sprintf("%d\tvsa\t", devVSA)) || !strings.HasPrefix(lines[3], fmt.Sprintf("%d\tvsa\t", prodVSA)) {
		t.Errorf("search after the gate: %q, want the two VSAs at %d and %d and nothing from the attester", lines, devVSA, prodVSA)
	}
	pub, err := os.ReadFile(filepath.Join(dir, "gate.pub"))
	if err != nil {
		t.Fatal(err)
	}
	policySum := sha256.Sum256([]byte(policy))
	for _, tc := range []struct {
		file, env, result string
		at                uint64   // the VSA's index
		inputs            []uint64 // the events the decision used
	}{
		{"dev.vsa.json", "dev", "PASSED", devVSA, []uint64{build, promote}},
		{"prod.vsa.json", "prod", "FAILED", prodVSA, []uint64{build, promote}},
	} {
		raw, err := os.ReadFile(filepath.Join(dir, tc.file))
		if err != nil {
			t.Fatal(err)
		}
		payload := verifyDSSE(t, raw, pub)
		var logged dsse.Envelope
		if err := json.Unmarshal(entries[tc.at], &logged); err != nil {
			t.Fatal(err)
		}
		if p, err := logged.DecodeB64Payload(); err != nil || string(p) != string(payload) {
			t.Errorf("%s: entry %d is not the VSA written (%v)", tc.file, tc.at, err)
		}
		ev, err := event.ParseStatement(payload)
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		if v := ev.VSA; ev.Type != event.TypeVSA || v.VerifierID != "https://gate.example.com/deploy" || v.ResourceURI != "provlog:deploy/"+tc.env+"/"+digest ||
			v.PolicyURI != "file://"+filepath.ToSlash(filepath.Join(dir, "policy.json")) || v.Result != tc.result || ev.Subjects[0].String() != digest {
			t.Errorf("%s: %s event %+v about %v", tc.file, ev.Type, v, ev.Subjects)
		}
		var st struct {
			Predicate struct {
				Policy            struct{ Digest map[string]string }
				InputAttestations []struct {
					URI    string
					Digest map[string]string
				}
			}
		}
		if err := json.Unmarshal(payload, &st); err != nil {
			t.Fatal(err)
		}
		if st.Predicate.Policy.Digest["sha256"] != hex.EncodeToString(policySum[:]) {
			t.Errorf("%s: policy digest %v", tc.file, st.Predicate.Policy.Digest)
		}
		in := st.Predicate.InputAttestations
		if len(in) != len(tc.inputs) {
			t.Fatalf("%s: inputAttestations %+v, want entries %v", tc.file, in, tc.inputs)
		}
		for j, a := range in {
			n := tc.inputs[j]
			es := sha256.Sum256(entries[n])
			if a.URI != fmt.Sprintf("provlog://%s/entries/%d", testOrigin, n) || a.Digest["sha256"] != hex.EncodeToString(es[:]) {
				t.Errorf("%s: input %d is %+v, want entry %d of %s with sha256 %x", tc.file, j, a, n, testOrigin, es)
			}
		}
	}
}

// verifyDSSE verifies a DSSE envelope with securesystemslib and the PEM
// public key, and returns its payload.
func verifyDSSE(t *testing.T, raw, pub []byte) []byte {
	t.Helper()
	var env dsse.Envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		t.Fatal(err)
	}
	k, err := signerverifier.LoadKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	sv, err := signerverifier.NewECDSASignerVerifierFromSSLibKey(k)
	if err != nil {
		t.Fatal(err)
	}
	v, err := dsse.NewEnvelopeVerifier(sv)
	if err != nil {
		t.Fatal(err)
	}
	accepted, payload, err := v.VerifyAndDecode(context.Background(), &env)
	if err != nil || len(accepted) != 1 {
		t.Fatalf("DSSE verification: %d keys accepted, %v", len(accepted), err)
	}
	return payload
}
