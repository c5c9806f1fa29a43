package event

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// statementV1 wraps a predicate in a statement about digest.
func statementV1(predType, pred string) string {
	return statementJSON(predType, pred, `"sha256":"`+digest.Hex+`"`)
}

// TestExtensionFieldsEverywhere: in-toto, "Consumers MUST ignore
// unrecognized fields unless otherwise noted"; SLSA, "Producers MAY add
// extension fields to any JSON object". A member added to every object of
// a statement is ignored, and the signed payload is kept byte for byte in
// the leaf. Duplicate names anywhere are still refused.
func TestExtensionFieldsEverywhere(t *testing.T) {
	for _, seed := range statementSeeds(t) {
		want, err := ParseStatement(seed)
		if err != nil {
			t.Fatalf("seed: %v", err)
		}
		root := parseTree(t, seed)
		objects := 0
		extended := root.rebuild(nil, nil) // a copy
		// Every object but the maps of strings (digest sets, versions)
		// and a keyring's roles, whose members are data, not fields.
		var objs []*jnode
		var visit func(n *jnode, name string)
		visit = func(n *jnode, name string) {
			if n.kind == '{' && name != "digest" && name != "version" && name != "roles" {
				objs = append(objs, n)
			}
			for i, v := range n.vals {
				if n.kind == '{' {
					visit(v, n.names[i])
				} else {
					visit(v, name)
				}
			}
		}
		visit(extended, "")
		for _, n := range objs {
			n.names = append(n.names, "https://example.com/ext/note")
			n.vals = append(n.vals, parseTree(t, []byte(`{"note":["x",1,{"y":null}]}`)))
			objects++
		}
		payload := extended.encode(nil)
		got, err := ParseStatement(payload)
		if err != nil {
			t.Fatalf("statement with extension fields in all %d objects refused: %v\n%s", objects, err, payload)
		}
		if got.Type != want.Type || !equalSubjects(got.Subjects, want.Subjects) {
			t.Errorf("with extensions: %+v, want %+v", got, want)
		}
		if got.Build != nil && (got.Build.SourceCommit != want.Build.SourceCommit || got.Build.BuilderID != want.Build.BuilderID) {
			t.Errorf("with extensions: build %+v, want %+v", got.Build, want.Build)
		}
		if !equalKeyrings(got.Keyring, want.Keyring) || !reflect.DeepEqual(got.Revoke, want.Revoke) || !reflect.DeepEqual(got.Quarantine, want.Quarantine) {
			t.Errorf("with extensions: %+v %+v %+v, want %+v %+v %+v", got.Keyring, got.Revoke, got.Quarantine, want.Keyring, want.Revoke, want.Quarantine)
		}
		// The leaf keeps the payload exactly.
		key, _ := genKey(t, false)
		envelope, err := SignEnvelope(context.Background(), payload, key)
		if err != nil {
			t.Fatal(err)
		}
		env, err := ParseEnvelope(envelope)
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := ParseEnvelope(env.Canonical())
		if err != nil || !bytes.Equal(leaf.Payload, payload) {
			t.Fatalf("leaf payload differs from the signed one (%v)", err)
		}

		// A duplicate of any member, anywhere, is refused.
		dups := 0
		root.walk(func(n *jnode) {
			if n.kind != '{' || len(n.names) == 0 {
				return
			}
			dup := root.rebuild(n, func(c *jnode) *jnode {
				c.names, c.vals = append(c.names, c.names[0]), append(c.vals, c.vals[0])
				return c
			}).encode(nil)
			dups++
			if _, err := ParseStatement(dup); !errors.Is(err, ErrInvalid) {
				t.Errorf("duplicate member %q admitted: %s", n.names[0], dup)
			}
		})
		if dups == 0 {
			t.Fatal("no objects")
		}
	}
}

