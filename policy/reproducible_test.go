package policy

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/provlog/provlog/event"
)

// rbuild makes a build event at i by builder of the source at commit (a
// two-hex-digit pattern), signed by keys.
func rbuild(t *testing.T, i uint64, builder, repo, commit string, keys ...testKey) Event {
	t.Helper()
	prov, err := event.NewProvenance(event.BuildSpec{BuilderID: builder, BuildType: "https://ci.example.com/go@v1",
		SourceRepo: repo, SourceCommit: strings.Repeat(commit, 20)})
	if err != nil {
		t.Fatal(err)
	}
	return mkEvent(t, i, event.ProvenancePredicateType, prov, keys...)
}

// noKeyID drops the key ids of an event's signatures, as cosign writes
// them; the signatures still verify.
func noKeyID(e Event) Event {
	env := *e.Envelope
	env.Signatures = append([]event.Signature(nil), env.Signatures...)
	for i := range env.Signatures {
		env.Signatures[i].KeyID = ""
	}
	e.Envelope = &env
	return e
}

// claim sets the key id of an event's signatures to id, as a forger would.
func claim(e Event, id string) Event {
	e = noKeyID(e)
	for i := range e.Envelope.Signatures {
		e.Envelope.Signatures[i].KeyID = id
	}
	return e
}

func TestDecideReproducible(t *testing.T) {
	dir := t.TempDir()
	k1, k2, k3 := newTestKey(t, dir, "k1"), newTestKey(t, dir, "k2"), newTestKey(t, dir, "k3")
	const ciA, ciB, repo = "https://ci-a.example.com/runner", "https://ci-b.example.com/runner", "git+https://git.example.com/app"
	const same = `{"reproducible": {"builders": 2, "sameSource": true}}`
	const anySource = `{"reproducible": {"builders": 2}}`
	const named = `{"keys": {"k1": "k1.pub", "k2": "k2.pub"}, "reproducible": {"builders": 2, "sameSource": true}}`
	src := func(c string) string { return "https://git.example.com/app@" + strings.Repeat(c, 20) }
	promote := func(i, b uint64) Event {
		return mkEvent(t, i, event.PromotePredicateType, &event.PromotePredicate{To: "prod", BuildIndex: b, Decision: event.DecisionApproved}, k3)
	}
	want := func(n int, groups string) string {
		return fmt.Sprintf("reproducible: at most %d independent", n) + " builds from one source (" + groups +
			"), the policy wants 2 (distinct builder ids, signed by distinct keys, from the same source repository and commit)"
	}
	type reason struct {
		text    string
		entries []uint64
	}
	for _, tc := range []struct {
		name, policy string
		events       []Event
		want         []reason // none: allow
	}{
		{"two builders, two keys", same, []Event{rbuild(t, 0, ciA, repo, "5e", k1), rbuild(t, 1, ciB, repo, "5e", k2), promote(2, 0)}, nil},
		{"the repository compared normalized", same, []Event{rbuild(t, 0, ciA, repo, "5e", k1), rbuild(t, 1, ciB, "https://git.example.com/app.git", "5e", k2), promote(2, 0)}, nil},
		{"two builds from one builder", same, []Event{rbuild(t, 0, ciA, repo, "5e", k1), rbuild(t, 1, ciA, repo, "5e", k2), promote(2, 0)},
			[]reason{{want(1, src("5e")+": builds [0 1], independent [0]"), []uint64{0, 1}}}},
		{"two builders, one key", same, []Event{rbuild(t, 0, ciA, repo, "5e", k1), rbuild(t, 1, ciB, repo, "5e", k1), promote(2, 0)},
			[]reason{{want(1, src("5e")+": builds [0 1], independent [0]"), []uint64{0, 1}}}},
		{"two builders, different commits, sameSource", same, []Event{rbuild(t, 0, ciA, repo, "5e", k1), rbuild(t, 1, ciB, repo, "6f", k2), promote(2, 0)},
			[]reason{{want(1, src("5e")+": builds [0], independent [0]; "+src("6f")+": builds [1], independent [1]"), []uint64{0, 1}}}},
		{"two builders, different commits, any source", anySource, []Event{rbuild(t, 0, ciA, repo, "5e", k1), rbuild(t, 1, ciB, repo, "6f", k2), promote(2, 0)}, nil},
		{"one build, any source", anySource, []Event{rbuild(t, 0, ciA, repo, "5e", k1), promote(1, 0)},
			[]reason{{"reproducible: 1 independent builds [0] among the accepted builds [0], the policy wants 2 (distinct builder ids, signed by distinct keys)", []uint64{0}}}},
		{"a build signed by two keys is credited to the one left free", same,
			[]Event{rbuild(t, 0, ciA, repo, "5e", k1, k2), rbuild(t, 1, ciB, repo, "5e", k1), promote(2, 0)}, nil},
		{"signatures without key id count once", same,
			[]Event{noKeyID(rbuild(t, 0, ciA, repo, "5e", k1)), noKeyID(rbuild(t, 1, ciB, repo, "5e", k2)), promote(2, 0)},
			[]reason{{want(1, src("5e")+": builds [0 1], independent [0]"), []uint64{0, 1}}}},
		{"named keys verify signatures without key id", named,
			[]Event{noKeyID(rbuild(t, 0, ciA, repo, "5e", k1)), noKeyID(rbuild(t, 1, ciB, repo, "5e", k2)), promote(2, 0)}, nil},
		{"a named key's id on a signature it does not verify counts for nothing", named,
			[]Event{rbuild(t, 0, ciA, repo, "5e", k1), claim(rbuild(t, 1, ciB, repo, "5e", k3), k2.id), promote(2, 0)},
			[]reason{{want(1, src("5e")+": builds [0 1], independent [0]"), []uint64{0, 1}}}},
		{"builds the policy does not accept do not count", `{"builders": ["` + ciA + `"], "reproducible": {"builders": 2}}`,
			[]Event{rbuild(t, 0, ciA, repo, "5e", k1), rbuild(t, 1, ciB, repo, "5e", k2), promote(2, 0)},
			[]reason{{"reproducible: 1 independent builds [0] among the accepted builds [0], the policy wants 2 (distinct builder ids, signed by distinct keys)", []uint64{0}}}},
	} {
		p, err := Parse([]byte(tc.policy), dir)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		dec := p.Decide(context.Background(), testDigest.String(), "prod", tc.events)
		var got []reason
		for _, r := range dec.Reasons {
			got = append(got, reason{r.Text, r.Entries})
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: reasons\n%v\nwant\n%v", tc.name, got, tc.want)
		}
	}
	if _, err := Parse([]byte(`{"reproducible": {"builders": 0}}`), dir); err == nil || !strings.Contains(err.Error(), "reproducible.builders: 0, want >= 1") {
		t.Errorf("Parse(builders 0) = %v", err)
	}
}

