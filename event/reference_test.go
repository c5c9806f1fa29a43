package event

// The parsers as they were before the single-pass rewrite (protojson and
// encoding/json/v2 after a strict-JSON pre-check), kept as the reference
// the new ones must agree with: same accepted inputs, same results, same
// FieldError fields.

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"maps"
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
	"google.golang.org/protobuf/types/known/timestamppb"
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
	payload, err := refBase64(raw.Payload)
	if err != nil {
		return nil, fieldErr("envelope.payload", "not base64")
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
		sig, err := refBase64(s.Sig)
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

// refBase64 decodes DSSE base64: "Either standard or URL-safe base64
// encodings are allowed", padded or not, line breaks skipped.
func refBase64(s string) ([]byte, error) {
	s = strings.NewReplacer("\r", "", "\n", "").Replace(s)
	var err error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		var b []byte
		if b, err = enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, err
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
	if err := refProto.Unmarshal(rest, &st); err != nil {
		return nil, fieldErr("statement", "%s", refProtoReason(err))
	}
	if pred != nil {
		st.Predicate = &structpb.Struct{} // stands for the predicate in Validate
	}
	if st.GetType() != intoto.StatementTypeUri && st.GetType() != "https://in-toto.io/Statement/v0.1" {
		return nil, fieldErr("statement._type", "%q, want %q or %q", clip(st.GetType()), intoto.StatementTypeUri, "https://in-toto.io/Statement/v0.1")
	}
	ev := &Event{StatementType: st.GetType(), PredicateType: st.GetPredicateType()}
	most := MaxSubjects
	if st.GetPredicateType() == "https://provlog.dev/attestation/keyring/v1" {
		most = 256
	}
	if n := len(st.GetSubject()); n > most {
		return nil, fieldErr("statement.subject", "%d subjects, want at most %d", n, most)
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
	switch pt := st.GetPredicateType(); {
	case pt == ProvenancePredicateType:
		ev.Type = TypeBuild
		ev.Build, err = refParseProvenance(pred)
	case pt == SignPredicateType:
		ev.Type = TypeSign
		ev.Sign, err = refParseSign(pred)
	case pt == PromotePredicateType:
		ev.Type = TypePromote
		ev.Promote, err = refParsePromote(pred)
	case refSPDXRE.MatchString(pt):
		ev.Type = TypeSBOM
		ev.SBOM, err = refParseInlineSBOM(pred, "spdx")
	case refCycloneDXRE.MatchString(pt):
		ev.Type = TypeSBOM
		ev.SBOM, err = refParseInlineSBOM(pred, "cyclonedx")
	case pt == "https://provlog.dev/attestation/sbom/v1":
		ev.Type = TypeSBOM
		ev.SBOM, err = refParseSBOMRef(pred)
	case pt == "https://in-toto.io/attestation/test-result/v0.1":
		ev.Type = TypeTestResult
		ev.TestResult, err = refParseTestResult(pred)
	case pt == "https://slsa.dev/verification_summary/v1":
		ev.Type = TypeVSA
		ev.VSA, err = refParseVSA(pred)
	case pt == "https://in-toto.io/attestation/link/v0.3":
		ev.Type = TypeLink
		ev.Link, err = refParseLink(pred)
	case pt == "https://provlog.dev/attestation/keyring/v1":
		ev.Type = TypeKeyring
		ev.Keyring, err = refParseKeyring(pred)
	case pt == "https://provlog.dev/attestation/revoke/v1":
		ev.Type = TypeRevoke
		ev.Revoke, err = refParseRevoke(pred)
	case pt == "https://provlog.dev/attestation/quarantine/v1":
		ev.Type = TypeQuarantine
		ev.Quarantine, err = refParseQuarantine(pred)
		if err == nil && ev.Quarantine.Action == "unquarantine" {
			ev.Type = TypeUnquarantine
		}
	default:
		return nil, fieldErr("statement.predicateType", "%q: not admitted", clip(pt))
	}
	if err != nil {
		return nil, err
	}
	if err := refTrustSubjects(ev, len(st.GetSubject())); err != nil {
		return nil, err
	}
	if ev.Keyring != nil && len(payload) > 40<<10 {
		return nil, fieldErr("statement", "too large")
	}
	return ev, nil
}

var (
	refSPDXRE      = regexp.MustCompile(`^https://spdx\.dev/Document(/v[0-9][0-9.]{0,15})?$`)
	refCycloneDXRE = regexp.MustCompile(`^https://cyclonedx\.org/bom(/v[0-9][0-9.]{0,15})?$`)
)

func refParseInlineSBOM(pred []byte, format string) (*SBOM, error) {
	s := &SBOM{Format: format, Inline: true}
	if format == "spdx" {
		var doc struct {
			SPDXVersion string         `json:"spdxVersion"`
			Context     jsontext.Value `json:"@context"`
		}
		if err := refUnmarshal(pred, &doc); err != nil {
			return nil, err
		}
		s.SpecVersion, s.MediaType = doc.SPDXVersion, "application/spdx+json"
		if !strings.HasPrefix(doc.SPDXVersion, "SPDX-") && doc.Context == nil {
			return nil, fieldErr("statement.predicate.spdxVersion", "not SPDX")
		}
		return s, nil
	}
	var doc struct {
		BOMFormat   string `json:"bomFormat"`
		SpecVersion string `json:"specVersion"`
	}
	if err := refUnmarshal(pred, &doc); err != nil {
		return nil, err
	}
	s.SpecVersion, s.MediaType = doc.SpecVersion, "application/vnd.cyclonedx+json"
	switch {
	case doc.BOMFormat != "CycloneDX":
		return nil, fieldErr("statement.predicate.bomFormat", "not CycloneDX")
	case doc.SpecVersion == "":
		return nil, fieldErr("statement.predicate.specVersion", "missing")
	}
	return s, nil
}

var refMediaTypeRE = regexp.MustCompile(`^[!-:<-~]+/[!-:<-~]+(;[!-~]*)?$`)

func refParseSBOMRef(pred []byte) (*SBOM, error) {
	var p struct {
		Format      string            `json:"format"`
		MediaType   string            `json:"mediaType"`
		Digest      map[string]string `json:"digest"`
		Size        uint64            `json:"size"`
		URI         string            `json:"uri"`
		SpecVersion string            `json:"specVersion"`
	}
	if err := refUnmarshal(pred, &p); err != nil {
		return nil, err
	}
	const f = "statement.predicate."
	s := &SBOM{Format: p.Format, MediaType: p.MediaType, Size: p.Size, URI: p.URI, SpecVersion: p.SpecVersion}
	switch {
	case p.Format != "spdx" && p.Format != "cyclonedx":
		return nil, fieldErr(f+"format", "bad")
	case len(p.MediaType) > 255 || !refMediaTypeRE.MatchString(p.MediaType):
		return nil, fieldErr(f+"mediaType", "bad")
	}
	if h, ok := p.Digest["sha256"]; ok {
		s.Digest = Digest{Alg: "sha256", Hex: h}
	} else if h, ok := p.Digest["sha512"]; ok {
		s.Digest = Digest{Alg: "sha512", Hex: h}
	} else {
		return nil, fieldErr(f+"digest", "missing")
	}
	if err := refCheckDigest(s.Digest, f+"digest"); err != nil {
		return nil, err
	}
	if p.Size == 0 {
		return nil, fieldErr(f+"size", "missing")
	}
	return s, nil
}

// refDescriptors decodes in-toto ResourceDescriptors as protojson does
// and validates them.
func refDescriptors(raw []jsontext.Value, field string) ([]*intoto.ResourceDescriptor, error) {
	var out []*intoto.ResourceDescriptor
	for _, r := range raw {
		rd := &intoto.ResourceDescriptor{}
		if err := refProto.Unmarshal(r, rd); err != nil {
			return nil, fieldErr("statement.predicate", "%s", refProtoReason(err))
		}
		out = append(out, rd)
	}
	for _, rd := range out {
		if err := rd.Validate(); err != nil {
			return nil, fieldErr("statement.predicate."+field, "%v", err)
		}
	}
	return out, nil
}

func refParseTestResult(pred []byte) (*TestResult, error) {
	var p struct {
		Result        string           `json:"result"`
		HasConfig     jsontext.Value   `json:"configuration"`
		URL           string           `json:"url"`
		Configuration []jsontext.Value `json:"-"`
		Passed        []string         `json:"passedTests"`
		Warned        []string         `json:"warnedTests"`
		Failed        []string         `json:"failedTests"`
	}
	if err := refUnmarshal(pred, &p); err != nil {
		return nil, err
	}
	t := &TestResult{Result: p.Result, URL: p.URL, PassedTests: p.Passed, WarnedTests: p.Warned, FailedTests: p.Failed}
	if p.HasConfig != nil && p.HasConfig.Kind() != 'n' {
		if err := jsonv2.Unmarshal(p.HasConfig, &p.Configuration); err != nil {
			return nil, fieldErr("statement.predicate", "%s", refJSONReason(err))
		}
	}
	var err error
	if t.Configuration, err = refDescriptors(p.Configuration, "configuration"); err != nil {
		return nil, err
	}
	if !slices.Contains([]string{"PASSED", "WARNED", "FAILED"}, p.Result) {
		return nil, fieldErr("statement.predicate.result", "bad")
	}
	if p.HasConfig == nil || p.HasConfig.Kind() != '[' {
		return nil, fieldErr("statement.predicate.configuration", "missing")
	}
	return t, nil
}

func refParseVSA(pred []byte) (*VSA, error) {
	var p struct {
		Verifier *struct {
			ID string `json:"id"`
		} `json:"verifier"`
		TimeVerified jsontext.Value `json:"timeVerified"`
		ResourceURI  string         `json:"resourceUri"`
		Policy       *struct {
			URI string `json:"uri"`
		} `json:"policy"`
		Result  string   `json:"verificationResult"`
		Levels  []string `json:"verifiedLevels"`
		Version string   `json:"slsaVersion"`
	}
	if err := refUnmarshal(pred, &p); err != nil {
		return nil, err
	}
	v := &VSA{ResourceURI: p.ResourceURI, Result: p.Result, VerifiedLevels: p.Levels, SLSAVersion: p.Version}
	if p.Verifier != nil {
		v.VerifierID = p.Verifier.ID
	}
	if p.Policy != nil {
		v.PolicyURI = p.Policy.URI
	}
	if p.TimeVerified != nil && p.TimeVerified.Kind() != 'n' {
		var ts timestamppb.Timestamp
		if err := protojson.Unmarshal(p.TimeVerified, &ts); err != nil {
			return nil, fieldErr("statement.predicate", "timeVerified: %v", err)
		}
		v.TimeVerified = ts.AsTime()
	}
	switch {
	case v.VerifierID == "":
		return nil, fieldErr("statement.predicate.verifier.id", "missing")
	case v.ResourceURI == "":
		return nil, fieldErr("statement.predicate.resourceUri", "missing")
	case v.PolicyURI == "":
		return nil, fieldErr("statement.predicate.policy.uri", "missing")
	case v.Result != "PASSED" && v.Result != "FAILED":
		return nil, fieldErr("statement.predicate.verificationResult", "bad")
	case len(v.VerifiedLevels) == 0:
		return nil, fieldErr("statement.predicate.verifiedLevels", "missing")
	}
	return v, nil
}

func refParseLink(pred []byte) (*Link, error) {
	var p struct {
		Name      string           `json:"name"`
		Command   []string         `json:"command"`
		Materials []jsontext.Value `json:"materials"`
	}
	if err := refUnmarshal(pred, &p); err != nil {
		return nil, err
	}
	l := &Link{Name: p.Name, Command: p.Command}
	if p.Name == "" {
		return nil, fieldErr("statement.predicate.name", "missing")
	}
	var err error
	if l.Materials, err = refDescriptors(p.Materials, "materials"); err != nil {
		return nil, err
	}
	return l, nil
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

// refProto decodes as the in-toto and SLSA parsing rules require:
// unknown fields ignored.
var refProto = protojson.UnmarshalOptions{DiscardUnknown: true}

func refParseProvenance(pred []byte) (*Build, error) {
	var p slsa.Provenance
	if err := refProto.Unmarshal(pred, &p); err != nil {
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
	// The source shapes are read from the decoded message by the same code.
	var err error
	if b.SourceRepo, b.SourceCommit, err = buildSource(bd); err != nil {
		return nil, err
	}
	return b, nil
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

func refUnmarshal(pred []byte, v any) error { return refStrictUnmarshal(pred, v) }

func refStrictUnmarshal(pred []byte, v any) error {
	if err := jsonv2.Unmarshal(pred, v); err != nil { // unknown members ignored
		return fieldErr("statement.predicate", "%s", refJSONReason(err))
	}
	return nil
}

var refRoles = []string{"builder", "signer", "promoter", "approver", "attester", "verifier", "security"}

func refParseKeyring(pred []byte) (*KeyringPredicate, error) {
	var p KeyringPredicate // decoded as tagged; Key and KeyID are "-"
	if err := refUnmarshal(pred, &p); err != nil {
		return nil, err
	}
	const f = "statement.predicate."
	if len(p.Keys) > 256 {
		return nil, fieldErr(f+"keys", "too many")
	}
	if len(p.Environments) > 64 {
		return nil, fieldErr(f+"environments", "too many")
	}
	var names, ids []string
	for i := range p.Keys {
		k := &p.Keys[i]
		kf := fmt.Sprintf("%skeys[%d].", f, i)
		if k.Name == "" || len(k.Name) > 128 || slices.Contains(names, k.Name) {
			return nil, fieldErr(kf+"name", "bad")
		}
		names = append(names, k.Name)
		if k.PublicKey == "" || len(k.PublicKey) > 4096 {
			return nil, fieldErr(kf+"publicKey", "bad")
		}
		key, err := LoadKey([]byte(k.PublicKey))
		if err != nil {
			return nil, fieldErr(kf+"publicKey", "bad")
		}
		if k.KeyID, err = key.KeyID(); err != nil || slices.Contains(ids, k.KeyID) {
			return nil, fieldErr(kf+"publicKey", "bad")
		}
		k.Key, ids = key, append(ids, k.KeyID)
		for j, r := range k.Roles {
			if !slices.Contains(refRoles, r) || slices.Index(k.Roles, r) != j {
				return nil, fieldErr(fmt.Sprintf("%sroles[%d]", kf, j), "bad")
			}
		}
		if k.NotBefore != nil && k.NotAfter != nil && *k.NotAfter < *k.NotBefore {
			return nil, fieldErr(kf+"notAfter", "bad")
		}
	}
	var envs []string
	for i, e := range p.Environments {
		ef := fmt.Sprintf("%senvironments[%d].", f, i)
		switch {
		case e.Name == "" || len(e.Name) > 128 || slices.Contains(envs, e.Name):
			return nil, fieldErr(ef+"name", "bad")
		case e.From == e.Name:
			return nil, fieldErr(ef+"from", "bad")
		case e.Approvals < 0:
			return nil, fieldErr(ef+"approvals", "bad")
		case e.Reproducible < 0:
			return nil, fieldErr(ef+"reproducible", "bad")
		}
		envs = append(envs, e.Name)
	}
	for i, e := range p.Environments {
		if e.From != "" && !slices.Contains(envs, e.From) {
			return nil, fieldErr(fmt.Sprintf("%senvironments[%d].from", f, i), "bad")
		}
	}
	roles := slices.Sorted(maps.Keys(p.Roles))
	for _, name := range roles {
		if !slices.Contains(refRoles, name) {
			return nil, fieldErr(f+"roles", "bad")
		}
		types := p.Roles[name].PredicateTypes
		if len(types) == 0 {
			return nil, fieldErr(f+"roles."+name+".predicateTypes", "bad")
		}
		if j := slices.Index(types, ""); j >= 0 {
			return nil, fieldErr(fmt.Sprintf("%sroles.%s.predicateTypes[%d]", f, name, j), "bad")
		}
	}
	a := p.Admins
	if len(a.Keys) == 0 && a.Threshold == 0 { // no admins: the log's key manages the keyring
		for i, k := range p.Keys {
			if len(k.Roles) == 0 {
				return nil, fieldErr(fmt.Sprintf("%skeys[%d].roles", f, i), "bad")
			}
		}
		return &p, nil
	}
	if len(a.Keys) == 0 {
		return nil, fieldErr(f+"admins.keys", "bad")
	}
	for j, name := range a.Keys {
		if !slices.Contains(names, name) || slices.Index(a.Keys, name) != j {
			return nil, fieldErr(fmt.Sprintf("%sadmins.keys[%d]", f, j), "bad")
		}
	}
	if a.Threshold < 1 || a.Threshold > len(a.Keys) {
		return nil, fieldErr(f+"admins.threshold", "bad")
	}
	for i, k := range p.Keys {
		if len(k.Roles) == 0 && !slices.Contains(a.Keys, k.Name) {
			return nil, fieldErr(fmt.Sprintf("%skeys[%d].roles", f, i), "bad")
		}
	}
	return &p, nil
}

var refKeyIDRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

func refParseRevoke(pred []byte) (*RevokePredicate, error) {
	var p struct {
		KeyID            string  `json:"keyId"`
		CompromisedSince *uint64 `json:"compromisedSince"`
		Reason           string  `json:"reason"`
	}
	if err := refUnmarshal(pred, &p); err != nil {
		return nil, err
	}
	const f = "statement.predicate."
	switch {
	case !refKeyIDRE.MatchString(p.KeyID):
		return nil, fieldErr(f+"keyId", "bad")
	case p.CompromisedSince == nil:
		return nil, fieldErr(f+"compromisedSince", "missing")
	case p.Reason == "" || len(p.Reason) > 4096:
		return nil, fieldErr(f+"reason", "bad")
	}
	return &RevokePredicate{KeyID: p.KeyID, CompromisedSince: *p.CompromisedSince, Reason: p.Reason}, nil
}

func refParseQuarantine(pred []byte) (*QuarantinePredicate, error) {
	var p QuarantinePredicate
	if err := refUnmarshal(pred, &p); err != nil {
		return nil, err
	}
	const f = "statement.predicate."
	switch {
	case p.Action != "quarantine" && p.Action != "unquarantine":
		return nil, fieldErr(f+"action", "bad")
	case p.Reason == "" || len(p.Reason) > 4096:
		return nil, fieldErr(f+"reason", "bad")
	case p.Action == "quarantine" && p.QuarantineIndex != nil:
		return nil, fieldErr(f+"quarantineIndex", "bad")
	}
	return &p, nil
}

// refTrustSubjects: a keyring's subjects' digests are its key ids, a
// revocation's one subject is its key id.
func refTrustSubjects(ev *Event, n int) error {
	var want []Digest
	switch {
	case ev.Keyring != nil:
		for _, k := range ev.Keyring.Keys {
			want = append(want, Digest{Alg: "sha256", Hex: k.KeyID})
		}
		if len(want) == 0 {
			sum := sha256.Sum256(nil)
			want = []Digest{{Alg: "sha256", Hex: hex.EncodeToString(sum[:])}}
		}
	case ev.Revoke != nil:
		if n != 1 {
			return fieldErr("statement.subject", "bad")
		}
		want = []Digest{{Alg: "sha256", Hex: ev.Revoke.KeyID}}
	default:
		return nil
	}
	slices.SortFunc(want, func(a, b Digest) int { return strings.Compare(a.String(), b.String()) })
	if !slices.Equal(ev.Subjects, want) {
		return fieldErr("statement.subject", "bad")
	}
	return nil
}
