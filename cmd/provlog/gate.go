package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/provlog/provlog/client"
	"github.com/provlog/provlog/event"
	"github.com/provlog/provlog/policy"
)

// gateLong is the gate's --help. The policy format it describes is owned
// by package policy, whose doc is the specification; keep the two in step.
const gateLong = `The deploy gate: decide whether an artifact may be deployed to an
environment. It fetches every event about the artifact from the log
(search by digest), proves each one (its proof bundle verifies with the
log's key and, if the policy names one, its checkpoint meets the witness
policy), parses it, and checks the events against --policy.

Inclusion proves presence, not absence: that the search left no event out
is the log's word, and the output says so ("completeness: the log's
search"). With --replay the gate reads and verifies the whole log instead
(every entry against the checkpoint, as monitor does) and decides over
every event about the artifact it found there, whatever the search says.
With --state FILE the gate keeps the last checkpoint it verified (as
monitor does) and every event's checkpoint must be consistent with it: a
log that forked or rewound since is a reason to deny (evidence written
beside FILE). It exits 0 to allow, or 1 to deny, listing every reason, not
just the first. Any non-zero exit must be taken as "do not deploy".

The events are judged by the log's trust history (docs/trust.md),
replayed here from logged entries, never the server's say-so: from the
log's trust events (its search), each proven included; with --replay,
from every entry of the log. An artifact under a quarantine no entry has
lifted is denied in every environment, naming the quarantine entry; an
event whose signer was revoked as compromised since it was logged no
longer counts; an event (or a trust event) the log should have refused
is left out and named as a reason to deny. The "trust history:" line
says where the history comes from.

The policy is a JSON file (unknown fields are refused):

  {
    "builders": ["https://ci.example.com/runner@v2"],
    "sourceRepositories": ["git+https://git.example.com/app", "git+https://git.example.com/libs/*"],
    "keys": {"signer": "keys/signer.pub", "bob": "keys/bob.pub"},
    "requiredSigners": ["signer"],
    "promotionPath": ["dev", "staging", "prod"],
    "approvals": {"prod": {"count": 2, "keys": ["bob"]}},
    "witnessPolicy": "witnesses.policy"
  }

  builders            allowed SLSA builder ids of the build event. An entry
                      ending in "*" or "/" is a prefix ("*" removed); any
                      other must match exactly. Empty: any builder.
  sourceRepositories  allowed source repositories of the build event, same
                      matching. Empty: any source.
  keys                names for PEM public keys (files relative to the
                      policy file). For a named key the gate verifies the
                      envelope signature itself instead of relying on the
                      log's admission check.
  requiredSigners     keys that must each have signed a sign event about the
                      artifact. A key is a name from "keys", or a raw DSSE
                      key id (the securesystemslib key id "provlog keygen"
                      prints, 64 hex digits), which the gate takes on the
                      log's word (the log verified every signature against
                      its keyring). These are the keys of the sign events'
                      envelopes, not the free-text keyId of their predicate.
  promotionPath       environments in order. Deploying to --env needs a
                      promotion into each environment of the path up to and
                      including it, each from the one before (the first
                      from none), in log order. --env must be on the path.
                      Empty: one promotion into --env, from anywhere.
  approvals           per environment: "count", the least number of distinct
                      signers of the promotion into it, and "keys", keys
                      (as in requiredSigners) that must be among them.
  witnessPolicy       a tlog-policy file ("witness", "group", "quorum"
                      lines) that the checkpoint of every event's proof must
                      meet (relative to the policy file; --witness-policy
                      overrides it).

Only events about an accepted build count: a build event whose builder and
source the policy allows, and sign and promote events whose buildIndex is
such a build.

Exit codes: 0 allow; 1 deny, every reason listed; 2 bad flags or policy
file; 3 the log unreachable (undecided: do not deploy).`

