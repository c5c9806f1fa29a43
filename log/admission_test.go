package log

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/provlog/provlog/event"
	"github.com/provlog/provlog/storage"
	fproof "github.com/transparency-dev/formats/proof"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// chain is a keyring of five keys and the environments dev → staging → prod
// (prod needing two approvals), and a log admitting attestations with it.
type chain struct {
	*testEnv
	keys map[string]event.SigningKey
	dir  string // the keyring's directory, with each key's NAME.pub
}

func newChain(t *testing.T) *chain {
	t.Helper()
	dir := t.TempDir()
	c := &chain{keys: map[string]event.SigningKey{}, dir: dir}
	type keyEntry struct {
		Name          string   `json:"name"`
		PublicKeyFile string   `json:"publicKeyFile"`
		Roles         []string `json:"roles"`
	}
	var ring struct {
		Keys         []keyEntry    `json:"keys"`
		Environments []Environment `json:"environments"`
	}
	for _, k := range []struct {
		name, kind string
		roles      []string
	}{
		{"ci", event.KeyEd25519, []string{RoleBuilder}},
		{"signer", event.KeyECDSAP256, []string{RoleSigner}},
		{"alice", event.KeyECDSAP256, []string{RolePromoter}},
		{"bob", event.KeyEd25519, []string{RoleApprover}},
		{"scanner", event.KeyEd25519, []string{RoleAttester}},
		{"verifier", event.KeyECDSAP256, []string{RoleVerifier}},
		{"stranger", event.KeyEd25519, nil}, // not in the keyring
	} {
		priv, pub, err := event.GenerateKey(k.kind)
		if err != nil {
			t.Fatal(err)
		}
		if c.keys[k.name], err = event.LoadSigningKey(priv); err != nil {
			t.Fatal(err)
		}
		if k.roles == nil {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, k.name+".pub"), pub, 0o644); err != nil {
			t.Fatal(err)
		}
		ring.Keys = append(ring.Keys, keyEntry{k.name, k.name + ".pub", k.roles})
	}
	// cosign's test key (event/testdata/cosign), public half only.
	cosignPub, err := os.ReadFile("../event/testdata/cosign/cosign.pub")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cosign.pub"), cosignPub, 0o644); err != nil {
		t.Fatal(err)
	}
	ring.Keys = append(ring.Keys, keyEntry{"cosign", "cosign.pub", []string{RoleBuilder, RoleAttester}})
	ring.Environments = []Environment{{Name: "dev"}, {Name: "staging", From: "dev"}, {Name: "prod", From: "staging", Approvals: 2}}
	b, _ := json.Marshal(ring)
	path := filepath.Join(dir, "keyring.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	kr, err := LoadKeyring(path)
	if err != nil {
		t.Fatal(err)
	}
	c.testEnv = newEnv(t)
	c.reopenWith(kr)
	return c
}

func (c *chain) reopenWith(kr *Keyring) {
	c.close()
	st, err := storage.Open("db", storage.Options{FS: c.fs, Logger: quiet})
	if err != nil {
		c.t.Fatal(err)
	}
	c.store, c.faults = st, &faultyStore{Store: st}
	cfg := Config{Origin: testOrigin, Signer: c.signer, Logger: quiet, Admission: &AttestationAdmission{Keyring: kr, Index: st}}
	if c.log, err = Open(context.Background(), cfg, c.faults); err != nil {
		c.t.Fatal(err)
	}
}

// byLog signs a statement with the log key, as the log signs its genesis
// keyring (and the admins' events while the keyring names none).
func (c *chain) byLog(payload []byte) []byte {
	c.t.Helper()
	env, err := event.SignEnvelope(context.Background(), payload, signerKey{c.signer})
	if err != nil {
		c.t.Fatal(err)
	}
	return env
}

func artifact(name string) event.Digest {
	h := sha256.Sum256([]byte(name))
	return event.Digest{Alg: "sha256", Hex: hex.EncodeToString(h[:])}
}

