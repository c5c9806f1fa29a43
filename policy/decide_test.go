package policy

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
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

// mkEvent makes an event at index signed by keys.
func mkEvent(t *testing.T, index uint64, predType string, pred any, keys ...testKey) Event {
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
	e, err := event.ParseEntry(env)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := event.ParseStatement(e.Payload)
	if err != nil {
		t.Fatal(err)
	}
	return Event{Index: index, Envelope: e, Event: ev}
}

// events makes build, sign and promote events; ci signs builds, and
// promotions without keys.
type events struct {
	t  *testing.T
	ci testKey
}

func (f events) build(i uint64, builder, repo string) Event {
	prov, err := event.NewProvenance(event.BuildSpec{BuilderID: builder, BuildType: "https://ci.example.com/go@v1",
		SourceRepo: repo, SourceCommit: strings.Repeat("5e", 20)})
	if err != nil {
		f.t.Fatal(err)
	}
	return mkEvent(f.t, i, event.ProvenancePredicateType, prov, f.ci)
}

func (f events) sign(i, b uint64, k testKey) Event {
	return mkEvent(f.t, i, event.SignPredicateType, &event.SignPredicate{Algorithm: "ed25519", KeyID: "release", Signature: "c2ln", BuildIndex: b}, k)
}

func (f events) promote(i, b uint64, from, to string, ks ...testKey) Event {
	if len(ks) == 0 {
		ks = []testKey{f.ci}
	}
	return mkEvent(f.t, i, event.PromotePredicateType, &event.PromotePredicate{From: from, To: to, BuildIndex: b, Decision: event.DecisionApproved}, ks...)
}