// loadPolicy reads and checks a gate policy. Every problem is a usage
// error.
func loadPolicy(file string) (*policy.Policy, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, usageErr("policy: %w", err)
	}
	p, err := policy.Parse(raw, filepath.Dir(file))
	if err != nil {
		return nil, usageErr("policy %s: %w", file, err)
	}
	return p, nil
}

// gateDecision is the gate's JSON output.
type gateDecision struct {
	Decision    string      `json:"decision"` // "allow" or "deny"
	Artifact    string      `json:"artifact"`
	Environment string      `json:"environment"`
	Reasons     []string    `json:"reasons"`
	Events      []eventJSON `json:"events"`
	// Completeness says where the assurance that no event was left out
	// comes from (see completenessSearch and replayCompleteness).
	Completeness string `json:"completeness,omitempty"`
	// Trust says where the trust history the decision was judged by
	// (quarantines, revocations) comes from.
	Trust string `json:"trustHistory,omitempty"`
}

// completenessSearch is the gate's completeness line without --replay:
// the events it decided over are proven, but that they are all the events
// about the artifact is the log's word.
const completenessSearch = "the log's search (use --replay to check it yourself)"

// replayCompleteness is the completeness line of a decision over the
// events of a replay of the whole log up to cp.
func replayCompleteness(cp *client.Checkpoint) string {
	return fmt.Sprintf("replayed and verified all %d entries of the log's checkpoint of size %d", cp.Size, cp.Size)
}

// replayEvents follows the log from its first entry with a Follower
// (reading over the tlog-tiles API at tiles if not empty, else over c),
// verifying the checkpoint with vkey and the witness policy, every entry
// against it, and returns the events about digest: all of them, on the
// evidence of the signed tree alone, and the checkpoint they are in. What
// does not verify is a reason to deny, as in gatherEvents.
func replayEvents(ctx context.Context, c *client.Client, tiles, vkey string, digest event.Digest, witness []byte) ([]policy.Event, []policy.Reason, *client.Trust, error) {
	cfg := client.FollowerConfig{VerifierKey: vkey, WitnessPolicy: witness, TilesURL: tiles, Trust: true}
	if tiles == "" {
		cfg.Client = c
	}
	f, err := client.NewFollower(cfg)
	if err != nil {
		return nil, nil, nil, asUsage(err)
	}
	if _, err := f.Poll(ctx); err != nil {
		if isVerificationFailure(err) {
			return nil, []policy.Reason{{Text: fmt.Sprintf("replay: %v", err)}}, nil, nil
		}
		return nil, nil, nil, fmt.Errorf("replay: %w", err)
	}
	evs, _ := f.Events(digest)
	return provenEvents(evs), nil, f.Trust(), nil
}

// proofTrust builds the trust history from the log's search of trust
// events, each proven included (client.TrustHistory). What does not
// verify is a reason to deny.
func proofTrust(ctx context.Context, c *client.Client, witness []byte) (*client.Trust, []policy.Reason, error) {
	tr, err := client.TrustHistory(ctx, c, client.TrustHistoryOptions{WitnessPolicy: witness})
	switch {
	case err != nil && isVerificationFailure(err):
		return nil, []policy.Reason{{Text: fmt.Sprintf("the log's trust history does not verify: %v", err)}}, nil
	case err != nil:
		return nil, nil, err
	}
	return tr, nil, nil
}