func equalSubjects(a, b []Digest) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestBase64EitherAlphabet: DSSE, "Either standard or URL-safe base64
// encodings are allowed. Signers may use either, and verifiers MUST accept
// either." Padded or not, every form is the same canonical envelope.
func TestBase64EitherAlphabet(t *testing.T) {
	payload := []byte(`{"k":"\xfb\xff\xfe ~~~ ???"}`) // encodes with + and / in standard base64
	sig := []byte{0xfb, 0xef, 0xff, 0x01}
	std := base64.StdEncoding.EncodeToString(payload)
	if !strings.ContainsAny(std, "+/") || !strings.ContainsAny(std, "=") {
		t.Fatalf("payload %q does not exercise the alphabets: %s", payload, std)
	}
	env := func(enc *base64.Encoding) string {
		return `{"payloadType":"application/vnd.in-toto+json","payload":"` + enc.EncodeToString(payload) + `","signatures":[{"keyid":"k","sig":"` + enc.EncodeToString(sig) + `"}]}`
	}
	want, err := ParseEnvelope([]byte(env(base64.StdEncoding)))
	if err != nil {
		t.Fatal(err)
	}
	for name, enc := range map[string]*base64.Encoding{"url": base64.URLEncoding, "raw std": base64.RawStdEncoding, "raw url": base64.RawURLEncoding} {
		got, err := ParseEnvelope([]byte(env(enc)))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !bytes.Equal(got.Canonical(), want.Canonical()) {
			t.Errorf("%s: canonical\n%s\nwant\n%s", name, got.Canonical(), want.Canonical())
		}
	}
	// Mixed alphabets in one field are not base64 of either.
	mixed := `{"payloadType":"application/vnd.in-toto+json","payload":"+_8=","signatures":[{"sig":"c2ln"}]}`
	var fe *FieldError
	if _, err := ParseEnvelope([]byte(mixed)); !errors.As(err, &fe) || fe.Field != "envelope.payload" {
		t.Errorf("mixed alphabets: %v, want a FieldError on envelope.payload", err)
	}
}

// TestSigstoreBundle: a Sigstore bundle whose content is a DSSE envelope
// is the envelope; other bundles are refused naming what is wrong.
func TestSigstoreBundle(t *testing.T) {
	key, _ := genKey(t, true)
	envelope, err := SignEnvelope(context.Background(), buildStatement(t), key)
	if err != nil {
		t.Fatal(err)
	}
	bundle := func(mediaType, content string) []byte {
		return []byte(`{"mediaType":"` + mediaType + `","verificationMaterial":{"publicKey":{"hint":"abc"},"tlogEntries":[],"timestampVerificationData":{}},` + content + `,"futureField":{"x":[1]}}`)
	}
	for _, mt := range []string{"application/vnd.dev.sigstore.bundle.v0.3+json", "application/vnd.dev.sigstore.bundle+json;version=0.2", "application/vnd.dev.sigstore.bundle+json;version=0.1"} {
		env, err := ParseEntry(bundle(mt, `"dsseEnvelope":`+string(envelope)))
		if err != nil {
			t.Fatalf("bundle %s: %v", mt, err)
		}
		if !bytes.Equal(env.Canonical(), envelope) {
			t.Errorf("bundle %s: envelope\n%s\nwant\n%s", mt, env.Canonical(), envelope)
		}
	}
	if env, err := ParseEntry(envelope); err != nil || !bytes.Equal(env.Canonical(), envelope) {
		t.Errorf("bare envelope through ParseEntry: %v", err)
	}
	for name, tc := range map[string]struct {
		in    []byte
		field string
	}{
		"message signature": {bundle("application/vnd.dev.sigstore.bundle.v0.3+json", `"messageSignature":{"messageDigest":{"algorithm":"SHA2_256","digest":"AAAA"},"signature":"AAAA"}`), "bundle.messageSignature"},
		"no content":        {bundle("application/vnd.dev.sigstore.bundle.v0.3+json", `"x":1`), "bundle.dsseEnvelope"},
		"bad envelope":      {bundle("application/vnd.dev.sigstore.bundle.v0.3+json", `"dsseEnvelope":{"payloadType":"application/vnd.in-toto+json","payload":"%%%","signatures":[{"sig":"c2ln"}]}`), "bundle.dsseEnvelope.payload"},
		"duplicate member":  {[]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","dsseEnvelope":` + string(envelope) + `,"dsseEnvelope":{}}`), "bundle"},
		"other media type":  {bundle("application/json", `"dsseEnvelope":`+string(envelope)), "envelope"},
	} {
		_, err := ParseEntry(tc.in)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%s: %v, want a FieldError on %s", name, err, tc.field)
		}
	}
}

