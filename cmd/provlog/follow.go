package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/term"

	"github.com/provlog/provlog/client"
	"github.com/provlog/provlog/internal/atomicfile"
	"github.com/provlog/provlog/policy"
)

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// auditJSON is audit's JSON output.
type auditJSON struct {
	Origin          string  `json:"origin"`
	Size            uint64  `json:"size"`
	RootHash        string  `json:"rootHash"`
	Entries         uint64  `json:"entries"`
	Bundles         int     `json:"bundles"`
	Tiles           int     `json:"tiles"`
	Bytes           int64   `json:"bytes"`
	DurationSeconds float64 `json:"durationSeconds"`
	PreviousSize    *uint64 `json:"previousSize,omitempty"`
	StateFile       string  `json:"stateFile,omitempty"`
	// Trust is what the replay of the trust history found.
	Trust auditTrustJSON `json:"trust"`
}

// auditTrustJSON is the trust replay of an audit (client.Replay).
type auditTrustJSON struct {
	// Keyring is false for a log without keyring events (open admission):
	// nothing to replay.
	Keyring         bool   `json:"keyring"`
	KeyringVersions int    `json:"keyringVersions"`
	Revocations     int    `json:"revocations"`
	Quarantines     int    `json:"quarantinesInForce"`
	BeforeHistory   uint64 `json:"beforeHistory"`
	// Violations are the entries the log should not have admitted.
	Violations []auditViolationJSON `json:"violations"`
}

type auditViolationJSON struct {
	Index  uint64 `json:"index"`
	Type   string `json:"type"`
	Reason string `json:"reason"`
}

// auditTrust replays the trust history of the audited tree and
// summarizes it.
func auditTrust(tr *client.Trust) auditTrustJSON {
	at := auditTrustJSON{Keyring: !tr.History.Empty(), KeyringVersions: len(tr.History.Versions()),
		Revocations: len(tr.History.Revocations()), Quarantines: len(tr.Quarantines(tr.Checkpoint.Size)),
		BeforeHistory: tr.BeforeHistory, Violations: []auditViolationJSON{}}
	for _, v := range tr.Violations {
		at.Violations = append(at.Violations, auditViolationJSON{Index: v.Index, Type: orNone(v.Type), Reason: v.Err.Error()})
	}
	return at
}

// summary is the trust replay's line of audit's output.
func (at auditTrustJSON) summary(entries uint64) string {
	if !at.Keyring {
		return fmt.Sprintf("trust: no keyring event in the %d entries (a log with open admission): no trust history to replay", entries)
	}
	verdict := "every entry admitted by the rules in force at its index"
	if n := len(at.Violations); n > 0 {
		verdict = fmt.Sprintf("%d entries should not have been admitted", n)
	}
	return fmt.Sprintf("trust: replayed %d entries: %d keyring versions, %d revocations, %d quarantines in force; %s", entries, at.KeyringVersions, at.Revocations, at.Quarantines, verdict)
}

// progress reports an audit's progress on w: a bar with rate and ETA on a
// terminal, else a plain line every interval and at the end.
type progress struct {
	w        io.Writer
	tty      bool
	interval time.Duration

	bar   *progressbar.ProgressBar
	start time.Time // when the audit started
	last  time.Time // when the last plain line was printed
}

