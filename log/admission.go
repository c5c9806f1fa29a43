package log

import (
	"context"
	"errors"
	"fmt"

	"github.com/provlog/provlog/event"
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

// IndexReader reads the search index, for lineage checks.
type IndexReader interface {
	// HasIndex reports whether (kind, value) lists index with tag.
	HasIndex(kind byte, value string, index uint64, tag byte) (bool, error)
	// SearchIndex lists up to limit indices under (kind, value) from
	// index from on, and whether more follow.
	SearchIndex(kind byte, value string, from uint64, limit int) ([]storage.Hit, bool, error)
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
