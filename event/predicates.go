package event

import (
	"encoding/base64"
	"fmt"
	"math"
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
)

func knownPredicateType(t string) bool {
	return t == ProvenancePredicateType || t == SignPredicateType || t == PromotePredicateType
}

// predicate is a decoded predicate: one of its fields is set.
type predicate struct {
	build   *Build
	sign    *SignPredicate
	promote *PromotePredicate
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
	// The exact source: externalParameters.source, else a gitCommit dependency.
	if src := bd.GetExternalParameters().GetFields()["source"].GetStructValue(); src != nil {
		b.SourceRepo = src.GetFields()["repository"].GetStringValue()
		b.SourceCommit = src.GetFields()["commit"].GetStringValue()
		if !isCommit(b.SourceCommit) {
			return nil, fieldErr("statement.predicate.buildDefinition.externalParameters.source.commit", "want a 40- or 64-digit lowercase hex commit id")
		}
		return b, nil
	}
	for _, dep := range bd.GetResolvedDependencies() {
		if c, ok := dep.GetDigest()["gitCommit"]; ok && isCommit(c) {
			b.SourceRepo, b.SourceCommit = dep.GetUri(), c
			return b, nil
		}
	}
	return nil, fieldErr("statement.predicate.buildDefinition", "no exact source: want externalParameters.source {repository, commit} or a resolvedDependencies entry with a gitCommit digest")
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
		return fmt.Errorf("unknown member %q", clip(string(name)))
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
		return fmt.Errorf("unknown member %q", clip(string(name)))
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

// The sign and promote predicates are decoded as encoding/json/v2 decodes
// their Go types refusing unknown members: names match exactly, null is
// the zero value.

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
