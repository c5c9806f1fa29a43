package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/transparency-dev/tessera/api/layout"
	"golang.org/x/time/rate"
)

// The mixed phase, in the spirit of Tessera's hammer: on a log prefilled
// with MixedPrefill entries, MixedWriters writers POST /add one entry each
// (1 KiB of random bytes) while MixedReaders readers fetch random full
// entry bundles and full level-0 hash tiles over HTTP, at most
// MixedReadRate reads/s over all of them. Against provlogd and against
// Tessera's POSIX log served by a serve-tessera child process, alternating.

// mixedReadTimeout bounds one read of the mixed phase (hammer's default
// HTTP timeout is 30 s).
const mixedReadTimeout = 10 * time.Second

// mixedGrace is how long past -mixed-duration a mixed load may take (its
// last writes, the checkpoint covering them) before it fails.
const mixedGrace = 2 * time.Minute

// mixedMaxReads bounds the reads of one reader in one mixed load.
const mixedMaxReads = 1 << 22

// mixed runs the mixed phase against each target in turn, each on a fresh
// prefilled log.
func (b *bench) mixed(ctx context.Context, round int) error {
	for _, name := range b.targets() {
		t, err := b.prefilled(ctx, name)
		if err != nil {
			return fmt.Errorf("%s mixed round %d: %w", name, round, err)
		}
		err = b.mixedOn(ctx, t, round)
		if cerr := t.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("closing %s: %w", name, cerr))
		}
		if err != nil {
			return fmt.Errorf("%s mixed round %d: %w", name, round, err)
		}
	}
	return nil
}

// prefilled starts a fresh log holding cfg.MixedPrefill entries, with a
// signed checkpoint covering them. Tessera's is filled by the library in
// this process, then served by a serve-tessera child on its directory;
// provlog's through AppendBatch to the provlogd that is then measured.
func (b *bench) prefilled(ctx context.Context, name string) (target, error) {
	spec := b.spec(modeBatch, 0)
	spec.Writers, spec.PerCall, spec.Rate = 8, 1024, 0
	spec.Entries, spec.Duration, spec.Progress = b.cfg.MixedPrefill, 0, 10*time.Second
	slog.Info("prefill", "target", name, "entries", spec.Entries)
	var t target
	if name == "tessera" {
		dir := b.phaseDir("tessera-mixed")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("phase directory: %w", err)
		}
		key, err := newTesseraKey()
		if err != nil {
			return nil, err
		}
		logDir := filepath.Join(dir, "log")
		in, err := startTessera(logDir, b.cfg.Tessera, key)
		if err != nil {
			return nil, err
		}
		_, err = runLoad(ctx, in, spec)
		if err = errors.Join(err, in.Close()); err != nil {
			return nil, fmt.Errorf("tessera prefill: %w", err)
		}
		t, err = startTesseraProc(logDir, filepath.Join(dir, "tessera.key"), filepath.Join(dir, "tessera.log"), b.cfg.Tessera, key)
		if err != nil {
			return nil, err
		}
	} else {
		var err error
		if t, err = b.newTarget(ctx, name, ""); err != nil {
			return nil, err
		}
		if _, err := runLoad(ctx, t, spec); err != nil {
			return nil, errors.Join(fmt.Errorf("provlog prefill: %w", err), t.Close())
		}
	}
	w := watchCheckpoints(t)
	err := w.waitFor(ctx, uint64(spec.Entries), 3*t.CheckpointInterval()+30*time.Second)
	if _, werr := w.close(); err != nil || werr != nil {
		return nil, errors.Join(fmt.Errorf("prefill checkpoint: %w", errors.Join(err, werr)), t.Close())
	}
	return t, nil
}

// mixedProfile is the length of the mixed load's profiles (-profile).
const mixedProfile = 5 * time.Second

