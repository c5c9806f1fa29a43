package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/term"

	"github.com/provlog/provlog/client"
	"github.com/provlog/provlog/internal/atomicfile"
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
with what the log serves and signed.

With --state, the checkpoint audited last is kept in FILE: the next audit
also checks that the log's tree extends it (no rewritten history), and then
replaces it. A missing FILE is created.

Progress goes to stderr: a bar with rate and ETA on a terminal, a plain
line every --progress-interval otherwise. A summary follows on stdout.

Exit codes: 0 the log checks out; 1 a mismatch (the tile or bundle is
named) or an inconsistency with --state; 2 bad flags or state file; 3 the
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
			res := auditJSON{Origin: cp.Origin, Size: cp.Size, RootHash: base64.StdEncoding.EncodeToString(cp.Hash),
				Entries: sum.Entries, Bundles: sum.Bundles, Tiles: sum.Tiles, Bytes: sum.Bytes,
				DurationSeconds: sum.Duration.Seconds(), PreviousSize: prevSize, StateFile: state}
			if g.json {
				return g.printJSON(res)
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
			return nil
		}),
	}
	fl := cmd.Flags()
	fl.StringVar(&state, "state", "", "`file` keeping the last audited checkpoint")
	fl.IntVar(&concurrency, "concurrency", 8, "entry bundles fetched ahead")
	fl.DurationVar(&interval, "progress-interval", 5*time.Second, "time between plain progress lines when stderr is not a terminal")
	return cmd
}

func newMonitorCmd(g *globals) *cobra.Command {
	var (
		state, evidence string
		interval        time.Duration
		once            bool
	)
	cmd := &cobra.Command{
		Use:   "monitor --state FILE [--evidence DIR] [--tiles URL] [--interval D]",
		Short: "Follow a log and alert on a fork",
		Long: `Follow a log: every --interval, fetch its checkpoint, verify it with the
log's key and prove it consistent with the last verified one, kept in
--state (trusted on first use if the file does not exist). Each newer
verified checkpoint is printed and stored.

The log is read over its tlog-tiles HTTP API if --tiles (or PROVLOG_TILES)
is given (any tlog-tiles log), else over gRPC (--log).

On a fork or rollback — two checkpoints signed by the log that no
append-only log can have produced — the evidence (both checkpoints and the
proof) is written to a JSON file in --evidence and monitor exits 1, naming
the file. Other failures (the log unreachable) are reported on stderr and
polling goes on. SIGINT or SIGTERM stops it (exit 0).

Exit codes: 0 stopped (or --once: verified); 1 a fork, evidence written;
2 bad flags or state file; 3 with --once, the log unreachable.`,
		Example: `  provlog monitor --state monitor.state --evidence evidence/ --tiles https://log.example.com/ --log-key @log.pub
  provlog monitor --state monitor.state --once    # one poll, e.g. from cron`,
		Args: cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, _ []string) error {
			if state == "" {
				return usageErr("--state is required")
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
			return monitor(cmd.Context(), g, m, interval, once)
		}),
	}
	fl := cmd.Flags()
	fl.StringVar(&state, "state", "", "`file` keeping the last verified checkpoint (required)")
	fl.StringVar(&evidence, "evidence", "", "`directory` for fork evidence (default: the state file's)")
	fl.DurationVar(&interval, "interval", 10*time.Second, "time between polls")
	fl.BoolVar(&once, "once", false, "poll once and exit")
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
				g.printJSON(map[string]any{"fork": true, "reason": ie.Reason.Error(), "evidenceFile": ie.EvidenceFile})
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
				g.printJSON(map[string]any{"origin": cp.Origin, "size": cp.Size, "rootHash": base64.StdEncoding.EncodeToString(cp.Hash), "time": time.Now().UTC()})
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