func (p *progress) update(done, total uint64) {
	now := time.Now()
	if p.tty {
		if p.bar == nil {
			p.bar = progressbar.NewOptions64(int64(total),
				progressbar.OptionSetWriter(p.w),
				progressbar.OptionSetDescription("auditing"),
				progressbar.OptionShowCount(),
				progressbar.OptionShowIts(),
				progressbar.OptionSetItsString("entries"),
				progressbar.OptionSetPredictTime(true),
				progressbar.OptionSetElapsedTime(true),
				progressbar.OptionThrottle(100*time.Millisecond),
				progressbar.OptionFullWidth(),
				progressbar.OptionOnCompletion(func() { fmt.Fprintln(p.w) }),
			)
		}
		p.bar.Set64(int64(done))
		return
	}
	if done < total && now.Sub(p.last) < p.interval {
		return
	}
	p.last = now
	el := now.Sub(p.start).Seconds()
	rate := 0.0
	if el > 0 {
		rate = float64(done) / el
	}
	eta := "-"
	if rate > 0 && done < total {
		eta = (time.Duration(float64(total-done)/rate) * time.Second).Round(time.Second).String()
	}
	pct := 100.0
	if total > 0 {
		pct = 100 * float64(done) / float64(total)
	}
	fmt.Fprintf(p.w, "audit: %d/%d entries (%.1f%%), %.0f entries/s, ETA %s\n", done, total, pct, rate, eta)
}

func newAuditCmd(g *globals) *cobra.Command {
	var (
		state       string
		concurrency int
		interval    time.Duration
	)
	cmd := &cobra.Command{
		Use:   "audit [--tiles URL] [--state FILE]",
		Short: "Replay a whole log from its tiles and check every hash",
		Long: `Replay the whole log served under --tiles (any C2SP tlog-tiles log): verify
its checkpoint with the log's key, fetch every entry bundle, recompute every
leaf hash, every hash tile of every level and the root, and compare them
with what the log serves and signed. Then it replays the log's trust
history from the audited entries alone (client.Replay, the rules of
docs/trust.md: the genesis keyring signed by the log key, each entry
checked against the keyring in force at its index, revocations,
quarantines, lineage) and reports every entry the log should not have
admitted, with its index and reason: there must be none. A summary line
gives the keyring versions, revocations and quarantines in force.

With --state, the checkpoint audited last is kept in FILE: the next audit
also checks that the log's tree extends it (no rewritten history), and then
replaces it. A missing FILE is created.

Progress goes to stderr: a bar with rate and ETA on a terminal, a plain
line every --progress-interval otherwise. A summary follows on stdout.

Exit codes: 0 the log checks out; 1 a mismatch (the tile or bundle is
named), an inconsistency with --state, or an entry that should not have
been admitted (each named on stdout); 2 bad flags or state file; 3 the
log unreachable.`,
		Example: `  provlog audit --tiles https://log.example.com/ --log-key @log.pub --state audit.state
  provlog audit --json > audit.json`,
		Args: cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, _ []string) error {
			vkey, err := g.verifierKey()
			if err != nil {
				return err
			}
			tiles, _ := g.tilesURL()
			opts := client.AuditOptions{Concurrency: concurrency}
			var prevSize *uint64
			if state != "" {
				raw, err := os.ReadFile(state)
				switch {
				case errors.Is(err, fs.ErrNotExist):
				case err != nil:
					return usageErr("state: %w", err)
				default:
					v, err := note.NewVerifier(vkey)
					if err != nil {
						return usageErr("log key: %w", err)
					}
					prev, err := client.OpenCheckpoint(raw, v, "")
					if err != nil {
						return usageErr("state file %s: %w", state, err)
					}
					opts.Previous, prevSize = raw, &prev.Size
				}
			}
			now := time.Now()
			p := &progress{w: g.stderr, tty: isTerminal(g.stderr), interval: interval, start: now, last: now}
			opts.Progress = p.update
			ctx, cancel := g.context(cmd)
			defer cancel()
			sum, err := client.Audit(ctx, tiles, vkey, opts)
			if p.bar != nil && err != nil {
				fmt.Fprintln(g.stderr)
			}
			if err != nil {
				var ae *client.AuditError
				var ie *client.InconsistencyError
				if errors.As(err, &ae) || errors.As(err, &ie) {
					return negative(err)
				}
				if errors.Is(err, client.ErrLogSignature) || errors.Is(err, client.ErrFormat) {
					return negative(err)
				}
				return err
			}
			if state != "" {
				if err := atomicfile.WriteFile(state, sum.Checkpoint.Raw, 0o644); err != nil {
					return fmt.Errorf("writing state: %w", err)
				}
			}
			cp := sum.Checkpoint
			tr, err := client.Replay(ctx, client.ReplayConfig{VerifierKey: vkey, TilesURL: tiles, Checkpoint: cp.Raw,
				OnVerdict: func(policy.Verdict) error { return nil }})
			if err != nil {
				if errors.Is(err, client.ErrInclusionProof) || errors.Is(err, client.ErrFormat) {
					return negative(fmt.Errorf("trust replay: %w", err))
				}
				return fmt.Errorf("trust replay: %w", err)
			}
			res := auditJSON{Origin: cp.Origin, Size: cp.Size, RootHash: base64.StdEncoding.EncodeToString(cp.Hash),
				Entries: sum.Entries, Bundles: sum.Bundles, Tiles: sum.Tiles, Bytes: sum.Bytes,
				DurationSeconds: sum.Duration.Seconds(), PreviousSize: prevSize, StateFile: state, Trust: auditTrust(tr)}
			if g.json {
				if err := g.printJSON(res); err != nil {
					return err
				}
				return trustViolations(tr)
			}
			if len(res.Trust.Violations) > 0 {
				fmt.Fprintf(g.stdout, "audit FAILED: %s, tree size %d: the hashes match, but entries were admitted that the log's rules refuse\n", cp.Origin, cp.Size)
				for _, v := range res.Trust.Violations {
					fmt.Fprintf(g.stdout, "  entry %d (%s) should not have been admitted: %s\n", v.Index, v.Type, oneLine(v.Reason))
				}
				fmt.Fprintf(g.stdout, "  %s\n", res.Trust.summary(sum.Entries))
				return trustViolations(tr)
			}
			rate := 0.0
			if s := sum.Duration.Seconds(); s > 0 {
				rate = float64(sum.Entries) / s
			}
			fmt.Fprintf(g.stdout, "audit OK: %s, tree size %d, root %s\n", cp.Origin, cp.Size, res.RootHash)
			fmt.Fprintf(g.stdout, "  %d entries in %d bundles and %d hash tiles recomputed and matched (%.1f MiB in %s, %.0f entries/s)\n",
				sum.Entries, sum.Bundles, sum.Tiles, float64(sum.Bytes)/(1<<20), sum.Duration.Round(time.Millisecond), rate)
			if res.PreviousSize != nil {
				fmt.Fprintf(g.stdout, "  extends the previously audited checkpoint of size %d\n", *res.PreviousSize)
			}
			fmt.Fprintf(g.stdout, "  %s\n", res.Trust.summary(sum.Entries))
			return nil
		}),
	}
	fl := cmd.Flags()
	fl.StringVar(&state, "state", "", "`file` keeping the last audited checkpoint")
	fl.IntVar(&concurrency, "concurrency", 8, "entry bundles fetched ahead")
	fl.DurationVar(&interval, "progress-interval", 5*time.Second, "time between plain progress lines when stderr is not a terminal")
	return cmd
}