// mixedOn runs the mixed load on t and records it.
func (b *bench) mixedOn(ctx context.Context, t target, round int) error {
	// A backstop for a log that stops answering (the writers' HTTP client
	// has no timeout of its own): the load fails rather than hangs.
	ctx, cancel := context.WithTimeout(ctx, b.cfg.MixedDuration+mixedGrace)
	defer cancel()
	size, err := t.CheckpointSize(ctx)
	if err != nil {
		return err
	}
	if pid := t.PID(); pid != 0 {
		// Peak RSS of the mixed window, not of the prefill.
		if err := resetPeakRSS(pid); err != nil {
			slog.Warn("cannot reset peak RSS", "err", err)
		}
	}
	spec := loadSpec{Mode: modeMixed, Writers: b.cfg.MixedWriters, PerCall: 1, Duration: b.cfg.MixedDuration,
		Source: opaqueSource(b.cfg.EntrySize, int64(size))}
	rd := newMixedReaders(b.cfg, t.TileBaseURL(), size)
	self0, err := procCPU(os.Getpid())
	if err != nil {
		return err
	}
	t0 := time.Now()
	// With -profile, the first mixedProfile of the load.
	stopProfile := b.profile(ctx, t, fmt.Sprintf("round%d-%s-mixed", round, t.Name()), mixedProfile)
	p, err := b.phaseWith(ctx, t, spec, round, "peak", rd.run)
	stopProfile()
	if err != nil {
		return err
	}
	wall := time.Since(t0)
	self1, err := procCPU(os.Getpid())
	if err != nil {
		return err
	}
	m := rd.result(t.Name(), round, size, p)
	m.BenchCPUSeconds, m.BenchCPUCores = self1-self0, (self1-self0)/wall.Seconds()
	b.res.Mixed = append(b.res.Mixed, m)
	slog.Info("result", "target", t.Name(), "mode", modeMixed, "reads/s", int(m.ReadsPerSec), "read_errors", m.ReadErrors,
		"read_p50_ms", m.ReadLatency.P50, "read_p99_ms", m.ReadLatency.P99)
	return nil
}

// mixedReaders are the readers of one mixed load and what they saw.
type mixedReaders struct {
	cfg     Config
	base    string
	floor   uint64 // the tree size at the start: readers read below it at least
	hc      *http.Client
	limiter *rate.Limiter // nil: uncapped

	mu      sync.Mutex // guards the fields below
	kinds   map[string]*kindReads
	errs    map[string]int64 // by errorClass
	logged  int              // errors logged
	elapsed time.Duration
}

// kindReads is what the readers saw of one kind of read.
type kindReads struct {
	lat     []time.Duration
	wire    int64
	gzipped int64
}

func newMixedReaders(cfg Config, base string, size uint64) *mixedReaders {
	r := &mixedReaders{cfg: cfg, base: base, floor: size, hc: newHTTPClient(cfg.MixedReaders),
		kinds: map[string]*kindReads{readBundle: {}, readTile: {}}, errs: map[string]int64{}}
	if cfg.MixedReadRate > 0 {
		r.limiter = rate.NewLimiter(rate.Limit(cfg.MixedReadRate), 1)
	}
	return r
}

// run runs the readers until ctx ends (the write load ended),
// cfg.MixedDuration has passed or each has made mixedMaxReads reads,
// reading below the size of the latest checkpoint w saw.
func (r *mixedReaders) run(ctx context.Context, w *checkpointWatch) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.MixedDuration)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for i := range r.cfg.MixedReaders {
		wg.Go(func() { r.read(ctx, &getter{hc: r.hc}, rand.New(rand.NewPCG(uint64(i), rand.Uint64())), w) })
	}
	wg.Wait()
	r.mu.Lock()
	r.elapsed = time.Since(start)
	r.mu.Unlock()
	r.hc.CloseIdleConnections()
}

// read is one reader's loop.
func (r *mixedReaders) read(ctx context.Context, g *getter, rng *rand.Rand, w *checkpointWatch) {
	for range mixedMaxReads {
		if r.limiter != nil && r.limiter.Wait(ctx) != nil || ctx.Err() != nil {
			return
		}
		full := max(r.floor, w.latest()) / layout.TileWidth
		if full == 0 {
			return // prefilled: never
		}
		kind := readBundle
		if rng.Float64() < r.cfg.MixedTileShare {
			kind = readTile
		}
		rctx, cancel := context.WithTimeout(ctx, mixedReadTimeout)
		t0 := time.Now()
		got, err := fetchFull(rctx, g, r.base, kind, rng.Uint64N(full))
		lat := time.Since(t0)
		cancel()
		if err != nil && ctx.Err() != nil {
			return // cut by the end of the window: neither a read nor a failure
		}
		r.record(kind, got, lat, err)
	}
}

func (r *mixedReaders) record(kind string, g getResult, lat time.Duration, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.errs[errorClass(err)]++
		if r.logged < 5 {
			r.logged++
			slog.Warn("mixed read failed", "err", err)
		}
		return
	}
	k := r.kinds[kind]
	k.lat = append(k.lat, lat)
	k.wire += g.wire
	if g.gzipped {
		k.gzipped++
	}
}

// errorClass names the kind of a failed read for the counts.
func errorClass(err error) string {
	var se *statusError
	var be *badBodyError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("status %d", se.status)
	case errors.As(err, &be):
		return "bad body"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	}
	return "transport"
}

