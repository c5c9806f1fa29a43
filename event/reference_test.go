package event

// The parsers as they were before the single-pass rewrite (protojson and
// encoding/json/v2 after a strict-JSON pre-check), kept as the reference
// the new ones must agree with: same accepted inputs, same results, same
// FieldError fields.

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"strings"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	slsa "github.com/in-toto/attestation/go/predicates/provenance/v1"
	intoto "github.com/in-toto/attestation/go/v1"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
)

func refParseEnvelope(b []byte) (*Envelope, error) {
	if err := checkJSON(b, "envelope", len(b)); err != nil {
		return nil, err
	}
	var raw dsse.Envelope
	if err := jsonv2.Unmarshal(b, &raw, jsonv2.RejectUnknownMembers(true)); err != nil {
		return nil, fieldErr("envelope", "%s", refJSONReason(err))
	}
	if raw.PayloadType != PayloadType {
		return nil, fieldErr("envelope.payloadType", "%q, want %q", clip(raw.PayloadType), PayloadType)
	}
	payload, err := base64.StdEncoding.DecodeString(raw.Payload)
	if err != nil {
		return nil, fieldErr("envelope.payload", "not standard base64")
	}
	if len(payload) == 0 {
		return nil, fieldErr("envelope.payload", "empty")
	}
	if n := len(raw.Signatures); n == 0 || n > MaxSignatures {
		return nil, fieldErr("envelope.signatures", "%d signatures, want 1 to %d", n, MaxSignatures)
	}
	env := &Envelope{Payload: payload}
	for i, s := range raw.Signatures {
		field := fmt.Sprintf("envelope.signatures[%d]", i)
		if len(s.KeyID) > MaxKeyID || strings.ContainsFunc(s.KeyID, isControl) {
			return nil, fieldErr(field+".keyid", "longer than %d bytes or has control characters", MaxKeyID)
		}
		sig, err := base64.StdEncoding.DecodeString(s.Sig)
		if err != nil || len(sig) == 0 {
			return nil, fieldErr(field+".sig", "not non-empty standard base64")
		}
		env.Signatures = append(env.Signatures, Signature{KeyID: s.KeyID, Sig: sig})
	}
	slices.SortFunc(env.Signatures, compareSignatures)
	for i := 1; i < len(env.Signatures); i++ {
		if compareSignatures(env.Signatures[i-1], env.Signatures[i]) == 0 {
			return nil, fieldErr("envelope.signatures", "the same signature twice")
		}
	}
	return env, nil
}

func refJSONReason(err error) string { return strings.TrimPrefix(err.Error(), "json: ") }

var refDigestLen = map[string]int{"sha256": 64, "sha512": 128}

func refCheckDigest(d Digest, field string) error {
	n, ok := refDigestLen[d.Alg]
	if !ok {
		return fieldErr(field, "algorithm %q, want sha256 or sha512", clip(d.Alg))
	}
	if len(d.Hex) != n || strings.ToLower(d.Hex) != d.Hex {
		return fieldErr(field+"."+d.Alg, "want %d lowercase hex digits", n)
	}
	if _, err := hex.DecodeString(d.Hex); err != nil {
		return fieldErr(field+"."+d.Alg, "want %d lowercase hex digits", n)
	}
	return nil
}

func refParseStatement(payload []byte) (*Event, error) {
	if err := checkJSON(payload, "statement", MaxString); err != nil {
		return nil, err
	}
	rest, pred, err := refSplitPredicate(payload)
	if err != nil {
		return nil, err
	}
	var st intoto.Statement
	if err := protojson.Unmarshal(rest, &st); err != nil {
		return nil, fieldErr("statement", "%s", refProtoReason(err))
	}
	if pred != nil {
		st.Predicate = &structpb.Struct{} // stands for the predicate in Validate
	}
	if st.GetType() != intoto.StatementTypeUri {
		return nil, fieldErr("statement._type", "%q, want %q", clip(st.GetType()), intoto.StatementTypeUri)
	}
	ev := &Event{}
	if n := len(st.GetSubject()); n > MaxSubjects {
		return nil, fieldErr("statement.subject", "%d subjects, want at most %d", n, MaxSubjects)
	}
	for i, s := range st.GetSubject() {
		field := fmt.Sprintf("statement.subject[%d].digest", i)
		for alg, h := range s.GetDigest() {
			d := Digest{Alg: alg, Hex: h}
			if err := refCheckDigest(d, field); err != nil {
				return nil, err
			}
			ev.Subjects = append(ev.Subjects, d)
		}
	}
	if err := st.Validate(); err != nil {
		return nil, fieldErr("statement", "%v", err)
	}
	slices.SortFunc(ev.Subjects, func(a, b Digest) int { return strings.Compare(a.String(), b.String()) })
	ev.Subjects = slices.Compact(ev.Subjects)
	switch pt := st.GetPredicateType(); pt {
	case ProvenancePredicateType:
		ev.Type = TypeBuild
		ev.Build, err = refParseProvenance(pred)
	case SignPredicateType:
		ev.Type = TypeSign
		ev.Sign, err = refParseSign(pred)
	case PromotePredicateType:
		ev.Type = TypePromote
		ev.Promote, err = refParsePromote(pred)
	default:
		return nil, fieldErr("statement.predicateType", "%q, want %s, %s or %s", clip(pt), ProvenancePredicateType, SignPredicateType, PromotePredicateType)
	}
	if err != nil {
		return nil, err
	}
	return ev, nil
}

