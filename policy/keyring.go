package policy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/provlog/provlog/event"
)

// Roles a keyring grants (event owns their names).
const (
	RoleBuilder  = event.RoleBuilder  // may submit build events
	RoleSigner   = event.RoleSigner   // may submit sign events
	RolePromoter = event.RolePromoter // may submit and approve promote events
	RoleApprover = event.RoleApprover // may approve (co-sign) promote events
	RoleAttester = event.RoleAttester // may submit SBOMs, test results and links
	RoleVerifier = event.RoleVerifier // may submit SLSA verification summaries
	RoleSecurity = event.RoleSecurity // may quarantine artifacts
)

// Roles are the roles a keyring may grant, in the order they are listed.
var Roles = event.KeyringRoles

// Errors of keyring checks, for errors.Is.
var (
	// ErrNotAuthorized: a signature is by no key of the keyring, does not
	// verify, or is by a key whose roles, validity or revocation do not
	// allow the event; or a change lacks its admins' threshold.
	ErrNotAuthorized = errors.New("not authorized")
	// ErrInvalidKeyring: a keyring (or an event's reference into it, such
	// as an unknown environment) is malformed.
	ErrInvalidKeyring = errors.New("invalid keyring")
	// ErrRefused: the event is well formed and authorized but the log's
	// state refuses it (an artifact quarantined, a change that would
	// leave no admin, a key revoked twice).
	ErrRefused = errors.New("refused by the log's state")
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
	RoleSecurity: {event.QuarantinePredicateType},
}

// RolesFor returns the roles any of which lets a key sign an event of the
// type. Keyring changes, revocations and the lifting of a quarantine need
// the keyring's admins instead (see [History]); for them, and for unknown
// types, it returns nil.
func RolesFor(eventType string) []string {
	switch eventType {
	case event.TypeBuild:
		return []string{RoleBuilder}
	case event.TypeSign:
		return []string{RoleSigner}
	case event.TypePromote:
		return []string{RolePromoter, RoleApprover}
	case event.TypeSBOM, event.TypeTestResult, event.TypeLink:
		return []string{RoleAttester}
	case event.TypeVSA:
		return []string{RoleVerifier}
	case event.TypeQuarantine:
		return []string{RoleSecurity}
	}
	return nil
}

