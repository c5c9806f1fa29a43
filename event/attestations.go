package event

import (
	"errors"
	"strings"
	"time"

	intoto "github.com/in-toto/attestation/go/v1"
)

// This file reads the attestations provlog logs beside its own events:
// SBOMs (inline or by reference), in-toto test results, SLSA VSAs and
// in-toto links. Each is indexed by its subjects' digests; provlog reads
// only the fields below and ignores the rest, as the in-toto parsing rules
// require ("Consumers MUST ignore unrecognized fields").

// SBOM formats.
const (
	SBOMSPDX      = "spdx"
	SBOMCycloneDX = "cyclonedx"
)

// MaxInlineSBOM caps the statement of an inline SBOM, in bytes (the entry
// size cap, 65535 bytes of base64 envelope, allows about 48 KiB of
// statement). A larger SBOM is logged by reference: SBOMRefPredicateType.
const MaxInlineSBOM = 32 << 10

// SBOM is an SBOM about the statement's subjects: the document itself
// (Inline: predicate type SPDXPredicateType or CycloneDXPredicateType), or
// a reference to it (predicate type SBOMRefPredicateType), whose predicate
// is
//
//	{"format": "spdx" | "cyclonedx",
//	 "mediaType": "application/spdx+json",
//	 "digest": {"sha256": "<hex>"},
//	 "size": 1234567,
//	 "uri": "https://artifacts.example.com/app-1.2.spdx.json",
//	 "specVersion": "SPDX-2.3"}
//
// format, mediaType, a sha256 or sha512 digest and size are required; uri
// (where the document is kept) and specVersion are optional.
type SBOM struct {
	Format string // SBOMSPDX or SBOMCycloneDX
	// SpecVersion is the document's spdxVersion ("SPDX-2.3") or
	// specVersion ("1.6"), if known.
	SpecVersion string
	// Inline reports whether the predicate is the document; if not, the
	// statement references it by Digest, Size, MediaType and URI.
	Inline    bool
	MediaType string
	Digest    Digest // zero when inline
	Size      uint64 // zero when inline
	URI       string
}

// inlineSBOMPredicate reads an SPDX document (spdxVersion "SPDX-…", or an
// SPDX 3 JSON-LD document with "@context") or a CycloneDX BOM (bomFormat
// "CycloneDX" and a specVersion).
func (r *jsonReader) inlineSBOMPredicate(format string) (*SBOM, error) {
	s := &SBOM{Format: format, Inline: true}
	var bomFormat string
	context := false
	err := r.goObject(func(name []byte) error {
		switch {
		case format == SBOMSPDX && string(name) == "spdxVersion":
			return r.goString(&s.SpecVersion)
		case format == SBOMSPDX && string(name) == "@context":
			context = true
		case format == SBOMCycloneDX && string(name) == "bomFormat":
			return r.goString(&bomFormat)
		case format == SBOMCycloneDX && string(name) == "specVersion":
			return r.goString(&s.SpecVersion)
		}
		return r.skip()
	})
	if err != nil {
		return nil, r.fieldErr("statement.predicate", err)
	}
	const f = "statement.predicate."
	switch format {
	case SBOMSPDX:
		s.MediaType = "application/spdx+json"
		if !strings.HasPrefix(s.SpecVersion, "SPDX-") && !context {
			return nil, fieldErr(f+"spdxVersion", "want an SPDX document: spdxVersion \"SPDX-2.3\" (or an SPDX 3 document with @context)")
		}
	case SBOMCycloneDX:
		s.MediaType = "application/vnd.cyclonedx+json"
		if bomFormat != "CycloneDX" {
			return nil, fieldErr(f+"bomFormat", "%q, want \"CycloneDX\"", clip(bomFormat))
		}
		if s.SpecVersion == "" {
			return nil, fieldErr(f+"specVersion", "missing")
		}
	}
	return s, nil
}

// sbomRefPredicate reads an SBOM reference (see SBOM).
func (r *jsonReader) sbomRefPredicate() (*SBOM, error) {
	s := &SBOM{}
	var digests map[string]string
	err := r.goObject(func(name []byte) error {
		switch string(name) {
		case "format":
			return r.goString(&s.Format)
		case "mediaType":
			return r.goString(&s.MediaType)
		case "digest":
			return r.goStringMap(&digests)
		case "size":
			return r.goUint(&s.Size)
		case "uri":
			return r.goString(&s.URI)
		case "specVersion":
			return r.goString(&s.SpecVersion)
		}
		return r.skip()
	})
	if err != nil {
		return nil, r.fieldErr("statement.predicate", err)
	}
	const f = "statement.predicate."
	if s.Format != SBOMSPDX && s.Format != SBOMCycloneDX {
		return nil, fieldErr(f+"format", "%q, want %q or %q", clip(s.Format), SBOMSPDX, SBOMCycloneDX)
	}
	if !isMediaType(s.MediaType) {
		return nil, fieldErr(f+"mediaType", "want a media type such as application/spdx+json")
	}
	for _, alg := range [...]string{"sha256", "sha512"} {
		if h, ok := digests[alg]; ok {
			d := Digest{Alg: alg, Hex: h}
			if err := d.check(f + "digest"); err != nil {
				return nil, err
			}
			s.Digest = d
			break
		}
	}
	if s.Digest == (Digest{}) {
		return nil, fieldErr(f+"digest", "want the document's sha256 or sha512 digest")
	}
	if s.Size == 0 {
		return nil, fieldErr(f+"size", "want the document's size in bytes")
	}
	return s, nil
}

