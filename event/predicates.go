package event

import (
	"encoding/base64"
	"regexp"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	slsa "github.com/in-toto/attestation/go/predicates/provenance/v1"
	"google.golang.org/protobuf/encoding/protojson"
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

var commitRE = regexp.MustCompile(`^[0-9a-f]{40}([0-9a-f]{24})?$`)

func parseProvenance(pred []byte) (*Build, error) {
	var p slsa.Provenance
	if err := protojson.Unmarshal(pred, &p); err != nil {
		return nil, fieldErr("statement.predicate", "not SLSA Provenance v1: %s", protoReason(err))
	}
	if err := p.Validate(); err != nil {
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
		Provenance:   &p,
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
		if !commitRE.MatchString(b.SourceCommit) {
			return nil, fieldErr("statement.predicate.buildDefinition.externalParameters.source.commit", "want a 40- or 64-digit lowercase hex commit id")
		}
		return b, nil
	}
	for _, dep := range bd.GetResolvedDependencies() {
		if c, ok := dep.GetDigest()["gitCommit"]; ok && commitRE.MatchString(c) {
			b.SourceRepo, b.SourceCommit = dep.GetUri(), c
			return b, nil
		}
	}
	return nil, fieldErr("statement.predicate.buildDefinition", "no exact source: want externalParameters.source {repository, commit} or a resolvedDependencies entry with a gitCommit digest")
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

func parseSign(pred []byte) (*SignPredicate, error) {
	var p SignPredicate
	if err := strictUnmarshal(pred, &p); err != nil {
		return nil, err
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

func parsePromote(pred []byte) (*PromotePredicate, error) {
	var p PromotePredicate
	if err := strictUnmarshal(pred, &p); err != nil {
		return nil, err
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

var tokenRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

func token(s string) bool { return tokenRE.MatchString(s) }

// strictUnmarshal decodes a predicate object, refusing unknown fields.
func strictUnmarshal(pred []byte, v any) error {
	if err := jsonv2.Unmarshal(pred, v, jsonv2.RejectUnknownMembers(true)); err != nil {
		return fieldErr("statement.predicate", "%s", jsonReason(err))
	}
	return nil
}
