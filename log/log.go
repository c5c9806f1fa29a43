// Package log is provlog's log (it owns the keyring file format,
// ParseKeyring): admission of entries, the sequencer that
// integrates them into an RFC 6962 Merkle tree, signed checkpoints, and the
// reads (proofs, tiles, entries) served from what is durable.
//
// # Sequencing
//
// Add and AddBatch admit entries (see Admitter) in the caller's goroutine
// and queue them. One goroutine, the sequencer, owns the tree: it takes a
// batch of queued requests (up to Config.BatchMaxEntries entries; while the
// committer is busy with two rounds, it waits for one to finish, at most
// Config.BatchMaxAge, gathering more) and prepares a round:
//
//  1. Hash the entries and look them up among the entries of rounds not
//     yet committed, then in the leaf-hash index: an entry already in the
//     log (or earlier in the same batch) gets its original index. A lookup
//     failure fails the batch; nothing was written.
//  2. Append the new leaves to the compact range, collecting the hash tiles
//     they change, compute the new root and sign a checkpoint over it. The
//     checkpoint exists only in memory.
//
// A second goroutine, the committer, takes the prepared rounds strictly in
// order, so that the next round is prepared while the previous one syncs:
//
//  3. Commit the entries, leaf-hash and search-index keys, tiles, tree
//     state and checkpoint in one synced storage batch. A crash before the
//     sync completes loses the round and its unreleased checkpoint
//     together; after it, both are durable.
//  4. Only now publish the checkpoint (or hand it to the witness loop) and
//     return the indices to the callers; a duplicate of an entry of an
//     earlier round is answered after that round is committed, since rounds
//     commit in order.
//
// If step 3 fails (storage returns an error, as package storage does for a
// failed WAL write or sync), the round may or may not be on disk, so the
// log stops writing: the committer fails this round and every round after
// it without committing them, every queued and later write fails with ErrUnavailable, no further
// checkpoint is signed, and reads keep serving the last published state. A
// restart recovers from whatever the store holds, through the same code
// path as any start (Open reads the state and resumes). A fault in the
// store's background work (Pebble's flushes and compactions) ends the
// process instead; the restart recovers the same way. Each round extends
// the one before it, a failure stops signing, and a checkpoint leaves the
// process only once its round is durable: no two inconsistent checkpoints
// are ever released. (A checkpoint signed over a round that then failed
// to commit is dropped with it, never seen.)
package log

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/provlog/provlog/internal/checkpoint"
	"github.com/provlog/provlog/merkle"
	"github.com/provlog/provlog/storage"
	"github.com/transparency-dev/merkle/compact"
	"golang.org/x/mod/sumdb/note"
)

// MaxEntrySizeLimit is the largest entry a log can hold: tlog-tiles entry
// bundles prefix each entry with a uint16 length.
const MaxEntrySizeLimit = 1<<16 - 1

// Storage is what the log needs of its store.
//
// Commit must write the whole round atomically and must not return nil
// before it is durable (synced); when it returns an error the round may or
// may not be durable. ReadState must return the state of the last durable
// round. SetPublished durably records the published checkpoint (nil:
// removes the record) before returning. Reads return storage.ErrNotFound
// (wrapped) for absent data.
type Storage interface {
	ReadState() (storage.State, error)
	Commit(*storage.Round) error
	LookupLeaves(hashes [][]byte, indices []uint64, found []bool) error
	SetPublished(checkpoint []byte) error
	Tile(level, index uint64) ([]byte, error)
	VisitTile(level, index uint64, fn func(hashes, inner []byte) error) error
	Entries(start, count uint64, fn func(index uint64, entry []byte) error) error
	// AppendBundle appends the first width entries of entry bundle index
	// to dst, encoded as the bundle encodes them.
	AppendBundle(dst []byte, index, width uint64) ([]byte, error)
	// Bundle and PutBundle keep the served form of full entry bundles
	// (see ServeEntryBundle): derived data, which PutBundle may write
	// without syncing and concurrently with Commit; Bundle appends the
	// kept form to dst.
	Bundle(dst []byte, index uint64) ([]byte, error)
	PutBundle(index uint64, data []byte) error
	IndexReader
}

