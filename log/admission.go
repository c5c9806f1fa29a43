package log

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"

	"golang.org/x/mod/sumdb/note"

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
	// Sequence, if not nil, is called by the sequencer, in log order, with
	// the index the entry is about to take (never for a duplicate), before
	// anything of its round is written: an error refuses the entry's
	// request, and nothing of it is logged. It is for what depends on the
	// exact index, or on entries sequenced since the entry was admitted.
	Sequence func(index uint64) error
	// Alone is true for an entry that must be the only one of its request
	// (its Sequence changes what later entries are admitted against).
	Alone bool
}

// Bootstrapper is an Admitter with entries the log must hold before any
// other (the genesis keyring): Open calls Bootstrap once, before it
// accepts writes, and logs the entries it returns, in order, through the
// usual admission.
type Bootstrapper interface {
	Bootstrap(ctx context.Context, signer note.Signer) ([][]byte, error)
}

type nextIndexKey struct{}

// NextIndex returns, in an Admitter's context, the log's size when the
// entry was submitted: a lower bound of the index it will take (the
// exact index reaches Admitted.Sequence).
func NextIndex(ctx context.Context) uint64 {
	n, _ := ctx.Value(nextIndexKey{}).(uint64)
	return n
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
	TagBuild        byte = 'b'
	TagSign         byte = 's'
	TagPromote      byte = 'p'
	TagSBOM         byte = 'm'
	TagTestResult   byte = 't'
	TagVSA          byte = 'v'
	TagLink         byte = 'l'
	TagKeyring      byte = 'g'
	TagRevoke       byte = 'r'
	TagQuarantine   byte = 'q'
	TagUnquarantine byte = 'u'
)

