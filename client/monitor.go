package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	tessera "github.com/transparency-dev/tessera/client"
	"golang.org/x/mod/sumdb/note"

	"github.com/provlog/provlog/internal/atomicfile"
	provlogv1 "github.com/provlog/provlog/proto/provlog/v1"
)

// MonitorConfig configures a Monitor.
type MonitorConfig struct {
	// VerifierKey is the log's note verifier key. Required.
	VerifierKey string
	// Origin is the origin checkpoints must name. If empty, the verifier
	// key's name.
	Origin string
	// StateFile holds the last verified checkpoint, as the raw signed note.
	// Required. If it does not exist, the first checkpoint polled is
	// trusted and stored (trust on first use); if it exists, it must hold a
	// checkpoint that verifies with VerifierKey.
	StateFile string
	// EvidenceDir is where evidence of an inconsistency is written, one
	// JSON file per detection. If empty, the directory of StateFile.
	EvidenceDir string
	// Client, if not nil, is the source of checkpoints and consistency
	// proofs (gRPC). Otherwise TilesURL is.
	Client *Client
	// TilesURL is the base URL of the log's C2SP tlog-tiles API (any
	// tlog-tiles log, e.g. "http://127.0.0.1:7401/"): checkpoints come
	// from its /checkpoint, consistency proofs are built from its tiles.
	TilesURL string
	// HTTPClient fetches from TilesURL. If nil, a client with a one-minute
	// timeout.
	HTTPClient *http.Client
	// Interval is the time between polls in Run. If zero, 10s.
	Interval time.Duration
	// Logger receives Run's logs. If nil, slog.Default().
	Logger *slog.Logger
}

// Monitor follows a log: it proves each newer checkpoint consistent with the
// last verified one before storing it, so the stored checkpoint is only ever
// replaced by a verified, consistent one. Its methods may be called from
// any goroutine; polls are serialized.
type Monitor struct {
	cfg      MonitorConfig
	verifier note.Verifier
	origin   string
	src      logSource
	logger   *slog.Logger

	pollMu sync.Mutex  // held for a whole poll, so that polls are serialized
	mu     sync.Mutex  // guards latest; written only with pollMu held
	latest *Checkpoint // the stored checkpoint; nil before the first
}

// logSource is where a Monitor reads a log.
type logSource interface {
	// checkpoint returns the log's latest raw checkpoint.
	checkpoint(ctx context.Context) ([]byte, error)
	// consistencyProof returns the RFC 6962 consistency proof between the
	// trees of sizes from < to (to being a size the log has signed).
	consistencyProof(ctx context.Context, from, to uint64) ([][]byte, error)
}

// NewMonitor returns a Monitor, loading and verifying the state file if
// it exists.
func NewMonitor(cfg MonitorConfig) (*Monitor, error) {
	v, err := newLogVerifier(cfg.VerifierKey)
	if err != nil {
		return nil, err
	}
	if cfg.StateFile == "" {
		return nil, errors.New("monitor: no state file")
	}
	if cfg.EvidenceDir == "" {
		cfg.EvidenceDir = filepath.Dir(cfg.StateFile)
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 10 * time.Second
	}
	m := &Monitor{cfg: cfg, verifier: v, origin: cfg.Origin, logger: cfg.Logger}
	if m.origin == "" {
		m.origin = v.Name()
	}
	if m.logger == nil {
		m.logger = slog.Default()
	}
	switch {
	case cfg.Client != nil:
		m.src = grpcSource{cfg.Client}
	case cfg.TilesURL != "":
		f, err := newTilesFetcher(cfg.TilesURL, cfg.HTTPClient)
		if err != nil {
			return nil, err
		}
		m.src = tilesSource{f}
	default:
		return nil, errors.New("monitor: neither a Client nor a TilesURL to read the log from")
	}
	raw, err := os.ReadFile(cfg.StateFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("monitor: reading state: %w", err)
	default:
		if m.latest, err = OpenCheckpoint(raw, v, m.origin); err != nil {
			return nil, fmt.Errorf("monitor: state file %s: %w", cfg.StateFile, err)
		}
	}
	return m, nil
}

// Latest returns the stored checkpoint, or nil if there is none yet.
func (m *Monitor) Latest() *Checkpoint {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.latest
}

