package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/bits"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"
	tessera "github.com/transparency-dev/tessera/client"
	"golang.org/x/mod/sumdb/note"

	"github.com/provlog/provlog/event"
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

	// Watch, if not nil, is matched against every entry the log adds
	// (see Poll): OnAlert is called for each entry that matches. If nil,
	// no entry is read.
	Watch *Watch
	// OnAlert receives the alerts of Watch, one call per matching entry,
	// in log order, from the goroutine calling Poll. Required with Watch.
	// An error stops the poll, which then stores nothing; the next poll
	// calls OnAlert again from that entry on.
	OnAlert func(context.Context, Alert) error
	// WatchFrom, with Watch, is the index of the first entry to match when
	// there is no state file yet. If nil, the first poll reads no entry
	// and later polls read the entries added since: only new events
	// alert. With a state file it is ignored: matching goes on from the
	// stored checkpoint's size.
	WatchFrom *uint64
}

// Alert is a logged entry that matched a Watch.
type Alert struct {
	// Index is the entry's index in the log.
	Index uint64
	// Entry is the entry as logged (a DSSE envelope), verified to be the
	// leaf at Index of Checkpoint's tree.
	Entry []byte
	// Event is the entry's parsed statement.
	Event *event.Event
	// Matches are the rules the event matched, in the order of
	// Watch.Match.
	Matches []WatchMatch
	// Checkpoint is the verified checkpoint whose tree holds the entry.
	Checkpoint *Checkpoint
}

// Monitor follows a log: it proves each newer checkpoint consistent with the
// last verified one before storing it, so the stored checkpoint is only ever
// replaced by a verified, consistent one. With a Watch, it also reads and
// verifies every entry the newer checkpoint adds and alerts on those that
// name a watched digest, builder, repository or key, before storing it
// (see Poll). Its methods may be called from any goroutine; polls are
// serialized.
type Monitor struct {
	cfg      MonitorConfig
	verifier note.Verifier
	origin   string
	src      logSource
	logger   *slog.Logger

	pollMu sync.Mutex  // held for a whole poll, so that polls are serialized
	mu     sync.Mutex  // guards latest; written only with pollMu held
	latest *Checkpoint // the stored checkpoint; nil before the first
	// scanned is how far a poll cut short (an error reading entries, an
	// OnAlert error) got matching entries against a checkpoint it verified
	// but did not store, so that the next poll goes on from there instead
	// of alerting again; nil when no such poll is pending. Owned by the
	// poll holding pollMu; in memory only (after a restart, matching goes
	// on from the stored checkpoint).
	scanned *scanProgress
}

// scanProgress is a scan cut short: the entries before next were verified
// in cp's tree, which extends the stored checkpoint's, and their alerts
// delivered.
type scanProgress struct {
	cp   *Checkpoint
	next uint64
}

