package event

import (
	"bytes"
	"errors"
	"slices"
	"strings"

	"github.com/go-json-experiment/json/jsontext"
)

// BundleMediaTypePrefix begins the media type of every Sigstore bundle
// ("application/vnd.dev.sigstore.bundle+json;version=0.1" to 0.2,
// "application/vnd.dev.sigstore.bundle.v0.3+json").
const BundleMediaTypePrefix = "application/vnd.dev.sigstore.bundle"

// ParseEntry parses a submitted event: a DSSE envelope (ParseEnvelope), or
// a Sigstore bundle whose content is one (what cosign attest-blob writes).
// Of a bundle only the envelope is kept: its verification material
// (certificate, public key hint, transparency log entries) is the
// submitter's business, the log verifies the envelope against its own
// keyring. Errors in a bundle's envelope name fields
// "bundle.dsseEnvelope…".
func ParseEntry(b []byte) (*Envelope, error) {
	env, err := ParseEnvelope(b)
	if err == nil {
		return env, nil
	}
	mt, ok := topLevelString(b, "mediaType")
	if !ok || !strings.HasPrefix(mt, BundleMediaTypePrefix) {
		return nil, err
	}
	return parseBundle(b)
}

// parseBundle takes the DSSE envelope out of a Sigstore bundle. Members
// other than mediaType and the content are ignored (the bundle format
// grows), but the whole must be strict JSON within the limits.
func parseBundle(b []byte) (*Envelope, error) {
	if err := checkJSON(b, "bundle", len(b)); err != nil {
		return nil, err
	}
	dec := jsontext.NewDecoder(bytes.NewReader(b))
	if _, err := dec.ReadToken(); err != nil { // '{', checked
		return nil, asFieldError("bundle", err)
	}
	var envelope jsontext.Value
	message := false
	for dec.PeekKind() == '"' {
		tok, err := dec.ReadToken()
		if err != nil {
			return nil, asFieldError("bundle", err)
		}
		name := tok.String()
		v, err := dec.ReadValue()
		if err != nil {
			return nil, asFieldError("bundle", err)
		}
		switch name {
		case "dsseEnvelope", "dsse_envelope":
			if v.Kind() != 'n' {
				envelope = bytes.Clone(v) // v is the decoder's until its next read
			}
		case "messageSignature", "message_signature":
			message = message || v.Kind() != 'n'
		}
	}
	switch {
	case envelope != nil:
	case message:
		return nil, fieldErr("bundle.messageSignature", "a bundle of a signature over an artifact (cosign sign-blob) is not an event: log an attestation (cosign attest-blob, or provlog attest), a bundle whose content is a DSSE envelope")
	default:
		return nil, fieldErr("bundle.dsseEnvelope", "missing: the bundle holds no DSSE envelope")
	}
	env, err := ParseEnvelope(envelope)
	if err != nil {
		var fe *FieldError
		if errors.As(err, &fe) {
			return nil, &FieldError{Field: "bundle.dsseEnvelope" + strings.TrimPrefix(fe.Field, "envelope"), Reason: fe.Reason}
		}
		return nil, err
	}
	return env, nil
}

// topLevelString returns the first string member of the JSON object b
// named one of names, reading past every other member without the
// parsing limits (b may be over them; it is not kept).
func topLevelString(b []byte, names ...string) (string, bool) {
	dec := jsontext.NewDecoder(bytes.NewReader(b), jsontext.AllowDuplicateNames(true))
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '{' {
		return "", false
	}
	for dec.PeekKind() == '"' {
		tok, err := dec.ReadToken()
		if err != nil {
			return "", false
		}
		name := tok.String()
		if !slices.Contains(names, name) {
			if err := dec.SkipValue(); err != nil {
				return "", false
			}
			continue
		}
		v, err := dec.ReadToken()
		if err != nil || v.Kind() != '"' {
			return "", false
		}
		return v.String(), true
	}
	return "", false
}
