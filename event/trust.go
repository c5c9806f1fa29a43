package event

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// This file is the format of provlog's trust events: the keyring in force
// (keyring), a key's revocation (revoke) and an artifact's quarantine and
// its lifting (quarantine). They put who may write what into the log
// itself; this package only parses them, and the log and client/ give
// them their meaning (which keyring is in force at an index, who may
// submit which).
//
// # Keyring
//
// Predicate type KeyringPredicateType, event type TypeKeyring: a whole
// keyring, which takes effect from its own index.
//
//	{"keys": [
//	   {"name": "ci", "publicKey": "-----BEGIN PUBLIC KEY-----\n…\n-----END PUBLIC KEY-----\n",
//	    "roles": ["builder", "signer"], "notBefore": 0, "notAfter": 5000},
//	   {"name": "root1", "publicKey": "…", "roles": []}],
//	 "environments": [{"name": "dev"}, {"name": "staging", "from": "dev"},
//	   {"name": "prod", "from": "staging", "approvals": 2, "reproducible": 2}],
//	 "roles": {"attester": {"predicateTypes": ["https://spdx.dev/Document"]}},
//	 "admins": {"keys": ["root1", "root2"], "threshold": 2}}
//
// Keys: a name (unique, 1 to MaxKeyringName bytes), a PEM public key
// inline (Ed25519 or ECDSA P-256, at most MaxKeyringPEM bytes; no key
// twice), roles from KeyringRoles (none only for an admin key), and an
// optional validity window of log indices, both ends inclusive
// (notBefore ≤ notAfter). Environments: a name (unique, 1 to
// MaxKeyringName bytes), from (another listed environment), approvals and
// reproducible (≥ 0). Roles: for a role of KeyringRoles, the predicate
// types it is narrowed to (non-empty). Admins: the names of listed keys
// (at least one, none twice) and how many of them must sign a keyring
// change or a revocation (1 ≤ threshold ≤ len(keys)); or none at all (no
// keys and no threshold, or no admins member: a bootstrap keyring, which
// the log's own key manages; every key then has roles).
//
// The statement has one subject per key, {"name": "<key name>", "digest":
// {"sha256": "<key id>"}} (see KeyringSubjects): its subjects' digests are
// exactly the key ids, so a search by key id finds every keyring naming
// the key. A keyring of no keys has the one subject NoKeysSubject. Up to
// MaxKeyringKeys subjects are allowed (MaxSubjects for other events), and
// the statement is at most MaxKeyringStatement bytes.
//
// # Revoke
//
// Predicate type RevokePredicateType, event type TypeRevoke:
//
//	{"keyId": "<key id, 64 lowercase hex>", "compromisedSince": 17, "reason": "…"}
//
// All three are required. The statement has exactly one subject, whose
// digest is {"sha256": "<keyId>"}.
//
// # Quarantine
//
// Predicate type QuarantinePredicateType, event type TypeQuarantine or
// TypeUnquarantine as the action says:
//
//	{"action": "quarantine" | "unquarantine", "reason": "…", "quarantineIndex": 42}
//
// action and reason are required; quarantineIndex (the quarantine entry an
// unquarantine lifts) is optional on an unquarantine and refused on a
// quarantine. The subjects are the artifacts' digests.

// Trust event predicate types.
const (
	// KeyringPredicateType marks keyring events (KeyringPredicate).
	KeyringPredicateType = "https://provlog.dev/attestation/keyring/v1"
	// RevokePredicateType marks revocation events (RevokePredicate).
	RevokePredicateType = "https://provlog.dev/attestation/revoke/v1"
	// QuarantinePredicateType marks quarantine and unquarantine events
	// (QuarantinePredicate).
	QuarantinePredicateType = "https://provlog.dev/attestation/quarantine/v1"
)

// Trust event types.
const (
	TypeKeyring      = "keyring"
	TypeRevoke       = "revoke"
	TypeQuarantine   = "quarantine"
	TypeUnquarantine = "unquarantine"
)

// Roles a keyring grants.
const (
	RoleBuilder  = "builder"
	RoleSigner   = "signer"
	RolePromoter = "promoter"
	RoleApprover = "approver"
	RoleAttester = "attester"
	RoleVerifier = "verifier"
	// RoleSecurity may submit quarantine events.
	RoleSecurity = "security"
)

