package client

// The watch file, which a Monitor matches every new entry against:
//
//	{
//	  "digests": ["sha256:<64 hex>", "sha512:<128 hex>"],
//	  "builders": ["https://github.com/actions/runner/github-hosted"],
//	  "repositories": ["https://github.com/octo/app"],
//	  "keys": [
//	    {"name": "ci", "publicKeyFile": "ci.pub"},
//	    {"name": "release", "publicKey": "-----BEGIN PUBLIC KEY-----\n…"},
//	    {"name": "old", "keyId": "<key id>"}
//	  ]
//	}
//
// Every member is optional, but the file must hold at least one rule.
// Unknown members and trailing data are refused
// (internal/strictjson), so a misspelt rule is an error, not a rule that
// never fires. An event matches
//
//   - a digest if one of its subjects has it ("<algorithm>:<lowercase
//     hex>", sha256 or sha512, as in-toto subjects name artifacts);
//   - a builder if it is a build event whose SLSA builder id is exactly it;
//   - a repository if it is a build event whose source repository equals
//     it once both are normalized (event.NormalizeRepo: no "git+" prefix,
//     "@ref" or ".git" suffix), so git+https://github.com/octo/app@refs/heads/main
//     matches https://github.com/octo/app;
//   - a key given by its PEM public key (Ed25519 or ECDSA P-256; a relative
//     publicKeyFile is relative to the watch file) if one of the envelope's
//     signatures verifies with it, whatever key id the signature carries
//     (key ids are hints: cosign writes none, or its own), or if a
//     signature carries the key's securesystemslib key id without
//     verifying (someone signing in the key's name with another key);
//   - a key given by "keyId" if a signature carries exactly that key id
//     (taken on the log's word: the log verified the signature against its
//     keyring, the watcher cannot).
//
// Each key has exactly one of publicKey, publicKeyFile and keyId, and a
// name, unique in the file, that alerts report. Entries that are not
// events (not a DSSE envelope carrying an in-toto statement that
// event.ParseStatement accepts) never match.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/provlog/provlog/event"
	"github.com/provlog/provlog/internal/strictjson"
)

// Watch rules, as WatchMatch.Rule names them.
const (
	WatchDigest     = "digest"
	WatchBuilder    = "builder"
	WatchRepository = "repository"
	WatchKey        = "key"
)

// Watch is a set of digests, builders, source repositories and signer
// keys whose events a Monitor alerts on (see the file format above). It
// is immutable and may be used from any goroutine.
type Watch struct {
	digests      []event.Digest
	builders     []string
	repositories []watchedRepo
	keys         []watchedKey
}

type watchedRepo struct {
	listed, normalized string
}

// watchedKey is a key of a watch: its name, its key id, and its public key
// (nil for a key given by key id only).
type watchedKey struct {
	name, id string
	key      event.Key
}

// WatchMatch is one rule an event matched.
type WatchMatch struct {
	// Rule is WatchDigest, WatchBuilder, WatchRepository or WatchKey.
	Rule string `json:"rule"`
	// Value is the digest, builder id or repository as the watch file
	// lists it, or the key's name.
	Value string `json:"value"`
}

// watchFile is the JSON of a watch file.
type watchFile struct {
	Digests      []string `json:"digests"`
	Builders     []string `json:"builders"`
	Repositories []string `json:"repositories"`
	Keys         []struct {
		Name          string `json:"name"`
		PublicKey     string `json:"publicKey"`
		PublicKeyFile string `json:"publicKeyFile"`
		KeyID         string `json:"keyId"`
	} `json:"keys"`
}

// LoadWatch reads and checks a watch file.
func LoadWatch(path string) (*Watch, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading watch file: %w", err)
	}
	w, err := ParseWatch(b, filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("watch file %s: %w", path, err)
	}
	return w, nil
}

