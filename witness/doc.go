// Package witness is provlog's transparency log witness and the log-side
// witness client.
//
// It owns, for the module, the C2SP tlog-witness wire format (the
// add-checkpoint request and its responses, request.go) and the fork
// evidence records (evidence.go); checkpoints themselves are parsed by
// internal/checkpoint, witness policies by formats/witness.
//
// A Witness keeps, per configured log, the latest checkpoint it cosigned,
// and cosigns a new checkpoint only if it is signed by the log and proven
// consistent with that one:
//
//   - Push: the C2SP tlog-witness add-checkpoint API (Handler, POST
//     /add-checkpoint, request format in request.go) takes an old size, a
//     consistency proof and a signed checkpoint, and answers with the status
//     codes of https://c2sp.org/tlog-witness: 404 unknown origin, 403 no
//     valid log signature, 400 malformed or old size above the checkpoint
//     size, 409 (Content-Type text/x.tlog.size, body the cosigned size) when
//     the old size is not the cosigned size, 422 for a bad proof, a
//     size-zero checkpoint without the empty root, or a same-size checkpoint
//     with another root, and 200 with the cosignature lines.
//   - Poll: for logs configured with a tlog-tiles URL, Run (and Poll)
//     fetches /checkpoint, builds the consistency proof from the log's
//     tiles (Tessera's client.ProofBuilder) and goes through the same
//     checks.
//
// Cosignatures are C2SP tlog-cosignature cosignature/v1 (Ed25519, type
// 0x04) over the canonical re-encoding of the parsed checkpoint
// (Checkpoint.Marshal), never over the bytes received; parsing is strict
// enough that the two are equal (checkpoint.go).
//
// State (State, PebbleState) is updated by compare-and-swap with a synced
// write before a cosignature is released, so concurrent requests for one
// log serialize through the swap, and a crash, even kill -9, never leads
// to cosigning two inconsistent checkpoints. AddCheckpoint documents the
// steps.
//
// A checkpoint the witness cannot cosign is refused; only what proves the
// log misbehaved is kept as evidence: two log-signed checkpoints of one
// size with different roots; a larger checkpoint whose consistency proof
// from the log's own tiles (polling) does not verify; a pushed proof whose
// hashes chain to the larger checkpoint's root but to another root at the
// cosigned size (see provenFork); or, when polling, a smaller checkpoint
// that the tiles do not prove consistent with the cosigned one. A pushed
// proof that merely fails to verify is a 422 (ErrInvalidProof) and nothing
// more, so clients cannot plant evidence, and a smaller checkpoint the
// tiles prove consistent is stale, not forked (provlog_witness_polled_tree_size
// against provlog_witness_cosigned_tree_size, and the "stale" poll result).
// Evidence (both log-signed checkpoints and the proof) is stored once per
// content (Evidence.ID), at most Config.MaxEvidence records per log (the
// first ones; the rest counted in provlog_witness_evidence_dropped_total),
// logged, counted in provlog_witness_fork_evidence_total, served page by
// page at GET /evidence and GET /<origin hash>/evidence (Handler), and the
// error is a *ForkError carrying it.
//
// Signature lines from keys the witness does not know are ignored, even
// if their base64 does not decode, as C2SP signed-note requires; known
// keys' signatures are kept and served in canonical base64.
//
// The log side is Client: given a tlog-policy, it sends each new checkpoint
// to every witness with a proof from that witness's last size, resyncs on
// 409, verifies the cosignatures (re-encoding each canonically) and
// reports whether the quorum is met. A witness that fails (refuses, errs,
// times out) is retried with exponential backoff, per witness, from
// ClientConfig.MinBackoff to MaxBackoff, reset by a cosignature; the client
// logs each change of a witness's state (WARN failing, with why; INFO
// recovered), not each round.
//
// The witnessed logs are listed in a text file (ParseLogList, config.go);
// the witness key is a note private key (key.go).
package witness
