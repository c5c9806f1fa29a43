package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/provlog/provlog/client"
	"github.com/provlog/provlog/event"
	"github.com/provlog/provlog/internal/strictjson"
)

const gateLong = `The deploy gate: decide whether an artifact may be deployed to an
environment. It fetches every event about the artifact from the log
(search by digest), proves each one (its proof bundle verifies with the
log's key and, if the policy names one, its checkpoint meets the witness
policy), parses it, and checks the events against --policy. It exits 0 to
allow, or 1 to deny, listing every reason, not just the first. Any non-zero
exit must be taken as "do not deploy".

The policy is a JSON file (unknown fields are refused):

  {
    "builders": ["https://ci.example.com/runner@v2"],
    "sourceRepositories": ["git+https://git.example.com/app", "git+https://git.example.com/libs/*"],
    "keys": {"signer": "keys/signer.pub", "bob": "keys/bob.pub"},
    "requiredSigners": ["signer"],
    "promotionPath": ["dev", "staging", "prod"],
    "approvals": {"prod": {"count": 2, "keys": ["bob"]}},
    "witnessPolicy": "witnesses.policy"
  }

  builders            allowed SLSA builder ids of the build event. An entry
                      ending in "*" or "/" is a prefix ("*" removed); any
                      other must match exactly. Empty: any builder.
  sourceRepositories  allowed source repositories of the build event, same
                      matching. Empty: any source.
  keys                names for PEM public keys (files relative to the
                      policy file). For a named key the gate verifies the
                      envelope signature itself instead of relying on the
                      log's admission check.
  requiredSigners     keys that must each have signed a sign event about the
                      artifact. A key is a name from "keys", or a raw DSSE
                      key id (the securesystemslib key id "provlog keygen"
                      prints, 64 hex digits), which the gate takes on the
                      log's word (the log verified every signature against
                      its keyring). These are the keys of the sign events'
                      envelopes, not the free-text keyId of their predicate.
  promotionPath       environments in order. Deploying to --env needs a
                      promotion into each environment of the path up to and
                      including it, each from the one before (the first
                      from none), in log order. --env must be on the path.
                      Empty: one promotion into --env, from anywhere.
  approvals           per environment: "count", the least number of distinct
                      signers of the promotion into it, and "keys", keys
                      (as in requiredSigners) that must be among them.
  witnessPolicy       a tlog-policy file ("witness", "group", "quorum"
                      lines) that the checkpoint of every event's proof must
                      meet (relative to the policy file; --witness-policy
                      overrides it).

Only events about an accepted build count: a build event whose builder and
source the policy allows, and sign and promote events whose buildIndex is
such a build.

Exit codes: 0 allow; 1 deny, every reason listed; 2 bad flags or policy
file; 3 the log unreachable (undecided: do not deploy).`

// gatePolicy is the policy file (see gateLong).
type gatePolicy struct {
	Builders           []string                `json:"builders"`
	SourceRepositories []string                `json:"sourceRepositories"`
	Keys               map[string]string       `json:"keys"`
	RequiredSigners    []string                `json:"requiredSigners"`
	PromotionPath      []string                `json:"promotionPath"`
	Approvals          map[string]approvalRule `json:"approvals"`
	WitnessPolicy      string                  `json:"witnessPolicy"`
}

// approvalRule is what a promotion into one environment needs.
type approvalRule struct {
	Count int      `json:"count"`
	Keys  []string `json:"keys"`
}

// policyKey is a key a policy names: by name, with its public key, or by
// its raw key id.
type policyKey struct {
	label string    // the name, or the key id
	id    string    // the DSSE (securesystemslib) key id
	key   event.Key // nil for a raw key id
}

func (k policyKey) String() string {
	if k.label == k.id {
		return k.id
	}
	return fmt.Sprintf("%s (%s)", k.label, k.id)
}

// policy is a loaded, checked gate policy.
type policy struct {
	gatePolicy
	signers   []policyKey
	approvals map[string]resolvedRule
	witness   []byte // tlog-policy text, or nil
}

type resolvedRule struct {
	count int
	keys  []policyKey
}

var keyIDRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// loadPolicy reads and checks a gate policy. Every problem is a usage
// error.
func loadPolicy(file string) (*policy, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, usageErr("policy: %w", err)
	}
	p, err := parsePolicy(raw, filepath.Dir(file))
	if err != nil {
		return nil, usageErr("policy %s: %w", file, err)
	}
	return p, nil
}

