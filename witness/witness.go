package witness

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

// LogConfig is one log the witness witnesses.
type LogConfig struct {
	// Origin is the log's checkpoint origin line. Required.
	Origin string
	// Verifiers are the log's checkpoint keys; a checkpoint must carry a
	// valid signature from at least one. Required.
	Verifiers []note.Verifier
	// URL is the log's tlog-tiles prefix (serving /checkpoint and /tile/);
	// if empty, the witness does not poll the log and only cosigns what is
	// pushed to it with add-checkpoint.
	URL string
}

// Config configures a Witness.
type Config struct {
	// Signer makes the witness's cosignatures: a C2SP tlog-cosignature
	// cosignature/v1 signer such as LoadKey returns. Required.
	Signer note.Signer
	// Logs are the witnessed logs, with distinct origins. If empty, the
	// witness knows no log and answers every add-checkpoint with 404.
	Logs []LogConfig
	// State is where the witness keeps its records and evidence. Required.
	State State
	// PollInterval is how often logs with a URL are polled by Run. If
	// zero, one minute.
	PollInterval time.Duration
	// HTTPClient fetches the tiles of polled logs. If nil, a client with a
	// 30-second timeout. Response bodies are capped at 1 MiB either way.
	HTTPClient *http.Client
	// MaxEvidence caps the evidence records kept per log. Past it, new
	// evidence is refused as usual but not stored (the first MaxEvidence
	// records are kept), logged at WARN and counted in
	// provlog_witness_evidence_dropped_total. If zero, DefaultMaxEvidence.
	MaxEvidence int
	// Registry receives the witness's metrics and is served at /metrics.
	// If nil, a new registry is created.
	Registry *prometheus.Registry
	// Logger is where the witness logs. If nil, slog.Default().
	Logger *slog.Logger
}

// DefaultMaxEvidence is the default of Config.MaxEvidence. Evidence comes
// only from checkpoints signed by the log's key, so a log that reaches it
// has misbehaved a thousand distinct ways; monitors have plenty to act on.
const DefaultMaxEvidence = 1000

// Witness verifies checkpoints of the configured logs and cosigns those
// consistent with what it cosigned before. Its mutable state is all in
// Config.State; a Witness is safe for concurrent use.
type Witness struct {
	signer   note.Signer
	logs     map[string]LogConfig // read-only after New
	state    State
	interval time.Duration
	maxEv    int
	http     *http.Client
	registry *prometheus.Registry
	metrics  *metrics
	logger   *slog.Logger
}

// New returns a Witness for cfg.
func New(cfg Config) (*Witness, error) {
	if cfg.Signer == nil {
		return nil, errors.New("witness: Config.Signer is required")
	}
	if cfg.State == nil {
		return nil, errors.New("witness: Config.State is required")
	}
	w := &Witness{
		signer:   cfg.Signer,
		logs:     make(map[string]LogConfig, len(cfg.Logs)),
		state:    cfg.State,
		interval: cfg.PollInterval,
		maxEv:    cfg.MaxEvidence,
		http:     cfg.HTTPClient,
		registry: cfg.Registry,
		logger:   cfg.Logger,
	}
	for _, l := range cfg.Logs {
		if l.Origin == "" || len(l.Verifiers) == 0 {
			return nil, fmt.Errorf("witness: log %q needs an origin and at least one key", l.Origin)
		}
		if _, dup := w.logs[l.Origin]; dup {
			return nil, fmt.Errorf("witness: log %q configured twice", l.Origin)
		}
		w.logs[l.Origin] = l
	}
	if w.interval == 0 {
		w.interval = time.Minute
	}
	if w.maxEv <= 0 {
		w.maxEv = DefaultMaxEvidence
	}
	if w.http == nil {
		w.http = &http.Client{Timeout: 30 * time.Second}
	}
	w.http = cappedClient(w.http, 1<<20)
	if w.registry == nil {
		w.registry = prometheus.NewRegistry()
	}
	if w.logger == nil {
		w.logger = slog.Default()
	}
	m, err := newMetrics(w.registry)
	if err != nil {
		return nil, err
	}
	w.metrics = m
	return w, nil
}

// Name returns the witness's key name.
func (w *Witness) Name() string { return w.signer.Name() }

func (w *Witness) lookup(origin string) ([]note.Verifier, bool) {
	l, ok := w.logs[origin]
	return l.Verifiers, ok
}

// emptyRoot is the RFC 6962 root of the empty tree, SHA-256("").
var emptyRoot = [32]byte(rfc6962.DefaultHasher.EmptyRoot())

