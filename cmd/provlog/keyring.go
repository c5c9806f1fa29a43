package main

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/provlog/provlog/client"
	"github.com/provlog/provlog/event"
	"github.com/provlog/provlog/log"
	"github.com/provlog/provlog/policy"
)

const keyringLong = `Change a log's keyring, revoke keys and quarantine artifacts, through
trust events logged like any other (docs/trust.md):

  propose       a keyring change, from a keyring file (provlogd --keyring's format)
  propose revoke        a key's revocation, void from --compromised-since on
  propose quarantine    an artifact's quarantine (a security key signs it)
  propose unquarantine  the lifting of a quarantine
  approve       add signatures to a proposed change (each admin in turn)
  submit        submit it, alone, and print its index
  show          the keyring in force at an index, and the history

While the keyring in force names no admins, the log's own key manages it
(change provlogd's --keyring file and restart it). Once it names admins, a
keyring change, a revocation or an unquarantine needs signatures by the
admins' threshold of the keyring in force, and by no other key; a
quarantine needs a key with the security role. The log checks each at its
exact index and refuses, writing nothing, a change signed below the
threshold, by a revoked or expired key, naming an unknown role, leaving no
admin, or revoking the last admins.

Exit codes: 0 done; 2 bad flags or input files; 3 the log refused the
change (the reason printed) or could not be reached.`

func newKeyringCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keyring propose|approve|submit|show",
		Short: "Change the keyring, revoke keys, quarantine artifacts; show the keyring at any index",
		Long:  keyringLong,
		Example: `  provlog keyring propose --keyring keyring-v2.json --sign-key root1.key --out change.json
  provlog keyring approve change.json --sign-key root2.key
  provlog keyring submit change.json
  provlog keyring show --at 5`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newKeyringProposeCmd(g), newKeyringApproveCmd(g), newKeyringSubmitCmd(g), newKeyringShowCmd(g))
	return cmd
}

func newKeyringProposeCmd(g *globals) *cobra.Command {
	var (
		e    emitFlags
		file string
	)
	cmd := &cobra.Command{
		Use:   "propose --keyring FILE --sign-key KEY [--out FILE]",
		Short: "Make a keyring change from a keyring file, signed by admin keys",
		Long: `Make the keyring event that replaces the keyring in force with the one in
--keyring (provlogd's --keyring format: publicKeyFile relative to the
file, or publicKey inline), signed by each --sign-key. The file is
checked as the log will check the event (roles, admins, environments).
Admins who did not sign yet add their signatures with "provlog keyring
approve"; "provlog keyring submit" logs it. The change takes effect from
the entry after its own.

The subcommands revoke, quarantine and unquarantine make the other trust
events.

Exit codes: 0 done; 2 bad flags or keyring file; 3 with --submit, the log
refused the change or could not be reached.`,
		Example: `  provlog keyring propose --keyring keyring-v2.json --sign-key root1.key --out change.json`,
		Args:    cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return usageErr("--keyring is required")
			}
			raw, err := g.readInput(file)
			if err != nil {
				return err
			}
			kr, err := log.ParseKeyring(raw, filepath.Dir(file))
			if err != nil {
				return usageErr("--keyring %s: %w", file, err)
			}
			st, err := event.NewKeyringStatement(kr.Predicate())
			if err != nil {
				return usageErr("--keyring %s: %w", file, err)
			}
			return signTrustEvent(cmd, g, &e, st)
		}),
	}
	e.register(cmd)
	cmd.Flags().StringVar(&file, "keyring", "", "the new keyring `file`, as provlogd's --keyring (required)")
	cmd.AddCommand(newProposeRevokeCmd(g), newProposeQuarantineCmd(g, event.ActionQuarantine), newProposeQuarantineCmd(g, event.ActionUnquarantine))
	return cmd
}

// signTrustEvent signs a trust event's statement with --sign-key and
// emits it.
func signTrustEvent(cmd *cobra.Command, g *globals, e *emitFlags, statement []byte) error {
	keys, err := loadSigningKeys(e.signKeys)
	if err != nil {
		return err
	}
	env, err := event.SignEnvelope(cmd.Context(), statement, keys...)
	if err != nil {
		return err
	}
	return e.emit(cmd, g, env)
}

