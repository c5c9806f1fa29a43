package event

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/go-json-experiment/json/jsontext"
	slsa "github.com/in-toto/attestation/go/predicates/provenance/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// The single-pass parsers must accept exactly what the reference parsers
// (reference_test.go) accept, decode it the same, and refuse the rest with
// a FieldError on the same field.

// sameFieldError reports whether got and want are FieldErrors on the same
// field. The reference checks the digests of one subject in map order, so
// for a subject with several bad digests either may be named.
func sameFieldError(got, want error) bool {
	var g, w *FieldError
	if !errors.As(got, &g) || !errors.As(want, &w) || !errors.Is(got, ErrInvalid) {
		return false
	}
	if g.Field == w.Field {
		return true
	}
	subject := func(f string) string {
		if i := strings.Index(f, "].digest"); i >= 0 && strings.HasPrefix(f, "statement.subject[") {
			return f[:i]
		}
		return f
	}
	return strings.HasPrefix(g.Field, "statement.subject[") && subject(g.Field) == subject(w.Field)
}

func checkEnvelopeMatchesReference(t testing.TB, b []byte) {
	t.Helper()
	got, err := ParseEnvelope(b)
	want, werr := refParseEnvelope(b)
	switch {
	case err != nil && werr != nil:
		if !sameFieldError(err, werr) {
			t.Fatalf("envelope %q:\nerror %v\nwant  %v", b, err, werr)
		}
	case err != nil || werr != nil:
		t.Fatalf("envelope %q:\nerror %v\nwant  %v", b, err, werr)
	default:
		if !bytes.Equal(got.Payload, want.Payload) || !reflect.DeepEqual(got.Signatures, want.Signatures) {
			t.Fatalf("envelope %q:\ngot  %+v\nwant %+v", b, got, want)
		}
		if !bytes.Equal(got.Canonical(), want.Canonical()) || !bytes.Equal(got.Canonical(), refCanonical(want)) {
			t.Fatalf("envelope %q: canonical\n%s\nwant\n%s", b, got.Canonical(), refCanonical(want))
		}
	}
}

func checkStatementMatchesReference(t testing.TB, b []byte) {
	t.Helper()
	got, err := ParseStatement(b)
	want, werr := refParseStatement(b)
	switch {
	case err != nil && werr != nil:
		if !sameFieldError(err, werr) {
			t.Fatalf("statement %s:\nerror %v\nwant  %v", b, err, werr)
		}
	case err != nil || werr != nil:
		t.Fatalf("statement %s:\nerror %v\nwant  %v", b, err, werr)
	default:
		if msg := diffEvents(got, want); msg != "" {
			t.Fatalf("statement %s: %s", b, msg)
		}
	}
}

func diffEvents(got, want *Event) string {
	switch {
	case got.Type != want.Type || got.StatementType != want.StatementType || got.PredicateType != want.PredicateType:
		return fmt.Sprintf("type %q %q %q, want %q %q %q", got.Type, got.StatementType, got.PredicateType, want.Type, want.StatementType, want.PredicateType)
	case !reflect.DeepEqual(got.SBOM, want.SBOM):
		return fmt.Sprintf("sbom %+v, want %+v", got.SBOM, want.SBOM)
	case (got.VSA == nil) != (want.VSA == nil) || got.VSA != nil && (!slices.Equal(got.VSA.VerifiedLevels, want.VSA.VerifiedLevels) ||
		!got.VSA.TimeVerified.Equal(want.VSA.TimeVerified) || got.VSA.VerifierID != want.VSA.VerifierID || got.VSA.ResourceURI != want.VSA.ResourceURI ||
		got.VSA.PolicyURI != want.VSA.PolicyURI || got.VSA.Result != want.VSA.Result || got.VSA.SLSAVersion != want.VSA.SLSAVersion):
		return fmt.Sprintf("vsa %+v, want %+v", got.VSA, want.VSA)
	case (got.TestResult == nil) != (want.TestResult == nil) || got.TestResult != nil && (got.TestResult.Result != want.TestResult.Result ||
		got.TestResult.URL != want.TestResult.URL || !slices.Equal(got.TestResult.PassedTests, want.TestResult.PassedTests) ||
		!slices.Equal(got.TestResult.WarnedTests, want.TestResult.WarnedTests) || !slices.Equal(got.TestResult.FailedTests, want.TestResult.FailedTests) ||
		!slices.EqualFunc(got.TestResult.Configuration, want.TestResult.Configuration, protoEqual)):
		return fmt.Sprintf("test result %+v, want %+v", got.TestResult, want.TestResult)
	case (got.Link == nil) != (want.Link == nil) || got.Link != nil && (got.Link.Name != want.Link.Name ||
		!slices.Equal(got.Link.Command, want.Link.Command) || !slices.EqualFunc(got.Link.Materials, want.Link.Materials, protoEqual)):
		return fmt.Sprintf("link %+v, want %+v", got.Link, want.Link)
	case !slices.Equal(got.Subjects, want.Subjects):
		return fmt.Sprintf("subjects %v, want %v", got.Subjects, want.Subjects)
	case !reflect.DeepEqual(got.Sign, want.Sign):
		return fmt.Sprintf("sign %+v, want %+v", got.Sign, want.Sign)
	case !reflect.DeepEqual(got.Promote, want.Promote):
		return fmt.Sprintf("promote %+v, want %+v", got.Promote, want.Promote)
	case !reflect.DeepEqual(got.Revoke, want.Revoke):
		return fmt.Sprintf("revoke %+v, want %+v", got.Revoke, want.Revoke)
	case !reflect.DeepEqual(got.Quarantine, want.Quarantine):
		return fmt.Sprintf("quarantine %+v, want %+v", got.Quarantine, want.Quarantine)
	case !equalKeyrings(got.Keyring, want.Keyring):
		return fmt.Sprintf("keyring %+v, want %+v", got.Keyring, want.Keyring)
	case (got.Build == nil) != (want.Build == nil):
		return fmt.Sprintf("build %+v, want %+v", got.Build, want.Build)
	case got.Build == nil:
		return ""
	}
	g, w := *got.Build, *want.Build
	if !proto.Equal(g.Provenance, w.Provenance) {
		return fmt.Sprintf("provenance %v, want %v", g.Provenance, w.Provenance)
	}
	g.Provenance, w.Provenance = nil, nil
	if g != w {
		return fmt.Sprintf("build %+v, want %+v", g, w)
	}
	return ""
}