// tags maps event types to their tags.
var tags = map[string]byte{
	event.TypeBuild: TagBuild, event.TypeSign: TagSign, event.TypePromote: TagPromote,
	event.TypeSBOM: TagSBOM, event.TypeTestResult: TagTestResult, event.TypeVSA: TagVSA, event.TypeLink: TagLink,
	event.TypeKeyring: TagKeyring, event.TypeRevoke: TagRevoke, event.TypeQuarantine: TagQuarantine, event.TypeUnquarantine: TagUnquarantine,
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
// lineage and reproducibility checks and to rebuild the trust history. It
// sees what the log has committed: an index entry is written in the same
// batch as its entry.
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
// package event), by the rules of policy.History: every signature verified
// against the keyring in force at the entry's index, roles, validity
// windows, revocations and quarantines enforced, lineage checked against
// the log's index.
//
// The log's trust history (its keyring events, revocations and
// quarantines) is rebuilt from the log when it opens (Bootstrap), through
// the search index of trust events. A log with none logs Keyring as its
// genesis keyring event, signed by the log key, before any other entry.
type AttestationAdmission struct {
	// Keyring is the bootstrap keyring (the operator's --keyring file).
	Keyring *Keyring
	// Index reads the log's committed entries and index.
	Index IndexReader
	// Logger receives warnings (a keyring file that no longer matters).
	// If nil, slog.Default().
	Logger *slog.Logger

	// history is the trust history, set by Bootstrap; the sequencer
	// alone applies changes to it (through Admitted.Sequence).
	history atomic.Pointer[policy.History]
}

// History returns the log's trust history, or nil before Bootstrap.
func (a *AttestationAdmission) History() *policy.History { return a.history.Load() }

// Bootstrap implements Bootstrapper: it rebuilds the trust history from
// the log's trust events (each checked again as it is replayed), and
// returns the entries to log before any other: the genesis keyring of a
// log without one; or, while the keyring in force names no admins (so
// the log key manages it), the bootstrap keyring if it differs from the
// one in force. Once the keyring names admins, a differing file is only
// warned about.
func (a *AttestationAdmission) Bootstrap(ctx context.Context, signer note.Signer) ([][]byte, error) {
	logger := a.Logger
	if logger == nil {
		logger = slog.Default()
	}
	h, err := a.replay(ctx, signer)
	if err != nil {
		return nil, err
	}
	a.history.Store(h)
	if a.Keyring == nil {
		return nil, nil
	}
	vs := h.Versions()
	if len(vs) > 0 {
		current := vs[len(vs)-1]
		if sameKeyring(current.Keyring, a.Keyring) {
			return nil, nil
		}
		if admins, _ := current.Keyring.Admins(); len(admins) > 0 {
			logger.WarnContext(ctx, "the keyring file differs from the keyring in force, which names admins: the file is only the bootstrap and is ignored; change the keyring with provlog keyring propose, approve and submit",
				"in_force_since", current.Index, "keys_in_force", current.Keyring.Len(), "keys_in_file", a.Keyring.Len())
			return nil, nil
		}
		logger.InfoContext(ctx, "the keyring file differs from the keyring in force, which names no admins: logging the file as the new keyring, signed by the log key", "in_force_since", current.Index)
	}
	entry, err := signByLog(ctx, signer, a.Keyring.Predicate())
	if err != nil {
		return nil, err
	}
	return [][]byte{entry}, nil
}

// replay rebuilds the trust history from the log's trust events, each
// checked again as it is replayed.
func (a *AttestationAdmission) replay(ctx context.Context, signer note.Signer) (*policy.History, error) {
	h := policy.NewHistory(signerKey{signer})
	l := ledger{a.Index}
	for from, more := uint64(0), true; more; {
		hits, m, err := a.Index.SearchIndex(IndexTrust, TrustIndexValue, from, 256)
		if err != nil {
			return nil, fmt.Errorf("reading the trust index: %w", err)
		}
		more = m && len(hits) > 0
		for _, hit := range hits {
			from = hit.Index + 1
			env, ev, err := l.Event(ctx, hit.Index)
			if err != nil {
				return nil, fmt.Errorf("trust event %d: %w", hit.Index, err)
			}
			d, err := h.Check(ctx, hit.Index, env, ev)
			if err != nil {
				return nil, fmt.Errorf("the log's trust history does not replay: entry %d: %w", hit.Index, err)
			}
			if err := h.Apply(hit.Index, ev, d); err != nil {
				return nil, fmt.Errorf("trust event %d: %w", hit.Index, err)
			}
		}
	}
	return h, nil
}

// sameKeyring reports whether two keyrings have the same predicate.
func sameKeyring(a, b *Keyring) bool {
	ja, err1 := event.NewKeyringStatement(a.Predicate())
	jb, err2 := event.NewKeyringStatement(b.Predicate())
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}

// signByLog makes the keyring event of p signed by the log key.
func signByLog(ctx context.Context, signer note.Signer, p *event.KeyringPredicate) ([]byte, error) {
	payload, err := event.NewKeyringStatement(p)
	if err != nil {
		return nil, err
	}
	return event.SignEnvelope(ctx, payload, signerKey{signer})
}

// Admit implements Admitter. The entry is a DSSE envelope or a Sigstore
// bundle holding one (event.ParseEntry); what is logged is the canonical
// envelope either way. It is checked at the log's size (NextIndex), and
// again by the sequencer at the index it takes (Admitted.Sequence): only
// signers' validity windows if the trust history has not changed since,
// else everything.
func (a *AttestationAdmission) Admit(ctx context.Context, entry []byte) (Admitted, error) {
	h := a.history.Load()
	if h == nil {
		return Admitted{}, fmt.Errorf("%w: the log's trust history is not loaded yet", ErrUnavailable)
	}
	env, err := event.ParseEntry(entry)
	if err != nil {
		return Admitted{}, fmt.Errorf("%w: %w", ErrInvalidEntry, err)
	}
	ev, err := event.ParseStatement(env.Payload)
	if err != nil {
		return Admitted{}, fmt.Errorf("%w: %w", ErrInvalidEntry, err)
	}
	l := ledger{a.Index}
	// The log's size is a lower bound of the entry's index, and so is the
	// index after the last trust event applied (which may not be durable
	// yet): deciding at no smaller index, only the signers' windows can
	// differ at the exact index while the history does not change.
	d, err := h.Admit(ctx, l, max(NextIndex(ctx), h.Next()), env, ev)
	if err != nil {
		return Admitted{}, admissionError(err)
	}
	ctx = context.WithoutCancel(ctx)
	adm := Admitted{Leaf: env.Canonical(), Terms: terms(ev, d.Signers), Type: ev.Type}
	if policy.IsTrustEvent(ev.Type) {
		adm.Alone = true
		adm.Sequence = func(index uint64) error {
			d, err := h.Admit(ctx, l, index, env, ev)
			if err != nil {
				return admissionError(err)
			}
			return h.Apply(index, ev, d)
		}
		return adm, nil
	}
	adm.Sequence = func(index uint64) error {
		if h.Generation() == d.Generation {
			return admissionError(h.CheckWindows(d.Signers, index))
		}
		// The trust history changed since: decide again, at the index.
		_, err := h.Admit(ctx, l, index, env, ev)
		return admissionError(err)
	}
	return adm, nil
}

// admissionError maps policy's errors to the log's sentinels.
func admissionError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, policy.ErrNotAuthorized):
		return fmt.Errorf("%w: %w", ErrPermissionDenied, err)
	case errors.Is(err, policy.ErrInvalidKeyring):
		return fmt.Errorf("%w: %w", ErrInvalidEntry, err)
	case errors.Is(err, policy.ErrRefused), errors.Is(err, policy.ErrLineage):
		return fmt.Errorf("%w: %w", ErrFailedPrecondition, err)
	case errors.Is(err, policy.ErrLedger):
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}

