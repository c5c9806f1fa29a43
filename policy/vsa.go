package policy

// This file makes the gate's decision into the predicate of a SLSA
// Verification Summary Attestation (VSA), predicate type
// event.VSAPredicateType (https://slsa.dev/spec/v1.1/verification_summary).
// Its doc is the specification of what provlog writes.
//
// # The predicate
//
// For a deployment of sha256:9f86… to prod, allowed by a policy that names
// builders, sources, a required signer, a promotion path with approvals for
// prod and a witness policy, decided over the log entries 0 to 4 of the log
// example.com/provlog:
//
//	{
//	  "verifier": {"id": "https://github.com/provlog/provlog/gate",
//	               "version": {"provlog": "v1.4.0"}},
//	  "timeVerified": "2026-12-01T20:05:29Z",
//	  "resourceUri": "provlog:deploy/prod/sha256:9f86…",
//	  "policy": {
//	    "uri": "file:///etc/provlog/deploy-policy.json",
//	    "digest": {"sha256": "<sha256 of the policy file's bytes>"},
//	    "annotations": {
//	      "keys": {"signer": "<DSSE key id>", "bob": "<DSSE key id>"},
//	      "witnessPolicy": {"sha256": "<sha256 of the witness policy>"}
//	    }
//	  },
//	  "inputAttestations": [
//	    {"uri": "provlog://example.com/provlog/entries/0", "digest": {"sha256": "<sha256 of entry 0>"}},
//	    …
//	  ],
//	  "verificationResult": "PASSED",
//	  "verifiedLevels": ["PROVLOG_INCLUDED", "PROVLOG_WITNESSED", "PROVLOG_PROVENANCE",
//	    "PROVLOG_BUILDER", "PROVLOG_SOURCE", "PROVLOG_SIGNED", "PROVLOG_PROMOTED",
//	    "PROVLOG_PROMOTION_PATH", "PROVLOG_APPROVED"]
//	}
//
// The statement's subject is the artifact's digest (the caller makes it).
// Field by field:
//
//   - verifier.id: [VSAOptions.VerifierID], default [DefaultVerifierID].
//     The spec: "The identity MUST reflect the trust base that consumers
//     care about", and consumers "MUST accept only specific (signer,
//     verifier) pairs". The default names the software; an organization
//     running a gate should name itself. verifier.version is
//     [VSAOptions.VerifierVersion], absent if nil.
//   - timeVerified: [VSAOptions.Time] in UTC, RFC 3339.
//   - resourceUri: [VSAOptions.ResourceURI], default [DeployURI] of the
//     artifact and environment. The spec requires it "to prevent confusion
//     attacks. E.g., … a VSA indicating that a package passed the policy
//     for a dev environment should not be usable to deploy the package to
//     a prod environment": the default names the environment for that
//     reason, and a URI given instead must too.
//   - policy: uri is [VSAOptions.PolicyURI]; digest the sha256 of the
//     policy file's bytes. The file names other files that its digest does
//     not cover, so annotations pin them: "keys", each named key's DSSE
//     key id, and "witnessPolicy", the sha256 of the witness policy the
//     events were proven against ([Policy.Witness], which the caller may
//     have replaced), each absent if there is none.
//   - inputAttestations: every event of the decision ([Decision.Events])
//     of a kind Decide reads (build, sign and promote events; not SBOMs,
//     test results or earlier VSAs about the artifact, which it does not
//     use), in log order, by [EntryURI] and the sha256 of the logged entry
//     (the envelope's canonical encoding, the bytes the log hashes into its
//     tree). The spec: "If non-empty, this field MUST contain information
//     on all the attestations used"; it is [] when there were none.
//   - verificationResult: "PASSED" if the decision allows, else "FAILED".
//   - verifiedLevels: ["FAILED"] on failure (the spec: "or FAILED if
//     policy verification failed"). On success, one level per check the
//     policy made, in the order of the constants below. They are custom
//     levels: the spec says "Users MAY use custom values here but MUST NOT
//     use custom values starting with SLSA_", so each starts PROVLOG_. No
//     SLSA_BUILD_LEVEL_n is claimed, and slsaVersion is absent: the policy
//     lists allowed builder ids but says nothing of the SLSA build level
//     each is trusted at, so the gate cannot honestly state one.
//
// Only fields the spec defines are written, plus the annotations of the
// policy's resource descriptor.

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/provlog/provlog/event"
)

// DefaultVerifierID is the verifier.id of a VSA when VSAOptions.VerifierID
// is empty: the gate's software, not who ran it.
const DefaultVerifierID = "https://github.com/provlog/provlog/gate"