// AddCheckpoint runs the C2SP tlog-witness add-checkpoint checks on req
// and, if they pass, records the checkpoint and returns the witness's
// cosignature lines over its canonical re-encoding.
//
// Errors match (errors.Is / errors.As) ErrMalformed, ErrUnknownLog,
// ErrUnverified, ErrOldSizeTooLarge, *ConflictError, ErrInvalidProof and
// *ForkError (ErrInconsistent, whose evidence is stored before it returns);
// any other error is internal. A proof from the client that does not
// verify is ErrInvalidProof, not evidence, unless it shows the log signed
// two incompatible trees (provenFork).
//
// Crash consistency, step by step:
//  1. Read the record (the latest cosigned checkpoint) and check the
//     request against it. A crash here leaves nothing.
//  2. Sign the cosignature in memory. A crash here: nothing was released.
//  3. Compare-and-swap the record to the new checkpoint, a synced write. A
//     crash before it completes leaves the old record and no cosignature
//     released; after, the new record with no cosignature released, which
//     is safe (the client retries with old = the new size and gets a 409
//     telling it so, or re-sends the same checkpoint).
//  4. Return the cosignature. If another request swapped the record
//     between 1 and 3, the swap fails, nothing is released, and the
//     request gets a 409 with the size that won.
func (w *Witness) AddCheckpoint(ctx context.Context, req *AddCheckpointRequest) ([]byte, error) {
	cp, logSigs, err := openCheckpoint(req.Checkpoint, w.lookup)
	if err != nil {
		return nil, err
	}
	if req.OldSize > cp.Size {
		return nil, fmt.Errorf("%w: old size %d, checkpoint size %d", ErrOldSizeTooLarge, req.OldSize, cp.Size)
	}
	if cp.Size == 0 && cp.Hash != emptyRoot {
		return nil, fmt.Errorf("%w: checkpoint of size 0 does not have the empty tree's root", ErrInvalidProof)
	}
	rec, ok, err := w.state.Latest(ctx, cp.Origin)
	if err != nil {
		return nil, err
	}
	if req.OldSize != rec.Size {
		return nil, &ConflictError{Size: rec.Size, Requested: req.OldSize}
	}
	text := cp.Marshal()
	if !bytes.HasPrefix(req.Checkpoint, append(text, '\n')) {
		panic("witness: canonical re-encoding differs from the parsed checkpoint text")
	}
	logged := slices.Concat(text, []byte("\n"), formatSignatures(logSigs))
	if err := w.checkConsistency(ctx, rec, req, cp, logged); err != nil {
		return nil, err
	}

	signed, err := note.Sign(&note.Note{Text: string(text)}, w.signer)
	if err != nil {
		return nil, fmt.Errorf("cosigning: %w", err)
	}
	cosig := signed[len(text)+1:]
	next := Record{
		Origin:     cp.Origin,
		Size:       cp.Size,
		Hash:       cp.Hash,
		Checkpoint: slices.Concat(logged, cosig),
	}
	var old *Record
	if ok {
		old = &rec
	}
	if err := w.state.CompareAndSwap(ctx, old, next); err != nil {
		if errors.Is(err, ErrStateChanged) {
			cur, _, lerr := w.state.Latest(ctx, cp.Origin)
			if lerr != nil {
				return nil, lerr
			}
			return nil, &ConflictError{Size: cur.Size, Requested: req.OldSize}
		}
		return nil, fmt.Errorf("recording checkpoint of %q: %w", cp.Origin, err)
	}
	w.metrics.cosigned(cp.Origin, cp.Size)
	w.logger.InfoContext(ctx, "cosigned checkpoint", "origin", cp.Origin, "size", cp.Size, "old_size", req.OldSize)
	return cosig, nil
}

// checkConsistency checks that cp extends rec (req.OldSize == rec.Size),
// storing and returning a *ForkError if it provably does not.
func (w *Witness) checkConsistency(ctx context.Context, rec Record, req *AddCheckpointRequest, cp Checkpoint, refused []byte) error {
	if rec.Size == 0 {
		if len(req.Proof) != 0 {
			return fmt.Errorf("%w: old size 0 needs an empty proof, got %d lines", ErrInvalidProof, len(req.Proof))
		}
		return nil
	}
	if cp.Size == rec.Size {
		if cp.Hash != rec.Hash {
			return w.fork(ctx, w.evidence(KindSameSizeDifferentRoot, rec, refused, 0, nil,
				fmt.Sprintf("same size %d, root %s, cosigned root %s", cp.Size, b64(cp.Hash[:]), b64(rec.Hash[:]))))
		}
		if len(req.Proof) != 0 {
			return fmt.Errorf("%w: old size equals the checkpoint size but the proof is not empty", ErrInvalidProof)
		}
		return nil
	}
	err := proof.VerifyConsistency(rfc6962.DefaultHasher, rec.Size, cp.Size, req.Proof, rec.Hash[:], cp.Hash[:])
	if err == nil {
		return nil
	}
	if old, ok := provenFork(rec.Size, cp.Size, req.Proof, cp.Hash, err); ok {
		return w.fork(ctx, w.evidence(KindInconsistentProof, rec, refused, rec.Size, req.Proof,
			fmt.Sprintf("the proof hashes to the root of size %d and gives root %s at size %d, not the cosigned %s", cp.Size, b64(old), rec.Size, b64(rec.Hash[:]))))
	}
	return fmt.Errorf("%w: %s", ErrInvalidProof, mismatchDetail(err))
}