// IndexTrust lists the trust events (keyring, revoke, quarantine,
// unquarantine) under the one value TrustIndexValue, so that Bootstrap finds
// them all without reading the log.
const (
	IndexTrust      byte = 'g'
	TrustIndexValue      = "trust"
)

// terms returns the index terms of an event signed by signers: written in
// the same batch as the entry, so the index never drifts from the log.
func terms(ev *event.Event, signers []*policy.Key) []IndexTerm {
	tag := tags[ev.Type]
	var ts []IndexTerm
	for _, k := range signers {
		ts = append(ts, IndexTerm{Kind: IndexSigner, Value: k.ID, Tag: tag})
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
	if policy.IsTrustEvent(ev.Type) {
		ts = append(ts, IndexTerm{Kind: IndexTrust, Value: TrustIndexValue, Tag: tag})
	}
	return ts
}

// ledger reads the log's committed entries and index for policy's
// admission.
type ledger struct{ ix IndexReader }

// Event implements policy.Ledger. Every entry of an attestation log was
// admitted as an event, so one that does not parse is the store's fault.
func (l ledger) Event(_ context.Context, index uint64) (*event.Envelope, *event.Event, error) {
	var env *event.Envelope
	var ev *event.Event
	err := l.ix.Entries(index, 1, func(_ uint64, entry []byte) error {
		var err error
		if env, err = event.ParseEnvelope(entry); err != nil {
			return err
		}
		ev, err = event.ParseStatement(env.Payload)
		return err
	})
	if err == nil && ev == nil {
		err = fmt.Errorf("no entry %d", index)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("reading entry %d: %w", index, err)
	}
	return env, ev, nil
}

// HasEvent implements policy.Ledger.
func (l ledger) HasEvent(_ context.Context, digest string, index uint64, eventType string) (bool, error) {
	return l.ix.HasIndex(IndexDigest, digest, index, tags[eventType])
}

// Events implements policy.Ledger.
func (l ledger) Events(_ context.Context, digest, eventType, env string, from uint64, limit int) ([]uint64, bool, error) {
	kind, value := IndexDigest, digest
	if env != "" {
		kind, value = IndexPromotion, digest+"@"+env
	}
	tag := tags[eventType]
	var out []uint64
	for {
		hits, more, err := l.ix.SearchIndex(kind, value, from, limit)
		if err != nil {
			return nil, false, err
		}
		for _, h := range hits {
			from = h.Index + 1
			if h.Tag == tag {
				out = append(out, h.Index)
			}
		}
		if len(out) > 0 || !more || len(hits) == 0 {
			return out, more, nil
		}
	}
}

// signerKey is the log's checkpoint key as a DSSE key: it signs the
// genesis keyring (and keyring changes while no admins are named), and
// verifies a signature by signing again, Ed25519 being deterministic, as
// parseOwnCheckpoint does.
type signerKey struct{ s note.Signer }

func (k signerKey) Sign(_ context.Context, data []byte) ([]byte, error) { return k.s.Sign(data) }

func (k signerKey) Verify(_ context.Context, data, sig []byte) error {
	want, err := k.s.Sign(data)
	if err != nil {
		return err
	}
	if !bytes.Equal(want, sig) {
		return errors.New("not the log key's signature")
	}
	return nil
}

// KeyID is the DSSE key id of the log key's signatures: the note key's
// name and hash, as in its verifier key (only a hint, as all key ids).
func (k signerKey) KeyID() (string, error) {
	return fmt.Sprintf("%s+%08x", k.s.Name(), k.s.KeyHash()), nil
}

func (k signerKey) Public() crypto.PublicKey { return nil }
