package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/transparency-dev/tessera/api/layout"
	"golang.org/x/mod/sumdb/note"
)

// Config configures a benchmark run. Zero values take the defaults given.
type Config struct {
	// Mode is what to run: "suite" (everything below, the default), one
	// load mode (single, batch, stream, http, events), or "scale".
	Mode string
	// Targets are the logs to load: "both" (alternating provlog and
	// Tessera, the default), "provlog" or "tessera".
	Targets string
	// Writers is the number of concurrent writers. If zero, 64 for single
	// and http, 8 for batch and events, 32 for stream (streamDepth writers
	// share one stream).
	Writers int
	// Batch is the entries of one call in batch, stream and events
	// modes. If zero, 256.
	Batch int
	// Rate is the target entries per second; 0 is as fast as acknowledged.
	Rate float64
	// Duration bounds each load. If zero, 10s.
	Duration time.Duration
	// Entries, if positive, bounds each load by count instead.
	Entries int64
	// EntrySize is the opaque entry size in bytes. If zero, 1024.
	EntrySize int
	// Rounds is how many times the suite alternates the targets. If zero, 2.
	Rounds int
	// ReadDuration bounds each read measurement. If zero, 5s.
	ReadDuration time.Duration
	// ReadWorkers is the concurrent readers. If zero, 32.
	ReadWorkers int
	// Events is the number of signed events prepared for an events load.
	// If zero, 60,000.
	Events int
	// ScaleEntries is the size the scale run grows a log to. If zero, 10M.
	ScaleEntries int64
	// ScaleBudget stops the scale run's growth early, at the last point
	// reached, once exceeded. If zero, 25 minutes.
	ScaleBudget time.Duration
	// ScalePoints is how many points the scale curve has. If zero, 10.
	ScalePoints int
	// MixedWriters is the writers of the mixed phase (POST /add, one
	// entry each). If zero, 256.
	MixedWriters int
	// MixedReaders is its concurrent readers of random full entry bundles
	// and hash tiles. If zero, 64.
	MixedReaders int
	// MixedReadRate caps its reads/s over all readers; zero is uncapped
	// (the flag's default is 1,024, the cap of issue 12's hammer run).
	MixedReadRate float64
	// MixedTileShare is the fraction of its reads that are level-0 hash
	// tiles, the rest entry bundles; zero is bundles only (the flag's
	// default is 0.5: a verifying monitor reads one tile per bundle).
	MixedTileShare float64
	// MixedPrefill is the entries a log holds before the mixed load. If
	// zero, 262,144 (1,024 full bundles).
	MixedPrefill int64
	// MixedDuration bounds the mixed load. If zero, 20s.
	MixedDuration time.Duration
	// Tessera configures the Tessera log.
	Tessera tesseraConfig
	// Provlogd is the provlogd binary. If empty, it is built from the
	// module in the current directory.
	Provlogd string
	// GRPCAddr, HTTPURL and VerifierKey name a running provlogd to load
	// instead of starting one; its CPU, memory and disk are then unknown.
	GRPCAddr, HTTPURL, VerifierKey string
	// Out is the directory for results.json, summary.md and the plots. If
	// empty, nothing is written.
	Out string
	// ProfileDir, if set, is the directory for CPU profiles of provlogd
	// and of the bench during each read measurement and signed-events
	// load (see profile.go). If empty, nothing is profiled.
	ProfileDir string
}

