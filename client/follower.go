package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	fwitness "github.com/transparency-dev/formats/witness"
	"golang.org/x/mod/sumdb/note"

	"github.com/provlog/provlog/event"
	"github.com/provlog/provlog/policy"
)

// FollowerConfig configures a Follower.
type FollowerConfig struct {
	// VerifierKey is the log's note verifier key. Required.
	VerifierKey string
	// Origin is the origin checkpoints must name. If empty, the verifier
	// key's name.
	Origin string
	// WitnessPolicy, if not nil, is a witness policy in the tlog-policy
	// text format (as in VerifyOptions) that every checkpoint followed
	// must satisfy; a checkpoint that does not is not followed (Poll
	// returns an error wrapping ErrPolicyNotSatisfied). If nil, none.
	WitnessPolicy []byte
	// EvidenceDir, if not empty, is where evidence of an inconsistency is
	// written, one JSON file per detection, as a Monitor writes it. If
	// empty, the evidence is only returned, in the *InconsistencyError.
	EvidenceDir string
	// Client, if not nil, is the source of checkpoints, proofs and
	// entries (gRPC). Otherwise TilesURL is.
	Client *Client
	// TilesURL is the base URL of the log's C2SP tlog-tiles API.
	TilesURL string
	// HTTPClient fetches from TilesURL. If nil, a client with a one-minute
	// timeout.
	HTTPClient *http.Client
	// Interval is the time between polls in Run. If zero, 10s.
	Interval time.Duration
	// Logger receives Run's logs. If nil, slog.Default().
	Logger *slog.Logger
	// Trust, if true, has the follower also replay the log's trust
	// history from the entries it verifies, as Replay does (one
	// signature verification or more per entry): see Follower.Trust.
	Trust bool
}

// IndexedEvent is an event a Follower read from the log and verified to
// be the leaf at Index of the tree of the checkpoint it answers with.
type IndexedEvent struct {
	Index    uint64
	Entry    []byte // the entry as logged (a DSSE envelope)
	Envelope *event.Envelope
	Event    *event.Event // the envelope's statement, parsed
}

// FollowerStatus is what a Follower has followed so far.
type FollowerStatus struct {
	// Checkpoint is the latest checkpoint followed: verified, consistent
	// with every one before it, every entry of its tree read, verified and
	// indexed. Nil before the first poll that succeeded.
	Checkpoint *Checkpoint
	// Events is the number of events indexed; Skipped the number of
	// entries of Checkpoint's tree that are not events (not a DSSE
	// envelope, or Sigstore bundle of one, of an in-toto statement provlog
	// reads).
	Events, Skipped uint64
	// LastPoll is when the last poll ended; Err its error, nil if it
	// succeeded. After an inconsistency every poll returns it.
	LastPoll time.Time
	Err      error
}

// Follower follows a log and keeps its own index of every event in it, by
// subject digest, so that the events it answers with rest on the log's
// signed tree alone, never on the log's Search: an event the log holds
// cannot be left out of an answer, and an entry the log serves that is
// not in its signed tree is refused.
//
// Each poll verifies the log's checkpoint (the log key, the witness
// policy), proves it consistent with the last one followed (a log that
// rewinds or forks is refused for good: every later poll returns the same
// *InconsistencyError), and reads every entry it adds, a bundle at a time,
// verifying each page against it before indexing it (the scan a Monitor
// watches with). Only then does the checkpoint become the one Events
// answers with. The index is in memory: a new Follower replays the log
// from its first entry.
//
// Its methods may be called from any goroutine; polls are serialized, and
// answers never wait for one.
type Follower struct {
	cfg      FollowerConfig
	verifier note.Verifier
	origin   string
	witness  *fwitness.Group // nil for no witness policy
	src      logSource
	logger   *slog.Logger
	trust    *trustReplay // nil unless cfg.Trust; fed by index

	pollMu sync.Mutex // held for a whole poll, so that polls are serialized
	// scanning is a checkpoint a poll verified and began indexing but did
	// not finish (entries [latest's size, next) indexed); nil if none.
	// Owned by the poll holding pollMu.
	scanning *Checkpoint

	mu sync.RWMutex // guards the fields below; written only with pollMu held
	// latest is the checkpoint answers are about; nil before the first.
	latest *Checkpoint
	// next is the number of entries indexed: the entries [0, next) of
	// scanning's tree (latest's if none), next >= latest.Size.
	next     uint64
	byDigest map[event.Digest][]*IndexedEvent // in log order
	events   uint64
	skipped  uint64
	lastPoll time.Time
	lastErr  error
	broken   error // the *InconsistencyError that ended following, or nil
}

// NewFollower returns a Follower that has followed nothing yet.
func NewFollower(cfg FollowerConfig) (*Follower, error) {
	v, err := newLogVerifier(cfg.VerifierKey)
	if err != nil {
		return nil, err
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 10 * time.Second
	}
	f := &Follower{cfg: cfg, verifier: v, origin: cfg.Origin, logger: cfg.Logger, byDigest: map[event.Digest][]*IndexedEvent{}}
	if f.origin == "" {
		f.origin = v.Name()
	}
	if f.logger == nil {
		f.logger = slog.Default()
	}
	if cfg.WitnessPolicy != nil {
		g, err := fwitness.ParsePolicy(cfg.WitnessPolicy)
		if err != nil {
			return nil, fmt.Errorf("follower: witness policy: %w", err)
		}
		f.witness = &g
	}
	if f.src, err = newLogSource(cfg.Client, cfg.TilesURL, cfg.HTTPClient); err != nil {
		return nil, fmt.Errorf("follower: %w", err)
	}
	if cfg.Trust {
		if f.trust, err = newTrustReplay(cfg.VerifierKey, func(policy.Verdict) error { return nil }); err != nil {
			return nil, fmt.Errorf("follower: %w", err)
		}
	}
	return f, nil
}

