package event

import (
	"encoding/base64"
	"fmt"
	"math"
	"strings"
	"time"

	slsa "github.com/in-toto/attestation/go/predicates/provenance/v1"
	intoto "github.com/in-toto/attestation/go/v1"
)

// Predicate types.
const (
	// ProvenancePredicateType is SLSA Provenance v1: build events.
	ProvenancePredicateType = "https://slsa.dev/provenance/v1"
	// SignPredicateType marks sign events (SignPredicate).
	SignPredicateType = "https://provlog.dev/attestation/sign/v1"
	// PromotePredicateType marks promotion events (PromotePredicate).
	PromotePredicateType = "https://provlog.dev/attestation/promote/v1"
	// SPDXPredicateType is an SPDX document inline (also with a version:
	// "https://spdx.dev/Document/v2.3"): sbom events.
	SPDXPredicateType = "https://spdx.dev/Document"
	// CycloneDXPredicateType is a CycloneDX BOM inline (also with a
	// version: "https://cyclonedx.org/bom/v1.6"): sbom events.
	CycloneDXPredicateType = "https://cyclonedx.org/bom"
	// SBOMRefPredicateType is an SBOM by reference: its digest, size and
	// media type (see SBOM): sbom events.
	SBOMRefPredicateType = "https://provlog.dev/attestation/sbom/v1"
	// TestResultPredicateType is an in-toto test result: test-result events.
	TestResultPredicateType = "https://in-toto.io/attestation/test-result/v0.1"
	// VSAPredicateType is a SLSA Verification Summary Attestation: vsa
	// events.
	VSAPredicateType = "https://slsa.dev/verification_summary/v1"
	// LinkPredicateType is an in-toto link (a step's materials and
	// command): link events.
	LinkPredicateType = "https://in-toto.io/attestation/link/v0.3"
)

// PredicateTypes are the predicate types provlog admits, the SBOM types
// also with a version suffix ("/v2.3", "/v1.6").
var PredicateTypes = []string{
	ProvenancePredicateType, SignPredicateType, PromotePredicateType,
	SPDXPredicateType, CycloneDXPredicateType, SBOMRefPredicateType,
	TestResultPredicateType, VSAPredicateType, LinkPredicateType,
	KeyringPredicateType, RevokePredicateType, QuarantinePredicateType,
}

// TypeOf returns the event type of a predicate type, "" for one provlog
// does not admit. For QuarantinePredicateType it returns TypeQuarantine;
// an event whose action is unquarantine is of type TypeUnquarantine.
func TypeOf(predicateType string) string {
	switch predicateType {
	case ProvenancePredicateType:
		return TypeBuild
	case SignPredicateType:
		return TypeSign
	case PromotePredicateType:
		return TypePromote
	case SBOMRefPredicateType:
		return TypeSBOM
	case TestResultPredicateType:
		return TypeTestResult
	case VSAPredicateType:
		return TypeVSA
	case LinkPredicateType:
		return TypeLink
	case KeyringPredicateType:
		return TypeKeyring
	case RevokePredicateType:
		return TypeRevoke
	case QuarantinePredicateType:
		return TypeQuarantine
	}
	if sbomFormat(predicateType) != "" {
		return TypeSBOM
	}
	return ""
}

func knownPredicateType(t string) bool { return TypeOf(t) != "" }

// sbomFormat returns "spdx" or "cyclonedx" for an inline SBOM predicate
// type (bare or with a version suffix "/v" followed by digits and dots),
// "" for any other.
func sbomFormat(t string) string {
	for _, f := range [...]struct{ prefix, format string }{{SPDXPredicateType, SBOMSPDX}, {CycloneDXPredicateType, SBOMCycloneDX}} {
		rest, ok := strings.CutPrefix(t, f.prefix)
		if ok && (rest == "" || isVersionSuffix(rest)) {
			return f.format
		}
	}
	return ""
}

