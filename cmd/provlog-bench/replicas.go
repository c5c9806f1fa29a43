package main

// provlog-bench replicas: provlogd on Pebble beside provlogd replicas on
// PostgreSQL (issue 14), in one run on one machine:
//
//	go run ./cmd/provlog-bench replicas -out /tmp/bench-replicas
//
// Pebble: one provlogd. PostgreSQL: -replicas provlogd processes
// (default 3) sharing one database (a throwaway cluster made with
// internal/pgtest, fsync and synchronous_commit on, unless -pg-dsn names
// one) and one log key, with --lease-ttl -lease-ttl. For each backend:
// batched (AppendBatch) and single-entry (Append) loads, with durable
// entries/s, ack latency and the time to the first verified checkpoint
// covering each call; for PostgreSQL also the batched load through a
// follower (forwarded to the leader), inclusion-proof reads through a
// follower, and -failovers SIGKILLs of the leader, each timed from the
// SIGKILL to the first acknowledged append sent after it (and to the
// lease row naming the new leader), the killed replica restarted as a
// follower before the next.

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// replicasCommand is the subcommand that runs this benchmark.
const replicasCommand = "replicas"

// replicasConfig is the replicas benchmark's flags.
type replicasConfig struct {
	Duration      time.Duration
	Batch         int
	BatchWriters  int
	SingleWriters int
	EntrySize     int
	Replicas      int
	LeaseTTL      time.Duration
	Failovers     int
	Readers       int
	ReadDuration  time.Duration
	PGDSN         string
	Provlogd      string
	Out           string
}

// ReplicaLoad is one load's figures.
type ReplicaLoad struct {
	Backend    string  `json:"backend"` // pebble or postgres
	Mode       string  `json:"mode"`    // batch or single
	Via        string  `json:"via"`     // leader or follower
	Writers    int     `json:"writers"`
	PerCall    int     `json:"per_call"`
	Entries    int64   `json:"entries"`
	PerSec     float64 `json:"entries_per_s"`
	Ack        Dist    `json:"ack"`
	Checkpoint Dist    `json:"checkpoint"`
	Uncovered  int     `json:"calls_without_checkpoint"`
	Pushbacks  int64   `json:"pushbacks"`
}

// ReplicaReads is the proof reads through a follower.
type ReplicaReads struct {
	Readers  int     `json:"readers"`
	TreeSize uint64  `json:"tree_size"`
	Reads    int     `json:"reads"`
	Errors   int     `json:"errors"`
	PerSec   float64 `json:"reads_per_s"`
	Latency  Dist    `json:"latency"`
}

// ReplicaResults is the whole run.
type ReplicaResults struct {
	Machine   Machine         `json:"machine"`
	Commit    string          `json:"commit"`
	Started   time.Time       `json:"started"`
	LeaseTTL  string          `json:"lease_ttl"`
	Replicas  int             `json:"replicas"`
	Loads     []ReplicaLoad   `json:"loads"`
	Reads     *ReplicaReads   `json:"proof_reads_via_follower,omitempty"`
	Failovers *FailoverResult `json:"failovers,omitempty"`
}

func replicasMain(args []string) int {
	fs := flag.NewFlagSet("provlog-bench "+replicasCommand, flag.ExitOnError)
	var c replicasConfig
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "length of each load")
	fs.IntVar(&c.Batch, "batch", 1024, "entries per AppendBatch call (8 writers × 1024: two full sequencing rounds of 4096 in flight)")
	fs.IntVar(&c.BatchWriters, "batch-writers", 8, "concurrent writers of the batched loads")
	fs.IntVar(&c.SingleWriters, "single-writers", 64, "concurrent writers of the single-entry loads")
	fs.IntVar(&c.EntrySize, "entry-size", 1024, "opaque entry size in `bytes`")
	fs.IntVar(&c.Replicas, "replicas", 3, "provlogd replicas on PostgreSQL")
	fs.DurationVar(&c.LeaseTTL, "lease-ttl", 2*time.Second, "the replicas' --lease-ttl")
	fs.IntVar(&c.Failovers, "failovers", 20, "SIGKILLs of the leader to time (0: none)")
	fs.IntVar(&c.Readers, "readers", 32, "concurrent inclusion-proof readers through a follower")
	fs.DurationVar(&c.ReadDuration, "read-duration", 5*time.Second, "length of the proof reads")
	fs.StringVar(&c.PGDSN, "pg-dsn", "", "PostgreSQL `URL` of an empty database to use (default: a throwaway cluster, initdb from /usr/lib/postgresql/*/bin)")
	fs.StringVar(&c.Provlogd, "provlogd", "", "provlogd `binary` (default: built from the module in the current directory)")
	fs.StringVar(&c.Out, "out", "", "`directory` for replicas.json and replicas.md")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: provlog-bench %s [flags]\n\nMeasures provlogd on Pebble beside provlogd replicas on PostgreSQL, failovers included.\n\nFlags:\n", replicasCommand)
		fs.PrintDefaults()
	}
	fs.Parse(args) //nolint:errcheck // ExitOnError
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "provlog-bench %s: unexpected arguments %q\n", replicasCommand, fs.Args())
		return 2
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, nil)))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := runReplicas(ctx, c)
	if res != nil {
		res.writeMarkdown(os.Stdout)
		if c.Out != "" {
			if werr := res.write(c.Out); werr != nil && err == nil {
				err = werr
			}
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "provlog-bench %s: %v\n", replicasCommand, err)
		return 1
	}
	return 0
}