func (c *Config) setDefaults() error {
	def := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	def(&c.Batch, 256)
	def(&c.EntrySize, 1024)
	def(&c.Rounds, 2)
	def(&c.ReadWorkers, 32)
	def(&c.Events, 60000)
	def(&c.ScalePoints, 10)
	def(&c.MixedWriters, 256)
	def(&c.MixedReaders, 64)
	if c.MixedPrefill == 0 {
		c.MixedPrefill = 1 << 18
	}
	if c.MixedDuration == 0 {
		c.MixedDuration = 20 * time.Second
	}
	if c.Mode == "" {
		c.Mode = "suite"
	}
	if c.Targets == "" {
		c.Targets = "both"
	}
	if c.Duration == 0 {
		c.Duration = 10 * time.Second
	}
	if c.ReadDuration == 0 {
		c.ReadDuration = 5 * time.Second
	}
	if c.ScaleEntries == 0 {
		c.ScaleEntries = 10_000_000
	}
	if c.ScaleBudget == 0 {
		c.ScaleBudget = 25 * time.Minute
	}
	switch c.Mode {
	case "suite", "scale", modeSingle, modeBatch, modeStream, modeHTTP, modeEvents, modeMixed:
	default:
		return fmt.Errorf("mode %q: want suite, scale, single, batch, stream, http, events or mixed", c.Mode)
	}
	if c.MixedPrefill < layout.TileWidth {
		return fmt.Errorf("mixed prefill %d: want at least one full bundle (%d)", c.MixedPrefill, layout.TileWidth)
	}
	if c.MixedTileShare < 0 || c.MixedTileShare > 1 || c.MixedReadRate < 0 {
		return fmt.Errorf("mixed tile share %v, read rate %v: want 0..1 and >= 0", c.MixedTileShare, c.MixedReadRate)
	}
	switch c.Targets {
	case "both", "provlog", "tessera":
	default:
		return fmt.Errorf("targets %q: want both, provlog or tessera", c.Targets)
	}
	if c.EntrySize < 16 || c.EntrySize > 65535 {
		return fmt.Errorf("entry size %d: want 16..65535", c.EntrySize)
	}
	return c.checkRunning()
}

// checkRunning checks the flags naming a running provlogd (-grpc, -http,
// -verifier-key) before anything is loaded: all three or none.
func (c *Config) checkRunning() error {
	if c.GRPCAddr == "" {
		if c.HTTPURL != "" || c.VerifierKey != "" {
			return errors.New("-http and -verifier-key name a running provlogd: give its gRPC address with -grpc as well")
		}
		return nil
	}
	switch {
	case c.HTTPURL == "":
		return errors.New("-grpc names a running provlogd: give its HTTP base URL with -http as well")
	case c.VerifierKey == "":
		return errors.New("-grpc names a running provlogd: give its note verifier key (the first line of its log.pub) with -verifier-key")
	}
	if _, err := note.NewVerifier(c.VerifierKey); err != nil {
		return fmt.Errorf("-verifier-key %q: %w (want the first line of the provlogd's log.pub)", c.VerifierKey, err)
	}
	if u, err := url.Parse(c.HTTPURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("-http %q: want an http:// or https:// base URL", c.HTTPURL)
	}
	return nil
}

// writers returns the writer count for a mode.
func (c *Config) writers(mode string) int {
	if c.Writers > 0 {
		return c.Writers
	}
	switch mode {
	case modeSingle, modeHTTP:
		return 64
	case modeStream:
		return 4 * streamDepth
	}
	return 8
}

func (c *Config) perCall(mode string) int {
	if mode == modeSingle || mode == modeHTTP {
		return 1
	}
	return c.Batch
}

// bench is one run: its configuration, scratch space and results.
type bench struct {
	cfg      Config
	work     string // scratch directory, removed at the end
	provlogd string // the provlogd binary
	phases   int    // phases started, naming their directories
	res      *Results
}

// Run runs the benchmark cfg asks for and returns its results.
func Run(ctx context.Context, cfg Config) (_ *Results, err error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", "provlog-bench-")
	if err != nil {
		return nil, fmt.Errorf("scratch directory: %w", err)
	}
	defer func() {
		if err != nil {
			slog.Error("kept the scratch directory (provlogd logs in each phase's provlogd.log)", "dir", work)
			return
		}
		os.RemoveAll(work)
	}()
	b := &bench{cfg: cfg, work: work, res: newResults(cfg)}
	if b.provlogd = cfg.Provlogd; b.provlogd == "" && cfg.GRPCAddr == "" && cfg.Targets != "tessera" {
		slog.Info("building provlogd")
		if b.provlogd, err = buildProvlogd(ctx, work); err != nil {
			return nil, err
		}
	}
	switch cfg.Mode {
	case "suite":
		err = b.suite(ctx)
	case "scale":
		err = b.scale(ctx)
	case modeEvents:
		err = b.events(ctx, 1)
	case modeMixed:
		for round := 1; round <= cfg.Rounds && err == nil; round++ {
			err = b.mixed(ctx, round)
		}
	default:
		err = b.compare(ctx, cfg.Mode, 1)
	}
	return b.res, err
}