// isVersionSuffix reports whether s is "/v" and a version: digits and
// dots, starting with a digit, at most 16 bytes.
func isVersionSuffix(s string) bool {
	v, ok := strings.CutPrefix(s, "/v")
	if !ok || v == "" || len(v) > 16 || v[0] < '0' || v[0] > '9' {
		return false
	}
	for i := range len(v) {
		if c := v[i]; (c < '0' || c > '9') && c != '.' {
			return false
		}
	}
	return true
}

// predicate is a decoded predicate: one of its fields is set.
type predicate struct {
	build   *Build
	sign    *SignPredicate
	promote *PromotePredicate
	sbom    *SBOM
	test    *TestResult
	vsa     *VSA
	link    *Link
	keyring *KeyringPredicate
	revoke  *RevokePredicate
	quar    *QuarantinePredicate
}

// predicate reads a predicate of a known type. Its errors are
// *FieldErrors, or the reader's.
func (r *jsonReader) predicate(predType string) (p predicate, err error) {
	switch predType {
	case ProvenancePredicateType:
		p.build, err = r.buildPredicate()
	case SignPredicateType:
		p.sign, err = r.signPredicate()
	case PromotePredicateType:
		p.promote, err = r.promotePredicate()
	case SBOMRefPredicateType:
		p.sbom, err = r.sbomRefPredicate()
	case TestResultPredicateType:
		p.test, err = r.testResultPredicate()
	case VSAPredicateType:
		p.vsa, err = r.vsaPredicate()
	case LinkPredicateType:
		p.link, err = r.linkPredicate()
	case KeyringPredicateType:
		p.keyring, err = r.keyringPredicate()
	case RevokePredicateType:
		p.revoke, err = r.revokePredicate()
	case QuarantinePredicateType:
		p.quar, err = r.quarantinePredicate()
	default:
		p.sbom, err = r.inlineSBOMPredicate(sbomFormat(predType))
	}
	return p, err
}

// MaxDependencies caps a build's resolved dependencies.
const MaxDependencies = 1024

// Build is what provlog reads from a SLSA Provenance v1 predicate.
type Build struct {
	BuilderID    string
	BuildType    string
	SourceRepo   string // may be empty when only a commit is known
	SourceCommit string // lowercase hex
	InvocationID string
	StartedOn    time.Time // zero if absent
	FinishedOn   time.Time // zero if absent
	// Provenance is the whole decoded predicate.
	Provenance *slsa.Provenance
}

// isCommit reports whether s is a 40- or 64-digit lowercase hex commit id.
func isCommit(s string) bool { return (len(s) == 40 || len(s) == 64) && isLowerHex(s) }