// The verifiedLevels of a VSA that passed: each says a check the policy
// made, and appears only if the policy made it.
const (
	// LevelIncluded: every input attestation was proven included in a
	// checkpoint signed by the log's key. Always: it is Decide's
	// precondition on its events (the caller proves them).
	LevelIncluded = "PROVLOG_INCLUDED"
	// LevelWitnessed: each of those checkpoints met the witness policy
	// (Policy.Witness is set; the caller proves with it).
	LevelWitnessed = "PROVLOG_WITNESSED"
	// LevelProvenance: a SLSA provenance (build event) about the artifact
	// that the policy accepts. Always: Decide requires one.
	LevelProvenance = "PROVLOG_PROVENANCE"
	// LevelBuilder: its builder id is one the policy allows (builders).
	LevelBuilder = "PROVLOG_BUILDER"
	// LevelSource: its source repository is one the policy allows
	// (sourceRepositories).
	LevelSource = "PROVLOG_SOURCE"
	// LevelReproducible, followed by N: at least N independent accepted
	// builds (reproducible, without sameSource). A level implies those with
	// a smaller N.
	LevelReproducible = "PROVLOG_REPRODUCIBLE_"
	// LevelReproducibleSameSource, followed by N: the same, all from one
	// source repository and commit (reproducible with sameSource).
	LevelReproducibleSameSource = "PROVLOG_REPRODUCIBLE_SAME_SOURCE_"
	// LevelSigned: each required signer signed a sign event about an
	// accepted build (requiredSigners).
	LevelSigned = "PROVLOG_SIGNED"
	// LevelPromoted: a promotion of an accepted build into the
	// environment. Always: Decide requires one.
	LevelPromoted = "PROVLOG_PROMOTED"
	// LevelPromotionPath: promotions along the whole promotion path up to
	// the environment, in log order (promotionPath).
	LevelPromotionPath = "PROVLOG_PROMOTION_PATH"
	// LevelApproved: those promotions met the approval rules of their
	// environments (approvals with a count or keys for one of them).
	LevelApproved = "PROVLOG_APPROVED"
)

// VSAOptions are what a VSA says beyond the decision and the policy.
type VSAOptions struct {
	// VerifierID is verifier.id, an absolute URI. Zero: DefaultVerifierID.
	VerifierID string
	// VerifierVersion is verifier.version, component to version. Nil:
	// absent.
	VerifierVersion map[string]string
	// Time is timeVerified. Required.
	Time time.Time
	// ResourceURI is resourceUri, an absolute URI that names the
	// environment (see the file's doc). Zero: DeployURI(artifact,
	// environment).
	ResourceURI string
	// PolicyURI is policy.uri, an absolute URI. Required.
	PolicyURI string
	// Origin is the log's origin (its checkpoints' first line), naming
	// the input attestations (EntryURI). Required.
	Origin string
}

// VSAPredicate is the predicate of a VSA (see the file's doc), for
// encoding/json.
type VSAPredicate struct {
	Verifier           VSAVerifier     `json:"verifier"`
	TimeVerified       string          `json:"timeVerified"`
	ResourceURI        string          `json:"resourceUri"`
	Policy             VSADescriptor   `json:"policy"`
	InputAttestations  []VSADescriptor `json:"inputAttestations"`
	VerificationResult string          `json:"verificationResult"`
	VerifiedLevels     []string        `json:"verifiedLevels"`
}

// VSAVerifier is a VSA's verifier.
type VSAVerifier struct {
	ID      string            `json:"id"`
	Version map[string]string `json:"version,omitempty"`
}

// VSADescriptor is an in-toto ResourceDescriptor with the fields a VSA
// uses.
type VSADescriptor struct {
	URI         string            `json:"uri"`
	Digest      map[string]string `json:"digest"`
	Annotations map[string]any    `json:"annotations,omitempty"`
}

// ErrVSAOptions is wrapped by VSA's errors about its options.
var ErrVSAOptions = errors.New("VSA options")

// VSA returns the predicate of a VSA of the decision d, which p made over
// proven events (see Decide), where policyFile is the file p was parsed
// from. The caller is trusted on both: VSA cannot tell whether d is p's or
// policyFile is p's source (provlog gate re-parses the file and decides
// again to know). Errors wrap ErrVSAOptions and name the option.
func (p *Policy) VSA(d *Decision, policyFile []byte, o VSAOptions) (*VSAPredicate, error) {
	if o.VerifierID == "" {
		o.VerifierID = DefaultVerifierID
	}
	if o.ResourceURI == "" {
		o.ResourceURI = DeployURI(d.Artifact, d.Environment)
	}
	if err := o.check(); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(policyFile)
	v := &VSAPredicate{
		Verifier:           VSAVerifier{ID: o.VerifierID, Version: o.VerifierVersion},
		TimeVerified:       o.Time.UTC().Format(time.RFC3339Nano),
		ResourceURI:        o.ResourceURI,
		Policy:             VSADescriptor{URI: o.PolicyURI, Digest: sha256Set(sum[:]), Annotations: p.pins()},
		InputAttestations:  []VSADescriptor{},
		VerificationResult: event.ResultFailed,
		VerifiedLevels:     []string{event.ResultFailed},
	}
	events := slices.SortedFunc(slices.Values(d.Events), func(a, b Event) int { return cmp.Compare(a.Index, b.Index) })
	for _, e := range events {
		if e.Envelope == nil || e.Event == nil {
			return nil, fmt.Errorf("decision event %d: no envelope or no parsed event", e.Index)
		}
		if ev := e.Event; ev.Build == nil && ev.Sign == nil && ev.Promote == nil {
			continue // not an input of Decide
		}
		sum := sha256.Sum256(e.Envelope.Canonical())
		v.InputAttestations = append(v.InputAttestations, VSADescriptor{URI: EntryURI(o.Origin, e.Index), Digest: sha256Set(sum[:])})
	}
	if d.Allowed() {
		v.VerificationResult, v.VerifiedLevels = event.ResultPassed, p.levels(d.Environment)
	}
	return v, nil
}

