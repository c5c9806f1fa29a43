package event

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	jsonv2 "github.com/go-json-experiment/json"
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
func ParseEnvelope(b []byte) (*Envelope, error) {
	if err := checkJSON(b, "envelope", len(b)); err != nil {
		return nil, err
	}
	var raw dsse.Envelope
	if err := jsonv2.Unmarshal(b, &raw, jsonv2.RejectUnknownMembers(true)); err != nil {
		return nil, fieldErr("envelope", "%s", jsonReason(err))
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

func compareSignatures(a, b Signature) int {
	if c := strings.Compare(a.KeyID, b.KeyID); c != 0 {
		return c
	}
	return bytes.Compare(a.Sig, b.Sig)
}

// Canonical returns the canonical encoding of the envelope (see the package
// doc): the bytes the log stores and hashes.
func (e *Envelope) Canonical() []byte {
	type sig struct {
		KeyID string `json:"keyid"`
		Sig   string `json:"sig"`
	}
	out := struct {
		PayloadType string `json:"payloadType"`
		Payload     string `json:"payload"`
		Signatures  []sig  `json:"signatures"`
	}{PayloadType: PayloadType, Payload: base64.StdEncoding.EncodeToString(e.Payload)}
	for _, s := range e.Signatures {
		out.Signatures = append(out.Signatures, sig{KeyID: s.KeyID, Sig: base64.StdEncoding.EncodeToString(s.Sig)})
	}
	b, err := json.Marshal(out)
	if err != nil {
		panic(fmt.Sprintf("event: encoding an envelope: %v", err))
	}
	return b
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

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// clip shortens untrusted text quoted in an error.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// jsonReason turns an encoding/json error into a short reason.
func jsonReason(err error) string {
	return strings.TrimPrefix(err.Error(), "json: ")
}

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }
