package event

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"
)

// PayloadType is the DSSE payload type of in-toto statements.
const PayloadType = "application/vnd.in-toto+json"

// MaxSignatures caps the signatures on one envelope.
const MaxSignatures = 16

// MaxKeyID caps the length of a signature's key id.
const MaxKeyID = 256

// Envelope is a parsed DSSE envelope with its payload decoded.
type Envelope struct {
	// Payload is the decoded payload (the statement JSON).
	Payload []byte
	// Signatures are the decoded signatures, in canonical order.
	Signatures []Signature
}

// Signature is one DSSE signature, decoded.
type Signature struct {
	KeyID string
	Sig   []byte
}

// ParseEnvelope parses a DSSE envelope strictly: one JSON object with
// exactly the fields payloadType, payload and signatures (keyid, sig), no
// duplicates, payloadType PayloadType, base64 that decodes, 1 to
// MaxSignatures signatures, no two identical.
//
// The payload and signatures may be in either base64 alphabet, padded or
// not. DSSE (envelope.md): "Either standard or URL-safe base64 encodings
// are allowed. Signers may use either, and verifiers MUST accept either."
// Canonical re-encodes them in standard padded base64, so an envelope in
// either encoding is the same leaf.
func ParseEnvelope(b []byte) (*Envelope, error) {
	env, err := parseEnvelope(b)
	if err != nil {
		// Malformed JSON is reported first, wherever it is.
		if jerr := checkJSON(b, "envelope", len(b)); jerr != nil {
			return nil, jerr
		}
		return nil, asFieldError("envelope", err)
	}
	return env, nil
}

// rawEnvelope is where an envelope's members lie in its JSON: spans of the
// input, zero for absent or null members, and its first MaxSignatures
// signatures.
type rawEnvelope struct {
	payloadType, payload [2]int
	sigs                 [MaxSignatures]rawSignature
	n                    int // signatures, all counted
}

type rawSignature struct{ keyID, sig [2]int }

// parseEnvelope parses b in one pass, as encoding/json/v2 decodes a
// dsse.Envelope refusing unknown members, then checks it. Its errors are
// right only if b is strict JSON (see ParseEnvelope).
func parseEnvelope(b []byte) (*Envelope, error) {
	r := newReader(b, len(b), 0)
	defer r.free()
	var raw rawEnvelope
	if null, err := r.delim('n'); err != nil { // null is an empty envelope
		return nil, err
	} else if !null {
		if err := r.envelope(&raw); err != nil {
			return nil, err
		}
	}
	if err := r.end(); err != nil {
		return nil, err
	}
	if pt, err := unquote(r.scratch[:0], b, raw.payloadType); err != nil || string(pt) != PayloadType {
		return nil, fieldErr("envelope.payloadType", "%q, want %q", clip(string(pt)), PayloadType)
	}
	p64, err := unquote(r.scratch[:0], b, raw.payload)
	if err != nil {
		return nil, fieldErr("envelope.payload", "not base64")
	}
	// One buffer for the payload and the signatures (the raw JSON is at
	// least as long as the base64 it holds; unpadded base64 decodes to at
	// most RawStdEncoding.DecodedLen).
	size := base64.RawStdEncoding.DecodedLen(len(p64))
	for _, s := range raw.sigs[:min(raw.n, MaxSignatures)] {
		size += base64.RawStdEncoding.DecodedLen(s.sig[1] - s.sig[0])
	}
	buf := make([]byte, size)
	pn, err := decodeDSSEBase64(buf, p64)
	if err != nil {
		return nil, fieldErr("envelope.payload", "not base64 (standard or URL-safe, padded or not)")
	}
	if pn == 0 {
		return nil, fieldErr("envelope.payload", "empty")
	}
	env := &Envelope{Payload: buf[:pn:pn]}
	buf = buf[pn:]
	if n := raw.n; n == 0 || n > MaxSignatures {
		return nil, fieldErr("envelope.signatures", "%d signatures, want 1 to %d", n, MaxSignatures)
	}
	env.Signatures = make([]Signature, raw.n)
	for i, s := range raw.sigs[:raw.n] {
		keyID, err := unquote(r.scratch[:0], b, s.keyID)
		if err != nil || len(keyID) > MaxKeyID || bytes.ContainsFunc(keyID, isControl) {
			return nil, fieldErr(sprintf("envelope.signatures[%d].keyid", i), "longer than %d bytes or has control characters", MaxKeyID)
		}
		env.Signatures[i].KeyID = string(keyID)
		sig, err := unquote(r.scratch[:0], b, s.sig)
		if err != nil {
			return nil, fieldErr(sprintf("envelope.signatures[%d].sig", i), "not non-empty base64")
		}
		sn, err := decodeDSSEBase64(buf, sig)
		if err != nil || sn == 0 {
			return nil, fieldErr(sprintf("envelope.signatures[%d].sig", i), "not non-empty base64 (standard or URL-safe, padded or not)")
		}
		env.Signatures[i].Sig, buf = buf[:sn:sn], buf[sn:]
	}
	slices.SortFunc(env.Signatures, compareSignatures)
	for i := 1; i < len(env.Signatures); i++ {
		if compareSignatures(env.Signatures[i-1], env.Signatures[i]) == 0 {
			return nil, fieldErr("envelope.signatures", "the same signature twice")
		}
	}
	return env, nil
}