// buildSource returns a build's exact source: the repository URI as
// written (may be empty; see NormalizeRepo) and the commit. SLSA v1 leaves the schema of
// externalParameters to the build type, so it reads the shapes the common
// builders write, in this order:
//
//  1. externalParameters.source as an object: the repository in
//     "repository" or "uri", the commit in "commit" or in its "digest" as
//     "gitCommit" or "sha1" (provlog's own shape; the SLSA generators'
//     container-based builder writes {uri, digest: {sha1}}). A commit that is there
//     but is not a commit id is refused.
//  2. the first resolvedDependencies entry with a "gitCommit" digest
//     (GitHub's actions.github.io/buildtypes/workflow/v1, the SLSA
//     generators' BYOB builders, GitLab's own provenance), its uri the
//     repository;
//  3. the first resolvedDependencies entry whose uri starts "git+" and
//     whose digest has a "sha1" (Tekton Chains, the SLSA generators'
//     container-based builder).
//
// gitlab-runner's provenance labels the commit (a 40-digit git SHA-1)
// "sha256", which in-toto's ResourceDescriptor validation refuses, as
// provlog does; GitLab's own provenance writes "gitCommit" (2).
//
// A repository named by 1 but without a commit there is kept if 2 or 3
// find the commit.
func buildSource(bd *slsa.BuildDefinition) (repo, commit string, err error) {
	const f = "statement.predicate.buildDefinition"
	if src := bd.GetExternalParameters().GetFields()["source"]; src != nil {
		if s := src.GetStructValue(); s != nil {
			fields := s.GetFields()
			repo = cmpOr(fields["repository"].GetStringValue(), fields["uri"].GetStringValue())
			digest := fields["digest"].GetStructValue().GetFields()
			field, c := "commit", fields["commit"].GetStringValue()
			if _, ok := fields["commit"]; !ok {
				if g, ok := digest["gitCommit"]; ok {
					field, c = "digest.gitCommit", g.GetStringValue()
				} else if s1, ok := digest["sha1"]; ok {
					field, c = "digest.sha1", s1.GetStringValue()
				} else {
					field = ""
				}
			}
			if field != "" {
				if !isCommit(c) {
					return "", "", fieldErr(f+".externalParameters.source."+field, "want a 40- or 64-digit lowercase hex commit id")
				}
				return repo, c, nil
			}
		} else {
			repo = src.GetStringValue() // GitLab: "source": "https://gitlab.com/group/project"
		}
	}
	for _, dep := range bd.GetResolvedDependencies() {
		if c, ok := dep.GetDigest()["gitCommit"]; ok && isCommit(c) {
			return cmpOr(dep.GetUri(), repo), c, nil
		}
	}
	for _, dep := range bd.GetResolvedDependencies() {
		if c, ok := dep.GetDigest()["sha1"]; ok && isCommit(c) && strings.HasPrefix(dep.GetUri(), "git+") {
			return dep.GetUri(), c, nil
		}
	}

	return "", "", fieldErr(f, "no exact source: want externalParameters.source {repository, commit} (or {uri, digest: {gitCommit|sha1}}), a resolvedDependencies entry with a gitCommit digest, or a git+ resolvedDependencies entry with a sha1 digest")
}

