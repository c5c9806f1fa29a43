package policy

import (
	"context"
	"errors"

	"github.com/provlog/provlog/event"
)

// More errors of admission, for errors.Is.
var (
	// ErrLineage: a sign or promote event's lineage does not hold (no
	// such build event, a promotion out of order, too few independent
	// builds).
	ErrLineage = errors.New("lineage does not hold")
	// ErrLedger: the ledger could not be read.
	ErrLedger = errors.New("reading the log")
)

// Ledger is what admission reads of the entries logged before the one it
// checks: the log's store for the log's own admission, the entries
// replayed so far for an independent replay.
type Ledger interface {
	// Event returns the event logged at index, parsed; an index with no
	// event is an error.
	Event(ctx context.Context, index uint64) (*event.Envelope, *event.Event, error)
	// HasEvent reports whether the event at index is about digest and of
	// the event type.
	HasEvent(ctx context.Context, digest string, index uint64, eventType string) (bool, error)
	// Events lists, in log order from index from on, up to limit indices
	// of the events about digest of the event type (for promotions with
	// env set, only those into env), and whether more may follow.
	Events(ctx context.Context, digest, eventType, env string, from uint64, limit int) ([]uint64, bool, error)
}

// Admit decides whether the event may be logged at index: [History.Check]
// (signatures, roles, validity, revocations, quarantine, the rules of
// keyring changes), then its lineage against the ledger: a sign or promote
// event cites a build event of the same artifacts that still counts, a
// promotion follows the environment chain from a promotion that still
// counts, and an environment's reproducibility requirement is met. Errors
// wrap ErrNotAuthorized, ErrInvalidKeyring, ErrRefused, ErrLineage or
// ErrLedger.
func (h *History) Admit(ctx context.Context, l Ledger, index uint64, env *event.Envelope, ev *event.Event) (Authorization, error) {
	d, err := h.Check(ctx, index, env, ev)
	if err != nil {
		return d, err
	}
	if err := h.checkLineage(ctx, l, d.Keyring, ev); err != nil {
		return d, err
	}
	return d, h.checkReproducible(ctx, l, d.Keyring, ev)
}

// counts reports whether the event at index still counts (Effective),
// reading it from the ledger only if some key was ever revoked.
func (h *History) counts(ctx context.Context, l Ledger, index uint64) (bool, error) {
	if !h.revokedAny() {
		return true, nil
	}
	env, ev, err := l.Event(ctx, index)
	if err != nil {
		return false, refuse(ErrLedger, "entry %d: %w", index, err)
	}
	_, ok := h.Effective(ctx, index, env, ev)
	return ok, nil
}

// checkLineage checks that a sign or promote event cites a logged build
// event of the same artifacts, and that a promotion follows the keyring's
// environment chain.
func (h *History) checkLineage(ctx context.Context, l Ledger, kr *Keyring, ev *event.Event) error {
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
		ok, err := l.HasEvent(ctx, d.String(), buildIndex, event.TypeBuild)
		if err != nil {
			return refuse(ErrLedger, "%w", err)
		}
		if !ok {
			return refuse(ErrLineage, "statement.predicate.buildIndex: entry %d is not a build event of %s", buildIndex, d)
		}
	}
	if ok, err := h.counts(ctx, l, buildIndex); err != nil {
		return err
	} else if !ok {
		return refuse(ErrLineage, "statement.predicate.buildIndex: build event %d no longer counts: a key that signed it was revoked as compromised since then", buildIndex)
	}
	if ev.Promote == nil {
		return nil
	}
	envr, _ := kr.Environment(ev.Promote.To) // Authorize checked it exists
	if envr.From == "" {
		return nil
	}
	if ev.Promote.From != envr.From {
		return refuse(ErrLineage, "statement.predicate.from: promotions to %s must come from %s, not %q", envr.Name, envr.From, ev.Promote.From)
	}
	for _, d := range ev.Subjects {
		ok, err := h.promoted(ctx, l, d.String(), envr.From)
		if err != nil {
			return err
		}
		if !ok {
			return refuse(ErrLineage, "%s was never promoted to %s (by a promotion that still counts), so it cannot be promoted from it to %s", d, envr.From, envr.Name)
		}
	}
	return nil
}

// promoted reports whether digest has a promotion into env that still
// counts.
func (h *History) promoted(ctx context.Context, l Ledger, digest, env string) (bool, error) {
	for from, more := uint64(0), true; more; {
		hits, m, err := l.Events(ctx, digest, event.TypePromote, env, from, 64)
		if err != nil {
			return false, refuse(ErrLedger, "%w", err)
		}
		more = m && len(hits) > 0
		for _, i := range hits {
			from = i + 1
			ok, err := h.counts(ctx, l, i)
			if err != nil || ok {
				return ok, err
			}
		}
	}
	return false, nil
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
func (h *History) checkReproducible(ctx context.Context, l Ledger, kr *Keyring, ev *event.Event) error {
	if ev.Promote == nil {
		return nil
	}
	envr, _ := kr.Environment(ev.Promote.To)
	if envr.Reproducible == 0 {
		return nil
	}
	_, cited, err := l.Event(ctx, ev.Promote.BuildIndex)
	if err != nil {
		return refuse(ErrLedger, "entry %d: %w", ev.Promote.BuildIndex, err)
	}
	if cited.Build == nil {
		return refuse(ErrLedger, "entry %d, indexed as a build event, is a %s event", ev.Promote.BuildIndex, cited.Type)
	}
	src := Source(cited.Build)
	for _, d := range ev.Subjects {
		ind, err := h.independentBuilds(ctx, l, d.String(), src, envr.Reproducible)
		if err != nil {
			return err
		}
		if len(ind) < envr.Reproducible {
			return refuse(ErrLineage, "promotion to %s needs %d independent builds of %s from the source of build %d (%s: distinct builder ids, signed by distinct keyring keys); the log has %d %v",
				envr.Name, envr.Reproducible, d, ev.Promote.BuildIndex, src, len(ind), ind)
		}
	}
	return nil
}

// independentBuilds returns the log indices of a largest set of
// independent builds (Independent) of digest from src, reading the
// digest's build events in pages until there are want of them or
// MaxReproducibleBuilds have been read. A build counts only if it still
// counts in the history (Effective); its keys are the signers whose
// signatures count.
func (h *History) independentBuilds(ctx context.Context, l Ledger, digest, src string, want int) ([]uint64, error) {
	var builds []SignedBuild
	var ind []uint64
	read := 0
	for from, more := uint64(0), true; more && read < MaxReproducibleBuilds && len(ind) < want; {
		hits, m, err := l.Events(ctx, digest, event.TypeBuild, "", from, 256)
		if err != nil {
			return nil, refuse(ErrLedger, "%w", err)
		}
		more = m && len(hits) > 0 // no page without progress
		for _, i := range hits {
			from = i + 1
			if read == MaxReproducibleBuilds {
				continue
			}
			read++
			env, e, err := l.Event(ctx, i)
			if err != nil {
				return nil, refuse(ErrLedger, "entry %d: %w", i, err)
			}
			if e.Build == nil || Source(e.Build) != src {
				continue
			}
			signers, ok := h.Effective(ctx, i, env, e)
			if !ok {
				continue
			}
			b := SignedBuild{Index: i, Builder: e.Build.BuilderID}
			for _, k := range signers {
				b.Signers = append(b.Signers, k.ID)
			}
			builds = append(builds, b)
		}
		ind = Independent(builds)
	}
	return ind, nil
}