func (c *chain) envelope(predType string, d event.Digest, pred any, signers ...string) []byte {
	c.t.Helper()
	st, err := event.NewStatement(predType, []event.Subject{{Name: "app", Digest: d}}, pred)
	if err != nil {
		c.t.Fatal(err)
	}
	var keys []event.SigningKey
	for _, s := range signers {
		keys = append(keys, c.keys[s])
	}
	env, err := event.SignEnvelope(context.Background(), st, keys...)
	if err != nil {
		c.t.Fatal(err)
	}
	return env
}

func (c *chain) build(d event.Digest, signers ...string) []byte {
	c.t.Helper()
	p, err := event.NewProvenance(event.BuildSpec{BuilderID: "https://ci.example.com/b", BuildType: "https://ci.example.com/t",
		SourceRepo: "git+https://git.example.com/app", SourceCommit: strings.Repeat("c0", 20)})
	if err != nil {
		c.t.Fatal(err)
	}
	return c.envelope(event.ProvenancePredicateType, d, p, signers...)
}

func (c *chain) sign(d event.Digest, buildIndex uint64, signers ...string) []byte {
	return c.envelope(event.SignPredicateType, d, &event.SignPredicate{Algorithm: "ecdsa-p256-sha256", KeyID: "cosign", Signature: "c2ln", BuildIndex: buildIndex}, signers...)
}

func (c *chain) promote(d event.Digest, buildIndex uint64, from, to string, signers ...string) []byte {
	return c.envelope(event.PromotePredicateType, d, &event.PromotePredicate{From: from, To: to, BuildIndex: buildIndex, Decision: event.DecisionApproved, ChangeRef: "CHG-7"}, signers...)
}

func (c *chain) add(entry []byte) (AddResult, error) { return c.log.Add(context.Background(), entry) }

func (c *chain) mustAdd(entry []byte) uint64 {
	c.t.Helper()
	res, err := c.add(entry)
	if err != nil {
		c.t.Fatal(err)
	}
	return res.Index
}

func TestPromotionChain(t *testing.T) {
	c := newChain(t)
	app := artifact("app-1.0.tar.gz")
	b := c.mustAdd(c.build(app, "ci"))
	s := c.mustAdd(c.sign(app, b, "signer"))
	dev := c.mustAdd(c.promote(app, b, "", "dev", "alice"))
	staging := c.mustAdd(c.promote(app, b, "dev", "staging", "alice"))
	// The artifact is in staging, but a promotion to prod must also say so.
	if _, err := c.add(c.promote(app, b, "dev", "prod", "alice", "bob")); !errors.Is(err, ErrFailedPrecondition) {
		t.Fatalf("prod from dev: %v, want ErrFailedPrecondition", err)
	}
	// prod needs two approvals: alice alone is refused, alice + bob admitted.
	if _, err := c.add(c.promote(app, b, "staging", "prod", "alice")); !errors.Is(err, ErrPermissionDenied) {
		t.Fatalf("prod with one approval: %v, want ErrPermissionDenied", err)
	}
	prod := c.mustAdd(c.promote(app, b, "staging", "prod", "alice", "bob"))

	// Search finds every event about the artifact, in order, with types.
	res, next, err := c.log.Search(context.Background(), IndexDigest, app.String(), 0, 100)
	if err != nil || next != 0 {
		t.Fatal(err, next)
	}
	var got []string
	for _, r := range res {
		got = append(got, fmt.Sprintf("%d:%s", r.Index, r.Type))
	}
	want := fmt.Sprintf("[%d:build %d:sign %d:promote %d:promote %d:promote]", b, s, dev, staging, prod)
	if fmt.Sprint(got) != want {
		t.Errorf("Search = %v, want %s", got, want)
	}
	// Pages of two.
	page, next, err := c.log.Search(context.Background(), IndexDigest, app.String(), 0, 2)
	if err != nil || len(page) != 2 || next != page[1].Index+1 {
		t.Errorf("first page %v, next %d, %v", page, next, err)
	}
	if res, _, _ := c.log.Search(context.Background(), IndexCommit, strings.Repeat("c0", 20), 0, 10); len(res) != 1 || res[0].Index != b {
		t.Errorf("search by commit = %+v", res)
	}
	if res, _, _ := c.log.Search(context.Background(), IndexBuilder, "https://ci.example.com/b", 0, 10); len(res) != 1 || res[0].Index != b {
		t.Errorf("search by builder = %+v", res)
	}

	// The proof bundle of the prod promotion verifies offline with
	// independent code: formats' tlog-proof parser, the note signature,
	// merkle/proof.
	bundle, err := c.log.ProofBundle(context.Background(), prod)
	if err != nil {
		t.Fatal(err)
	}
	var p fproof.TLogProof
	if err := p.Unmarshal(bundle); err != nil {
		t.Fatal(err)
	}
	cp := c.checkpoint()
	if !bytes.Equal(p.Checkpoint, c.log.Checkpoint().Note) || p.Index != prod {
		t.Fatalf("bundle index %d, checkpoint %q", p.Index, p.Checkpoint)
	}
	hashes := make([][]byte, len(p.Hashes))
	for i := range p.Hashes {
		hashes[i] = p.Hashes[i][:]
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, p.Index, cp.Size, rfc6962.DefaultHasher.HashLeaf(p.ExtraData), hashes, cp.Hash); err != nil {
		t.Errorf("bundle inclusion proof: %v", err)
	}
	if _, err := event.ParseEnvelope(p.ExtraData); err != nil {
		t.Errorf("bundle entry: %v", err)
	}
	c.verifyTree()
}