func newProposeRevokeCmd(g *globals) *cobra.Command {
	var (
		e                emitFlags
		keyID, keyFile   string
		compromisedSince int64
		reason           string
	)
	cmd := &cobra.Command{
		Use:   "revoke --key-id ID|--key-file PUB --compromised-since INDEX --reason TEXT --sign-key KEY",
		Short: "Make a key's revocation, signed by admin keys",
		Long: `Make the revoke event of a key, named by its key id (provlog keygen prints
it) or its public key file, signed by each --sign-key (the admins of the
keyring in force). From the revocation's own index the log refuses the
key; every entry it signed at or after --compromised-since (an index at
or before the revocation's) stays in the log but no longer counts: not
for lineage, approvals, reproducibility or the gate.

Exit codes: 0 done; 2 bad flags; 3 with --submit, the log refused it or
could not be reached.`,
		Example: `  provlog keyring propose revoke --key-file ci.pub --compromised-since 3 --reason "CI token leaked" \
      --sign-key root1.key --out revoke.json`,
		Args: cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, _ []string) error {
			id, err := keyIDFlag(keyID, keyFile)
			if err != nil {
				return err
			}
			if compromisedSince < 0 {
				return usageErr("--compromised-since is required: the index of the first entry the key's signatures are void on")
			}
			if reason == "" {
				return usageErr("--reason is required")
			}
			st, err := event.NewRevokeStatement(&event.RevokePredicate{KeyID: id, CompromisedSince: uint64(compromisedSince), Reason: reason})
			if err != nil {
				return usageErr("%w", err)
			}
			return signTrustEvent(cmd, g, &e, st)
		}),
	}
	e.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&keyID, "key-id", "", "the revoked key's `id` (64 hex digits)")
	fl.StringVar(&keyFile, "key-file", "", "the revoked key's PEM public key `file` (instead of --key-id)")
	fl.Int64Var(&compromisedSince, "compromised-since", -1, "log `index` from which the key's signatures are void (required)")
	fl.StringVar(&reason, "reason", "", "why the key is revoked (required)")
	return cmd
}

// keyIDFlag returns the key id --key-id or --key-file name.
func keyIDFlag(id, file string) (string, error) {
	switch {
	case (id == "") == (file == ""):
		return "", usageErr("name the key with --key-id ID or --key-file PUB (one of them)")
	case file != "":
		_, kid, err := event.LoadKeyRef("", file, "")
		if err != nil {
			return "", usageErr("--key-file: %w", err)
		}
		return kid, nil
	}
	if len(id) != 64 || strings.Trim(id, "0123456789abcdef") != "" {
		return "", usageErr("--key-id %q: want a key id, 64 lowercase hex digits (provlog keygen prints it)", id)
	}
	return id, nil
}

func newProposeQuarantineCmd(g *globals, action string) *cobra.Command {
	var (
		e      emitFlags
		s      subjectFlags
		reason string
		qIndex int64
	)
	signers := "a key with the security role"
	long := `Make the quarantine event of an artifact, signed by each --sign-key (keys
with the security role). From the entry after it the log refuses to
promote the artifact, and the gate denies it in every environment, naming
the quarantine entry, until an unquarantine lifts it.`
	example := `  provlog keyring propose quarantine --artifact app.tar.gz --reason "CVE-2026-0001" --sign-key sec.key --submit`
	if action == event.ActionUnquarantine {
		signers = "the admins' threshold"
		long = `Make the unquarantine event lifting an artifact's quarantine, signed by
each --sign-key (the admins of the keyring in force). With
--quarantine-index it lifts that quarantine entry only, else every
quarantine of the artifact in force.`
		example = `  provlog keyring propose unquarantine --artifact app.tar.gz --reason "rebuilt with the fix" \
      --sign-key root1.key --out lift.json`
	}
	cmd := &cobra.Command{
		Use:     action + " --artifact FILE|--digest D --reason TEXT --sign-key KEY",
		Short:   fmt.Sprintf("Make an artifact's %s event, signed by %s", action, signers),
		Long:    long + "\n\nExit codes: 0 done; 2 bad flags; 3 with --submit, the log refused it or\ncould not be reached.",
		Example: example,
		Args:    cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, _ []string) error {
			d, name, err := s.resolve()
			if err != nil {
				return err
			}
			if reason == "" {
				return usageErr("--reason is required")
			}
			p := &event.QuarantinePredicate{Action: action, Reason: reason}
			if qIndex >= 0 {
				qi := uint64(qIndex)
				p.QuarantineIndex = &qi
			}
			st, err := event.NewQuarantineStatement([]event.Subject{{Name: name, Digest: d}}, p)
			if err != nil {
				return usageErr("%w", err)
			}
			return signTrustEvent(cmd, g, &e, st)
		}),
	}
	e.register(cmd)
	s.register(cmd, true)
	cmd.Flags().StringVar(&reason, "reason", "", "why (required)")
	if action == event.ActionUnquarantine {
		cmd.Flags().Int64Var(&qIndex, "quarantine-index", -1, "log `index` of the quarantine entry to lift (default: every quarantine of the artifact in force)")
	} else {
		qIndex = -1
	}
	return cmd
}