// logSource is where a Monitor reads a log.
type logSource interface {
	// checkpoint returns the log's latest raw checkpoint.
	checkpoint(ctx context.Context) ([]byte, error)
	// consistencyProof returns the RFC 6962 consistency proof between the
	// trees of sizes from < to (to being a size the log has signed).
	consistencyProof(ctx context.Context, from, to uint64) ([][]byte, error)
	// inclusionProof returns the RFC 6962 inclusion proof of the leaf at
	// index in the tree of size, of 32-byte hashes.
	inclusionProof(ctx context.Context, index, size uint64) ([][]byte, error)
	// entries returns the entries [start, end), which lie in one entry
	// bundle of the tree of size, unverified.
	entries(ctx context.Context, start, end, size uint64) ([][]byte, error)
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
	if cfg.Watch != nil && cfg.OnAlert == nil {
		return nil, errors.New("monitor: a Watch without OnAlert")
	}
	if m.src, err = newLogSource(cfg.Client, cfg.TilesURL, cfg.HTTPClient); err != nil {
		return nil, fmt.Errorf("monitor: %w", err)
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
//
// With a Watch, a poll that finds a newer checkpoint also reads the
// entries added since the stored one, in pages of at most one entry bundle
// (256 entries), verifies each page against the new checkpoint (the
// recomputed tree up to the page's end must be a prefix of the signed
// one), and only then matches its entries and calls OnAlert, in log order.
// An entry the log serves that does not hash into the signed tree is an
// error wrapping ErrInclusionProof, never an alert. The steps, and what a
// crash (or an error) after each leaves:
//
//  1. The checkpoint is verified and proven consistent with the stored
//     one: nothing is written.
//  2. Each page is read, verified and its alerts delivered: the state
//     file still holds the old checkpoint, so a crash here makes the next
//     run read these entries again and call OnAlert again for them.
//  3. The new checkpoint is stored: every alert of the entries it adds
//     was delivered.
//
// Alerts are thus delivered at least once, never lost: a crash between 2
// and 3 repeats some. Within one Monitor, a poll cut short in step 2 (an
// unreachable log, an OnAlert error) is resumed by the next from where it
// stopped, against a checkpoint proven consistent with the one it read.
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
	verified := old // the latest checkpoint verified: stored, or scanned
	if m.scanned != nil {
		verified = m.scanned.cp
	}
	if err := m.extends(ctx, verified, cp); err != nil {
		return nil, err
	}
	if old != nil && cp.Size == old.Size {
		return old, nil
	}
	if m.cfg.Watch != nil {
		from, err := m.scanStart(old, cp)
		if err != nil {
			return nil, err
		}
		if err := m.scan(ctx, from, cp); err != nil {
			return nil, err
		}
	}
	if err := atomicfile.WriteFile(m.cfg.StateFile, cp.Raw, 0o644); err != nil {
		return nil, fmt.Errorf("monitor: storing checkpoint: %w", err)
	}
	m.mu.Lock()
	m.latest = cp
	m.mu.Unlock()
	m.scanned = nil
	return cp, nil
}

// Observe takes a checkpoint seen elsewhere (such as the checkpoint of a
// proof bundle), opens it with the monitor's log key, and proves it
// consistent with the monitor's latest verified checkpoint, whichever is
// the larger: an *InconsistencyError, its evidence written, if they cannot
// both be true. A newer one is stored as the latest (trusted on first use
// if there is none yet). It returns the latest. A Monitor with a Watch
// must Poll instead (Observe does not scan entries).
func (m *Monitor) Observe(ctx context.Context, cp *Checkpoint) (*Checkpoint, error) {
	if m.cfg.Watch != nil {
		return nil, errors.New("monitor: Observe on a monitor with a watch: use Poll")
	}
	// Opened again with the monitor's own key and origin: what is stored
	// is only ever a checkpoint this monitor verified.
	cp, err := OpenCheckpoint(cp.Raw, m.verifier, m.origin)
	if err != nil {
		return nil, fmt.Errorf("monitor: %w", err)
	}
	m.pollMu.Lock()
	defer m.pollMu.Unlock()
	old := m.Latest()
	if old != nil && cp.Size < old.Size {
		if err := m.extends(ctx, cp, old); err != nil {
			return nil, err
		}
		return old, nil
	}
	if err := m.extends(ctx, old, cp); err != nil {
		return nil, err
	}
	if old != nil && cp.Size == old.Size {
		return old, nil
	}
	if err := atomicfile.WriteFile(m.cfg.StateFile, cp.Raw, 0o644); err != nil {
		return nil, fmt.Errorf("monitor: storing checkpoint: %w", err)
	}
	m.mu.Lock()
	m.latest = cp
	m.mu.Unlock()
	return cp, nil
}

// extends proves that cp extends old, a verified checkpoint (if not nil),
// returning an *InconsistencyError with its evidence, written to
// EvidenceDir, if it does not.
func (m *Monitor) extends(ctx context.Context, old, cp *Checkpoint) error {
	err := proveExtends(ctx, m.src, old, cp)
	if ie := (*InconsistencyError)(nil); errors.As(err, &ie) {
		return writeEvidence(m.cfg.EvidenceDir, m.origin, ie)
	}
	if err != nil {
		return fmt.Errorf("monitor: %w", err)
	}
	return nil
}

// proveExtends proves that cp extends old, a verified checkpoint (if not
// nil): an *InconsistencyError, its evidence not yet written, if it does
// not (a smaller size, the same size with another root, or a consistency
// proof that does not verify); another error if the proof could not be
// fetched.
func proveExtends(ctx context.Context, src logSource, old, cp *Checkpoint) error {
	inconsistent := func(p [][]byte, reason error) error {
		return &InconsistencyError{Older: old.Raw, Newer: cp.Raw, Proof: p, Reason: reason}
	}
	switch {
	case old == nil:
		return nil
	case cp.Size < old.Size:
		return inconsistent(nil, fmt.Errorf("checkpoint of size %d after one of size %d (rollback)", cp.Size, old.Size))
	case cp.Size == old.Size:
		if !bytes.Equal(cp.Hash, old.Hash) {
			return inconsistent(nil, fmt.Errorf("two roots for size %d", cp.Size))
		}
		return nil
	}
	p, err := src.consistencyProof(ctx, old.Size, cp.Size)
	if err != nil {
		return fmt.Errorf("fetching consistency proof %d -> %d: %w", old.Size, cp.Size, err)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, old.Size, cp.Size, p, old.Hash, cp.Hash); err != nil {
		return inconsistent(p, fmt.Errorf("consistency proof %d -> %d: %w", old.Size, cp.Size, err))
	}
	return nil
}

// scanStart returns the index of the first entry of cp's tree to match:
// where a scan cut short stopped, else the stored checkpoint's size, else
// (no state yet) WatchFrom or, without it, cp's size.
func (m *Monitor) scanStart(old, cp *Checkpoint) (uint64, error) {
	switch {
	case m.scanned != nil:
		return m.scanned.next, nil
	case old != nil:
		return old.Size, nil
	case m.cfg.WatchFrom == nil:
		return cp.Size, nil
	case *m.cfg.WatchFrom > cp.Size:
		return 0, fmt.Errorf("monitor: watching from entry %d, beyond the log's size %d", *m.cfg.WatchFrom, cp.Size)
	}
	return *m.cfg.WatchFrom, nil
}

// scan reads and verifies the entries [from, cp.Size) a page at a time
// (scanEntries) and calls OnAlert for each of its entries that matches the
// watch, recording its progress in m.scanned.
func (m *Monitor) scan(ctx context.Context, from uint64, cp *Checkpoint) error {
	err := scanEntries(ctx, m.src, from, cp, func(start uint64, page [][]byte) error {
		for i, e := range page {
			ev, ms := m.cfg.Watch.match(e)
			if len(ms) == 0 {
				continue
			}
			a := Alert{Index: start + uint64(i), Entry: e, Event: ev, Matches: ms, Checkpoint: cp}
			if err := m.cfg.OnAlert(ctx, a); err != nil {
				m.scanned = &scanProgress{cp: cp, next: a.Index}
				return fmt.Errorf("alert on entry %d: %w", a.Index, err)
			}
		}
		m.scanned = &scanProgress{cp: cp, next: start + uint64(len(page))}
		return nil
	})
	if err != nil {
		return fmt.Errorf("monitor: %w", err)
	}
	return nil
}

// scanEntries reads the entries [from, cp.Size) of src a page at a time
// (at most one entry bundle, ending at a bundle's edge), verifies each
// page against cp, and only then calls visit with the page's first index
// and its entries, in log order. An error from visit stops the scan and
// is returned. An entry that does not hash into cp's tree is an error
// wrapping ErrInclusionProof, and visit never sees its page.
//
// A page is verified with a compact range (transparency-dev/merkle's
// compact.Range) over the tree's first leaves: it starts as the range
// [0, from), whose nodes are the left siblings of a verified inclusion
// proof of the entry at from; each page's leaf hashes are appended to it,
// and its root, the root of the tree of the page's end, must be proven
// consistent with cp (RFC 9162 section 2.1.4). Under SHA-256's collision
// resistance that binds every leaf of the page to its place in cp's tree.
func scanEntries(ctx context.Context, src logSource, from uint64, cp *Checkpoint, visit func(start uint64, page [][]byte) error) error {
	var tree *compact.Range // [0, next), nil before the first page
	for next := from; next < cp.Size; {
		end := min(cp.Size, (next/layout.EntryBundleWidth+1)*layout.EntryBundleWidth)
		page, err := src.entries(ctx, next, end, cp.Size)
		if err != nil {
			return fmt.Errorf("reading entries [%d, %d): %w", next, end, err)
		}
		if uint64(len(page)) != end-next {
			return fmt.Errorf("%w: asked for the entries [%d, %d), got %d", ErrLogMisbehaved, next, end, len(page))
		}
		if tree == nil {
			if tree, err = leftRange(ctx, src, next, page[0], cp); err != nil {
				return err
			}
		}
		for _, e := range page {
			if err := tree.Append(rfc6962.DefaultHasher.HashLeaf(e), nil); err != nil {
				panic(err) // appending to a range starting at 0 cannot fail
			}
		}
		if err := prefixOf(ctx, src, tree, cp); err != nil {
			return fmt.Errorf("entries [%d, %d): %w", next, end, err)
		}
		if err := visit(next, page); err != nil {
			return err
		}
		next = end
	}
	return nil
}

// leftRange returns the compact range [0, index) of cp's tree, taken from
// the inclusion proof of entry (the leaf at index), which it verifies.
func leftRange(ctx context.Context, src logSource, index uint64, entry []byte, cp *Checkpoint) (*compact.Range, error) {
	p, err := src.inclusionProof(ctx, index, cp.Size)
	if err != nil {
		return nil, fmt.Errorf("fetching the inclusion proof of entry %d: %w", index, err)
	}
	if err := verifyInclusion(entry, index, toArrays(p), cp); err != nil {
		return nil, err
	}
	rf := &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	r, err := rf.NewRange(0, index, leftSiblings(index, cp.Size, p))
	if err != nil {
		panic(err) // a verified proof has one left sibling per bit set in index
	}
	return r, nil
}

// leftSiblings returns the left siblings of an inclusion proof of the
// leaf at index in a tree of size (RFC 9162 section 2.1.3.1), largest
// first: the roots of the perfect subtrees covering [0, index), which is
// the compact range [0, index). The proof must have verified. Below the
// level where the paths to index and to size-1 part (bits.Len64 of
// index^(size-1), the "inner" proof) a sibling is on the left where index
// has a bit set; above it, on the tree's right border, every sibling is
// (merkle/proof.chainBorderRight).
func leftSiblings(index, size uint64, p [][]byte) [][]byte {
	inner := bits.Len64(index ^ (size - 1))
	var left [][]byte
	for i, h := range p {
		if i >= inner || index>>i&1 == 1 {
			left = append(left, h)
		}
	}
	slices.Reverse(left)
	return left
}

// prefixOf proves that tree, a compact range [0, n) with n > 0, holds the
// first n leaves of cp's tree: its root is consistent with cp's. If it is
// not, the error wraps ErrInclusionProof.
func prefixOf(ctx context.Context, src logSource, tree *compact.Range, cp *Checkpoint) error {
	root, err := tree.GetRootHash(nil)
	if err != nil {
		panic(err) // a non-empty range starting at 0 has a root
	}
	n := tree.End()
	if n == cp.Size {
		if !bytes.Equal(root, cp.Hash) {
			return fmt.Errorf("%w: the %d entries served hash to the root %x, the checkpoint signs %x", ErrInclusionProof, n, root, cp.Hash)
		}
		return nil
	}
	p, err := src.consistencyProof(ctx, n, cp.Size)
	if err != nil {
		return fmt.Errorf("fetching consistency proof %d -> %d: %w", n, cp.Size, err)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, n, cp.Size, p, root, cp.Hash); err != nil {
		if errors.As(err, new(proof.RootMismatchError)) {
			err = errors.New("the roots do not match")
		}
		return fmt.Errorf("%w: the first %d entries served hash to the root %x, and the consistency proof from it to the signed tree of size %d does not verify: %w", ErrInclusionProof, n, root, cp.Size, err)
	}
	return nil
}

// Run polls every Interval (the first time at once) until ctx ends, when
// it returns ctx's error, or an inconsistency is found, which it returns.
// Other poll errors are logged and polling goes on.
func (m *Monitor) Run(ctx context.Context) error {
	return pollEvery(ctx, m.cfg.Interval, m.logger.With("origin", m.origin), "monitor", m.Poll)
}

// pollEvery calls poll every interval (the first time at once) until ctx
// ends, when it returns ctx's error, or poll finds the log inconsistent,
// which it returns. Other errors are logged as what's and polling goes on.
func pollEvery(ctx context.Context, interval time.Duration, logger *slog.Logger, what string, poll func(context.Context) (*Checkpoint, error)) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		cp, err := poll(ctx)
		switch {
		case errors.Is(err, ErrInconsistent):
			logger.ErrorContext(ctx, "log is inconsistent", "err", err)
			return err
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			logger.WarnContext(ctx, what+" poll failed", "err", err)
		default:
			logger.DebugContext(ctx, what+" poll", "size", cp.Size)
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

// writeEvidence writes the evidence of e, an inconsistency of the log
// named origin, to a new file in dir and returns e with its EvidenceFile
// set (joined with any error writing it). With dir empty it writes
// nothing and returns e.
func writeEvidence(dir, origin string, e *InconsistencyError) error {
	if dir == "" {
		return e
	}
	now := time.Now().UTC()
	doc, err := json.MarshalIndent(evidence{
		Origin:           origin,
		DetectedAt:       now,
		Reason:           e.Reason.Error(),
		OlderCheckpoint:  string(e.Older),
		NewerCheckpoint:  string(e.Newer),
		ConsistencyProof: e.Proof,
	}, "", "  ")
	if err != nil {
		return errors.Join(e, err)
	}
	path := filepath.Join(dir, "fork-evidence-"+now.Format("20060102T150405.000000000Z")+".json")
	if err := atomicfile.WriteFile(path, append(doc, '\n'), 0o644); err != nil {
		return errors.Join(e, fmt.Errorf("writing evidence: %w", err))
	}
	e.EvidenceFile = path
	return e
}

// newLogSource returns the source reading a log over gRPC with c if it is
// not nil, else over the tlog-tiles API at tilesURL with hc.
func newLogSource(c *Client, tilesURL string, hc *http.Client) (logSource, error) {
	switch {
	case c != nil:
		return grpcSource{c}, nil
	case tilesURL != "":
		f, err := newTilesFetcher(tilesURL, hc)
		if err != nil {
			return nil, err
		}
		return tilesSource{f}, nil
	}
	return nil, errors.New("neither a Client nor a TilesURL to read the log from")
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

func (s grpcSource) inclusionProof(ctx context.Context, index, size uint64) ([][]byte, error) {
	return s.c.InclusionProof(ctx, index, &Checkpoint{Size: size})
}

func (s grpcSource) entries(ctx context.Context, start, end, _ uint64) ([][]byte, error) {
	return s.c.Entries(ctx, start, end-start)
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

func (s tilesSource) inclusionProof(ctx context.Context, index, size uint64) ([][]byte, error) {
	pb, err := tessera.NewProofBuilder(ctx, size, s.f.tile)
	if err != nil {
		return nil, err
	}
	p, err := pb.InclusionProof(ctx, index)
	if err != nil {
		return nil, err
	}
	if err := checkHashes(p); err != nil {
		return nil, fmt.Errorf("inclusion proof from tiles: %w", err)
	}
	return p, nil
}

func (s tilesSource) entries(ctx context.Context, start, end, size uint64) ([][]byte, error) {
	b := start / layout.EntryBundleWidth
	bundle, err := s.f.entryBundle(ctx, b, size)
	if err != nil {
		return nil, err
	}
	first := b * layout.EntryBundleWidth
	return bundle[start-first : end-first], nil
}

// entryBundle fetches and parses entry bundle b of the tree of size: its
// first min(256, size-256b) entries, unverified.
func (f *tilesFetcher) entryBundle(ctx context.Context, b, size uint64) ([][]byte, error) {
	w := layout.PartialTileSize(0, b, size)
	raw, full, err := f.partialOrFull(ctx, w, maxBundleSize, func(p uint8) string { return layout.EntriesPath(b, p) })
	if err != nil {
		return nil, err
	}
	var eb api.EntryBundle
	if err := eb.UnmarshalText(raw); err != nil {
		return nil, fmt.Errorf("%w: entry bundle %d: %w", ErrFormat, b, err)
	}
	n := int(w)
	if w == 0 || full {
		n = layout.EntryBundleWidth
	}
	if len(eb.Entries) != n {
		return nil, fmt.Errorf("%w: entry bundle %d has %d entries, want %d", ErrFormat, b, len(eb.Entries), n)
	}
	if w == 0 {
		return eb.Entries, nil
	}
	return eb.Entries[:w], nil
}