// TestBuildSourceShapes: the source is read from the shapes the common
// builders write (see buildSource).
func TestBuildSourceShapes(t *testing.T) {
	c40, c64 := strings.Repeat("a1", 20), strings.Repeat("b2", 32)
	prov := func(ext, deps string) string {
		return `{"buildDefinition":{"buildType":"t","externalParameters":` + ext + `,"resolvedDependencies":` + deps + `},"runDetails":{"builder":{"id":"b"}}}`
	}
	for _, tc := range []struct {
		name, pred, repo, commit, field string
	}{
		{"provlog", prov(`{"source":{"repository":"https://git.example.com/app","commit":"`+c40+`"}}`, `[]`), "https://git.example.com/app", c40, ""},
		{"github workflow", prov(`{"workflow":{"ref":"refs/heads/main","repository":"https://github.com/o/r","path":".github/workflows/r.yml"}}`,
			`[{"uri":"git+https://github.com/o/r@refs/heads/main","digest":{"gitCommit":"`+c40+`"}}]`), "git+https://github.com/o/r@refs/heads/main", c40, ""},
		{"byob", prov(`{"source":{"uri":"git+https://github.com/o/r@refs/tags/v1","digest":{"sha1":"`+c40+`"}}}`, `null`), "git+https://github.com/o/r@refs/tags/v1", c40, ""},
		{"source digest gitCommit", prov(`{"source":{"uri":"git+https://x/r","digest":{"gitCommit":"`+c64+`"}}}`, `null`), "git+https://x/r", c64, ""},
		{"source without commit, dependency has it", prov(`{"source":{"repository":"https://x/r"}}`, `[{"digest":{"gitCommit":"`+c40+`"}}]`), "https://x/r", c40, ""},
		{"gitlab", prov(`{"source":"https://gitlab.com/g/p","entryPoint":"build"}`, `[{"uri":"https://gitlab.com/g/p","digest":{"gitCommit":"`+c40+`"}}]`), "https://gitlab.com/g/p", c40, ""},
		// gitlab-runner's "sha256" holding a git SHA-1 fails in-toto's
		// ResourceDescriptor validation.
		{"gitlab runner", prov(`{"source":"https://gitlab.com/g/p","entryPoint":"build"}`, `[{"uri":"https://gitlab.com/g/p","digest":{"sha256":"`+c40+`"}}]`), "", "", "statement.predicate"},
		{"tekton", prov(`{"runSpec":{}}`, `[{"name":"task/build","uri":"oci://r/t","digest":{"sha256":"`+digest.Hex+`"}},{"name":"inputs/result","uri":"git+https://github.com/o/r.git","digest":{"sha1":"`+c40+`"}}]`), "git+https://github.com/o/r.git", c40, ""},
		{"bad commit", prov(`{"source":{"repository":"r","commit":"main"}}`, `[]`), "", "", "statement.predicate.buildDefinition.externalParameters.source.commit"},
		{"bad sha1", prov(`{"source":{"uri":"r","digest":{"sha1":"A1"}}}`, `[]`), "", "", "statement.predicate.buildDefinition.externalParameters.source.digest.sha1"},
		{"sha1 dependency not git", prov(`{"x":1}`, `[{"uri":"https://x/r","digest":{"sha1":"`+c40+`"}}]`), "", "", "statement.predicate.buildDefinition"},
		{"none", prov(`{"x":1}`, `[]`), "", "", "statement.predicate.buildDefinition"},
	} {
		ev, err := ParseStatement([]byte(statementV1(ProvenancePredicateType, tc.pred)))
		if tc.field != "" {
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field {
				t.Errorf("%s: %v, want a FieldError on %s", tc.name, err, tc.field)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if ev.Build.SourceRepo != tc.repo || ev.Build.SourceCommit != tc.commit {
			t.Errorf("%s: source %q %q, want %q %q", tc.name, ev.Build.SourceRepo, ev.Build.SourceCommit, tc.repo, tc.commit)
		}
	}
	for in, want := range map[string]string{
		"git+https://github.com/o/r@refs/heads/main": "https://github.com/o/r",
		"git+https://github.com/o/r.git":             "https://github.com/o/r",
		"git+ssh://git@github.com/o/r":               "ssh://git@github.com/o/r",
		"https://gitlab.com/g/p":                     "https://gitlab.com/g/p",
	} {
		if got := NormalizeRepo(in); got != want {
			t.Errorf("NormalizeRepo(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestAttestationPredicates: each predicate type is read as documented
// and refused, naming the field, where a required field is wrong.
func TestAttestationPredicates(t *testing.T) {
	ok := map[string]func(*Event) bool{
		statementV1(SPDXPredicateType, `{"spdxVersion":"SPDX-2.3","name":"app"}`): func(e *Event) bool {
			return e.SBOM.Inline && e.SBOM.Format == SBOMSPDX && e.SBOM.SpecVersion == "SPDX-2.3" && e.SBOM.MediaType == "application/spdx+json"
		},
		statementV1(SPDXPredicateType+"/v2.3", `{"spdxVersion":"SPDX-2.3"}`): func(e *Event) bool { return e.SBOM.Format == SBOMSPDX },
		statementV1(CycloneDXPredicateType+"/v1.6", `{"bomFormat":"CycloneDX","specVersion":"1.6"}`): func(e *Event) bool {
			return e.SBOM.Format == SBOMCycloneDX && e.SBOM.SpecVersion == "1.6"
		},
		statementV1(SBOMRefPredicateType, `{"format":"cyclonedx","mediaType":"application/vnd.cyclonedx+json","digest":{"sha512":"`+strings.Repeat("ab", 64)+`"},"size":9000000,"uri":"oci://r/app:sbom"}`): func(e *Event) bool {
			return !e.SBOM.Inline && e.SBOM.Digest.Alg == "sha512" && e.SBOM.Size == 9000000 && e.SBOM.URI == "oci://r/app:sbom"
		},
		statementV1(TestResultPredicateType, `{"result":"FAILED","url":"https://ci/1","failedTests":["t1"],"configuration":[{"name":"go.mod"}]}`): func(e *Event) bool {
			return e.TestResult.Result == ResultFailed && len(e.TestResult.FailedTests) == 1 && len(e.TestResult.Configuration) == 1
		},
		statementV1(VSAPredicateType, `{"verifier":{"id":"https://v"},"resourceUri":"pkg:a","policy":{"uri":"https://p"},"verificationResult":"PASSED","verifiedLevels":["SLSA_BUILD_LEVEL_2"],"timeVerified":"2024-05-01T10:00:00Z"}`): func(e *Event) bool {
			return e.VSA.VerifierID == "https://v" && e.VSA.Result == ResultPassed && e.VSA.VerifiedLevels[0] == "SLSA_BUILD_LEVEL_2" && e.VSA.TimeVerified.Year() == 2024
		},
		statementV1(LinkPredicateType, `{"name":"test","command":["go","test"]}`): func(e *Event) bool {
			return e.Link.Name == "test" && len(e.Link.Command) == 2
		},
	}
	for in, check := range ok {
		ev, err := ParseStatement([]byte(in))
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if !check(ev) || ev.Type != TypeOf(ev.PredicateType) {
			t.Errorf("%s: read as %+v %+v %+v %+v %+v", in, ev, ev.SBOM, ev.TestResult, ev.VSA, ev.Link)
		}
	}
	for in, field := range map[string]string{
		statementV1(SPDXPredicateType, `{"name":"app"}`):                                                                                                     "statement.predicate.spdxVersion",
		statementV1(SPDXPredicateType+"/2.3", `{"spdxVersion":"SPDX-2.3"}`):                                                                                  "statement.predicateType",
		statementV1(CycloneDXPredicateType, `{"bomFormat":"SPDX","specVersion":"1"}`):                                                                        "statement.predicate.bomFormat",
		statementV1(SBOMRefPredicateType, `{"format":"spdx","mediaType":"application/spdx+json","size":1}`):                                                  "statement.predicate.digest",
		statementV1(SBOMRefPredicateType, `{"format":"spdx","mediaType":"spdx","digest":{"sha256":"`+digest.Hex+`"}}`):                                       "statement.predicate.mediaType",
		statementV1(SBOMRefPredicateType, `{"format":"xml","mediaType":"a/b","digest":{"sha256":"`+digest.Hex+`"}}`):                                         "statement.predicate.format",
		statementV1(TestResultPredicateType, `{"result":"OK","configuration":[]}`):                                                                           "statement.predicate.result",
		statementV1(TestResultPredicateType, `{"result":"PASSED","configuration":[{}]}`):                                                                     "statement.predicate.configuration",
		statementV1(VSAPredicateType, `{"verifier":{},"resourceUri":"a","policy":{"uri":"p"},"verificationResult":"PASSED","verifiedLevels":["L"]}`):         "statement.predicate.verifier.id",
		statementV1(VSAPredicateType, `{"verifier":{"id":"v"},"resourceUri":"a","policy":{"uri":"p"},"verificationResult":"WARNED","verifiedLevels":["L"]}`): "statement.predicate.verificationResult",
		statementV1(VSAPredicateType, `{"verifier":{"id":"v"},"resourceUri":"a","verificationResult":"PASSED","verifiedLevels":["L"]}`):                      "statement.predicate.policy.uri",
		statementV1(VSAPredicateType, `{"verifier":{"id":"v"},"resourceUri":"a","policy":{"uri":"p"},"verificationResult":"PASSED"}`):                        "statement.predicate.verifiedLevels",
		statementV1(TestResultPredicateType, `{"result":"PASSED"}`):                                                                                          "statement.predicate.configuration",
		statementV1(LinkPredicateType, `{"command":["x"]}`):                                                                                                  "statement.predicate.name",
	} {
		_, err := ParseStatement([]byte(in))
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != field {
			t.Errorf("%s: %v, want a FieldError on %s", in, err, field)
		}
	}
}

// TestInlineSBOMCap: an inline SBOM over the cap is refused with a message
// naming the cap and the digest-reference form.
func TestInlineSBOMCap(t *testing.T) {
	pkgs := func(n int) string {
		var b strings.Builder
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`{"name":"p","SPDXID":"SPDXRef-p","versionInfo":"1.0.0"}`)
		}
		return b.String()
	}
	fits := statementV1(SPDXPredicateType, `{"spdxVersion":"SPDX-2.3","packages":[`+pkgs(100)+`]}`)
	if _, err := ParseStatement([]byte(fits)); err != nil {
		t.Fatalf("SBOM of %d bytes: %v", len(fits), err)
	}
	for _, n := range []int{700, 3000} { // over the byte cap; over the token cap too
		big := statementV1(SPDXPredicateType, `{"spdxVersion":"SPDX-2.3","packages":[`+pkgs(n)+`]}`)
		_, err := ParseStatement([]byte(big))
		if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "32768 bytes") || !strings.Contains(err.Error(), SBOMRefPredicateType) {
			t.Errorf("SBOM of %d bytes: %v, want a refusal naming the cap and %s", len(big), err, SBOMRefPredicateType)
		}
	}
	// Any other statement over the token cap says so, not SBOM.
	many := statementV1(LinkPredicateType, `{"name":"x","command":[`+strings.Repeat(`"a",`, MaxTokens)+`"a"]}`)
	if _, err := ParseStatement([]byte(many)); err == nil || strings.Contains(err.Error(), "SBOM") {
		t.Errorf("link over the token cap: %v", err)
	}
}

// TestStatementV01: cosign writes in-toto Statement v0.1 even around SLSA
// v1 provenance; it is read as v1, and which it was is recorded.
func TestStatementV01(t *testing.T) {
	in := strings.Replace(string(buildStatement(t)), "https://in-toto.io/Statement/v1", StatementV01, 1)
	ev, err := ParseStatement([]byte(in))
	if err != nil || ev.StatementType != StatementV01 || ev.Type != TypeBuild {
		t.Fatalf("v0.1 statement: %+v, %v", ev, err)
	}
	ev, err = ParseStatement(buildStatement(t))
	if err != nil || ev.StatementType != StatementV1 {
		t.Fatalf("v1 statement: %+v, %v", ev, err)
	}
}

func FuzzParseEntry(f *testing.F) {
	for _, s := range envelopeSeeds() {
		f.Add(s)
		f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","dsseEnvelope":` + string(s) + `}`))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := ParseEntry(b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error not ErrInvalid: %v", err)
			}
			return
		}
		// What is logged parses back to itself.
		again, err := ParseEnvelope(env.Canonical())
		if err != nil || !bytes.Equal(again.Canonical(), env.Canonical()) {
			t.Fatalf("canonical of %q does not round-trip: %v", b, err)
		}
	})
}