// TestRefusedEventsWriteNothing submits each kind of bad event and checks
// the status it gets and that the log did not change.
func TestRefusedEventsWriteNothing(t *testing.T) {
	c := newChain(t)
	app, other := artifact("app"), artifact("other")
	b := c.mustAdd(c.build(app, "ci"))
	c.mustAdd(c.build(other, "ci"))
	good := c.sign(app, b, "signer")
	var env map[string]any
	_ = json.Unmarshal(good, &env)
	sig := env["signatures"].([]any)[0].(map[string]any)["sig"].(string)
	raw, _ := base64.StdEncoding.DecodeString(sig)
	raw[len(raw)/2] ^= 1
	flipped := bytes.Replace(good, []byte(sig), []byte(base64.StdEncoding.EncodeToString(raw)), 1)

	for _, tc := range []struct {
		name  string
		entry []byte
		want  error
	}{
		{"malformed JSON", []byte(`{"payloadType":`), ErrInvalidEntry},
		{"duplicate fields", append([]byte(`{"payloadType":"x",`), good[1:]...), ErrInvalidEntry},
		{"oversize", bytes.Repeat([]byte("x"), MaxEntrySizeLimit+1), ErrInvalidEntry},
		{"bad signature", flipped, ErrPermissionDenied},
		{"unknown key", c.build(artifact("x"), "stranger"), ErrPermissionDenied},
		{"unknown key beside a good one", c.build(artifact("x"), "ci", "stranger"), ErrPermissionDenied},
		{"wrong role: builder signs a sign event", c.sign(app, b, "ci"), ErrPermissionDenied},
		{"wrong role: signer builds", c.build(artifact("y"), "signer"), ErrPermissionDenied},
		{"promotion by an approver alone", c.promote(app, b, "", "dev", "bob"), ErrPermissionDenied},
		{"missing lineage: no such build", c.sign(app, 999, "signer"), ErrFailedPrecondition},
		{"digest mismatch with the build", c.sign(artifact("z"), b, "signer"), ErrFailedPrecondition},
		{"lineage cites a build of another artifact", c.sign(other, b, "signer"), ErrFailedPrecondition},
		{"promotion skipping dev", c.promote(app, b, "dev", "staging", "alice"), ErrFailedPrecondition},
		{"promotion from the wrong environment", c.promote(app, b, "dev", "prod", "alice", "bob"), ErrFailedPrecondition},
		{"promotion to an unknown environment", c.promote(app, b, "", "qa", "alice"), ErrInvalidEntry},
		{"opaque bytes", []byte("hello"), ErrInvalidEntry},
	} {
		before := c.log.Checkpoint()
		_, err := c.add(tc.entry)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
		if after := c.log.Checkpoint(); after.Size != before.Size || !bytes.Equal(after.Note, before.Note) {
			t.Errorf("%s: the log grew to %d", tc.name, after.Size)
		}
		// A batch with the bad entry after a good one writes neither.
		if _, err := c.log.AddBatch(context.Background(), [][]byte{c.build(artifact(tc.name), "ci"), tc.entry}); !errors.Is(err, tc.want) {
			t.Errorf("%s in a batch: %v", tc.name, err)
		}
		if after := c.log.Checkpoint(); after.Size != before.Size {
			t.Errorf("%s in a batch: the log grew", tc.name)
		}
	}
	if n := len(c.verifyTree()); n != 3 {
		t.Errorf("%d entries, want the genesis keyring and the 2 builds", n)
	}
}

func TestReserializedEventIsDuplicate(t *testing.T) {
	c := newChain(t)
	env := c.build(artifact("app"), "ci")
	first := c.mustAdd(env)
	// The same envelope with other white space and field order.
	var m map[string]any
	if err := json.Unmarshal(env, &m); err != nil {
		t.Fatal(err)
	}
	alt, _ := json.MarshalIndent(map[string]any{"signatures": m["signatures"], "payload": m["payload"], "payloadType": m["payloadType"]}, "", "   ")
	res, err := c.add(alt)
	if err != nil || res.Index != first || !res.Duplicate {
		t.Errorf("re-serialized event: %+v, %v; want index %d, duplicate", res, err, first)
	}
}

func TestKeyringErrors(t *testing.T) {
	_, pub, _ := event.GenerateKey(event.KeyEd25519)
	pubJSON, _ := json.Marshal(string(pub))
	for name, ring := range map[string]string{
		"unknown field":     `{"keys":[],"x":1}`,
		"trailing data":     `{"keys":[]} {"keys":[]}`,
		"no roles":          `{"keys":[{"name":"a","publicKey":` + string(pubJSON) + `,"roles":[]}]}`,
		"unknown role":      `{"keys":[{"name":"a","publicKey":` + string(pubJSON) + `,"roles":["admin"]}]}`,
		"both key forms":    `{"keys":[{"name":"a","publicKey":` + string(pubJSON) + `,"publicKeyFile":"x","roles":["builder"]}]}`,
		"same key twice":    `{"keys":[{"name":"a","publicKey":` + string(pubJSON) + `,"roles":["builder"]},{"name":"b","publicKey":` + string(pubJSON) + `,"roles":["signer"]}]}`,
		"bad key":           `{"keys":[{"name":"a","publicKey":"nope","roles":["builder"]}]}`,
		"unknown from":      `{"keys":[],"environments":[{"name":"prod","from":"staging"}]}`,
		"environment twice": `{"keys":[],"environments":[{"name":"dev"},{"name":"dev"}]}`,
	} {
		if _, err := ParseKeyring([]byte(ring), t.TempDir()); err == nil {
			t.Errorf("%s: keyring accepted", name)
		}
	}
}

func TestSubmitterRoles(t *testing.T) {
	c := newChain(t)
	app := artifact("app")
	ci := WithSubmitter(context.Background(), Submitter{Name: "ci", Roles: []string{RoleBuilder}})
	res, err := c.log.Add(ci, c.build(app, "ci"))
	if err != nil {
		t.Fatalf("builder identity submitting a build: %v", err)
	}
	before := c.log.Checkpoint().Size
	if _, err := c.log.Add(ci, c.sign(app, res.Index, "signer")); !errors.Is(err, ErrPermissionDenied) {
		t.Errorf("builder identity submitting a sign event: %v, want ErrPermissionDenied", err)
	}
	if c.log.Checkpoint().Size != before {
		t.Error("a refused submission was written")
	}
	// An open log: opaque entries need the writer role.
	e := newEnv(t)
	if _, err := e.log.Add(ci, []byte("x")); !errors.Is(err, ErrPermissionDenied) {
		t.Errorf("builder identity writing to an open log: %v, want ErrPermissionDenied", err)
	}
	w := WithSubmitter(context.Background(), Submitter{Name: "w", Roles: []string{RoleWriter}})
	if _, err := e.log.Add(w, []byte("x")); err != nil {
		t.Errorf("writer identity: %v", err)
	}
}
