package log

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/provlog/provlog/event"
	"github.com/provlog/provlog/policy"
	"github.com/provlog/provlog/storage"
)

// trustChain is a chain whose keyring, after the genesis, names admins
// root1 and root2 (2 of 2), a security key sec, and a second builder
// ci2; a policy.Replay follows the log in lockstep, so that every step is
// decided both by the log and by the independent replay.
type trustChain struct {
	*chain
	replay *policy.Replay
}

// trustKeys are the keys newTrustChain adds to newChain's.
var trustKeys = []string{"root1", "root2", "sec", "ci2", "old"}

func newTrustChain(t *testing.T) *trustChain {
	t.Helper()
	c := newChain(t)
	for _, name := range trustKeys {
		priv, pub, err := event.GenerateKey(event.KeyEd25519)
		if err != nil {
			t.Fatal(err)
		}
		if c.keys[name], err = event.LoadSigningKey(priv); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(c.dir, name+".pub"), pub, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	logKey, err := policy.LogKey(c.vkey)
	if err != nil {
		t.Fatal(err)
	}
	tc := &trustChain{chain: c, replay: policy.NewReplay(logKey)}
	// The genesis names no admins, so the log key logs this file at the
	// next start: from then on the admins manage the keyring.
	c.reopenWith(tc.keyring(ringSpec{}))
	tc.sync()
	return tc
}

// ringSpec varies the test keyring.
type ringSpec struct {
	ciNotAfter  *uint64 // ci's window end
	noCI        bool    // leave ci out (rotated away)
	ci2         bool    // add ci2 as a builder
	admins      string  // the admins rule's JSON; default 2 of root1, root2
	extraKey    string  // one more key's JSON
	ci2NotBefor *uint64
	rootRoles   string // the roots' roles' JSON; default none
}

func (tc *trustChain) keyringJSON(s ringSpec) string {
	keys := []string{
		`{"name": "signer", "publicKeyFile": "signer.pub", "roles": ["signer"]}`,
		`{"name": "alice", "publicKeyFile": "alice.pub", "roles": ["promoter"]}`,
		`{"name": "bob", "publicKeyFile": "bob.pub", "roles": ["approver"]}`,
		`{"name": "sec", "publicKeyFile": "sec.pub", "roles": ["security"]}`,
		`{"name": "root1", "publicKeyFile": "root1.pub", "roles": [` + s.rootRoles + `]}`,
		`{"name": "root2", "publicKeyFile": "root2.pub", "roles": [` + s.rootRoles + `]}`,
	}
	if !s.noCI {
		ci := map[string]any{"name": "ci", "publicKeyFile": "ci.pub", "roles": []string{"builder"}}
		if s.ciNotAfter != nil {
			ci["notAfter"] = *s.ciNotAfter
		}
		b, _ := json.Marshal(ci)
		keys = append(keys, string(b))
	}
	if s.ci2 {
		ci2 := map[string]any{"name": "ci2", "publicKeyFile": "ci2.pub", "roles": []string{"builder"}}
		if s.ci2NotBefor != nil {
			ci2["notBefore"] = *s.ci2NotBefor
		}
		b, _ := json.Marshal(ci2)
		keys = append(keys, string(b))
	}
	if s.extraKey != "" {
		keys = append(keys, s.extraKey)
	}
	admins := s.admins
	if admins == "" {
		admins = `{"keys": ["root1", "root2"], "threshold": 2}`
	}
	return `{"keys": [` + strings.Join(keys, ",") + `],
		"environments": [{"name": "dev"}, {"name": "staging", "from": "dev"}, {"name": "prod", "from": "staging", "approvals": 2}],
		"admins": ` + admins + `}`
}

func (tc *trustChain) keyring(s ringSpec) *Keyring {
	tc.t.Helper()
	kr, err := ParseKeyring([]byte(tc.keyringJSON(s)), tc.dir)
	if err != nil {
		tc.t.Fatal(err)
	}
	return kr
}

// signed signs a statement with the named keys.
func (tc *trustChain) signed(payload []byte, signers ...string) []byte {
	tc.t.Helper()
	var keys []event.SigningKey
	for _, s := range signers {
		keys = append(keys, tc.keys[s])
	}
	env, err := event.SignEnvelope(context.Background(), payload, keys...)
	if err != nil {
		tc.t.Fatal(err)
	}
	return env
}

func (tc *trustChain) keyringChange(s ringSpec, signers ...string) []byte {
	tc.t.Helper()
	payload, err := event.NewKeyringStatement(tc.keyring(s).Predicate())
	if err != nil {
		tc.t.Fatal(err)
	}
	return tc.signed(payload, signers...)
}

func (tc *trustChain) revoke(key string, since uint64, signers ...string) []byte {
	tc.t.Helper()
	payload, err := event.NewRevokeStatement(&event.RevokePredicate{KeyID: tc.keyID(key), CompromisedSince: since, Reason: key + " leaked"})
	if err != nil {
		tc.t.Fatal(err)
	}
	return tc.signed(payload, signers...)
}

func (tc *trustChain) quarantine(d event.Digest, action string, signers ...string) []byte {
	tc.t.Helper()
	payload, err := event.NewQuarantineStatement([]event.Subject{{Name: "app", Digest: d}}, &event.QuarantinePredicate{Action: action, Reason: "CVE-2026-0001"})
	if err != nil {
		tc.t.Fatal(err)
	}
	return tc.signed(payload, signers...)
}

// sync replays the entries the log holds beyond the replay's position;
// each must be one the replay admits.
func (tc *trustChain) sync() {
	tc.t.Helper()
	size := tc.log.IntegratedSize()
	if n := tc.replay.Next(); n < size {
		err := tc.store.Entries(n, size-n, func(i uint64, entry []byte) error {
			if v := tc.replay.Entry(context.Background(), entry); v.Err != nil || v.BeforeHistory {
				tc.t.Errorf("the log holds entry %d (%s), which the replay refuses: %v", i, v.Type, v.Err)
			}
			return nil
		})
		if err != nil {
			tc.t.Fatal(err)
		}
	}
}

// step submits entry and checks that the log and the replay both admit it
// (want nil), or both refuse it, the log with want and a message holding
// msg, writing nothing. It returns the entry's index.
func (tc *trustChain) step(name string, entry []byte, want error, msg string) uint64 {
	tc.t.Helper()
	tc.sync()
	replayErr := tc.replay.Check(context.Background(), entry)
	before := tc.log.IntegratedSize()
	res, err := tc.add(entry)
	switch {
	case want == nil && err != nil:
		tc.t.Errorf("%s: %v, want admitted", name, err)
	case want == nil && replayErr != nil:
		tc.t.Errorf("%s: the log admitted it, the replay refuses it: %v", name, replayErr)
	case want != nil && (!errors.Is(err, want) || !strings.Contains(fmt.Sprint(err), msg)):
		tc.t.Errorf("%s: %v, want %v with %q", name, err, want, msg)
	case want != nil && replayErr == nil:
		tc.t.Errorf("%s: the log refused it (%v), the replay admits it", name, err)
	case want != nil && tc.log.IntegratedSize() != before:
		tc.t.Errorf("%s: refused, yet the log grew from %d to %d", name, before, tc.log.IntegratedSize())
	}
	tc.sync()
	return res.Index
}

// decide runs the gate policy over the log's events about d, with the
// replayed trust history.
func (tc *trustChain) decide(d event.Digest, env string) *policy.Decision {
	tc.t.Helper()
	p, err := policy.Parse([]byte(`{"promotionPath": ["dev", "staging", "prod"], "approvals": {"prod": {"count": 2}}}`), tc.dir)
	if err != nil {
		tc.t.Fatal(err)
	}
	hits, _, err := tc.store.SearchIndex(IndexDigest, d.String(), 0, 1000)
	if err != nil {
		tc.t.Fatal(err)
	}
	var events []policy.Event
	for _, h := range hits {
		env, ev, err := ledger{tc.store}.Event(context.Background(), h.Index)
		if err != nil {
			tc.t.Fatal(err)
		}
		events = append(events, policy.Event{Index: h.Index, Envelope: env, Event: ev})
	}
	return p.Decide(context.Background(), d.String(), env, events, policy.WithHistory(tc.replay.History()))
}

// TestTrustHistory is the table of issue 15: keyring versions, a
// rotation, a revocation compromised since before it, a quarantine and
// its lifting; each event admitted or refused, by the log and by the
// independent replay alike, and the gate's decisions.
func TestTrustHistory(t *testing.T) {
	tc := newTrustChain(t)
	bad, good := artifact("bad"), artifact("good")

	badBuild := tc.step("a build by ci", tc.build(bad, "ci"), nil, "")
	tc.step("promote it to dev", tc.promote(bad, badBuild, "", "dev", "alice"), nil, "")

	// Changes need both admins, and no other key.
	rotated := ringSpec{ci2: true}
	tc.step("a change by one admin", tc.keyringChange(rotated, "root1"), ErrPermissionDenied, "needs 2")
	tc.step("a change by an admin and a builder", tc.keyringChange(rotated, "root1", "ci"), ErrPermissionDenied, "not an admin")
	tc.step("a change by the log key", tc.byLog(mustStatement(t, tc.keyring(rotated))), ErrPermissionDenied, "")
	tc.step("a change naming an unknown role", tc.signed([]byte(strings.Replace(string(mustStatement(t, tc.keyring(rotated))), `"security"`, `"janitor"`, 1)), "root1", "root2"), ErrInvalidEntry, "unknown role")
	tc.step("a change leaving no admin", tc.keyringChange(ringSpec{ci2: true, admins: `{"keys": [], "threshold": 0}`, rootRoles: `"approver"`}, "root1", "root2"), ErrFailedPrecondition, "leaves no admin")
	expired := uint64(3)
	tc.step("a change whose admins' windows have ended", tc.keyringChange(ringSpec{ci2: true, admins: `{"keys": ["old"], "threshold": 1}`, rootRoles: `"approver"`,
		extraKey: `{"name": "old", "publicKeyFile": "old.pub", "roles": [], "notAfter": ` + fmt.Sprint(expired) + `}`}, "root1", "root2"), ErrFailedPrecondition, "lock out")

	// The rotation: ci2 joins.
	v2 := tc.step("the rotation, by both admins", tc.keyringChange(rotated, "root1", "root2"), nil, "")
	if kr := tc.History().KeyringAt(v2 + 1); kr == nil || kr.Len() != 8 {
		t.Fatalf("keyring after the rotation: %v", kr)
	}
	goodBuild := tc.step("a build by ci2", tc.build(good, "ci2"), nil, "")

	// The revocation: ci compromised since its build of bad, so that build
	// and what cites it stop counting, while ci is refused from now on.
	tc.step("revoking ci by one admin", tc.revoke("ci", badBuild, "root2"), ErrPermissionDenied, "needs 2")
	tc.step("revoking ci since after the revocation", tc.revoke("ci", tc.log.IntegratedSize()+5, "root1", "root2"), ErrFailedPrecondition, "compromisedSince")
	tc.step("revoking ci", tc.revoke("ci", badBuild, "root1", "root2"), nil, "")
	tc.step("revoking ci again", tc.revoke("ci", badBuild, "root1", "root2"), ErrFailedPrecondition, "already revoked")
	tc.step("a build by the revoked ci", tc.build(artifact("later"), "ci"), ErrPermissionDenied, "was revoked by entry")
	tc.step("signing the voided build", tc.sign(bad, badBuild, "signer"), ErrFailedPrecondition, "no longer counts")
	tc.step("promoting the voided build to staging", tc.promote(bad, badBuild, "dev", "staging", "alice"), ErrFailedPrecondition, "no longer counts")
	tc.step("revoking an admin below the threshold", tc.revoke("root1", 0, "root1", "root2"), ErrFailedPrecondition, "log a keyring naming a replacement")

	// The good build goes up the chain; a quarantine stops it.
	tc.step("sign the good build", tc.sign(good, goodBuild, "signer"), nil, "")
	tc.step("good to dev", tc.promote(good, goodBuild, "", "dev", "alice"), nil, "")
	tc.step("good to staging", tc.promote(good, goodBuild, "dev", "staging", "alice"), nil, "")
	tc.step("a quarantine by a builder", tc.quarantine(good, event.ActionQuarantine, "ci2"), ErrPermissionDenied, "may not sign quarantine events")
	if _, err := tc.log.AddBatch(context.Background(), [][]byte{tc.quarantine(good, event.ActionQuarantine, "sec"), tc.build(artifact("x"), "ci2")}); !errors.Is(err, ErrInvalidEntry) || !strings.Contains(err.Error(), "alone") {
		t.Errorf("a quarantine in a batch: %v, want ErrInvalidEntry (alone)", err)
	}
	q := tc.step("a quarantine by sec", tc.quarantine(good, event.ActionQuarantine, "sec"), nil, "")
	tc.step("good to prod, quarantined", tc.promote(good, goodBuild, "staging", "prod", "alice", "bob"), ErrFailedPrecondition, fmt.Sprintf("quarantined by entry %d", q))
	if d := tc.decide(good, "staging"); d.Allowed() || !strings.Contains(fmt.Sprint(d.Reasons), fmt.Sprintf("quarantined by entry %d", q)) {
		t.Errorf("gate for the quarantined good build in staging: %v", d.Reasons)
	}
	tc.step("an unquarantine by sec", tc.quarantine(good, event.ActionUnquarantine, "sec"), ErrPermissionDenied, "")
	tc.step("an unquarantine of what is not quarantined", tc.quarantine(bad, event.ActionUnquarantine, "root1", "root2"), ErrFailedPrecondition, "not quarantined")
	tc.step("the unquarantine by both admins", tc.quarantine(good, event.ActionUnquarantine, "root1", "root2"), nil, "")
	tc.step("good to prod", tc.promote(good, goodBuild, "staging", "prod", "alice", "bob"), nil, "")

	// Windows: ci2's window starting later refuses it now.
	far := uint64(1 << 40)
	tc.step("a change with ci2 not yet valid", tc.keyringChange(ringSpec{ci2: true, noCI: true, ci2NotBefor: &far}, "root1", "root2"), nil, "")
	tc.step("a build by ci2 before its window", tc.build(artifact("early"), "ci2"), ErrPermissionDenied, "validity window [notBefore entry 1099511627776")

	// The gate: the bad build counts nowhere; the good one deploys to prod.
	if d := tc.decide(bad, "dev"); d.Allowed() || !strings.Contains(fmt.Sprint(d.Reasons), fmt.Sprintf("build event %d no longer counts: key %s was revoked by entry", badBuild, tc.keyID("ci"))) {
		t.Errorf("gate for the bad build's artifact in dev: %v, want denied naming the revocation of ci", d.Reasons)
	}
	if d := tc.decide(good, "prod"); !d.Allowed() {
		t.Errorf("gate for the good build in prod: %v", d.Reasons)
	}
	// Without the history the gate would still take the bad build.
	if d := tc.decideWithout(bad, "dev"); !d.Allowed() {
		t.Errorf("gate without the history: %v (the test's premise)", d.Reasons)
	}

	// A restart rebuilds the same history from the log.
	before := tc.History().Versions()
	tc.reopenWith(tc.keyring(ringSpec{})) // a differing file: admins rule, so only a warning
	after := tc.History().Versions()
	if len(after) != len(before) || after[len(after)-1].Index != before[len(before)-1].Index {
		t.Errorf("after a restart: %d keyring versions, want %d", len(after), len(before))
	}
	if _, ok := tc.History().Revocation(tc.keyID("ci")); !ok {
		t.Error("after a restart: ci not revoked")
	}
	tc.step("a build by the revoked ci after a restart", tc.build(artifact("later2"), "ci"), ErrPermissionDenied, "")
	tc.verifyTree()
}

func (tc *trustChain) decideWithout(d event.Digest, env string) *policy.Decision {
	tc.t.Helper()
	p, _ := policy.Parse([]byte(`{"promotionPath": ["dev"]}`), tc.dir)
	hits, _, _ := tc.store.SearchIndex(IndexDigest, d.String(), 0, 1000)
	var events []policy.Event
	for _, h := range hits {
		env, ev, err := ledger{tc.store}.Event(context.Background(), h.Index)
		if err != nil {
			tc.t.Fatal(err)
		}
		events = append(events, policy.Event{Index: h.Index, Envelope: env, Event: ev})
	}
	return p.Decide(context.Background(), d.String(), env, events)
}

// History is the log's own trust history.
func (tc *trustChain) History() *policy.History {
	return tc.log.cfg.Admission.(*AttestationAdmission).History()
}

func mustStatement(t *testing.T, kr *Keyring) []byte {
	t.Helper()
	b, err := event.NewKeyringStatement(kr.Predicate())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestTrustRandomAgreement: random sequences of keyring changes,
// revocations, quarantines and events, signed by random keys, from a seed;
// the log's admission and the independent replay agree on every one.
func TestTrustRandomAgreement(t *testing.T) {
	for seed := range uint64(3) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			tc := newTrustChain(t)
			rng := rand.New(rand.NewPCG(seed, 15))
			names := []string{"ci", "ci2", "signer", "alice", "bob", "sec", "root1", "root2", "stranger"}
			// right are the signers an operation needs; pick takes them
			// most of the time, else a random set.
			pick := func(right ...string) []string {
				if rng.IntN(10) < 7 {
					return right
				}
				var s []string
				for _, n := range names {
					if rng.IntN(4) == 0 {
						s = append(s, n)
					}
				}
				if len(s) == 0 {
					s = []string{names[rng.IntN(len(names))]}
				}
				return s
			}
			builders := []string{"ci", "ci2"}
			var builds []uint64
			var artifacts []event.Digest
			admitted, refused := 0, 0
			for i := range 120 {
				d := artifact(fmt.Sprint(rng.IntN(6)))
				cite := uint64(rng.IntN(int(tc.log.IntegratedSize()) + 1))
				if len(builds) > 0 && rng.IntN(3) > 0 {
					j := rng.IntN(len(builds))
					cite, d = builds[j], artifacts[j]
				}
				envs := []string{"", "dev", "staging", "prod"}
				k := rng.IntN(3)
				var entry []byte
				switch op := rng.IntN(9); op {
				case 0, 1:
					entry = tc.build(d, pick(builders[rng.IntN(2)])...)
				case 2:
					entry = tc.sign(d, cite, pick("signer")...)
				case 3, 4:
					entry = tc.promote(d, cite, envs[k], envs[k+1], pick("alice", "bob")...)
				case 5:
					n := uint64(rng.IntN(int(tc.log.IntegratedSize()) + 50))
					entry = tc.keyringChange(ringSpec{ci2: rng.IntN(2) == 0, noCI: rng.IntN(3) == 0, ciNotAfter: &n}, pick("root1", "root2")...)
				case 6:
					entry = tc.revoke(names[rng.IntN(len(names)-1)], uint64(rng.IntN(int(tc.log.IntegratedSize())+3)), pick("root1", "root2")...)
				case 7:
					entry = tc.quarantine(d, event.ActionQuarantine, pick("sec")...)
				case 8:
					entry = tc.quarantine(d, event.ActionUnquarantine, pick("root1", "root2")...)
				}
				tc.sync()
				replayErr := tc.replay.Check(context.Background(), entry)
				res, err := tc.add(entry)
				if (err == nil) != (replayErr == nil) {
					t.Fatalf("step %d: the log says %v, the replay %v", i, err, replayErr)
				}
				if err == nil {
					admitted++
					if !res.Duplicate && slices.Contains([]string{"build"}, typeOf(entry)) {
						builds, artifacts = append(builds, res.Index), append(artifacts, d)
					}
				} else {
					refused++
				}
			}
			tc.sync()
			t.Logf("seed %d: %d admitted, %d refused, %d keyring versions, %d revocations", seed, admitted, refused, len(tc.replay.History().Versions()), len(tc.replay.History().Revocations()))
			if admitted < 5 || refused < 5 {
				t.Errorf("a sequence of %d admitted and %d refused tests too little", admitted, refused)
			}
		})
	}
}