// TestKeyIDLessApproval: an envelope signed without key ids (cosign's
// form, provlog attest --keyid none) is approved without signing twice.
func TestKeyIDLessApproval(t *testing.T) {
	ctx := context.Background()
	alice, _ := genKey(t, true)
	bob, _ := genKey(t, false)
	env, err := SignEnvelope(ctx, buildStatement(t), alice)
	if err != nil {
		t.Fatal(err)
	}
	bare, err := WithoutKeyIDs(env)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := ParseEnvelope(bare)
	if err != nil || parsed.Signatures[0].KeyID != "" {
		t.Fatalf("WithoutKeyIDs: %s, %v", bare, err)
	}
	approved, err := AddSignatures(ctx, bare, alice, bob)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseEnvelope(approved)
	if err != nil || len(got.Signatures) != 2 {
		t.Fatalf("alice (already signed, no key id) and bob approving: %d signatures, %v; want 2", len(got.Signatures), err)
	}
}

// TestRawPredicateKept: a json.RawMessage predicate (an SBOM) is kept as
// written, numbers and key order included.
func TestRawPredicateKept(t *testing.T) {
	doc := `{"spdxVersion":"SPDX-2.3","z":1,"a":12345678901234567890,"name":"x"}`
	st, err := NewStatement(SPDXPredicateType, []Subject{{Name: "app", Digest: digest}}, json.RawMessage(doc))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(st), `"predicate":`+doc) {
		t.Errorf("statement %s does not hold the document as written", st)
	}
}

