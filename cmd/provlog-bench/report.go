package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// summary aggregates the phases of one (mode, load, target) over rounds.
type summary struct {
	mode, load, target string
	writers, perCall   int
	entries            int64
	seconds, cpu       float64
	peakRSS            int64
	diskPerEntry       float64 // allocated (du)
	apparentPerEntry   float64
	uncovered          int
	ack, ttc           []time.Duration
	rounds             map[int]float64 // entries/s by round
}

func (s *summary) perSec() float64      { return ratio(float64(s.entries), s.seconds) }
func (s *summary) cpuPer1000() float64  { return ratio(1000*s.cpu, float64(s.entries)) }
func (s *summary) ackDist() Dist        { return summarize(s.ack) }
func (s *summary) checkpointDist() Dist { return summarize(s.ttc) }

// summaries groups the phases by mode, load and target, in first-seen
// order.
func (r *Results) summaries() []*summary {
	var out []*summary
	find := func(p *Phase) *summary {
		for _, s := range out {
			if s.mode == p.Mode && s.load == p.Load && s.target == p.Target {
				return s
			}
		}
		s := &summary{mode: p.Mode, load: p.Load, target: p.Target, writers: p.Writers, perCall: p.PerCall, rounds: map[int]float64{}}
		out = append(out, s)
		return s
	}
	for _, p := range r.Phases {
		s := find(p)
		s.entries += p.Entries
		s.seconds += p.Seconds
		s.cpu += p.CPUSeconds
		s.peakRSS = max(s.peakRSS, p.PeakRSS)
		s.diskPerEntry = max(s.diskPerEntry, p.DiskPerEntry)
		s.apparentPerEntry = max(s.apparentPerEntry, p.ApparentPerEntry)
		s.uncovered += p.Uncovered
		s.ack = append(s.ack, p.ack...)
		s.ttc = append(s.ttc, p.ttc...)
		s.rounds[p.Round] = p.PerSec
	}
	for _, s := range out {
		slices.Sort(s.ack)
		slices.Sort(s.ttc)
	}
	return out
}

// lookup returns the summary of a mode, load and target, or nil.
func lookup(ss []*summary, mode, load, target string) *summary {
	for _, s := range ss {
		if s.mode == mode && s.load == load && s.target == target {
			return s
		}
	}
	return nil
}

// roundRatios returns provlog's entries/s over Tessera's, round by round.
func roundRatios(p, t *summary) []float64 {
	var rs []float64
	for round, v := range p.rounds {
		if tv, ok := t.rounds[round]; ok && tv > 0 {
			rs = append(rs, v/tv)
		}
	}
	slices.Sort(rs)
	return rs
}

// writeMarkdown writes the tables of the run.
func (r *Results) writeMarkdown(w io.Writer) {
	ss := r.summaries()
	fmt.Fprintf(w, "Machine: %d CPUs, %s, %.1f GiB RAM, Linux %s, %s. Date %s, commit `%s`.\n\n",
		r.Machine.CPUs, r.Machine.CPUModel, float64(r.Machine.MemBytes)/(1<<30), r.Machine.Kernel, r.Machine.Go, r.Date, r.Commit)
	fmt.Fprintf(w, "Command: `%s`\n\n", r.Command)
	fmt.Fprintf(w, "Machine load average (1 min) at the end of the load phases: %s.\n\n", r.loadRange())
	r.writeAppendTable(w, ss)
	r.writeResourceTable(w, ss)
	r.writeReadTable(w)
	r.writeEventsTable(w)
	r.writeMixedTable(w)
	r.writeScaleTable(w)
	r.writeTargets(w, ss)
}

// appendRows returns provlog's summaries of the append modes (not events,
// not mixed), at peak load only if peak.
func appendRows(ss []*summary, peak bool) []*summary {
	var out []*summary
	for _, s := range ss {
		if s.target == "provlog" && s.mode != modeEvents && s.mode != modeMixed && (!peak || s.load == "peak") {
			out = append(out, s)
		}
	}
	return out
}

func (r *Results) writeAppendTable(w io.Writer, ss []*summary) {
	rows := appendRows(ss, false)
	if len(rows) == 0 {
		return
	}
	fmt.Fprintln(w, "### Appends (1 call = writers × entries per call in flight)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| mode | load | writers × per call | provlog entries/s | Tessera entries/s | provlog ÷ Tessera (per round) | ack p50 / p99 / max ms, provlog | Tessera | signed checkpoint p50 / p99 ms, provlog | Tessera |")
	fmt.Fprintln(w, "|---|---|---|--:|--:|--:|--:|--:|--:|--:|")
	for _, s := range rows {
		t := lookup(ss, s.mode, s.load, "tessera")
		row := []string{s.mode, s.load, fmt.Sprintf("%d × %d", s.writers, s.perCall), fmtRate(s.perSec())}
		if t != nil {
			row = append(row, fmtRate(t.perSec()), fmtRatios(s.perSec()/t.perSec(), roundRatios(s, t)))
		} else {
			row = append(row, "–", "–")
		}
		row = append(row, fmtAck(s.ackDist()), fmtAckOf(t), fmtTTC(s.checkpointDist(), s.uncovered), fmtTTCOf(t))
		fmt.Fprintf(w, "| %s |\n", strings.Join(row, " | "))
	}
	fmt.Fprintln(w)
}

func (r *Results) writeResourceTable(w io.Writer, ss []*summary) {
	rows := appendRows(ss, true)
	if len(rows) == 0 {
		return
	}
	fmt.Fprintln(w, "### Resources at peak load (Tessera runs inside the bench process: its CPU and RSS include the load generator)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| mode | CPU s / 1,000 entries, provlog | Tessera | peak RSS MiB, provlog | Tessera | disk bytes / entry allocated (apparent), provlog | Tessera |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|")
	for _, s := range rows {
		t := lookup(ss, s.mode, s.load, "tessera")
		if t == nil {
			t = &summary{}
		}
		fmt.Fprintf(w, "| %s | %.3f | %.3f | %d | %d | %s | %s |\n", s.mode, s.cpuPer1000(), t.cpuPer1000(),
			s.peakRSS>>20, t.peakRSS>>20, fmtDisk(s.diskPerEntry, s.apparentPerEntry), fmtDisk(t.diskPerEntry, t.apparentPerEntry))
	}
	fmt.Fprintln(w)
}

func (r *Results) writeReadTable(w io.Writer) {
	if len(r.Reads) == 0 {
		return
	}
	fmt.Fprintln(w, "### Reads (32 concurrent readers, random entries / full level-0 tiles)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| round | target | kind | tree size | reads/s | p50 / p99 ms |")
	fmt.Fprintln(w, "|--:|---|---|--:|--:|--:|")
	for _, rr := range r.Reads {
		fmt.Fprintf(w, "| %d | %s | %s | %d | %s | %.2f / %.2f |\n", rr.Round, rr.Target, rr.Kind, rr.TreeSize,
			fmtRate(rr.PerSec), rr.Latency.P50, rr.Latency.P99)
	}
	fmt.Fprintln(w)
}

func (r *Results) writeEventsTable(w io.Writer) {
	if len(r.Events) == 0 {
		return
	}
	fmt.Fprintln(w, "### Signed build events (DSSE, Ed25519) beside signature verification alone")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| round | event bytes | verify only /s (all cores) | admitted and durable /s | fraction of bound | ack p50 / p99 ms | CPU s / 1,000 | disk bytes / entry allocated (apparent) |")
	fmt.Fprintln(w, "|--:|--:|--:|--:|--:|--:|--:|--:|")
	for _, e := range r.Events {
		fmt.Fprintf(w, "| %d | %d | %s | %s | %.0f%% | %.1f / %.1f | %.3f | %s |\n", e.Round, e.EventBytes, fmtRate(e.VerifyPerSec),
			fmtRate(e.Phase.PerSec), 100*e.Fraction, e.Phase.Ack.P50, e.Phase.Ack.P99, e.Phase.CPUPer1000,
			fmtDisk(e.Phase.DiskPerEntry, e.Phase.ApparentPerEntry))
	}
	fmt.Fprintln(w)
}

func (r *Results) writeMixedTable(w io.Writer) {
	if len(r.Mixed) == 0 {
		return
	}
	m0 := r.Mixed[0]
	capped := "uncapped"
	if m0.ReadRateCap > 0 {
		capped = fmt.Sprintf("capped at %s/s", fmtRate(m0.ReadRateCap))
	}
	fmt.Fprintf(w, "### Mixed: %d writers over POST /add + %d readers of random full entry bundles and level-0 tiles (%.0f%% tiles, reads %s), "+
		"1 KiB random entries, on logs prefilled to %d (Tessera served by its own process)\n\n",
		m0.Writers, m0.Readers, 100*m0.TileShare, capped, m0.Prefill)
	fmt.Fprintln(w, "| round | target | writes/s | reads/s (bundles / tiles) | read errors | bundles served gzipped | add p50 / p99 ms | read p50 / p99 ms, bundles | tiles | "+
		"signed checkpoint p50 / p99 ms | server CPU s / 1,000 entries written (reads included) | peak RSS MiB | disk bytes / entry allocated (apparent) | "+
		"bench process CPU, cores |")
	fmt.Fprintln(w, "|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
	for _, m := range r.Mixed {
		p, bu, ti := m.Phase, m.kind(readBundle), m.kind(readTile)
		fmt.Fprintf(w, "| %d | %s | %s | %s (%s / %s) | %d | %.0f%% | %.1f / %.1f | %.1f / %.1f | %.1f / %.1f | %s | %.3f | %d | %s | %.2f |\n",
			m.Round, m.Target, fmtRate(p.PerSec), fmtRate(m.ReadsPerSec), fmtRate(bu.PerSec), fmtRate(ti.PerSec), m.ReadErrors,
			100*ratio(float64(bu.Gzipped), float64(bu.Reads)),
			p.Ack.P50, p.Ack.P99, bu.Latency.P50, bu.Latency.P99, ti.Latency.P50, ti.Latency.P99,
			fmtTTC(p.Checkpoint, p.Uncovered), p.CPUPer1000, p.PeakRSS>>20, fmtDisk(p.DiskPerEntry, p.ApparentPerEntry),
			m.BenchCPUCores)
	}
	writes, reads := r.mixedRoundRatios()
	if len(writes) > 0 {
		pw, pr, _ := r.mixedMeans("provlog")
		tw, tr, _ := r.mixedMeans("tessera")
		fmt.Fprintf(w, "\nprovlog ÷ Tessera: writes/s %s, reads/s %s.\n", fmtRatios(ratio(pw, tw), writes), fmtRatios(ratio(pr, tr), reads))
	}
	fmt.Fprintln(w)
}

func (r *Results) writeScaleTable(w io.Writer) {
	s := r.Scale
	if s == nil {
		return
	}
	fmt.Fprintf(w, "### Scale: one provlog log grown to %d entries (target %d%s) with AppendBatch, 8 × 1024\n\n",
		s.Entries, s.Target, map[bool]string{true: ", stopped by the time budget", false: ""}[s.Truncated])
	fmt.Fprintln(w, "| size | entries/s (segment) | proof p50 / p99 ms | RSS MiB | elapsed s |")
	fmt.Fprintln(w, "|--:|--:|--:|--:|--:|")
	for _, p := range s.Points {
		fmt.Fprintf(w, "| %d | %s | %.2f / %.2f | %d | %.0f |\n", p.Size, fmtRate(p.PerSec), p.Proof.P50, p.Proof.P99, p.RSS>>20, p.Elapsed)
	}
	fmt.Fprintf(w, "\nAt %d entries: peak RSS %d MiB; disk allocated %.2f GiB = %.0f bytes/entry, %.2f× the raw entries plus hashes "+
		"(apparent size %.2f GiB = %.0f bytes/entry); "+
		"CPU %.3f s / 1,000 entries; SIGTERM to exit %.2f s; restart to healthy %.2f s (RSS then %d MiB).\n\n",
		s.Entries, s.PeakRSS>>20, float64(s.DiskBytes)/(1<<30), s.DiskPerEntry, s.DiskRatio,
		float64(s.ApparentBytes)/(1<<30), s.ApparentPerEntry, s.CPUPer1000,
		s.ShutdownSeconds, s.RestartSeconds, s.RestartRSS>>20)
}

func fmtRate(v float64) string {
	if v >= 100 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

// fmtDisk formats allocated and apparent bytes per entry.
func fmtDisk(allocated, apparent float64) string {
	return fmt.Sprintf("%.0f (%.0f)", allocated, apparent)
}

func fmtRatios(total float64, rounds []float64) string {
	parts := make([]string, len(rounds))
	for i, r := range rounds {
		parts[i] = fmt.Sprintf("%.1f", r)
	}
	return fmt.Sprintf("**%.1f×** (%s)", total, strings.Join(parts, ", "))
}

func fmtAck(d Dist) string { return fmt.Sprintf("%.1f / %.1f / %.0f", d.P50, d.P99, d.Max) }

func fmtAckOf(s *summary) string {
	if s == nil {
		return "–"
	}
	return fmtAck(s.ackDist())
}

func fmtTTC(d Dist, uncovered int) string {
	s := fmt.Sprintf("%.1f / %.1f", d.P50, d.P99)
	if uncovered > 0 {
		s += fmt.Sprintf(" (%d uncovered)", uncovered)
	}
	return s
}

func fmtTTCOf(s *summary) string {
	if s == nil {
		return "–"
	}
	return fmtTTC(s.checkpointDist(), s.uncovered)
}

// write writes results.json and summary.md into dir.
func (r *Results) write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("output directory: %w", err)
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding results: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), b, 0o644); err != nil {
		return fmt.Errorf("writing results: %w", err)
	}
	var md strings.Builder
	r.writeMarkdown(&md)
	if err := os.WriteFile(filepath.Join(dir, "summary.md"), []byte(md.String()), 0o644); err != nil {
		return fmt.Errorf("writing summary: %w", err)
	}
	return nil
}

// loadRange returns the range of load averages seen at the phases' ends.
func (r *Results) loadRange() string {
	if len(r.Phases) == 0 {
		return "–"
	}
	lo, hi := r.Phases[0].LoadAvg, r.Phases[0].LoadAvg
	for _, p := range r.Phases {
		lo, hi = min(lo, p.LoadAvg), max(hi, p.LoadAvg)
	}
	return fmt.Sprintf("%.1f to %.1f", lo, hi)
}