// equalKeyrings compares keyrings, their keys' Key by key id, an empty
// list as nil (encoding/json/v2 decodes [] as an empty list, the parser
// as nil).
func equalKeyrings(a, b *KeyringPredicate) bool {
	if a == nil || b == nil {
		return a == b
	}
	strip := func(p *KeyringPredicate) KeyringPredicate {
		c := *p
		c.Keys = slices.Clone(p.Keys)
		for i := range c.Keys {
			k := &c.Keys[i]
			if id, err := k.Key.KeyID(); err != nil || id != k.KeyID {
				k.KeyID = "(Key and KeyID disagree)"
			}
			k.Key, k.Roles = nil, slices.Clip(k.Roles)
			if len(k.Roles) == 0 {
				k.Roles = nil
			}
		}
		if len(c.Keys) == 0 {
			c.Keys = nil
		}
		if len(c.Environments) == 0 {
			c.Environments = nil
		}
		if len(c.Admins.Keys) == 0 {
			c.Admins.Keys = nil
		}
		c.Roles = maps.Clone(p.Roles)
		for name, r := range c.Roles {
			if len(r.PredicateTypes) == 0 {
				c.Roles[name] = KeyringRole{}
			}
		}
		return c
	}
	return reflect.DeepEqual(strip(a), strip(b))
}

func protoEqual[M proto.Message](a, b M) bool { return proto.Equal(a, b) }

// refCanonical is Canonical as it was: encoding/json's encoding.
func refCanonical(e *Envelope) []byte {
	type sig struct {
		KeyID string `json:"keyid"`
		Sig   string `json:"sig"`
	}
	out := struct {
		PayloadType string `json:"payloadType"`
		Payload     string `json:"payload"`
		Signatures  []sig  `json:"signatures"`
	}{PayloadType: PayloadType, Payload: b64(string(e.Payload))}
	for _, s := range e.Signatures {
		out.Signatures = append(out.Signatures, sig{KeyID: s.KeyID, Sig: b64(string(s.Sig))})
	}
	b, err := jsonMarshal(out)
	if err != nil {
		panic(err)
	}
	return b
}

// jnode is a JSON value with object members in order, for mutating.
type jnode struct {
	kind  jsontext.Kind // '{', '[' or a scalar's kind
	raw   string        // a scalar's JSON text
	names []string      // an object's member names
	vals  []*jnode      // an object's member values or an array's elements
}