func TestSummary(t *testing.T) {
	for in, want := range map[string]string{
		statementV1(ProvenancePredicateType, `{"buildDefinition":{"buildType":"t","resolvedDependencies":[{"uri":"git+https://github.com/o/r@refs/heads/main","digest":{"gitCommit":"`+strings.Repeat("ab", 20)+`"}}],"externalParameters":{"x":1}},"runDetails":{"builder":{"id":"b"}}}`): "builder=b source=https://github.com/o/r@" + strings.Repeat("ab", 20),
		statementV1(PromotePredicateType, `{"to":"dev","buildIndex":3,"decision":"approved"}`):                                           "(none) -> dev build=3",
		statementV1(SBOMRefPredicateType, `{"format":"spdx","mediaType":"a/b","digest":{"sha256":"`+digest.Hex+`"},"size":9,"uri":"u"}`): "spdx  by reference " + digest.String() + " (9 bytes) u",
		statementV1(TestResultPredicateType, `{"result":"WARNED","configuration":[],"warnedTests":["a"]}`):                               "result=WARNED passed=0 warned=1 failed=0",
		statementV1(LinkPredicateType, `{"name":"pkg","command":["make","dist"]}`):                                                       `step=pkg command="make dist"`,
	} {
		ev, err := ParseStatement([]byte(in))
		if err != nil {
			t.Fatal(err)
		}
		if got := ev.Summary(); got != want {
			t.Errorf("Summary() = %q, want %q", got, want)
		}
	}
}
