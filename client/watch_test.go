package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/provlog/provlog/client"
	"github.com/provlog/provlog/event"
	"github.com/provlog/provlog/internal/strictjson"
)

// watchKey is a submitter key for watch tests, its public key written to
// dir/name.pub.
type watchKey struct {
	sk     event.SigningKey
	id     string
	pubPEM string
}

func newWatchKey(t testing.TB, dir, name, kind string) watchKey {
	t.Helper()
	priv, pub, err := event.GenerateKey(kind)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := event.LoadSigningKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	id, err := sk.KeyID()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".pub"), pub, 0o644); err != nil {
		t.Fatal(err)
	}
	return watchKey{sk: sk, id: id, pubPEM: string(pub)}
}

// digestOf returns a sha256 digest made of one repeated byte.
func digestOf(b byte) event.Digest {
	return event.Digest{Alg: "sha256", Hex: strings.Repeat(fmt.Sprintf("%02x", b), 32)}
}

// eventSerial makes each event the helpers make distinct, so that none is
// a duplicate of another in a log.
var eventSerial atomic.Int64

// buildEvent returns a build event about subject, signed by keys.
func buildEvent(t testing.TB, subject event.Digest, builder, repo string, keys ...watchKey) []byte {
	t.Helper()
	prov, err := event.NewProvenance(event.BuildSpec{BuilderID: builder, BuildType: "https://ci.example.com/go@v1",
		SourceRepo: repo, SourceCommit: strings.Repeat("5e", 20), InvocationID: fmt.Sprint("run-", eventSerial.Add(1))})
	if err != nil {
		t.Fatal(err)
	}
	return signedEvent(t, event.ProvenancePredicateType, prov, subject, keys...)
}

// signEvent returns a sign event about subject, signed by keys.
func signEvent(t testing.TB, subject event.Digest, keys ...watchKey) []byte {
	t.Helper()
	return signedEvent(t, event.SignPredicateType, &event.SignPredicate{Algorithm: "ed25519", KeyID: fmt.Sprint("release-", eventSerial.Add(1)), Signature: "c2ln", BuildIndex: 0}, subject, keys...)
}

func signedEvent(t testing.TB, predType string, pred any, subject event.Digest, keys ...watchKey) []byte {
	t.Helper()
	st, err := event.NewStatement(predType, []event.Subject{{Name: "app.tar.gz", Digest: subject}}, pred)
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
	return env
}

