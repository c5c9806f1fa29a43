package client_test

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/provlog/provlog/client"
	"github.com/provlog/provlog/event"
	"github.com/provlog/provlog/policy"
	provlogv1 "github.com/provlog/provlog/proto/provlog/v1"
)

// trustLog is a real provlogd with a trust history:
//
//	0 genesis keyring (ci builder, sec security, admins root1 and root2, 2 of 2)
//	1 build of A by ci
//	2 keyring: ci rotated to ci2 (root1, root2)
//	3 build of B by ci2
//	4 revoke ci, compromised since 1 (root1, root2)
//	5 quarantine B (sec)
//	6 unquarantine B (root1, root2)
type trustLog struct {
	d                          *provlogd
	ci, ci2, sec, root1, root2 watchKey
}

func newTrustLog(t *testing.T) *trustLog {
	t.Helper()
	ctx := testContext(t)
	dir := t.TempDir()
	l := &trustLog{}
	for name, k := range map[string]*watchKey{"ci": &l.ci, "ci2": &l.ci2, "sec": &l.sec, "root1": &l.root1, "root2": &l.root2} {
		*k = newWatchKey(t, dir, name, event.KeyEd25519)
	}
	writeTestFile(t, filepath.Join(dir, "keyring.json"), `{
  "keys": [
    {"name": "ci", "publicKeyFile": "ci.pub", "roles": ["builder"]},
    {"name": "sec", "publicKeyFile": "sec.pub", "roles": ["security"]},
    {"name": "root1", "publicKeyFile": "root1.pub", "roles": []},
    {"name": "root2", "publicKeyFile": "root2.pub", "roles": []}
  ],
  "environments": [{"name": "dev"}],
  "admins": {"keys": ["root1", "root2"], "threshold": 2}
}`)
	l.d = startProvlogd(t, filepath.Join(dir, "log"), "--admission", "attestations", "--keyring", filepath.Join(dir, "keyring.json"))
	c := dial(t, l.d)
	for i, e := range [][]byte{
		buildEvent(t, digestOf(0xa1), "https://ci.example.com/r", "https://git.example.com/app", l.ci),
		l.keyring(t, l.ci2),
		buildEvent(t, digestOf(0xb2), "https://ci.example.com/r", "https://git.example.com/app", l.ci2),
		trustEvent(t, mustStatement(event.NewRevokeStatement(&event.RevokePredicate{KeyID: l.ci.id, CompromisedSince: 1, Reason: "leaked"})), l.root1, l.root2),
		trustEvent(t, quarantine(t, digestOf(0xb2), event.ActionQuarantine), l.sec),
		trustEvent(t, quarantine(t, digestOf(0xb2), event.ActionUnquarantine), l.root1, l.root2),
	} {
		res, err := c.Append(ctx, e)
		if err != nil || res.Index != uint64(i+1) {
			t.Fatalf("entry %d: %+v, %v", i+1, res, err)
		}
	}
	if _, err := c.WaitForInclusion(ctx, 6); err != nil {
		t.Fatal(err)
	}
	return l
}

// keyring returns the keyring event rotating ci to builder, signed by
// both admins.
func (l *trustLog) keyring(t *testing.T, builder watchKey) []byte {
	t.Helper()
	p := &event.KeyringPredicate{
		Keys: []event.KeyringKey{
			{Name: "ci2", PublicKey: builder.pubPEM, Roles: []string{"builder"}},
			{Name: "sec", PublicKey: l.sec.pubPEM, Roles: []string{"security"}},
			{Name: "root1", PublicKey: l.root1.pubPEM},
			{Name: "root2", PublicKey: l.root2.pubPEM},
		},
		Environments: []event.KeyringEnvironment{{Name: "dev"}},
		Admins:       event.KeyringAdmins{Keys: []string{"root1", "root2"}, Threshold: 2},
	}
	return trustEvent(t, mustStatement(event.NewKeyringStatement(p)), l.root1, l.root2)
}