// KeyringRoles are the roles a keyring may name.
var KeyringRoles = []string{RoleBuilder, RoleSigner, RolePromoter, RoleApprover, RoleAttester, RoleVerifier, RoleSecurity}

// Limits of the trust events.
const (
	// MaxKeyringKeys caps a keyring's keys (and so its subjects).
	MaxKeyringKeys = 256
	// MaxKeyringEnvironments caps a keyring's environments.
	MaxKeyringEnvironments = 64
	// MaxKeyringPEM caps one key's PEM, in bytes.
	MaxKeyringPEM = 4 << 10
	// MaxKeyringName caps a key's or an environment's name, in bytes.
	MaxKeyringName = 128
	// MaxKeyringStatement caps the statement of a keyring event, in
	// bytes. A log entry is at most 65535 bytes (tlog-tiles entry bundles
	// give each a 16-bit length), and the envelope carries the statement
	// in base64: 40 KiB of statement is about 54,600 bytes of it, which
	// leaves room for the admins' signatures (about 190 bytes each).
	MaxKeyringStatement = 40 << 10
	// MaxReason caps the reason of a revocation or a quarantine, in bytes.
	MaxReason = 4 << 10
)

// KeyringPredicate is a whole keyring (see the format above). JSON field
// names are as tagged.
type KeyringPredicate struct {
	Keys         []KeyringKey         `json:"keys"`
	Environments []KeyringEnvironment `json:"environments"`
	// Roles narrows the predicate types of some roles; nil: none.
	Roles  map[string]KeyringRole `json:"roles,omitempty"`
	Admins KeyringAdmins          `json:"admins"`
}

// KeyringKey is one key of a keyring.
type KeyringKey struct {
	Name string `json:"name"`
	// PublicKey is the key's PEM (PKIX), inline.
	PublicKey string   `json:"publicKey"`
	Roles     []string `json:"roles"`
	// NotBefore and NotAfter bound the log indices i of the entries the
	// key may sign, both inclusive: NotBefore ≤ i ≤ NotAfter. Nil:
	// unbounded.
	NotBefore *uint64 `json:"notBefore,omitempty"`
	NotAfter  *uint64 `json:"notAfter,omitempty"`

	// Key and KeyID are parsed from PublicKey by ParseStatement (KeyID is
	// the securesystemslib key id, 64 lowercase hex).
	Key   Key    `json:"-"`
	KeyID string `json:"-"`
}

// KeyringEnvironment is one deployment environment of a keyring.
type KeyringEnvironment struct {
	Name string `json:"name"`
	// From is the environment promotions into this one come from; empty
	// for a first environment.
	From string `json:"from,omitempty"`
	// Approvals is how many distinct keys must sign a promotion into the
	// environment; zero is the keyring's default.
	Approvals int `json:"approvals,omitempty"`
	// Reproducible is how many independent builds of each subject a
	// promotion into the environment needs logged; zero: none.
	Reproducible int `json:"reproducible,omitempty"`
}

// KeyringRole narrows the predicate types a role admits.
type KeyringRole struct {
	PredicateTypes []string `json:"predicateTypes"`
}

// KeyringAdmins is the rule for changing the keyring and revoking keys:
// Threshold of the keys named in Keys must sign.
type KeyringAdmins struct {
	Keys      []string `json:"keys"`
	Threshold int      `json:"threshold"`
}

// RevokePredicate revokes a key: its signatures on entries at or after
// index CompromisedSince are void.
type RevokePredicate struct {
	// KeyID is the revoked key's id, 64 lowercase hex.
	KeyID            string `json:"keyId"`
	CompromisedSince uint64 `json:"compromisedSince"`
	Reason           string `json:"reason"`
}

// Quarantine actions.
const (
	ActionQuarantine   = "quarantine"
	ActionUnquarantine = "unquarantine"
)

// QuarantinePredicate quarantines the statement's subjects, or lifts
// their quarantine.
type QuarantinePredicate struct {
	// Action is ActionQuarantine or ActionUnquarantine.
	Action string `json:"action"`
	Reason string `json:"reason"`
	// QuarantineIndex is the index of the quarantine entry an
	// unquarantine lifts; nil if not named (always on a quarantine).
	QuarantineIndex *uint64 `json:"quarantineIndex,omitempty"`
}

