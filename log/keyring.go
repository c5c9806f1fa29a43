package log

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/provlog/provlog/event"
	"github.com/provlog/provlog/internal/strictjson"
)

// Roles a keyring grants.
const (
	RoleBuilder  = "builder"  // may submit build events
	RoleSigner   = "signer"   // may submit sign events
	RolePromoter = "promoter" // may submit and approve promote events
	RoleApprover = "approver" // may approve (co-sign) promote events
	RoleAttester = "attester" // may submit SBOMs, test results and links
	RoleVerifier = "verifier" // may submit SLSA verification summaries
)

// rolePredicateTypes are the predicate types each role admits unless the
// keyring narrows them.
var rolePredicateTypes = map[string][]string{
	RoleBuilder:  {event.ProvenancePredicateType},
	RoleSigner:   {event.SignPredicateType},
	RolePromoter: {event.PromotePredicateType},
	RoleApprover: {event.PromotePredicateType},
	RoleAttester: {event.SPDXPredicateType, event.CycloneDXPredicateType, event.SBOMRefPredicateType, event.TestResultPredicateType, event.LinkPredicateType},
	RoleVerifier: {event.VSAPredicateType},
}

// matchPredicateType reports whether a listed predicate type admits t: the
// same, or t is the listed SBOM type with a version suffix.
func matchPredicateType(listed, t string) bool {
	if listed == t {
		return true
	}
	v, ok := strings.CutPrefix(t, listed+"/v")
	return ok && v != "" && event.TypeOf(t) == event.TypeSBOM && event.TypeOf(listed) == event.TypeSBOM
}

// Keyring is the set of keys allowed to submit events, with their roles,
// and the environments promotions move artifacts through.
//
// Its file (--keyring) is JSON:
//
//	{
//	  "keys": [
//	    {"name": "ci", "publicKeyFile": "ci.pub", "roles": ["builder", "signer"]},
//	    {"name": "alice", "publicKey": "-----BEGIN PUBLIC KEY-----\n…", "roles": ["promoter"]},
//	    {"name": "bob", "publicKeyFile": "bob.pub", "roles": ["approver"]}
//	  ],
//	  "environments": [
//	    {"name": "dev"},
//	    {"name": "staging", "from": "dev"},
//	    {"name": "prod", "from": "staging", "approvals": 2, "reproducible": 2}
//	  ]
//	}
//
// Keys are PEM public keys, Ed25519 or ECDSA P-256; a relative
// publicKeyFile is relative to the keyring file. A key's DSSE key id is its
// securesystemslib key id; key ids in envelopes are only hints (cosign
// writes none, or its own): a signature is the keyring key's that
// verifies it.
//
// Roles: builder (SLSA provenance), signer (sign events), promoter and
// approver (promotions), attester (SBOMs, test results, in-toto links),
// verifier (SLSA VSAs). An optional "roles" object narrows the predicate
// types a role admits (an SBOM type also admits its versioned forms):
//
//	"roles": {"attester": {"predicateTypes": ["https://spdx.dev/Document"]}}
//
// An environment with "from" admits promotions only from that environment,
// and only of artifacts already promoted into it; "approvals" (default 1)
// is how many distinct promoter or approver keys must sign a promotion
// into it; "reproducible" (default 0: no requirement) is how many
// independent builds of each subject must be logged before a promotion
// into it is admitted (see [Environment]).
type Keyring struct {
	keys []*ringKey
	byID map[string]*ringKey
	envs map[string]Environment
	// types are the predicate types each role admits.
	types map[string][]string
}

// Len returns the number of keys in the keyring.
func (kr *Keyring) Len() int { return len(kr.keys) }

// Environment is one deployment environment of a keyring.
type Environment struct {
	Name      string `json:"name"`
	From      string `json:"from,omitempty"`
	Approvals int    `json:"approvals,omitempty"`
	// Reproducible is how many independent builds of each subject a
	// promotion into the environment needs logged: build events from
	// distinct builder ids, signed by distinct keyring keys (each build
	// credited to one of its signers, as policy.Independent counts), of
	// the same source repository (compared normalized, by
	// event.NormalizeRepo) and commit as the build the promotion cites. A
	// build counts only if today's keyring would admit it: every signature
	// verifies against a key whose roles admit the build. Zero: none.
	Reproducible int `json:"reproducible,omitempty"`
}

type ringKey struct {
	name  string
	id    string
	key   event.Key
	roles map[string]bool
}

