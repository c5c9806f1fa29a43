package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"time"

	provlogv1 "github.com/provlog/provlog/proto/provlog/v1"
)

// scaleProofSamples is how many single inclusion proofs are timed at each
// point of the scale curve.
const scaleProofSamples = 2000

// scale grows one provlog log to cfg.ScaleEntries with batched appends,
// measuring throughput and proof latency at each point, then its memory,
// disk, and a restart.
func (b *bench) scale(ctx context.Context) error {
	if b.cfg.GRPCAddr != "" {
		return errors.New("scale: needs a provlogd started by the bench")
	}
	dir := b.phaseDir("scale")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("scale directory: %w", err)
	}
	args := b.provlogdArgs(dir, "")
	p, _, err := startProvlogd(ctx, args)
	if err != nil {
		return err
	}
	res := &ScaleResult{Target: b.cfg.ScaleEntries}
	b.res.Scale = res
	if err := b.grow(ctx, p, res); err != nil {
		p.Close()
		return err
	}
	return b.restart(ctx, p, res)
}

// grow appends in segments, one per point of the curve.
func (b *bench) grow(ctx context.Context, p *provlog, res *ScaleResult) error {
	cpu0, err := procCPU(p.PID())
	if err != nil {
		return err
	}
	start := time.Now()
	var size uint64
	for _, target := range scaleSizes(b.cfg.ScaleEntries, b.cfg.ScalePoints) {
		if time.Since(start) > b.cfg.ScaleBudget {
			res.Truncated = true
			slog.Warn("scale: time budget spent", "budget", b.cfg.ScaleBudget, "size", size)
			break
		}
		spec := b.spec(modeBatch, 0)
		spec.PerCall, spec.Entries, spec.Progress = 1024, int64(target-size), 10*time.Second
		spec.Source = opaqueSource(b.cfg.EntrySize, int64(size))
		lr, err := runLoad(ctx, p, spec)
		if err != nil {
			return fmt.Errorf("scale to %d: %w%s", target, err, p.exitStatus())
		}
		size = target
		pt, err := scalePoint(ctx, p, size, lr)
		if err != nil {
			return err
		}
		pt.Elapsed = time.Since(start).Seconds()
		res.Points = append(res.Points, pt)
		slog.Info("scale", "size", size, "entries/s", int(pt.PerSec), "proof_p50_ms", pt.Proof.P50,
			"proof_p99_ms", pt.Proof.P99, "rss_MiB", pt.RSS>>20, "elapsed", time.Since(start).Round(time.Second))
	}
	res.Entries, res.Seconds = size, time.Since(start).Seconds()
	cpu1, err := procCPU(p.PID())
	if err != nil {
		return err
	}
	res.CPUPer1000 = 1000 * (cpu1 - cpu0) / float64(max(size, 1))
	if res.PeakRSS, err = procPeakRSS(p.PID()); err != nil {
		return err
	}
	return nil
}

// scaleSizes returns n sizes up to total, evenly spaced, with 1M and 5M
// among them when total reaches them.
func scaleSizes(total int64, n int) []uint64 {
	var s []uint64
	for i := 1; i <= n; i++ {
		s = append(s, uint64(total*int64(i)/int64(n)))
	}
	for _, m := range []uint64{1_000_000, 5_000_000} {
		if i, found := slices.BinarySearch(s, m); m < uint64(total) && !found {
			s = slices.Insert(s, i, m)
		}
	}
	return s
}

// scalePoint measures the log at size, after the segment lr.
func scalePoint(ctx context.Context, p *provlog, size uint64, lr *loadResult) (ScalePoint, error) {
	pt := ScalePoint{Size: size, PerSec: lr.perSecond()}
	c := p.client(0)
	lats := make([]time.Duration, 0, scaleProofSamples)
	for range scaleProofSamples {
		i := rand.Uint64N(size)
		t0 := time.Now()
		if _, err := c.GetInclusionProof(ctx, &provlogv1.GetInclusionProofRequest{
			Leaf: &provlogv1.GetInclusionProofRequest_Index{Index: i}}); err != nil {
			return pt, fmt.Errorf("GetInclusionProof(%d) at size %d: %w", i, size, err)
		}
		lats = append(lats, time.Since(t0))
	}
	pt.Proof = summarize(lats)
	rss, err := procRSS(p.PID())
	pt.RSS = rss
	return pt, err
}

// restart measures disk use, then stops provlogd with SIGTERM, starts it
// again on the same data and times it to healthy.
func (b *bench) restart(ctx context.Context, p *provlog, res *ScaleResult) error {
	du, err := diskUsage(p.DataDir())
	if err != nil {
		p.Close()
		return err
	}
	n := int64(res.Entries)
	res.DiskBytes, res.ApparentBytes = du.Allocated, du.Apparent
	res.RawBytes = n*int64(b.cfg.EntrySize) + (2*n-1)*32
	res.DiskPerEntry = float64(res.DiskBytes) / float64(max(n, 1))
	res.ApparentPerEntry = float64(res.ApparentBytes) / float64(max(n, 1))
	res.DiskRatio = ratio(float64(res.DiskBytes), float64(res.RawBytes))
	for _, c := range p.conns {
		c.Close()
	}
	stopped, err := p.proc.stop(time.Minute)
	if err != nil {
		return err
	}
	res.ShutdownSeconds = stopped.Seconds()
	q, took, err := startProvlogd(ctx, p.args)
	if err != nil {
		return fmt.Errorf("restart: %w", err)
	}
	defer q.Close()
	res.RestartSeconds = took.Seconds()
	if res.RestartRSS, err = procRSS(q.PID()); err != nil {
		return err
	}
	size, err := q.CheckpointSize(ctx)
	if err != nil {
		return fmt.Errorf("after restart: %w", err)
	}
	if size != res.Entries {
		return fmt.Errorf("after restart: tree size %d, want %d", size, res.Entries)
	}
	slog.Info("scale restart", "size", size, "shutdown", stopped, "restart_to_healthy", took,
		"rss_MiB", res.RestartRSS>>20, "disk_per_entry", int(res.DiskPerEntry), "apparent_per_entry", int(res.ApparentPerEntry), "disk_ratio", res.DiskRatio)
	return nil
}
