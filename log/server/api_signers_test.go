package server

import (
	"context"
	"crypto"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/provlog/provlog/event"
	"github.com/provlog/provlog/log"
	provlogv1 "github.com/provlog/provlog/proto/provlog/v1"
	"github.com/provlog/provlog/storage"
)

// signerNames is "name=keyId" of each signer of d, or "log key".
func signerNames(d *provlogv1.DecodedEntry) string {
	var s []string
	if d.LogKey {
		s = append(s, "log key")
	}
	for _, k := range d.Signers {
		s = append(s, k.Name+"="+k.KeyId)
	}
	return strings.Join(s, ",")
}

// noteDSSEKey signs DSSE envelopes with a log's checkpoint key, as the log
// signs its genesis keyring.
type noteDSSEKey struct{ s note.Signer }

func (k noteDSSEKey) Sign(_ context.Context, data []byte) ([]byte, error) { return k.s.Sign(data) }
func (k noteDSSEKey) Verify(context.Context, []byte, []byte) error {
	return errors.New("not used")
}
func (k noteDSSEKey) KeyID() (string, error) {
	return fmt.Sprintf("%s+%08x", k.s.Name(), k.s.KeyHash()), nil
}
func (k noteDSSEKey) Public() crypto.PublicKey { return nil }

// TestAPIDecodedSigners: decoded entries name their signers by the
// keyring in force at their index, over GetEntries and Search alike: the
// genesis keyring is the log key's; the events are by ci, signer and
// alice; after a keyring change renaming alice, her next promotion is by
// the new name while her first keeps the old one (the keyring in force at
// each index, not the latest); an envelope written as cosign writes it
// (no key ids) still gets its signer.
func TestAPIDecodedSigners(t *testing.T) {
	a := newAPILog(t)
	ctx := context.Background()
	entries := func(start, count uint64) []*provlogv1.DecodedEntry {
		t.Helper()
		var resp provlogv1.GetEntriesResponse
		getJSON(t, a.url, fmt.Sprintf("/api/v1/entries?start=%d&count=%d&decode=true", start, count), &resp)
		return resp.Decoded
	}
	got := entries(0, a.dev+1)
	want := map[uint64]string{0: "log key", a.build: "ci=" + a.keyID("ci"), a.sign: "signer=" + a.keyID("signer"), a.dev: "alice=" + a.keyID("alice")}
	for i, w := range want {
		if s := signerNames(got[i]); s != w {
			t.Errorf("entry %d (%s): signers %q, want %q", i, got[i].EventType, s, w)
		}
	}

	// A keyring change (the log key's, as the keyring names no admins)
	// renaming alice.
	env, err := event.ParseEntry(a.entry(0))
	if err != nil {
		t.Fatal(err)
	}
	ev, err := event.ParseStatement(env.Payload)
	if err != nil {
		t.Fatal(err)
	}
	kp := *ev.Keyring
	kp.Keys = slices.Clone(kp.Keys)
	for i := range kp.Keys {
		if kp.Keys[i].Name == "alice" {
			kp.Keys[i].Name = "alice.smith"
		}
	}
	st, err := event.NewKeyringStatement(&kp)
	if err != nil {
		t.Fatal(err)
	}
	change, err := event.SignEnvelope(ctx, st, noteDSSEKey{a.logSigner})
	if err != nil {
		t.Fatal(err)
	}
	changed := a.add(change)
	staging := a.envelope(event.PromotePredicateType, &event.PromotePredicate{To: "dev", BuildIndex: a.build, Decision: event.DecisionApproved}, "alice")
	cosignStyle, err := event.WithoutKeyIDs(staging)
	if err != nil {
		t.Fatal(err)
	}
	again := a.add(cosignStyle)

	got = entries(a.dev, again-a.dev+1)
	for _, c := range []struct {
		index uint64
		want  string
	}{{a.dev, "alice=" + a.keyID("alice")}, {changed, "log key"}, {again, "alice.smith=" + a.keyID("alice")}} {
		d := got[c.index-a.dev]
		if s := signerNames(d); s != c.want {
			t.Errorf("entry %d (%s): signers %q, want %q", c.index, d.EventType, s, c.want)
		}
	}
	if d := got[again-a.dev]; len(d.Signatures) != 1 || d.Signatures[0].KeyId != "" {
		t.Errorf("the cosign-style envelope's signatures %v, want one without a key id", d.Signatures)
	}

	// Search with decode: the same readings.
	var sr provlogv1.SearchResponse
	getJSON(t, a.url, "/api/v1/search?digest="+a.artifact.String()+"&decode=true", &sr)
	var bySearch []string
	for _, r := range sr.Results {
		bySearch = append(bySearch, fmt.Sprintf("%d:%s", r.Index, signerNames(r.Decoded)))
	}
	wantSearch := []string{fmt.Sprintf("%d:ci=%s", a.build, a.keyID("ci")), fmt.Sprintf("%d:signer=%s", a.sign, a.keyID("signer")),
		fmt.Sprintf("%d:alice=%s", a.dev, a.keyID("alice")), fmt.Sprintf("%d:alice.smith=%s", again, a.keyID("alice"))}
	if !slices.Equal(bySearch, wantSearch) {
		t.Errorf("search by digest, decoded: %q, want %q", bySearch, wantSearch)
	}
	sr.Reset()
	getJSON(t, a.url, "/api/v1/search?trustEvents=true&decode=true", &sr)
	if len(sr.Results) != 2 || !sr.Results[0].Decoded.LogKey || !sr.Results[1].Decoded.LogKey || len(sr.Results[1].Decoded.Signers) != 0 {
		t.Errorf("search trustEvents, decoded: %v", &sr)
	}
}

// TestAPIDecodedSignersOpenAdmission: a log admitting any entry has no
// keyring, so a decoded envelope has signatures but no signers.
func TestAPIDecodedSignersOpenAdmission(t *testing.T) {
	st, err := storage.Open(t.TempDir(), storage.Options{CacheBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	skey, _, _ := note.GenerateKey(rand.Reader, "example.com/open")
	signer, _ := note.NewSigner(skey)
	l, err := log.Open(context.Background(), log.Config{Origin: "example.com/open", Signer: signer}, st)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(); st.Close() })
	a := newAPILog(t) // for an envelope signed by a key of its keyring
	entry := a.entry(a.build)
	res, err := l.Add(context.Background(), entry)
	if err != nil {
		t.Fatal(err)
	}
	d := decodeEntry(context.Background(), l, res.Index, entry)
	if d.EventType != event.TypeBuild || len(d.Signatures) != 1 || len(d.Signers) != 0 || d.LogKey {
		t.Errorf("an envelope in an open log: %v", d)
	}
	// Nor is a signature by the log key recognized: there is no history.
	if d := decodeEntry(context.Background(), l, 0, a.entry(0)); d.LogKey || len(d.Signers) != 0 {
		t.Errorf("the attestation log's genesis in an open log: %v", d)
	}
}