func typeOf(entry []byte) string {
	env, err := event.ParseEnvelope(entry)
	if err != nil {
		return ""
	}
	ev, err := event.ParseStatement(env.Payload)
	if err != nil {
		return ""
	}
	return ev.Type
}

// TestSequenceRechecksAfterTrustChange: an entry admitted before a trust
// event is decided again at its index if the event is sequenced first
// (the sequencer's Admitted.Sequence), so a promotion admitted before a
// quarantine but sequenced after it is refused.
func TestSequenceRechecksAfterTrustChange(t *testing.T) {
	tc := newTrustChain(t)
	good := artifact("good")
	b := tc.step("build", tc.build(good, "ci"), nil, "")
	tc.step("dev", tc.promote(good, b, "", "dev", "alice"), nil, "")
	a := tc.log.cfg.Admission.(*AttestationAdmission)
	ctx := context.WithValue(context.Background(), nextIndexKey{}, tc.log.IntegratedSize())
	adm, err := a.Admit(ctx, tc.promote(good, b, "dev", "staging", "alice"))
	if err != nil {
		t.Fatal(err)
	}
	// The quarantine lands first.
	q := tc.step("quarantine", tc.quarantine(good, event.ActionQuarantine, "sec"), nil, "")
	if err := adm.Sequence(q + 1); !errors.Is(err, ErrFailedPrecondition) || !strings.Contains(err.Error(), "quarantined") {
		t.Errorf("the promotion admitted before the quarantine, sequenced after it: %v, want refused as quarantined", err)
	}
	// With no change in between, only the windows are checked again.
	adm2, err := a.Admit(ctx, tc.build(artifact("other"), "ci"))
	if err != nil {
		t.Fatal(err)
	}
	if err := adm2.Sequence(tc.log.IntegratedSize()); err != nil {
		t.Errorf("a build sequenced with no trust change: %v", err)
	}
}

