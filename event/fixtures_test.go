package event

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func readFixture(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", path))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCosignFixtures: what cosign v3 writes (testdata/cosign, made by
// generate.sh) is read as documented, and its signatures verify with the
// key loaded as provlog loads keyring keys.
func TestCosignFixtures(t *testing.T) {
	key, err := LoadKey(readFixture(t, "cosign/cosign.pub"))
	if err != nil {
		t.Fatal(err)
	}
	p256, err := LoadKey(readFixture(t, "cosign/p256.pub"))
	if err != nil {
		t.Fatal(err)
	}
	const commit = "1111111111111111111111111111111111111111"
	for _, tc := range []struct {
		file          string
		key           Key
		typ, stmtType string
		field         string // refused: the FieldError's field
		check         func(*Event) bool
	}{
		{"slsa1.sigstore.json", key, TypeBuild, StatementV01, "", func(e *Event) bool {
			return e.Build.SourceCommit == commit && e.Build.BuilderID == "https://github.com/actions/runner/github-hosted" &&
				NormalizeRepo(e.Build.SourceRepo) == "https://github.com/octo/app"
		}},
		{"slsa1.dsse.json", key, TypeBuild, StatementV01, "", func(e *Event) bool { return e.Build.SourceCommit == commit }},
		{"statement-v1.sigstore.json", key, TypeBuild, StatementV1, "", func(e *Event) bool { return e.Build.SourceCommit == commit }},
		{"statement-v1.dsse.json", key, TypeBuild, StatementV1, "", nil},
		{"p256-statement-v1.sigstore.json", p256, TypeBuild, StatementV1, "", nil},
		{"p256-statement-v1.dsse.json", p256, TypeBuild, StatementV1, "", nil},
		{"spdxjson.sigstore.json", key, TypeSBOM, StatementV01, "", func(e *Event) bool { return e.SBOM.Format == SBOMSPDX && e.SBOM.Inline }},
		{"spdx-uri.sigstore.json", key, TypeSBOM, StatementV01, "", func(e *Event) bool { return e.SBOM.Format == SBOMSPDX }},
		{"cyclonedx.sigstore.json", key, TypeSBOM, StatementV01, "", func(e *Event) bool { return e.SBOM.Format == SBOMCycloneDX }},
		{"slsa02.sigstore.json", key, "", "", "statement.predicateType", nil}, // SLSA v0.2 is not admitted
		{"custom.sigstore.json", key, "", "", "statement.predicateType", nil},
		{"blob.sigstore.json", key, "", "", "bundle.messageSignature", nil},
	} {
		t.Run(tc.file, func(t *testing.T) {
			env, err := ParseEntry(readFixture(t, "cosign/"+tc.file))
			if tc.field == "bundle.messageSignature" {
				wantFieldError(t, err, tc.field)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(env.Signatures) != 1 || env.Signatures[0].KeyID != "" {
				t.Errorf("signatures %+v, want one without a key id (cosign writes none)", env.Signatures)
			}
			if err := tc.key.Verify(context.Background(), env.PAE(), env.Signatures[0].Sig); err != nil {
				t.Errorf("cosign's signature does not verify: %v", err)
			}
			ev, err := ParseStatement(env.Payload)
			if tc.field != "" {
				wantFieldError(t, err, tc.field)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ev.Type != tc.typ || ev.StatementType != tc.stmtType || len(ev.Subjects) != 1 ||
				ev.Subjects[0].String() != "sha256:"+fileSHA256(t, "cosign/artifact.txt") {
				t.Errorf("read as %s %s about %v", ev.Type, ev.StatementType, ev.Subjects)
			}
			if tc.check != nil && !tc.check(ev) {
				t.Errorf("fields: %+v %+v %+v", ev, ev.Build, ev.SBOM)
			}
		})
	}
}

func fileSHA256(t *testing.T, path string) string {
	d, err := digestOf(readFixture(t, path))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestShapeFixtures: provenance, SBOMs, test results, VSAs and links
// shaped after what the tools of the field publish (testdata/shapes,
// REPORT.md names each source).
func TestShapeFixtures(t *testing.T) {
	const commit = "c27d339ee6075c1f744c5d4b200f7901aad2c369"
	for _, tc := range []struct {
		file, repo, commit, field, reason string
	}{
		{"provenance-github.json", "https://github.com/octo-org/app", commit, "", ""},
		{"provenance-byob.json", "https://github.com/octo-org/app", commit, "", ""},
		{"provenance-container-based.json", "https://github.com/octo-org/app", commit, "", ""},
		{"provenance-tekton.json", "https://github.com/octo-org/pipelines", "4e11e2fe764ff8bddede42eee852767f7e5264c3", "", ""},
		// gitlab-runner labels its git SHA-1 "sha256": in-toto's
		// ResourceDescriptor validation refuses the digest's length.
		{"provenance-gitlab.json", "", "", "statement.predicate", "digest"},
		// GitLab's experimental provenance documents invocationId as a
		// number, where SLSA's schema (and protojson) want a string.
		{"provenance-gitlab-rails.json", "", "", "statement.predicate", "want a string"},
	} {
		pred := readFixture(t, "shapes/"+tc.file)
		ev, err := ParseStatement([]byte(statementV1(ProvenancePredicateType, string(pred))))
		if tc.field != "" {
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field || !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("%s: %v, want a FieldError on %s: %s", tc.file, err, tc.field, tc.reason)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.file, err)
			continue
		}
		if NormalizeRepo(ev.Build.SourceRepo) != tc.repo || ev.Build.SourceCommit != tc.commit {
			t.Errorf("%s: source %q (%q) %q, want %q %q", tc.file, ev.Build.SourceRepo, NormalizeRepo(ev.Build.SourceRepo), ev.Build.SourceCommit, tc.repo, tc.commit)
		}
	}
	for file, typ := range map[string]string{
		"statement-spdx.json":        TypeSBOM,
		"statement-cyclonedx.json":   TypeSBOM,
		"statement-test-result.json": TypeTestResult,
		"statement-vsa.json":         TypeVSA,
		"statement-vsa-minimal.json": TypeVSA,
		"statement-link.json":        TypeLink,
	} {
		ev, err := ParseStatement(readFixture(t, "shapes/"+file))
		if err != nil {
			t.Errorf("%s: %v", file, err)
			continue
		}
		if ev.Type != typ || len(ev.Subjects) == 0 {
			t.Errorf("%s: %s about %v, want %s", file, ev.Type, ev.Subjects, typ)
		}
	}
	for _, file := range []string{"bundle-v0.3-dsse.json", "bundle-v0.2-dsse.json", "dsse-envelope.json"} {
		env, err := ParseEntry(readFixture(t, "shapes/"+file))
		if err != nil {
			t.Errorf("%s: %v", file, err)
			continue
		}
		if _, err := ParseStatement(env.Payload); err != nil {
			t.Errorf("%s: statement: %v", file, err)
		}
	}
}

func digestOf(b []byte) (string, error) {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

func wantFieldError(t *testing.T, err error, field string) {
	t.Helper()
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != field {
		t.Fatalf("%v, want a FieldError on %s", err, field)
	}
}

// TestMessageSignatureBundle: cosign sign-blob's bundle gives the artifact
// digest and the raw signature, which verifies over the artifact with the
// cosign key; an attestation bundle is not one.
func TestMessageSignatureBundle(t *testing.T) {
	ms, err := ParseMessageSignature(readFixture(t, "cosign/blob.sigstore.json"))
	if err != nil {
		t.Fatal(err)
	}
	if ms.Digest.String() != "sha256:"+fileSHA256(t, "cosign/artifact.txt") {
		t.Errorf("digest %s", ms.Digest)
	}
	pub, err := LoadKey(readFixture(t, "cosign/cosign.pub"))
	if err != nil {
		t.Fatal(err)
	}
	ecdsaKey, ok := pub.Public().(*ecdsa.PublicKey)
	sum := sha256.Sum256(readFixture(t, "cosign/artifact.txt"))
	if !ok || !ecdsa.VerifyASN1(ecdsaKey, sum[:], ms.Signature) {
		t.Error("the bundle's signature does not verify over the artifact with cosign.pub")
	}
	_, err = ParseMessageSignature(readFixture(t, "cosign/slsa1.sigstore.json"))
	wantFieldError(t, err, "bundle.messageSignature")
}

func TestDetectSBOM(t *testing.T) {
	for file, want := range map[string]string{"cosign/sbom.spdx.json": SBOMSPDX, "cosign/sbom.cdx.json": SBOMCycloneDX} {
		if f, _, err := DetectSBOM(readFixture(t, file)); err != nil || f != want {
			t.Errorf("%s: %q, %v; want %s", file, f, err, want)
		}
	}
	if _, _, err := DetectSBOM([]byte(`{"name":"x"}`)); err == nil {
		t.Error("neither SPDX nor CycloneDX detected as an SBOM")
	}
}

func FuzzParseMessageSignature(f *testing.F) {
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","messageSignature":{"messageDigest":{"algorithm":"SHA2_256","digest":"` + strings.Repeat("A", 43) + `="},"signature":"c2ln"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ms, err := ParseMessageSignature(b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error not ErrInvalid: %v", err)
			}
			return
		}
		if len(ms.Signature) == 0 || (ms.Digest != Digest{} && !ms.Digest.valid()) {
			t.Fatalf("accepted %+v", ms)
		}
	})
}
