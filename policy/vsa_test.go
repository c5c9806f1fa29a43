package policy

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/provlog/provlog/event"
)

var vsaTime = time.Date(2026, 12, 1, 20, 5, 29, 0, time.FixedZone("CET", 3600))

// vsaOpts are options naming the log example.com/provlog.
func vsaOpts() VSAOptions {
	return VSAOptions{Time: vsaTime, PolicyURI: "https://git.example.com/deploy/policy.json", Origin: "example.com/provlog"}
}

// entrySum is the sha256 of an event's logged entry, computed here from a
// re-encoding of the canonical form the log stores (see event's package
// doc), not with Canonical.
func entrySum(t *testing.T, e Event) string {
	t.Helper()
	type sig struct {
		KeyID string `json:"keyid"`
		Sig   string `json:"sig"`
	}
	out := struct {
		PayloadType string `json:"payloadType"`
		Payload     string `json:"payload"`
		Signatures  []sig  `json:"signatures"`
	}{PayloadType: event.PayloadType, Payload: base64.StdEncoding.EncodeToString(e.Envelope.Payload)}
	for _, s := range e.Envelope.Signatures {
		out.Signatures = append(out.Signatures, sig{s.KeyID, base64.StdEncoding.EncodeToString(s.Sig)})
	}
	b, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// TestVSA makes the VSA of an allowed and of a denied decision under the
// full policy, checks every field against the spec's shape, and checks that
// the statement made of it parses as the vsa event the log admits.
func TestVSA(t *testing.T) {
	dir := t.TempDir()
	ci, signer, alice, bob := newTestKey(t, dir, "ci"), newTestKey(t, dir, "signer"), newTestKey(t, dir, "alice"), newTestKey(t, dir, "bob")
	raw := []byte(`{
		"builders": ["https://ci.example.com/*"],
		"sourceRepositories": ["git+https://git.example.com/app"],
		"keys": {"signer": "signer.pub", "bob": "bob.pub"},
		"requiredSigners": ["signer"],
		"promotionPath": ["dev", "staging", "prod"],
		"approvals": {"prod": {"count": 2, "keys": ["bob"]}}
	}`)
	p, err := Parse(raw, dir)
	if err != nil {
		t.Fatal(err)
	}
	p.Witness = []byte("witness w1 ...\nquorum w1\n") // as if proven with --witness-policy
	ev := events{t, ci}
	good := []Event{
		ev.promote(4, 0, "staging", "prod", alice, bob), // out of order: inputs are listed by index
		ev.build(0, "https://ci.example.com/runner", "git+https://git.example.com/app"),
		ev.sign(1, 0, signer),
		ev.promote(2, 0, "", "dev", alice),
		ev.promote(3, 0, "dev", "staging", alice),
		// Decide does not read test results (nor SBOMs, nor VSAs): not an input.
		mkEvent(t, 5, event.TestResultPredicateType, map[string]any{"result": "PASSED", "configuration": []any{}}, ci),
	}
	ctx := context.Background()
	d := testDigest.String()
	allow := p.Decide(ctx, d, "prod", good)
	deny := p.Decide(ctx, d, "prod", good[1:5])
	if !allow.Allowed() || deny.Allowed() {
		t.Fatalf("decisions: %q, %q", allow.Reasons, deny.Reasons)
	}
	policySum := sha256.Sum256(raw)
	witnessSum := sha256.Sum256(p.Witness)
	inputs := func(es []Event) string {
		var out []string
		for _, e := range es {
			out = append(out, fmt.Sprintf(`{"uri":"provlog://example.com/provlog/entries/%d","digest":{"sha256":"%s"}}`, e.Index, entrySum(t, e)))
		}
		return "[" + strings.Join(out, ",") + "]"
	}
	sorted := slices.SortedFunc(slices.Values(good[:5]), func(a, b Event) int { return int(a.Index) - int(b.Index) })
	for _, tc := range []struct {
		name   string
		dec    *Decision
		inputs []Event
		result string
		levels string
	}{
		{"allow", allow, sorted, "PASSED", `["PROVLOG_INCLUDED","PROVLOG_WITNESSED","PROVLOG_PROVENANCE","PROVLOG_BUILDER","PROVLOG_SOURCE","PROVLOG_SIGNED","PROVLOG_PROMOTED","PROVLOG_PROMOTION_PATH","PROVLOG_APPROVED"]`},
		{"deny", deny, sorted[:4], "FAILED", `["FAILED"]`},
	} {
		o := vsaOpts()
		o.VerifierVersion = map[string]string{"provlog": "v1.4.0"}
		v, err := p.VSA(tc.dec, raw, o)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		want := `{"verifier":{"id":"https://github.com/provlog/provlog/gate","version":{"provlog":"v1.4.0"}},` +
			`"timeVerified":"2026-12-01T19:05:29Z",` +
			`"resourceUri":"provlog:deploy/prod/` + d + `",` +
			`"policy":{"uri":"https://git.example.com/deploy/policy.json","digest":{"sha256":"` + hex.EncodeToString(policySum[:]) + `"},` +
			`"annotations":{"keys":{"bob":"` + bob.id + `","signer":"` + signer.id + `"},"witnessPolicy":{"sha256":"` + hex.EncodeToString(witnessSum[:]) + `"}}},` +
			`"inputAttestations":` + inputs(tc.inputs) + `,` +
			`"verificationResult":"` + tc.result + `","verifiedLevels":` + tc.levels + `}`
		if string(got) != want {
			t.Errorf("%s: predicate\n%s\nwant\n%s", tc.name, got, want)
		}

		st, err := event.NewStatement(event.VSAPredicateType, []event.Subject{{Name: "app", Digest: testDigest}}, v)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		e, err := event.ParseStatement(st)
		if err != nil {
			t.Fatalf("%s: statement does not parse: %v", tc.name, err)
		}
		var levels []string
		json.Unmarshal([]byte(tc.levels), &levels)
		if e.Type != event.TypeVSA || e.VSA == nil || e.VSA.VerifierID != DefaultVerifierID || e.VSA.ResourceURI != "provlog:deploy/prod/"+d ||
			e.VSA.PolicyURI != o.PolicyURI || e.VSA.Result != tc.result || !reflect.DeepEqual(e.VSA.VerifiedLevels, levels) ||
			!e.VSA.TimeVerified.Equal(vsaTime) || e.VSA.SLSAVersion != "" {
			t.Errorf("%s: parsed as %s %+v", tc.name, e.Type, e.VSA)
		}
	}
}

// TestVSALevels checks that each level appears exactly when the policy
// makes its check, and that none is a SLSA_ level, which custom levels must
// not be.
func TestVSALevels(t *testing.T) {
	dir := t.TempDir()
	newTestKey(t, dir, "signer")
	always := []string{LevelIncluded, LevelProvenance, LevelPromoted}
	for _, tc := range []struct {
		policy, env string
		witness     bool
		want        []string // beyond always
	}{
		{`{}`, "prod", false, nil},
		{`{}`, "prod", true, []string{LevelWitnessed}},
		{`{"builders": ["https://ci.example.com/"]}`, "dev", false, []string{LevelBuilder}},
		{`{"sourceRepositories": ["git+https://git.example.com/app"]}`, "dev", false, []string{LevelSource}},
		{`{"reproducible": {"builders": 2}}`, "dev", false, []string{"PROVLOG_REPRODUCIBLE_2"}},
		{`{"reproducible": {"builders": 3, "sameSource": true}}`, "dev", false, []string{"PROVLOG_REPRODUCIBLE_SAME_SOURCE_3"}},
		{`{"keys": {"signer": "signer.pub"}, "requiredSigners": ["signer"]}`, "dev", false, []string{LevelSigned}},
		{`{"keys": {"signer": "signer.pub"}}`, "dev", false, nil}, // a named key alone checks nothing
		{`{"promotionPath": ["dev", "prod"]}`, "prod", false, []string{LevelPromotionPath}},
		{`{"approvals": {"prod": {"count": 2}}}`, "prod", false, []string{LevelApproved}},
		{`{"approvals": {"prod": {"count": 0}}}`, "prod", false, nil}, // an empty rule checks nothing
		{`{"approvals": {"prod": {"count": 2}}}`, "dev", false, nil},  // another environment's rule
		{`{"promotionPath": ["dev", "staging", "prod"], "approvals": {"dev": {"keys": ["signer"]}}, "keys": {"signer": "signer.pub"}}`,
			"staging", false, []string{LevelPromotionPath, LevelApproved}}, // a rule on the way
		{`{"promotionPath": ["dev", "staging", "prod"], "approvals": {"prod": {"count": 2}}}`, "staging", false, []string{LevelPromotionPath}},
	} {
		p, err := Parse([]byte(tc.policy), dir)
		if err != nil {
			t.Fatalf("%s: %v", tc.policy, err)
		}
		if tc.witness {
			p.Witness = []byte("quorum none\n")
		}
		got := p.levels(tc.env)
		for _, l := range got {
			if strings.HasPrefix(l, "SLSA_") || !strings.HasPrefix(l, "PROVLOG_") {
				t.Errorf("%s: level %q", tc.policy, l)
			}
		}
		want := slices.Concat(always, tc.want)
		slices.Sort(want)
		if slices.Sort(got); !slices.Equal(got, want) {
			t.Errorf("%s for %s: levels %v, want %v", tc.policy, tc.env, got, want)
		}
	}
}

// TestVSAEntryDigest checks that an input attestation's digest is of the
// entry as logged, whatever encoding the event came in: a URL-safe,
// unpadded, re-ordered envelope is the same leaf and the same digest.
func TestVSAEntryDigest(t *testing.T) {
	dir := t.TempDir()
	ci := newTestKey(t, dir, "ci")
	e := events{t, ci}.build(7, "https://ci.example.com/runner", "git+https://git.example.com/app")
	enc := base64.RawURLEncoding
	other := fmt.Sprintf(`{ "signatures": [{"sig": %q, "keyid": %q}], "payload": %q, "payloadType": %q }`,
		enc.EncodeToString(e.Envelope.Signatures[0].Sig), e.Envelope.Signatures[0].KeyID, enc.EncodeToString(e.Envelope.Payload), event.PayloadType)
	env, err := event.ParseEntry([]byte(other))
	if err != nil {
		t.Fatal(err)
	}
	reencoded := Event{Index: 7, Envelope: env, Event: e.Event}
	p, _ := Parse([]byte(`{}`), dir)
	for _, ev := range []Event{e, reencoded} {
		v, err := p.VSA(&Decision{Artifact: testDigest.String(), Environment: "dev", Reasons: []Reason{{Text: "no promotion into dev"}}, Events: []Event{ev}}, nil, vsaOpts())
		if err != nil {
			t.Fatal(err)
		}
		if got := v.InputAttestations[0].Digest["sha256"]; got != entrySum(t, e) {
			t.Errorf("input digest %s, want %s", got, entrySum(t, e))
		}
	}
}

// TestVSANoEvents: a decision over no events lists no input attestations
// ([], not absent: the verifier supports the field and used none).
func TestVSANoEvents(t *testing.T) {
	p, _ := Parse([]byte(`{}`), t.TempDir())
	dec := p.Decide(context.Background(), testDigest.String(), "dev", nil)
	v, err := p.VSA(dec, []byte(`{}`), vsaOpts())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(v)
	if !strings.Contains(string(b), `"inputAttestations":[]`) || !strings.Contains(string(b), `"verifiedLevels":["FAILED"]`) ||
		strings.Contains(string(b), "annotations") {
		t.Errorf("VSA of no events: %s", b)
	}
}

// TestVSAOptions checks the options that are refused, each named, and the
// defaults.
func TestVSAOptions(t *testing.T) {
	p, _ := Parse([]byte(`{}`), t.TempDir())
	dec := &Decision{Artifact: testDigest.String(), Environment: "prod"}
	for name, tc := range map[string]struct {
		edit func(*VSAOptions)
		says string
	}{
		"no time":                {func(o *VSAOptions) { o.Time = time.Time{} }, "timeVerified"},
		"no origin":              {func(o *VSAOptions) { o.Origin = "" }, "origin"},
		"no policy uri":          {func(o *VSAOptions) { o.PolicyURI = "" }, "policy.uri"},
		"relative policy uri":    {func(o *VSAOptions) { o.PolicyURI = "deploy/policy.json" }, "policy.uri"},
		"policy uri with a frag": {func(o *VSAOptions) { o.PolicyURI = "https://example.com/p#x" }, "policy.uri"},
		"verifier with a space":  {func(o *VSAOptions) { o.VerifierID = "https://example.com/a gate" }, "verifier.id"},
		"resource not a uri":     {func(o *VSAOptions) { o.ResourceURI = "app.tar.gz" }, "resourceUri"},
		"resource with newline":  {func(o *VSAOptions) { o.ResourceURI = "pkg:generic/app\nx" }, "resourceUri"},
	} {
		o := vsaOpts()
		tc.edit(&o)
		if _, err := p.VSA(dec, nil, o); !errors.Is(err, ErrVSAOptions) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: %v, want ErrVSAOptions naming %s", name, err, tc.says)
		}
	}
	o := vsaOpts()
	o.VerifierID, o.ResourceURI = "https://gate.example.com", "oci://registry.example.com/app@"+testDigest.String()+"?env=prod"
	v, err := p.VSA(dec, nil, o)
	if err != nil || v.Verifier.ID != o.VerifierID || v.ResourceURI != o.ResourceURI || v.Verifier.Version != nil {
		t.Errorf("VSA with options given = %+v, %v", v, err)
	}
	if _, err := p.VSA(&Decision{Artifact: testDigest.String(), Environment: "prod", Events: []Event{{Index: 3}}}, nil, vsaOpts()); err == nil {
		t.Error("an event without envelope: no error")
	}
	if _, err := p.VSA(&Decision{Artifact: testDigest.String(), Environment: "prod", Events: []Event{{Index: 3, Envelope: &event.Envelope{}}}}, nil, vsaOpts()); err == nil {
		t.Error("an event without its parsed statement: no error")
	}
}

func TestVSAURIs(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{EntryURI("example.com/provlog", 0), "provlog://example.com/provlog/entries/0"},
		{EntryURI("localhost:7400", 18446744073709551615), "provlog://localhost:7400/entries/18446744073709551615"},
		{EntryURI("example.com/a log?#", 5), "provlog://example.com/a%20log%3F%23/entries/5"},
		{DeployURI("sha256:ab", "prod"), "provlog:deploy/prod/sha256:ab"},
		{DeployURI("sha256:ab", "a/b c"), "provlog:deploy/a%2Fb%20c/sha256:ab"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
		if !IsAbsoluteURI(tc.got) {
			t.Errorf("%q is not an absolute URI", tc.got)
		}
	}
}
