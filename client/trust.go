package client

// A log's trust over time (docs/trust.md): the keyring in force at every
// index, the revocations and the quarantines, computed here from the
// log's entries with the rules of policy.History, never taken from the
// server's word. Two ways, with different assurances:
//
//   - Replay reads every entry of the log, verified against a signed
//     checkpoint (the scan a Monitor and a Follower use), and replays it
//     through policy.Replay: the history rests on the signed tree alone,
//     and every entry the log should have refused is found.
//   - TrustHistory reads only the trust events, from the log's search
//     (SearchKey.TrustEvents), each proven included in one verified
//     checkpoint. Each event it uses is the log's, but that the search
//     left none out (a revocation or a quarantine withheld) is the
//     server's word: proof of presence, not of absence.

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"

	fwitness "github.com/transparency-dev/formats/witness"

	"github.com/provlog/provlog/event"
	"github.com/provlog/provlog/policy"
)

// TrustEvent is a trust event of a log (keyring, revoke, quarantine or
// unquarantine) and what the replay decided of it.
type TrustEvent struct {
	Index    uint64
	Envelope *event.Envelope
	Event    *event.Event
	// Verdict is the replay's decision: Verdict.Err says why the log
	// should have refused the event (it then changed nothing), and
	// Verdict.BeforeHistory marks an event logged before the first
	// keyring event (it changes nothing either).
	Verdict policy.Verdict
}

// Trust is a log's trust history as replayed from its entries.
type Trust struct {
	// Checkpoint is the verified checkpoint whose tree was replayed: its
	// entries [0, Size) (Replay), or its trust events (TrustHistory).
	Checkpoint *Checkpoint
	// History is the trust history of the tree: the keyring in force at
	// every index (History.KeyringAt), revocations and quarantines.
	History *policy.History
	// Events are the trust events, in log order, the refused ones too.
	Events []TrustEvent
	// Violations are the verdicts of the entries that should not have
	// been admitted, in log order: none for a log that kept its rules.
	// TrustHistory sees only trust events.
	Violations []policy.Verdict
	// Verdicts is every entry's verdict, in log order, kept by Replay
	// when ReplayConfig.OnVerdict is nil; nil otherwise.
	Verdicts []policy.Verdict
	// Entries is the number of entries replayed (Replay) or trust events
	// proven (TrustHistory).
	Entries uint64
	// BeforeHistory counts the entries logged before the log's first
	// keyring event, taken as admitted (see policy.Verdict).
	BeforeHistory uint64
}

// Quarantines returns the quarantines holding for an entry at index (see
// policy.History.Quarantined), one per quarantined digest and quarantine
// entry, in log order.
func (t *Trust) Quarantines(index uint64) []policy.Quarantine {
	var out []policy.Quarantine
	for _, e := range t.Events {
		if e.Event.Type != event.TypeQuarantine || e.Verdict.Err != nil || e.Verdict.BeforeHistory {
			continue
		}
		for _, d := range e.Event.Subjects {
			if q, ok := t.History.Quarantined(d.String(), index); ok && q.Index == e.Index {
				out = append(out, q)
			}
		}
	}
	return out
}

// Refused returns why the log should have refused the entry at index, or
// nil if it should not have (or was not replayed).
func (t *Trust) Refused(index uint64) error {
	i, ok := slices.BinarySearchFunc(t.Violations, index, func(v policy.Verdict, index uint64) int {
		return cmp.Compare(v.Index, index)
	})
	if !ok {
		return nil
	}
	return t.Violations[i].Err
}

// trustReplay feeds a log's verified entries, in log order, to a
// policy.Replay and keeps what a Trust reports. page is called by one
// goroutine at a time (a Replay's, or a Follower's poll); snapshot by any.
type trustReplay struct {
	r         *policy.Replay
	onVerdict func(policy.Verdict) error
	keep      bool // keep every verdict

	mu sync.Mutex // guards t; the History guards itself
	t  Trust
}

func newTrustReplay(verifierKey string, onVerdict func(policy.Verdict) error) (*trustReplay, error) {
	logKey, err := policy.LogKey(verifierKey)
	if err != nil {
		return nil, fmt.Errorf("trust replay: log key: %w", err)
	}
	r := policy.NewReplay(logKey)
	return &trustReplay{r: r, onVerdict: onVerdict, keep: onVerdict == nil, t: Trust{History: r.History()}}, nil
}

// page replays a verified page of entries, the first at index start,
// which must be the next entry to replay.
func (tr *trustReplay) page(ctx context.Context, start uint64, page [][]byte) error {
	if start != tr.r.Next() {
		return fmt.Errorf("trust replay: entries from %d, but the next to replay is %d", start, tr.r.Next())
	}
	for _, entry := range page {
		v := tr.r.Entry(ctx, entry) // before the first keyring, taken as admitted
		var te *TrustEvent
		if policy.IsTrustEvent(v.Type) {
			env, ev, err := parseEvent(entry)
			if err != nil {
				panic(fmt.Sprintf("entry %d: policy.Replay parsed it, event does not: %v", v.Index, err))
			}
			te = &TrustEvent{Index: v.Index, Envelope: env, Event: ev, Verdict: v}
		}
		tr.mu.Lock()
		tr.t.Entries++
		if v.BeforeHistory {
			tr.t.BeforeHistory++
		}
		if v.Err != nil {
			tr.t.Violations = append(tr.t.Violations, v)
		}
		if te != nil {
			tr.t.Events = append(tr.t.Events, *te)
		}
		if tr.keep {
			tr.t.Verdicts = append(tr.t.Verdicts, v)
		}
		tr.mu.Unlock()
		if tr.onVerdict != nil {
			if err := tr.onVerdict(v); err != nil {
				return err
			}
		}
	}
	return nil
}

// snapshot returns what has been replayed so far, as of cp. The slices
// are copies; the History is shared (and may be ahead of cp, by entries
// of a newer verified checkpoint being read).
func (tr *trustReplay) snapshot(cp *Checkpoint) *Trust {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	t := tr.t
	t.Checkpoint = cp
	t.Events = slices.Clone(t.Events)
	t.Violations = slices.Clone(t.Violations)
	t.Verdicts = slices.Clone(t.Verdicts)
	return &t
}

// parseEvent parses a logged entry: a DSSE envelope of a statement.
func parseEvent(entry []byte) (*event.Envelope, *event.Event, error) {
	env, err := event.ParseEnvelope(entry)
	if err != nil {
		return nil, nil, err
	}
	ev, err := event.ParseStatement(env.Payload)
	if err != nil {
		return nil, nil, err
	}
	return env, ev, nil
}

// ReplayConfig configures Replay.
type ReplayConfig struct {
	// VerifierKey is the log's note verifier key. Required: it verifies
	// the checkpoint, and its Ed25519 key (policy.LogKey) is the key the
	// log's genesis keyring must be signed with.
	VerifierKey string
	// Origin is the origin the checkpoint must name. If empty, the
	// verifier key's name.
	Origin string
	// WitnessPolicy, if not nil, is a witness policy in the tlog-policy
	// text format that the checkpoint must satisfy. If nil, none.
	WitnessPolicy []byte
	// Client, if not nil, is the source of the checkpoint, proofs and
	// entries (gRPC). Otherwise TilesURL is.
	Client *Client
	// TilesURL is the base URL of the log's C2SP tlog-tiles API.
	TilesURL string
	// HTTPClient fetches from TilesURL. If nil, a client with a one-minute
	// timeout.
	HTTPClient *http.Client
	// Checkpoint, if not nil, is the raw signed checkpoint whose tree is
	// replayed (such as one an Audit verified); it is verified as a
	// fetched one. If nil, the log's latest checkpoint.
	Checkpoint []byte
	// OnVerdict, if not nil, is called with every entry's verdict, in log
	// order, from Replay's goroutine, once the entry is verified; an
	// error it returns stops the replay and is returned. If nil, the
	// verdicts are kept in Trust.Verdicts.
	OnVerdict func(policy.Verdict) error
}

// Replay replays a whole log from its entries alone: it verifies the
// checkpoint (the log key, the origin, the witness policy), reads every
// entry of its tree a page at a time, verifies each page against it (an
// entry that does not hash into the signed tree is an error wrapping
// ErrInclusionProof, and no verdict is given for its page), and decides
// each entry with policy.Replay: whether the log should have admitted
// it, by the keyring in force at its index, revocations, quarantines and
// lineage. The server is trusted for nothing: an entry it should have
// refused is in Trust.Violations, and the history is the one the entries
// make.
func Replay(ctx context.Context, cfg ReplayConfig) (*Trust, error) {
	v, err := newLogVerifier(cfg.VerifierKey)
	if err != nil {
		return nil, err
	}
	origin := cfg.Origin
	if origin == "" {
		origin = v.Name()
	}
	tr, err := newTrustReplay(cfg.VerifierKey, cfg.OnVerdict)
	if err != nil {
		return nil, err
	}
	src, err := newLogSource(cfg.Client, cfg.TilesURL, cfg.HTTPClient)
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	raw := cfg.Checkpoint
	if raw == nil {
		if raw, err = src.checkpoint(ctx); err != nil {
			return nil, fmt.Errorf("replay: fetching checkpoint: %w", err)
		}
	}
	cp, err := OpenCheckpoint(raw, v, origin)
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	if err := checkWitnessPolicy(cfg.WitnessPolicy, cp); err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	visit := func(start uint64, page [][]byte) error { return tr.page(ctx, start, page) }
	if err := scanEntries(ctx, src, 0, cp, visit); err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	return tr.snapshot(cp), nil
}