// AdminEvent reports whether events of the type need the keyring's admin
// threshold rather than a role.
func AdminEvent(eventType string) bool {
	return eventType == event.TypeKeyring || eventType == event.TypeRevoke || eventType == event.TypeUnquarantine
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

// Keyring is one version of a log's keyring: the keys allowed to submit
// events, with their roles and validity, the environments promotions move
// artifacts through, and the admins who may change it. It is made from a
// keyring event's predicate (event.KeyringPredicate), which is also the
// form the operator's bootstrap file takes once its key files are read.
// A Keyring is immutable.
type Keyring struct {
	keys []*Key
	byID map[string]*Key
	envs map[string]Environment
	// types are the predicate types each role admits.
	types map[string][]string
	// admins are the admin keys; threshold how many must sign a change.
	admins    []*Key
	threshold int
	pred      *event.KeyringPredicate
}

// Key is one key of a keyring.
type Key struct {
	Name string
	// ID is the key's securesystemslib key id (64 lowercase hex digits).
	ID  string
	Key event.Key
	// Roles the key holds, in the order of [Roles].
	Roles []string
	// NotBefore and NotAfter bound, both inclusive, the log indices of the
	// entries the key may sign; nil is unbounded.
	NotBefore, NotAfter *uint64
	// Admin is true for a key of the keyring's admins rule.
	Admin bool
}

// has reports whether the key holds the role.
func (k *Key) has(role string) bool { return slices.Contains(k.Roles, role) }

// ValidAt reports whether index lies in the key's validity window.
func (k *Key) ValidAt(index uint64) bool {
	return (k.NotBefore == nil || *k.NotBefore <= index) && (k.NotAfter == nil || index <= *k.NotAfter)
}

// Window describes the key's validity window, as errors name it.
func (k *Key) Window() string {
	from, to := "the start of the log", "unbounded"
	if k.NotBefore != nil {
		from = fmt.Sprintf("entry %d", *k.NotBefore)
	}
	if k.NotAfter != nil {
		to = fmt.Sprintf("entry %d", *k.NotAfter)
	}
	return fmt.Sprintf("[notBefore %s, notAfter %s]", from, to)
}

// Environment is one deployment environment of a keyring.
type Environment struct {
	Name      string `json:"name"`
	From      string `json:"from,omitempty"`
	Approvals int    `json:"approvals,omitempty"`
	// Reproducible is how many independent builds of each subject a
	// promotion into the environment needs logged: build events from
	// distinct builder ids, signed by distinct keyring keys (each build
	// credited to one of its signers, as [Independent] counts), of the
	// same source repository (compared normalized, by
	// event.NormalizeRepo) and commit as the build the promotion cites. A
	// build counts only if it still counts in the log's history (see
	// [History.Effective]). Zero: none.
	Reproducible int `json:"reproducible,omitempty"`
}

// NewKeyring checks a keyring predicate and makes the keyring it
// describes. Beyond what the predicate's parser checks, a role's
// "predicateTypes" must be types the role admits.
func NewKeyring(p *event.KeyringPredicate) (*Keyring, error) {
	kr := &Keyring{byID: map[string]*Key{}, envs: map[string]Environment{}, types: map[string][]string{}, pred: p}
	for _, r := range Roles {
		kr.types[r] = rolePredicateTypes[r]
	}
	for role, rc := range p.Roles {
		defaults, ok := rolePredicateTypes[role]
		if !ok {
			return nil, refuse(ErrInvalidKeyring, "roles: unknown role %q, want one of %v", role, Roles)
		}
		if len(rc.PredicateTypes) == 0 {
			return nil, refuse(ErrInvalidKeyring, "roles.%s.predicateTypes: empty (leave the role out to admit %v)", role, defaults)
		}
		for _, t := range rc.PredicateTypes {
			if !slices.ContainsFunc(defaults, func(d string) bool { return matchPredicateType(d, t) }) {
				return nil, refuse(ErrInvalidKeyring, "roles.%s.predicateTypes: %q is not a predicate type of the role, want some of %v", role, t, defaults)
			}
		}
		kr.types[role] = rc.PredicateTypes
	}
	for i, pk := range p.Keys {
		k := &Key{Name: pk.Name, ID: pk.KeyID, Key: pk.Key, NotBefore: pk.NotBefore, NotAfter: pk.NotAfter}
		for _, r := range Roles {
			if slices.Contains(pk.Roles, r) {
				k.Roles = append(k.Roles, r)
			}
		}
		if len(k.Roles) != len(pk.Roles) || k.Key == nil || k.ID == "" {
			return nil, refuse(ErrInvalidKeyring, "keys[%d] (%s): want a parsed key and known roles", i, pk.Name)
		}
		if _, dup := kr.byID[k.ID]; dup {
			return nil, refuse(ErrInvalidKeyring, "keys[%d] (%s): the same key twice", i, pk.Name)
		}
		kr.keys, kr.byID[k.ID] = append(kr.keys, k), k
	}
	for i, e := range p.Environments {
		if e.Name == "" || e.From == e.Name || e.Approvals < 0 || e.Reproducible < 0 {
			return nil, refuse(ErrInvalidKeyring, "environments[%d]: want a name, a different from, approvals >= 0, reproducible >= 0", i)
		}
		if _, dup := kr.envs[e.Name]; dup {
			return nil, refuse(ErrInvalidKeyring, "environments[%d]: %q twice", i, e.Name)
		}
		env := Environment{Name: e.Name, From: e.From, Approvals: max(e.Approvals, 1), Reproducible: e.Reproducible}
		kr.envs[e.Name] = env
	}
	for _, e := range kr.envs {
		if _, ok := kr.envs[e.From]; e.From != "" && !ok {
			return nil, refuse(ErrInvalidKeyring, "environment %q comes from unknown environment %q", e.Name, e.From)
		}
	}
	for i, name := range p.Admins.Keys {
		j := slices.IndexFunc(kr.keys, func(k *Key) bool { return k.Name == name })
		if j < 0 || kr.keys[j].Admin {
			return nil, refuse(ErrInvalidKeyring, "admins.keys[%d]: %q is not a key of the keyring, or is named twice", i, name)
		}
		kr.keys[j].Admin = true
		kr.admins = append(kr.admins, kr.keys[j])
	}
	kr.threshold = p.Admins.Threshold
	if kr.threshold < 0 || kr.threshold > len(kr.admins) || (len(kr.admins) > 0) != (kr.threshold > 0) {
		return nil, refuse(ErrInvalidKeyring, "admins.threshold: %d, want 1 to %d", kr.threshold, len(kr.admins))
	}
	for _, k := range kr.keys {
		if len(k.Roles) == 0 && !k.Admin {
			return nil, refuse(ErrInvalidKeyring, "key %s: no roles (only an admin key may hold none)", k.Name)
		}
	}
	return kr, nil
}

// Predicate returns the keyring predicate the keyring was made from.
func (kr *Keyring) Predicate() *event.KeyringPredicate { return kr.pred }

// Len returns the number of keys in the keyring.
func (kr *Keyring) Len() int { return len(kr.keys) }

// Keys returns the keyring's keys, in the order the keyring lists them.
func (kr *Keyring) Keys() []*Key { return slices.Clone(kr.keys) }

// KeyByID returns the key with a securesystemslib key id.
func (kr *Keyring) KeyByID(id string) (*Key, bool) {
	k, ok := kr.byID[id]
	return k, ok
}

// Environment returns the environment named name.
func (kr *Keyring) Environment(name string) (Environment, bool) {
	e, ok := kr.envs[name]
	return e, ok
}

// Admins returns the admin keys and how many of them must sign a change;
// a keyring without admins returns none and 0 (see [History]: the log's
// own key then changes it).
func (kr *Keyring) Admins() ([]*Key, int) { return slices.Clone(kr.admins), kr.threshold }

// Verify checks every signature of the envelope against the keyring and
// returns the distinct keys that signed. Any signature by an unknown key,
// or that does not verify, refuses the envelope.
func (kr *Keyring) Verify(ctx context.Context, env *event.Envelope) ([]*Key, error) {
	pae := env.PAE()
	var signers []*Key
	for i, s := range env.Signatures {
		k, err := kr.findSigner(ctx, s, pae, signers)
		if err != nil {
			return nil, refuse(ErrNotAuthorized, "envelope.signatures[%d]: %w", i, err)
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
func (kr *Keyring) findSigner(ctx context.Context, s event.Signature, pae []byte, found []*Key) (*Key, error) {
	hinted, ok := kr.byID[s.KeyID]
	if ok && hinted.Key.Verify(ctx, pae, s.Sig) == nil {
		return hinted, nil
	}
	tried := func(k *Key) bool { return k == hinted }
	for _, k := range found {
		if !tried(k) && k.Key.Verify(ctx, pae, s.Sig) == nil {
			return k, nil
		}
	}
	for _, k := range kr.keys {
		if !tried(k) && !slices.Contains(found, k) && k.Key.Verify(ctx, pae, s.Sig) == nil {
			return k, nil
		}
	}
	switch {
	case ok:
		return nil, fmt.Errorf("signature by %s (key id %q) does not verify", hinted.Name, s.KeyID)
	case s.KeyID != "":
		return nil, fmt.Errorf("no keyring key verifies this signature (its key id %q is not in the keyring)", s.KeyID)
	}
	return nil, errors.New("no keyring key verifies this signature")
}

// Authorize checks that the signers' roles allow the event: every signer
// must hold a role for its type, and a promotion needs as many distinct
// promoter or approver keys as its target environment requires. Events
// that need the admins (AdminEvent) are checked by [History], not here.
func (kr *Keyring) Authorize(ev *event.Event, signers []*Key) error {
	if len(signers) == 0 {
		return refuse(ErrNotAuthorized, "no signature")
	}
	allowed := RolesFor(ev.Type)
	for _, k := range signers {
		if !slices.ContainsFunc(allowed, k.has) {
			return refuse(ErrNotAuthorized, "key %s may not sign %s events (roles %v)", k.Name, ev.Type, k.Roles)
		}
		if !slices.ContainsFunc(allowed, func(r string) bool { return k.has(r) && kr.admits(r, ev.PredicateType) }) {
			return refuse(ErrNotAuthorized, "key %s may not submit predicate type %s (its roles admit %v)", k.Name, ev.PredicateType, kr.typesOf(k))
		}
	}
	if ev.Promote == nil {
		return nil
	}
	envr, ok := kr.envs[ev.Promote.To]
	if !ok {
		return refuse(ErrInvalidKeyring, "statement.predicate.to: environment %q is not in the keyring", ev.Promote.To)
	}
	if !slices.ContainsFunc(signers, func(k *Key) bool { return k.has(RolePromoter) }) {
		return refuse(ErrNotAuthorized, "a promotion must be signed by a promoter key")
	}
	if len(signers) < envr.Approvals {
		return refuse(ErrNotAuthorized, "promotion to %s needs %d distinct approvals, has %d", envr.Name, envr.Approvals, len(signers))
	}
	return nil
}

// admits reports whether the role may submit predicate type t.
func (kr *Keyring) admits(role, t string) bool {
	return slices.ContainsFunc(kr.types[role], func(listed string) bool { return matchPredicateType(listed, t) })
}

// typesOf lists the predicate types a key's roles admit.
func (kr *Keyring) typesOf(k *Key) []string {
	var ts []string
	for _, r := range k.Roles {
		for _, t := range kr.types[r] {
			if !slices.Contains(ts, t) {
				ts = append(ts, t)
			}
		}
	}
	return ts
}

// reason is an error of a kind (one of the package's sentinels) whose text
// is only its reason: callers that add their own category (the log's
// "permission denied: …") do not repeat it.
type reason struct {
	kind error
	err  error
}

func (r *reason) Error() string   { return r.err.Error() }
func (r *reason) Unwrap() []error { return []error{r.kind, r.err} }
func refuse(kind error, format string, args ...any) error {
	return &reason{kind, fmt.Errorf(format, args...)}
}