// Config configures a Log. Zero values take the defaults given.
type Config struct {
	// Origin is the checkpoint origin; required. It must equal the
	// signer's key name.
	Origin string
	// Signer signs checkpoints (Ed25519 note key); required.
	Signer note.Signer
	// MaxEntrySize caps entries in bytes. If zero, MaxEntrySizeLimit,
	// which is also its maximum.
	MaxEntrySize int
	// BatchMaxEntries caps the entries of one round. If zero, 4096.
	BatchMaxEntries int
	// BatchMaxAge is the longest a round waits for more entries after its
	// first one, while the committer is busy (an idle committer takes a
	// round at once). If zero, 1ms; negative means do not wait.
	BatchMaxAge time.Duration
	// QueueMaxEntries caps entries queued but not yet sequenced; beyond it
	// writes fail fast with ErrPushback. If zero, 65536.
	QueueMaxEntries int
	// QueueMaxBytes caps the bytes of queued entries likewise. If zero,
	// 256 MiB.
	QueueMaxBytes int64
	// Admission decides what may be logged. If nil, OpenAdmission: any
	// non-empty entry up to MaxEntrySize.
	Admission Admitter
	// Witness, if set, gathers witness cosignatures: only checkpoints
	// meeting its policy are published (see Witnesser).
	Witness Witnesser
	// WitnessFailOpen publishes log-signed checkpoints when the witness
	// policy cannot be met, rather than holding them back.
	WitnessFailOpen bool
	// WitnessInterval is the least time between witnessing attempts. If
	// zero, 500ms.
	WitnessInterval time.Duration
	// Registerer receives the log's Prometheus metrics. If nil, they are
	// not registered.
	Registerer prometheus.Registerer
	// Logger is the log's logger. If nil, slog.Default().
	Logger *slog.Logger
}