// readTrustEvent reads a trust event's envelope file.
func readTrustEvent(g *globals, file string) ([]byte, *event.Event, error) {
	raw, err := g.readInput(file)
	if err != nil {
		return nil, nil, err
	}
	env, err := event.ParseEntry(raw)
	if err != nil {
		return nil, nil, usageErr("%s: %w", file, err)
	}
	ev, err := event.ParseStatement(env.Payload)
	if err != nil {
		return nil, nil, usageErr("%s: %w", file, err)
	}
	if !policy.IsTrustEvent(ev.Type) {
		return nil, nil, usageErr("%s is a %s event, not a keyring, revoke, quarantine or unquarantine event", file, ev.Type)
	}
	return env.Canonical(), ev, nil
}

func newKeyringApproveCmd(g *globals) *cobra.Command {
	var (
		keys []string
		out  string
	)
	cmd := &cobra.Command{
		Use:   "approve FILE --sign-key KEY [--out FILE]",
		Short: "Add signatures to a proposed trust event",
		Long: `Add a signature by each --sign-key to the trust event in FILE (a keyring
change, revocation, quarantine or unquarantine that "provlog keyring
propose" made) and write it back to FILE, or to --out ("-": stdout). A key
that already signed is not added twice. It prints what the event does and
how many signatures it has.

Exit codes: 0 done; 2 bad flags or input file.`,
		Example: `  provlog keyring approve change.json --sign-key root2.key`,
		Args:    cobra.ExactArgs(1),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			raw, ev, err := readTrustEvent(g, args[0])
			if err != nil {
				return err
			}
			sks, err := loadSigningKeys(keys)
			if err != nil {
				return err
			}
			signed, err := event.AddSignatures(cmd.Context(), raw, sks...)
			if err != nil {
				return err
			}
			if out == "" {
				out = args[0]
			}
			if err := g.writeOutput(out, append(signed, '\n'), 0o644); err != nil {
				return err
			}
			if out == "-" {
				return nil
			}
			env, err := event.ParseEnvelope(signed)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "%s: %s, %d signature(s)\n", out, describeTrustEvent(ev, nil), len(env.Signatures))
			return nil
		}),
	}
	cmd.Flags().StringArrayVar(&keys, "sign-key", nil, "PEM private key `file` to sign with (repeatable; at least one)")
	cmd.Flags().StringVar(&out, "out", "", "write the signed event to `file` (default: FILE itself; - for stdout)")
	return cmd
}

func newKeyringSubmitCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "submit FILE",
		Short: "Submit a trust event, alone, and print its index",
		Long: `Submit the trust event in FILE to the log, alone (the log sequences trust
events one per batch, and checks each at its exact index), and print its
index once it is durable. The log refuses, with the reason, an event its
rules do not allow at that index; nothing is written then.

Exit codes: 0 logged; 2 bad input file; 3 the log refused it (the reason
printed) or could not be reached.`,
		Example: `  provlog keyring submit change.json`,
		Args:    cobra.ExactArgs(1),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			raw, _, err := readTrustEvent(g, args[0])
			if err != nil {
				return err
			}
			ctx, c, done, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			res, err := c.Append(ctx, raw)
			if err != nil {
				return fmt.Errorf("submitting %s: %w", args[0], err)
			}
			if g.json {
				return g.printJSON(submitResult{File: args[0], Index: res.Index, Duplicate: res.Duplicate})
			}
			fmt.Fprintln(g.stdout, res.Index)
			return nil
		}),
	}
	return cmd
}