// applyTrust judges the events of a decision by the trust history tr: an
// event the history's replay found the log should have refused is left
// out, and named as a reason to deny; so is every trust event the log
// should have refused (the history it would have made is not the log's
// word). It returns the events kept, the reasons, the options of Decide
// and the line saying what the trust history rests on.
func applyTrust(tr *client.Trust, events []policy.Event, source string) ([]policy.Event, []policy.Reason, []policy.DecideOption, string) {
	if tr == nil {
		return events, nil, nil, "none: the trust history could not be read"
	}
	var reasons []policy.Reason
	for _, v := range tr.Violations {
		if policy.IsTrustEvent(v.Type) {
			reasons = append(reasons, policy.Reason{Text: fmt.Sprintf("the log's trust history breaks its rules: %s event %d should have been refused: %v", v.Type, v.Index, v.Err), Entries: []uint64{v.Index}})
		}
	}
	kept := make([]policy.Event, 0, len(events))
	for _, e := range events {
		if err := tr.Refused(e.Index); err != nil {
			reasons = append(reasons, policy.Reason{Text: fmt.Sprintf("%s event %d should not have been admitted (left out): %v", e.Event.Type, e.Index, err), Entries: []uint64{e.Index}})
			continue
		}
		kept = append(kept, e)
	}
	line := fmt.Sprintf("%s up to size %d (%d keyring versions, %d revocations, %d quarantines in force)", source, tr.Checkpoint.Size,
		len(tr.History.Versions()), len(tr.History.Revocations()), len(tr.Quarantines(tr.Checkpoint.Size)))
	return kept, reasons, []policy.DecideOption{policy.WithHistory(tr.History)}, line
}

// Where the gate's trust history comes from.
const (
	trustFromSearch = "the log's trust events from its search, each proven included"
	trustFromReplay = "replayed from every entry"
)

// provenEvents are the events a Follower answered, as the policy takes
// them.
func provenEvents(evs []client.IndexedEvent) []policy.Event {
	out := make([]policy.Event, 0, len(evs))
	for _, e := range evs {
		out = append(out, policy.Event{Index: e.Index, Envelope: e.Envelope, Event: e.Event})
	}
	return out
}

// isVerificationFailure reports whether err says that what the log sent
// does not verify (a reason to deny) rather than that it could not be
// read.
func isVerificationFailure(err error) bool {
	for _, e := range []error{client.ErrFormat, client.ErrLogSignature, client.ErrInclusionProof,
		client.ErrPolicyNotSatisfied, client.ErrEntryMismatch, client.ErrLogMisbehaved} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// gatherEvents searches the log for events about digest and proves and
// parses each. Events that fail are left out, with a reason.
func gatherEvents(ctx context.Context, c *client.Client, vkey string, digest string, witness []byte) ([]policy.Event, []policy.Reason, []*client.Checkpoint, error) {
	var events []policy.Event
	var checkpoints []*client.Checkpoint
	var reasons []policy.Reason
	deny := func(index uint64, format string, args ...any) {
		reasons = append(reasons, policy.Reason{Text: fmt.Sprintf(format, args...), Entries: []uint64{index}})
	}
	for r, err := range c.Search(ctx, client.SearchKey{Digest: digest}) {
		if err != nil {
			if isVerificationFailure(err) {
				return events, append(reasons, policy.Reason{Text: fmt.Sprintf("search: %v", err)}), checkpoints, nil
			}
			return nil, nil, nil, fmt.Errorf("search: %w", err)
		}
		bundle, err := c.ProofBundle(ctx, r.Index)
		var vb *client.VerifiedBundle
		if err == nil {
			vb, err = client.VerifyBundle(bundle, vkey, client.VerifyOptions{WitnessPolicy: witness, Entry: r.Entry})
		}
		if err != nil {
			if !isVerificationFailure(err) {
				return nil, nil, nil, fmt.Errorf("proving event %d: %w", r.Index, err)
			}
			deny(r.Index, "event %d does not verify: %v", r.Index, err)
			continue
		}
		pe, err := parseEntry(r.Index, r.Entry)
		if err != nil {
			deny(r.Index, "entry %d is not a valid event: %v", r.Index, err)
			continue
		}
		if !hasSubject(pe, digest) {
			deny(r.Index, "%s event %d found by digest is not about %s", pe.Event.Type, r.Index, digest)
			continue
		}
		events = append(events, policy.Event{Index: pe.Index, Envelope: pe.Env, Event: pe.Event})
		checkpoints = append(checkpoints, vb.Checkpoint)
	}
	return events, reasons, checkpoints, nil
}

// checkState proves every checkpoint the events were proven in consistent
// with the last checkpoint the caller saw, kept in state (as monitor's
// --state; trusted on first use), advancing it to the newest. A log that
// forked or rewound since is a reason to deny, with its evidence written
// beside state; it returns the line saying what consistency rests on.
func checkState(ctx context.Context, c *client.Client, vkey, state string, checkpoints []*client.Checkpoint) ([]policy.Reason, string, error) {
	m, err := client.NewMonitor(client.MonitorConfig{VerifierKey: vkey, StateFile: state, EvidenceDir: filepath.Dir(state), Client: c})
	if err != nil {
		return nil, "", asUsage(err)
	}
	var before uint64
	if cp := m.Latest(); cp != nil {
		before = cp.Size
	}
	slices.SortFunc(checkpoints, func(a, b *client.Checkpoint) int { return cmp.Compare(a.Size, b.Size) })
	latest := m.Latest()
	for _, cp := range checkpoints {
		if latest, err = m.Observe(ctx, cp); err != nil {
			var ie *client.InconsistencyError
			if errors.As(err, &ie) {
				return []policy.Reason{{Text: fmt.Sprintf("the log is not consistent with the checkpoint in %s: %v (evidence in %s)", state, ie.Reason, ie.EvidenceFile)}}, "", nil
			}
			return nil, "", err
		}
	}
	if latest == nil {
		return nil, fmt.Sprintf("no checkpoint to check against %s (no events)", state), nil
	}
	return nil, fmt.Sprintf("every event's checkpoint is consistent with %s (size %d, now %d)", state, before, latest.Size), nil
}

func newGateCmd(g *globals) *cobra.Command {
	var (
		s                     subjectFlags
		env, policyFile, wpol string
		replay                bool
		state                 string
		att                   gateAttestFlags
	)
	cmd := &cobra.Command{
		Use:   "gate --artifact FILE|--digest D --env ENV --policy FILE [--replay]",
		Short: "The deploy gate: allow (exit 0) or deny (exit 1) a deployment",
		Long:  gateLong,
		Example: `  provlog gate --artifact app.tar.gz --env prod --policy deploy-policy.json && ./deploy.sh
  provlog gate --digest sha256:9f86d0... --env staging --policy deploy-policy.json --json
  provlog gate --artifact app.tar.gz --env prod --policy deploy-policy.json --replay --tiles https://log.example.com/`,
		Args: cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, _ []string) error {
			if env == "" || policyFile == "" {
				return usageErr("--env and --policy are required")
			}
			d, _, err := s.resolve()
			if err != nil {
				return err
			}
			p, err := loadPolicy(policyFile)
			if err != nil {
				return err
			}
			if wpol != "" {
				if p.Witness, err = loadWitnessPolicy(wpol); err != nil {
					return err
				}
			}
			vkey, err := g.verifierKey()
			if err != nil {
				return err
			}
			ctx, c, done, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			var (
				events       []policy.Event
				unproven     []policy.Reason
				completeness = completenessSearch
				checkpoints  []*client.Checkpoint
				tr           *client.Trust
				source       = trustFromSearch
			)
			if replay {
				tiles, asked := g.tilesURL()
				if !asked {
					tiles = ""
				}
				events, unproven, tr, err = replayEvents(ctx, c, tiles, vkey, d, p.Witness)
				completeness, source = "none: the replay failed", trustFromReplay
				if tr != nil {
					completeness = replayCompleteness(tr.Checkpoint)
					checkpoints = []*client.Checkpoint{tr.Checkpoint}
				}
			} else {
				events, unproven, checkpoints, err = gatherEvents(ctx, c, vkey, d.String(), p.Witness)
				if err == nil {
					var bad []policy.Reason
					tr, bad, err = proofTrust(ctx, c, p.Witness)
					unproven = append(unproven, bad...)
					if tr != nil {
						checkpoints = append(checkpoints, tr.Checkpoint)
					}
				}
			}
			if err != nil {
				return err
			}
			events, refused, opts, trustLine := applyTrust(tr, events, source)
			unproven = append(unproven, refused...)
			if state != "" {
				forked, consistency, err := checkState(ctx, c, vkey, state, checkpoints)
				if err != nil {
					return err
				}
				unproven = append(unproven, forked...)
				if consistency != "" {
					completeness += "; consistency: " + consistency
				}
			}
			dec := p.Decide(ctx, d.String(), env, events, opts...)
			dec.Reasons = append(unproven, dec.Reasons...)
			// The decision is printed first; a VSA that cannot be made
			// or logged overrides its exit code.
			verdict := reportGateTrust(g, dec, completeness, trustLine)
			var ee *exitError
			if verdict != nil && !errors.As(verdict, &ee) {
				return verdict // printing failed
			}
			if err := att.emit(cmd, g, p, policyFile, dec); err != nil {
				return err
			}
			return verdict
		}),
	}
	cmd.AddCommand(newGateServeCmd(g))
	s.register(cmd, false)
	att.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&env, "env", "", "target `environment` (required)")
	fl.StringVar(&policyFile, "policy", "", "policy `file`, JSON (required; see above)")
	fl.StringVar(&wpol, "witness-policy", "", "tlog-policy `file` every event's checkpoint must meet (overrides the policy's)")
	fl.StringVar(&state, "state", "", "`file` keeping the last checkpoint this gate verified (as monitor's --state): every event's checkpoint must be consistent with it, else deny; it is advanced")
	fl.BoolVar(&replay, "replay", false, "prove completeness by replaying and verifying the whole log (over --tiles if given, else --log) instead of trusting its search")
	return cmd
}

