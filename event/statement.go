package event

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/go-json-experiment/json/jsontext"
	intoto "github.com/in-toto/attestation/go/v1"
)

// Event types.
const (
	TypeBuild      = "build"
	TypeSign       = "sign"
	TypePromote    = "promote"
	TypeSBOM       = "sbom"
	TypeTestResult = "test-result"
	TypeVSA        = "vsa"
	TypeLink       = "link"
)

// Statement types: in-toto Statement v1, and v0.1, which cosign still
// writes (its fields are v1's).
const (
	StatementV1  = "https://in-toto.io/Statement/v1"
	StatementV01 = "https://in-toto.io/Statement/v0.1"
)

// MaxSubjects caps the subjects of one statement (a keyring's, one per
// key, are capped by MaxKeyringKeys).
const MaxSubjects = 64

// Digest names an artifact: "sha256" or "sha512" and lowercase hex.
type Digest struct {
	Alg, Hex string
}

func (d Digest) String() string { return d.Alg + ":" + d.Hex }

// ParseDigest parses "<alg>:<hex>" (alg sha256 or sha512, lowercase hex of
// the right length).
func ParseDigest(s string) (Digest, error) {
	alg, h, ok := strings.Cut(s, ":")
	if !ok {
		return Digest{}, fieldErr("digest", "%q, want <algorithm>:<hex>", clip(s))
	}
	d := Digest{Alg: alg, Hex: h}
	if err := d.check("digest"); err != nil {
		return Digest{}, err
	}
	return d, nil
}

// digestLen returns the hex length of a digest algorithm's digests, 0 for
// an algorithm other than sha256 and sha512.
func digestLen(alg string) int {
	switch alg {
	case "sha256":
		return 64
	case "sha512":
		return 128
	}
	return 0
}

func (d Digest) check(field string) error {
	n := digestLen(d.Alg)
	if n == 0 {
		return fieldErr(field, "algorithm %q, want sha256 or sha512", clip(d.Alg))
	}
	if len(d.Hex) != n || !isLowerHex(d.Hex) {
		return fieldErr(field+"."+d.Alg, "want %d lowercase hex digits", n)
	}
	return nil
}

func (d Digest) valid() bool {
	n := digestLen(d.Alg)
	return n > 0 && len(d.Hex) == n && isLowerHex(d.Hex)
}

