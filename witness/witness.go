package witness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
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
	// Registry receives the witness's metrics and is served at /metrics.
	// If nil, a new registry is created.
	Registry *prometheus.Registry
	// Logger is where the witness logs. If nil, slog.Default().
	Logger *slog.Logger
}

// Witness verifies checkpoints of the configured logs and cosigns those
// consistent with what it cosigned before. Its mutable state is all in
// Config.State; a Witness is safe for concurrent use.
type Witness struct {
	signer   note.Signer
	logs     map[string]LogConfig // read-only after New
	state    State
	interval time.Duration
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
// any other error is internal.
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
	if err := w.checkConsistency(ctx, rec, req, cp); err != nil {
		return nil, err
	}

	text := cp.Marshal()
	if !bytes.HasPrefix(req.Checkpoint, append(text, '\n')) {
		panic("witness: canonical re-encoding differs from the parsed checkpoint text")
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
		Checkpoint: append(append(append(append([]byte{}, text...), '\n'), formatSignatures(logSigs)...), cosig...),
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
func (w *Witness) checkConsistency(ctx context.Context, rec Record, req *AddCheckpointRequest, cp Checkpoint) error {
	if rec.Size == 0 {
		if len(req.Proof) != 0 {
			return fmt.Errorf("%w: old size 0 needs an empty proof, got %d lines", ErrInvalidProof, len(req.Proof))
		}
		return nil
	}
	if cp.Size == rec.Size {
		if cp.Hash != rec.Hash {
			return w.fork(ctx, KindSameSizeDifferentRoot, rec, req, errors.New("same size, different root hash"))
		}
		if len(req.Proof) != 0 {
			return fmt.Errorf("%w: old size equals the checkpoint size but the proof is not empty", ErrInvalidProof)
		}
		return nil
	}
	err := proof.VerifyConsistency(rfc6962.DefaultHasher, rec.Size, cp.Size, req.Proof, rec.Hash[:], cp.Hash[:])
	var mismatch proof.RootMismatchError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &mismatch):
		return w.fork(ctx, KindInconsistentProof, rec, req, err)
	default:
		return fmt.Errorf("%w: %w", ErrInvalidProof, err)
	}
}

// fork stores, logs and counts evidence, and returns it as a *ForkError.
func (w *Witness) fork(ctx context.Context, kind EvidenceKind, rec Record, req *AddCheckpointRequest, cause error) error {
	e := Evidence{
		Kind:     kind,
		Origin:   rec.Origin,
		Observed: time.Now().UTC(),
		Cosigned: rec.Checkpoint,
		Refused:  req.Checkpoint,
		OldSize:  req.OldSize,
		Proof:    req.Proof,
		Detail:   cause.Error(),
	}
	w.logger.ErrorContext(ctx, "refused a checkpoint inconsistent with the cosigned one: possible log fork",
		"origin", e.Origin, "kind", kind, "cosigned_size", rec.Size, "detail", e.Detail, "evidence", e.ID())
	w.metrics.evidence.WithLabelValues(e.Origin, string(kind)).Inc()
	if err := w.state.AddEvidence(ctx, e); err != nil {
		return fmt.Errorf("storing fork evidence (%w): %w", cause, err)
	}
	return &ForkError{Evidence: e, Err: cause}
}

// Checkpoint returns the latest checkpoint the witness cosigned for
// origin, with the log's signatures and the cosignature, or ok false.
func (w *Witness) Checkpoint(ctx context.Context, origin string) (cp []byte, ok bool, err error) {
	rec, ok, err := w.state.Latest(ctx, origin)
	return rec.Checkpoint, ok, err
}

// Evidence returns the stored fork evidence for origin, or for all logs
// if origin is "".
func (w *Witness) Evidence(ctx context.Context, origin string) ([]Evidence, error) {
	return w.state.Evidence(ctx, origin)
}