func runReplicas(ctx context.Context, c replicasConfig) (*ReplicaResults, error) {
	dir, err := os.MkdirTemp("", "provlog-bench-replicas-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	bin := c.Provlogd
	if bin == "" {
		if bin, err = buildProvlogd(ctx, dir); err != nil {
			return nil, err
		}
	}
	res := &ReplicaResults{Machine: machine(), Commit: gitCommit(), Started: time.Now().UTC(), LeaseTTL: c.LeaseTTL.String(), Replicas: c.Replicas}

	// Pebble: one provlogd.
	slog.Info("pebble: starting provlogd")
	pdir := filepath.Join(dir, "pebble")
	p, _, err := startProvlogd(ctx, provlogdArgs{bin: bin, dataDir: pdir, logFile: pdir + ".log"})
	if err != nil {
		return res, err
	}
	for _, mode := range []string{modeBatch, modeSingle} {
		l, err := c.load(ctx, p, "pebble", mode, "leader")
		if err != nil {
			p.Close()
			return res, err
		}
		res.Loads = append(res.Loads, l)
	}
	if err := p.Close(); err != nil {
		return res, err
	}

	// PostgreSQL: replicas sharing a database.
	dsn, stopPG, err := postgresFor(ctx, c.PGDSN)
	if err != nil {
		return res, err
	}
	defer stopPG()
	s, err := newReplicaSet(bin, filepath.Join(dir, "postgres"), dsn, c.Replicas, c.LeaseTTL)
	if err != nil {
		return res, err
	}
	defer s.close()
	for _, r := range s.reps {
		slog.Info("postgres: starting replica", "name", r.name, "grpc", r.grpcAddr)
		if err := s.start(ctx, r); err != nil {
			return res, err
		}
	}
	leader, _, err := s.leader(ctx, nil, 0, 30*time.Second)
	if err != nil {
		return res, err
	}
	follower := s.followers(leader)[0]
	for _, r := range s.reps {
		slog.Info("postgres: replica", "name", r.name, "healthz", r.healthz())
	}
	for _, run := range []struct {
		mode, via string
		r         *replica
	}{{modeBatch, "leader", leader}, {modeSingle, "leader", leader}, {modeBatch, "follower", follower}} {
		l, err := c.load(ctx, run.r.p, "postgres", run.mode, run.via)
		if err != nil {
			return res, err
		}
		res.Loads = append(res.Loads, l)
	}
	if res.Reads, err = c.proofReads(ctx, follower.p); err != nil {
		return res, err
	}
	if c.Failovers > 0 {
		res.Failovers, err = s.failovers(ctx, c.Failovers)
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

// load runs one load against p and measures it.
func (c replicasConfig) load(ctx context.Context, p *provlog, backend, mode, via string) (ReplicaLoad, error) {
	writers, per := c.BatchWriters, c.Batch
	if mode == modeSingle {
		writers, per = c.SingleWriters, 1
	}
	slog.Info("load", "backend", backend, "mode", mode, "via", via, "writers", writers, "per call", per)
	w := watchCheckpoints(p)
	lr, err := runLoad(ctx, p, loadSpec{Mode: mode, Writers: writers, PerCall: per, Duration: c.Duration,
		Source: opaqueSource(c.EntrySize, rand.Int64()), Progress: 2 * time.Second})
	if err != nil {
		w.close()
		return ReplicaLoad{}, fmt.Errorf("%s %s load via the %s: %w", backend, mode, via, err)
	}
	if err := w.waitFor(ctx, lr.maxIndex()+1, 30*time.Second); err != nil {
		w.close()
		return ReplicaLoad{}, fmt.Errorf("%s %s load via the %s: %w", backend, mode, via, err)
	}
	seen, err := w.close()
	if err != nil {
		return ReplicaLoad{}, err
	}
	ttc, uncovered := timeToCheckpoint(lr.calls, seen)
	l := ReplicaLoad{Backend: backend, Mode: mode, Via: via, Writers: writers, PerCall: per, Entries: lr.entries,
		PerSec: lr.perSecond(), Ack: summarize(lr.ackLatencies()), Checkpoint: summarize(ttc), Uncovered: uncovered, Pushbacks: lr.pushbacks}
	slog.Info("load done", "backend", backend, "mode", mode, "via", via, "entries/s", int(l.PerSec), "ack p50 ms", l.Ack.P50, "checkpoint p50 ms", l.Checkpoint.P50)
	return l, nil
}

// proofReads reads inclusion proofs of random entries at the latest
// checkpoint through p (a follower) with c.Readers readers.
func (c replicasConfig) proofReads(ctx context.Context, p *provlog) (*ReplicaReads, error) {
	size, err := p.CheckpointSize(ctx)
	if err != nil {
		return nil, err
	}
	slog.Info("proof reads through a follower", "readers", c.Readers, "tree size", size)
	lat := make([][]time.Duration, c.Readers)
	errs := make([]int, c.Readers)
	deadline := time.Now().Add(c.ReadDuration)
	start := time.Now()
	done := make(chan struct{})
	for i := range c.Readers {
		read := proofRead(p, size)(i)
		rng := rand.New(rand.NewPCG(uint64(i), 7))
		go func() {
			defer func() { done <- struct{}{} }()
			for time.Now().Before(deadline) && ctx.Err() == nil {
				t0 := time.Now()
				cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				err := read(cctx, rng)
				cancel()
				if err != nil {
					errs[i]++
					continue
				}
				lat[i] = append(lat[i], time.Since(t0))
			}
		}()
	}
	for range c.Readers {
		<-done
	}
	elapsed := time.Since(start)
	r := &ReplicaReads{Readers: c.Readers, TreeSize: size}
	var all []time.Duration
	for i := range lat {
		all = append(all, lat[i]...)
		r.Errors += errs[i]
	}
	r.Reads, r.PerSec, r.Latency = len(all), float64(len(all))/elapsed.Seconds(), summarize(all)
	if r.Errors > 0 && r.Reads == 0 {
		return r, fmt.Errorf("every proof read through the follower failed (%d)", r.Errors)
	}
	return r, nil
}

func (r *ReplicaResults) write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "replicas.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	var md strings.Builder
	r.writeMarkdown(&md)
	return os.WriteFile(filepath.Join(dir, "replicas.md"), []byte(md.String()), 0o644)
}

func (r *ReplicaResults) writeMarkdown(w io.Writer) {
	fmt.Fprintf(w, "## Replicas: Pebble beside PostgreSQL (%d replicas, lease TTL %s)\n\n", r.Replicas, r.LeaseTTL)
	fmt.Fprintf(w, "%s, %d CPUs, %s, commit %s, %s\n\n", r.Machine.CPUModel, r.Machine.CPUs, r.Machine.Go, r.Commit, r.Started.Format(time.RFC3339))
	fmt.Fprintln(w, "| backend | load | via | writers × entries | entries/s | ack p50 / p99 / max ms | to checkpoint p50 / p99 ms | pushbacks |")
	fmt.Fprintln(w, "| --- | --- | --- | --- | ---: | --- | --- | ---: |")
	for _, l := range r.Loads {
		fmt.Fprintf(w, "| %s | %s | %s | %d × %d | %s | %s | %s | %d |\n", l.Backend, l.Mode, l.Via, l.Writers, l.PerCall,
			fmtRate(l.PerSec), fmtAck(l.Ack), fmtTTC(l.Checkpoint, l.Uncovered), l.Pushbacks)
	}
	if rd := r.Reads; rd != nil {
		fmt.Fprintf(w, "\nInclusion proofs through a follower (tree of %d, %d readers): %s reads/s, latency p50 / p99 / max %.1f / %.1f / %.0f ms, %d errors.\n",
			rd.TreeSize, rd.Readers, fmtRate(rd.PerSec), rd.Latency.P50, rd.Latency.P99, rd.Latency.Max, rd.Errors)
	}
	if f := r.Failovers; f != nil && len(f.Runs) > 0 {
		fmt.Fprintf(w, "\nFailover (SIGKILL of the leader, lease TTL %.0f ms), %d runs: to the first acknowledged append p50 %.0f ms, p90 %.0f ms, max %.0f ms; to the new lease holder p50 %.0f ms, max %.0f ms.\n",
			f.LeaseTTLMS, len(f.Runs), f.Ack.P50, f.Ack.P90, f.Ack.Max, f.Lease.P50, f.Lease.Max)
		fmt.Fprintln(w, "\n| run | killed | new leader | to lease ms | to ack ms | failed appends |")
		fmt.Fprintln(w, "| ---: | --- | --- | ---: | ---: | ---: |")
		for i, run := range f.Runs {
			fmt.Fprintf(w, "| %d | %s | %s | %.0f | %.0f | %d |\n", i, run.Killed, run.Leader, run.LeaseMS, run.AckMS, run.Failed)
		}
	}
}