// suite runs every comparison for each round, the signed events and the
// mixed load, then the scale run.
func (b *bench) suite(ctx context.Context) error {
	for round := 1; round <= b.cfg.Rounds; round++ {
		for _, mode := range []string{modeBatch, modeStream, modeSingle, modeHTTP} {
			if err := b.compare(ctx, mode, round); err != nil {
				return err
			}
		}
		if b.cfg.Targets != "tessera" {
			if err := b.events(ctx, round); err != nil {
				return err
			}
		}
		if err := b.mixed(ctx, round); err != nil {
			return err
		}
	}
	if b.cfg.Targets == "tessera" {
		return nil
	}
	return b.scale(ctx)
}

// targets returns the targets to alternate, in order.
func (b *bench) targets() []string {
	switch b.cfg.Targets {
	case "provlog", "tessera":
		return []string{b.cfg.Targets}
	}
	return []string{"provlog", "tessera"}
}

// compare runs one mode against each target in turn, each on a fresh log.
// After the batch load it also measures the same mode at half the peak
// rate, and reads.
func (b *bench) compare(ctx context.Context, mode string, round int) error {
	for _, name := range b.targets() {
		t, err := b.newTarget(ctx, name, "")
		if err != nil {
			return err
		}
		err = b.compareOn(ctx, t, mode, round)
		if cerr := t.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("closing %s: %w", name, cerr))
		}
		if err != nil {
			return fmt.Errorf("%s %s round %d: %w", name, mode, round, err)
		}
	}
	return nil
}

func (b *bench) compareOn(ctx context.Context, t target, mode string, round int) error {
	spec := b.spec(mode, 0)
	peak, err := b.phase(ctx, t, spec, round, "peak")
	if err != nil {
		return err
	}
	if mode != modeBatch || b.cfg.Rate > 0 {
		return nil
	}
	if _, err := b.phase(ctx, t, b.spec(mode, peak.PerSec/2), round, "half"); err != nil {
		return err
	}
	return b.reads(ctx, t, round)
}

// spec returns the load of a mode at a rate (0: as fast as possible).
func (b *bench) spec(mode string, rate float64) loadSpec {
	if rate == 0 {
		rate = b.cfg.Rate
	}
	return loadSpec{
		Mode:     mode,
		Writers:  b.cfg.writers(mode),
		PerCall:  b.cfg.perCall(mode),
		Rate:     rate,
		Duration: b.cfg.Duration,
		Entries:  b.cfg.Entries,
		Source:   opaqueSource(b.cfg.EntrySize, 0),
	}
}

// phaseDir returns a fresh directory for the next phase.
func (b *bench) phaseDir(name string) string {
	b.phases++
	return filepath.Join(b.work, fmt.Sprintf("%03d-%s", b.phases, name))
}

// newTarget starts a fresh log: provlogd (with attestations admitted if
// keyring is set) or Tessera.
func (b *bench) newTarget(ctx context.Context, name, keyring string) (target, error) {
	dir := b.phaseDir(name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("phase directory: %w", err)
	}
	if name == "tessera" {
		key, err := newTesseraKey()
		if err != nil {
			return nil, err
		}
		return startTessera(filepath.Join(dir, "log"), b.cfg.Tessera, key)
	}
	if b.cfg.GRPCAddr != "" {
		return dialProvlog(b.cfg.GRPCAddr, b.cfg.HTTPURL, b.cfg.VerifierKey)
	}
	args, err := b.profiledArgs(dir, keyring)
	if err != nil {
		return nil, err
	}
	p, _, err := startProvlogd(ctx, args)
	return p, err
}

