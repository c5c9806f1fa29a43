package event

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/go-json-experiment/json/jsontext"
	intoto "github.com/in-toto/attestation/go/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
)

// Event types.
const (
	TypeBuild   = "build"
	TypeSign    = "sign"
	TypePromote = "promote"
)

// MaxSubjects caps the subjects of one statement.
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

var digestLen = map[string]int{"sha256": 64, "sha512": 128}

func (d Digest) check(field string) error {
	n, ok := digestLen[d.Alg]
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

// Event is a parsed, well-formed event. Exactly one of Build, Sign and
// Promote is set, as Type says.
type Event struct {
	Type string
	// Subjects are the artifact digests the statement is about, sorted.
	Subjects []Digest
	Build    *Build
	Sign     *SignPredicate
	Promote  *PromotePredicate
}

// HasSubject reports whether the event is about digest d.
func (e *Event) HasSubject(d Digest) bool { return slices.Contains(e.Subjects, d) }

// ParseStatement parses an in-toto Statement v1 and its predicate strictly.
func ParseStatement(payload []byte) (*Event, error) {
	if err := checkJSON(payload, "statement", MaxString); err != nil {
		return nil, err
	}
	// The predicate is decoded straight into its own type below, rather
	// than through the statement's google.protobuf.Struct (a costly detour).
	rest, pred, err := splitPredicate(payload)
	if err != nil {
		return nil, err
	}
	var st intoto.Statement
	if err := protojson.Unmarshal(rest, &st); err != nil {
		return nil, fieldErr("statement", "%s", protoReason(err))
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
			if err := d.check(field); err != nil {
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
		ev.Build, err = parseProvenance(pred)
	case SignPredicateType:
		ev.Type = TypeSign
		ev.Sign, err = parseSign(pred)
	case PromotePredicateType:
		ev.Type = TypePromote
		ev.Promote, err = parsePromote(pred)
	default:
		return nil, fieldErr("statement.predicateType", "%q, want %s, %s or %s", clip(pt), ProvenancePredicateType, SignPredicateType, PromotePredicateType)
	}
	if err != nil {
		return nil, err
	}
	return ev, nil
}

// protoReason shortens a protojson error.
func protoReason(err error) string {
	s := err.Error()
	if i := strings.Index(s, "):"); i >= 0 && strings.HasPrefix(s, "proto:") {
		s = strings.TrimSpace(s[i+2:])
	}
	return strings.TrimPrefix(s, "proto: ")
}

// splitPredicate returns the statement object without its "predicate"
// member, and that member's JSON (nil if absent). A predicate that is not
// a JSON object is refused. The statement was checked by checkJSON.
func splitPredicate(payload []byte) (rest, pred []byte, err error) {
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
		name := tok.String() // before the next read voids tok
		val, err := dec.ReadValue()
		if err != nil {
			return nil, nil, fieldErr("statement", "malformed JSON: %s", trimJSONError(err))
		}
		if name == "predicate" {
			if val.Kind() != '{' {
				return nil, nil, fieldErr("statement.predicate", "not a JSON object")
			}
			pred = bytes.Clone(val) // val is valid only until the next read
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