func mustStatement(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func quarantine(t *testing.T, d event.Digest, action string) []byte {
	t.Helper()
	return mustStatement(event.NewQuarantineStatement([]event.Subject{{Name: "b", Digest: d}}, &event.QuarantinePredicate{Action: action, Reason: "CVE-2026-0001"}))
}

func trustEvent(t *testing.T, statement []byte, keys ...watchKey) []byte {
	t.Helper()
	var sks []event.SigningKey
	for _, k := range keys {
		sks = append(sks, k.sk)
	}
	env, err := event.SignEnvelope(context.Background(), statement, sks...)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func writeTestFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkTrust checks what a replay of the trust log found.
func checkTrust(t *testing.T, l *trustLog, tr *client.Trust) {
	t.Helper()
	if len(tr.Violations) != 0 {
		t.Errorf("violations: %+v", tr.Violations)
	}
	var idx []uint64
	for _, e := range tr.Events {
		idx = append(idx, e.Index)
	}
	if !slices.Equal(idx, []uint64{0, 2, 4, 5, 6}) {
		t.Errorf("trust events %v, want [0 2 4 5 6]", idx)
	}
	h := tr.History
	var vs []string
	for _, v := range h.Versions() {
		vs = append(vs, fmt.Sprint(v.Index, v.ByLog))
	}
	if fmt.Sprint(vs) != "[0 true 2 false]" {
		t.Errorf("versions %v, want the genesis by the log key and entry 2 by the admins", vs)
	}
	for index, want := range map[uint64]string{0: l.ci.id, 1: l.ci.id, 2: l.ci.id, 3: l.ci2.id, 100: l.ci2.id} {
		ks := h.KeyringAt(index).Keys()
		if ks[0].ID != want {
			t.Errorf("KeyringAt(%d) names %s first, want %s", index, ks[0].Name, want)
		}
	}
	if r, ok := h.Revocation(l.ci.id); !ok || r.Index != 4 || r.CompromisedSince != 1 {
		t.Errorf("revocation of ci: %+v, %v", r, ok)
	}
	if q := tr.Quarantines(6); len(q) != 1 || q[0].Index != 5 || q[0].Digest != digestOf(0xb2).String() {
		t.Errorf("Quarantines(6) = %+v, want the quarantine of entry 5", q)
	}
	if q := tr.Quarantines(7); len(q) != 0 {
		t.Errorf("Quarantines(7) = %+v, want none (lifted by entry 6)", q)
	}
	if _, ok := h.QuarantinedNow(digestOf(0xb2).String()); ok {
		t.Error("B still quarantined after its unquarantine")
	}
}

// TestReplay replays the trust log from its entries over gRPC and over
// tiles, and with a Follower: no violation, the keyring in force at every
// index, the revocation and the lifted quarantine; every entry's verdict
// (or the callback's); the build ci signed before its revocation no
// longer counts.
func TestReplay(t *testing.T) {
	ctx := testContext(t)
	l := newTrustLog(t)
	for _, source := range []string{"grpc", "tiles"} {
		t.Run(source, func(t *testing.T) {
			cfg := client.ReplayConfig{VerifierKey: l.d.VerifierKey}
			if source == "grpc" {
				cfg.Client = dial(t, l.d)
			} else {
				cfg.TilesURL = l.d.HTTPURL
			}
			tr, err := client.Replay(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			checkTrust(t, l, tr)
			if tr.Checkpoint.Size != 7 || tr.Entries != 7 || len(tr.Verdicts) != 7 || tr.BeforeHistory != 0 {
				t.Errorf("replayed %d entries of %d, %d verdicts, %d before the history", tr.Entries, tr.Checkpoint.Size, len(tr.Verdicts), tr.BeforeHistory)
			}
			for i, v := range tr.Verdicts {
				if v.Index != uint64(i) || v.Err != nil {
					t.Errorf("verdict %d: %+v", i, v)
				}
			}
			if got := tr.Verdicts[1].Signers; len(got) != 1 || got[0].ID != l.ci.id {
				t.Errorf("entry 1 signers: %v", got)
			}
			var seen []string
			cfg.OnVerdict = func(v policy.Verdict) error {
				seen = append(seen, v.Type)
				return nil
			}
			tr, err = client.Replay(ctx, cfg)
			if err != nil || tr.Verdicts != nil {
				t.Fatalf("Replay with OnVerdict: %v, %d verdicts kept", err, len(tr.Verdicts))
			}
			if fmt.Sprint(seen) != "[keyring build keyring build revoke quarantine unquarantine]" {
				t.Errorf("OnVerdict saw %v", seen)
			}
			stop := errors.New("stop")
			cfg.OnVerdict = func(policy.Verdict) error { return stop }
			if _, err := client.Replay(ctx, cfg); !errors.Is(err, stop) {
				t.Errorf("Replay with a failing OnVerdict = %v", err)
			}
		})
	}
	t.Run("follower", func(t *testing.T) {
		f := follower(t, l.d, "tiles", func(c *client.FollowerConfig) { c.Trust = true })
		if f.Trust() != nil {
			t.Error("Trust before the first poll is not nil")
		}
		if _, err := f.Poll(ctx); err != nil {
			t.Fatal(err)
		}
		checkTrust(t, l, f.Trust())
		if plain := follower(t, l.d, "tiles", nil); plain.Trust() != nil {
			t.Error("a follower without Trust has a trust history")
		}
	})
	t.Run("revoked build no longer counts", func(t *testing.T) {
		tr, err := client.Replay(ctx, client.ReplayConfig{VerifierKey: l.d.VerifierKey, TilesURL: l.d.HTTPURL})
		if err != nil {
			t.Fatal(err)
		}
		entries, err := dial(t, l.d).Entries(ctx, 1, 3)
		if err != nil {
			t.Fatal(err)
		}
		for i, want := range map[int]bool{0: false, 2: true} {
			env, _ := event.ParseEnvelope(entries[i])
			ev, _ := event.ParseStatement(env.Payload)
			if _, counts := tr.History.Effective(ctx, uint64(1+i), env, ev); counts != want {
				t.Errorf("build at %d counts = %v, want %v", 1+i, counts, want)
			}
		}
	})
	t.Run("tampered entry", func(t *testing.T) {
		_, err := client.Replay(ctx, client.ReplayConfig{VerifierKey: l.d.VerifierKey, TilesURL: tamperProxy(t, l.d.HTTPURL, "tile/entries/000.p/7")})
		if !errors.Is(err, client.ErrInclusionProof) {
			t.Errorf("Replay of a tampered bundle = %v, want ErrInclusionProof", err)
		}
	})
	t.Run("another log key", func(t *testing.T) {
		other := startProvlogd(t, t.TempDir())
		_, err := client.Replay(ctx, client.ReplayConfig{VerifierKey: other.VerifierKey, TilesURL: l.d.HTTPURL})
		if !errors.Is(err, client.ErrLogSignature) {
			t.Errorf("Replay with another log's key = %v, want ErrLogSignature", err)
		}
	})
}

// noteKey is a log's note signing key as a DSSE key, to sign a genesis
// keyring as the log would.
type noteKey struct{ s note.Signer }

func (k noteKey) Sign(_ context.Context, data []byte) ([]byte, error) { return k.s.Sign(data) }
func (k noteKey) Verify(context.Context, []byte, []byte) error        { return errors.New("sign only") }
func (k noteKey) KeyID() (string, error)                              { return k.s.Name(), nil }
func (k noteKey) Public() crypto.PublicKey                            { return nil }

// TestReplayFindsViolations replays a log with open admission, which
// takes anything: trust events the rules refuse are found, each with its
// reason, and change nothing; entries before the first keyring event
// are taken as admitted.
func TestReplayFindsViolations(t *testing.T) {
	ctx := testContext(t)
	dir := t.TempDir()
	d := startProvlogd(t, filepath.Join(dir, "log"), "--admission", "open")
	skey, err := os.ReadFile(filepath.Join(d.DataDir, "log.key"))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(string(skey))
	if err != nil {
		t.Fatal(err)
	}
	ci, admin, intruder := newWatchKey(t, dir, "ci", event.KeyEd25519), newWatchKey(t, dir, "admin", event.KeyEd25519), newWatchKey(t, dir, "x", event.KeyEd25519)
	genesis := &event.KeyringPredicate{
		Keys:         []event.KeyringKey{{Name: "ci", PublicKey: ci.pubPEM, Roles: []string{"builder"}}, {Name: "admin", PublicKey: admin.pubPEM}},
		Environments: []event.KeyringEnvironment{{Name: "dev"}},
		Admins:       event.KeyringAdmins{Keys: []string{"admin"}, Threshold: 1},
	}
	byLog, err := event.SignEnvelope(ctx, mustStatement(event.NewKeyringStatement(genesis)), noteKey{signer})
	if err != nil {
		t.Fatal(err)
	}
	revoke := mustStatement(event.NewRevokeStatement(&event.RevokePredicate{KeyID: ci.id, CompromisedSince: 0, Reason: "r"}))
	c := dial(t, d)
	for _, e := range [][]byte{
		[]byte("an opaque entry"), // 0: before the history
		byLog,                     // 1: the genesis
		buildEvent(t, digestOf(1), "https://ci.example.com/r", "https://git.example.com/app", ci), // 2
		trustEvent(t, revoke, intruder), // 3: not an admin's
		buildEvent(t, digestOf(2), "https://ci.example.com/r", "https://git.example.com/app", intruder), // 4: no keyring key
		[]byte("another opaque entry"), // 5: no event
		trustEvent(t, revoke, admin),   // 6: fine
		buildEvent(t, digestOf(3), "https://ci.example.com/r", "https://git.example.com/app", ci), // 7: revoked
	} {
		if _, err := c.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.WaitForInclusion(ctx, 7); err != nil {
		t.Fatal(err)
	}
	tr, err := client.Replay(ctx, client.ReplayConfig{VerifierKey: d.VerifierKey, Client: c})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, v := range tr.Violations {
		got = append(got, fmt.Sprint(v.Index, " ", errors.Is(v.Err, policy.ErrNotAuthorized)))
		if tr.Refused(v.Index) != v.Err {
			t.Errorf("Refused(%d) = %v, want %v", v.Index, tr.Refused(v.Index), v.Err)
		}
	}
	if fmt.Sprint(got) != "[3 true 4 true 5 false 7 true]" {
		t.Errorf("violations %v, want entries 3, 4, 7 not authorized and 5 no event:\n%+v", got, tr.Violations)
	}
	if tr.Refused(2) != nil || tr.BeforeHistory != 1 || !tr.Verdicts[0].BeforeHistory {
		t.Errorf("Refused(2) = %v, BeforeHistory %d", tr.Refused(2), tr.BeforeHistory)
	}
	if r, ok := tr.History.Revocation(ci.id); !ok || r.Index != 6 {
		t.Errorf("revocation %+v, %v: want the admin's, entry 6", r, ok)
	}
}

// TestTrustHistory builds the trust log's history from its search, each
// trust event proven: the same history as the replay. A search that
// sends a tampered trust event, one whose proof the log does not give, or
// an event that is no trust event, is an error.
func TestTrustHistory(t *testing.T) {
	ctx := testContext(t)
	l := newTrustLog(t)
	tr, err := client.TrustHistory(ctx, dial(t, l.d), client.TrustHistoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkTrust(t, l, tr)
	if tr.Entries != 5 || tr.Checkpoint.Size != 7 {
		t.Errorf("%d trust events proven in the tree of size %d", tr.Entries, tr.Checkpoint.Size)
	}
	if _, err := client.TrustHistory(ctx, dial(t, l.d), client.TrustHistoryOptions{WitnessPolicy: []byte("witness w1 w1.example+01234567+AQ== https://w1.example/\nquorum w1\n")}); err == nil {
		t.Error("TrustHistory with an unmet witness policy: no error")
	}
	upstream := dial(t, l.d).LogClient()
	for name, tc := range map[string]struct {
		proxy trustProxy
		want  error
	}{
		"tampered entry":   {trustProxy{tamper: 4}, client.ErrInclusionProof},
		"no proof":         {trustProxy{noProof: 5}, nil},
		"not a trust ev":   {trustProxy{swap: 1}, client.ErrInclusionProof},
		"not a trust type": {trustProxy{relabel: 3}, client.ErrLogMisbehaved},
	} {
		t.Run(name, func(t *testing.T) {
			tc.proxy.up = upstream
			c := fakeClient(t, &tc.proxy, client.Config{VerifierKey: l.d.VerifierKey})
			_, err := client.TrustHistory(ctx, c, client.TrustHistoryOptions{})
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Errorf("TrustHistory = %v, want an error wrapping %v", err, tc.want)
			}
		})
	}
}

// trustProxy forwards checkpoints, proofs and searches to a real log,
// altering the trust events' search: flipping a byte of the entry at
// tamper, refusing the proof of noProof, sending the entry at swap (an
// event of another index) in place of the first result, or sending the
// build at relabel as a trust event at its own index. Zero: no change.
type trustProxy struct {
	provlogv1.UnimplementedLogServer
	up                             provlogv1.LogClient
	tamper, noProof, swap, relabel uint64
}

func (p *trustProxy) GetCheckpoint(ctx context.Context, req *provlogv1.GetCheckpointRequest) (*provlogv1.GetCheckpointResponse, error) {
	return p.up.GetCheckpoint(ctx, req)
}

func (p *trustProxy) GetInclusionProof(ctx context.Context, req *provlogv1.GetInclusionProofRequest) (*provlogv1.GetInclusionProofResponse, error) {
	if p.noProof != 0 && req.GetIndex() == p.noProof {
		return nil, status.Error(codes.NotFound, "no proof today")
	}
	return p.up.GetInclusionProof(ctx, req)
}

func (p *trustProxy) Search(ctx context.Context, req *provlogv1.SearchRequest) (*provlogv1.SearchResponse, error) {
	resp, err := p.up.Search(ctx, req)
	if err != nil {
		return nil, err
	}
	var out []*provlogv1.SearchResult
	for _, r := range resp.GetResults() {
		if p.tamper != 0 && r.GetIndex() == p.tamper {
			e := slices.Clone(r.GetEntry())
			e[len(e)/2] ^= 0x01
			r = &provlogv1.SearchResult{Index: r.GetIndex(), EventType: r.GetEventType(), Entry: e}
		}
		if p.swap != 0 && len(out) == 0 {
			r = &provlogv1.SearchResult{Index: r.GetIndex(), EventType: r.GetEventType(), Entry: p.entry(ctx, p.swap)}
		}
		if p.relabel != 0 && len(out) > 0 && out[len(out)-1].GetIndex() < p.relabel && r.GetIndex() > p.relabel {
			out = append(out, &provlogv1.SearchResult{Index: p.relabel, EventType: "keyring", Entry: p.entry(ctx, p.relabel)})
		}
		out = append(out, r)
	}
	resp.Results = out
	return resp, nil
}

func (p *trustProxy) entry(ctx context.Context, i uint64) []byte {
	s, err := p.up.GetEntries(ctx, &provlogv1.GetEntriesRequest{Start: i, Count: 1})
	if err != nil {
		panic(err)
	}
	r, err := s.Recv()
	if err != nil {
		panic(err)
	}
	return r.GetEntries()[0]
}
