package log

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/go-json-experiment/json/jsontext"
	slsa "github.com/in-toto/attestation/go/predicates/provenance/v1"

	"github.com/provlog/provlog/event"
	"github.com/provlog/provlog/policy"
)

func cosignFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("../event/testdata/cosign/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// bundleEnvelope returns the dsseEnvelope member of a Sigstore bundle, as
// written.
func bundleEnvelope(t *testing.T, bundle []byte) []byte {
	t.Helper()
	dec := jsontext.NewDecoder(bytes.NewReader(bundle))
	if _, err := dec.ReadToken(); err != nil {
		t.Fatal(err)
	}
	for dec.PeekKind() == '"' {
		name, _ := dec.ReadToken()
		n := name.String()
		v, err := dec.ReadValue()
		if err != nil {
			t.Fatal(err)
		}
		if n == "dsseEnvelope" {
			return bytes.Clone(v)
		}
	}
	t.Fatal("no dsseEnvelope")
	return nil
}

// TestCosignBundleAdmitted: a Sigstore bundle written by cosign v3
// attest-blob, signed by a keyring key, is admitted; what is logged is the
// canonical envelope, so the bare envelope and any re-encoding of its
// base64 (URL-safe, unpadded) are the same entry: same index back.
func TestCosignBundleAdmitted(t *testing.T) {
	c := newChain(t)
	bundle := cosignFixture(t, "slsa1.sigstore.json")
	res, err := c.add(bundle)
	if err != nil {
		t.Fatalf("cosign bundle: %v", err)
	}
	if res.Duplicate {
		t.Fatal("first submission a duplicate")
	}
	env := bundleEnvelope(t, bundle)
	if again, err := c.add(env); err != nil || again.Index != res.Index || !again.Duplicate {
		t.Errorf("the bundle's bare envelope: %+v, %v; want index %d, duplicate", again, err, res.Index)
	}
	// The same envelope in URL-safe unpadded base64.
	parsed, err := event.ParseEnvelope(env)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding
	urlSafe := []byte(`{"payloadType":"` + event.PayloadType + `","payload":"` + enc.EncodeToString(parsed.Payload) +
		`","signatures":[{"sig":"` + enc.EncodeToString(parsed.Signatures[0].Sig) + `"}]}`)
	if bytes.Equal(urlSafe, env) {
		t.Fatal("re-encoding changed nothing")
	}
	if again, err := c.add(urlSafe); err != nil || again.Index != res.Index || !again.Duplicate {
		t.Errorf("URL-safe unpadded twin: %+v, %v; want index %d, duplicate", again, err, res.Index)
	}
	// Indexed as cosign's build: by artifact, builder, commit and signer.
	for _, q := range []struct {
		kind  byte
		value string
	}{
		{IndexDigest, "sha256:" + sha256Hex(cosignFixture(t, "artifact.txt"))},
		{IndexBuilder, "https://github.com/actions/runner/github-hosted"},
		{IndexCommit, strings.Repeat("1", 40)},
		{IndexSigner, c.keyID("cosign")},
	} {
		hits, _, err := c.log.Search(context.Background(), q.kind, q.value, 0, 10)
		if err != nil || len(hits) != 1 || hits[0].Index != res.Index || hits[0].Type != event.TypeBuild {
			t.Errorf("search %c %s: %+v, %v", q.kind, q.value, hits, err)
		}
	}
	// cosign's SBOM bundles need the attester role, which the cosign key has.
	for _, f := range []string{"spdxjson.sigstore.json", "cyclonedx.sigstore.json"} {
		if _, err := c.add(cosignFixture(t, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	// A blob signature bundle is not an event.
	if _, err := c.add(cosignFixture(t, "blob.sigstore.json")); !errors.Is(err, ErrInvalidEntry) || !strings.Contains(err.Error(), "bundle.messageSignature") {
		t.Errorf("sign-blob bundle: %v, want ErrInvalidEntry naming bundle.messageSignature", err)
	}
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func (c *chain) keyID(name string) string {
	c.t.Helper()
	if name == "cosign" {
		k, err := event.LoadKey(cosignFixture(c.t, "cosign.pub"))
		if err != nil {
			c.t.Fatal(err)
		}
		id, _ := k.KeyID()
		return id
	}
	id, err := c.keys[name].KeyID()
	if err != nil {
		c.t.Fatal(err)
	}
	return id
}

// withKeyIDs re-encodes an envelope with its signatures' key ids replaced.
func withKeyIDs(t *testing.T, envelope []byte, ids ...string) []byte {
	t.Helper()
	env, err := event.ParseEnvelope(envelope)
	if err != nil {
		t.Fatal(err)
	}
	for i := range env.Signatures {
		env.Signatures[i].KeyID = ids[i]
	}
	return env.Canonical()
}

// TestKeyIDsAreHints: admission does not depend on key ids (cosign writes
// none; a key id may be stale or another tool's): the keyring key that
// verifies the signature is the signer, and its roles decide.
func TestKeyIDsAreHints(t *testing.T) {
	c := newChain(t)
	app := artifact("app")
	for name, ids := range map[string][]string{
		"no key id":            {""},
		"another key's id":     {c.keyID("alice")},
		"a key id of no key":   {"SHA256:O/J/yiPOdeadbeef"},
		"cosign-style id hint": {"0123"},
	} {
		env := withKeyIDs(t, c.build(artifact(name), "ci"), ids...)
		if _, err := c.add(env); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Roles are the verifying key's, whatever the key id claims: the
	// builder's signature under the signer's key id is still the builder's.
	b := c.mustAdd(c.build(app, "ci"))
	if _, err := c.add(withKeyIDs(t, c.sign(app, b, "ci"), c.keyID("signer"))); !errors.Is(err, ErrPermissionDenied) {
		t.Errorf("builder's signature claiming the signer's key id: %v, want ErrPermissionDenied", err)
	}
	// A stranger's signature is refused under any key id.
	if _, err := c.add(withKeyIDs(t, c.build(artifact("s"), "stranger"), c.keyID("ci"))); !errors.Is(err, ErrPermissionDenied) {
		t.Errorf("stranger's signature under ci's key id: %v, want ErrPermissionDenied", err)
	}
	// Search by signer finds the builds under whatever key id they carried.
	hits, _, err := c.log.Search(context.Background(), IndexSigner, c.keyID("ci"), 0, 100)
	if err != nil || len(hits) != 5 {
		t.Errorf("events signed by ci: %d, %v; want 5", len(hits), err)
	}
}

// TestAttestationRoles: SBOMs, test results and links need the attester
// role, VSAs the verifier role; the keyring may narrow the predicate types
// of a role, and a refusal lists what the key may submit.
func TestAttestationRoles(t *testing.T) {
	c := newChain(t)
	app := artifact("app")
	spdx := func(signer string) []byte {
		return c.envelope(event.SPDXPredicateType, app, map[string]any{"spdxVersion": "SPDX-2.3", "name": "app"}, signer)
	}
	cdx := c.envelope(event.CycloneDXPredicateType, app, map[string]any{"bomFormat": "CycloneDX", "specVersion": "1.6"}, "scanner")
	ref := c.envelope(event.SBOMRefPredicateType, app, map[string]any{"format": "spdx", "mediaType": "application/spdx+json",
		"digest": map[string]string{"sha256": app.Hex}, "size": 12345678, "uri": "https://artifacts.example.com/app.spdx.json"}, "scanner")
	test := c.envelope(event.TestResultPredicateType, app, map[string]any{"result": "PASSED", "configuration": []any{}, "passedTests": []string{"unit"}}, "scanner")
	link := c.envelope(event.LinkPredicateType, app, map[string]any{"name": "package", "command": []string{"make", "dist"}}, "scanner")
	vsa := func(signer string) []byte {
		return c.envelope(event.VSAPredicateType, app, map[string]any{"verifier": map[string]string{"id": "https://verifier.example.com"},
			"resourceUri": "pkg:generic/app", "policy": map[string]string{"uri": "https://policy.example.com/p"},
			"verificationResult": "PASSED", "verifiedLevels": []string{"SLSA_BUILD_LEVEL_3"}}, signer)
	}
	want := map[uint64]string{}
	for name, env := range map[string][]byte{"spdx": spdx("scanner"), "cyclonedx": cdx, "sbom by reference": ref, "test result": test, "link": link, "vsa": vsa("verifier")} {
		res, err := c.add(env)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		want[res.Index] = name
	}
	for name, env := range map[string][]byte{"spdx by the builder": spdx("ci"), "vsa by the attester": vsa("scanner")} {
		if _, err := c.add(env); !errors.Is(err, ErrPermissionDenied) {
			t.Errorf("%s: %v, want ErrPermissionDenied", name, err)
		}
	}
	hits, _, err := c.log.Search(context.Background(), IndexDigest, app.String(), 0, 100)
	if err != nil || len(hits) != len(want) {
		t.Fatalf("search by digest: %d hits, %v; want %d", len(hits), err, len(want))
	}
	for _, h := range hits {
		if _, ok := want[h.Index]; !ok || h.Type == "" {
			t.Errorf("hit %+v", h)
		}
	}

	// A keyring narrowing the attester to SPDX.
	ring := `{"keys":[{"name":"scanner","publicKeyFile":"scanner.pub","roles":["attester"]}],
		"roles":{"attester":{"predicateTypes":["` + event.SPDXPredicateType + `"]}}}`
	kr, err := ParseKeyring([]byte(ring), c.dir)
	if err != nil {
		t.Fatal(err)
	}
	c.reopenWith(kr)
	versioned := c.envelope(event.SPDXPredicateType+"/v2.3", artifact("v"), map[string]any{"spdxVersion": "SPDX-2.3"}, "scanner")
	if _, err := c.add(versioned); err != nil {
		t.Errorf("versioned SPDX under a narrowed role: %v", err)
	}
	before := c.log.Checkpoint().Size
	_, err = c.add(c.envelope(event.CycloneDXPredicateType, artifact("w"), map[string]any{"bomFormat": "CycloneDX", "specVersion": "1.6"}, "scanner"))
	if !errors.Is(err, ErrPermissionDenied) || !strings.Contains(err.Error(), event.SPDXPredicateType) {
		t.Errorf("CycloneDX under a role narrowed to SPDX: %v, want ErrPermissionDenied listing %s", err, event.SPDXPredicateType)
	}
	if c.log.Checkpoint().Size != before {
		t.Error("a refused entry was written")
	}
	for name, bad := range map[string]string{
		"unknown role":          `{"keys":[],"roles":{"admin":{"predicateTypes":["x"]}}}`,
		"type not of the role":  `{"keys":[],"roles":{"attester":{"predicateTypes":["` + event.VSAPredicateType + `"]}}}`,
		"empty predicate types": `{"keys":[],"roles":{"verifier":{"predicateTypes":[]}}}`,
	} {
		if _, err := ParseKeyring([]byte(bad), c.dir); err == nil {
			t.Errorf("%s: keyring accepted", name)
		}
	}
}

// TestOversizeEntryNamesSBOMReference: an entry over the size cap is
// refused with a message that says how to log a large SBOM.
func TestOversizeEntryNamesSBOMReference(t *testing.T) {
	c := newChain(t)
	_, err := c.add(bytes.Repeat([]byte("x"), MaxEntrySizeLimit+1))
	if !errors.Is(err, ErrInvalidEntry) || !strings.Contains(err.Error(), event.SBOMRefPredicateType) {
		t.Errorf("oversize entry: %v, want ErrInvalidEntry naming %s", err, event.SBOMRefPredicateType)
	}
}

// countingKey counts the verifications a keyring key does.
type countingKey struct {
	event.Key
	n *int
}

func (k countingKey) Verify(ctx context.Context, data, sig []byte) error {
	*k.n++
	return k.Key.Verify(ctx, data, sig)
}

// TestKeyIDLessSignaturesCostOneScan: with key ids only hints, an
// envelope of many key-id-less signatures by one key costs one scan of the
// keyring and one verification per further signature, not a scan each
// (which a submitter could use to make admission verify 16 × the keyring).
func TestKeyIDLessSignaturesCostOneScan(t *testing.T) {
	c := newChain(t)
	kr, err := LoadKeyring(c.dir + "/keyring.json")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	keys := kr.Keys()
	for _, k := range keys {
		k.Key = countingKey{k.Key, &n}
	}
	// The last keyring key whose private half the test holds (cosign's is
	// not here: it is the chain's ECDSA verifier key) signs 16 times; ECDSA
	// signatures differ each time, so none is the same signature twice.
	var last *policy.Key
	var signer event.SigningKey
	for _, k := range keys {
		for _, sk := range c.keys {
			if id, _ := sk.KeyID(); id == k.ID {
				last, signer = k, sk
			}
		}
	}
	st, err := event.NewStatement(event.ProvenancePredicateType, []event.Subject{{Name: "app", Digest: artifact("app")}}, mustProvenance(t))
	if err != nil {
		t.Fatal(err)
	}
	env := &event.Envelope{Payload: st}
	pae := env.PAE()
	for range event.MaxSignatures {
		sig, err := signer.Sign(context.Background(), pae)
		if err != nil {
			t.Fatal(err)
		}
		env.Signatures = append(env.Signatures, event.Signature{Sig: sig})
	}
	parsed, err := event.ParseEnvelope(env.Canonical())
	if err != nil {
		t.Fatal(err)
	}
	signers, err := kr.Verify(context.Background(), parsed)
	if err != nil || len(signers) != 1 || signers[0] != last {
		t.Fatalf("verify = %v, %v; want the one signer", signers, err)
	}
	pos := slices.Index(keys, last) + 1
	if want := pos + event.MaxSignatures - 1; n > want {
		t.Errorf("%d verifications for %d signatures by key %d of %d, want at most %d", n, event.MaxSignatures, pos, len(keys), want)
	}
}

func mustProvenance(t *testing.T) *slsa.Provenance {
	t.Helper()
	p, err := event.NewProvenance(event.BuildSpec{BuilderID: "https://ci.example.com/b", BuildType: "https://ci.example.com/t",
		SourceRepo: "https://git.example.com/app", SourceCommit: strings.Repeat("c0", 20)})
	if err != nil {
		t.Fatal(err)
	}
	return p
}
