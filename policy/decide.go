package policy

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/provlog/provlog/event"
)

// Event is a logged event the caller has proven included in the log.
type Event struct {
	Index    uint64 // its index in the log
	Envelope *event.Envelope
	Event    *event.Event // the envelope's payload, parsed
}

// Reason is one reason to deny.
type Reason struct {
	Text string
	// Entries are the log indices of the events the reason is about; none
	// for a reason that an event is missing.
	Entries []uint64
}

func (r Reason) String() string { return r.Text }

// Decision is the result of Decide.
type Decision struct {
	Artifact    string // the digest, as in "sha256:…"
	Environment string
	// Reasons are every reason to deny, in the order the rules are checked
	// (builds, reproducibility, signers, promotions along the path); none to allow. A
	// caller may add its own (events it could not prove) before printing.
	Reasons []Reason
	// Events are the events the decision was made over.
	Events []Event
}

// Allowed reports whether the decision allows the deployment: there is no
// reason to deny.
func (d *Decision) Allowed() bool { return len(d.Reasons) == 0 }

// Decide checks the proven events about digest against the policy for a
// deployment to env. The caller passes only events it has proven included
// in the log and that are about digest (see the package doc); Decide does
// no I/O, and ctx is only for the signature verifiers.
func (p *Policy) Decide(ctx context.Context, digest, env string, events []Event, opts ...DecideOption) *Decision {
	var o decideOptions
	for _, f := range opts {
		f(&o)
	}
	d := &Decision{Artifact: digest, Environment: env}
	var voided []Reason // why events were left out, told only if denied
	if h := o.history; h != nil {
		if q, ok := h.QuarantinedNow(digest); ok {
			d.deny([]uint64{q.Index}, "%s is quarantined by entry %d (%s): it may not be deployed to any environment until an unquarantine lifts it", digest, q.Index, q.Reason)
		}
		events = slices.DeleteFunc(slices.Clone(events), func(e Event) bool {
			_, counts := h.Effective(ctx, e.Index, e.Envelope, e.Event)
			if !counts {
				voided = append(voided, Reason{fmt.Sprintf("%s event %d no longer counts: %s", e.Event.Type, e.Index, voidedBy(ctx, h, e)), []uint64{e.Index}})
			}
			return !counts
		})
	}
	d.Events = events
	defer func() {
		if !d.Allowed() {
			d.Reasons = append(d.Reasons, voided...)
		}
	}()
	if len(events) == 0 {
		d.deny(nil, "the log has no events about %s", digest)
		return d
	}
	accepted := p.builds(d, events)
	p.checkReproducible(ctx, d, events, accepted)
	p.checkSigners(ctx, d, events, accepted)
	p.checkPromotions(ctx, d, events, accepted)
	return d
}

// voidedBy says why an event no longer counts: the revocations of the
// keys whose signatures on it are void.
func voidedBy(ctx context.Context, h *History, e Event) string {
	var rs []string
	for _, r := range h.Revocations() {
		if r.CompromisedSince <= e.Index && slices.ContainsFunc(e.Envelope.Signatures, func(s event.Signature) bool { return signedByRevoked(ctx, h, r, e, s) }) {
			rs = append(rs, fmt.Sprintf("key %s was revoked by entry %d as compromised since entry %d (%s)", r.KeyID, r.Index, r.CompromisedSince, r.Reason))
		}
	}
	if len(rs) == 0 {
		return "its signers no longer authorize it (a signer revoked as compromised)"
	}
	return strings.Join(rs, "; ")
}

// signedByRevoked reports whether signature s of e is by the revoked key,
// as the keyring in force at e's index knows it.
func signedByRevoked(ctx context.Context, h *History, r Revocation, e Event, s event.Signature) bool {
	kr := h.KeyringAt(e.Index)
	if kr == nil {
		return false
	}
	k, ok := kr.KeyByID(r.KeyID)
	return ok && k.Key.Verify(ctx, e.Envelope.PAE(), s.Sig) == nil
}

// DecideOption adjusts Decide.
type DecideOption func(*decideOptions)

type decideOptions struct {
	history *History
}

// WithHistory has Decide judge the events by the log's trust history
// (replayed from the log's own entries, see [Replay]; never the server's
// word): an artifact under a quarantine no entry has lifted is denied in
// every environment, naming the quarantine entry, and an event that no
// longer counts (a signer revoked as compromised since it was logged, see
// [History.Effective]) is left out, as if it were not logged.
func WithHistory(h *History) DecideOption {
	return func(o *decideOptions) { o.history = h }
}

// deny adds a reason about the entries.
func (d *Decision) deny(entries []uint64, format string, args ...any) {
	d.Reasons = append(d.Reasons, Reason{Text: fmt.Sprintf(format, args...), Entries: entries})
}

// builds returns the indices of the build events the policy accepts. If it
// accepts none, it denies: for want of a build event, or with every reason
// each build was refused.
func (p *Policy) builds(d *Decision, events []Event) map[uint64]bool {
	accepted := map[uint64]bool{}
	var refused []Reason
	n := 0
	for _, e := range events {
		b := e.Event.Build
		if b == nil {
			continue
		}
		n++
		ok := true
		if len(p.builders) > 0 && !allowed(b.BuilderID, p.builders) {
			refused = append(refused, Reason{fmt.Sprintf("build event %d: builder %q is not allowed by the policy", e.Index, b.BuilderID), []uint64{e.Index}})
			ok = false
		}
		if len(p.sources) > 0 && !allowed(b.SourceRepo, p.sources) {
			refused = append(refused, Reason{fmt.Sprintf("build event %d: source repository %q is not allowed by the policy", e.Index, b.SourceRepo), []uint64{e.Index}})
			ok = false
		}
		if ok {
			accepted[e.Index] = true
		}
	}
	switch {
	case n == 0:
		d.deny(nil, "no build event about %s", d.Artifact)
	case len(accepted) == 0:
		d.Reasons = append(d.Reasons, refused...)
	}
	return accepted
}

