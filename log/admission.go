package log

import (
	"context"
	"errors"
	"fmt"

	"github.com/provlog/provlog/event"
	"github.com/provlog/provlog/policy"
	"github.com/provlog/provlog/storage"
)

// More sentinel errors, of admission.
var (
	// ErrPermissionDenied: a signature is by an unknown key, does not
	// verify, or is by a key whose roles do not allow the event.
	ErrPermissionDenied = errors.New("permission denied")
	// ErrFailedPrecondition: the event's lineage does not hold (no such
	// build event, a promotion out of order).
	ErrFailedPrecondition = errors.New("failed precondition")
)

// Admitter decides whether a submitted entry may be logged, and as what. It
// runs before anything is written, in the submitting goroutine (so
// concurrently). Errors wrap ErrInvalidEntry, ErrPermissionDenied or
// ErrFailedPrecondition.
type Admitter interface {
	Admit(ctx context.Context, entry []byte) (Admitted, error)
}

// Admitted is an entry accepted for logging.
type Admitted struct {
	// Leaf is what the log stores and hashes (for events, the canonical
	// envelope).
	Leaf []byte
	// Terms are the search-index terms of the entry.
	Terms []IndexTerm
	// Type is the event type; "" for an opaque entry.
	Type string
}

// IndexTerm is one search-index term: the entry is found under
// (Kind, Value), and the index keeps Tag with it.
type IndexTerm struct {
	Kind  byte
	Value string
	Tag   byte
}

// Index kinds.
const (
	IndexDigest    byte = 'd' // artifact digest "alg:hex" → every event about it
	IndexBuilder   byte = 'b' // SLSA builder id → build events
	IndexCommit    byte = 'c' // source commit → build events
	IndexPromotion byte = 'e' // "alg:hex@env" → promotions of the artifact into env
	IndexSigner    byte = 'k' // keyring key id → every event the key signed
)

// Tags: the event type kept with each index entry.
const (
	TagBuild      byte = 'b'
	TagSign       byte = 's'
	TagPromote    byte = 'p'
	TagSBOM       byte = 'm'
	TagTestResult byte = 't'
	TagVSA        byte = 'v'
	TagLink       byte = 'l'
)

// tags maps event types to their tags.
var tags = map[string]byte{
	event.TypeBuild: TagBuild, event.TypeSign: TagSign, event.TypePromote: TagPromote,
	event.TypeSBOM: TagSBOM, event.TypeTestResult: TagTestResult, event.TypeVSA: TagVSA, event.TypeLink: TagLink,
}

// TagName returns the event type of a tag.
func TagName(tag byte) string {
	for t, b := range tags {
		if b == tag {
			return t
		}
	}
	return ""
}

// OpenAdmission admits any entry as it is (the size cap is the log's). It
// is the admission of a generic log.
type OpenAdmission struct{}

// Admit implements Admitter.
func (OpenAdmission) Admit(_ context.Context, entry []byte) (Admitted, error) {
	return Admitted{Leaf: entry}, nil
}

// IndexReader reads the search index and the entries it lists, for
// lineage and reproducibility checks. It sees what the log has committed:
// an index entry is written in the same batch as its entry.
type IndexReader interface {
	// HasIndex reports whether (kind, value) lists index with tag.
	HasIndex(kind byte, value string, index uint64, tag byte) (bool, error)
	// SearchIndex lists up to limit indices under (kind, value) from
	// index from on, and whether more follow.
	SearchIndex(kind byte, value string, from uint64, limit int) ([]storage.Hit, bool, error)
	// Entries calls fn with each stored entry of [start, start+count) in
	// order, the slice valid only during the call; an entry missing below
	// the stored size is an error.
	Entries(start, count uint64, fn func(index uint64, entry []byte) error) error
}

// AttestationAdmission admits only typed, signed supply-chain events (see
// package event): every signature verified against the keyring, roles
// enforced, lineage checked against the log's index.
type AttestationAdmission struct {
	Keyring *Keyring
	Index   IndexReader
}

