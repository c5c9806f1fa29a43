package event

import (
	"encoding/json"
	"fmt"
	"time"

	slsa "github.com/in-toto/attestation/go/predicates/provenance/v1"
	intoto "github.com/in-toto/attestation/go/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Subject names one artifact of a statement.
type Subject struct {
	Name   string
	Digest Digest
}

// NewStatement returns the JSON of an in-toto Statement v1 about subjects
// with the given predicate: a proto.Message (such as *slsa.Provenance), a
// json.RawMessage (a document kept as it is, such as an SBOM), or a
// JSON-encodable value (such as *SignPredicate). The result passes
// ParseStatement or an error is returned.
func NewStatement(predicateType string, subjects []Subject, predicate any) ([]byte, error) {
	if raw, ok := predicate.(json.RawMessage); ok {
		return newRawStatement(predicateType, subjects, raw)
	}
	var pj []byte
	var err error
	if m, ok := predicate.(proto.Message); ok {
		pj, err = protojson.Marshal(m)
	} else {
		pj, err = json.Marshal(predicate)
	}
	if err != nil {
		return nil, fmt.Errorf("encoding predicate: %w", err)
	}
	pred := &structpb.Struct{}
	if err := protojson.Unmarshal(pj, pred); err != nil {
		return nil, fmt.Errorf("predicate is not a JSON object: %w", err)
	}
	st := &intoto.Statement{Type: intoto.StatementTypeUri, PredicateType: predicateType, Predicate: pred}
	for _, s := range subjects {
		st.Subject = append(st.Subject, &intoto.ResourceDescriptor{Name: s.Name, Digest: map[string]string{s.Digest.Alg: s.Digest.Hex}})
	}
	b, err := protojson.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("encoding statement: %w", err)
	}
	if _, err := ParseStatement(b); err != nil {
		return nil, err
	}
	return b, nil
}

// newRawStatement is NewStatement with the predicate's JSON kept as it is
// (compacted): numbers, key order and all.
func newRawStatement(predicateType string, subjects []Subject, predicate json.RawMessage) ([]byte, error) {
	type descriptor struct {
		Name   string            `json:"name,omitempty"`
		Digest map[string]string `json:"digest"`
	}
	st := struct {
		Type          string          `json:"_type"`
		Subject       []descriptor    `json:"subject"`
		PredicateType string          `json:"predicateType"`
		Predicate     json.RawMessage `json:"predicate"`
	}{Type: StatementV1, PredicateType: predicateType, Predicate: predicate}
	for _, s := range subjects {
		st.Subject = append(st.Subject, descriptor{Name: s.Name, Digest: map[string]string{s.Digest.Alg: s.Digest.Hex}})
	}
	b, err := json.Marshal(st) // compacts and checks the predicate
	if err != nil {
		return nil, fmt.Errorf("encoding statement: %w", err)
	}
	if _, err := ParseStatement(b); err != nil {
		return nil, err
	}
	return b, nil
}

// BuildSpec describes a build for NewProvenance.
type BuildSpec struct {
	BuilderID, BuildType     string
	SourceRepo, SourceCommit string
	InvocationID             string
	StartedOn, FinishedOn    time.Time // zero: omitted
	// Dependencies are resolved dependencies: URI and digests.
	Dependencies []Dependency
}

// Dependency is a resolved build dependency.
type Dependency struct {
	URI    string
	Digest map[string]string
}

// NewProvenance returns a SLSA Provenance v1 predicate for a build, with the
// source in externalParameters.source and as a gitCommit dependency.
func NewProvenance(b BuildSpec) (*slsa.Provenance, error) {
	ext, err := structpb.NewStruct(map[string]any{
		"source": map[string]any{"repository": b.SourceRepo, "commit": b.SourceCommit},
	})
	if err != nil {
		return nil, err
	}
	p := &slsa.Provenance{
		BuildDefinition: &slsa.BuildDefinition{BuildType: b.BuildType, ExternalParameters: ext},
		RunDetails: &slsa.RunDetails{
			Builder:  &slsa.Builder{Id: b.BuilderID},
			Metadata: &slsa.BuildMetadata{InvocationId: b.InvocationID},
		},
	}
	if b.SourceRepo != "" {
		p.BuildDefinition.ResolvedDependencies = append(p.BuildDefinition.ResolvedDependencies,
			&intoto.ResourceDescriptor{Uri: b.SourceRepo, Digest: map[string]string{"gitCommit": b.SourceCommit}})
	}
	for _, d := range b.Dependencies {
		p.BuildDefinition.ResolvedDependencies = append(p.BuildDefinition.ResolvedDependencies,
			&intoto.ResourceDescriptor{Uri: d.URI, Digest: d.Digest})
	}
	if !b.StartedOn.IsZero() {
		p.RunDetails.Metadata.StartedOn = timestamppb.New(b.StartedOn)
	}
	if !b.FinishedOn.IsZero() {
		p.RunDetails.Metadata.FinishedOn = timestamppb.New(b.FinishedOn)
	}
	return p, nil
}