// envelope reads the members of an envelope object into raw.
func (r *jsonReader) envelope(raw *rawEnvelope) error {
	return r.object(func() error { return fieldErr("envelope", "not a JSON object") }, func(name []byte) (err error) {
		switch string(name) {
		case "payloadType":
			raw.payloadType, err = r.optStrSpan("payloadType")
		case "payload":
			raw.payload, err = r.optStrSpan("payload")
		case "signatures":
			raw.n, err = r.signatures(&raw.sigs)
		default:
			err = fieldErr("envelope", "unknown member %q", clip(string(name)))
		}
		return err
	})
}

// signatures reads the envelope's signatures: an array of objects with
// string (or null) members keyid and sig, or null. It keeps the first
// len(sigs) and returns how many there are.
func (r *jsonReader) signatures(sigs *[MaxSignatures]rawSignature) (int, error) {
	if ok, err := r.delim('n'); err != nil || ok {
		return 0, err
	}
	if ok, err := r.delim('['); err != nil {
		return 0, err
	} else if !ok {
		return 0, r.fieldErr("envelope", r.mismatch("signatures: want an array or null"))
	}
	n := 0
	for ; ; n++ {
		if more, err := r.more(); err != nil {
			return 0, err
		} else if !more {
			return n, nil
		}
		var s rawSignature
		if ok, err := r.delim('n'); err != nil { // null is a signature with empty members
			return 0, err
		} else if !ok {
			if ok, err := r.delim('{'); err != nil {
				return 0, err
			} else if !ok {
				return 0, r.fieldErr("envelope", r.mismatch("signatures: want objects or nulls"))
			}
			for {
				if more, err := r.more(); err != nil {
					return 0, err
				} else if !more {
					break
				}
				name, err := r.str()
				if err != nil {
					return 0, err
				}
				switch string(name) {
				case "keyid":
					s.keyID, err = r.optStrSpan("keyid")
				case "sig":
					s.sig, err = r.optStrSpan("sig")
				default:
					err = fieldErr("envelope", "unknown signature member %q", clip(string(name)))
				}
				if err != nil {
					return 0, err
				}
			}
		}
		if n < len(sigs) {
			sigs[n] = s
		}
	}
}

// optStrSpan reads an envelope member that is a string or null, returning
// the string's span (zero for null). name names the member in errors.
func (r *jsonReader) optStrSpan(name string) ([2]int, error) {
	if ok, err := r.delim('n'); err != nil || ok {
		return [2]int{}, err
	}
	if r.peek() != '"' {
		return [2]int{}, r.fieldErr("envelope", r.mismatch(name+": want a string or null"))
	}
	return r.strSpan()
}

