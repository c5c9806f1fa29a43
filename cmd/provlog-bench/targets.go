package main

import (
	"fmt"
	"io"
)

// check is one of the issues' targets, as measured.
type check struct {
	name, measured string
	met            bool
	known          bool // false: not measured in this run
}

// checks evaluates the targets against the run.
func (r *Results) checks(ss []*summary) []check {
	var cs []check
	for _, mode := range []string{modeBatch, modeStream, modeSingle, modeHTTP} {
		p, t := lookup(ss, mode, "peak", "provlog"), lookup(ss, mode, "peak", "tessera")
		if p == nil || t == nil {
			continue
		}
		x := ratio(p.perSec(), t.perSec())
		cs = append(cs, check{fmt.Sprintf("opaque 1 KiB, %s: ≥ 3× Tessera POSIX appends/s (same writers × per call)", mode),
			fmt.Sprintf("%.1f× (%s vs %s entries/s)", x, fmtRate(p.perSec()), fmtRate(t.perSec())), x >= 3, true})
	}
	best := 0.0
	for _, mode := range []string{modeBatch, modeStream} {
		if p := lookup(ss, mode, "peak", "provlog"); p != nil {
			best = max(best, p.perSec())
		}
	}
	cs = append(cs, check{"≥ 100,000 entries/s through batched or streaming RPC", fmtRate(best) + " entries/s", best >= 100_000, best > 0})
	cs = append(cs, r.eventsCheck())
	if h := lookup(ss, modeBatch, "half", "provlog"); h != nil {
		d := h.checkpointDist()
		cs = append(cs, check{"signed checkpoint p99 < 250 ms at half of peak load",
			fmt.Sprintf("p99 %.1f ms at %s entries/s", d.P99, fmtRate(h.perSec())), d.P99 < 250 && h.uncovered == 0, true})
	}
	cs = append(cs, r.readChecks()...)
	cs = append(cs, r.scaleChecks()...)
	cs = append(cs, r.mixedCheck())
	return append(cs, r.diskCheck())
}

// mixedCheck is issue 12's mixed-load target.
func (r *Results) mixedCheck() check {
	pw, pr, pn := r.mixedMeans("provlog")
	tw, tr, tn := r.mixedMeans("tessera")
	xw, xr := ratio(pw, tw), ratio(pr, tr)
	measured := fmt.Sprintf("writes %.1f× (%s vs %s /s), reads %.1f× (%s vs %s /s)", xw, fmtRate(pw), fmtRate(tw), xr, fmtRate(pr), fmtRate(tr))
	if len(r.Mixed) > 0 && r.Mixed[0].ReadRateCap > 0 {
		measured += fmt.Sprintf("; reads capped at %s/s", fmtRate(r.Mixed[0].ReadRateCap))
	}
	return check{"mixed (writers + readers of bundles and tiles, 1 KiB random entries): ≥ 2× Tessera POSIX writes/s and ≥ 2× its reads/s",
		measured, xw >= 2 && xr >= 2, pn > 0 && tn > 0}
}

// diskCheck is issue 12's disk target: the most disk allocated per entry
// of any of provlog's opaque-entry modes against the entry plus its share
// of the tree's hashes (2n-1 of 32 bytes: 64 per entry).
func (r *Results) diskCheck() check {
	var worst float64
	var mode string
	var size int
	for _, p := range r.Phases {
		if p.Target == "provlog" && p.Load == "peak" && p.Mode != modeEvents && p.DiskPerEntry > worst {
			worst, mode, size = p.DiskPerEntry, p.Mode, p.EntrySize
		}
	}
	x := ratio(worst, float64(size+64))
	return check{"disk allocated per entry, every mode: ≤ 1.5× entry plus hashes",
		fmt.Sprintf("worst %.2f× (%s: %.0f bytes/entry allocated)", x, mode, worst), x <= 1.5, worst > 0}
}

func (r *Results) eventsCheck() check {
	var admitted, bound float64
	for _, e := range r.Events {
		admitted += e.Phase.PerSec
		bound += e.VerifyPerSec
	}
	f := ratio(admitted, bound)
	return check{"signed events ≥ 80% of signature verification alone",
		fmt.Sprintf("%.0f%% (%s of %s /s)", 100*f, fmtRate(admitted/float64(max(len(r.Events), 1))),
			fmtRate(bound/float64(max(len(r.Events), 1)))), f >= 0.8, len(r.Events) > 0}
}

func (r *Results) readChecks() []check {
	mean := func(target, kind string) float64 {
		var sum float64
		var n int
		for _, rr := range r.Reads {
			if rr.Target == target && rr.Kind == kind {
				sum += rr.PerSec
				n++
			}
		}
		return ratio(sum, float64(n))
	}
	proofs := mean("provlog", "inclusion-proof")
	pt, tt := mean("provlog", "tile"), mean("tessera", "tile")
	return []check{
		{"inclusion proofs ≥ 50,000/s", fmtRate(proofs) + "/s", proofs >= 50_000, proofs > 0},
		{"tiles ≥ 2× Tessera POSIX file serving", fmt.Sprintf("%.1f× (%s vs %s /s)", ratio(pt, tt), fmtRate(pt), fmtRate(tt)),
			ratio(pt, tt) >= 2, pt > 0 && tt > 0},
	}
}

func (r *Results) scaleChecks() []check {
	s := r.Scale
	if s == nil || len(s.Points) == 0 {
		return nil
	}
	ref := s.Points[0]
	for _, p := range s.Points {
		if p.Size == 1_000_000 {
			ref = p
		}
	}
	last := s.Points[len(s.Points)-1]
	drop := 1 - ratio(last.PerSec, ref.PerSec)
	return []check{
		{fmt.Sprintf("throughput at %d within 10%% of %d", last.Size, ref.Size),
			fmt.Sprintf("%s vs %s entries/s (%+.0f%%)", fmtRate(last.PerSec), fmtRate(ref.PerSec), -100*drop), drop <= 0.10, true},
		{fmt.Sprintf("restart at %d entries < 2 s", s.Entries), fmt.Sprintf("%.2f s to healthy", s.RestartSeconds), s.RestartSeconds < 2, true},
		{fmt.Sprintf("RSS at %d entries < 512 MiB", s.Entries), fmt.Sprintf("peak %d MiB", s.PeakRSS>>20), s.PeakRSS < 512<<20, true},
		{"disk < 1.3× raw entry bytes plus hashes", fmt.Sprintf("%.2f× (%.0f bytes/entry)", s.DiskRatio, s.DiskPerEntry), s.DiskRatio < 1.3, true},
	}
}

func (r *Results) writeTargets(w io.Writer, ss []*summary) {
	fmt.Fprintln(w, "### Targets (issues 7 and 12)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| target | measured | met |")
	fmt.Fprintln(w, "|---|---|---|")
	for _, c := range r.checks(ss) {
		verdict := map[bool]string{true: "yes", false: "**no**"}[c.met]
		if !c.known {
			verdict = "not measured"
		}
		fmt.Fprintf(w, "| %s | %s | %s |\n", c.name, c.measured, verdict)
	}
	fmt.Fprintln(w)
}