// isMediaType reports whether s looks like a media type: type/subtype and
// optional parameters, printable ASCII without spaces, at most 255 bytes.
func isMediaType(s string) bool {
	t, _, _ := strings.Cut(s, ";")
	typ, sub, ok := strings.Cut(t, "/")
	if !ok || typ == "" || sub == "" || len(s) > 255 {
		return false
	}
	for i := range len(s) {
		if c := s[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// Results of test results and VSAs.
const (
	ResultPassed = "PASSED"
	ResultWarned = "WARNED"
	ResultFailed = "FAILED"
)

// TestResult is an in-toto test result
// (https://github.com/in-toto/attestation/blob/main/spec/predicates/test-result.md):
// result and configuration are required (the spec's REQUIRED fields).
type TestResult struct {
	Result        string // ResultPassed, ResultWarned or ResultFailed
	URL           string
	Configuration []*intoto.ResourceDescriptor
	PassedTests   []string
	WarnedTests   []string
	FailedTests   []string
}

func (r *jsonReader) testResultPredicate() (*TestResult, error) {
	t := &TestResult{}
	hasConfiguration := false
	err := r.goObject(func(name []byte) (err error) {
		switch string(name) {
		case "result":
			return r.goString(&t.Result)
		case "url":
			return r.goString(&t.URL)
		case "configuration":
			hasConfiguration = r.peek() == '['
			t.Configuration, err = r.goDescriptors()
			return err
		case "passedTests":
			return r.goStrings(&t.PassedTests)
		case "warnedTests":
			return r.goStrings(&t.WarnedTests)
		case "failedTests":
			return r.goStrings(&t.FailedTests)
		}
		return r.skip()
	})
	if err != nil {
		return nil, r.fieldErr("statement.predicate", err)
	}
	// The checks in the reference's order (reference_test.go): the
	// descriptors given, then the result, then a configuration at all.
	if err := validateAll("configuration", t.Configuration); err != nil {
		return nil, fieldErr("statement.predicate.configuration", "%v", err)
	}
	switch t.Result {
	case ResultPassed, ResultWarned, ResultFailed:
	default:
		return nil, fieldErr("statement.predicate.result", "%q, want PASSED, WARNED or FAILED", clip(t.Result))
	}
	if !hasConfiguration {
		return nil, fieldErr("statement.predicate.configuration", "missing (a list of the test configuration's resource descriptors, may be empty)")
	}
	return t, nil
}

// VSA is a SLSA Verification Summary Attestation
// (https://slsa.dev/spec/v1.1/verification_summary): verifier.id,
// resourceUri, policy.uri, verificationResult and verifiedLevels are
// required (the spec's REQUIRED fields; timeVerified is optional since
// v1.1).
type VSA struct {
	VerifierID     string
	TimeVerified   time.Time // zero if absent
	ResourceURI    string
	PolicyURI      string
	Result         string // ResultPassed or ResultFailed
	VerifiedLevels []string
	SLSAVersion    string
}

func (r *jsonReader) vsaPredicate() (*VSA, error) {
	v := &VSA{}
	err := r.goObject(func(name []byte) error {
		switch string(name) {
		case "verifier":
			return r.goObjectOrNull(func(name []byte) error {
				if string(name) == "id" {
					return r.goString(&v.VerifierID)
				}
				return r.skip()
			})
		case "timeVerified":
			return r.goTime(&v.TimeVerified)
		case "resourceUri":
			return r.goString(&v.ResourceURI)
		case "policy":
			return r.goObjectOrNull(func(name []byte) error {
				if string(name) == "uri" {
					return r.goString(&v.PolicyURI)
				}
				return r.skip()
			})
		case "verificationResult":
			return r.goString(&v.Result)
		case "verifiedLevels":
			return r.goStrings(&v.VerifiedLevels)
		case "slsaVersion":
			return r.goString(&v.SLSAVersion)
		}
		return r.skip()
	})
	if err != nil {
		return nil, r.fieldErr("statement.predicate", err)
	}
	const f = "statement.predicate."
	switch {
	case v.VerifierID == "":
		return nil, fieldErr(f+"verifier.id", "missing")
	case v.ResourceURI == "":
		return nil, fieldErr(f+"resourceUri", "missing")
	case v.PolicyURI == "":
		return nil, fieldErr(f+"policy.uri", "missing")
	case v.Result != ResultPassed && v.Result != ResultFailed:
		return nil, fieldErr(f+"verificationResult", "%q, want PASSED or FAILED", clip(v.Result))
	case len(v.VerifiedLevels) == 0:
		return nil, fieldErr(f+"verifiedLevels", "missing (e.g. [\"SLSA_BUILD_LEVEL_3\"])")
	}
	return v, nil
}

// Link is an in-toto link
// (https://github.com/in-toto/attestation/blob/main/spec/predicates/link.md):
// the step's name is required.
type Link struct {
	Name      string
	Command   []string
	Materials []*intoto.ResourceDescriptor
}

func (r *jsonReader) linkPredicate() (*Link, error) {
	l := &Link{}
	err := r.goObject(func(name []byte) (err error) {
		switch string(name) {
		case "name":
			return r.goString(&l.Name)
		case "command":
			return r.goStrings(&l.Command)
		case "materials":
			l.Materials, err = r.goDescriptors()
			return err
		}
		return r.skip()
	})
	if err != nil {
		return nil, r.fieldErr("statement.predicate", err)
	}
	if l.Name == "" {
		return nil, fieldErr("statement.predicate.name", "missing")
	}
	if err := validateAll("materials", l.Materials); err != nil {
		return nil, fieldErr("statement.predicate.materials", "%v", err)
	}
	return l, nil
}

// goObjectOrNull reads an object like goObject, or null.
func (r *jsonReader) goObjectOrNull(member func(name []byte) error) error {
	if ok, err := r.delim('n'); err != nil || ok {
		return err
	}
	return r.goObject(member)
}

// goStrings reads an array of strings (null elements are "") or null.
func (r *jsonReader) goStrings(ss *[]string) error {
	*ss = nil
	if ok, err := r.delim('n'); err != nil || ok {
		return err
	}
	return r.list(func() error {
		var s string
		err := r.goString(&s)
		*ss = append(*ss, s)
		return err
	})
}

// goStringMap reads an object of strings (null values are "") or null.
func (r *jsonReader) goStringMap(m *map[string]string) error {
	*m = nil
	return r.goObjectOrNull(func(name []byte) error {
		k := string(name)
		var v string
		if err := r.goString(&v); err != nil {
			return err
		}
		if *m == nil {
			*m = map[string]string{}
		}
		(*m)[k] = v
		return nil
	})
}

// goTime reads an RFC 3339 time as a google.protobuf.Timestamp, or null.
func (r *jsonReader) goTime(t *time.Time) error {
	*t = time.Time{}
	if ok, err := r.delim('n'); err != nil || ok {
		return err
	}
	ts, err := r.timestamp()
	if err != nil {
		return err
	}
	*t = ts.AsTime()
	return nil
}

// goDescriptors reads an array of in-toto ResourceDescriptors (decoded as
// protojson decodes them), or null.
func (r *jsonReader) goDescriptors() ([]*intoto.ResourceDescriptor, error) {
	if ok, err := r.delim('n'); err != nil || ok {
		return nil, err
	}
	return r.resourceDescriptors()
}

// errSBOMTooLarge refuses an inline SBOM over the caps.
func errSBOMTooLarge(n int) error {
	return fieldErr("statement.predicate", "an inline SBOM statement of %d bytes: the cap is %d bytes and %d JSON tokens; log a larger SBOM by reference instead (predicate type %s with its digest, size and media type; provlog attest sbom does this with --by-digest)", n, MaxInlineSBOM, MaxTokens, SBOMRefPredicateType)
}

// sbomTooLarge returns errSBOMTooLarge if payload is an inline SBOM
// statement over MaxInlineSBOM or the JSON limits (err is the error its
// parsing met, nil if none), else nil.
func sbomTooLarge(payload []byte, err error) error {
	if err == nil && len(payload) <= MaxInlineSBOM {
		return nil
	}
	var fe *FieldError
	if err != nil && (!errors.As(err, &fe) || !strings.Contains(fe.Reason, "JSON tokens") && !strings.Contains(fe.Reason, "string longer")) {
		return nil
	}
	if t, ok := topLevelString(payload, "predicateType", "predicate_type"); ok && sbomFormat(t) != "" {
		return errSBOMTooLarge(len(payload))
	}
	return nil
}