func (b *bench) provlogdArgs(dir, keyring string) provlogdArgs {
	return provlogdArgs{bin: b.provlogd, dataDir: filepath.Join(dir, "data"),
		logFile: filepath.Join(dir, "provlogd.log"), keyring: keyring}
}

// profiledArgs are provlogdArgs with the profiler served if -profile is
// set.
func (b *bench) profiledArgs(dir, keyring string) (provlogdArgs, error) {
	a := b.provlogdArgs(dir, keyring)
	var err error
	a.extra, a.debugAddr, err = b.debugListenArgs()
	return a, err
}

// phase runs one load on t and measures it.
func (b *bench) phase(ctx context.Context, t target, spec loadSpec, round int, load string) (*Phase, error) {
	return b.phaseWith(ctx, t, spec, round, load, nil)
}

// phaseWith is phase with beside, if not nil, running alongside the load
// from its start, given the phase's checkpoint watch; its context ends
// when the load does, and the phase waits for it to return. The process
// figures (CPU, memory) cover both.
func (b *bench) phaseWith(ctx context.Context, t target, spec loadSpec, round int, load string,
	beside func(context.Context, *checkpointWatch)) (*Phase, error) {
	slog.Info("phase", "target", t.Name(), "mode", spec.Mode, "round", round, "load", load,
		"writers", spec.Writers, "per_call", spec.PerCall, "rate", int(spec.Rate))
	m := startMeasure(t)
	w := watchCheckpoints(t)
	besideDone := make(chan struct{})
	bctx, stopBeside := context.WithCancel(ctx)
	go func() {
		defer close(besideDone)
		if beside != nil {
			beside(bctx, w)
		}
	}()
	lr, err := runLoad(ctx, t, spec)
	stopBeside()
	<-besideDone
	if err == nil {
		err = w.waitFor(ctx, lr.maxIndex()+1, 3*t.CheckpointInterval()+10*time.Second)
	}
	seen, werr := w.close()
	if err = errors.Join(err, werr); err != nil {
		return nil, err
	}
	p := newPhase(t, spec, round, load, lr, seen)
	if err := m.finish(t, p); err != nil {
		return nil, err
	}
	b.res.addPhase(p)
	slog.Info("result", "target", t.Name(), "mode", spec.Mode, "load", load, "entries/s", int(p.PerSec),
		"ack_p50_ms", p.Ack.P50, "ack_p99_ms", p.Ack.P99, "checkpoint_p99_ms", p.Checkpoint.P99,
		"cpu_s_per_1000", p.CPUPer1000, "disk_per_entry", int(p.DiskPerEntry), "apparent_per_entry", int(p.ApparentPerEntry))
	return p, nil
}

// measure holds a target's process figures at the start of a phase.
type measure struct {
	cpu float64
	ok  bool
}

func startMeasure(t target) measure {
	pid := t.PID()
	if pid == 0 {
		return measure{}
	}
	if pid == os.Getpid() {
		// In process (Tessera): peak RSS from now on only.
		if err := resetPeakRSS(pid); err != nil {
			slog.Warn("cannot reset peak RSS", "err", err)
		}
	}
	cpu, err := procCPU(pid)
	return measure{cpu: cpu, ok: err == nil}
}

// finish fills in p's CPU, memory and disk figures.
func (m measure) finish(t target, p *Phase) error {
	if !m.ok {
		return nil
	}
	cpu, err := procCPU(t.PID())
	if err != nil {
		return err
	}
	p.CPUSeconds = cpu - m.cpu
	p.CPUPer1000 = 1000 * p.CPUSeconds / float64(max(p.Entries, 1))
	if p.PeakRSS, err = procPeakRSS(t.PID()); err != nil {
		return err
	}
	if dir := t.DataDir(); dir != "" {
		du, err := diskUsage(dir)
		if err != nil {
			return err
		}
		n := float64(max(p.TreeSize, 1))
		p.DiskBytes, p.ApparentBytes = du.Allocated, du.Apparent
		p.DiskPerEntry, p.ApparentPerEntry = float64(du.Allocated)/n, float64(du.Apparent)/n
	}
	return nil
}