// withKeyID returns the envelope with its first signature's key id set to id.
func withKeyID(t testing.TB, envelope []byte, id string) []byte {
	t.Helper()
	env, err := event.ParseEnvelope(envelope)
	if err != nil {
		t.Fatal(err)
	}
	env.Signatures[0].KeyID = id
	b, err := json.Marshal(env.DSSE())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseWatch(t *testing.T) {
	dir := t.TempDir()
	newWatchKey(t, dir, "ci", event.KeyEd25519)
	rel := newWatchKey(t, dir, "release", event.KeyECDSAP256)
	pemJSON, _ := json.Marshal(rel.pubPEM)
	good := `{
		"digests": ["` + digestOf(0xaa).String() + `", "sha512:` + strings.Repeat("b", 128) + `"],
		"builders": ["https://github.com/actions/runner/github-hosted"],
		"repositories": ["https://github.com/octo/app"],
		"keys": [
			{"name": "ci", "publicKeyFile": "ci.pub"},
			{"name": "abs", "publicKeyFile": "` + filepath.Join(dir, "ci.pub") + `"},
			{"name": "release", "publicKey": ` + string(pemJSON) + `},
			{"name": "old", "keyId": "` + strings.Repeat("0f", 32) + `"}
		]
	}`
	if _, err := client.ParseWatch([]byte(good), dir); err != nil {
		t.Fatalf("ParseWatch(good) = %v", err)
	}
	// Each rule kind alone is enough.
	for _, one := range []string{
		`{"digests": ["` + digestOf(1).String() + `"]}`,
		`{"builders": ["b"]}`,
		`{"repositories": ["git+https://github.com/octo/app.git"]}`,
		`{"keys": [{"name": "ci", "publicKeyFile": "ci.pub"}]}`,
	} {
		if _, err := client.ParseWatch([]byte(one), dir); err != nil {
			t.Errorf("ParseWatch(%s) = %v", one, err)
		}
	}
	for _, tc := range []struct{ file, want string }{
		{`{}`, "no rules"},
		{`{"digests": [], "keys": []}`, "no rules"},
		{`{"digest": ["` + digestOf(1).String() + `"]}`, "unknown field"},
		{`{"builders": ["b"]} {}`, "trailing data"},
		{`{"digests": ["` + digestOf(1).String() + `", "sha256:AB"]}`, "digests[1]"},
		{`{"digests": ["md5:` + strings.Repeat("a", 32) + `"]}`, "digests[0]"},
		{`{"builders": ["b", ""]}`, "builders[1]: empty"},
		{`{"repositories": [""]}`, "repositories[0]: empty"},
		{`{"keys": [{"publicKeyFile": "ci.pub"}]}`, "keys[0]: name: empty"},
		{`{"keys": [{"name": "ci"}]}`, "keys[0]: ci: want exactly one of publicKey, publicKeyFile and keyId, have 0"},
		{`{"keys": [{"name": "ci", "publicKeyFile": "ci.pub", "keyId": "x"}]}`, "keys[0]: ci: want exactly one"},
		{`{"keys": [{"name": "ci", "publicKeyFile": "ci.pub"}, {"name": "ci", "keyId": "x"}]}`, `keys[1]: name "ci" twice`},
		{`{"keys": [{"name": "gone", "publicKeyFile": "gone.pub"}]}`, "keys[0]: gone: open "},
		{`{"keys": [{"name": "bad", "publicKey": "not PEM"}]}`, "keys[0]: bad"},
		{`{"keys": [{"name": "long", "keyId": "` + strings.Repeat("k", event.MaxKeyID+1) + `"}]}`, "keys[0]: long: keyId"},
	} {
		_, err := client.ParseWatch([]byte(tc.file), dir)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseWatch(%s) = %v, want an error containing %q", tc.file, err, tc.want)
		}
	}
	if _, err := client.ParseWatch([]byte(`{"x": 1}`), dir); !errors.Is(err, strictjson.ErrMalformed) {
		t.Errorf("ParseWatch(unknown field) = %v, want strictjson.ErrMalformed", err)
	}

	// LoadWatch reads key files relative to the watch file, and names it.
	sub := filepath.Join(dir, "sub")
	os.Mkdir(sub, 0o755)
	newWatchKey(t, sub, "k", event.KeyEd25519)
	path := filepath.Join(sub, "watch.json")
	os.WriteFile(path, []byte(`{"keys": [{"name": "k", "publicKeyFile": "k.pub"}]}`), 0o644)
	if _, err := client.LoadWatch(path); err != nil {
		t.Errorf("LoadWatch with a key file beside it = %v", err)
	}
	os.WriteFile(path, []byte(`{"builders": [""]}`), 0o644)
	if _, err := client.LoadWatch(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("LoadWatch(bad) = %v, want an error naming %s", err, path)
	}
	if _, err := client.LoadWatch(filepath.Join(dir, "absent.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadWatch(absent) = %v, want ErrNotExist", err)
	}
}