// TestQuarantineFencesConcurrentPromotions: promotions submitted from
// many goroutines while a quarantine lands are admitted only before it.
func TestQuarantineFencesConcurrentPromotions(t *testing.T) {
	tc := newTrustChain(t)
	good := artifact("good")
	b := tc.step("build", tc.build(good, "ci"), nil, "")
	tc.step("dev", tc.promote(good, b, "", "dev", "alice"), nil, "")
	tc.step("staging", tc.promote(good, b, "dev", "staging", "alice"), nil, "")
	// Promotions signed ahead (ECDSA: each envelope differs).
	const workers, each = 4, 40
	entries := make([][][]byte, workers)
	for w := range entries {
		for range each {
			entries[w] = append(entries[w], tc.promote(good, b, "staging", "prod", "alice", "bob"))
		}
	}
	quarantine := tc.quarantine(good, event.ActionQuarantine, "sec")
	results := make(chan uint64, workers*each)
	done := make(chan struct{})
	for w := range workers {
		go func() {
			defer func() { done <- struct{}{} }()
			for _, e := range entries[w] {
				if res, err := tc.add(e); err == nil {
					results <- res.Index
				}
			}
		}()
	}
	first := <-results // some promotions land before the quarantine
	res, err := tc.add(quarantine)
	if err != nil {
		t.Fatal(err)
	}
	for range workers {
		<-done
	}
	close(results)
	n := 1
	if first > res.Index {
		t.Errorf("a promotion admitted at %d, after the quarantine at %d", first, res.Index)
	}
	for i := range results {
		n++
		if i > res.Index {
			t.Errorf("a promotion admitted at %d, after the quarantine at %d", i, res.Index)
		}
	}
	t.Logf("%d promotions admitted before the quarantine at %d, %d refused after it", n, res.Index, workers*each-n)
	tc.sync() // every logged entry is one the replay admits
}