// Events returns the events about digest, in log order, and the
// checkpoint whose tree holds every one of them and no other event about
// digest; the checkpoint is nil (and there are no events) before the first
// poll that succeeded. The events are shared: the caller must not modify
// them.
func (f *Follower) Events(digest event.Digest) ([]IndexedEvent, *Checkpoint) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.latest == nil {
		return nil, nil
	}
	var out []IndexedEvent
	for _, e := range f.byDigest[digest] {
		if e.Index >= f.latest.Size {
			break // indexed by a poll not yet finished
		}
		out = append(out, *e)
	}
	return out, f.latest
}

// Trust returns the trust history replayed from the entries followed so
// far (FollowerConfig.Trust), as of the checkpoint Events answers with,
// or nil without FollowerConfig.Trust or before the first poll that
// succeeded. Its History is shared and may be ahead of the checkpoint by
// entries of a newer verified checkpoint being read; Trust.Verdicts is
// not kept.
func (f *Follower) Trust() *Trust {
	f.mu.RLock()
	cp := f.latest
	f.mu.RUnlock()
	if f.trust == nil || cp == nil {
		return nil
	}
	return f.trust.snapshot(cp)
}

// Status returns what the follower has followed so far.
func (f *Follower) Status() FollowerStatus {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return FollowerStatus{Checkpoint: f.latest, Events: f.events, Skipped: f.skipped, LastPoll: f.lastPoll, Err: f.lastErr}
}

// Poll follows the log up to its current checkpoint and returns it: it
// fetches and verifies the checkpoint, proves it consistent with the last
// one followed, and reads, verifies and indexes every entry it adds (see
// Follower). If the log contradicts itself, the evidence is written to
// EvidenceDir (if set) and an *InconsistencyError returned, now and by
// every later poll. Other errors (the log unreachable, a checkpoint not
// signed by the log or not meeting the witness policy, an entry that does
// not verify) keep the last checkpoint followed; the next poll goes on
// indexing from where this one stopped.
func (f *Follower) Poll(ctx context.Context) (*Checkpoint, error) {
	f.pollMu.Lock()
	defer f.pollMu.Unlock()
	cp, err := f.poll(ctx)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastPoll, f.lastErr = time.Now(), err
	if err != nil {
		return nil, err
	}
	return cp, nil
}

// poll is Poll with pollMu held.
func (f *Follower) poll(ctx context.Context) (*Checkpoint, error) {
	f.mu.RLock()
	broken, latest, next := f.broken, f.latest, f.next
	f.mu.RUnlock()
	if broken != nil {
		return nil, broken
	}
	raw, err := f.src.checkpoint(ctx)
	if err != nil {
		return nil, fmt.Errorf("follower: fetching checkpoint: %w", err)
	}
	cp, err := OpenCheckpoint(raw, f.verifier, f.origin)
	if err != nil {
		return nil, fmt.Errorf("follower: %w", err)
	}
	if f.witness != nil && !f.witness.Satisfied(raw) {
		return nil, fmt.Errorf("follower: %w: by the cosignatures of the checkpoint of size %d", ErrPolicyNotSatisfied, cp.Size)
	}
	verified := latest // the latest checkpoint verified: followed, or being indexed
	if f.scanning != nil {
		verified = f.scanning
	}
	if err := proveExtends(ctx, f.src, verified, cp); err != nil {
		if ie := (*InconsistencyError)(nil); errors.As(err, &ie) {
			err = writeEvidence(f.cfg.EvidenceDir, f.origin, ie)
			f.mu.Lock()
			f.broken = err
			f.mu.Unlock()
			return nil, err
		}
		return nil, fmt.Errorf("follower: %w", err)
	}
	if latest != nil && cp.Size == latest.Size {
		return latest, nil
	}
	f.scanning = cp
	index := func(start uint64, page [][]byte) error { return f.index(ctx, start, page) }
	if err := scanEntries(ctx, f.src, next, cp, index); err != nil {
		return nil, fmt.Errorf("follower: %w", err)
	}
	f.mu.Lock()
	f.latest, f.scanning = cp, nil
	f.mu.Unlock()
	return cp, nil
}

// index adds a verified page of entries, the first at index start, to the
// index (and the trust replay, if any). Entries that are not events are
// counted and skipped.
func (f *Follower) index(ctx context.Context, start uint64, page [][]byte) error {
	if f.trust != nil {
		if err := f.trust.page(ctx, start, page); err != nil {
			return err
		}
	}
	var parsed []*IndexedEvent
	for i, e := range page {
		env, err := event.ParseEntry(e) // an envelope, or a Sigstore bundle of one
		if err != nil {
			parsed = append(parsed, nil)
			continue
		}
		ev, err := event.ParseStatement(env.Payload)
		if err != nil {
			parsed = append(parsed, nil)
			continue
		}
		parsed = append(parsed, &IndexedEvent{Index: start + uint64(i), Entry: e, Envelope: env, Event: ev})
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ie := range parsed {
		if ie == nil {
			f.skipped++
			continue
		}
		f.events++
		for _, d := range ie.Event.Subjects {
			f.byDigest[d] = append(f.byDigest[d], ie)
		}
	}
	f.next = start + uint64(len(page))
	return nil
}

// Run polls every Interval (the first time at once) until ctx ends, when
// it returns ctx's error, or the log is found inconsistent, which it
// returns. Other poll errors are logged and polling goes on; Status
// reports them.
func (f *Follower) Run(ctx context.Context) error {
	return pollEvery(ctx, f.cfg.Interval, f.logger.With("origin", f.origin), "follower", f.Poll)
}