// checkWitnessPolicy checks that cp satisfies the witness policy, if
// there is one.
func checkWitnessPolicy(witnessPolicy []byte, cp *Checkpoint) error {
	if witnessPolicy == nil {
		return nil
	}
	g, err := fwitness.ParsePolicy(witnessPolicy)
	if err != nil {
		return fmt.Errorf("witness policy: %w", err)
	}
	if !g.Satisfied(cp.Raw) {
		return fmt.Errorf("%w: by the cosignatures of the checkpoint of size %d", ErrPolicyNotSatisfied, cp.Size)
	}
	return nil
}

// TrustHistoryOptions configures TrustHistory. The zero value checks the
// checkpoint against the log's key alone.
type TrustHistoryOptions struct {
	// WitnessPolicy, if not nil, is a witness policy in the tlog-policy
	// text format that the checkpoint must satisfy.
	WitnessPolicy []byte
}

// TrustHistory builds a log's trust history from its trust events alone,
// without reading the whole log: it fetches and verifies the log's
// checkpoint, lists the trust events with the log's search
// (SearchKey.TrustEvents), proves each included in that checkpoint's tree
// (an inclusion proof that does not verify wraps ErrInclusionProof; a
// result that is no trust event, ErrLogMisbehaved; a proof that cannot be
// fetched is an error too), and applies them in log order with the rules
// of policy.History, as Replay would: a trust event that should have been
// refused is in Trust.Violations and changes nothing.
//
// Every event it applies is proven, but completeness is the server's
// word: a log that leaves a revocation or a quarantine out of its search
// is not caught here (Replay, which reads every entry, catches it).
// Results beyond the checkpoint (the log grew since) are left out.
func TrustHistory(ctx context.Context, c *Client, opts TrustHistoryOptions) (*Trust, error) {
	logKey, err := policy.LogKey(c.vkey)
	if err != nil {
		return nil, fmt.Errorf("trust history: log key: %w", err)
	}
	cp, err := c.Checkpoint(ctx)
	if err != nil {
		return nil, fmt.Errorf("trust history: %w", err)
	}
	if err := checkWitnessPolicy(opts.WitnessPolicy, cp); err != nil {
		return nil, fmt.Errorf("trust history: %w", err)
	}
	t := &Trust{Checkpoint: cp, History: policy.NewHistory(logKey)}
	for r, err := range c.Search(ctx, SearchKey{TrustEvents: true}) {
		if err != nil {
			return nil, fmt.Errorf("trust history: search: %w", err)
		}
		if r.Index >= cp.Size {
			break // in log order: the rest is beyond cp too
		}
		p, err := c.InclusionProof(ctx, r.Index, cp)
		if err != nil {
			return nil, fmt.Errorf("trust history: the inclusion proof of trust event %d: %w", r.Index, err)
		}
		if err := verifyInclusion(r.Entry, r.Index, toArrays(p), cp); err != nil {
			return nil, fmt.Errorf("trust history: trust event %d: %w", r.Index, err)
		}
		env, ev, err := parseEvent(r.Entry)
		if err != nil {
			return nil, fmt.Errorf("trust history: %w: entry %d, found as a trust event, is not an event: %w", ErrLogMisbehaved, r.Index, err)
		}
		if !policy.IsTrustEvent(ev.Type) {
			return nil, fmt.Errorf("trust history: %w: entry %d, found as a trust event, is a %s event", ErrLogMisbehaved, r.Index, ev.Type)
		}
		t.apply(ctx, r.Index, env, ev)
	}
	return t, nil
}

// apply decides the trust event at index as policy.Replay would (the
// history alone decides a trust event: no lineage) and applies it if it
// should have been admitted.
func (t *Trust) apply(ctx context.Context, index uint64, env *event.Envelope, ev *event.Event) {
	h := t.History
	v := policy.Verdict{Index: index, Type: ev.Type}
	t.Entries++
	switch d, err := h.Check(ctx, index, env, ev); {
	case h.Empty() && ev.Type != event.TypeKeyring:
		v.BeforeHistory = true
		t.BeforeHistory++
	case err != nil:
		v.Err = err
	default:
		v.Signers = d.Signers
		v.Err = h.Apply(index, ev, d)
	}
	if v.Err != nil {
		t.Violations = append(t.Violations, v)
	}
	t.Events = append(t.Events, TrustEvent{Index: index, Envelope: env, Event: ev, Verdict: v})
}