func parseTree(t testing.TB, b []byte) *jnode {
	t.Helper()
	dec := jsontext.NewDecoder(bytes.NewReader(b))
	var read func() *jnode
	read = func() *jnode {
		switch dec.PeekKind() {
		case '{', '[':
			tok, err := dec.ReadToken()
			if err != nil {
				t.Fatal(err)
			}
			n := &jnode{kind: tok.Kind()}
			for dec.PeekKind() != '}' && dec.PeekKind() != ']' {
				if n.kind == '{' {
					name, err := dec.ReadToken()
					if err != nil {
						t.Fatal(err)
					}
					n.names = append(n.names, name.String())
				}
				n.vals = append(n.vals, read())
			}
			if _, err := dec.ReadToken(); err != nil {
				t.Fatal(err)
			}
			return n
		}
		v, err := dec.ReadValue()
		if err != nil {
			t.Fatal(err)
		}
		return &jnode{kind: v.Kind(), raw: string(v)}
	}
	return read()
}

func (n *jnode) encode(b []byte) []byte {
	switch n.kind {
	case '{', '[':
		b = append(b, byte(n.kind))
		for i, v := range n.vals {
			if i > 0 {
				b = append(b, ',')
			}
			if n.kind == '{' {
				b, _ = jsontext.AppendQuote(b, n.names[i])
				b = append(b, ':')
			}
			b = v.encode(b)
		}
		return append(b, byte(n.kind)+2) // '}' or ']'
	}
	return append(b, n.raw...)
}

// rebuild copies the tree, replacing node target by what edit returns
// for a copy of it.
func (n *jnode) rebuild(target *jnode, edit func(*jnode) *jnode) *jnode {
	c := &jnode{kind: n.kind, raw: n.raw, names: slices.Clone(n.names)}
	for _, v := range n.vals {
		c.vals = append(c.vals, v.rebuild(target, edit))
	}
	if n == target {
		return edit(c)
	}
	return c
}

func (n *jnode) walk(f func(*jnode)) {
	f(n)
	for _, v := range n.vals {
		v.walk(f)
	}
}

func scalar(raw string) *jnode { return &jnode{kind: jsontext.Value(raw).Kind(), raw: raw} }

// aliases returns other spellings of an object member name: protobuf
// field names (snake case) for JSON names and back, and a capitalized one.
func aliases(name string) []string {
	var snake strings.Builder
	for _, r := range name {
		if unicode.IsUpper(r) {
			snake.WriteByte('_')
			r = unicode.ToLower(r)
		}
		snake.WriteRune(r)
	}
	out := []string{snake.String(), strings.ToUpper(name[:1]) + name[1:]}
	if i := strings.IndexByte(name, '_'); i > 0 && i < len(name)-1 {
		out = append(out, name[:i]+strings.ToUpper(name[i+1:i+2])+name[i+2:])
	}
	switch name {
	case "_type":
		out = append(out, "type")
	case "type":
		out = append(out, "_type")
	}
	return slices.DeleteFunc(out, func(s string) bool { return s == name })
}

var replacements = []string{`null`, `0`, `7`, `-1`, `1.5`, `1e400`, `18446744073709551616`, `true`, `""`, `"x"`,
	`"2023-11-14T22:13:20.5+01:00"`, `{}`, `[]`, `[null]`, `[{}]`, `{"x":1}`, `{"source":{"commit":"` + strings.Repeat("b", 40) + `"}}`}

// mutants returns variants of the JSON document b, each a small change:
// a value replaced, an object member removed, added, renamed, repeated
// under an alias or moved, an array element removed or repeated, a string
// respelled with escapes or changed.
func mutants(t testing.TB, b []byte) [][]byte {
	root := parseTree(t, b)
	var out [][]byte
	add := func(target *jnode, edit func(*jnode) *jnode) {
		out = append(out, root.rebuild(target, edit).encode(nil))
	}
	root.walk(func(n *jnode) {
		for _, r := range replacements {
			add(n, func(*jnode) *jnode { return scalar(r) })
		}
		switch n.kind {
		case '"':
			s := jsontext.Value(n.raw).String()
			q, _ := jsontext.AppendQuote(nil, strings.ToUpper(s))
			add(n, func(*jnode) *jnode { return scalar(string(q)) })
			if len(s) > 0 {
				add(n, func(*jnode) *jnode { return scalar(fmt.Sprintf(`"\u%04x%s`, s[0], n.raw[2:])) })
				add(n, func(*jnode) *jnode { return scalar(n.raw[:len(n.raw)-1] + `\n"`) })
				add(n, func(*jnode) *jnode { return scalar(`"` + n.raw[2:]) })
			}
		case '{':
			for i, name := range n.names {
				add(n, func(c *jnode) *jnode {
					c.names, c.vals = slices.Delete(c.names, i, i+1), slices.Delete(c.vals, i, i+1)
					return c
				})
				add(n, func(c *jnode) *jnode { // moved to the end
					v := c.vals[i]
					c.names, c.vals = slices.Delete(c.names, i, i+1), slices.Delete(c.vals, i, i+1)
					c.names, c.vals = append(c.names, name), append(c.vals, v)
					return c
				})
				for _, alias := range aliases(name) {
					add(n, func(c *jnode) *jnode { c.names[i] = alias; return c })
					add(n, func(c *jnode) *jnode {
						c.names, c.vals = append(c.names, alias), append(c.vals, c.vals[i])
						return c
					})
				}
			}
			add(n, func(c *jnode) *jnode {
				c.names, c.vals = append(c.names, "x"), append(c.vals, scalar("1"))
				return c
			})
		case '[':
			for i := range n.vals {
				add(n, func(c *jnode) *jnode { c.vals = slices.Delete(c.vals, i, i+1); return c })
				add(n, func(c *jnode) *jnode { c.vals = append(c.vals, c.vals[i]); return c })
			}
			add(n, func(c *jnode) *jnode { c.vals = append(c.vals, scalar("null")); return c })
		}
	})
	return out
}