const monitorLong = `Follow a log: every --interval, fetch its checkpoint, verify it with the
log's key and prove it consistent with the last verified one, kept in
--state (trusted on first use if the file does not exist). Each newer
verified checkpoint is printed and stored.

The log is read over its tlog-tiles HTTP API if --tiles (or PROVLOG_TILES)
is given (any tlog-tiles log), else over gRPC (--log).

With --watch FILE, monitor also reads every entry each newer checkpoint
adds, verifies it against that checkpoint (an entry that does not hash
into the signed tree is an error, never an alert), and alerts on every
event that names a watched digest, builder, source repository or signer
key. The watch file is JSON (unknown fields are refused):

  {
    "digests": ["sha256:<64 hex digits>"],
    "builders": ["https://github.com/actions/runner/github-hosted"],
    "repositories": ["https://github.com/octo/app"],
    "keys": [
      {"name": "ci", "publicKeyFile": "ci.pub"},
      {"name": "release", "publicKey": "-----BEGIN PUBLIC KEY-----\n..."},
      {"name": "old", "keyId": "<key id>"}
    ]
  }

  digests       an event matches if one of its subjects has the digest
                (sha256 or sha512, lowercase hex)
  builders      a build event matches if its SLSA builder id is exactly it
  repositories  a build event matches if its source repository is it, both
                normalized (no "git+", "@ref" or ".git")
  keys          a name (reported in alerts) and exactly one of: a PEM public
                key (Ed25519 or ECDSA P-256), inline or in a file relative
                to the watch file: an envelope matches if a signature
                verifies with it, whatever its key id, or carries its key
                id; or "keyId": a signature carries exactly that key id

At least one rule is required. Entries that are not events never match.

Each alert is a line on stdout:

  2026-05-04T10:00:00Z ALERT entry 42 build event matches repository https://github.com/octo/app, key ci

or with --json one JSON object per line (wrapped here):

  {"alert":true,"time":"...","index":42,"type":"build",
   "matches":[{"rule":"repository","value":"https://github.com/octo/app"},{"rule":"key","value":"ci"}],
   "subjects":["sha256:..."],"entry":{<the DSSE envelope as logged>}}

--exec CMD runs CMD with "sh -c" for each alert, in log order, with that
JSON object (one line) on stdin and PROVLOG_INDEX and PROVLOG_EVENT_TYPE in
its environment; its output goes to stderr. A hook running longer than
--exec-timeout is killed, with its children; a hook that fails or times
out is reported on stderr and monitoring goes on. SIGINT or SIGTERM kills
a running hook, and its alert is delivered again at the next start.

Alerts are delivered at least once: the checkpoint is stored only after
every alert of the entries it adds, so a monitor stopped or crashed
mid-way alerts again on some entries when it starts again, never misses
one. Without a state file, only entries logged from the first poll on
alert, unless --watch-from INDEX says where to start (it is ignored once
the state file exists). A large backlog is read 256 entries at a time.

On a fork or rollback — two checkpoints signed by the log that no
append-only log can have produced — the evidence (both checkpoints and the
proof) is written to a JSON file in --evidence and monitor exits 1, naming
the file. Other failures (the log unreachable, an entry that does not
verify) are reported on stderr and polling goes on; the state does not
move past them. SIGINT or SIGTERM stops it (exit 0). With --json, every
line of stdout (verified checkpoints, alerts, a fork) is one JSON object.

Exit codes: 0 stopped (or --once: verified); 1 a fork, evidence written;
2 bad flags, state or watch file; 3 with --once, the log unreachable or an
entry that does not verify.`

const monitorExample = `  provlog monitor --state monitor.state --evidence evidence/ --tiles https://log.example.com/ --log-key @log.pub
  provlog monitor --state monitor.state --once    # one poll, e.g. from cron

  # Alert the team when anything is logged in its name, from the log's start:
  provlog monitor --state team.state --watch team-watch.json --watch-from 0 \
      --exec 'curl -s -X POST --data-binary @- https://hooks.example.com/provlog'
  provlog monitor --state team.state --watch team-watch.json --json | jq -c 'select(.alert)'`

// defaultExecTimeout bounds one run of an --exec hook.
const defaultExecTimeout = 30 * time.Second

func newMonitorCmd(g *globals) *cobra.Command {
	var (
		state, evidence string
		interval        time.Duration
		once            bool
		watchFile       string
		watchFrom       uint64
		hook            alertHook
	)
	cmd := &cobra.Command{
		Use:     "monitor --state FILE [--evidence DIR] [--tiles URL] [--interval D] [--watch FILE [--watch-from INDEX] [--exec CMD]]",
		Short:   "Follow a log, alert on a fork and on events in watched names",
		Long:    monitorLong,
		Example: monitorExample,
		Args:    cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, _ []string) error {
			fl := cmd.Flags()
			if state == "" {
				return usageErr("--state is required")
			}
			for _, f := range []string{"watch-from", "exec", "exec-timeout"} {
				if fl.Changed(f) && watchFile == "" {
					return usageErr("--%s goes with --watch", f)
				}
			}
			if hook.timeout <= 0 {
				return usageErr("--exec-timeout %v: want > 0", hook.timeout)
			}
			vkey, err := g.verifierKey()
			if err != nil {
				return err
			}
			if evidence != "" {
				if err := os.MkdirAll(evidence, 0o755); err != nil {
					return err
				}
			}
			cfg := client.MonitorConfig{VerifierKey: vkey, StateFile: state, EvidenceDir: evidence, Interval: interval}
			if watchFile != "" {
				if cfg.Watch, err = client.LoadWatch(watchFile); err != nil {
					return usageErr("%w", err)
				}
				if fl.Changed("watch-from") {
					cfg.WatchFrom = &watchFrom
				}
				hook.stderr = g.stderr
				cfg.OnAlert = func(_ context.Context, a client.Alert) error {
					// Hooks run on the command's context, not the poll's:
					// --timeout bounds the log's answers, --exec-timeout
					// each hook.
					return reportAlert(cmd.Context(), g, hook, a)
				}
			}
			if u, asked := g.tilesURL(); asked {
				cfg.TilesURL = u
			} else {
				c, err := g.dial(cmd.Context())
				if err != nil {
					return err
				}
				defer c.Close()
				cfg.Client = c
			}
			m, err := client.NewMonitor(cfg)
			if err != nil {
				return asUsage(err)
			}
			if cp := m.Latest(); cp != nil && cfg.WatchFrom != nil && watchFrom != cp.Size {
				fmt.Fprintf(g.stderr, "provlog: monitor: --watch-from %d ignored: the state file goes on from entry %d\n", watchFrom, cp.Size)
			}
			return monitor(cmd.Context(), g, m, interval, once)
		}),
	}
	fl := cmd.Flags()
	fl.StringVar(&state, "state", "", "`file` keeping the last verified checkpoint (required)")
	fl.StringVar(&evidence, "evidence", "", "`directory` for fork evidence (default: the state file's)")
	fl.DurationVar(&interval, "interval", 10*time.Second, "time between polls")
	fl.BoolVar(&once, "once", false, "poll once and exit")
	fl.StringVar(&watchFile, "watch", "", "JSON `file` of digests, builders, repositories and keys to alert on")
	fl.Uint64Var(&watchFrom, "watch-from", 0, "with --watch and no state file yet, the `index` of the first entry to alert on (default: the log's size at the first poll)")
	fl.StringVar(&hook.command, "exec", "", "`command` run with sh -c for each alert, the alert's JSON on stdin")
	fl.DurationVar(&hook.timeout, "exec-timeout", defaultExecTimeout, "longest an --exec command may run before it is killed")
	return cmd
}

// monitor polls m until ctx ends or a fork is found.
func monitor(ctx context.Context, g *globals, m *client.Monitor, interval time.Duration, once bool) error {
	var lastSize uint64
	printed := false
	if cp := m.Latest(); cp != nil {
		lastSize, printed = cp.Size, true
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		pctx, cancel := ctx, context.CancelFunc(func() {})
		if g.timeout > 0 {
			pctx, cancel = context.WithTimeout(ctx, g.timeout)
		}
		cp, err := m.Poll(pctx)
		cancel()
		var ie *client.InconsistencyError
		switch {
		case errors.As(err, &ie):
			if g.json {
				printJSONLine(g, map[string]any{"fork": true, "reason": ie.Reason.Error(), "evidenceFile": ie.EvidenceFile})
			}
			return negative(fmt.Errorf("fork detected: %w", err))
		case ctx.Err() != nil:
			return nil
		case err != nil && once:
			return err
		case err != nil:
			fmt.Fprintf(g.stderr, "provlog: monitor: %s\n", oneLine(err.Error()))
		case !printed || cp.Size != lastSize || once:
			lastSize, printed = cp.Size, true
			if g.json {
				printJSONLine(g, map[string]any{"origin": cp.Origin, "size": cp.Size, "rootHash": base64.StdEncoding.EncodeToString(cp.Hash), "time": time.Now().UTC()})
			} else {
				fmt.Fprintf(g.stdout, "%s verified %s size %d root %s\n", time.Now().UTC().Format(time.RFC3339), cp.Origin, cp.Size, base64.StdEncoding.EncodeToString(cp.Hash))
			}
		}
		if once {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// printJSONLine prints v as one line of JSON on stdout.
func printJSONLine(g *globals, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(g.stdout, "%s\n", b)
	return err
}

// alertJSON is an alert as --json prints it and --exec hooks read it.
type alertJSON struct {
	Alert    bool                `json:"alert"`
	Time     time.Time           `json:"time"`
	Index    uint64              `json:"index"`
	Type     string              `json:"type"`
	Matches  []client.WatchMatch `json:"matches"`
	Subjects []string            `json:"subjects"`
	Entry    json.RawMessage     `json:"entry"`
}

// reportAlert prints an alert and runs the hook on it. Only an alert that
// could not be printed, or whose hook was stopped by the end of ctx, is an
// error (the Monitor then delivers it again); a hook that fails is
// reported on stderr.
func reportAlert(ctx context.Context, g *globals, h alertHook, a client.Alert) error {
	aj := alertJSON{Alert: true, Time: time.Now().UTC(), Index: a.Index, Type: a.Event.Type, Matches: a.Matches, Entry: a.Entry}
	for _, d := range a.Event.Subjects {
		aj.Subjects = append(aj.Subjects, d.String())
	}
	line, err := json.Marshal(aj)
	if err != nil {
		return fmt.Errorf("encoding the alert: %w", err)
	}
	line = append(line, '\n')
	if g.json {
		_, err = g.stdout.Write(line)
	} else {
		var ms []string
		for _, m := range a.Matches {
			ms = append(ms, m.Rule+" "+m.Value)
		}
		_, err = fmt.Fprintf(g.stdout, "%s ALERT entry %d %s event matches %s\n", aj.Time.Format(time.RFC3339), a.Index, a.Event.Type, strings.Join(ms, ", "))
	}
	if err != nil {
		return fmt.Errorf("printing the alert: %w", err)
	}
	if h.command == "" {
		return nil
	}
	if err := h.run(ctx, line, a.Index, a.Event.Type); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("--exec on entry %d stopped: %w", a.Index, context.Cause(ctx))
		}
		fmt.Fprintf(g.stderr, "provlog: monitor: --exec on entry %d: %s\n", a.Index, oneLine(err.Error()))
	}
	return nil
}

// alertHook is the --exec command.
type alertHook struct {
	command string
	timeout time.Duration
	stderr  io.Writer // the hook's stdout and stderr
}

// run runs the hook with "sh -c" on one alert, killing it (and the
// processes it started) after h.timeout or when ctx ends.
func (h alertHook) run(ctx context.Context, alert []byte, index uint64, eventType string) error {
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	c := exec.CommandContext(ctx, "sh", "-c", h.command)
	c.Stdin = bytes.NewReader(alert)
	c.Stdout, c.Stderr = h.stderr, h.stderr
	c.Env = append(os.Environ(), "PROVLOG_INDEX="+strconv.FormatUint(index, 10), "PROVLOG_EVENT_TYPE="+eventType)
	killGroupOnCancel(c)
	// Once killed, wait at most this long for what the hook started to let
	// go of its output.
	c.WaitDelay = time.Second
	err := c.Run()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("killed after %v (--exec-timeout)", h.timeout)
	}
	return err
}