// parsePolicy parses a gate policy; relative files are in dir.
func parsePolicy(raw []byte, dir string) (*policy, error) {
	var gp gatePolicy
	if err := strictjson.Decode(raw, &gp); err != nil {
		return nil, err
	}
	p := &policy{gatePolicy: gp, approvals: map[string]resolvedRule{}}
	named := map[string]policyKey{}
	for name, f := range gp.Keys {
		k, id, err := event.LoadKeyRef("", f, dir)
		if err != nil {
			return nil, fmt.Errorf("keys.%s: %w", name, err)
		}
		named[name] = policyKey{label: name, id: id, key: k}
	}
	resolve := func(field, ref string) (policyKey, error) {
		if k, ok := named[ref]; ok {
			return k, nil
		}
		if keyIDRE.MatchString(ref) {
			return policyKey{label: ref, id: ref}, nil
		}
		return policyKey{}, fmt.Errorf("%s: %q is neither a name in keys nor a 64-hex-digit key id", field, ref)
	}
	for i, ref := range gp.RequiredSigners {
		k, err := resolve(fmt.Sprintf("requiredSigners[%d]", i), ref)
		if err != nil {
			return nil, err
		}
		p.signers = append(p.signers, k)
	}
	for env, r := range gp.Approvals {
		if r.Count < 0 {
			return nil, fmt.Errorf("approvals.%s.count: %d, want >= 0", env, r.Count)
		}
		if len(gp.PromotionPath) > 0 && !slices.Contains(gp.PromotionPath, env) {
			return nil, fmt.Errorf("approvals.%s: environment not on the promotionPath %v", env, gp.PromotionPath)
		}
		rr := resolvedRule{count: r.Count}
		for i, ref := range r.Keys {
			k, err := resolve(fmt.Sprintf("approvals.%s.keys[%d]", env, i), ref)
			if err != nil {
				return nil, err
			}
			rr.keys = append(rr.keys, k)
		}
		p.approvals[env] = rr
	}
	for i, env := range gp.PromotionPath {
		if env == "" || slices.Contains(gp.PromotionPath[:i], env) {
			return nil, fmt.Errorf("promotionPath[%d]: %q is empty or repeated", i, env)
		}
	}
	if gp.WitnessPolicy != "" {
		f := gp.WitnessPolicy
		if !filepath.IsAbs(f) {
			f = filepath.Join(dir, f)
		}
		w, err := loadWitnessPolicy(f)
		if err != nil {
			return nil, err
		}
		p.witness = w
	}
	return p, nil
}

// allowed reports whether v matches one of the patterns: exactly, or by
// prefix for a pattern ending in "*" (removed) or "/".
func allowed(v string, patterns []string) bool {
	for _, p := range patterns {
		switch {
		case strings.HasSuffix(p, "*"):
			if strings.HasPrefix(v, strings.TrimSuffix(p, "*")) {
				return true
			}
		case strings.HasSuffix(p, "/"):
			if strings.HasPrefix(v, p) {
				return true
			}
		case v == p:
			return true
		}
	}
	return false
}

// signedBy reports whether the envelope carries a signature by k: for a
// policy key with its public key, a signature the key verifies, whatever
// key id it carries (key ids are hints: cosign writes none); for a key
// named only by id, a signature with that key id (the log verified it
// against its keyring when it admitted the event).
func signedBy(ctx context.Context, pe *parsedEvent, k policyKey) bool {
	pae := pe.Env.PAE()
	for _, s := range pe.Env.Signatures {
		switch {
		case k.key == nil && s.KeyID == k.id:
			return true
		case k.key != nil && k.key.Verify(ctx, pae, s.Sig) == nil:
			return true
		}
	}
	return false
}

// distinctSigners counts the distinct key ids of an envelope's signatures
// (a signature without key id counts once).
func distinctSigners(pe *parsedEvent) int {
	ids := map[string]bool{}
	n := 0
	for _, s := range pe.Env.Signatures {
		if s.KeyID == "" {
			n++
		} else if !ids[s.KeyID] {
			ids[s.KeyID] = true
			n++
		}
	}
	return n
}