func (c *Config) setDefaults() error {
	switch {
	case c.Origin == "":
		return errors.New("log config: Origin is empty")
	case c.Signer == nil:
		return errors.New("log config: Signer is nil")
	case c.Signer.Name() != c.Origin:
		return fmt.Errorf("log config: signer key name %q differs from origin %q", c.Signer.Name(), c.Origin)
	case c.MaxEntrySize < 0 || c.MaxEntrySize > MaxEntrySizeLimit:
		return fmt.Errorf("log config: MaxEntrySize %d, want 1..%d", c.MaxEntrySize, MaxEntrySizeLimit)
	case c.BatchMaxEntries < 0 || c.QueueMaxEntries < 0 || c.QueueMaxBytes < 0:
		return errors.New("log config: negative batch or queue limit")
	}
	if c.MaxEntrySize == 0 {
		c.MaxEntrySize = MaxEntrySizeLimit
	}
	if c.BatchMaxEntries == 0 {
		c.BatchMaxEntries = 4096
	}
	if c.BatchMaxAge == 0 {
		c.BatchMaxAge = time.Millisecond
	}
	if c.QueueMaxEntries == 0 {
		c.QueueMaxEntries = 65536
	}
	if c.QueueMaxBytes == 0 {
		c.QueueMaxBytes = 256 << 20
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Admission == nil {
		c.Admission = OpenAdmission{}
	}
	if c.WitnessInterval == 0 {
		c.WitnessInterval = 500 * time.Millisecond
	}
	return nil
}

// Log is a transparency log. Its methods are safe for concurrent use.
type Log struct {
	cfg     Config
	store   Storage
	metrics *metrics

	// latest is the latest signed and durable checkpoint; written by the
	// sequencer (and Open). published is the latest published one: the
	// same, or, when witnessed, the latest that met the witness policy
	// (written then by the witness loop). Anyone reads them.
	latest, published atomic.Pointer[Checkpoint]

	// queue carries requests to the sequencer. mu guards closing it:
	// submitters hold mu.RLock while sending, Close holds mu.Lock to close.
	mu     sync.RWMutex
	closed bool
	queue  chan *request
	// pendingRounds counts rounds handed to the committer and not yet
	// answered; roundCommitted wakes the sequencer when one is.
	pendingRounds  atomic.Int32
	roundCommitted chan struct{}
	queuedN        atomic.Int64 // entries in the queue
	queuedBytes    atomic.Int64 // their bytes

	// refreshMu serializes a reader's Refresh (follower.go).
	refreshMu sync.Mutex

	// fatal is set once by the sequencer when a commit fails.
	fatal atomic.Pointer[error]

	// Owned by the sequencer goroutine.
	rng   *compact.Range
	tiles *merkle.TileSet

	// inflight maps the leaf hashes of rounds prepared but not yet
	// committed to their indices: the sequencer adds a round's, the
	// committer removes them once the round is committed.
	inflightMu sync.Mutex
	inflight   map[string]uint64

	// trees caches full tiles with their inner levels, for proofs.
	trees *lru.Cache[merkle.TileID, *merkle.TileTree]
	// bundles holds the served forms of entry bundles (bundle.go);
	// fileSends counts the responses sending one from its file.
	bundles   *bundles
	fileSends atomic.Int64

	done chan struct{} // closed when the sequencer has exited

	// The witness loop, when Config.Witness is set.
	witnessKick chan struct{} // capacity 1: the latest checkpoint changed
	witnessStop context.CancelFunc
	witnessDone chan struct{}
}

var rangeFactory = compact.RangeFactory{Hash: merkle.HashChildren}

// Open resumes the log held by store (or starts an empty one) and starts its
// sequencer. Close stops it. Open's cost does not depend on the log's size.
func Open(ctx context.Context, cfg Config, store Storage) (*Log, error) {
	return open(ctx, cfg, store, false)
}

// open opens the log held by store; a reader (OpenReader) neither
// sequences, witnesses nor writes to the store.
func open(ctx context.Context, cfg Config, store Storage, reader bool) (*Log, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	st, err := store.ReadState()
	if err != nil {
		return nil, fmt.Errorf("reading tree state: %w", err)
	}
	l := &Log{
		cfg:            cfg,
		store:          store,
		metrics:        newMetrics(cfg.Registerer),
		queue:          make(chan *request, cfg.QueueMaxEntries),
		roundCommitted: make(chan struct{}, 1),
		inflight:       map[string]uint64{},
		done:           make(chan struct{}),
	}
	if l.trees, err = lru.New[merkle.TileID, *merkle.TileTree](tileTreeCacheSize); err != nil {
		return nil, err
	}
	if l.bundles, err = newBundles(); err != nil {
		return nil, err
	}
	if l.rng, err = rangeFactory.NewRange(0, st.Size, st.Range); err != nil {
		return nil, fmt.Errorf("tree state of size %d: %w", st.Size, err)
	}
	if l.tiles, err = merkle.NewTileSet(st.Size, store.Tile); err != nil {
		return nil, fmt.Errorf("loading the rightmost tiles: %w", err)
	}
	root, err := l.root()
	if err != nil {
		return nil, err
	}
	cp := st.Checkpoint
	if cp == nil { // a new log: sign the empty tree so readers have a checkpoint
		if cp, err = l.signCheckpoint(0, root); err != nil {
			return nil, err
		}
	} else if err := l.checkStoredCheckpoint(cp, st.Size, root); err != nil {
		return nil, err
	}
	l.latest.Store(&Checkpoint{Size: st.Size, Root: root, Note: cp})
	if reader {
		if err := l.readPublished(st); err != nil {
			return nil, err
		}
		l.closed = true // Submit refuses: a reader never sequences
		close(l.queue)
		close(l.done)
		cfg.Logger.InfoContext(ctx, "log opened for reading", "origin", cfg.Origin, "size", st.Size, "published", l.Checkpoint().Size)
		return l, nil
	}
	if err := l.openPublished(st); err != nil {
		return nil, err
	}
	cfg.Logger.InfoContext(ctx, "log opened", "origin", cfg.Origin, "size", st.Size, "published", l.Checkpoint().Size)
	go l.sequence()
	if cfg.Witness != nil {
		wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		l.witnessKick, l.witnessStop, l.witnessDone = make(chan struct{}, 1), cancel, make(chan struct{})
		go l.witnessLoop(wctx)
		l.kickWitness()
	}
	if err := l.bootstrap(ctx); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// bootstrap logs, before Open returns, the entries a Bootstrapper
// admission needs first (the genesis keyring), through the usual path.
func (l *Log) bootstrap(ctx context.Context) error {
	b, ok := l.cfg.Admission.(Bootstrapper)
	if !ok {
		return nil
	}
	entries, err := b.Bootstrap(ctx, l.cfg.Signer)
	if err != nil {
		return fmt.Errorf("bootstrapping admission: %w", err)
	}
	for _, e := range entries {
		res, err := l.Add(ctx, e)
		if err != nil {
			return fmt.Errorf("logging the bootstrap keyring: %w", err)
		}
		l.cfg.Logger.InfoContext(ctx, "logged the bootstrap keyring", "index", res.Index, "duplicate", res.Duplicate)
	}
	return nil
}

// openPublished sets the published checkpoint at open. Unwitnessed, it is
// the latest signed one. Witnessed, it is the one last published (stored
// by SetPublished before it was served, cosigned or, fail-open, the log's
// alone); where none is stored (a new log, or one that ran unwitnessed
// since), the latest log-signed checkpoint, which an unwitnessed log had
// already served. Either way the published tree never shrinks across a
// restart, which monitors would take for a fork.
func (l *Log) openPublished(st storage.State) error {
	latest := l.latest.Load()
	if l.cfg.Witness == nil && st.Published != nil {
		// Unwitnessed, the log publishes every checkpoint it signs, beyond
		// the record a witnessed run left: remove it, before publishing
		// anything newer, so that a later witnessed start does not go back
		// to it but starts from the latest checkpoint.
		if err := l.store.SetPublished(nil); err != nil {
			return err
		}
		st.Published = nil
	}
	if st.Published == nil {
		l.publish(latest)
		return nil
	}
	return l.publishStored(st.Published)
}

// publishStored publishes the stored published checkpoint n, which must
// be this log's and within the tree.
func (l *Log) publishStored(n []byte) error {
	latest := l.latest.Load()
	cp, err := l.parseOwnCheckpoint(n)
	if err != nil {
		return fmt.Errorf("stored published checkpoint: %w", err)
	}
	if cp.Size > latest.Size {
		return fmt.Errorf("stored published checkpoint of size %d beyond the tree (size %d)", cp.Size, latest.Size)
	}
	l.publish(cp)
	return nil
}

// parseOwnCheckpoint parses a checkpoint note this log signed (possibly
// with cosignatures after its signature) with the module's checkpoint
// parser (internal/checkpoint): its text re-signed with the log's key must
// be its prefix, Ed25519 signing being deterministic.
func (l *Log) parseOwnCheckpoint(n []byte) (*Checkpoint, error) {
	text, _, err := checkpoint.Split(n)
	if err != nil {
		return nil, err
	}
	c, err := checkpoint.Parse(text)
	if err != nil {
		return nil, err
	}
	if c.Origin != l.cfg.Origin {
		return nil, fmt.Errorf("checkpoint of %q, not of %s", c.Origin, l.cfg.Origin)
	}
	signed, err := l.signCheckpoint(c.Size, c.Hash[:])
	if err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(n, signed) {
		return nil, errors.New("not signed by this log's key")
	}
	// Cosignatures follow the log's signature only when witnessing met the
	// policy; a fail-open checkpoint is stored as the log signed it.
	return &Checkpoint{Size: c.Size, Root: c.Hash[:], Note: bytes.Clone(n), witnessed: len(n) > len(signed)}, nil
}

// Close stops accepting writes, sequences everything already queued (each
// queued add is either committed and acknowledged or failed, never
// acknowledged and lost), and waits for the sequencer to exit. The caller
// closes the store afterwards.
func (l *Log) Close() error {
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		close(l.queue)
	}
	l.mu.Unlock()
	<-l.done
	if l.witnessStop != nil {
		l.witnessStop()
		<-l.witnessDone
	}
	if p := l.fatal.Load(); p != nil {
		return *p
	}
	return nil
}

// Healthy returns nil while the log accepts writes, else the reason.
func (l *Log) Healthy() error {
	if p := l.fatal.Load(); p != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, *p)
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return fmt.Errorf("%w: shutting down", ErrUnavailable)
	}
	return nil
}

// MaxEntrySize returns the entry size cap in bytes.
func (l *Log) MaxEntrySize() int { return l.cfg.MaxEntrySize }

// Checkpoint returns the latest published checkpoint.
func (l *Log) Checkpoint() Checkpoint { return *l.published.Load() }

// kickWitness wakes the witness loop, if any, without blocking.
func (l *Log) kickWitness() {
	select {
	case l.witnessKick <- struct{}{}:
	default:
	}
}

// publish makes cp the published checkpoint. The published tree only
// grows: a smaller checkpoint is refused (a bug, logged), while one of the
// same size may replace it (the cosigned form of a fail-open checkpoint).
func (l *Log) publish(cp *Checkpoint) {
	for {
		old := l.published.Load()
		if old != nil && cp.Size < old.Size {
			l.cfg.Logger.Error("refusing to publish a smaller checkpoint", "size", cp.Size, "published", old.Size)
			return
		}
		if l.published.CompareAndSwap(old, cp) {
			break
		}
	}
	l.metrics.treeSize.Set(float64(cp.Size))
}