func TestWatchMatch(t *testing.T) {
	dir := t.TempDir()
	ci := newWatchKey(t, dir, "ci", event.KeyEd25519)
	rel := newWatchKey(t, dir, "release", event.KeyECDSAP256)
	old := newWatchKey(t, dir, "old", event.KeyEd25519)
	other := newWatchKey(t, dir, "other", event.KeyEd25519)
	watched, unwatched := digestOf(0xaa), digestOf(0xbb)
	pemJSON, _ := json.Marshal(rel.pubPEM)
	w, err := client.ParseWatch([]byte(`{
		"digests": ["`+watched.String()+`"],
		"builders": ["https://github.com/actions/runner/github-hosted"],
		"repositories": ["https://github.com/octo/app"],
		"keys": [
			{"name": "ci", "publicKeyFile": "ci.pub"},
			{"name": "release", "publicKey": `+string(pemJSON)+`},
			{"name": "old", "keyId": "`+old.id+`"}
		]
	}`), dir)
	if err != nil {
		t.Fatal(err)
	}
	const (
		gh     = "https://github.com/actions/runner/github-hosted"
		runner = "https://ci.example.com/runner"
	)
	noIDs := func(env []byte) []byte {
		b, err := event.WithoutKeyIDs(env)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tc := range []struct {
		name  string
		entry []byte
		want  []client.WatchMatch
	}{
		{"digest of a sign event", signEvent(t, watched, other), []client.WatchMatch{{Rule: "digest", Value: watched.String()}}},
		{"builder", buildEvent(t, unwatched, gh, "https://git.example.com/x", other), []client.WatchMatch{{Rule: "builder", Value: gh}}},
		{"builder is exact", buildEvent(t, unwatched, gh+"@v2", "https://git.example.com/x", other), nil},
		{"repository, normalized", buildEvent(t, unwatched, runner, "git+https://github.com/octo/app.git@refs/heads/main", other),
			[]client.WatchMatch{{Rule: "repository", Value: "https://github.com/octo/app"}}},
		{"another repository of the same owner", buildEvent(t, unwatched, runner, "https://github.com/octo/app2", other), nil},
		{"key by its public key (Ed25519)", signEvent(t, unwatched, ci), []client.WatchMatch{{Rule: "key", Value: "ci"}}},
		{"key by its public key (ECDSA P-256)", signEvent(t, unwatched, rel), []client.WatchMatch{{Rule: "key", Value: "release"}}},
		{"key id-less signature matched by the public key", noIDs(signEvent(t, unwatched, ci)), []client.WatchMatch{{Rule: "key", Value: "ci"}}},
		{"signature under another key id, verified by the public key", withKeyID(t, signEvent(t, unwatched, ci), "cosign-hint"), []client.WatchMatch{{Rule: "key", Value: "ci"}}},
		{"another key claiming ci's key id", withKeyID(t, signEvent(t, unwatched, other), ci.id), []client.WatchMatch{{Rule: "key", Value: "ci"}}},
		{"key by key id", signEvent(t, unwatched, old), []client.WatchMatch{{Rule: "key", Value: "old"}}},
		{"key by key id, the signature without one", noIDs(signEvent(t, unwatched, old)), nil},
		{"second signer", signEvent(t, unwatched, other, ci), []client.WatchMatch{{Rule: "key", Value: "ci"}}},
		{"every rule at once", buildEvent(t, watched, gh, "https://github.com/octo/app", ci, rel, old), []client.WatchMatch{
			{Rule: "digest", Value: watched.String()}, {Rule: "builder", Value: gh}, {Rule: "repository", Value: "https://github.com/octo/app"},
			{Rule: "key", Value: "ci"}, {Rule: "key", Value: "release"}, {Rule: "key", Value: "old"}}},
		{"not watched", buildEvent(t, unwatched, runner, "https://git.example.com/x", other), nil},
		{"opaque entry", []byte("sha256:" + watched.Hex + " " + gh), nil},
		{"JSON naming the digest", []byte(`{"subject":[{"digest":{"sha256":"` + watched.Hex + `"}}]}`), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := w.Match(tc.entry); !slices.Equal(got, tc.want) {
				t.Errorf("Match = %v, want %v", got, tc.want)
			}
		})
	}
}