// Poll fetches the log's checkpoint and verifies it. If it is newer than
// the stored one and provably consistent with it, it is stored (state file
// written atomically) and returned; if it is the same, the stored one is
// returned. If the two contradict each other (a smaller size, the same
// size with another root, or a consistency proof that does not verify),
// the evidence is written to a file in EvidenceDir and an
// *InconsistencyError is returned; the stored checkpoint is kept. Other
// errors (the log unreachable, a checkpoint not signed by the log) leave
// the state as it was.
func (m *Monitor) Poll(ctx context.Context) (*Checkpoint, error) {
	raw, err := m.src.checkpoint(ctx)
	if err != nil {
		return nil, fmt.Errorf("monitor: fetching checkpoint: %w", err)
	}
	cp, err := OpenCheckpoint(raw, m.verifier, m.origin)
	if err != nil {
		return nil, fmt.Errorf("monitor: %w", err)
	}
	m.pollMu.Lock()
	defer m.pollMu.Unlock()
	old := m.Latest()
	var p [][]byte
	switch {
	case old == nil:
	case cp.Size < old.Size:
		return nil, m.inconsistent(old, cp, nil, fmt.Errorf("checkpoint of size %d after one of size %d (rollback)", cp.Size, old.Size))
	case cp.Size == old.Size:
		if !bytes.Equal(cp.Hash, old.Hash) {
			return nil, m.inconsistent(old, cp, nil, fmt.Errorf("two roots for size %d", cp.Size))
		}
		return old, nil
	default:
		if p, err = m.src.consistencyProof(ctx, old.Size, cp.Size); err != nil {
			return nil, fmt.Errorf("monitor: fetching consistency proof %d -> %d: %w", old.Size, cp.Size, err)
		}
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, old.Size, cp.Size, p, old.Hash, cp.Hash); err != nil {
			return nil, m.inconsistent(old, cp, p, fmt.Errorf("consistency proof %d -> %d: %w", old.Size, cp.Size, err))
		}
	}
	if err := atomicfile.WriteFile(m.cfg.StateFile, cp.Raw, 0o644); err != nil {
		return nil, fmt.Errorf("monitor: storing checkpoint: %w", err)
	}
	m.mu.Lock()
	m.latest = cp
	m.mu.Unlock()
	return cp, nil
}

// Run polls every Interval (the first time at once) until ctx ends, when
// it returns ctx's error, or an inconsistency is found, which it returns.
// Other poll errors are logged and polling goes on.
func (m *Monitor) Run(ctx context.Context) error {
	t := time.NewTicker(m.cfg.Interval)
	defer t.Stop()
	for {
		cp, err := m.Poll(ctx)
		switch {
		case errors.Is(err, ErrInconsistent):
			m.logger.ErrorContext(ctx, "log is inconsistent", "origin", m.origin, "err", err)
			return err
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			m.logger.WarnContext(ctx, "monitor poll failed", "origin", m.origin, "err", err)
		default:
			m.logger.DebugContext(ctx, "monitor poll", "origin", m.origin, "size", cp.Size)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// evidence is the JSON document a Monitor writes on an inconsistency.
type evidence struct {
	Origin           string    `json:"origin"`
	DetectedAt       time.Time `json:"detected_at"`
	Reason           string    `json:"reason"`
	OlderCheckpoint  string    `json:"older_checkpoint"`
	NewerCheckpoint  string    `json:"newer_checkpoint"`
	ConsistencyProof [][]byte  `json:"consistency_proof"` // base64
}

// inconsistent writes the evidence of an inconsistency between old and cp
// and returns it as an *InconsistencyError (joined with any error writing
// it).
func (m *Monitor) inconsistent(old, cp *Checkpoint, p [][]byte, reason error) error {
	e := &InconsistencyError{Older: old.Raw, Newer: cp.Raw, Proof: p, Reason: reason}
	now := time.Now().UTC()
	doc, err := json.MarshalIndent(evidence{
		Origin:           m.origin,
		DetectedAt:       now,
		Reason:           reason.Error(),
		OlderCheckpoint:  string(old.Raw),
		NewerCheckpoint:  string(cp.Raw),
		ConsistencyProof: p,
	}, "", "  ")
	if err != nil {
		return errors.Join(e, err)
	}
	path := filepath.Join(m.cfg.EvidenceDir, "fork-evidence-"+now.Format("20060102T150405.000000000Z")+".json")
	if err := atomicfile.WriteFile(path, append(doc, '\n'), 0o644); err != nil {
		return errors.Join(e, fmt.Errorf("writing evidence: %w", err))
	}
	e.EvidenceFile = path
	return e
}

// grpcSource reads a log over gRPC.
type grpcSource struct{ c *Client }

func (s grpcSource) checkpoint(ctx context.Context) ([]byte, error) {
	var resp *provlogv1.GetCheckpointResponse
	err := s.c.retry(ctx, "get checkpoint", func(ctx context.Context) error {
		var err error
		resp, err = s.c.log.GetCheckpoint(ctx, &provlogv1.GetCheckpointRequest{})
		return err
	})
	return resp.GetCheckpoint(), err
}

func (s grpcSource) consistencyProof(ctx context.Context, from, to uint64) ([][]byte, error) {
	var resp *provlogv1.GetConsistencyProofResponse
	err := s.c.retry(ctx, "get consistency proof", func(ctx context.Context) error {
		var err error
		resp, err = s.c.log.GetConsistencyProof(ctx, &provlogv1.GetConsistencyProofRequest{FromSize: from, ToSize: to})
		return err
	})
	if err != nil {
		return nil, err
	}
	if resp.GetFromSize() != from || resp.GetToSize() != to {
		return nil, fmt.Errorf("%w: asked for the consistency proof %d -> %d, got %d -> %d",
			ErrLogMisbehaved, from, to, resp.GetFromSize(), resp.GetToSize())
	}
	return resp.GetProof(), nil
}

// tilesSource reads a log over the tlog-tiles HTTP API.
type tilesSource struct{ f *tilesFetcher }

func (s tilesSource) checkpoint(ctx context.Context) ([]byte, error) { return s.f.checkpoint(ctx) }

func (s tilesSource) consistencyProof(ctx context.Context, from, to uint64) ([][]byte, error) {
	pb, err := tessera.NewProofBuilder(ctx, to, s.f.tile)
	if err != nil {
		return nil, err
	}
	return pb.ConsistencyProof(ctx, from, to)
}