// check checks the options VSA does not default.
func (o VSAOptions) check() error {
	for _, u := range []struct{ name, v string }{
		{"verifier.id", o.VerifierID}, {"resourceUri", o.ResourceURI}, {"policy.uri", o.PolicyURI},
	} {
		if !IsAbsoluteURI(u.v) {
			return fmt.Errorf("%w: %s %q: want an absolute URI (scheme:…)", ErrVSAOptions, u.name, u.v)
		}
	}
	switch {
	case o.Time.IsZero():
		return fmt.Errorf("%w: timeVerified: zero time", ErrVSAOptions)
	case o.Origin == "":
		return fmt.Errorf("%w: no log origin to name the inputAttestations by", ErrVSAOptions)
	}
	return nil
}

// IsAbsoluteURI reports whether s is what VSA takes for a URI option: an
// absolute URI (RFC 3986 section 4.3: a scheme, no fragment) without
// spaces or control characters.
func IsAbsoluteURI(s string) bool {
	if strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return false
	}
	u, err := url.Parse(s)
	return err == nil && u.Scheme != "" && u.Fragment == "" && !strings.Contains(s, "#")
}

// levels returns the verifiedLevels of a passed decision for env: the
// checks the policy makes (see the Level constants).
func (p *Policy) levels(env string) []string {
	l := []string{LevelIncluded}
	if p.Witness != nil {
		l = append(l, LevelWitnessed)
	}
	l = append(l, LevelProvenance)
	if len(p.builders) > 0 {
		l = append(l, LevelBuilder)
	}
	if len(p.sources) > 0 {
		l = append(l, LevelSource)
	}
	if r := p.reproducible; r != nil {
		prefix := LevelReproducible
		if r.sameSource {
			prefix = LevelReproducibleSameSource
		}
		l = append(l, prefix+strconv.Itoa(r.builders))
	}
	if len(p.signers) > 0 {
		l = append(l, LevelSigned)
	}
	l = append(l, LevelPromoted)
	envs := []string{env}
	if i := slices.Index(p.promotionPath, env); i >= 0 {
		l = append(l, LevelPromotionPath)
		envs = p.promotionPath[:i+1]
	}
	for _, e := range envs {
		if a, ok := p.approvals[e]; ok && (a.count > 0 || len(a.keys) > 0) {
			return append(l, LevelApproved)
		}
	}
	return l
}

// pins returns the annotations of the policy's descriptor: what the policy
// file names that its digest does not cover. Nil if none.
func (p *Policy) pins() map[string]any {
	a := map[string]any{}
	if len(p.named) > 0 {
		keys := map[string]string{}
		for _, k := range p.named {
			keys[k.label] = k.id
		}
		a["keys"] = keys
	}
	if p.Witness != nil {
		sum := sha256.Sum256(p.Witness)
		a["witnessPolicy"] = sha256Set(sum[:])
	}
	if len(a) == 0 {
		return nil
	}
	return a
}

// DeployURI is the default resourceUri of a VSA about deploying the
// artifact (a digest, "sha256:…") to env:
//
//	provlog:deploy/<env>/<digest>
//
// each part percent-encoded as a URI path segment (RFC 3986 section 3.3),
// e.g. provlog:deploy/prod/sha256:9f86d081….
func DeployURI(artifact, env string) string {
	return "provlog:deploy/" + url.PathEscape(env) + "/" + url.PathEscape(artifact)
}

// EntryURI is the URI of the entry at index in the log with the origin:
//
//	provlog://<origin>/entries/<index>
//
// with each "/"-separated part of the origin percent-encoded as a URI path
// segment (RFC 3986 section 3.3), e.g. provlog://example.com/provlog/entries/4.
// The index is the last path segment. "provlog get <index>" fetches the
// entry from the log whose key names the origin.
func EntryURI(origin string, index uint64) string {
	parts := strings.Split(origin, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return "provlog://" + strings.Join(parts, "/") + "/entries/" + strconv.FormatUint(index, 10)
}

// sha256Set is a DigestSet of one sha256 digest.
func sha256Set(sum []byte) map[string]string {
	return map[string]string{"sha256": hex.EncodeToString(sum)}
}