// decide checks the proven events about digest against the policy for a
// deployment to env and returns every reason to deny (none: allow).
func (p *policy) decide(ctx context.Context, digest, env string, events []*parsedEvent) []string {
	var reasons []string
	deny := func(format string, args ...any) { reasons = append(reasons, fmt.Sprintf(format, args...)) }
	if len(events) == 0 {
		return []string{fmt.Sprintf("the log has no events about %s", digest)}
	}

	// Builds.
	accepted := map[uint64]bool{}
	var buildReasons []string
	nBuilds := 0
	for _, pe := range events {
		b := pe.Event.Build
		if b == nil {
			continue
		}
		nBuilds++
		ok := true
		if len(p.Builders) > 0 && !allowed(b.BuilderID, p.Builders) {
			buildReasons = append(buildReasons, fmt.Sprintf("build event %d: builder %q is not allowed by the policy", pe.Index, b.BuilderID))
			ok = false
		}
		if len(p.SourceRepositories) > 0 && !allowed(b.SourceRepo, p.SourceRepositories) {
			buildReasons = append(buildReasons, fmt.Sprintf("build event %d: source repository %q is not allowed by the policy", pe.Index, b.SourceRepo))
			ok = false
		}
		if ok {
			accepted[pe.Index] = true
		}
	}
	switch {
	case nBuilds == 0:
		deny("no build event about %s", digest)
	case len(accepted) == 0:
		reasons = append(reasons, buildReasons...)
	}

	// Signatures.
	for _, k := range p.signers {
		found, other := false, -1
		for _, pe := range events {
			if pe.Event.Sign == nil || !signedBy(ctx, pe, k) {
				continue
			}
			if accepted[pe.Event.Sign.BuildIndex] {
				found = true
				break
			}
			other = int(pe.Index)
		}
		switch {
		case found:
		case other >= 0:
			deny("sign event %d by %s is for a build the policy does not accept", other, k)
		default:
			deny("no sign event signed by %s", k)
		}
	}

	// Promotions.
	type step struct {
		from, to string
		anyFrom  bool
	}
	var steps []step
	if len(p.PromotionPath) == 0 {
		steps = []step{{to: env, anyFrom: true}}
	} else if i := slices.Index(p.PromotionPath, env); i < 0 {
		deny("environment %q is not on the policy's promotion path %v", env, p.PromotionPath)
	} else {
		for j, to := range p.PromotionPath[:i+1] {
			s := step{to: to}
			if j > 0 {
				s.from = p.PromotionPath[j-1]
			}
			steps = append(steps, s)
		}
	}
	after := int64(-1) // the index of the previous step's promotion
	for _, s := range steps {
		rule := p.approvals[s.to]
		what := "promotion into " + s.to
		if !s.anyFrom && s.from != "" {
			what += " from " + s.from
		}
		var candidates []*parsedEvent
		var foreign []string // promotions of builds the policy does not accept
		for _, pe := range events {
			pr := pe.Event.Promote
			if pr == nil || pr.To != s.to || (!s.anyFrom && pr.From != s.from) || int64(pe.Index) <= after {
				continue
			}
			if !accepted[pr.BuildIndex] {
				foreign = append(foreign, fmt.Sprintf("%s at index %d is for a build the policy does not accept", what, pe.Index))
				continue
			}
			candidates = append(candidates, pe)
		}
		if len(candidates) == 0 {
			if len(foreign) == 0 {
				deny("no %s", what)
			}
			reasons = append(reasons, foreign...)
			continue
		}
		var unmet []string
		chosen := (*parsedEvent)(nil)
		for _, pe := range candidates {
			var miss []string
			if n := distinctSigners(pe); n < rule.count {
				miss = append(miss, fmt.Sprintf("%s at index %d has %d distinct signers, the policy wants %d", what, pe.Index, n, rule.count))
			}
			for _, k := range rule.keys {
				if !signedBy(ctx, pe, k) {
					miss = append(miss, fmt.Sprintf("%s at index %d is not approved by %s", what, pe.Index, k))
				}
			}
			if len(miss) == 0 {
				chosen = pe
				break
			}
			unmet = append(unmet, miss...)
		}
		if chosen == nil {
			reasons = append(reasons, unmet...)
			continue
		}
		after = int64(chosen.Index)
	}
	return reasons
}

// gateDecision is the gate's JSON output.
type gateDecision struct {
	Decision    string      `json:"decision"` // "allow" or "deny"
	Artifact    string      `json:"artifact"`
	Environment string      `json:"environment"`
	Reasons     []string    `json:"reasons"`
	Events      []eventJSON `json:"events"`
}