// checkSigners denies for each required signer without a sign event about
// an accepted build.
func (p *Policy) checkSigners(ctx context.Context, d *Decision, events []Event, accepted map[uint64]bool) {
	for _, k := range p.signers {
		found, other := false, -1
		for _, e := range events {
			if e.Event.Sign == nil || !signedBy(ctx, e, k) {
				continue
			}
			if accepted[e.Event.Sign.BuildIndex] {
				found = true
				break
			}
			other = int(e.Index)
		}
		switch {
		case found:
		case other >= 0:
			d.deny([]uint64{uint64(other)}, "sign event %d by %s is for a build the policy does not accept", other, k)
		default:
			d.deny(nil, "no sign event signed by %s", k)
		}
	}
}

// step is one promotion the deployment needs.
type step struct {
	from, to string
	anyFrom  bool
}

// steps returns the promotions a deployment to env needs, or denies.
func (p *Policy) steps(d *Decision, env string) []step {
	if len(p.promotionPath) == 0 {
		return []step{{to: env, anyFrom: true}}
	}
	i := slices.Index(p.promotionPath, env)
	if i < 0 {
		d.deny(nil, "environment %q is not on the policy's promotion path %v", env, p.promotionPath)
		return nil
	}
	var steps []step
	for j, to := range p.promotionPath[:i+1] {
		s := step{to: to}
		if j > 0 {
			s.from = p.promotionPath[j-1]
		}
		steps = append(steps, s)
	}
	return steps
}

// checkPromotions denies for each step without a promotion of an accepted
// build, after the previous step's in log order, that meets the step's
// approval rule.
func (p *Policy) checkPromotions(ctx context.Context, d *Decision, events []Event, accepted map[uint64]bool) {
	after := int64(-1) // the index of the previous step's promotion
	for _, s := range p.steps(d, d.Environment) {
		what := "promotion into " + s.to
		if !s.anyFrom && s.from != "" {
			what += " from " + s.from
		}
		var candidates []Event
		var foreign []Reason // promotions of builds the policy does not accept
		for _, e := range events {
			pr := e.Event.Promote
			if pr == nil || pr.To != s.to || (!s.anyFrom && pr.From != s.from) || int64(e.Index) <= after {
				continue
			}
			if !accepted[pr.BuildIndex] {
				foreign = append(foreign, Reason{fmt.Sprintf("%s at index %d is for a build the policy does not accept", what, e.Index), []uint64{e.Index}})
				continue
			}
			candidates = append(candidates, e)
		}
		if len(candidates) == 0 {
			if len(foreign) == 0 {
				d.deny(nil, "no %s", what)
			}
			d.Reasons = append(d.Reasons, foreign...)
			continue
		}
		chosen, unmet := p.approve(ctx, what, s.to, candidates)
		if chosen == nil {
			d.Reasons = append(d.Reasons, unmet...)
			continue
		}
		after = int64(chosen.Index)
	}
}

// approve returns the first candidate promotion into env that meets its
// approval rule, or nil and why each fails.
func (p *Policy) approve(ctx context.Context, what, env string, candidates []Event) (*Event, []Reason) {
	rule := p.approvals[env]
	var unmet []Reason
	for i, e := range candidates {
		at := []uint64{e.Index}
		var miss []Reason
		if n := distinctSigners(e); n < rule.count {
			miss = append(miss, Reason{fmt.Sprintf("%s at index %d has %d distinct signers, the policy wants %d", what, e.Index, n, rule.count), at})
		}
		for _, k := range rule.keys {
			if !signedBy(ctx, e, k) {
				miss = append(miss, Reason{fmt.Sprintf("%s at index %d is not approved by %s", what, e.Index, k), at})
			}
		}
		if len(miss) == 0 {
			return &candidates[i], nil
		}
		unmet = append(unmet, miss...)
	}
	return nil, unmet
}

// allowed reports whether v matches one of the patterns: exactly, or by
// prefix for a pattern ending in "*" (removed) or "/".
func allowed(v string, patterns []string) bool {
	for _, p := range patterns {
		switch {
		case strings.HasSuffix(p, "*"):
			if strings.HasPrefix(v, strings.TrimSuffix(p, "*")) {
				return true
			}
		case strings.HasSuffix(p, "/"):
			if strings.HasPrefix(v, p) {
				return true
			}
		case v == p:
			return true
		}
	}
	return false
}

// signedBy reports whether the envelope carries a signature by k: for a
// key with its public key, a signature the key verifies, whatever key id it
// carries (key ids are hints: cosign writes none); for a key named only by
// id, a signature with that key id (the log verified it against its
// keyring when it admitted the event).
func signedBy(ctx context.Context, e Event, k key) bool {
	pae := e.Envelope.PAE()
	for _, s := range e.Envelope.Signatures {
		switch {
		case k.pub == nil && s.KeyID == k.id:
			return true
		case k.pub != nil && k.pub.Verify(ctx, pae, s.Sig) == nil:
			return true
		}
	}
	return false
}

// distinctSigners counts the distinct key ids of an envelope's signatures
// (a signature without key id counts once).
func distinctSigners(e Event) int {
	ids := map[string]bool{}
	n := 0
	for _, s := range e.Envelope.Signatures {
		if s.KeyID == "" {
			n++
		} else if !ids[s.KeyID] {
			ids[s.KeyID] = true
			n++
		}
	}
	return n
}