func compareSignatures(a, b Signature) int {
	if c := strings.Compare(a.KeyID, b.KeyID); c != 0 {
		return c
	}
	return bytes.Compare(a.Sig, b.Sig)
}

// Canonical returns the canonical encoding of the envelope (see the package
// doc): the bytes the log stores and hashes. It is what encoding/json
// makes of the fields in order (signatures null if there are none).
func (e *Envelope) Canonical() []byte {
	const (
		head  = `{"payloadType":"` + PayloadType + `","payload":"`
		sigs  = `","signatures":`
		keyID = `{"keyid":`
		sig   = `,"sig":"`
	)
	enc := base64.StdEncoding
	size := len(head) + enc.EncodedLen(len(e.Payload)) + len(sigs) + len("null}")
	for _, s := range e.Signatures {
		size += len(keyID) + len(s.KeyID) + 2 + len(sig) + enc.EncodedLen(len(s.Sig)) + len(`"},`)
	}
	b := make([]byte, 0, size)
	b = append(b, head...)
	b = enc.AppendEncode(b, e.Payload)
	b = append(b, sigs...)
	if len(e.Signatures) == 0 {
		b = append(b, "null"...)
	}
	for i, s := range e.Signatures {
		if i == 0 {
			b = append(b, '[')
		} else {
			b = append(b, ',')
		}
		b = append(b, keyID...)
		b = appendJSONString(b, s.KeyID)
		b = append(b, sig...)
		b = enc.AppendEncode(b, s.Sig)
		b = append(b, `"}`...)
	}
	if len(e.Signatures) > 0 {
		b = append(b, ']')
	}
	return append(b, '}')
}

// appendJSONString appends s as encoding/json encodes it.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			// Escapes (encoding/json's own, HTML-safe) or non-ASCII: let
			// encoding/json decide.
			q, err := json.Marshal(s)
			if err != nil {
				panic(fmt.Sprintf("event: encoding a string: %v", err))
			}
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// PAE returns the DSSE pre-authentication encoding the signatures cover.
func (e *Envelope) PAE() []byte { return dsse.PAE(PayloadType, e.Payload) }

// DSSE returns the envelope in the DSSE library's form.
func (e *Envelope) DSSE() *dsse.Envelope {
	d := &dsse.Envelope{PayloadType: PayloadType, Payload: base64.StdEncoding.EncodeToString(e.Payload)}
	for _, s := range e.Signatures {
		d.Signatures = append(d.Signatures, dsse.Signature{KeyID: s.KeyID, Sig: base64.StdEncoding.EncodeToString(s.Sig)})
	}
	return d
}

// decodeDSSEBase64 decodes a DSSE base64 field into dst: the standard or
// the URL-safe alphabet, padded or not, as protoBytes decides between them
// (protojson's rule, which the Sigstore bundle's envelope follows). Line
// breaks are skipped, as the base64 package skips them.
func decodeDSSEBase64(dst, s []byte) (int, error) {
	// Standard padded base64 (what nearly every signer writes) decodes
	// the same under either rule: try it first, without scanning s.
	if n, err := base64.StdEncoding.Decode(dst, s); err == nil {
		return n, nil
	}
	if bytes.ContainsAny(s, "\r\n") {
		s = bytes.ReplaceAll(bytes.ReplaceAll(s, []byte("\r"), nil), []byte("\n"), nil)
	}
	return base64Encoding(s).Decode(dst, s)
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// asFieldError returns err as a *FieldError on what if it is not one: a
// syntax or limit error the parser met but checkJSON did not (which would
// be a bug).
func asFieldError(what string, err error) error {
	var fe *FieldError
	if errors.As(err, &fe) {
		return err
	}
	return &FieldError{Field: what, Reason: "malformed JSON: " + trimJSONError(err)}
}

// clip shortens untrusted text quoted in an error.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }
