package policy

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/provlog/provlog/event"
)

// History is a log's trust over time, computed from its entries alone:
// the keyring in force at every index, the keys revoked and since when
// their signatures are void, and the artifacts quarantined. The log's
// admission and an independent replay (client.Replay, provlog audit, the
// gate) compute it with the same rules, entry by entry in log order:
//
//   - The first keyring event of the log (its genesis, index 0 of a new
//     log) is signed by the log's own key: whoever runs the log vouches
//     for the first keyring, and an auditor already pins that key to
//     check checkpoints. While the keyring in force names no admins, the
//     log key alone makes every keyring change, revocation and lifting of
//     a quarantine (the operator's file still manages the log).
//   - Once a keyring names admins, a keyring change, a revocation or the
//     lifting of a quarantine needs signatures by at least the threshold
//     of distinct admin keys of the keyring in force, and by no other key;
//     the log key no longer counts. A keyring event at index j takes
//     effect from j on: entries after it are checked against it.
//   - An event at index i is checked against the keyring in force at i:
//     every signature must verify with one of its keys, every signer's
//     validity window (notBefore, notAfter) must contain i, no signer may
//     be revoked by an entry before i, and the signers' roles must allow
//     the event (Keyring.Authorize).
//   - A revocation (index r) names a key and compromisedSince (c <= r):
//     from r on the key is refused; signatures it made at or after c stay
//     in the log but no longer count (see Effective), for lineage,
//     approvals, reproducibility and the gate.
//   - A quarantine (role security) of an artifact at index q forbids its
//     promotion after q until an unquarantine (the admins' threshold)
//     lifts it.
//
// A History is safe for concurrent use: one writer (Apply) and any number
// of readers.
type History struct {
	mu sync.RWMutex
	// logKey signs the genesis keyring, and changes while the keyring
	// names no admins.
	logKey   event.Key
	versions []Version              // in log order
	revoked  map[string]*Revocation // by key id
	quar     map[string][]*Quarantine
	gen      uint64 // counts the changes applied
	applied  uint64 // 1 + the index of the last change applied
}

// Version is one keyring of a log's history and the index of the keyring
// event that brought it.
type Version struct {
	Index   uint64
	Keyring *Keyring
	// ByLog is true for a keyring the log key signed (the genesis, or a
	// change while no admins were named).
	ByLog bool
}

// Revocation is a logged revocation of a key.
type Revocation struct {
	KeyID string
	// Index is the revocation's own log index: from it on, the key is
	// refused.
	Index uint64
	// CompromisedSince is the index from which the key's signatures are
	// void.
	CompromisedSince uint64
	Reason           string
}

// Quarantine is a logged quarantine of an artifact.
type Quarantine struct {
	Index  uint64 // the quarantine entry
	Digest string
	Reason string
	// Lifted is the index of the unquarantine that lifted it; 0 while it
	// holds.
	Lifted uint64
}

// NewHistory returns the history of a log signed by logKey (the DSSE form
// of its checkpoint key, see event.NoteKey), before any entry.
func NewHistory(logKey event.Key) *History {
	return &History{logKey: logKey, revoked: map[string]*Revocation{}, quar: map[string][]*Quarantine{}}
}

// Generation counts the changes applied so far: an admission decided at
// one generation holds while the generation is the same.
func (h *History) Generation() uint64 {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.gen
}

// Next returns 1 + the index of the last change applied (0 before any):
// an entry not yet logged will take an index at or after it, so a
// decision about it is made at no smaller index.
func (h *History) Next() uint64 {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.applied
}

// Empty reports whether no keyring has been applied yet.
func (h *History) Empty() bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.versions) == 0
}

// Versions returns the keyrings applied so far, in log order.
func (h *History) Versions() []Version {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return slices.Clone(h.versions)
}

// KeyringAt returns the keyring in force for an entry at index: that of
// the last keyring event before index, or for an index at or before the
// genesis (entries a log held before its keyring was first logged), the
// genesis keyring. It returns nil if no keyring was applied.
func (h *History) KeyringAt(index uint64) *Keyring {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if v := h.versionAt(index); v != nil {
		return v.Keyring
	}
	return nil
}

func (h *History) versionAt(index uint64) *Version {
	var v *Version
	for i := range h.versions {
		if h.versions[i].Index >= index && v != nil {
			break
		}
		v = &h.versions[i]
	}
	return v
}

// Revocation returns the revocation of a key, if any.
func (h *History) Revocation(keyID string) (Revocation, bool) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	r, ok := h.revoked[keyID]
	if !ok {
		return Revocation{}, false
	}
	return *r, true
}

// Revocations returns every revocation, in log order.
func (h *History) Revocations() []Revocation {
	h.mu.RLock()
	defer h.mu.RUnlock()
	var rs []Revocation
	for _, r := range h.revoked {
		rs = append(rs, *r)
	}
	slices.SortFunc(rs, func(a, b Revocation) int { return cmp.Compare(a.Index, b.Index) })
	return rs
}

// revokedAny reports whether any key was ever revoked.
func (h *History) revokedAny() bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.revoked) > 0
}

// Void reports whether a signature by the key on the entry at index no
// longer counts: the key is revoked as compromised since index or
// earlier.
func (h *History) Void(keyID string, index uint64) bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.void(keyID, index)
}

func (h *History) void(keyID string, index uint64) bool {
	r, ok := h.revoked[keyID]
	return ok && r.CompromisedSince <= index
}

// Quarantined returns the quarantine of digest holding at index (after
// the quarantine's entry, before the unquarantine lifting it), if any.
func (h *History) Quarantined(digest string, index uint64) (Quarantine, bool) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if q := h.quarantinedAt(digest, index); q != nil {
		return *q, true
	}
	return Quarantine{}, false
}

// QuarantinedNow returns the quarantine of digest that no entry so far has
// lifted, if any.
func (h *History) QuarantinedNow(digest string) (Quarantine, bool) {
	return h.Quarantined(digest, ^uint64(0))
}

func (h *History) quarantinedAt(digest string, index uint64) *Quarantine {
	for _, q := range h.quar[digest] {
		if q.Index < index && (q.Lifted == 0 || q.Lifted >= index) {
			return q
		}
	}
	return nil
}

// Authorization is what Check found of an event: who signed it, against
// which keyring.
type Authorization struct {
	// Signers are the keyring keys that signed it; nil for an event signed
	// by the log key.
	Signers []*Key
	// ByLog is true for an event the log key signed.
	ByLog bool
	// Keyring is the keyring it was checked against; nil for the genesis.
	Keyring *Keyring
	// Generation is the history's generation it was decided at.
	Generation uint64
}

// Check decides whether the event may be logged at index, by the rules of
// the package doc, leaving lineage to [History.Admit]. Errors wrap
// ErrNotAuthorized, ErrInvalidKeyring or ErrRefused.
func (h *History) Check(ctx context.Context, index uint64, env *event.Envelope, ev *event.Event) (Authorization, error) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.check(ctx, index, env, ev)
}

func (h *History) check(ctx context.Context, index uint64, env *event.Envelope, ev *event.Event) (Authorization, error) {
	d := Authorization{Generation: h.gen}
	v := h.versionAt(index)
	if v == nil {
		if ev.Type != event.TypeKeyring {
			return d, refuse(ErrNotAuthorized, "the log has no keyring yet: its first entry must be the genesis keyring, signed by the log key")
		}
		if err := h.byLog(ctx, env); err != nil {
			return d, err
		}
		d.ByLog = true
		_, err := NewKeyring(ev.Keyring)
		return d, err
	}
	kr := v.Keyring
	d.Keyring = kr
	if AdminEvent(ev.Type) {
		if err := h.checkAdmins(ctx, index, env, kr, &d); err != nil {
			return d, err
		}
	} else {
		signers, err := kr.Verify(ctx, env)
		if err != nil {
			return d, err
		}
		if err := h.usable(signers, index); err != nil {
			return d, err
		}
		if err := kr.Authorize(ev, signers); err != nil {
			return d, err
		}
		d.Signers = signers
	}
	return d, h.checkState(index, ev, kr)
}

// byLog checks that every signature of env is the log key's.
func (h *History) byLog(ctx context.Context, env *event.Envelope) error {
	pae := env.PAE()
	if len(env.Signatures) == 0 {
		return refuse(ErrNotAuthorized, "no signature")
	}
	for i, s := range env.Signatures {
		if h.logKey == nil || h.logKey.Verify(ctx, pae, s.Sig) != nil {
			return refuse(ErrNotAuthorized, "envelope.signatures[%d]: not the log key's (while the keyring names no admins, the log key alone signs keyring changes, revocations and unquarantines)", i)
		}
	}
	return nil
}

// checkAdmins checks the signatures of an event that needs the admins of
// kr: the log key's if kr names none, else at least the threshold of
// distinct usable admin keys and no other key.
func (h *History) checkAdmins(ctx context.Context, index uint64, env *event.Envelope, kr *Keyring, d *Authorization) error {
	if len(kr.admins) == 0 {
		d.ByLog = true
		return h.byLog(ctx, env)
	}
	signers, err := kr.Verify(ctx, env)
	if err != nil {
		return err
	}
	for _, k := range signers {
		if !k.Admin {
			return refuse(ErrNotAuthorized, "key %s is not an admin of the keyring in force (admins: %s)", k.Name, names(kr.admins))
		}
	}
	if err := h.usable(signers, index); err != nil {
		return err
	}
	if len(signers) < kr.threshold {
		return refuse(ErrNotAuthorized, "signed by %d admin keys (%s), the keyring in force needs %d of %s", len(signers), names(signers), kr.threshold, names(kr.admins))
	}
	d.Signers = signers
	return nil
}

// usable refuses signers revoked before index or outside their window.
func (h *History) usable(signers []*Key, index uint64) error {
	for _, k := range signers {
		if r, ok := h.revoked[k.ID]; ok && r.Index < index {
			return refuse(ErrNotAuthorized, "key %s was revoked by entry %d (compromised since entry %d: %s)", k.Name, r.Index, r.CompromisedSince, r.Reason)
		}
		if !k.ValidAt(index) {
			return refuse(ErrNotAuthorized, "key %s may sign only entries in its validity window %s, not entry %d", k.Name, k.Window(), index)
		}
	}
	return nil
}

// CheckWindows checks, for an event Check allowed at another index, that
// the signers may still sign at index: no revocation before it, within
// their windows. It is all that can change for an event when the
// generation has not.
func (h *History) CheckWindows(signers []*Key, index uint64) error {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.usable(signers, index)
}

// checkState checks what the log's state says of the event: a quarantined
// artifact is not promoted, a keyring change leaves usable admins, a
// revocation is of a known key not yet revoked and does not leave too few
// admins, an unquarantine lifts a quarantine.
func (h *History) checkState(index uint64, ev *event.Event, kr *Keyring) error {
	switch ev.Type {
	case event.TypePromote:
		for _, s := range ev.Subjects {
			if q := h.quarantinedAt(s.String(), index); q != nil {
				return refuse(ErrRefused, "%s is quarantined by entry %d (%s): it cannot be promoted until an unquarantine lifts it", s, q.Index, q.Reason)
			}
		}
	case event.TypeKeyring:
		nk, err := NewKeyring(ev.Keyring)
		if err != nil {
			return err
		}
		if len(kr.admins) == 0 {
			return nil // the log key manages a keyring without admins
		}
		if len(nk.admins) == 0 {
			return refuse(ErrRefused, "statement.predicate.admins: the change leaves no admin (the keyring in force has %s)", names(kr.admins))
		}
		usable := 0
		for _, k := range nk.admins {
			if _, revoked := h.revoked[k.ID]; !revoked && (k.NotAfter == nil || *k.NotAfter > index) {
				usable++
			}
		}
		if usable < nk.threshold {
			return refuse(ErrRefused, "statement.predicate.admins: the change would lock out its admins: %d of them may sign after entry %d (not revoked, validity not ended), the threshold is %d", usable, index, nk.threshold)
		}
	case event.TypeRevoke:
		rv := ev.Revoke
		if rv.CompromisedSince > index {
			return refuse(ErrRefused, "statement.predicate.compromisedSince: %d, want at or before the revocation's own index %d", rv.CompromisedSince, index)
		}
		if r, ok := h.revoked[rv.KeyID]; ok {
			return refuse(ErrRefused, "statement.predicate.keyId: key %s is already revoked by entry %d", rv.KeyID, r.Index)
		}
		if !h.everListed(rv.KeyID) {
			return refuse(ErrRefused, "statement.predicate.keyId: %s is not a key of any keyring of the log", rv.KeyID)
		}
		if k, ok := kr.byID[rv.KeyID]; ok && k.Admin {
			left := 0
			for _, a := range kr.admins {
				if _, revoked := h.revoked[a.ID]; a != k && !revoked && a.ValidAt(index) {
					left++
				}
			}
			if left < kr.threshold {
				return refuse(ErrRefused, "revoking admin key %s would leave %d usable admin keys, under the threshold %d: log a keyring naming a replacement first", k.Name, left, kr.threshold)
			}
		}
	case event.TypeUnquarantine:
		for _, s := range ev.Subjects {
			q := h.quarantinedAt(s.String(), index)
			if q == nil {
				return refuse(ErrRefused, "%s is not quarantined", s)
			}
			if qi := ev.Quarantine.QuarantineIndex; qi != nil && !slices.ContainsFunc(h.quar[s.String()], func(q *Quarantine) bool { return q.Index == *qi && q.Lifted == 0 }) {
				return refuse(ErrRefused, "statement.predicate.quarantineIndex: entry %d is no quarantine of %s in force", *qi, s)
			}
		}
	}
	return nil
}