func (r *jsonReader) keyringPredicate() (*KeyringPredicate, error) {
	p := &KeyringPredicate{}
	err := r.goObject(func(name []byte) error {
		switch string(name) {
		case "keys":
			return r.goList(func() error {
				p.Keys = append(p.Keys, KeyringKey{})
				return r.keyringKey(&p.Keys[len(p.Keys)-1])
			})
		case "environments":
			return r.goList(func() error {
				p.Environments = append(p.Environments, KeyringEnvironment{})
				return r.keyringEnvironment(&p.Environments[len(p.Environments)-1])
			})
		case "roles":
			p.Roles = nil
			if ok, err := r.delim('n'); err != nil || ok {
				return err
			}
			p.Roles = map[string]KeyringRole{}
			return r.goObject(func(name []byte) error {
				var role KeyringRole
				err := r.goObjectOrNull(func(name []byte) error {
					if string(name) == "predicateTypes" {
						return r.goStrings(&role.PredicateTypes)
					}
					return r.skip() // in-toto: "Consumers MUST ignore unrecognized fields"
				})
				p.Roles[string(name)] = role
				return err
			})
		case "admins":
			p.Admins = KeyringAdmins{}
			return r.goObjectOrNull(func(name []byte) error {
				switch string(name) {
				case "keys":
					return r.goStrings(&p.Admins.Keys)
				case "threshold":
					return r.goInt(&p.Admins.Threshold)
				}
				return r.skip()
			})
		}
		return r.skip()
	})
	if err != nil {
		return nil, r.fieldErr("statement.predicate", err)
	}
	if err := p.check(); err != nil {
		return nil, err
	}
	return p, nil
}

func (r *jsonReader) keyringKey(k *KeyringKey) error {
	return r.goObjectOrNull(func(name []byte) error {
		switch string(name) {
		case "name":
			return r.goString(&k.Name)
		case "publicKey":
			return r.goString(&k.PublicKey)
		case "roles":
			return r.goStrings(&k.Roles)
		case "notBefore":
			return r.goOptUint(&k.NotBefore)
		case "notAfter":
			return r.goOptUint(&k.NotAfter)
		}
		return r.skip()
	})
}

func (r *jsonReader) keyringEnvironment(e *KeyringEnvironment) error {
	return r.goObjectOrNull(func(name []byte) error {
		switch string(name) {
		case "name":
			return r.goString(&e.Name)
		case "from":
			return r.goString(&e.From)
		case "approvals":
			return r.goInt(&e.Approvals)
		case "reproducible":
			return r.goInt(&e.Reproducible)
		}
		return r.skip()
	})
}

// check checks a decoded keyring and fills each key's Key and KeyID.
func (p *KeyringPredicate) check() error {
	const f = "statement.predicate."
	switch {
	case len(p.Keys) > MaxKeyringKeys:
		return fieldErr(f+"keys", "%d keys, want at most %d", len(p.Keys), MaxKeyringKeys)
	case len(p.Environments) > MaxKeyringEnvironments:
		return fieldErr(f+"environments", "%d environments, want at most %d", len(p.Environments), MaxKeyringEnvironments)
	}
	names := make(map[string]int, len(p.Keys))
	ids := make(map[string]int, len(p.Keys))
	for i := range p.Keys {
		k := &p.Keys[i]
		kf := fmt.Sprintf(f+"keys[%d]", i)
		if err := checkName(kf+".name", k.Name, names, i, "key"); err != nil {
			return err
		}
		if k.PublicKey == "" || len(k.PublicKey) > MaxKeyringPEM {
			return fieldErr(kf+".publicKey", "want a PEM public key of 1 to %d bytes", MaxKeyringPEM)
		}
		key, id, err := LoadKeyRef(k.PublicKey, "", "")
		if err != nil {
			return fieldErr(kf+".publicKey", "%v", err)
		}
		if j, dup := ids[id]; dup {
			return fieldErr(kf+".publicKey", "the same key as keys[%d] (key id %s)", j, id)
		}
		ids[id], k.Key, k.KeyID = i, key, id
		for j, role := range k.Roles {
			rf := fmt.Sprintf("%s.roles[%d]", kf, j)
			if !slices.Contains(KeyringRoles, role) {
				return fieldErr(rf, "unknown role %q, want one of %s", clip(role), strings.Join(KeyringRoles, ", "))
			}
			if slices.Contains(k.Roles[:j], role) {
				return fieldErr(rf, "role %q twice", role)
			}
		}
		if k.NotBefore != nil && k.NotAfter != nil && *k.NotBefore > *k.NotAfter {
			return fieldErr(kf+".notAfter", "%d, before notBefore %d", *k.NotAfter, *k.NotBefore)
		}
	}
	envs := make(map[string]int, len(p.Environments))
	for i, e := range p.Environments {
		ef := fmt.Sprintf(f+"environments[%d]", i)
		if err := checkName(ef+".name", e.Name, envs, i, "environment"); err != nil {
			return err
		}
		switch {
		case e.From == e.Name:
			return fieldErr(ef+".from", "the environment itself")
		case e.Approvals < 0:
			return fieldErr(ef+".approvals", "%d, want >= 0", e.Approvals)
		case e.Reproducible < 0:
			return fieldErr(ef+".reproducible", "%d, want >= 0", e.Reproducible)
		}
	}
	for i, e := range p.Environments {
		if _, ok := envs[e.From]; e.From != "" && !ok {
			return fieldErr(fmt.Sprintf(f+"environments[%d].from", i), "%q is not a listed environment", clip(e.From))
		}
	}
	if err := checkKeyringRoles(p.Roles); err != nil {
		return err
	}
	return p.checkAdmins(names)
}

