// Package event defines provlog's supply-chain events and their strict
// parsing: DSSE envelopes carrying in-toto Statement v1 documents.
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
// Each signature is over DSSE's PAE(payloadType, payload). The key id is the
// securesystemslib key id of the signing key (the one in-toto tooling
// computes), or empty, in which case the verifier tries every key it knows.
//
// The log stores the envelope's canonical encoding (Canonical): the three
// fields in the order above, no insignificant white space, signatures sorted
// by key id then signature bytes, base64 in its standard padded form. An
// event submitted twice — even re-serialized with other spacing, field
// order or signature order — is the same leaf.
//
// # Statement and predicates
//
// The payload is an in-toto Statement v1 (https://in-toto.io/Statement/v1)
// whose subjects name artifacts by digest: "sha256" (64 hex digits) or
// "sha512" (128), lowercase. The predicate type says what happened:
//
//   - build: SLSA Provenance v1 (https://slsa.dev/provenance/v1). provlog
//     requires runDetails.builder.id, buildDefinition.buildType, and the
//     exact source: buildDefinition.externalParameters.source
//     {"repository": URI, "commit": hex} or, failing that, a
//     resolvedDependencies entry with a "gitCommit" digest.
//   - sign: SignPredicateType, recording that an artifact was signed (see
//     SignPredicate).
//   - promote: PromotePredicateType, recording a promotion between
//     environments (see PromotePredicate). Approvals are further DSSE
//     signatures on the same envelope.
//
// # Limits
//
// Parsing is strict: JSON with duplicate object names, trailing data,
// unknown fields, nesting deeper than MaxDepth, or more than the limits
// below is refused with a *FieldError naming the field.
package event