// fullBuildStatement uses every field of the SLSA and in-toto messages,
// and puts the predicate before its type.
const fullBuildStatement = `{"predicate": {
  "build_definition": {"buildType": "https://ci.example.com/make@v1",
    "externalParameters": {"source": {"repository": "git+https://git.example.com/app", "commit": "` + "0123456789abcdef0123456789abcdef01234567" + `"},
      "flags": ["-O2", 3, true, null, {"a": [1.25, -0.0, 1e-300]}]},
    "internal_parameters": {"k": "v"},
    "resolvedDependencies": [{"uri": "git+https://git.example.com/app", "digest": {"gitCommit": "` + "0123456789abcdef0123456789abcdef01234567" + `"}},
      {"name": "dep", "digest": {"sha1": "0123456789abcdef0123456789abcdef01234567", "custom": "zz"}, "content": "aGVsbG8", "downloadLocation": "https://x", "media_type": "text/plain", "annotations": {"n": 1}}]},
  "runDetails": {"builder": {"id": "https://ci.example.com/builder@v1", "version": {"ci": "1.2"}, "builderDependencies": [{"uri": "pkg:x", "content": "-_8="}]},
    "metadata": {"invocationId": "run-1", "startedOn": "2023-11-14T22:13:20.123456789Z", "finished_on": "2023-11-14T23:23:20+01:00"},
    "byproducts": [{"name": "log", "digest": {"sha256": "` + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" + `"}}]}},
 "_type": "https://in-toto.io/Statement/v1",
 "subject": [{"name": "a", "digest": {"sha512": "` + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" + `", "sha256": "` + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" + `"}, "annotations": {"x": [1, "y"]}},
   {"uri": "https://a", "digest": {"sha256": "` + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" + `"}, "mediaType": "m", "content": "YQ=="}],
 "predicateType": "https://slsa.dev/provenance/v1"}`

func statementSeeds(t testing.TB) [][]byte {
	d := `"sha256":"` + digest.Hex + `"`
	return [][]byte{
		buildStatement(t),
		[]byte(fullBuildStatement),
		[]byte(statementJSON(SignPredicateType, `{"algorithm":"ecdsa-p256-sha256","keyId":"k1","signature":"c2ln","buildIndex":3}`, d)),
		[]byte(`{"predicate":{"from":"dev","to":"staging","buildIndex":18446744073709551615,"decision":"approved","rationale":"r","changeRef":"CHG-1"},"subject":[{"digest":{` + d + `}}],"_type":"https://in-toto.io/Statement/v1","predicateType":"` + PromotePredicateType + `"}`),
		[]byte(strings.Replace(statementJSON(SignPredicateType, `{"algorithm":"a","keyId":"k","signature":"c2ln","buildIndex":1,"x":{"y":[1]}}`, d), "v1", "v0.1", 1)),
		[]byte(statementJSON(SPDXPredicateType+"/v2.3", `{"spdxVersion":"SPDX-2.3","SPDXID":"SPDXRef-DOCUMENT","packages":[{"name":"app","versionInfo":"1.0"}]}`, d)),
		[]byte(statementJSON(SPDXPredicateType, `{"@context":"https://spdx.org/rdf/3.0.1/spdx-context.jsonld","@graph":[]}`, d)),
		[]byte(statementJSON(CycloneDXPredicateType, `{"bomFormat":"CycloneDX","specVersion":"1.6","components":[{"type":"library","name":"x"}]}`, d)),
		[]byte(statementJSON(SBOMRefPredicateType, `{"format":"spdx","mediaType":"application/spdx+json","digest":{"sha256":"`+digest.Hex+`","sha1":"z"},"size":1234567,"uri":"https://a/b.spdx.json","specVersion":"SPDX-2.3"}`, d)),
		[]byte(statementJSON(TestResultPredicateType, `{"result":"PASSED","configuration":[{"name":"ci.yml","digest":{"sha256":"`+digest.Hex+`"}}],"url":"https://ci/run/1","passedTests":["a","b"],"warnedTests":[],"failedTests":null}`, d)),
		[]byte(statementJSON(VSAPredicateType, `{"verifier":{"id":"https://verifier.example","version":{"v":"1"}},"timeVerified":"2024-01-01T00:00:00Z","resourceUri":"pkg:x","policy":{"uri":"https://p","digest":{"sha256":"`+digest.Hex+`"}},"inputAttestations":[],"verificationResult":"PASSED","verifiedLevels":["SLSA_BUILD_LEVEL_3"],"slsaVersion":"1.0"}`, d)),
		[]byte(statementJSON(LinkPredicateType, `{"name":"build","command":["make","all"],"materials":[{"uri":"git+https://x","digest":{"sha1":"`+strings.Repeat("a", 40)+`"}}],"byproducts":{"stdout":""},"environment":{}}`, d)),
		[]byte(statementJSON(ProvenancePredicateType, `{"buildDefinition":{"buildType":"https://github.com/slsa-framework/slsa-github-generator/delegator-generic@v0","externalParameters":{"source":{"uri":"git+https://github.com/o/r@refs/tags/v1","digest":{"sha1":"`+strings.Repeat("c", 40)+`"}}}},"runDetails":{"builder":{"id":"https://github.com/slsa-framework/slsa-github-generator/.github/workflows/delegator_generic_slsa3.yml@refs/tags/v2.0.0"}}}`, d)),
		[]byte(statementJSON(ProvenancePredicateType, `{"buildDefinition":{"buildType":"https://tekton.dev/chains/v2/slsa","externalParameters":{"runSpec":{}},"resolvedDependencies":[{"name":"task","uri":"oci://x","digest":{"sha256":"`+digest.Hex+`"}},{"name":"inputs/result","uri":"git+https://github.com/o/r.git","digest":{"sha1":"`+strings.Repeat("d", 40)+`"}}]},"runDetails":{"builder":{"id":"https://tekton.dev/chains/v2"}}}`, d)),
		[]byte(keyringStatement()),
		[]byte(`{"predicate":` + keyringPred(`"roles":{"attester"`, `"roles":{"security":{"predicateTypes":["`+QuarantinePredicateType+`"]},"attester"`) + `,"subject":` + subjectsJSON(allKeyIDs...) + `,"_type":"https://in-toto.io/Statement/v1","predicateType":"` + KeyringPredicateType + `"}`),
		[]byte(revokeStatement(revokePred)),
		[]byte(quarantineStatement(`{"action":"quarantine","reason":"CVE-2024-0001"}`)),
		[]byte(quarantineStatement(`{"action":"unquarantine","reason":"fixed in 1.2.1","quarantineIndex":42}`)),
	}
}

func envelopeSeeds() [][]byte {
	var out [][]byte
	for _, v := range canonicalVectors {
		out = append(out, []byte(v.in))
	}
	return append(out, []byte(envJSON(`{}`)))
}

// TestMutantsMatchReference checks the parsers against the reference on
// thousands of small changes to valid documents.
func TestMutantsMatchReference(t *testing.T) {
	n := 0
	for _, seed := range envelopeSeeds() {
		for _, m := range mutants(t, seed) {
			checkEnvelopeMatchesReference(t, m)
			n++
		}
	}
	for _, seed := range statementSeeds(t) {
		checkStatementMatchesReference(t, seed)
		for _, m := range mutants(t, seed) {
			checkStatementMatchesReference(t, m)
			n++
		}
	}
	t.Logf("%d mutants", n)
}

// TestValidateProvenanceMatchesLibrary checks validateProvenance against
// (*slsa.Provenance).Validate on provenance protojson decodes.
func TestValidateProvenanceMatchesLibrary(t *testing.T) {
	root := parseTree(t, []byte(fullBuildStatement))
	pred := root.vals[slices.Index(root.names, "predicate")].encode(nil)
	n := 0
	for _, m := range append(mutants(t, pred), pred) {
		var p slsa.Provenance
		if protojson.Unmarshal(m, &p) != nil {
			continue
		}
		n++
		if got, want := validateProvenance(&p), p.Validate(); (got == nil) != (want == nil) {
			t.Errorf("%s: validateProvenance: %v, Validate: %v", m, got, want)
		}
	}
	t.Logf("%d provenances", n)
}

func TestEdgeCasesMatchReference(t *testing.T) {
	d := `"sha256":"` + digest.Hex + `"`
	deep := func(n int) string { return strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n) }
	many := func(n int) string { return "[" + strings.Repeat("1,", n) + "1]" }
	long := `"` + strings.Repeat("k", MaxString) + `"`
	longEscaped := `"` + strings.Repeat(`\u006b`, MaxString) + `"`
	build := func(ext string) string {
		return `{"buildDefinition":{"buildType":"t","externalParameters":` + ext + `},"runDetails":{"builder":{"id":"b"}}}`
	}
	var subjects, deps []string
	for range MaxSubjects + 1 {
		subjects = append(subjects, `{"digest":{`+d+`}}`)
	}
	for range MaxDependencies + 1 {
		deps = append(deps, `{"name":"d"}`)
	}
	for _, s := range []string{
		statementJSON(ProvenancePredicateType, build(`{"x":`+deep(MaxDepth-4)+`,"source":{"commit":"`+strings.Repeat("a", 40)+`"}}`), d),
		statementJSON(ProvenancePredicateType, build(`{"x":`+deep(MaxDepth-3)+`,"source":{"commit":"`+strings.Repeat("a", 40)+`"}}`), d),
		statementJSON(ProvenancePredicateType, build(`{"x":`+many(MaxTokens-100)+`}`), d),
		statementJSON(ProvenancePredicateType, build(`{"x":`+many(MaxTokens)+`}`), d),
		statementJSON(ProvenancePredicateType, build(`{"x":`+long+`}`), d),
		statementJSON(ProvenancePredicateType, build(`{"x":"`+strings.Repeat("k", MaxString+1)+`"}`), d),
		statementJSON(ProvenancePredicateType, build(`{"x":`+longEscaped+`}`), d),
		statementJSON(ProvenancePredicateType, build(`{"x":"`+strings.Repeat(`\u006b`, MaxString+1)+`"}`), d),
		statementJSON(ProvenancePredicateType, build(`{`+long+`:1}`), d),
		statementJSON(ProvenancePredicateType, build(`{"`+strings.Repeat("k", MaxString+1)+`":1}`), d),
		strings.Replace(statementJSON(SignPredicateType, `{}`, d), `[{"name"`, strings.Join(subjects, ",")+`,{"name"`, 1),
		strings.Replace(statementJSON(SignPredicateType, `{}`, d), `[{"name"`, strings.Join(subjects[:MaxSubjects-1], ",")+`,{"name"`, 1),
		statementJSON(ProvenancePredicateType, `{"buildDefinition":{"buildType":"t","externalParameters":{"a":1},"resolvedDependencies":[`+strings.Join(deps, ",")+`]},"runDetails":{"builder":{"id":"b"}}}`, d),
		`{"predicate":` + build(`{"x":`+deep(MaxDepth)+`}`) + `,"x":1}`,
		`{"x":1,"predicate":7}`,
		`{"predicate":7,"x":` + deep(MaxDepth) + `}`,
		`{"predicate":{},"predicateType":"` + SignPredicateType + `","_type":1}`,
		`[1]`, `null`, ``, ` `, `{}`, `{} {}`, `{}x`, `{"a":1,}`,
		// The predicate before its type, at and over the depth limit.
		`{"predicate":` + build(`{"x":`+deep(MaxDepth-4)+`,"source":{"commit":"`+strings.Repeat("a", 40)+`"}}`) + `,"predicateType":"` + ProvenancePredicateType + `","_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{` + d + `}}]}`,
		`{"predicate":` + build(`{"x":`+deep(MaxDepth-3)+`,"source":{"commit":"`+strings.Repeat("a", 40)+`"}}`) + `,"predicateType":"` + ProvenancePredicateType + `","_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{` + d + `}}]}`,
		`{"predicate":` + build(`{"x":`+long+`,"source":{"commit":"`+strings.Repeat("a", 40)+`"}}`) + `,"predicateType":"` + ProvenancePredicateType + `","_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{` + d + `}}]}`,
		`{"predicate":` + build(`{"x":"`+strings.Repeat("k", MaxString+1)+`"}`) + `,"predicateType":"` + ProvenancePredicateType + `","_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{` + d + `}}]}`,
		// Escaped member names are the names they spell.
		`{"pr\u0065dicate":{"algorithm":"a","k\u0065yId":"k","signature":"c2ln","buildIndex":1},"\u005ftype":"https://in-toto.io/Statement/v1","subject":[{"d\u0069gest":{"sh\u0061256":"` + digest.Hex + `"}}],"predicate\u005ftype":"` + SignPredicateType + `"}`,
		`{"predicate":{"algorithm":"a","keyId":"k","signature":"c2ln","buildIndex":1},"\u005ftype":"https://in-toto.io/Statement/v1","type":"https://in-toto.io/Statement/v1","subject":[{"digest":{` + d + `}}],"predicateType":"` + SignPredicateType + `"}`,
		`{"predicate":{"algorithm":"a","keyId":"k","signature":"c2ln","buildIndex":1},"predicate":{},"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{` + d + `}}],"predicateType":"` + SignPredicateType + `"}`,
		// Numbers a uint64 or a float64 cannot hold.
		statementJSON(SignPredicateType, `{"algorithm":"a","keyId":"k","signature":"c2ln","buildIndex":18446744073709551615}`, d),
		statementJSON(SignPredicateType, `{"algorithm":"a","keyId":"k","signature":"c2ln","buildIndex":18446744073709551616}`, d),
		statementJSON(SignPredicateType, `{"algorithm":"a","keyId":"k","signature":"c2ln","buildIndex":1e2}`, d),
		statementJSON(SignPredicateType, `{"algorithm":"a","keyId":"k","signature":"c2ln","buildIndex":-0}`, d),
		statementJSON(SignPredicateType, `{"algorithm":"a","keyId":"k","signature":"c2ln","buildIndex":"1"}`, d),
		statementJSON(ProvenancePredicateType, build(`{"n":1.7976931348623157e308,"m":-1e-400,"source":{"commit":"`+strings.Repeat("a", 64)+`"}}`), d),
		statementJSON(ProvenancePredicateType, build(`{"n":1.8e308}`), d),
		// Timestamps.
		statementJSON(ProvenancePredicateType, `{"buildDefinition":{"buildType":"t","externalParameters":{"source":{"commit":"`+strings.Repeat("a", 40)+`"}}},"runDetails":{"builder":{"id":"b"},"metadata":{"startedOn":"0001-01-01T00:00:00Z","finishedOn":"9999-12-31T23:59:59.999999999Z"}}}`, d),
		statementJSON(ProvenancePredicateType, `{"buildDefinition":{"buildType":"t","externalParameters":{"source":{"commit":"`+strings.Repeat("a", 40)+`"}}},"runDetails":{"builder":{"id":"b"},"metadata":{"startedOn":"0001-01-01T00:00:00+01:00"}}}`, d),
		statementJSON(ProvenancePredicateType, `{"buildDefinition":{"buildType":"t","externalParameters":{"source":{"commit":"`+strings.Repeat("a", 40)+`"}}},"runDetails":{"builder":{"id":"b"},"metadata":{"startedOn":"2020-01-01T00:00:00.1234567891Z"}}}`, d),
		statementJSON(ProvenancePredicateType, `{"buildDefinition":{"buildType":"t","externalParameters":{"source":{"commit":"`+strings.Repeat("a", 40)+`"}}},"runDetails":{"builder":{"id":"b"},"metadata":{"startedOn":"2020-01-01t00:00:00z"}}}`, d),
		statementJSON(ProvenancePredicateType, `{"buildDefinition":{"buildType":"t","externalParameters":{"source":{"commit":"`+strings.Repeat("a", 40)+`"}}},"runDetails":{"builder":{"id":"b"},"metadata":{"startedOn":"2020-01-01 00:00:00Z"}}}`, d),
	} {
		checkStatementMatchesReference(t, []byte(s))
	}
	envs := []string{
		`{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[` + strings.Repeat(`{"keyid":"k","sig":"c2ln"},`, MaxSignatures) + `{"keyid":"k","sig":"c2ln"}]}`,
		`{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[` + strings.Repeat(`null,`, MaxSignatures) + `{"x":1}]}`,
		`{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[{"keyid":"` + strings.Repeat("k", MaxKeyID+1) + `","sig":"c2ln"}]}`,
		`{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[{"keyid":"` + strings.Repeat("k", MaxKeyID) + `","sig":"c2ln"}]}`,
		`{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[{"keyid":"a\u007fb","sig":"c2ln"}]}`,
		`{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[{"keyid":"a\u0000b","sig":"c2ln"}]}`,
		`{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[{"keyid":"a","sig":"c2ln"}],"x":` + deep(MaxDepth) + `}`,
		`{"x":` + deep(MaxDepth) + `}`,
		`null`, `null null`, `[]`, `"x"`, ``, `{"payloadType":"application/vnd.in-toto+json","payload":"e30","signatures":[{"sig":"c2ln"}]}`,
		`{"p\u0061yloadType":"application/vnd.in-toto+json","payload":"e30=","sign\u0061tures":[{"k\u0065yid":"k","\u0073ig":"c2ln"}]}`,
		`{"payloadType":"application/vnd.in-toto+json","payload":"e30=","p\u0061yload":"e30=","signatures":[{"sig":"c2ln"}]}`,
		`{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[{"sig":"c2ln","keyid":"a","s\u0069g":"c2ln"}]}`,
		`{"payloadType":"application/vnd.in-toto+json","payload":"\u0065\u0033\u0030\u003d","signatures":[{"sig":"c2ln\r\n"}]}`,
	}
	for _, s := range envs {
		checkEnvelopeMatchesReference(t, []byte(s))
	}
}

func FuzzEnvelopeMatchesReference(f *testing.F) {
	for _, s := range envelopeSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkEnvelopeMatchesReference(t, b) })
}