// provenFork reports whether a consistency proof from size1 to size2 that
// failed to verify (err, from proof.VerifyConsistency) nonetheless proves
// the log signed two incompatible trees, and returns the root it gives at
// size1. That is the case when the proof's hashes chain up to root2, the
// log-signed root at size2, but to another root at size1 than the cosigned
// one: producing hashes that chain to a given root needs the tree's own
// nodes (anything else is a SHA-256 second preimage), and those nodes give
// the tree's own root at size1 (RFC 9162, section 2.1.4.2, computes both
// roots from the same nodes). When size1 is a power of two, the proof has
// no hash for size1's tree (its root is the verifier's input), so a failure
// proves nothing. A proof from a client that merely does not verify is no
// evidence: anyone can send random hashes.
func provenFork(size1, size2 uint64, p [][]byte, root2 [32]byte, err error) (root1 []byte, ok bool) {
	var mismatch proof.RootMismatchError
	if !errors.As(err, &mismatch) {
		return nil, false
	}
	// The first root is checked first: rerun with the root the proof gave,
	// and the second check decides.
	if proof.VerifyConsistency(rfc6962.DefaultHasher, size1, size2, p, mismatch.CalculatedRoot, root2[:]) != nil {
		return nil, false
	}
	return mismatch.CalculatedRoot, true
}

// mismatchDetail describes a proof verification failure with its hashes in
// base64 (merkle's errors print them as Go byte slices).
func mismatchDetail(err error) string {
	var mismatch proof.RootMismatchError
	if errors.As(err, &mismatch) {
		return fmt.Sprintf("the proof gives root %s, want %s", b64(mismatch.CalculatedRoot), b64(mismatch.ExpectedRoot))
	}
	return err.Error()
}

func b64(h []byte) string { return base64.StdEncoding.EncodeToString(h) }

// evidence returns the evidence of kind against rec: refused is the
// log-signed checkpoint, canonically encoded (text and verified log
// signatures).
func (w *Witness) evidence(kind EvidenceKind, rec Record, refused []byte, oldSize uint64, p [][]byte, detail string) Evidence {
	return Evidence{
		Kind:     kind,
		Origin:   rec.Origin,
		Observed: time.Now().UTC(),
		Cosigned: rec.Checkpoint,
		Refused:  refused,
		OldSize:  oldSize,
		Proof:    p,
		Detail:   detail,
	}
}

// fork stores, logs and counts e, and returns it as a *ForkError. New
// evidence is logged at ERROR; evidence already stored, at DEBUG; evidence
// past the log's cap, at WARN (a log can produce that only by signing yet
// another inconsistent checkpoint).
func (w *Witness) fork(ctx context.Context, e Evidence) error {
	cause := errors.New(e.Detail)
	added, err := w.state.AddEvidence(ctx, e, w.maxEv)
	switch {
	case errors.Is(err, ErrEvidenceFull):
		w.metrics.evidenceDropped.WithLabelValues(e.Origin).Inc()
		w.logger.WarnContext(ctx, "refused a checkpoint inconsistent with the cosigned one; evidence not stored: the log has the most evidence records kept",
			"origin", e.Origin, "kind", e.Kind, "detail", e.Detail, "max_evidence", w.maxEv)
	case err != nil:
		return fmt.Errorf("storing fork evidence (%w): %w", cause, err)
	case added:
		w.metrics.evidence.WithLabelValues(e.Origin, string(e.Kind)).Inc()
		w.logger.ErrorContext(ctx, "refused a checkpoint inconsistent with the cosigned one: possible log fork",
			"origin", e.Origin, "kind", e.Kind, "detail", e.Detail, "evidence", e.ID())
	default:
		w.logger.DebugContext(ctx, "refused a checkpoint inconsistent with the cosigned one again (evidence already stored)",
			"origin", e.Origin, "kind", e.Kind, "evidence", e.ID())
	}
	return &ForkError{Evidence: e, Err: cause}
}

// Checkpoint returns the latest checkpoint the witness cosigned for
// origin, with the log's signatures and the cosignature, or ok false.
func (w *Witness) Checkpoint(ctx context.Context, origin string) (cp []byte, ok bool, err error) {
	rec, ok, err := w.state.Latest(ctx, origin)
	return rec.Checkpoint, ok, err
}

// Evidence returns all the stored fork evidence for origin, or for all
// logs if origin is "". Each log keeps at most Config.MaxEvidence records.
func (w *Witness) Evidence(ctx context.Context, origin string) ([]Evidence, error) {
	var all []Evidence
	for after := ""; ; {
		ev, next, err := w.EvidencePage(ctx, origin, after, MaxEvidencePage)
		all = append(all, ev...)
		if err != nil || next == "" {
			return all, err
		}
		after = next
	}
}

// EvidencePage returns up to limit records of stored fork evidence for
// origin, or for all logs if origin is "", after the record whose
// EvidenceCursor is after ("" for the first), and the cursor of the next
// page ("" if none), as State.Evidence.
func (w *Witness) EvidencePage(ctx context.Context, origin, after string, limit int) (ev []Evidence, next string, err error) {
	return w.state.Evidence(ctx, origin, after, limit)
}