func (h *History) everListed(keyID string) bool {
	return slices.ContainsFunc(h.versions, func(v Version) bool { _, ok := v.Keyring.byID[keyID]; return ok })
}

// Apply records the trust event at index (a keyring, revoke, quarantine or
// unquarantine event that Check allowed there, with its decision); other
// events change nothing. Indices must increase from one call to the next.
func (h *History) Apply(index uint64, ev *event.Event, d Authorization) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if index < h.applied {
		return fmt.Errorf("applying entry %d after entry %d", index, h.applied-1)
	}
	switch ev.Type {
	case event.TypeKeyring:
		nk, err := NewKeyring(ev.Keyring)
		if err != nil {
			return err
		}
		h.versions = append(h.versions, Version{Index: index, Keyring: nk, ByLog: d.ByLog})
	case event.TypeRevoke:
		h.revoked[ev.Revoke.KeyID] = &Revocation{KeyID: ev.Revoke.KeyID, Index: index, CompromisedSince: ev.Revoke.CompromisedSince, Reason: ev.Revoke.Reason}
	case event.TypeQuarantine:
		for _, s := range ev.Subjects {
			h.quar[s.String()] = append(h.quar[s.String()], &Quarantine{Index: index, Digest: s.String(), Reason: ev.Quarantine.Reason})
		}
	case event.TypeUnquarantine:
		for _, s := range ev.Subjects {
			for _, q := range h.quar[s.String()] {
				if q.Lifted == 0 && (ev.Quarantine.QuarantineIndex == nil || *ev.Quarantine.QuarantineIndex == q.Index) {
					q.Lifted = index
				}
			}
		}
	default:
		return nil
	}
	h.gen++
	h.applied = index + 1
	return nil
}

// IsTrustEvent reports whether events of the type change the history.
func IsTrustEvent(eventType string) bool {
	switch eventType {
	case event.TypeKeyring, event.TypeRevoke, event.TypeQuarantine, event.TypeUnquarantine:
		return true
	}
	return false
}

// Effective returns the keys whose signatures on the event logged at index
// still count, and whether the event still counts at all: it verifies
// against the keyring in force at index, drops signers revoked as
// compromised since index or earlier, and authorizes the event with the
// signers left. An event that needs admins, or was signed by the log key,
// counts as it was admitted (a revocation voids signatures of events, not
// of keyring changes already in force).
func (h *History) Effective(ctx context.Context, index uint64, env *event.Envelope, ev *event.Event) ([]*Key, bool) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	v := h.versionAt(index)
	if v == nil || AdminEvent(ev.Type) || ev.Type == event.TypeKeyring {
		return nil, v != nil || ev.Type == event.TypeKeyring
	}
	signers, err := v.Keyring.Verify(ctx, env)
	if err != nil {
		return nil, false
	}
	signers = slices.DeleteFunc(signers, func(k *Key) bool { return h.void(k.ID, index) })
	if len(signers) == 0 || v.Keyring.Authorize(ev, signers) != nil {
		return signers, false
	}
	return signers, true
}

func names(keys []*Key) string {
	var s []string
	for _, k := range keys {
		s = append(s, k.Name)
	}
	return fmt.Sprint(s)
}