// Admit implements Admitter. The entry is a DSSE envelope or a Sigstore
// bundle holding one (event.ParseEntry); what is logged is the canonical
// envelope either way.
func (a *AttestationAdmission) Admit(ctx context.Context, entry []byte) (Admitted, error) {
	env, err := event.ParseEntry(entry)
	if err != nil {
		return Admitted{}, fmt.Errorf("%w: %w", ErrInvalidEntry, err)
	}
	ev, err := event.ParseStatement(env.Payload)
	if err != nil {
		return Admitted{}, fmt.Errorf("%w: %w", ErrInvalidEntry, err)
	}
	signers, err := a.Keyring.verify(ctx, env)
	if err != nil {
		return Admitted{}, err
	}
	if err := a.Keyring.authorize(ev, signers); err != nil {
		return Admitted{}, err
	}
	if err := a.checkLineage(ev); err != nil {
		return Admitted{}, err
	}
	if err := a.checkReproducible(ctx, ev); err != nil {
		return Admitted{}, err
	}
	return Admitted{Leaf: env.Canonical(), Terms: terms(ev, signers), Type: ev.Type}, nil
}

// terms returns the index terms of an event signed by signers: written in
// the same batch as the entry, so the index never drifts from the log.
func terms(ev *event.Event, signers []*ringKey) []IndexTerm {
	tag := tags[ev.Type]
	var ts []IndexTerm
	for _, k := range signers {
		ts = append(ts, IndexTerm{Kind: IndexSigner, Value: k.id, Tag: tag})
	}
	for _, d := range ev.Subjects {
		ts = append(ts, IndexTerm{Kind: IndexDigest, Value: d.String(), Tag: tag})
		if ev.Promote != nil {
			ts = append(ts, IndexTerm{Kind: IndexPromotion, Value: d.String() + "@" + ev.Promote.To, Tag: tag})
		}
	}
	if ev.Build != nil {
		ts = append(ts,
			IndexTerm{Kind: IndexBuilder, Value: ev.Build.BuilderID, Tag: tag},
			IndexTerm{Kind: IndexCommit, Value: ev.Build.SourceCommit, Tag: tag})
	}
	return ts
}

// checkLineage checks that a sign or promote event cites a logged build
// event of the same artifacts, and that a promotion follows the keyring's
// environment chain.
func (a *AttestationAdmission) checkLineage(ev *event.Event) error {
	var buildIndex uint64
	switch {
	case ev.Sign != nil:
		buildIndex = ev.Sign.BuildIndex
	case ev.Promote != nil:
		buildIndex = ev.Promote.BuildIndex
	default:
		return nil
	}
	for _, d := range ev.Subjects {
		ok, err := a.Index.HasIndex(IndexDigest, d.String(), buildIndex, TagBuild)
		if err != nil {
			return fmt.Errorf("%w: reading the index: %w", ErrUnavailable, err)
		}
		if !ok {
			return fmt.Errorf("%w: statement.predicate.buildIndex: entry %d is not a build event of %s", ErrFailedPrecondition, buildIndex, d)
		}
	}
	if ev.Promote == nil {
		return nil
	}
	envr := a.Keyring.envs[ev.Promote.To] // authorize checked it exists
	if envr.From == "" {
		return nil
	}
	if ev.Promote.From != envr.From {
		return fmt.Errorf("%w: statement.predicate.from: promotions to %s must come from %s, not %q", ErrFailedPrecondition, envr.Name, envr.From, ev.Promote.From)
	}
	for _, d := range ev.Subjects {
		hits, _, err := a.Index.SearchIndex(IndexPromotion, d.String()+"@"+envr.From, 0, 1)
		if err != nil {
			return fmt.Errorf("%w: reading the index: %w", ErrUnavailable, err)
		}
		if len(hits) == 0 {
			return fmt.Errorf("%w: %s was never promoted to %s, so it cannot be promoted from it to %s", ErrFailedPrecondition, d, envr.From, envr.Name)
		}
	}
	return nil
}