func TestDecideFullPolicy(t *testing.T) {
	dir := t.TempDir()
	ci, signer, alice, bob := newTestKey(t, dir, "ci"), newTestKey(t, dir, "signer"), newTestKey(t, dir, "alice"), newTestKey(t, dir, "bob")
	p, err := Parse([]byte(`{
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
	ev := events{t, ci}
	build, sign, promote := ev.build, ev.sign, ev.promote
	good := []Event{
		build(0, "https://ci.example.com/runner", "git+https://git.example.com/app"),
		sign(1, 0, signer),
		promote(2, 0, "", "dev", alice),
		promote(3, 0, "dev", "staging", alice),
		promote(4, 0, "staging", "prod", alice, bob),
	}
	ctx := context.Background()
	d := testDigest.String()
	for _, env := range []string{"dev", "staging", "prod"} {
		if dec := p.Decide(ctx, d, env, good); !dec.Allowed() {
			t.Errorf("Decide(%s) on the full history = %q, want allow", env, dec.Reasons)
		}
	}
	for _, tc := range []struct {
		name   string
		env    string
		events []Event
		want   []string
	}{
		{"nothing logged", "dev", nil, []string{"the log has no events"}},
		{"only a build", "prod", good[:1], []string{"no sign event signed by signer", "no promotion into dev", "no promotion into staging from dev", "no promotion into prod from staging"}},
		{"not on the path", "qa", good, []string{`"qa" is not on the policy's promotion path`}},
		{"wrong builder and source", "dev", []Event{build(0, "https://evil.example.com/x", "git+https://git.example.com/app2"), sign(1, 0, signer), promote(2, 0, "", "dev", alice)},
			[]string{`builder "https://evil.example.com/x" is not allowed`, `source repository "git+https://git.example.com/app2" is not allowed`,
				"sign event 1 by signer", "promotion into dev at index 2 is for a build the policy does not accept"}},
		{"sign by another key", "dev", []Event{good[0], sign(1, 0, ci), good[2]}, []string{"no sign event signed by signer"}},
		{"prod lacks bob", "prod", append(good[:4:4], promote(4, 0, "staging", "prod", alice, ci)),
			[]string{"promotion into prod from staging at index 4 is not approved by bob"}},
		{"prod with one signer", "prod", append(good[:4:4], promote(4, 0, "staging", "prod", alice)),
			[]string{"has 1 distinct signers, the policy wants 2", "is not approved by bob"}},
		{"skipped staging", "prod", append(good[:3:3], promote(4, 0, "dev", "prod", alice, bob)),
			[]string{"no promotion into staging from dev", "no promotion into prod from staging"}},
	} {
		got := texts(p.Decide(ctx, d, tc.env, tc.events).Reasons)
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

// texts returns the reasons' texts.
func texts(rs []Reason) []string {
	out := []string{}
	for _, r := range rs {
		out = append(out, r.Text)
	}
	return out
}

// TestDecideRules checks each rule alone, allowing and denying, with the
// exact reasons and the entries behind them.
func TestDecideRules(t *testing.T) {
	dir := t.TempDir()
	ci, signer, alice, bob := newTestKey(t, dir, "ci"), newTestKey(t, dir, "signer"), newTestKey(t, dir, "alice"), newTestKey(t, dir, "bob")
	const goodCI, goodRepo = "https://ci.example.com/runner", "git+https://git.example.com/app"
	ev := events{t, ci}
	build, sign, promote := ev.build, ev.sign, ev.promote
	d := testDigest.String()
	ok := build(0, goodCI, goodRepo)
	named := func(name string, k testKey) string { return name + " (" + k.id + ")" }
	type reason struct {
		text    string
		entries []uint64
	}
	for _, tc := range []struct {
		name, policy, env string
		events            []Event
		want              []reason // none: allow
	}{
		{"nothing logged", `{}`, "dev", nil, []reason{{"the log has no events about " + d, nil}}},
		{"no build", `{}`, "dev", []Event{sign(1, 0, signer), promote(2, 0, "", "dev", alice)},
			[]reason{{"no build event about " + d, nil}, {"promotion into dev at index 2 is for a build the policy does not accept", []uint64{2}}}},
		{"empty policy allows a build and a promotion", `{}`, "dev", []Event{ok, promote(1, 0, "", "dev")}, nil},
		{"no promotion", `{}`, "dev", []Event{ok, promote(1, 0, "", "staging")}, []reason{{"no promotion into dev", nil}}},

		{"builder by prefix", `{"builders": ["https://ci.example.com/*"]}`, "dev", []Event{ok, promote(1, 0, "", "dev")}, nil},
		{"builder refused", `{"builders": ["https://ci.example.com/runner@v2"]}`, "dev", []Event{ok, promote(1, 0, "", "dev")},
			[]reason{{`build event 0: builder "https://ci.example.com/runner" is not allowed by the policy`, []uint64{0}},
				{"promotion into dev at index 1 is for a build the policy does not accept", []uint64{1}}}},
		{"source exact", `{"sourceRepositories": ["git+https://git.example.com/app"]}`, "dev", []Event{ok, promote(1, 0, "", "dev")}, nil},
		{"source refused", `{"sourceRepositories": ["git+https://git.example.com/app/"]}`, "dev", []Event{ok, promote(1, 0, "", "dev")},
			[]reason{{`build event 0: source repository "git+https://git.example.com/app" is not allowed by the policy`, []uint64{0}},
				{"promotion into dev at index 1 is for a build the policy does not accept", []uint64{1}}}},
		{"one accepted build of two is enough", `{"sourceRepositories": ["git+https://git.example.com/app"]}`, "dev",
			[]Event{build(0, goodCI, "git+https://evil.example.com/app"), build(1, goodCI, goodRepo), promote(2, 1, "", "dev")}, nil},

		{"required signer by name", `{"keys": {"signer": "signer.pub"}, "requiredSigners": ["signer"]}`, "dev",
			[]Event{ok, sign(1, 0, signer), promote(2, 0, "", "dev")}, nil},
		{"required signer missing", `{"keys": {"signer": "signer.pub"}, "requiredSigners": ["signer"]}`, "dev",
			[]Event{ok, sign(1, 0, alice), promote(2, 0, "", "dev")}, []reason{{"no sign event signed by " + named("signer", signer), nil}}},
		{"required signer signed another build", `{"builders": ["` + goodCI + `"], "keys": {"signer": "signer.pub"}, "requiredSigners": ["signer"]}`, "dev",
			[]Event{ok, build(1, "https://evil.example.com/x", goodRepo), sign(2, 1, signer), promote(3, 0, "", "dev")},
			[]reason{{"sign event 2 by " + named("signer", signer) + " is for a build the policy does not accept", []uint64{2}}}},
		{"required signer by key id", `{"requiredSigners": ["` + alice.id + `"]}`, "dev",
			[]Event{ok, sign(1, 0, alice), promote(2, 0, "", "dev")}, nil},
		{"required signer by key id missing", `{"requiredSigners": ["` + alice.id + `"]}`, "dev",
			[]Event{ok, sign(1, 0, bob), promote(2, 0, "", "dev")}, []reason{{"no sign event signed by " + alice.id, nil}}},

		{"no path: a promotion from anywhere", `{}`, "prod", []Event{ok, promote(1, 0, "qa", "prod")}, nil},
		{"path followed", `{"promotionPath": ["dev", "prod"]}`, "prod", []Event{ok, promote(1, 0, "", "dev"), promote(2, 0, "dev", "prod")}, nil},
		{"not on the path", `{"promotionPath": ["dev", "prod"]}`, "qa", []Event{ok, promote(1, 0, "", "qa")},
			[]reason{{`environment "qa" is not on the policy's promotion path [dev prod]`, nil}}},
		{"path skipped", `{"promotionPath": ["dev", "staging", "prod"]}`, "prod", []Event{ok, promote(1, 0, "", "dev"), promote(2, 0, "dev", "prod")},
			[]reason{{"no promotion into staging from dev", nil}, {"no promotion into prod from staging", nil}}},
		{"path out of log order", `{"promotionPath": ["dev", "prod"]}`, "prod", []Event{ok, promote(1, 0, "dev", "prod"), promote(2, 0, "", "dev")},
			[]reason{{"no promotion into prod from dev", nil}}},

		{"approval count met", `{"approvals": {"prod": {"count": 2}}}`, "prod", []Event{ok, promote(1, 0, "", "prod", alice, bob)}, nil},
		{"approval count unmet", `{"approvals": {"prod": {"count": 2}}}`, "prod", []Event{ok, promote(1, 0, "", "prod", alice)},
			[]reason{{"promotion into prod at index 1 has 1 distinct signers, the policy wants 2", []uint64{1}}}},
		{"approval by named key", `{"keys": {"bob": "bob.pub"}, "approvals": {"prod": {"keys": ["bob"]}}}`, "prod", []Event{ok, promote(1, 0, "", "prod", bob)}, nil},
		{"approval by named key missing", `{"keys": {"bob": "bob.pub"}, "approvals": {"prod": {"keys": ["bob"]}}}`, "prod",
			[]Event{ok, promote(1, 0, "", "prod", alice)}, []reason{{"promotion into prod at index 1 is not approved by " + named("bob", bob), []uint64{1}}}},
		{"approval by key id missing", `{"approvals": {"prod": {"keys": ["` + bob.id + `"]}}}`, "prod",
			[]Event{ok, promote(1, 0, "", "prod", alice), promote(2, 0, "", "prod", alice, ci)},
			[]reason{{"promotion into prod at index 1 is not approved by " + bob.id, []uint64{1}}, {"promotion into prod at index 2 is not approved by " + bob.id, []uint64{2}}}},
		{"a later promotion meets the approval", `{"approvals": {"prod": {"count": 2, "keys": ["` + bob.id + `"]}}}`, "prod",
			[]Event{ok, promote(1, 0, "", "prod", alice), promote(2, 0, "", "prod", alice, bob)}, nil},
	} {
		p, err := Parse([]byte(tc.policy), dir)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		dec := p.Decide(context.Background(), d, tc.env, tc.events)
		var got []reason
		for _, r := range dec.Reasons {
			got = append(got, reason{r.Text, r.Entries})
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: reasons\n%v\nwant\n%v", tc.name, got, tc.want)
		}
		if dec.Allowed() != (len(tc.want) == 0) || dec.Artifact != d || dec.Environment != tc.env || len(dec.Events) != len(tc.events) {
			t.Errorf("%s: decision %+v", tc.name, dec)
		}
	}
}