const keyringShowLong = `Print the keyring in force at --at INDEX (default: now, the log's
size): the keyring an entry at INDEX is checked against, that of the last
keyring event before it. Its keys with their ids, roles, validity windows
and revocations in force at INDEX; its environments; its admins and
threshold; the quarantines holding; and the history up to INDEX: which
entry brought each keyring version (signed by the log key or by which
admins), each revocation, quarantine and unquarantine.

The history is replayed here from the log's entries, never taken from the
server's word: by default from the log's trust events (its search), each
proven included in a verified checkpoint, so that no event shown is
forged but completeness is the server's word; with --replay from every
entry of the log (over --tiles if given, else --log), each verified
against the checkpoint, as provlog audit does. A trust event the log
should have refused is shown as such (it changed nothing).

Exit codes: 0 shown; 1 the log's trust history breaks its rules (the
entries named); 2 bad flags; 3 the log unreachable or not verifying.`

func newKeyringShowCmd(g *globals) *cobra.Command {
	var (
		at     int64
		replay bool
	)
	cmd := &cobra.Command{
		Use:   "show [--at INDEX] [--replay] [--json]",
		Short: "Print the keyring in force at an index, and the trust history",
		Long:  keyringShowLong,
		Example: `  provlog keyring show
  provlog keyring show --at 5 --json
  provlog keyring show --replay --tiles https://log.example.com/`,
		Args: cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, _ []string) error {
			vkey, err := g.verifierKey()
			if err != nil {
				return err
			}
			ctx, c, done, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			var tr *client.Trust
			source := "the log's search of trust events, each proven included (completeness: the log's word; --replay to check it)"
			if replay {
				cfg := client.ReplayConfig{VerifierKey: vkey, OnVerdict: func(policy.Verdict) error { return nil }}
				if tiles, asked := g.tilesURL(); asked {
					cfg.TilesURL = tiles
				} else {
					cfg.Client = c
				}
				tr, err = client.Replay(ctx, cfg)
				source = "a replay of every entry, each verified"
			} else {
				tr, err = client.TrustHistory(ctx, c, client.TrustHistoryOptions{})
			}
			if err != nil {
				return err
			}
			index := tr.Checkpoint.Size
			if cmd.Flags().Changed("at") {
				if at < 0 || uint64(at) > index {
					return usageErr("--at %d: want an index from 0 to the log's size %d", at, index)
				}
				index = uint64(at)
			}
			if tr.History.Empty() {
				return fmt.Errorf("the log (size %d) has no keyring event: it does not admit by a keyring", tr.Checkpoint.Size)
			}
			s := newKeyringShow(tr, index, source)
			var perr error
			if g.json {
				perr = g.printJSON(s)
			} else {
				perr = s.print(g)
			}
			if perr != nil {
				return perr
			}
			return trustViolations(tr)
		}),
	}
	cmd.Flags().Int64Var(&at, "at", -1, "log `index` whose keyring to show (default: the log's size, now)")
	cmd.Flags().BoolVar(&replay, "replay", false, "replay and verify every entry of the log instead of its search of trust events")
	return cmd
}

// trustViolations is the negative finding of trust events the log should
// have refused, or nil.
func trustViolations(tr *client.Trust) error {
	if len(tr.Violations) == 0 {
		return nil
	}
	v := tr.Violations[0]
	return negative(fmt.Errorf("%d entries should not have been admitted, the first entry %d (%s): %w", len(tr.Violations), v.Index, orNone(v.Type), v.Err))
}

func orNone(t string) string {
	if t == "" {
		return "not an event"
	}
	return t
}

// keyringShow is what keyring show prints (its --json form).
type keyringShow struct {
	At          uint64           `json:"at"`
	Size        uint64           `json:"size"`
	Source      string           `json:"source"`
	Keyring     keyringJSON      `json:"keyring"`
	Quarantines []quarantineJSON `json:"quarantines"`
	History     []trustEventJSON `json:"history"`
}

type keyringJSON struct {
	// Index is the keyring event that brought it.
	Index        uint64                     `json:"index"`
	ByLog        bool                       `json:"byLogKey"`
	Signers      []string                   `json:"signers,omitempty"`
	Keys         []keyJSON                  `json:"keys"`
	Environments []event.KeyringEnvironment `json:"environments"`
	Admins       []string                   `json:"admins"`
	Threshold    int                        `json:"threshold"`
}

type keyJSON struct {
	Name      string          `json:"name"`
	KeyID     string          `json:"keyId"`
	Roles     []string        `json:"roles"`
	NotBefore *uint64         `json:"notBefore,omitempty"`
	NotAfter  *uint64         `json:"notAfter,omitempty"`
	Admin     bool            `json:"admin,omitempty"`
	Revoked   *revocationJSON `json:"revoked,omitempty"`
}

type revocationJSON struct {
	Index            uint64 `json:"index"`
	CompromisedSince uint64 `json:"compromisedSince"`
	Reason           string `json:"reason"`
}

type quarantineJSON struct {
	Index  uint64 `json:"index"`
	Digest string `json:"digest"`
	Reason string `json:"reason"`
}

type trustEventJSON struct {
	Index   uint64   `json:"index"`
	Type    string   `json:"type"`
	Summary string   `json:"summary"`
	Signers []string `json:"signers,omitempty"`
	ByLog   bool     `json:"byLogKey,omitempty"`
	// Refused says why the log should have refused it (it changed
	// nothing).
	Refused string `json:"refused,omitempty"`
}

// newKeyringShow describes the trust history tr at index.
func newKeyringShow(tr *client.Trust, index uint64, source string) *keyringShow {
	h := tr.History
	s := &keyringShow{At: index, Size: tr.Checkpoint.Size, Source: source, Quarantines: []quarantineJSON{}, History: []trustEventJSON{}}
	kr := h.KeyringAt(index)
	for _, v := range h.Versions() {
		if v.Keyring == kr {
			s.Keyring.Index, s.Keyring.ByLog = v.Index, v.ByLog
		}
	}
	for _, e := range tr.Events {
		if e.Index >= index {
			break
		}
		te := trustEventJSON{Index: e.Index, Type: e.Event.Type, Summary: describeTrustEvent(e.Event, h), Signers: keyNames(e.Verdict.Signers)}
		slices.Sort(te.Signers)
		te.ByLog = e.Verdict.Err == nil && !e.Verdict.BeforeHistory && len(e.Verdict.Signers) == 0
		switch {
		case e.Verdict.Err != nil:
			te.Refused = e.Verdict.Err.Error()
		case e.Verdict.BeforeHistory:
			te.Refused = "logged before the first keyring event: it changes nothing"
		}
		if e.Index == s.Keyring.Index {
			s.Keyring.Signers = te.Signers
		}
		s.History = append(s.History, te)
	}
	admins, threshold := kr.Admins()
	s.Keyring.Admins, s.Keyring.Threshold = keyNames(admins), threshold
	if s.Keyring.Admins == nil {
		s.Keyring.Admins = []string{}
	}
	s.Keyring.Environments = kr.Predicate().Environments
	if s.Keyring.Environments == nil {
		s.Keyring.Environments = []event.KeyringEnvironment{}
	}
	for _, k := range kr.Keys() {
		kj := keyJSON{Name: k.Name, KeyID: k.ID, Roles: append([]string{}, k.Roles...), NotBefore: k.NotBefore, NotAfter: k.NotAfter, Admin: k.Admin}
		if r, ok := h.Revocation(k.ID); ok && r.Index < index {
			kj.Revoked = &revocationJSON{Index: r.Index, CompromisedSince: r.CompromisedSince, Reason: r.Reason}
		}
		s.Keyring.Keys = append(s.Keyring.Keys, kj)
	}
	for _, q := range tr.Quarantines(index) {
		s.Quarantines = append(s.Quarantines, quarantineJSON{Index: q.Index, Digest: q.Digest, Reason: q.Reason})
	}
	return s
}

func keyNames(keys []*policy.Key) []string {
	var out []string
	for _, k := range keys {
		out = append(out, k.Name)
	}
	return out
}

// keyName names a key id by the name a keyring of the history gives it.
func keyName(h *policy.History, id string) string {
	if h != nil {
		for _, v := range h.Versions() {
			if k, ok := v.Keyring.KeyByID(id); ok {
				return k.Name + " (" + id[:12] + "…)"
			}
		}
	}
	return id
}

// describeTrustEvent says in a line what a trust event does.
func describeTrustEvent(ev *event.Event, h *policy.History) string {
	var subjects []string
	for _, d := range ev.Subjects {
		subjects = append(subjects, d.String())
	}
	switch ev.Type {
	case event.TypeKeyring:
		p := ev.Keyring
		admins := "no admins (the log key manages it)"
		if len(p.Admins.Keys) > 0 {
			admins = fmt.Sprintf("admins %s, threshold %d", strings.Join(p.Admins.Keys, ", "), p.Admins.Threshold)
		}
		var names []string
		for _, k := range p.Keys {
			names = append(names, k.Name)
		}
		return fmt.Sprintf("keyring of %d keys (%s), %s", len(p.Keys), strings.Join(names, ", "), admins)
	case event.TypeRevoke:
		return fmt.Sprintf("revoke %s, void since entry %d: %s", keyName(h, ev.Revoke.KeyID), ev.Revoke.CompromisedSince, ev.Revoke.Reason)
	case event.TypeQuarantine:
		return fmt.Sprintf("quarantine %s: %s", strings.Join(subjects, ", "), ev.Quarantine.Reason)
	case event.TypeUnquarantine:
		lifts := ""
		if qi := ev.Quarantine.QuarantineIndex; qi != nil {
			lifts = fmt.Sprintf(" (lifts entry %d)", *qi)
		}
		return fmt.Sprintf("unquarantine %s%s: %s", strings.Join(subjects, ", "), lifts, ev.Quarantine.Reason)
	}
	return ev.Type
}

// print prints the keyring show as text.
func (s *keyringShow) print(g *globals) error {
	w := g.stdout
	by := "signed by the log key"
	if !s.Keyring.ByLog {
		by = "signed by " + strings.Join(s.Keyring.Signers, ", ")
	}
	fmt.Fprintf(w, "keyring in force at entry %d (log size %d): brought by entry %d, %s\n", s.At, s.Size, s.Keyring.Index, by)
	fmt.Fprintln(w, "keys:")
	for _, k := range s.Keyring.Keys {
		roles := strings.Join(k.Roles, ",")
		if roles == "" {
			roles = "-"
		}
		if k.Admin {
			roles += " (admin)"
		}
		line := fmt.Sprintf("  %-10s %s  %s  %s", k.Name, k.KeyID, roles, window(k.NotBefore, k.NotAfter))
		if r := k.Revoked; r != nil {
			line += fmt.Sprintf("  REVOKED by entry %d, void since entry %d: %s", r.Index, r.CompromisedSince, r.Reason)
		}
		fmt.Fprintln(w, line)
	}
	fmt.Fprintln(w, "environments:")
	for _, e := range s.Keyring.Environments {
		line := "  " + e.Name
		if e.From != "" {
			line += " from " + e.From
		}
		if e.Approvals > 0 {
			line += fmt.Sprintf(", %d approvals", e.Approvals)
		}
		if e.Reproducible > 0 {
			line += fmt.Sprintf(", %d independent builds", e.Reproducible)
		}
		fmt.Fprintln(w, line)
	}
	if len(s.Keyring.Admins) == 0 {
		fmt.Fprintln(w, "admins: none (the log key manages the keyring)")
	} else {
		fmt.Fprintf(w, "admins: %s (threshold %d)\n", strings.Join(s.Keyring.Admins, ", "), s.Keyring.Threshold)
	}
	if len(s.Quarantines) > 0 {
		fmt.Fprintln(w, "quarantined:")
		for _, q := range s.Quarantines {
			fmt.Fprintf(w, "  %s by entry %d: %s\n", q.Digest, q.Index, q.Reason)
		}
	}
	fmt.Fprintf(w, "history (from %s):\n", s.Source)
	for _, e := range s.History {
		signed := "by the log key"
		if !e.ByLog {
			signed = "by " + strings.Join(e.Signers, ", ")
		}
		if e.Refused != "" {
			signed = "SHOULD HAVE BEEN REFUSED: " + e.Refused
		}
		_, err := fmt.Fprintf(w, "  entry %d  %s, %s\n", e.Index, e.Summary, signed)
		if err != nil {
			return err
		}
	}
	return nil
}

// window describes a key's validity window.
func window(from, to *uint64) string {
	if from == nil && to == nil {
		return "valid for every entry"
	}
	k := policy.Key{NotBefore: from, NotAfter: to}
	return "valid " + k.Window()
}