func TestIndependent(t *testing.T) {
	for _, tc := range []struct {
		name   string
		builds []SignedBuild
		want   []uint64
	}{
		{"none", nil, nil},
		{"distinct", []SignedBuild{{0, "a", []string{"k1"}}, {1, "b", []string{"k2"}}, {2, "c", []string{"k3"}}}, []uint64{0, 1, 2}},
		{"one builder", []SignedBuild{{0, "a", []string{"k1"}}, {1, "a", []string{"k2"}}}, []uint64{0}},
		{"one key", []SignedBuild{{0, "a", []string{"k1"}}, {1, "b", []string{"k1"}}}, []uint64{0}},
		{"unsigned counts for nothing", []SignedBuild{{0, "a", nil}, {1, "b", []string{"k1"}}}, []uint64{1}},
		// greedy would credit 0 to k1 and leave 1 without a key
		{"augmenting path", []SignedBuild{{0, "a", []string{"k1", "k2"}}, {1, "b", []string{"k1"}}}, []uint64{0, 1}},
		{"a builder's second build frees a key", []SignedBuild{{0, "a", []string{"k1"}}, {1, "a", []string{"k2"}}, {2, "b", []string{"k1"}}}, []uint64{1, 2}},
	} {
		if got := Independent(tc.builds); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: Independent = %v, want %v", tc.name, got, tc.want)
		}
	}
}
