package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestCLIRealToolFormats runs what real pipelines emit through the provlog
// binary and a real provlogd: cosign v3's Sigstore bundles (made by
// cosign, event/testdata/cosign), provlog envelopes without key ids (what
// cosign verify-blob-attestation --bundle needs), SBOMs inline and by
// digest, a sign event from cosign's sign-blob bundle, and search by
// signer key.
func TestCLIRealToolFormats(t *testing.T) {
	dir := t.TempDir()
	local := cli{t: t, dir: dir}
	fixtures, err := filepath.Abs("../event/testdata/cosign")
	if err != nil {
		t.Fatal(err)
	}
	copyFile := func(name string) {
		b, err := os.ReadFile(filepath.Join(fixtures, name))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, dir, name, string(b))
	}
	for _, f := range []string{"cosign.pub", "artifact.txt", "slsa1.sigstore.json", "slsa1.dsse.json", "blob.sigstore.json", "sbom.spdx.json", "sbom.cdx.json"} {
		copyFile(f)
	}
	for _, k := range []struct{ name, kind string }{{"builder", "ecdsa-p256"}, {"scanner", "ed25519"}, {"signer", "ecdsa-p256"}} {
		local.ok("keygen", "--type", "submitter", "--kind", k.kind, "--name", k.name, "--out", k.name)
	}
	writeFile(t, dir, "keyring.json", `{"keys": [
    {"name": "cosign", "publicKeyFile": "cosign.pub", "roles": ["builder", "attester"]},
    {"name": "builder", "publicKeyFile": "builder.pub", "roles": ["builder"]},
    {"name": "scanner", "publicKeyFile": "scanner.pub", "roles": ["attester"]},
    {"name": "signer", "publicKeyFile": "signer.pub", "roles": ["signer"]}
  ]}`)
	d := mustStartProvlogd(t, filepath.Join(dir, "data"), "--origin", testOrigin,
		"--admission", "attestations", "--keyring", filepath.Join(dir, "keyring.json"))
	defer d.mustStop(t)
	c := cli{t: t, dir: dir, global: []string{"--log", d.GRPCAddr, "--log-key", "@" + filepath.Join(d.DataDir, "log.pub"), "--tiles", d.HTTPURL}}

	// cosign attest-blob's bundle is submitted as it is; its bare envelope
	// (cosign's old format, another signature) is another event.
	build := index(t, c.ok("submit", "slsa1.sigstore.json"))
	if again := index(t, c.ok("submit", "slsa1.sigstore.json")); again != build {
		t.Errorf("bundle resubmitted: index %d, want %d", again, build)
	}
	bare := index(t, c.ok("submit", "slsa1.dsse.json"))
	var ev struct {
		Type, StatementType string
		Build               struct{ BuilderID, SourceCommit string }
	}
	if err := json.Unmarshal([]byte(c.ok("get", strconv.FormatUint(build, 10), "--json")), &ev); err != nil ||
		ev.Type != "build" || ev.StatementType != "https://in-toto.io/Statement/v0.1" || ev.Build.SourceCommit != strings.Repeat("1", 40) {
		t.Errorf("get --json of cosign's build: %+v (%v)", ev, err)
	}

	// What has cosign's key signed? Both, whatever key id they carry (none).
	if out := c.ok("search", "--key-file", "cosign.pub"); strings.Count(out, "\tbuild\t") != 2 {
		t.Errorf("search --key-file cosign.pub:\n%s", out)
	}

	// provlog's own envelope without key ids is admitted and found by key.
	c.ok("attest", "build", "--artifact", "artifact.txt", "--builder-id", "https://ci.example.com/b", "--build-type", "https://ci.example.com/t",
		"--source-repo", "https://git.example.com/app", "--source-commit", strings.Repeat("2b", 20), "--sign-key", "builder.key", "--keyid", "none", "--out", "b.json")
	b, _ := os.ReadFile(filepath.Join(dir, "b.json"))
	if !strings.Contains(string(b), `"keyid":""`) {
		t.Fatalf("--keyid none: %s", b)
	}
	own := index(t, c.ok("submit", "b.json"))
	// The same envelope as a Sigstore bundle (for cosign verify-blob-attestation
	// --bundle, checked by hand with cosign v3.1.3: see the README) is the
	// same event.
	c.ok("attest", "build", "--artifact", "artifact.txt", "--builder-id", "https://ci.example.com/b", "--build-type", "https://ci.example.com/t",
		"--source-repo", "https://git.example.com/app", "--source-commit", strings.Repeat("2c", 20), "--sign-key", "builder.key", "--keyid", "none",
		"--out", "b2.json", "--out-bundle", "b2.sigstore.json")
	if fromEnvelope, fromBundle := index(t, c.ok("submit", "b2.json")), index(t, c.ok("submit", "b2.sigstore.json")); fromEnvelope != fromBundle {
		t.Errorf("envelope at %d, its bundle at %d", fromEnvelope, fromBundle)
	}
	if r := c.want(2, "attest", "build", "--artifact", "artifact.txt", "--builder-id", "b", "--build-type", "t", "--source-commit", strings.Repeat("2b", 20),
		"--sign-key", "builder.key", "--out-bundle", "x.json"); !strings.Contains(r.stderr, "--keyid none") {
		t.Errorf("--out-bundle with sslib key ids: %q", r.stderr)
	}
	var keygen struct{ KeyID string }
	if err := json.Unmarshal([]byte(local.ok("keygen", "--type", "submitter", "--kind", "ed25519", "--name", "x", "--out", "x", "--json")), &keygen); err != nil {
		t.Fatal(err)
	}
	if out := c.ok("search", "--key-file", "builder.pub"); !strings.HasPrefix(out, strconv.FormatUint(own, 10)+"\tbuild\t") || strings.Count(out, "\n") != 2 {
		t.Errorf("search --key-file builder.pub: %q", out)
	}
	if out := c.ok("search", "--key", keygen.KeyID); out != "" {
		t.Errorf("search --key of a key that signed nothing: %q", out)
	}
	c.want(2, "attest", "build", "--artifact", "artifact.txt", "--builder-id", "b", "--build-type", "t",
		"--source-commit", strings.Repeat("2b", 20), "--sign-key", "builder.key", "--keyid", "cosign")

	// SBOMs: inline (SPDX, CycloneDX), and by digest when too large.
	for _, f := range []string{"sbom.spdx.json", "sbom.cdx.json"} {
		c.ok("attest", "sbom", "--artifact", "artifact.txt", "--sbom", f, "--sign-key", "scanner.key", "--submit")
	}
	var pkgs []string
	for range 2000 {
		pkgs = append(pkgs, `{"name":"pkg","SPDXID":"SPDXRef-pkg","versionInfo":"1.0.0","downloadLocation":"NOASSERTION"}`)
	}
	writeFile(t, dir, "big.spdx.json", `{"spdxVersion":"SPDX-2.3","SPDXID":"SPDXRef-DOCUMENT","name":"big","packages":[`+strings.Join(pkgs, ",")+`]}`)
	r := c.want(2, "attest", "sbom", "--artifact", "artifact.txt", "--sbom", "big.spdx.json", "--sign-key", "scanner.key", "--submit")
	if !strings.Contains(r.stderr, "--by-digest") || !strings.Contains(r.stderr, "32768") {
		t.Errorf("inline SBOM over the cap: %q, want the cap and --by-digest", r.stderr)
	}
	ref := index(t, c.ok("attest", "sbom", "--artifact", "artifact.txt", "--sbom", "big.spdx.json", "--by-digest",
		"--sbom-uri", "https://artifacts.example.com/big.spdx.json", "--sign-key", "scanner.key", "--submit"))
	var sbom struct {
		Type string
		SBOM struct {
			Format, Digest, URI string
			Inline              bool
			Size                int
		}
	}
	if err := json.Unmarshal([]byte(c.ok("get", strconv.FormatUint(ref, 10), "--json")), &sbom); err != nil || sbom.Type != "sbom" ||
		sbom.SBOM.Inline || sbom.SBOM.Format != "spdx" || !strings.HasPrefix(sbom.SBOM.Digest, "sha256:") || sbom.SBOM.Size < 100000 {
		t.Errorf("SBOM by digest: %+v (%v)", sbom, err)
	}
	// A builder may not submit SBOMs.
	if r := c.want(3, "attest", "sbom", "--artifact", "artifact.txt", "--sbom", "sbom.cdx.json", "--sign-key", "builder.key", "--submit"); !strings.Contains(r.stderr, "sbom") {
		t.Errorf("SBOM by a builder: %q", r.stderr)
	}

	// A sign event from cosign sign-blob's bundle; a base64 signature file
	// is refused for what it is.
	sign := index(t, c.ok("attest", "sign", "--artifact", "artifact.txt", "--algorithm", "ecdsa-p256-sha256", "--signature-key-id", "cosign",
		"--signature-bundle", "blob.sigstore.json", "--build-index", strconv.FormatUint(build, 10), "--sign-key", "signer.key", "--submit"))
	if sign <= bare {
		t.Errorf("sign index %d", sign)
	}
	var blob struct {
		MessageSignature struct{ Signature string }
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "blob.sigstore.json"))
	if err := json.Unmarshal(raw, &blob); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "blob.sig.b64", blob.MessageSignature.Signature+"\n")
	if r := c.want(2, "attest", "sign", "--artifact", "artifact.txt", "--algorithm", "ecdsa-p256-sha256", "--signature-key-id", "cosign",
		"--signature-file", "blob.sig.b64", "--sign-key", "signer.key"); !strings.Contains(r.stderr, "base64 text") {
		t.Errorf("base64 signature file: %q", r.stderr)
	}
	writeFile(t, dir, "other.txt", "another artifact")
	if r := c.want(2, "attest", "sign", "--artifact", "other.txt", "--algorithm", "ecdsa-p256-sha256", "--signature-key-id", "cosign",
		"--signature-bundle", "blob.sigstore.json", "--build-index", "0", "--sign-key", "signer.key"); !strings.Contains(r.stderr, "another artifact") {
		t.Errorf("sign-blob bundle of another artifact: %q", r.stderr)
	}
	// cosign's sign-blob bundle is not an event.
	if r := c.want(3, "submit", "blob.sigstore.json"); !strings.Contains(r.stderr, "bundle.messageSignature") {
		t.Errorf("submitting a sign-blob bundle: %q", r.stderr)
	}
}