type keyringFile struct {
	Keys []struct {
		Name          string   `json:"name"`
		PublicKey     string   `json:"publicKey,omitempty"`
		PublicKeyFile string   `json:"publicKeyFile,omitempty"`
		Roles         []string `json:"roles"`
	} `json:"keys"`
	Environments []Environment `json:"environments"`
	Roles        map[string]struct {
		PredicateTypes []string `json:"predicateTypes"`
	} `json:"roles,omitempty"`
}

var validRoles = []string{RoleBuilder, RoleSigner, RolePromoter, RoleApprover, RoleAttester, RoleVerifier}

// LoadKeyring reads and checks a keyring file.
func LoadKeyring(path string) (*Keyring, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading keyring: %w", err)
	}
	kr, err := ParseKeyring(b, filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("keyring %s: %w", path, err)
	}
	return kr, nil
}

// ParseKeyring parses a keyring; relative key files are read from dir.
func ParseKeyring(b []byte, dir string) (*Keyring, error) {
	var f keyringFile
	if err := strictjson.Decode(b, &f); err != nil {
		return nil, err
	}
	kr := &Keyring{byID: map[string]*ringKey{}, envs: map[string]Environment{}, types: map[string][]string{}}
	for _, r := range validRoles {
		kr.types[r] = rolePredicateTypes[r]
	}
	for role, rc := range f.Roles {
		defaults, ok := rolePredicateTypes[role]
		if !ok {
			return nil, fmt.Errorf("roles: unknown role %q, want one of %v", role, validRoles)
		}
		if len(rc.PredicateTypes) == 0 {
			return nil, fmt.Errorf("roles.%s.predicateTypes: empty (leave the role out to admit %v)", role, defaults)
		}
		for _, t := range rc.PredicateTypes {
			if !slices.ContainsFunc(defaults, func(d string) bool { return matchPredicateType(d, t) }) {
				return nil, fmt.Errorf("roles.%s.predicateTypes: %q is not a predicate type of the role, want some of %v", role, t, defaults)
			}
		}
		kr.types[role] = rc.PredicateTypes
	}
	for i, k := range f.Keys {
		rk, err := parseRingKey(k.Name, k.PublicKey, k.PublicKeyFile, k.Roles, dir)
		if err != nil {
			return nil, fmt.Errorf("keys[%d]: %w", i, err)
		}
		if _, dup := kr.byID[rk.id]; dup {
			return nil, fmt.Errorf("keys[%d] (%s): the same key twice", i, k.Name)
		}
		kr.keys, kr.byID[rk.id] = append(kr.keys, rk), rk
	}
	for i, e := range f.Environments {
		if e.Name == "" || e.From == e.Name || e.Approvals < 0 {
			return nil, fmt.Errorf("environments[%d]: want a name, a different from, approvals >= 0", i)
		}
		if e.Reproducible < 0 {
			return nil, fmt.Errorf("environments[%d].reproducible: %d, want >= 0", i, e.Reproducible)
		}
		if _, dup := kr.envs[e.Name]; dup {
			return nil, fmt.Errorf("environments[%d]: %q twice", i, e.Name)
		}
		if e.Approvals == 0 {
			e.Approvals = 1
		}
		kr.envs[e.Name] = e
	}
	for _, e := range kr.envs {
		if _, ok := kr.envs[e.From]; e.From != "" && !ok {
			return nil, fmt.Errorf("environment %q comes from unknown environment %q", e.Name, e.From)
		}
	}
	return kr, nil
}

