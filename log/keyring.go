package log

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/provlog/provlog/event"
	"github.com/provlog/provlog/internal/strictjson"
	"github.com/provlog/provlog/policy"
)

// Roles a keyring grants (see policy.Keyring).
const (
	RoleBuilder  = policy.RoleBuilder  // may submit build events
	RoleSigner   = policy.RoleSigner   // may submit sign events
	RolePromoter = policy.RolePromoter // may submit and approve promote events
	RoleApprover = policy.RoleApprover // may approve (co-sign) promote events
	RoleAttester = policy.RoleAttester // may submit SBOMs, test results and links
	RoleVerifier = policy.RoleVerifier // may submit SLSA verification summaries
	RoleSecurity = policy.RoleSecurity // may quarantine artifacts
)

// Keyring is a keyring (policy.Keyring): the keys allowed to submit
// events, with their roles and validity, the environments promotions move
// artifacts through, and the admins who may change it.
//
// Its file (--keyring) is JSON, the keyring predicate of a keyring event
// (event.KeyringPredicate) with one addition, publicKeyFile:
//
//	{
//	  "keys": [
//	    {"name": "ci", "publicKeyFile": "ci.pub", "roles": ["builder", "signer"]},
//	    {"name": "alice", "publicKey": "-----BEGIN PUBLIC KEY-----\n…", "roles": ["promoter"]},
//	    {"name": "bob", "publicKeyFile": "bob.pub", "roles": ["approver"], "notAfter": 100000},
//	    {"name": "sec", "publicKeyFile": "sec.pub", "roles": ["security"]},
//	    {"name": "root1", "publicKeyFile": "root1.pub", "roles": []},
//	    {"name": "root2", "publicKeyFile": "root2.pub", "roles": []}
//	  ],
//	  "environments": [
//	    {"name": "dev"},
//	    {"name": "staging", "from": "dev"},
//	    {"name": "prod", "from": "staging", "approvals": 2, "reproducible": 2}
//	  ],
//	  "admins": {"keys": ["root1", "root2"], "threshold": 2}
//	}
//
// The file is only the bootstrap: a log logs it as its genesis keyring
// event (index 0 of a new log), and from then on the keyring in force is
// the one the log's keyring events make (see policy.History and
// docs/trust.md). While that keyring names no admins, the log's own key
// manages it, so a changed file is logged as a new keyring at the next
// start; once it names admins, only keyring events they sign change it,
// and a changed file only draws a warning.
//
// Keys are PEM public keys, Ed25519 or ECDSA P-256; a relative
// publicKeyFile is relative to the keyring file. A key's DSSE key id is its
// securesystemslib key id; key ids in envelopes are only hints (cosign
// writes none, or its own): a signature is the keyring key's that
// verifies it. notBefore and notAfter (log indices, both inclusive) bound
// the entries a key may sign.
//
// Roles: builder (SLSA provenance), signer (sign events), promoter and
// approver (promotions), attester (SBOMs, test results, in-toto links),
// verifier (SLSA VSAs), security (quarantines). An optional "roles" object
// narrows the predicate types a role admits (an SBOM type also admits its
// versioned forms):
//
//	"roles": {"attester": {"predicateTypes": ["https://spdx.dev/Document"]}}
//
// An environment with "from" admits promotions only from that environment,
// and only of artifacts already promoted into it; "approvals" (default 1)
// is how many distinct promoter or approver keys must sign a promotion
// into it; "reproducible" (default 0: no requirement) is how many
// independent builds of each subject must be logged before a promotion
// into it is admitted (see policy.Environment).
type Keyring = policy.Keyring

// Environment is one deployment environment of a keyring.
type Environment = policy.Environment

// keyringFile is a keyring predicate whose keys may name files.
type keyringFile struct {
	Keys []struct {
		Name          string   `json:"name"`
		PublicKey     string   `json:"publicKey,omitempty"`
		PublicKeyFile string   `json:"publicKeyFile,omitempty"`
		Roles         []string `json:"roles"`
		NotBefore     *uint64  `json:"notBefore,omitempty"`
		NotAfter      *uint64  `json:"notAfter,omitempty"`
	} `json:"keys"`
	Environments []event.KeyringEnvironment   `json:"environments"`
	Roles        map[string]event.KeyringRole `json:"roles,omitempty"`
	Admins       *event.KeyringAdmins         `json:"admins,omitempty"`
}

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

// ParseKeyring parses a keyring file; relative key files are read from
// dir. The keyring is checked as the keyring event it becomes
// (event.ParseStatement, then policy.NewKeyring), so a file that parses is
// one the log can log.
func ParseKeyring(b []byte, dir string) (*Keyring, error) {
	var f keyringFile
	if err := strictjson.Decode(b, &f); err != nil {
		return nil, err
	}
	p := &event.KeyringPredicate{Environments: f.Environments, Roles: f.Roles}
	if f.Admins != nil {
		p.Admins = *f.Admins
	}
	for i, k := range f.Keys {
		if k.Name == "" {
			return nil, fmt.Errorf("keys[%d]: no name", i)
		}
		if (k.PublicKey == "") == (k.PublicKeyFile == "") {
			return nil, fmt.Errorf("keys[%d] (%s): want exactly one of publicKey and publicKeyFile", i, k.Name)
		}
		pemText := k.PublicKey
		if k.PublicKeyFile != "" {
			path := k.PublicKeyFile
			if !filepath.IsAbs(path) {
				path = filepath.Join(dir, path)
			}
			raw, err := os.ReadFile(path)
			if err != nil {
				return nil, fmt.Errorf("keys[%d] (%s): %w", i, k.Name, err)
			}
			pemText = string(raw)
		}
		p.Keys = append(p.Keys, event.KeyringKey{Name: k.Name, PublicKey: pemText, Roles: k.Roles, NotBefore: k.NotBefore, NotAfter: k.NotAfter})
	}
	return keyringOf(p)
}

// keyringOf checks a keyring predicate as its keyring event would be
// checked, and makes the keyring.
func keyringOf(p *event.KeyringPredicate) (*Keyring, error) {
	payload, err := event.NewKeyringStatement(p)
	if err != nil {
		return nil, err
	}
	ev, err := event.ParseStatement(payload)
	if err != nil {
		return nil, fileError(err)
	}
	return policy.NewKeyring(ev.Keyring)
}

// fileError names a keyring file's fields as the file has them, not as
// the statement it becomes.
func fileError(err error) error {
	return errors.New(strings.ReplaceAll(err.Error(), "statement.predicate.", ""))
}