// isVerificationFailure reports whether err says that what the log sent
// does not verify (a reason to deny) rather than that it could not be
// read.
func isVerificationFailure(err error) bool {
	for _, e := range []error{client.ErrFormat, client.ErrLogSignature, client.ErrInclusionProof,
		client.ErrPolicyNotSatisfied, client.ErrEntryMismatch, client.ErrLogMisbehaved} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// gatherEvents searches the log for events about digest and proves and
// parses each. Events that fail are left out, with a reason.
func gatherEvents(ctx context.Context, c *client.Client, vkey string, digest string, witness []byte) ([]*parsedEvent, []string, error) {
	var events []*parsedEvent
	var reasons []string
	for r, err := range c.Search(ctx, client.SearchKey{Digest: digest}) {
		if err != nil {
			if isVerificationFailure(err) {
				return events, append(reasons, fmt.Sprintf("search: %v", err)), nil
			}
			return nil, nil, fmt.Errorf("search: %w", err)
		}
		bundle, err := c.ProofBundle(ctx, r.Index)
		if err == nil {
			_, err = client.VerifyBundle(bundle, vkey, client.VerifyOptions{WitnessPolicy: witness, Entry: r.Entry})
		}
		if err != nil {
			if !isVerificationFailure(err) {
				return nil, nil, fmt.Errorf("proving event %d: %w", r.Index, err)
			}
			reasons = append(reasons, fmt.Sprintf("event %d does not verify: %v", r.Index, err))
			continue
		}
		pe, err := parseEntry(r.Index, r.Entry)
		if err != nil {
			reasons = append(reasons, fmt.Sprintf("entry %d is not a valid event: %v", r.Index, err))
			continue
		}
		if !hasSubject(pe, digest) {
			reasons = append(reasons, fmt.Sprintf("%s event %d found by digest is not about %s", pe.Event.Type, r.Index, digest))
			continue
		}
		events = append(events, pe)
	}
	return events, reasons, nil
}

func newGateCmd(g *globals) *cobra.Command {
	var (
		s                     subjectFlags
		env, policyFile, wpol string
	)
	cmd := &cobra.Command{
		Use:   "gate --artifact FILE|--digest D --env ENV --policy FILE",
		Short: "The deploy gate: allow (exit 0) or deny (exit 1) a deployment",
		Long:  gateLong,
		Example: `  provlog gate --artifact app.tar.gz --env prod --policy deploy-policy.json && ./deploy.sh
  provlog gate --digest sha256:9f86d0... --env staging --policy deploy-policy.json --json`,
		Args: cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, _ []string) error {
			if env == "" || policyFile == "" {
				return usageErr("--env and --policy are required")
			}
			d, _, err := s.resolve()
			if err != nil {
				return err
			}
			p, err := loadPolicy(policyFile)
			if err != nil {
				return err
			}
			if wpol != "" {
				if p.witness, err = loadWitnessPolicy(wpol); err != nil {
					return err
				}
			}
			vkey, err := g.verifierKey()
			if err != nil {
				return err
			}
			ctx, c, done, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			events, reasons, err := gatherEvents(ctx, c, vkey, d.String(), p.witness)
			if err != nil {
				return err
			}
			reasons = append(reasons, p.decide(ctx, d.String(), env, events)...)
			return reportDecision(g, d.String(), env, events, reasons)
		}),
	}
	s.register(cmd, false)
	fl := cmd.Flags()
	fl.StringVar(&env, "env", "", "target `environment` (required)")
	fl.StringVar(&policyFile, "policy", "", "policy `file`, JSON (required; see above)")
	fl.StringVar(&wpol, "witness-policy", "", "tlog-policy `file` every event's checkpoint must meet (overrides the policy's)")
	return cmd
}

// reportDecision prints the decision and returns the error that makes a
// denial exit 1.
func reportDecision(g *globals, digest, env string, events []*parsedEvent, reasons []string) error {
	dec := gateDecision{Decision: "allow", Artifact: digest, Environment: env, Reasons: []string{}, Events: []eventJSON{}}
	if len(reasons) > 0 {
		dec.Decision, dec.Reasons = "deny", reasons
	}
	for _, pe := range events {
		dec.Events = append(dec.Events, pe.json())
	}
	if g.json {
		if err := g.printJSON(dec); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(g.stdout, "%s %s to %s\n", strings.ToUpper(dec.Decision), digest, env)
		for _, r := range reasons {
			fmt.Fprintf(g.stdout, "  - %s\n", r)
		}
		if len(reasons) == 0 {
			for _, pe := range events {
				fmt.Fprintf(g.stdout, "  %s\n", pe.summary())
			}
		}
	}
	if len(reasons) > 0 {
		return negative(fmt.Errorf("gate: deny %s to %s: %d reason(s)", digest, env, len(reasons)))
	}
	return nil
}