// result sums up the readers beside the write phase p.
func (r *mixedReaders) result(name string, round int, size uint64, p *Phase) *MixedResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := &MixedResult{Target: name, Round: round, Writers: r.cfg.MixedWriters, Readers: r.cfg.MixedReaders,
		ReadRateCap: r.cfg.MixedReadRate, TileShare: r.cfg.MixedTileShare, Prefill: size, Phase: p,
		ReadSeconds: r.elapsed.Seconds(), ReadErrorKinds: r.errs, Kinds: map[string]*MixedReads{}}
	var all []time.Duration
	for kind, k := range r.kinds {
		m.Kinds[kind] = &MixedReads{Reads: int64(len(k.lat)), PerSec: ratio(float64(len(k.lat)), r.elapsed.Seconds()),
			WireBytes: k.wire, Gzipped: k.gzipped, Latency: summarize(k.lat)}
		all = append(all, k.lat...)
	}
	m.Reads = int64(len(all))
	m.ReadsPerSec = ratio(float64(m.Reads), r.elapsed.Seconds())
	m.ReadLatency = summarize(all)
	for _, n := range r.errs {
		m.ReadErrors += n
	}
	return m
}

// MixedResult is one mixed load on one target.
type MixedResult struct {
	Target  string `json:"target"`
	Round   int    `json:"round"`
	Writers int    `json:"writers"`
	Readers int    `json:"readers"`
	// ReadRateCap is the cap on reads/s over all readers; 0 is none.
	ReadRateCap float64 `json:"read_rate_cap"`
	// TileShare is the fraction of reads that are hash tiles; the rest
	// are entry bundles.
	TileShare float64 `json:"tile_share"`
	// Prefill is the tree size when the load started.
	Prefill uint64 `json:"prefill"`
	// Phase is the writes: entries/s, add latency, time to a signed
	// checkpoint, and the server's CPU (reads included), peak RSS and disk
	// over the load.
	Phase       *Phase  `json:"phase"`
	ReadSeconds float64 `json:"read_seconds"`
	// BenchCPUSeconds is the CPU the bench process (writers, readers and
	// checkpoint poll) used over the load, on the same cores as the log;
	// BenchCPUCores is that over the load's wall time.
	BenchCPUSeconds float64 `json:"bench_cpu_seconds"`
	BenchCPUCores   float64 `json:"bench_cpu_cores"`
	// Reads are the successful reads, of both kinds.
	Reads       int64   `json:"reads"`
	ReadsPerSec float64 `json:"reads_per_sec"`
	ReadLatency Dist    `json:"read_latency"`
	// ReadErrors counts failed reads (not those cut by the end of the
	// window), by kind in ReadErrorKinds ("status 503", "timeout",
	// "bad body", "transport").
	ReadErrors     int64                  `json:"read_errors"`
	ReadErrorKinds map[string]int64       `json:"read_error_kinds"`
	Kinds          map[string]*MixedReads `json:"kinds"` // by readBundle, readTile
}

// MixedReads is one kind of read in a mixed load.
type MixedReads struct {
	Reads  int64   `json:"reads"`
	PerSec float64 `json:"reads_per_sec"`
	// WireBytes is the body bytes received; Gzipped counts the responses
	// served with Content-Encoding: gzip.
	WireBytes int64 `json:"wire_bytes"`
	Gzipped   int64 `json:"gzipped"`
	Latency   Dist  `json:"latency"`
}

// kind returns the reads of one kind, zero if none.
func (m *MixedResult) kind(k string) MixedReads {
	if r := m.Kinds[k]; r != nil {
		return *r
	}
	return MixedReads{}
}

// mixedMeans returns a target's mean writes/s and reads/s over the rounds.
func (r *Results) mixedMeans(name string) (writes, reads float64, n int) {
	for _, m := range r.Mixed {
		if m.Target == name {
			writes += m.Phase.PerSec
			reads += m.ReadsPerSec
			n++
		}
	}
	return ratio(writes, float64(n)), ratio(reads, float64(n)), n
}

// mixedRoundRatios returns provlog's writes/s and reads/s over Tessera's,
// round by round.
func (r *Results) mixedRoundRatios() (writes, reads []float64) {
	for _, p := range r.Mixed {
		if p.Target != "provlog" {
			continue
		}
		for _, t := range r.Mixed {
			if t.Target == "tessera" && t.Round == p.Round {
				writes = append(writes, ratio(p.Phase.PerSec, t.Phase.PerSec))
				reads = append(reads, ratio(p.ReadsPerSec, t.ReadsPerSec))
			}
		}
	}
	slices.Sort(writes)
	slices.Sort(reads)
	return writes, reads
}