func parseRingKey(name, pemText, file string, roles []string, dir string) (*ringKey, error) {
	if name == "" {
		return nil, errors.New("no name")
	}
	if (pemText == "") == (file == "") {
		return nil, fmt.Errorf("%s: want exactly one of publicKey and publicKeyFile", name)
	}
	key, id, err := event.LoadKeyRef(pemText, file, dir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	rk := &ringKey{name: name, id: id, key: key, roles: map[string]bool{}}
	if len(roles) == 0 {
		return nil, fmt.Errorf("%s: no roles", name)
	}
	for _, r := range roles {
		if !slices.Contains(validRoles, r) {
			return nil, fmt.Errorf("%s: unknown role %q, want one of %v", name, r, validRoles)
		}
		rk.roles[r] = true
	}
	return rk, nil
}

// verify checks every signature of the envelope against the keyring and
// returns the distinct keys that signed. Any signature by an unknown key,
// or that does not verify, refuses the envelope.
func (kr *Keyring) verify(ctx context.Context, env *event.Envelope) ([]*ringKey, error) {
	pae := env.PAE()
	var signers []*ringKey
	for i, s := range env.Signatures {
		k, err := kr.findSigner(ctx, s, pae, signers)
		if err != nil {
			return nil, fmt.Errorf("%w: envelope.signatures[%d]: %w", ErrPermissionDenied, i, err)
		}
		if !slices.Contains(signers, k) {
			signers = append(signers, k)
		}
	}
	return signers, nil
}

// findSigner returns the keyring key whose signature s is. The key id is
// only a hint, tried first: cosign writes an empty key id or one of its
// own (not securesystemslib's), so admission never depends on it. Then the
// keys that signed the envelope's earlier signatures, then the rest: an
// envelope's signatures cost one scan of the keyring for each key that
// signed, not one for each signature, and a bad signature ends the
// envelope's verification at once.
func (kr *Keyring) findSigner(ctx context.Context, s event.Signature, pae []byte, found []*ringKey) (*ringKey, error) {
	hinted, ok := kr.byID[s.KeyID]
	if ok && hinted.key.Verify(ctx, pae, s.Sig) == nil {
		return hinted, nil
	}
	tried := func(k *ringKey) bool { return k == hinted }
	for _, k := range found {
		if !tried(k) && k.key.Verify(ctx, pae, s.Sig) == nil {
			return k, nil
		}
	}
	for _, k := range kr.keys {
		if !tried(k) && !slices.Contains(found, k) && k.key.Verify(ctx, pae, s.Sig) == nil {
			return k, nil
		}
	}
	switch {
	case ok:
		return nil, fmt.Errorf("signature by %s (key id %q) does not verify", hinted.name, s.KeyID)
	case s.KeyID != "":
		return nil, fmt.Errorf("no keyring key verifies this signature (its key id %q is not in the keyring)", s.KeyID)
	}
	return nil, errors.New("no keyring key verifies this signature")
}

// authorize checks that the signers' roles allow the event: every signer
// must hold a role for its type, and a promotion needs as many distinct
// promoter or approver keys as its target environment requires.
func (kr *Keyring) authorize(ev *event.Event, signers []*ringKey) error {
	allowed := rolesFor(ev.Type)
	for _, k := range signers {
		if !slices.ContainsFunc(allowed, func(r string) bool { return k.roles[r] }) {
			return fmt.Errorf("%w: key %s may not sign %s events (roles %v)", ErrPermissionDenied, k.name, ev.Type, k.roleList())
		}
		if !slices.ContainsFunc(allowed, func(r string) bool { return k.roles[r] && kr.admits(r, ev.PredicateType) }) {
			return fmt.Errorf("%w: key %s may not submit predicate type %s (its roles admit %v)", ErrPermissionDenied, k.name, ev.PredicateType, kr.typesOf(k))
		}
	}
	if ev.Promote == nil {
		return nil
	}
	envr, ok := kr.envs[ev.Promote.To]
	if !ok {
		return fmt.Errorf("%w: statement.predicate.to: environment %q is not in the keyring", ErrInvalidEntry, ev.Promote.To)
	}
	if !slices.ContainsFunc(signers, func(k *ringKey) bool { return k.roles[RolePromoter] }) {
		return fmt.Errorf("%w: a promotion must be signed by a promoter key", ErrPermissionDenied)
	}
	if len(signers) < envr.Approvals {
		return fmt.Errorf("%w: promotion to %s needs %d distinct approvals, has %d", ErrPermissionDenied, envr.Name, envr.Approvals, len(signers))
	}
	return nil
}

// admits reports whether the role may submit predicate type t.
func (kr *Keyring) admits(role, t string) bool {
	return slices.ContainsFunc(kr.types[role], func(listed string) bool { return matchPredicateType(listed, t) })
}

// typesOf lists the predicate types a key's roles admit.
func (kr *Keyring) typesOf(k *ringKey) []string {
	var ts []string
	for _, r := range k.roleList() {
		for _, t := range kr.types[r] {
			if !slices.Contains(ts, t) {
				ts = append(ts, t)
			}
		}
	}
	return ts
}

func (k *ringKey) roleList() []string {
	var rs []string
	for _, r := range validRoles {
		if k.roles[r] {
			rs = append(rs, r)
		}
	}
	return rs
}
