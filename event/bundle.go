package event

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
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

// MessageSignature is the content of a Sigstore bundle of a signature over
// an artifact (cosign sign-blob --bundle): not an event, but what a sign
// event records.
type MessageSignature struct {
	// Digest is the artifact's digest the bundle names, if it names a
	// sha256 (SHA2_256) one; zero otherwise.
	Digest Digest
	// Signature is the raw signature over the artifact.
	Signature []byte
}

// ParseMessageSignature takes the message signature out of a Sigstore
// bundle (up to MaxSignatureBundle bytes). Errors wrap ErrInvalid and
// name the field.
func ParseMessageSignature(b []byte) (*MessageSignature, error) {
	if len(b) > MaxSignatureBundle {
		return nil, fieldErr("bundle", "%d bytes, want at most %d", len(b), MaxSignatureBundle)
	}
	if err := checkJSON(b, "bundle", len(b)); err != nil {
		return nil, err
	}
	var bundle struct {
		MediaType        string `json:"mediaType"`
		MessageSignature *struct {
			MessageDigest struct {
				Algorithm string `json:"algorithm"`
				Digest    string `json:"digest"`
			} `json:"messageDigest"`
			Signature string `json:"signature"`
		} `json:"messageSignature"`
	}
	if err := json.Unmarshal(b, &bundle); err != nil {
		return nil, fieldErr("bundle", "%v", err)
	}
	if !strings.HasPrefix(bundle.MediaType, BundleMediaTypePrefix) {
		return nil, fieldErr("bundle.mediaType", "%q, not a Sigstore bundle", clip(bundle.MediaType))
	}
	ms := bundle.MessageSignature
	if ms == nil {
		return nil, fieldErr("bundle.messageSignature", "missing: not a bundle of a signature over an artifact (cosign sign-blob --bundle writes one)")
	}
	sig, err := base64.StdEncoding.DecodeString(ms.Signature)
	if err != nil || len(sig) == 0 {
		return nil, fieldErr("bundle.messageSignature.signature", "not non-empty base64")
	}
	out := &MessageSignature{Signature: sig}
	if ms.MessageDigest.Algorithm == "SHA2_256" {
		md, err := base64.StdEncoding.DecodeString(ms.MessageDigest.Digest)
		if err != nil || len(md) != 32 {
			return nil, fieldErr("bundle.messageSignature.messageDigest.digest", "not the base64 of a SHA-256")
		}
		out.Digest = Digest{Alg: "sha256", Hex: hex.EncodeToString(md)}
	}
	return out, nil
}

// MaxSignatureBundle caps a Sigstore bundle of a message signature (its
// verification material may carry a certificate chain and log entries).
const MaxSignatureBundle = 1 << 20

// DetectSBOM tells an SPDX JSON document (spdxVersion "SPDX-…", or SPDX 3
// JSON-LD with an spdx @context) from a CycloneDX JSON BOM (bomFormat
// "CycloneDX") and returns its format (SBOMSPDX, SBOMCycloneDX) and spec
// version.
func DetectSBOM(doc []byte) (format, specVersion string, err error) {
	var d struct {
		SPDXVersion string          `json:"spdxVersion"`
		Context     json.RawMessage `json:"@context"`
		BOMFormat   string          `json:"bomFormat"`
		SpecVersion string          `json:"specVersion"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		return "", "", fmt.Errorf("not JSON: %w", err)
	}
	switch {
	case strings.HasPrefix(d.SPDXVersion, "SPDX-"):
		return SBOMSPDX, d.SPDXVersion, nil
	case d.Context != nil && strings.Contains(string(d.Context), "spdx"):
		return SBOMSPDX, "", nil
	case d.BOMFormat == "CycloneDX":
		return SBOMCycloneDX, d.SpecVersion, nil
	}
	return "", "", errors.New("neither an SPDX document (spdxVersion) nor a CycloneDX BOM (bomFormat); only the JSON forms are read")
}