func refProtoReason(err error) string {
	s := err.Error()
	if i := strings.Index(s, "):"); i >= 0 && strings.HasPrefix(s, "proto:") {
		s = strings.TrimSpace(s[i+2:])
	}
	return strings.TrimPrefix(s, "proto: ")
}

func refSplitPredicate(payload []byte) (rest, pred []byte, err error) {
	dec := jsontext.NewDecoder(bytes.NewReader(payload))
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '{' {
		return nil, nil, fieldErr("statement", "not a JSON object")
	}
	rest = append(make([]byte, 0, len(payload)), '{')
	for dec.PeekKind() != '}' {
		tok, err := dec.ReadToken()
		if err != nil {
			return nil, nil, fieldErr("statement", "malformed JSON: %s", trimJSONError(err))
		}
		name := tok.String()
		val, err := dec.ReadValue()
		if err != nil {
			return nil, nil, fieldErr("statement", "malformed JSON: %s", trimJSONError(err))
		}
		if name == "predicate" {
			if val.Kind() != '{' {
				return nil, nil, fieldErr("statement.predicate", "not a JSON object")
			}
			pred = bytes.Clone(val)
			continue
		}
		if len(rest) > 1 {
			rest = append(rest, ',')
		}
		if rest, err = jsontext.AppendQuote(rest, name); err != nil {
			return nil, nil, fieldErr("statement", "%v", err)
		}
		rest = append(append(rest, ':'), val...)
	}
	return append(rest, '}'), pred, nil
}

var refCommitRE = regexp.MustCompile(`^[0-9a-f]{40}([0-9a-f]{24})?$`)

func refParseProvenance(pred []byte) (*Build, error) {
	var p slsa.Provenance
	if err := protojson.Unmarshal(pred, &p); err != nil {
		return nil, fieldErr("statement.predicate", "not SLSA Provenance v1: %s", refProtoReason(err))
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
	if src := bd.GetExternalParameters().GetFields()["source"].GetStructValue(); src != nil {
		b.SourceRepo = src.GetFields()["repository"].GetStringValue()
		b.SourceCommit = src.GetFields()["commit"].GetStringValue()
		if !refCommitRE.MatchString(b.SourceCommit) {
			return nil, fieldErr("statement.predicate.buildDefinition.externalParameters.source.commit", "want a 40- or 64-digit lowercase hex commit id")
		}
		return b, nil
	}
	for _, dep := range bd.GetResolvedDependencies() {
		if c, ok := dep.GetDigest()["gitCommit"]; ok && refCommitRE.MatchString(c) {
			b.SourceRepo, b.SourceCommit = dep.GetUri(), c
			return b, nil
		}
	}
	return nil, fieldErr("statement.predicate.buildDefinition", "no exact source: want externalParameters.source {repository, commit} or a resolvedDependencies entry with a gitCommit digest")
}

func refParseSign(pred []byte) (*SignPredicate, error) {
	var p SignPredicate
	if err := refStrictUnmarshal(pred, &p); err != nil {
		return nil, err
	}
	const f = "statement.predicate."
	switch {
	case !refToken(p.Algorithm):
		return nil, fieldErr(f+"algorithm", "want a short token such as ecdsa-p256-sha256")
	case p.KeyID == "" || len(p.KeyID) > MaxKeyID:
		return nil, fieldErr(f+"keyId", "want 1 to %d bytes", MaxKeyID)
	}
	if sig, err := base64.StdEncoding.DecodeString(p.Signature); err != nil || len(sig) == 0 {
		return nil, fieldErr(f+"signature", "want non-empty standard base64")
	}
	return &p, nil
}

func refParsePromote(pred []byte) (*PromotePredicate, error) {
	var p PromotePredicate
	if err := refStrictUnmarshal(pred, &p); err != nil {
		return nil, err
	}
	const f = "statement.predicate."
	switch {
	case !refToken(p.To):
		return nil, fieldErr(f+"to", "want an environment name ([a-z0-9._-], 1 to 64)")
	case p.From != "" && !refToken(p.From):
		return nil, fieldErr(f+"from", "want an environment name ([a-z0-9._-], 1 to 64)")
	case p.From == p.To:
		return nil, fieldErr(f+"to", "same as from")
	case p.Decision != DecisionApproved:
		return nil, fieldErr(f+"decision", "%q, want %q", clip(p.Decision), DecisionApproved)
	}
	return &p, nil
}

var refTokenRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

func refToken(s string) bool { return refTokenRE.MatchString(s) }

func refStrictUnmarshal(pred []byte, v any) error {
	if err := jsonv2.Unmarshal(pred, v, jsonv2.RejectUnknownMembers(true)); err != nil {
		return fieldErr("statement.predicate", "%s", refJSONReason(err))
	}
	return nil
}