func FuzzStatementMatchesReference(f *testing.F) {
	for _, s := range statementSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkStatementMatchesReference(t, b) })
}

// TestConcurrentParsing parses from several goroutines at once: the
// parsers share pooled readers, and nothing else.
func TestConcurrentParsing(t *testing.T) {
	seeds := statementSeeds(t)
	envs := envelopeSeeds()
	want := make([]*Event, len(seeds))
	for i, s := range seeds {
		ev, err := ParseStatement(s)
		if err != nil {
			t.Fatal(err)
		}
		want[i] = ev
	}
	errs := make(chan error, 8)
	for g := range 8 {
		go func() {
			for i := range 200 {
				j := (i + g) % len(seeds)
				ev, err := ParseStatement(seeds[j])
				if err != nil {
					errs <- err
					return
				}
				if msg := diffEvents(ev, want[j]); msg != "" {
					errs <- errors.New(msg)
					return
				}
				if _, err := ParseEnvelope(envs[(i+g)%len(envs)]); err != nil && !errors.Is(err, ErrInvalid) {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// TestTokenLimitExactly checks statements of exactly MaxTokens tokens and
// one more, the extra tokens in a subject, in a predicate before its type
// and in one after.
func TestTokenLimitExactly(t *testing.T) {
	countTokens := func(b []byte) int {
		dec := jsontext.NewDecoder(bytes.NewReader(b))
		n := 0
		for {
			if _, err := dec.ReadToken(); err != nil {
				return n
			}
			n++
		}
	}
	d := `"sha256":"` + digest.Hex + `"`
	build := func(pad string) string {
		return `{"buildDefinition":{"buildType":"t","externalParameters":{"pad":[` + pad + `],"source":{"commit":"` + strings.Repeat("a", 40) + `"}}},"runDetails":{"builder":{"id":"b"}}}`
	}
	for name, doc := range map[string]func(pad string) string{
		"subject": func(pad string) string {
			return strings.Replace(statementJSON(SignPredicateType, `{"algorithm":"a","keyId":"k","signature":"c2ln","buildIndex":1}`, d), `"name":"a"`, `"annotations":{"pad":[`+pad+`]}`, 1)
		},
		"predicate after its type": func(pad string) string { return statementJSON(ProvenancePredicateType, build(pad), d) },
		"predicate first": func(pad string) string {
			return `{"predicate":` + build(pad) + `,"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{` + d + `}}],"predicateType":"` + ProvenancePredicateType + `"}`
		},
	} {
		base := countTokens([]byte(doc("")))
		for _, extra := range []int{0, 1} {
			k := MaxTokens - base + extra
			b := []byte(doc(strings.TrimSuffix(strings.Repeat("0,", k), ",")))
			if n := countTokens(b); n != MaxTokens+extra {
				t.Fatalf("%s: %d tokens, want %d", name, n, MaxTokens+extra)
			}
			checkStatementMatchesReference(t, b)
			if _, err := ParseStatement(b); (err == nil) != (extra == 0) {
				t.Errorf("%s: %d tokens: %v", name, MaxTokens+extra, err)
			}
		}
	}
}

// TestTokenAndCommitMatchRegexps checks token and isCommit against the
// regular expressions they replace.
func TestTokenAndCommitMatchRegexps(t *testing.T) {
	var ss []string
	for _, c := range []string{"a", "z", "0", "9", ".", "_", "-", "A", "g", "/", " ", "é", "\n"} {
		for _, n := range []int{1, 2, 39, 40, 41, 63, 64, 65} {
			ss = append(ss, strings.Repeat(c, n), c+strings.Repeat("a", n-1), strings.Repeat("a", n-1)+c, strings.Repeat("f", n-1)+c)
		}
	}
	ss = append(ss, "", "prod\n", "ed25519", "ecdsa-p256-sha256", strings.Repeat("0123456789abcdef", 4))
	for _, s := range ss {
		if got, want := token(s), refToken(s); got != want {
			t.Errorf("token(%q) = %v, want %v", s, got, want)
		}
		if got, want := isCommit(s), refCommitRE.MatchString(s); got != want {
			t.Errorf("isCommit(%q) = %v, want %v", s, got, want)
		}
	}
}
