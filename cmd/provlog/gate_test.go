package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/provlog/provlog/event"
)

// testKey is a submitter key with its PEM public key written to dir.
type testKey struct {
	sk event.SigningKey
	id string
}

func newTestKey(t *testing.T, dir, name string) testKey {
	t.Helper()
	priv, pub, err := event.GenerateKey(event.KeyEd25519)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := event.LoadSigningKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".pub"), pub, 0o644); err != nil {
		t.Fatal(err)
	}
	id, _ := sk.KeyID()
	return testKey{sk: sk, id: id}
}

var testDigest = event.Digest{Alg: "sha256", Hex: strings.Repeat("ab", 32)}

// mkEvent makes a parsed event at index signed by keys.
func mkEvent(t *testing.T, index uint64, predType string, pred any, keys ...testKey) *parsedEvent {
	t.Helper()
	st, err := event.NewStatement(predType, []event.Subject{{Name: "app", Digest: testDigest}}, pred)
	if err != nil {
		t.Fatal(err)
	}
	var sks []event.SigningKey
	for _, k := range keys {
		sks = append(sks, k.sk)
	}
	env, err := event.SignEnvelope(context.Background(), st, sks...)
	if err != nil {
		t.Fatal(err)
	}
	pe, err := parseEntry(index, env)
	if err != nil {
		t.Fatal(err)
	}
	return pe
}

func TestGateDecide(t *testing.T) {
	dir := t.TempDir()
	ci, signer, alice, bob := newTestKey(t, dir, "ci"), newTestKey(t, dir, "signer"), newTestKey(t, dir, "alice"), newTestKey(t, dir, "bob")
	p, err := parsePolicy([]byte(`{
		"builders": ["https://ci.example.com/*"],
		"sourceRepositories": ["git+https://git.example.com/app"],
		"keys": {"signer": "signer.pub", "bob": "bob.pub"},
		"requiredSigners": ["signer"],
		"promotionPath": ["dev", "staging", "prod"],
		"approvals": {"prod": {"count": 2, "keys": ["bob", "`+alice.id+`"]}}
	}`), dir)
	if err != nil {
		t.Fatal(err)
	}
	build := func(i uint64, builder, repo string) *parsedEvent {
		prov, err := event.NewProvenance(event.BuildSpec{BuilderID: builder, BuildType: "https://ci.example.com/go@v1",
			SourceRepo: repo, SourceCommit: strings.Repeat("5e", 20)})
		if err != nil {
			t.Fatal(err)
		}
		return mkEvent(t, i, event.ProvenancePredicateType, prov, ci)
	}
	sign := func(i, b uint64, k testKey) *parsedEvent {
		return mkEvent(t, i, event.SignPredicateType, &event.SignPredicate{Algorithm: "ed25519", KeyID: "release", Signature: "c2ln", BuildIndex: b}, k)
	}
	promote := func(i, b uint64, from, to string, ks ...testKey) *parsedEvent {
		return mkEvent(t, i, event.PromotePredicateType, &event.PromotePredicate{From: from, To: to, BuildIndex: b, Decision: event.DecisionApproved}, ks...)
	}
	good := []*parsedEvent{
		build(0, "https://ci.example.com/runner", "git+https://git.example.com/app"),
		sign(1, 0, signer),
		promote(2, 0, "", "dev", alice),
		promote(3, 0, "dev", "staging", alice),
		promote(4, 0, "staging", "prod", alice, bob),
	}
	ctx := context.Background()
	d := testDigest.String()
	for _, env := range []string{"dev", "staging", "prod"} {
		if r := p.decide(ctx, d, env, good); len(r) != 0 {
			t.Errorf("decide(%s) on the full history = %q, want allow", env, r)
		}
	}
	for _, tc := range []struct {
		name   string
		env    string
		events []*parsedEvent
		want   []string
	}{
		{"nothing logged", "dev", nil, []string{"the log has no events"}},
		{"only a build", "prod", good[:1], []string{"no sign event signed by signer", "no promotion into dev", "no promotion into staging from dev", "no promotion into prod from staging"}},
		{"not on the path", "qa", good, []string{`"qa" is not on the policy's promotion path`}},
		{"wrong builder and source", "dev", []*parsedEvent{build(0, "https://evil.example.com/x", "git+https://git.example.com/app2"), sign(1, 0, signer), promote(2, 0, "", "dev", alice)},
			[]string{`builder "https://evil.example.com/x" is not allowed`, `source repository "git+https://git.example.com/app2" is not allowed`,
				"sign event 1 by signer", "promotion into dev at index 2 is for a build the policy does not accept"}},
		{"sign by another key", "dev", []*parsedEvent{good[0], sign(1, 0, ci), good[2]}, []string{"no sign event signed by signer"}},
		{"prod lacks bob", "prod", append(good[:4:4], promote(4, 0, "staging", "prod", alice, ci)),
			[]string{"promotion into prod from staging at index 4 is not approved by bob"}},
		{"prod with one signer", "prod", append(good[:4:4], promote(4, 0, "staging", "prod", alice)),
			[]string{"has 1 distinct signers, the policy wants 2", "is not approved by bob"}},
		{"skipped staging", "prod", append(good[:3:3], promote(4, 0, "dev", "prod", alice, bob)),
			[]string{"no promotion into staging from dev", "no promotion into prod from staging"}},
	} {
		got := p.decide(ctx, d, tc.env, tc.events)
		joined := strings.Join(got, "\n")
		for _, w := range tc.want {
			if !strings.Contains(joined, w) {
				t.Errorf("%s: reasons lack %q:\n%s", tc.name, w, joined)
			}
		}
		if len(got) != len(tc.want) {
			t.Errorf("%s: %d reasons, want %d:\n%s", tc.name, len(got), len(tc.want), joined)
		}
	}
}

func TestParsePolicyErrors(t *testing.T) {
	dir := t.TempDir()
	for _, bad := range []string{
		`{"builder": []}`,
		`{"requiredSigners": ["nobody"]}`,
		`{"promotionPath": ["dev"], "approvals": {"prod": {"count": 1}}}`,
		`{"approvals": {"prod": {"count": -1}}}`,
		`{"promotionPath": ["dev", "dev"]}`,
		`{"keys": {"x": "missing.pub"}}`,
		`{} {}`,
	} {
		if _, err := parsePolicy([]byte(bad), dir); err == nil {
			t.Errorf("parsePolicy(%s) succeeded, want an error", bad)
		}
	}
}

func TestAllowed(t *testing.T) {
	pats := []string{"git+https://git.example.com/app", "git+https://git.example.com/libs/", "https://ci.example.com/*"}
	for v, want := range map[string]bool{
		"git+https://git.example.com/app":      true,
		"git+https://git.example.com/app-evil": false,
		"git+https://git.example.com/libs/x":   true,
		"git+https://git.example.com/libs":     false,
		"https://ci.example.com/runner@v2":     true,
		"https://ci.example.com.evil/":         false,
	} {
		if allowed(v, pats) != want {
			t.Errorf("allowed(%q) = %v, want %v", v, !want, want)
		}
	}
}
