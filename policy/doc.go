// Package policy owns the deploy-gate policy format and its evaluation:
// given the events a log holds about an artifact, already proven included
// by the caller, may the artifact be deployed to an environment? It is
// what "provlog gate" decides with, and what anything else that deploys
// can import to ask the same question and get the same answer.
//
// The package does no network I/O and trusts nothing it is not given:
// fetching events and proving each one included in a checkpoint signed by
// the log key (and meeting the witness policy, [Policy.Witness]) is the
// caller's job, and so is completeness. Inclusion proves presence, not
// absence: [Policy.Decide] sees only the events it is handed, so an event
// the caller never found cannot count against an artifact.
//
// It also owns the keyring model and the log's trust over time, which
// the log's admission and every independent replay share: [Keyring] (a
// version of a log's keyring, made from a keyring event), [History] (the
// keyring in force at every index, revocations, quarantines: see its doc
// for the rules), [History.Admit] (the admission decision over a
// [Ledger] of earlier entries) and [Replay] (those decisions from a log's
// entries alone). [WithHistory] makes Decide judge by the replayed
// history: quarantined artifacts are denied, and events whose signers
// were revoked as compromised no longer count.
//
// # The policy format
//
// A policy is one JSON object; unknown fields and trailing data are
// refused (internal/strictjson), and every other error names the field. For example:
//
//	{
//	  "version": 1,
//	  "builders": ["https://ci.example.com/runner@v2"],
//	  "sourceRepositories": ["git+https://git.example.com/app", "git+https://git.example.com/libs/*"],
//	  "keys": {"signer": "keys/signer.pub", "bob": "keys/bob.pub"},
//	  "requiredSigners": ["signer"],
//	  "promotionPath": ["dev", "staging", "prod"],
//	  "approvals": {"prod": {"count": 2, "keys": ["bob"]}},
//	  "reproducible": {"builders": 2, "sameSource": true},
//	  "witnessPolicy": "witnesses.policy",
//	  "namespaces": {"app-staging": "staging", "app": "prod"}
//	}
//
// Every field may be left out; its zero value is given below.
//
//   - version: the version of this format, 1 (the only one so far; see
//     [Versions]). Any other value is refused, naming the field and the
//     versions this build reads, so that a policy written for a later
//     format with rules this build does not know is not read as a weaker
//     one. Absent: 1.
//   - builders: the allowed SLSA builder ids of the build event. An entry
//     ending in "*" or "/" is a prefix ("*" removed); any other must match
//     exactly. Empty: any builder.
//   - sourceRepositories: the allowed source repositories of the build
//     event, matched as builders are. Empty: any source.
//   - keys: names for PEM public keys, each a file relative to the policy
//     file's directory (loaded with [event.LoadKeyRef]). For a named key
//     the gate verifies the envelope signature itself instead of relying
//     on the log's admission check. Empty: no names.
//   - requiredSigners: keys that must each have signed a sign event about
//     the artifact. A key is a name from keys, or a raw DSSE key id (the
//     securesystemslib key id "provlog keygen" prints, 64 lowercase hex
//     digits), which the gate takes on the log's word (the log verified
//     every signature against its keyring). These are the keys of the sign
//     events' envelopes, not the free-text keyId of their predicate.
//     Empty: no signature required.
//   - promotionPath: environments in order, none empty or repeated.
//     Deploying to an environment needs a promotion into each environment
//     of the path up to and including it, each from the one before (the
//     first from none), in log order. The environment must be on the path.
//     Empty: one promotion into the environment, from anywhere.
//   - approvals: per environment (one on promotionPath, if that is set):
//     "count", the least number of distinct signers of the promotion into
//     it (>= 0; zero: any), and "keys", keys (as in requiredSigners) that
//     must all be among them. Empty: no approvals beyond the promotion.
//   - reproducible: "builders", the least number N (>= 1) of independent
//     accepted builds of the artifact, and "sameSource", whether they must
//     all be of one source: the same repository (compared normalized, by
//     [event.NormalizeRepo]) and commit. Builds are independent if no
//     builder id and no signing key accounts for two of them (see
//     [Independent]). The signing keys counted are those of the build
//     events' envelopes: a key named in keys counts if it verifies a
//     signature (a signature whose key id is a named key's that the key
//     does not verify counts for nothing); any other signature counts by
//     its DSSE key id, as the log admitted it, and all signatures without a
//     key id count as one key, since the gate cannot tell their signers
//     apart. Name the builders' keys in keys so that cosign signatures
//     (which carry no key id) count each. Absent: no such rule.
//   - witnessPolicy: a tlog-policy file ("witness", "group", "quorum"
//     lines), relative to the policy file's directory, that the checkpoint
//     of every event's proof must meet. [Parse] loads and checks it into
//     [Policy.Witness]; the caller proves events with it. Empty: none.
//   - namespaces: Kubernetes namespace names (RFC 1123 labels) mapped to
//     the environment a deployment into the namespace is for, none empty,
//     each on promotionPath if that is set. [Policy.EnvironmentOf] reads
//     it; Decide does not. Empty: no namespace maps to an environment.
//
// Only events about an accepted build count: a build event whose builder
// and source the policy allows, and sign and promote events whose
// buildIndex is such a build.
package policy