// isLowerHex reports whether s is all lowercase hex digits.
func isLowerHex(s string) bool {
	for i := range len(s) {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// compareDigests orders digests by their String forms. Both algorithms of
// a valid digest have six letters, so comparing algorithms then hex is
// comparing the strings, without building them.
func compareDigests(a, b Digest) int {
	if c := strings.Compare(a.Alg, b.Alg); c != 0 {
		return c
	}
	return strings.Compare(a.Hex, b.Hex)
}

// Event is a parsed, well-formed event. Exactly one of the predicate
// fields (Build … Quarantine) is set, as Type says (Quarantine for both
// TypeQuarantine and TypeUnquarantine).
type Event struct {
	Type string
	// StatementType is the statement's _type: StatementV1 or StatementV01.
	StatementType string
	// PredicateType is the statement's predicate type.
	PredicateType string
	// Subjects are the artifact digests the statement is about, sorted.
	Subjects   []Digest
	Build      *Build
	Sign       *SignPredicate
	Promote    *PromotePredicate
	SBOM       *SBOM
	TestResult *TestResult
	VSA        *VSA
	Link       *Link
	Keyring    *KeyringPredicate
	Revoke     *RevokePredicate
	Quarantine *QuarantinePredicate
}

// HasSubject reports whether the event is about digest d.
func (e *Event) HasSubject(d Digest) bool { return slices.Contains(e.Subjects, d) }

// ParseStatement parses an in-toto Statement v1 and its predicate strictly.
func ParseStatement(payload []byte) (*Event, error) {
	ev, err := parseStatement(payload)
	if err != nil {
		err = statementError(payload, err)
		if serr := sbomTooLarge(payload, err); serr != nil {
			return nil, serr
		}
		return nil, err
	}
	if ev.SBOM != nil && ev.SBOM.Inline {
		if err := sbomTooLarge(payload, nil); err != nil {
			return nil, err
		}
	}
	if ev.Keyring != nil && len(payload) > MaxKeyringStatement {
		return nil, keyringTooLarge(len(payload))
	}
	return ev, nil
}

// statementError returns the error ParseStatement reports for payload
// given the first one parseStatement met, whose checks must come after
// these: malformed JSON anywhere (checkJSON), then a predicate that is not
// a JSON object.
func statementError(payload []byte, err error) error {
	if jerr := checkJSON(payload, "statement", MaxString); jerr != nil {
		return jerr
	}
	if predicateNotObject(payload) {
		return fieldErr("statement.predicate", "not a JSON object")
	}
	return asFieldError("statement", err)
}

// predicateNotObject reports whether payload, which is strict JSON, is an
// object whose member "predicate" is not an object.
func predicateNotObject(payload []byte) bool {
	dec := jsontext.NewDecoder(bytes.NewReader(payload))
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '{' {
		return false
	}
	for dec.PeekKind() == '"' {
		tok, err := dec.ReadToken()
		if err != nil {
			return false
		}
		if tok.String() == "predicate" {
			return dec.PeekKind() != '{'
		}
		if err := dec.SkipValue(); err != nil {
			return false
		}
	}
	return false
}

// parseStatement parses a statement in one pass. Its errors are right only
// if statementError's checks pass.
//
// The statement is decoded as protojson decodes an in-toto Statement
// (whose fields may also be named "type" and "predicate_type") except for
// its predicate, which must be a JSON object and is decoded as its type
// says. Errors in the predicate come after those of the statement.
func parseStatement(payload []byte) (*Event, error) {
	r := newReader(payload, MaxString, 0)
	defer r.free()
	if ok, err := r.delim('{'); err != nil {
		return nil, err
	} else if !ok {
		return nil, fieldErr("statement", "not a JSON object")
	}
	var (
		typ, predType string
		subjects      subjects
		seen          uint32
		havePred      bool
		pred          predicate
		predErr       error
		predLater     []byte // the predicate, if it came before its type
	)
	for {
		if more, err := r.more(); err != nil {
			return nil, err
		} else if !more {
			break
		}
		name, err := r.str()
		if err != nil {
			return nil, err
		}
		if string(name) == "predicate" {
			if r.peek() != '{' {
				return nil, fieldErr("statement.predicate", "not a JSON object")
			}
			havePred = true
			if knownPredicateType(predType) {
				if pred, predErr = r.predicate(predType); predErr != nil {
					if r.bad != nil {
						return nil, r.bad
					}
					// Read the rest of the predicate (to the statement's
					// depth): errors in the statement come first.
					if err := r.skipTo(1); err != nil {
						return nil, err
					}
				}
				continue
			}
			from := int(r.dec.InputOffset())
			if err := r.skip(); err != nil {
				return nil, err
			}
			to := int(r.dec.InputOffset())
			predLater = payload[from+bytes.IndexByte(payload[from:to], '{') : to]
			continue
		}
		num := statementField(name)
		switch {
		case num == 0:
			// "Consumers MUST ignore unrecognized fields unless otherwise
			// noted" (in-toto Statement v1, parsing rules).
			if err := r.skip(); err != nil {
				return nil, err
			}
			continue
		case seen&(1<<num) != 0:
			return nil, fieldErr("statement", "duplicate field %q", clip(string(name)))
		}
		seen |= 1 << num
		if ok, err := r.delim('n'); err != nil {
			return nil, err
		} else if ok {
			continue
		}
		switch num {
		case 1:
			typ, err = r.protoString()
		case 2:
			subjects, err = r.subjects()
		case 3:
			predType, err = r.protoString()
		}
		if err != nil {
			return nil, r.fieldErr("statement", err)
		}
	}
	if err := r.end(); err != nil {
		return nil, err
	}

	if typ != StatementV1 && typ != StatementV01 {
		return nil, fieldErr("statement._type", "%q, want %q or %q", clip(typ), StatementV1, StatementV01)
	}
	if n, most := subjects.n, maxSubjects(predType); n > most {
		return nil, fieldErr("statement.subject", "%d subjects, want at most %d", n, most)
	}
	if subjects.digestErr != nil {
		return nil, subjects.digestErr
	}
	// What intoto.Statement.Validate requires besides.
	if subjects.n == 0 {
		return nil, fieldErr("statement", "%v", intoto.ErrSubjectRequired)
	}
	if subjects.noDigest {
		return nil, fieldErr("statement", "%v", intoto.ErrDigestRequired)
	}
	if predType == "" {
		return nil, fieldErr("statement", "%v", intoto.ErrPredicateTypeRequired)
	}
	if !havePred {
		return nil, fieldErr("statement", "%v", intoto.ErrPredicateRequired)
	}
	ev := &Event{StatementType: typ, PredicateType: predType, Subjects: subjects.digests}
	slices.SortFunc(ev.Subjects, compareDigests)
	ev.Subjects = slices.Compact(ev.Subjects)
	if ev.Type = TypeOf(predType); ev.Type == "" {
		return nil, errPredicateType(predType)
	}
	if predLater != nil {
		pr := newReader(predLater, MaxString, 1)
		pred, predErr = pr.predicate(predType)
		pr.free()
	}
	if predErr != nil {
		return nil, predErr
	}
	ev.Build, ev.Sign, ev.Promote = pred.build, pred.sign, pred.promote
	ev.SBOM, ev.TestResult, ev.VSA, ev.Link = pred.sbom, pred.test, pred.vsa, pred.link
	ev.Keyring, ev.Revoke, ev.Quarantine = pred.keyring, pred.revoke, pred.quar
	if ev.Quarantine != nil && ev.Quarantine.Action == ActionUnquarantine {
		ev.Type = TypeUnquarantine
	}
	if err := checkTrustSubjects(ev, subjects.n); err != nil {
		return nil, err
	}
	return ev, nil
}

// maxSubjects is the cap on the subjects of a statement of a predicate
// type: MaxKeyringKeys for a keyring (one subject per key), else
// MaxSubjects.
func maxSubjects(predType string) int {
	if predType == KeyringPredicateType {
		return MaxKeyringKeys
	}
	return MaxSubjects
}

// errPredicateType refuses a predicate type provlog does not admit,
// listing those it does.
func errPredicateType(t string) error {
	return fieldErr("statement.predicateType", "%q, want one of %s (the SBOM types also with a version suffix such as /v2.3)", clip(t), strings.Join(PredicateTypes, ", "))
}

// statementField maps a statement member name to its protobuf field number
// (0 for none); "predicate" is apart.
func statementField(name []byte) int {
	switch string(name) {
	case "_type", "type":
		return 1
	case "subject":
		return 2
	case "predicateType", "predicate_type":
		return 3
	}
	return 0
}

// subjects are a statement's subjects as parseStatement needs them.
type subjects struct {
	n         int
	digests   []Digest // all, in order
	digestErr error    // the first digest that is not sha256 or sha512
	noDigest  bool     // some subject has no digest
}

// subjects reads the subject field of a statement: in-toto
// ResourceDescriptors, of which only the digests are kept.
func (r *jsonReader) subjects() (subjects, error) {
	var ss subjects
	var rd intoto.ResourceDescriptor // what is not kept
	digest := func(alg, h string) {
		d := Digest{Alg: alg, Hex: h}
		if ss.digestErr == nil && !d.valid() {
			ss.digestErr = d.check(fmt.Sprintf("statement.subject[%d].digest", ss.n))
		}
		ss.digests = append(ss.digests, d)
	}
	err := r.list(func() error {
		n := len(ss.digests)
		if err := r.resourceDescriptor(&rd, digest); err != nil {
			return err
		}
		ss.noDigest = ss.noDigest || len(ss.digests) == n
		ss.n++
		return nil
	})
	return ss, err
}