// checkName checks that name is a name of 1 to MaxKeyringName bytes not
// in seen, and adds it as the i-th.
func checkName(field, name string, seen map[string]int, i int, what string) error {
	if name == "" || len(name) > MaxKeyringName {
		return fieldErr(field, "want a %s name of 1 to %d bytes", what, MaxKeyringName)
	}
	if j, dup := seen[name]; dup {
		return fieldErr(field, "%q twice (also [%d])", clip(name), j)
	}
	seen[name] = i
	return nil
}

// checkKeyringRoles checks the roles object, in the order of the roles'
// names.
func checkKeyringRoles(roles map[string]KeyringRole) error {
	const f = "statement.predicate.roles"
	for _, name := range sortedKeys(roles) {
		if !slices.Contains(KeyringRoles, name) {
			return fieldErr(f, "unknown role %q, want some of %s", clip(name), strings.Join(KeyringRoles, ", "))
		}
		types := roles[name].PredicateTypes
		if len(types) == 0 {
			return fieldErr(f+"."+name+".predicateTypes", "empty (leave the role out to admit all its types)")
		}
		for j, t := range types {
			if t == "" {
				return fieldErr(fmt.Sprintf("%s.%s.predicateTypes[%d]", f, name, j), "empty")
			}
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// checkAdmins checks the admins rule against the keys' names, then that
// every key without roles is an admin.
func (p *KeyringPredicate) checkAdmins(names map[string]int) error {
	const f = "statement.predicate."
	a := p.Admins
	if len(a.Keys) == 0 && a.Threshold == 0 {
		// No admins: the log's own key manages the keyring (a bootstrap
		// keyring; policy.History refuses a change that leaves an
		// admin-managed keyring without admins).
		for i, k := range p.Keys {
			if len(k.Roles) == 0 {
				return fieldErr(fmt.Sprintf(f+"keys[%d].roles", i), "no roles, and the keyring names no admins")
			}
		}
		return nil
	}
	if len(a.Keys) == 0 {
		return fieldErr(f+"admins.keys", "no admin keys for threshold %d: want the names of the keys that may change the keyring", a.Threshold)
	}
	for j, name := range a.Keys {
		af := fmt.Sprintf(f+"admins.keys[%d]", j)
		if _, ok := names[name]; !ok {
			return fieldErr(af, "%q is not a listed key", clip(name))
		}
		if slices.Contains(a.Keys[:j], name) {
			return fieldErr(af, "%q twice", clip(name))
		}
	}
	if a.Threshold < 1 || a.Threshold > len(a.Keys) {
		return fieldErr(f+"admins.threshold", "%d, want 1 to %d (the number of admin keys)", a.Threshold, len(a.Keys))
	}
	for i, k := range p.Keys {
		if len(k.Roles) == 0 && !slices.Contains(a.Keys, k.Name) {
			return fieldErr(fmt.Sprintf(f+"keys[%d].roles", i), "no roles, and %q is not an admin", clip(k.Name))
		}
	}
	return nil
}

func (r *jsonReader) revokePredicate() (*RevokePredicate, error) {
	p := &RevokePredicate{}
	var since *uint64
	err := r.goObject(func(name []byte) error {
		switch string(name) {
		case "keyId":
			return r.goString(&p.KeyID)
		case "compromisedSince":
			return r.goOptUint(&since)
		case "reason":
			return r.goString(&p.Reason)
		}
		return r.skip() // in-toto: "Consumers MUST ignore unrecognized fields"
	})
	if err != nil {
		return nil, r.fieldErr("statement.predicate", err)
	}
	const f = "statement.predicate."
	switch {
	case !isKeyID(p.KeyID):
		return nil, fieldErr(f+"keyId", "want a key id: 64 lowercase hex digits")
	case since == nil:
		return nil, fieldErr(f+"compromisedSince", "missing: want the log index from which the key's signatures are void")
	}
	p.CompromisedSince = *since
	if err := checkReason(p.Reason); err != nil {
		return nil, err
	}
	return p, nil
}

// isKeyID reports whether s is a securesystemslib key id of a key provlog
// takes: 64 lowercase hex digits (a SHA-256).
func isKeyID(s string) bool { return len(s) == 64 && isLowerHex(s) }

func checkReason(reason string) error {
	if reason == "" || len(reason) > MaxReason {
		return fieldErr("statement.predicate.reason", "want a reason of 1 to %d bytes", MaxReason)
	}
	return nil
}

func (r *jsonReader) quarantinePredicate() (*QuarantinePredicate, error) {
	p := &QuarantinePredicate{}
	err := r.goObject(func(name []byte) error {
		switch string(name) {
		case "action":
			return r.goString(&p.Action)
		case "reason":
			return r.goString(&p.Reason)
		case "quarantineIndex":
			return r.goOptUint(&p.QuarantineIndex)
		}
		return r.skip() // in-toto: "Consumers MUST ignore unrecognized fields"
	})
	if err != nil {
		return nil, r.fieldErr("statement.predicate", err)
	}
	if p.Action != ActionQuarantine && p.Action != ActionUnquarantine {
		return nil, fieldErr("statement.predicate.action", "%q, want %q or %q", clip(p.Action), ActionQuarantine, ActionUnquarantine)
	}
	if err := checkReason(p.Reason); err != nil {
		return nil, err
	}
	if p.Action == ActionQuarantine && p.QuarantineIndex != nil {
		return nil, fieldErr("statement.predicate.quarantineIndex", "only an unquarantine names the quarantine it lifts")
	}
	return p, nil
}

// checkTrustSubjects checks the subjects of a keyring or revoke event
// against its predicate: n subjects in the statement, whose digests are
// ev.Subjects.
func checkTrustSubjects(ev *Event, n int) error {
	switch {
	case ev.Keyring != nil:
		ks := ev.Keyring.Keys
		ok := len(ev.Subjects) == len(ks)
		for _, k := range ks {
			ok = ok && ev.HasSubject(Digest{Alg: "sha256", Hex: k.KeyID})
		}
		if len(ks) == 0 { // in-toto needs a subject: a keyring of no keys has NoKeysSubject
			ok = len(ev.Subjects) == 1 && ev.Subjects[0] == NoKeysSubject.Digest
		}
		if !ok {
			return fieldErr("statement.subject", "want one subject per key, its digest {\"sha256\": <key id>}, and no other (for a keyring of no keys, the one subject %q with the SHA-256 of nothing)", NoKeysSubject.Name)
		}
	case ev.Revoke != nil:
		if n != 1 || len(ev.Subjects) != 1 || ev.Subjects[0] != (Digest{Alg: "sha256", Hex: ev.Revoke.KeyID}) {
			return fieldErr("statement.subject", "want exactly one subject, its digest {\"sha256\": <keyId>}")
		}
	}
	return nil
}

// NoKeysSubject is the one subject of a keyring of no keys (a bootstrap
// keyring before any key is added): in-toto requires a subject, and
// there is no key id to name. Its digest is the SHA-256 of nothing.
var NoKeysSubject = Subject{Name: "no keys", Digest: Digest{Alg: "sha256", Hex: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}}

// keyringTooLarge refuses a keyring statement over MaxKeyringStatement.
func keyringTooLarge(n int) error {
	return fieldErr("statement", "a keyring statement of %d bytes, want at most %d", n, MaxKeyringStatement)
}

// KeyringSubjects returns the subjects of a keyring statement with these
// keys: one per key, named by the key's name, its digest {"sha256": key
// id}. Each key id is computed from the key's PublicKey (and must agree
// with its KeyID if that is set).
func KeyringSubjects(keys []KeyringKey) ([]Subject, error) {
	if len(keys) == 0 {
		return []Subject{NoKeysSubject}, nil
	}
	out := make([]Subject, 0, len(keys))
	for i, k := range keys {
		_, id, err := LoadKeyRef(k.PublicKey, "", "")
		if err != nil {
			return nil, fmt.Errorf("keys[%d] (%s): %w", i, k.Name, err)
		}
		if k.KeyID != "" && k.KeyID != id {
			return nil, fmt.Errorf("keys[%d] (%s): key id %s, but its public key's is %s", i, k.Name, k.KeyID, id)
		}
		out = append(out, Subject{Name: k.Name, Digest: Digest{Alg: "sha256", Hex: id}})
	}
	return out, nil
}

// NewKeyringStatement returns the JSON of an in-toto Statement v1 carrying
// keyring p, its subjects from KeyringSubjects. The encoding is
// deterministic (the predicate's fields as tagged, in order; a key
// without roles written with "roles": []), and it passes ParseStatement or
// an error is returned.
func NewKeyringStatement(p *KeyringPredicate) ([]byte, error) {
	subjects, err := KeyringSubjects(p.Keys)
	if err != nil {
		return nil, err
	}
	c := *p
	c.Keys = slices.Clone(p.Keys)
	for i := range c.Keys {
		if c.Keys[i].Roles == nil {
			c.Keys[i].Roles = []string{}
		}
	}
	if c.Environments == nil {
		c.Environments = []KeyringEnvironment{}
	}
	return newTrustStatement(KeyringPredicateType, subjects, &c)
}

// NewRevokeStatement returns the JSON of an in-toto Statement v1 revoking
// a key: its one subject is the key id. It passes ParseStatement or an
// error is returned.
func NewRevokeStatement(p *RevokePredicate) ([]byte, error) {
	return newTrustStatement(RevokePredicateType, []Subject{{Digest: Digest{Alg: "sha256", Hex: p.KeyID}}}, p)
}

// NewQuarantineStatement returns the JSON of an in-toto Statement v1
// quarantining subjects or lifting their quarantine. It passes
// ParseStatement or an error is returned.
func NewQuarantineStatement(subjects []Subject, p *QuarantinePredicate) ([]byte, error) {
	return newTrustStatement(QuarantinePredicateType, subjects, p)
}

// newTrustStatement encodes the predicate with encoding/json (integers
// exactly, not through float64 as NewStatement's structpb would) and
// builds the statement with newRawStatement.
func newTrustStatement(predicateType string, subjects []Subject, predicate any) ([]byte, error) {
	pj, err := json.Marshal(predicate)
	if err != nil {
		return nil, fmt.Errorf("encoding predicate: %w", err)
	}
	return newRawStatement(predicateType, subjects, pj)
}

// goList reads an array, calling elem for each element, or null.
func (r *jsonReader) goList(elem func() error) error {
	if ok, err := r.delim('n'); err != nil || ok {
		return err
	}
	return r.list(elem)
}

// goOptUint reads an unsigned integer as goUint does into a new *u, or
// null as nil.
func (r *jsonReader) goOptUint(u **uint64) error {
	if ok, err := r.delim('n'); err != nil || ok {
		*u = nil
		return err
	}
	v := new(uint64)
	*u = v
	return r.goUint(v)
}

// goInt reads an integer (an optional minus sign and digits, within int)
// or null into n, as encoding/json/v2 decodes an int.
func (r *jsonReader) goInt(n *int) error {
	if ok, err := r.delim('n'); err != nil || ok {
		*n = 0
		return err
	}
	if r.peek() != '0' {
		return r.mismatch("want an integer")
	}
	v, err := r.scalar()
	if err != nil {
		return err
	}
	i, err := strconv.ParseInt(string(v), 10, strconv.IntSize)
	if err != nil {
		return fmt.Errorf("%s: want an integer", clip(string(v)))
	}
	*n = int(i)
	return nil
}
