// Package client is what pipelines and auditors import to use a provlog
// transparency log: submit entries, wait for them to be covered by a signed
// checkpoint, fetch and verify proofs, verify offline proof bundles, follow
// a log as a monitor and replay it as an auditor.
//
// It owns, for the module, the parsing and verification of C2SP tlog-proof
// bundles (ParseBundle, VerifyBundle: canonical form, caps) and the watch
// file format (ParseWatch); events are parsed by package event,
// checkpoints by internal/checkpoint.
//
// # Trust
//
// Nothing the log serves is trusted until it is verified. Every checkpoint
// is opened with the log's note verifier key (C2SP signed-note, Ed25519)
// and must name the log's origin (C2SP tlog-checkpoint); every proof is
// checked with github.com/transparency-dev/merkle against such a
// checkpoint (RFC 6962 hashing: leaf SHA-256(0x00||entry), node
// SHA-256(0x01||left||right)). Methods that return data the log could lie
// about say what they verified.
//
// # Online: the gRPC client
//
// [Dial] connects to the provlog.v1.Log gRPC service. [Client.Append] and
// [Client.AppendMany] submit entries, retrying pushback
// (ResourceExhausted, honouring the server's RetryInfo delay) and
// unavailability with exponential backoff and jitter; retrying is safe
// because the log deduplicates identical entries. Only a log that answers
// is retried: a call that reaches no log (connection refused, no route,
// a name that does not resolve, a failed TLS handshake) fails at once
// with a [*ConnectError] ([ErrNoConnection]), unless
// [Config.WaitForReady] makes it wait, within its context, for the log to
// come up (to ride out a restart). [Client.Checkpoint],
// [Client.WaitForInclusion], [Client.VerifyInclusion] and
// [Client.ProofBundle] read and verify; [Client.Search] iterates over
// search results.
//
// # Offline: tlog-proof bundles
//
// A bundle (C2SP tlog-proof, c2sp.org/tlog-proof@v1) carries an entry as
// its extra data, the entry's index, its inclusion proof and the signed
// checkpoint, with any witness cosignatures (C2SP tlog-cosignature).
// [VerifyBundle] checks one with only the log's verifier key and,
// optionally, a witness policy in the tlog-policy text format.
//
// # Following a log: Monitor and Audit
//
// A [Monitor] keeps the last verified checkpoint of a log in a state file
// and proves each newer checkpoint consistent with it, over gRPC or over
// the C2SP tlog-tiles HTTP API of any tlog-tiles log. A fork or rollback
// is returned as an [*InconsistencyError] carrying the evidence, which is
// also written to a file. [Audit] replays a whole tlog-tiles log: it
// recomputes every leaf hash, every hash tile and the root from the entry
// bundles and compares them with what the log serves and signed.
package client