// ParseWatch parses a watch file; relative key files are read from dir.
// Errors name the field.
func ParseWatch(b []byte, dir string) (*Watch, error) {
	var f watchFile
	if err := strictjson.Decode(b, &f); err != nil {
		return nil, err
	}
	w := &Watch{}
	for i, s := range f.Digests {
		d, err := event.ParseDigest(s)
		if err != nil {
			return nil, fmt.Errorf("digests[%d]: %w", i, err)
		}
		w.digests = append(w.digests, d)
	}
	for i, s := range f.Builders {
		if s == "" {
			return nil, fmt.Errorf("builders[%d]: empty", i)
		}
		w.builders = append(w.builders, s)
	}
	for i, s := range f.Repositories {
		if event.NormalizeRepo(s) == "" {
			return nil, fmt.Errorf("repositories[%d]: empty", i)
		}
		w.repositories = append(w.repositories, watchedRepo{listed: s, normalized: event.NormalizeRepo(s)})
	}
	for i, k := range f.Keys {
		wk, err := parseWatchedKey(k.Name, k.PublicKey, k.PublicKeyFile, k.KeyID, dir)
		if err != nil {
			return nil, fmt.Errorf("keys[%d]: %w", i, err)
		}
		if slices.ContainsFunc(w.keys, func(o watchedKey) bool { return o.name == wk.name }) {
			return nil, fmt.Errorf("keys[%d]: name %q twice", i, wk.name)
		}
		w.keys = append(w.keys, wk)
	}
	if len(w.digests)+len(w.builders)+len(w.repositories)+len(w.keys) == 0 {
		return nil, errors.New("no rules: want at least one of digests, builders, repositories and keys")
	}
	return w, nil
}

// parseWatchedKey checks one key of a watch file, loading its public key.
func parseWatchedKey(name, pemText, file, id, dir string) (watchedKey, error) {
	n := 0
	for _, s := range []string{pemText, file, id} {
		if s != "" {
			n++
		}
	}
	switch {
	case name == "":
		return watchedKey{}, errors.New("name: empty")
	case n != 1:
		return watchedKey{}, fmt.Errorf("%s: want exactly one of publicKey, publicKeyFile and keyId, have %d", name, n)
	case len(id) > event.MaxKeyID:
		return watchedKey{}, fmt.Errorf("%s: keyId: %d bytes, want <= %d", name, len(id), event.MaxKeyID)
	case id != "":
		return watchedKey{name: name, id: id}, nil
	}
	k, id, err := event.LoadKeyRef(pemText, file, dir)
	if err != nil {
		return watchedKey{}, fmt.Errorf("%s: %w", name, err)
	}
	return watchedKey{name: name, id: id, key: k}, nil
}

// Match returns the rules the entry matches, in the order digests,
// builders, repositories, keys (each in the file's order), or nil if it
// matches none or is not an event.
func (w *Watch) Match(entry []byte) []WatchMatch {
	_, ms := w.match(entry)
	return ms
}

// match parses entry and returns the event and the rules it matches; the
// event is nil if entry is not one.
func (w *Watch) match(entry []byte) (*event.Event, []WatchMatch) {
	env, err := event.ParseEnvelope(entry)
	if err != nil {
		return nil, nil
	}
	ev, err := event.ParseStatement(env.Payload)
	if err != nil {
		return nil, nil
	}
	var ms []WatchMatch
	for _, d := range w.digests {
		if ev.HasSubject(d) {
			ms = append(ms, WatchMatch{WatchDigest, d.String()})
		}
	}
	if b := ev.Build; b != nil {
		for _, id := range w.builders {
			if b.BuilderID == id {
				ms = append(ms, WatchMatch{WatchBuilder, id})
			}
		}
		for _, r := range w.repositories {
			if b.SourceRepo != "" && event.NormalizeRepo(b.SourceRepo) == r.normalized {
				ms = append(ms, WatchMatch{WatchRepository, r.listed})
			}
		}
	}
	for _, k := range w.keys {
		if k.signed(env) {
			ms = append(ms, WatchMatch{WatchKey, k.name})
		}
	}
	return ev, ms
}

// signed reports whether one of the envelope's signatures is in k's name:
// it carries k's key id, or it verifies with k's public key.
func (k watchedKey) signed(env *event.Envelope) bool {
	var pae []byte
	for _, s := range env.Signatures {
		if s.KeyID == k.id {
			return true
		}
		if k.key == nil {
			continue
		}
		if pae == nil {
			pae = env.PAE()
		}
		// DSSE verification is pure computation; the context is unused.
		if k.key.Verify(context.Background(), pae, s.Sig) == nil {
			return true
		}
	}
	return false
}