// NormalizeRepo normalizes a source repository URI for matching: without
// a "git+" scheme prefix, a trailing "@ref" or ".git"
// (git+https://github.com/o/r@refs/heads/main is https://github.com/o/r).
func NormalizeRepo(uri string) string {
	uri = strings.TrimPrefix(uri, "git+")
	path := 0 // where the path begins: after the scheme and host
	if i := strings.Index(uri, "://"); i >= 0 {
		path = i + 3
		if j := strings.IndexByte(uri[path:], '/'); j >= 0 {
			path += j
		} else {
			path = len(uri)
		}
	}
	if i := strings.IndexByte(uri[path:], '@'); i >= 0 {
		uri = uri[:path+i]
	}
	return strings.TrimSuffix(uri, ".git")
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// buildPredicate reads a SLSA Provenance v1 predicate, decoded as protojson
// decodes it and valid as its Validate method says.
func (r *jsonReader) buildPredicate() (*Build, error) {
	p, err := r.provenance()
	if err != nil {
		return nil, r.fieldErr("statement.predicate", fmt.Errorf("not SLSA Provenance v1: %w", err))
	}
	if err := validateProvenance(p); err != nil {
		return nil, fieldErr("statement.predicate", "%v", err)
	}
	bd, rd := p.GetBuildDefinition(), p.GetRunDetails()
	if n := len(bd.GetResolvedDependencies()); n > MaxDependencies {
		return nil, fieldErr("statement.predicate.buildDefinition.resolvedDependencies", "%d, want at most %d", n, MaxDependencies)
	}
	b := &Build{
		BuilderID:    rd.GetBuilder().GetId(),
		BuildType:    bd.GetBuildType(),
		InvocationID: rd.GetMetadata().GetInvocationId(),
		Provenance:   p,
	}
	if t := rd.GetMetadata().GetStartedOn(); t != nil {
		b.StartedOn = t.AsTime()
	}
	if t := rd.GetMetadata().GetFinishedOn(); t != nil {
		b.FinishedOn = t.AsTime()
	}
	if !b.StartedOn.IsZero() && !b.FinishedOn.IsZero() && b.FinishedOn.Before(b.StartedOn) {
		return nil, fieldErr("statement.predicate.runDetails.metadata.finishedOn", "before startedOn")
	}
	repo, commit, err := buildSource(bd)
	if err != nil {
		return nil, err
	}
	b.SourceRepo, b.SourceCommit = repo, commit
	return b, nil
}

// validateProvenance fails where (*slsa.Provenance).Validate does (on p as
// decoded by provenance) but without its reflective proto.Equal calls: a
// build type, external parameters, a builder id and valid resource
// descriptors are required.
func validateProvenance(p *slsa.Provenance) error {
	bd, rd := p.GetBuildDefinition(), p.GetRunDetails()
	switch {
	case bd == nil:
		return slsa.ErrBuildDefinitionRequired
	case bd.GetBuildType() == "":
		return slsa.ErrBuildTypeRequired
	case len(bd.GetExternalParameters().GetFields()) == 0:
		return slsa.ErrExternalParamsRequired
	}
	if err := validateAll("buildDefinition.resolvedDependencies", bd.GetResolvedDependencies()); err != nil {
		return err
	}
	switch {
	case rd == nil:
		return slsa.ErrRunDetailsRequired
	case rd.GetBuilder() == nil:
		return slsa.ErrBuilderRequired
	case rd.GetBuilder().GetId() == "":
		return slsa.ErrBuilderIdRequired
	}
	if err := validateAll("runDetails.builder.builderDependencies", rd.GetBuilder().GetBuilderDependencies()); err != nil {
		return err
	}
	if m := rd.GetMetadata(); m != nil {
		if err := m.Validate(); err != nil {
			return fmt.Errorf("runDetails.metadata: %w", err)
		}
	}
	return validateAll("runDetails.byproducts", rd.GetByproducts())
}

func validateAll(field string, rds []*intoto.ResourceDescriptor) error {
	for i, rd := range rds {
		if err := rd.Validate(); err != nil {
			return fmt.Errorf("%s[%d]: %w", field, i, err)
		}
	}
	return nil
}

// SignPredicate records that an artifact (the statement's subject) was
// signed. JSON field names are as tagged.
type SignPredicate struct {
	// Algorithm of the artifact signature, e.g. "ecdsa-p256-sha256", "ed25519".
	Algorithm string `json:"algorithm"`
	// KeyID identifies the signing key.
	KeyID string `json:"keyId"`
	// Signature is the artifact signature, standard base64.
	Signature string `json:"signature"`
	// BuildIndex is the log index of the build event of the artifact.
	BuildIndex uint64 `json:"buildIndex"`
}

func (r *jsonReader) signPredicate() (*SignPredicate, error) {
	var p SignPredicate
	err := r.goObject(func(name []byte) error {
		switch string(name) {
		case "algorithm":
			return r.goString(&p.Algorithm)
		case "keyId":
			return r.goString(&p.KeyID)
		case "signature":
			return r.goString(&p.Signature)
		case "buildIndex":
			return r.goUint(&p.BuildIndex)
		}
		return r.skip() // in-toto: "Consumers MUST ignore unrecognized fields"
	})
	if err != nil {
		return nil, r.fieldErr("statement.predicate", err)
	}
	const f = "statement.predicate."
	switch {
	case !token(p.Algorithm):
		return nil, fieldErr(f+"algorithm", "want a short token such as ecdsa-p256-sha256")
	case p.KeyID == "" || len(p.KeyID) > MaxKeyID:
		return nil, fieldErr(f+"keyId", "want 1 to %d bytes", MaxKeyID)
	}
	if sig, err := base64.StdEncoding.DecodeString(p.Signature); err != nil || len(sig) == 0 {
		return nil, fieldErr(f+"signature", "want non-empty standard base64")
	}
	return &p, nil
}

// PromotePredicate records the promotion of an artifact (the statement's
// subject) from one environment to another. The envelope's signatures are
// the approvals.
type PromotePredicate struct {
	// From is the source environment; empty for a first environment.
	From string `json:"from,omitempty"`
	// To is the target environment.
	To string `json:"to"`
	// BuildIndex is the log index of the artifact's build event.
	BuildIndex uint64 `json:"buildIndex"`
	// Decision is the policy decision: "approved".
	Decision string `json:"decision"`
	// Rationale explains the decision.
	Rationale string `json:"rationale,omitempty"`
	// ChangeRef references the change request or ticket.
	ChangeRef string `json:"changeRef,omitempty"`
}

// DecisionApproved is the only decision a promotion event records.
const DecisionApproved = "approved"

func (r *jsonReader) promotePredicate() (*PromotePredicate, error) {
	var p PromotePredicate
	err := r.goObject(func(name []byte) error {
		switch string(name) {
		case "from":
			return r.goString(&p.From)
		case "to":
			return r.goString(&p.To)
		case "buildIndex":
			return r.goUint(&p.BuildIndex)
		case "decision":
			return r.goString(&p.Decision)
		case "rationale":
			return r.goString(&p.Rationale)
		case "changeRef":
			return r.goString(&p.ChangeRef)
		}
		return r.skip() // in-toto: "Consumers MUST ignore unrecognized fields"
	})
	if err != nil {
		return nil, r.fieldErr("statement.predicate", err)
	}
	const f = "statement.predicate."
	switch {
	case !token(p.To):
		return nil, fieldErr(f+"to", "want an environment name ([a-z0-9._-], 1 to 64)")
	case p.From != "" && !token(p.From):
		return nil, fieldErr(f+"from", "want an environment name ([a-z0-9._-], 1 to 64)")
	case p.From == p.To:
		return nil, fieldErr(f+"to", "same as from")
	case p.Decision != DecisionApproved:
		return nil, fieldErr(f+"decision", "%q, want %q", clip(p.Decision), DecisionApproved)
	}
	return &p, nil
}

// token reports whether s is a short token: [a-z0-9][a-z0-9._-]{0,63}.
func token(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := range len(s) {
		switch c := s[i]; {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case i > 0 && (c == '.' || c == '_' || c == '-'):
		default:
			return false
		}
	}
	return true
}

// The sign and promote predicates (and those of attestations.go) are
// decoded as encoding/json/v2 decodes their Go types: names match exactly,
// unknown members are skipped, null is the zero value.

// goObject reads an object, calling member for each member name; member
// must read the value.
func (r *jsonReader) goObject(member func(name []byte) error) error {
	return r.object(func() error { return r.mismatch("want a JSON object") }, member)
}

// goString reads a string or null into s.
func (r *jsonReader) goString(s *string) error {
	if ok, err := r.delim('n'); err != nil || ok {
		*s = ""
		return err
	}
	if r.peek() != '"' {
		return r.mismatch("want a string")
	}
	v, err := r.string()
	*s = v
	return err
}

// goUint reads an unsigned integer (digits only) or null into u.
func (r *jsonReader) goUint(u *uint64) error {
	if ok, err := r.delim('n'); err != nil || ok {
		*u = 0
		return err
	}
	if r.peek() != '0' {
		return r.mismatch("want an unsigned integer")
	}
	v, err := r.scalar()
	if err != nil {
		return err
	}
	n, ok := parseUint(v)
	if !ok {
		return fmt.Errorf("%s: want an unsigned 64-bit integer", clip(string(v)))
	}
	*u = n
	return nil
}

// parseUint parses decimal digits, refusing anything else and overflow.
func parseUint(v []byte) (uint64, bool) {
	var n uint64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (math.MaxUint64-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, len(v) > 0
}