// reportDecision prints the decision and returns the error that makes a
// denial exit 1.
func reportDecision(g *globals, d *policy.Decision) error { return reportGate(g, d, "") }

// reportGate is reportDecision saying where completeness comes from: a
// line "completeness: ..." after the decision's (none if completeness is
// empty).
func reportGate(g *globals, d *policy.Decision, completeness string) error {
	return reportGateTrust(g, d, completeness, "")
}

// reportGateTrust is reportGate saying where the trust history comes
// from: a line "trust history: ..." after the completeness line (none if
// trust is empty).
func reportGateTrust(g *globals, d *policy.Decision, completeness, trust string) error {
	out := gateDecision{Decision: "allow", Artifact: d.Artifact, Environment: d.Environment, Reasons: []string{}, Events: []eventJSON{}, Completeness: completeness, Trust: trust}
	if !d.Allowed() {
		out.Decision = "deny"
	}
	for _, r := range d.Reasons {
		out.Reasons = append(out.Reasons, r.Text)
	}
	var events []*parsedEvent
	for _, e := range d.Events {
		pe := &parsedEvent{Index: e.Index, Env: e.Envelope, Event: e.Event}
		events = append(events, pe)
		out.Events = append(out.Events, pe.json())
	}
	if g.json {
		if err := g.printJSON(out); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(g.stdout, "%s %s to %s\n", strings.ToUpper(out.Decision), d.Artifact, d.Environment)
		if completeness != "" {
			fmt.Fprintf(g.stdout, "completeness: %s\n", completeness)
		}
		if trust != "" {
			fmt.Fprintf(g.stdout, "trust history: %s\n", trust)
		}
		for _, r := range out.Reasons {
			fmt.Fprintf(g.stdout, "  - %s\n", r)
		}
		if d.Allowed() {
			for _, pe := range events {
				fmt.Fprintf(g.stdout, "  %s\n", pe.summary())
			}
		}
	}
	if !d.Allowed() {
		return negative(fmt.Errorf("gate: deny %s to %s: %d reason(s)", d.Artifact, d.Environment, len(d.Reasons)))
	}
	return nil
}
