package policy

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"

	fwitness "github.com/transparency-dev/formats/witness"

	"github.com/provlog/provlog/event"
	"github.com/provlog/provlog/internal/strictjson"
)

// file is the policy as written (see the package doc).
type file struct {
	Version            *int                    `json:"version"`
	Builders           []string                `json:"builders"`
	SourceRepositories []string                `json:"sourceRepositories"`
	Keys               map[string]string       `json:"keys"`
	RequiredSigners    []string                `json:"requiredSigners"`
	PromotionPath      []string                `json:"promotionPath"`
	Approvals          map[string]approvalFile `json:"approvals"`
	WitnessPolicy      string                  `json:"witnessPolicy"`
	Namespaces         map[string]string       `json:"namespaces"`
	Reproducible       *reproducibleFile       `json:"reproducible"`
}

type reproducibleFile struct {
	Builders   int  `json:"builders"`
	SameSource bool `json:"sameSource"`
}

// Versions are the policy format versions this build reads; a policy
// without "version" is version 1.
var Versions = []int{1}

type approvalFile struct {
	Count int      `json:"count"`
	Keys  []string `json:"keys"`
}

// Policy is a parsed, checked gate policy. Its zero value allows any
// artifact with a build event and a promotion into the environment.
type Policy struct {
	builders      []string
	sources       []string
	promotionPath []string
	signers       []key
	approvals     map[string]approval
	namespaces    map[string]string // Kubernetes namespace -> environment
	reproducible  *reproducible     // nil for no rule
	named         []key             // the keys named in keys, sorted by name

	// Witness is the tlog-policy text that the checkpoint of every event's
	// proof must meet, or nil for none. Parse loads it from witnessPolicy;
	// the caller may replace it (provlog gate --witness-policy does) and
	// proves events with it: Decide does not read it.
	Witness []byte
}

// approval is what a promotion into one environment needs.
type approval struct {
	count int
	keys  []key
}

// key is a key a policy names: by name, with its public key, or by its raw
// key id.
type key struct {
	label string    // the name in keys, or the key id
	id    string    // the DSSE (securesystemslib) key id
	pub   event.Key // nil for a raw key id, taken on the log's word
}

// String is the name and key id, or the key id alone for a raw key id.
func (k key) String() string {
	if k.label == k.id {
		return k.id
	}
	return fmt.Sprintf("%s (%s)", k.label, k.id)
}

var keyIDRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// namespaceRE is a Kubernetes namespace name: an RFC 1123 DNS label.
var namespaceRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// Parse parses and checks a policy (see the package doc). Relative file
// names in it (keys, witnessPolicy) are in dir. Errors name the field.
func Parse(raw []byte, dir string) (*Policy, error) {
	var f file
	if err := strictjson.Decode(raw, &f); err != nil {
		return nil, err
	}
	if f.Version != nil && !slices.Contains(Versions, *f.Version) {
		return nil, fmt.Errorf("version: %d, this build reads versions %v", *f.Version, Versions)
	}
	p := &Policy{builders: f.Builders, sources: f.SourceRepositories, promotionPath: f.PromotionPath,
		approvals: map[string]approval{}, namespaces: map[string]string{}}
	named := map[string]key{}
	for name, file := range f.Keys {
		k, id, err := event.LoadKeyRef("", file, dir)
		if err != nil {
			return nil, fmt.Errorf("keys.%s: %w", name, err)
		}
		named[name] = key{label: name, id: id, pub: k}
	}
	for _, name := range slices.Sorted(maps.Keys(named)) {
		p.named = append(p.named, named[name])
	}
	if r := f.Reproducible; r != nil {
		if r.Builders < 1 {
			return nil, fmt.Errorf("reproducible.builders: %d, want >= 1", r.Builders)
		}
		p.reproducible = &reproducible{builders: r.Builders, sameSource: r.SameSource}
	}
	resolve := func(field, ref string) (key, error) {
		if k, ok := named[ref]; ok {
			return k, nil
		}
		if keyIDRE.MatchString(ref) {
			return key{label: ref, id: ref}, nil
		}
		return key{}, fmt.Errorf("%s: %q is neither a name in keys nor a 64-hex-digit key id", field, ref)
	}
	for i, ref := range f.RequiredSigners {
		k, err := resolve(fmt.Sprintf("requiredSigners[%d]", i), ref)
		if err != nil {
			return nil, err
		}
		p.signers = append(p.signers, k)
	}
	for env, r := range f.Approvals {
		if r.Count < 0 {
			return nil, fmt.Errorf("approvals.%s.count: %d, want >= 0", env, r.Count)
		}
		if len(f.PromotionPath) > 0 && !slices.Contains(f.PromotionPath, env) {
			return nil, fmt.Errorf("approvals.%s: environment not on the promotionPath %v", env, f.PromotionPath)
		}
		a := approval{count: r.Count}
		for i, ref := range r.Keys {
			k, err := resolve(fmt.Sprintf("approvals.%s.keys[%d]", env, i), ref)
			if err != nil {
				return nil, err
			}
			a.keys = append(a.keys, k)
		}
		p.approvals[env] = a
	}
	for i, env := range f.PromotionPath {
		if env == "" || slices.Contains(f.PromotionPath[:i], env) {
			return nil, fmt.Errorf("promotionPath[%d]: %q is empty or repeated", i, env)
		}
	}
	for ns, env := range f.Namespaces {
		switch {
		case !namespaceRE.MatchString(ns):
			return nil, fmt.Errorf("namespaces: %q is not a Kubernetes namespace name (an RFC 1123 label: at most 63 of a-z, 0-9 and \"-\", starting and ending alphanumeric)", ns)
		case env == "":
			return nil, fmt.Errorf("namespaces.%s: empty environment", ns)
		case len(f.PromotionPath) > 0 && !slices.Contains(f.PromotionPath, env):
			return nil, fmt.Errorf("namespaces.%s: environment %q not on the promotionPath %v", ns, env, f.PromotionPath)
		}
		p.namespaces[ns] = env
	}
	if f.WitnessPolicy != "" {
		w := f.WitnessPolicy
		if !filepath.IsAbs(w) {
			w = filepath.Join(dir, w)
		}
		var err error
		if p.Witness, err = ReadWitnessPolicy(w); err != nil {
			return nil, fmt.Errorf("witnessPolicy: %w", err)
		}
	}
	return p, nil
}

// ReadWitnessPolicy reads a tlog-policy file ("witness", "group",
// "quorum" lines) and checks that it parses; it returns the file's bytes,
// which the proof verifiers take.
func ReadWitnessPolicy(path string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if _, err := fwitness.ParsePolicy(raw); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return raw, nil
}

// EnvironmentOf returns the environment the policy's namespaces map a
// Kubernetes namespace to, and whether it maps it at all.
func (p *Policy) EnvironmentOf(namespace string) (env string, ok bool) {
	env, ok = p.namespaces[namespace]
	return env, ok
}
