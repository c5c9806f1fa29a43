// Package event defines provlog's supply-chain events and their parsing:
// DSSE envelopes (bare, or inside a Sigstore bundle) carrying in-toto
// Statements. It owns these formats for the whole module (envelopes,
// Sigstore bundles, statements, predicates, canonical leaves, and the
// message signatures of cosign sign-blob bundles): nothing else parses
// them.
//
// # Envelope
//
// An event is a DSSE envelope (https://github.com/secure-systems-lab/dsse)
// with payloadType "application/vnd.in-toto+json":
//
//	{"payloadType":"application/vnd.in-toto+json",
//	 "payload":"<base64 of the statement JSON>",
//	 "signatures":[{"keyid":"<key id>","sig":"<base64 signature>"}]}
//
// Each signature is over DSSE's PAE(payloadType, payload). Base64 may be
// standard or URL-safe, padded or not (DSSE: "verifiers MUST accept
// either"). The key id is a hint only: the securesystemslib key id of the
// signing key, empty, or absent (cosign writes none); verifiers try the
// keys they know. A Sigstore bundle (what cosign attest-blob writes) whose
// content is a DSSE envelope is taken as that envelope (ParseEntry).
//
// The log stores the envelope's canonical encoding (Canonical): the three
// fields in the order above, no insignificant white space, signatures sorted
// by key id then signature bytes, base64 in its standard padded form. An
// event submitted twice — even re-serialized with other spacing, field
// order, signature order or base64 alphabet, or inside a bundle — is the
// same leaf. The payload, which the signatures cover, is kept byte for
// byte.
//
// # Statement and predicates
//
// The payload is an in-toto Statement v1 (https://in-toto.io/Statement/v1),
// or v0.1, which cosign writes (the same fields; Event.StatementType says
// which), whose subjects name artifacts by digest: "sha256" (64 hex digits)
// or "sha512" (128), lowercase. The predicate type says what happened:
//
//   - build: SLSA Provenance v1 (https://slsa.dev/provenance/v1). provlog
//     requires runDetails.builder.id, buildDefinition.buildType, and the
//     exact source, read from the shapes GitHub, the SLSA generators,
//     Tekton Chains and GitLab write (see buildSource).
//   - sign: SignPredicateType, recording that an artifact was signed (see
//     SignPredicate).
//   - promote: PromotePredicateType, recording a promotion between
//     environments (see PromotePredicate). Approvals are further DSSE
//     signatures on the same envelope.
//   - sbom: an SPDX document or CycloneDX BOM inline (up to MaxInlineSBOM),
//     or referenced by digest, size and media type (SBOMRefPredicateType).
//   - test-result: an in-toto test result (TestResult).
//   - vsa: a SLSA Verification Summary Attestation (VSA).
//   - link: an in-toto link (Link).
//   - keyring: KeyringPredicateType, a whole keyring in force from its
//     own index: keys with roles and validity windows, environments, an
//     admins rule (see KeyringPredicate). Its subjects are its key ids.
//   - revoke: RevokePredicateType, a key's signatures void from an index
//     on (see RevokePredicate). Its one subject is the key id.
//   - quarantine and unquarantine: QuarantinePredicateType, an artifact
//     withdrawn or its withdrawal lifted (see QuarantinePredicate).
//
// trust.go gives the formats of the last three.
//
// # Parsing rules and limits
//
// Unknown fields are ignored, as the in-toto Statement ("Consumers MUST
// ignore unrecognized fields unless otherwise noted") and SLSA ("Producers
// MAY add extension fields to any JSON object") parsing rules require.
// JSON with duplicate object names, trailing data, nesting deeper than
// MaxDepth, or more than the limits below is refused with a *FieldError
// naming the field; so is an envelope with members other than its three.
package event