// TestUpgradeLogsGenesis: a log that ran before its keyring was logged (its
// entries admitted under the operator's file, or any bytes) logs the
// keyring at its next index on the first start with attestation
// admission; a replay takes the earlier entries as before the history and
// checks everything after the genesis.
func TestUpgradeLogsGenesis(t *testing.T) {
	c := newChain(t) // its genesis is entry 0: start over with an open log
	e := newEnv(t)
	for i := range 3 {
		if _, err := e.log.Add(context.Background(), fmt.Appendf(nil, "old entry %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	kr, err := LoadKeyring(filepath.Join(c.dir, "keyring.json"))
	if err != nil {
		t.Fatal(err)
	}
	e.close()
	st, err := storage.Open("db", storage.Options{FS: e.fs, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	a := &AttestationAdmission{Keyring: kr, Index: st}
	e.store, e.faults = st, &faultyStore{Store: st}
	if e.log, err = Open(context.Background(), Config{Origin: testOrigin, Signer: e.signer, Logger: quiet, Admission: a}, e.faults); err != nil {
		t.Fatal(err)
	}
	if vs := a.History().Versions(); len(vs) != 1 || vs[0].Index != 3 || !vs[0].ByLog {
		t.Fatalf("after the upgrade: versions %+v, want the genesis at index 3, by the log key", vs)
	}
	c.testEnv = e
	b := c.mustAdd(c.build(artifact("app"), "ci"))
	if b != 4 {
		t.Errorf("first event at %d, want 4", b)
	}
	logKey, err := policy.LogKey(e.vkey)
	if err != nil {
		t.Fatal(err)
	}
	rp := policy.NewReplay(logKey)
	var got []string
	if err := e.store.Entries(0, e.log.IntegratedSize(), func(i uint64, entry []byte) error {
		v := rp.Entry(context.Background(), entry)
		got = append(got, fmt.Sprintf("%d:%s:%v:%v", i, v.Type, v.BeforeHistory, v.Err))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := []string{"0::true:<nil>", "1::true:<nil>", "2::true:<nil>", "3:keyring:false:<nil>", "4:build:false:<nil>"}
	for i := range want {
		if i >= len(got) || !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("replay: %v, want %v", got, want)
			break
		}
	}
}