// MaxReproducibleBuilds is how many build events of one artifact a
// reproducibility check reads at most, in log order; builds after them do
// not count.
const MaxReproducibleBuilds = 1024

// checkReproducible refuses a promotion into an environment that needs
// independent builds (Environment.Reproducible) until each subject has
// that many logged of the source of the build the promotion cites.
// checkLineage has checked that the cited build is a build of every
// subject.
func (a *AttestationAdmission) checkReproducible(ctx context.Context, ev *event.Event) error {
	if ev.Promote == nil {
		return nil
	}
	envr := a.Keyring.envs[ev.Promote.To]
	if envr.Reproducible == 0 {
		return nil
	}
	cited, err := a.readEvent(ev.Promote.BuildIndex)
	if err != nil {
		return err
	}
	if cited.ev.Build == nil {
		return fmt.Errorf("%w: entry %d, indexed as a build event, is a %s event", ErrUnavailable, ev.Promote.BuildIndex, cited.ev.Type)
	}
	src := policy.Source(cited.ev.Build)
	for _, d := range ev.Subjects {
		ind, err := a.independentBuilds(ctx, d.String(), src, envr.Reproducible)
		if err != nil {
			return err
		}
		if len(ind) < envr.Reproducible {
			return fmt.Errorf("%w: promotion to %s needs %d independent builds of %s from the source of build %d (%s: distinct builder ids, signed by distinct keyring keys); the log has %d %v",
				ErrFailedPrecondition, envr.Name, envr.Reproducible, d, ev.Promote.BuildIndex, src, len(ind), ind)
		}
	}
	return nil
}

// independentBuilds returns the log indices of a largest set of
// independent builds (policy.Independent) of digest from src, reading the
// digest's build events in pages until there are want of them or
// MaxReproducibleBuilds have been read. A build counts only if the keyring
// would admit it today; its keys are the keyring keys that signed it.
func (a *AttestationAdmission) independentBuilds(ctx context.Context, digest, src string, want int) ([]uint64, error) {
	var builds []policy.SignedBuild
	var ind []uint64
	read := 0
	for from, more := uint64(0), true; more && read < MaxReproducibleBuilds && len(ind) < want; {
		hits, m, err := a.Index.SearchIndex(IndexDigest, digest, from, 256)
		if err != nil {
			return nil, fmt.Errorf("%w: reading the index: %w", ErrUnavailable, err)
		}
		more = m && len(hits) > 0 // no page without progress
		for _, h := range hits {
			from = h.Index + 1
			if h.Tag != TagBuild || read == MaxReproducibleBuilds {
				continue
			}
			read++
			e, err := a.readEvent(h.Index)
			if err != nil {
				return nil, err
			}
			if e.ev.Build == nil || policy.Source(e.ev.Build) != src {
				continue
			}
			signers, err := a.Keyring.verify(ctx, e.env)
			if err != nil || a.Keyring.authorize(e.ev, signers) != nil {
				continue // the keyring would not admit it today
			}
			b := policy.SignedBuild{Index: h.Index, Builder: e.ev.Build.BuilderID}
			for _, k := range signers {
				b.Signers = append(b.Signers, k.id)
			}
			builds = append(builds, b)
		}
		ind = policy.Independent(builds)
	}
	return ind, nil
}

// logged is a logged event, parsed.
type logged struct {
	env *event.Envelope
	ev  *event.Event
}

// readEvent reads and parses the logged event at index. Every entry of an
// attestation log was admitted as an event, so one that does not parse is
// the store's fault.
func (a *AttestationAdmission) readEvent(index uint64) (logged, error) {
	var e logged
	err := a.Index.Entries(index, 1, func(_ uint64, entry []byte) error {
		env, err := event.ParseEnvelope(entry)
		if err != nil {
			return err
		}
		ev, err := event.ParseStatement(env.Payload)
		if err != nil {
			return err
		}
		e = logged{env, ev}
		return nil
	})
	if err != nil {
		return logged{}, fmt.Errorf("%w: reading entry %d: %w", ErrUnavailable, index, err)
	}
	return e, nil
}
