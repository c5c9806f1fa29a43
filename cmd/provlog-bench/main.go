// Command provlog-bench measures provlog beside Tessera's POSIX driver on
// the same machine in the same run, and grows one provlog log to millions
// of entries.
//
//	go run ./cmd/provlog-bench -out docs/bench          # the whole suite (tens of minutes)
//	go run ./cmd/provlog-bench -quick -out /tmp/bench   # the whole suite in about a minute
//
// It builds provlogd from the module in the current directory and starts it
// as a child process (--admission open, a fresh temporary data directory,
// ports 127.0.0.1:0) for every phase, and runs Tessera's POSIX driver in
// process (its own library code, fsynced like provlog: an index only once
// durable), alternating the two: provlog, Tessera, provlog, Tessera…
//
// The suite, for each of -rounds rounds:
//
//   - batch (gRPC AppendBatch), stream (AppendStream), single (Append) and
//     http (POST /add) loads of opaque entries, each against provlog and
//     then Tessera with the same writers and entries per call (a Tessera
//     writer Adds each entry of its call and waits for all the futures);
//   - after the batch load, the same load at half its peak rate, then
//     inclusion-proof reads (provlog) and full-tile reads (both; Tessera's
//     directory served by http.FileServer);
//   - signed build events through a provlogd admitting attestations,
//     beside the rate of signature verification alone, measured just
//     before on the same machine;
//   - the mixed load (-mode mixed runs -rounds of it alone), in the spirit
//     of Tessera's hammer: on a log prefilled with -mixed-prefill entries
//     (262,144 by default: 1,024 full bundles), -mixed-writers writers
//     (256) POST /add one 1 KiB random entry each while -mixed-readers
//     readers (64) GET random full entry bundles and level-0 hash tiles
//     (-mixed-tile-share of them tiles, 0.5) below the latest checkpoint,
//     sending Accept-Encoding: gzip, at most -mixed-read-rate reads/s
//     over all (1,024; 0 uncapped), for -mixed-duration (20s). Tessera's
//     log is prefilled by the library in this process, then served by
//     this binary re-executed as "provlog-bench serve-tessera" (POST /add
//     answering once the entry is durable and integrated, and
//     http.FileServer on its directory, as its conformance server does),
//     so that its CPU and memory are its own;
//
// then the scale run: one log grown to -scale-entries with batched appends,
// throughput and proof latency along the way, memory, disk and a restart.
//
// Each load reports durable appends/s, ack latency, the time from a call to
// the first verified signed checkpoint that covers it (polled every 2 ms:
// GetCheckpoint for provlog, the checkpoint file for Tessera), server CPU
// seconds per 1,000 entries (/proc/PID/stat), peak RSS (VmHWM) and disk
// per entry: the bytes allocated (du: stat blocks, preallocated WAL space
// included) beside the apparent size. With -out it writes results.json,
// summary.md (the tables for BENCHMARKS.md) and the plots (PNG and SVG).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == serveTesseraCommand {
		os.Exit(serveTesseraMain(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == replicasCommand {
		os.Exit(replicasMain(os.Args[2:]))
	}
	cfg, quick := parseFlags()
	if quick {
		applyQuick(&cfg)
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, nil)))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		fmt.Fprintf(os.Stderr, "provlog-bench: %v\n", err)
		os.Exit(1)
	}
}

func parseFlags() (Config, bool) {
	var c Config
	var quick bool
	flag.StringVar(&c.Mode, "mode", "suite", "what to run: suite, scale, or one load mode: batch, stream, single, http, events, or mixed (-rounds rounds of it)")
	flag.StringVar(&c.Targets, "targets", "both", "logs to load: both (alternating), provlog or tessera")
	flag.IntVar(&c.Writers, "writers", 0, "concurrent writers (default: 64 for single and http, 8 for batch and events, 32 for stream)")
	flag.IntVar(&c.Batch, "batch", 256, "entries per call in batch, stream and events modes")
	flag.Float64Var(&c.Rate, "rate", 0, "target entries/s over all writers (0: as fast as acknowledged)")
	flag.DurationVar(&c.Duration, "duration", 10*time.Second, "length of each load")
	flag.Int64Var(&c.Entries, "entries", 0, "entries per load, instead of -duration")
	flag.IntVar(&c.EntrySize, "entry-size", 1024, "opaque entry size in `bytes`")
	flag.IntVar(&c.Rounds, "rounds", 2, "times the suite alternates provlog and Tessera")
	flag.DurationVar(&c.ReadDuration, "read-duration", 5*time.Second, "length of each read measurement (and of the verification bound)")
	flag.IntVar(&c.ReadWorkers, "readers", 32, "concurrent readers")
	flag.IntVar(&c.Events, "events", 60000, "signed events per events load")
	flag.Int64Var(&c.ScaleEntries, "scale-entries", 10_000_000, "entries the scale run grows one log to")
	flag.DurationVar(&c.ScaleBudget, "scale-budget", 25*time.Minute, "stop the scale run's growth at the last point reached after this long")
	flag.IntVar(&c.ScalePoints, "scale-points", 10, "points on the scale curve")
	flag.IntVar(&c.MixedWriters, "mixed-writers", 256, "mixed phase: concurrent writers over POST /add, one entry per request")
	flag.IntVar(&c.MixedReaders, "mixed-readers", 64, "mixed phase: concurrent readers of random full entry bundles and hash tiles")
	flag.Float64Var(&c.MixedReadRate, "mixed-read-rate", 1024, "mixed phase: cap on reads/s over all readers (0: uncapped)")
	flag.Float64Var(&c.MixedTileShare, "mixed-tile-share", 0.5, "mixed phase: fraction of reads that are level-0 hash tiles, the rest entry bundles")
	flag.Int64Var(&c.MixedPrefill, "mixed-prefill", 1<<18, "mixed phase: entries each log holds before the load")
	flag.DurationVar(&c.MixedDuration, "mixed-duration", 20*time.Second, "mixed phase: length of the load")
	tesseraFlags(flag.CommandLine, &c.Tessera)
	flag.StringVar(&c.Provlogd, "provlogd", "", "provlogd `binary` (default: built from the module in the current directory)")
	flag.StringVar(&c.GRPCAddr, "grpc", "", "gRPC `address` of a running provlogd to load instead of starting one (run it with --admission open; give -http and -verifier-key too)")
	flag.StringVar(&c.HTTPURL, "http", "", "HTTP base `URL` of that provlogd")
	flag.StringVar(&c.VerifierKey, "verifier-key", "", "note verifier `key` of that provlogd")
	flag.StringVar(&c.Out, "out", "", "`directory` for results.json, summary.md and the plots")
	flag.StringVar(&c.ProfileDir, "profile", "", "`directory` for CPU profiles of provlogd and of the bench during the inclusion-proof reads, the signed-events loads and the mixed load")
	flag.BoolVar(&quick, "quick", false, "the whole suite in about a minute: short loads, one round, a small scale run")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "Usage: provlog-bench [flags]\n\nMeasures provlog beside Tessera's POSIX driver. Run it from the provlog module.\n\nFlags:\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "provlog-bench: unexpected arguments %q\n", flag.Args())
		os.Exit(2)
	}
	return c, quick
}

// applyQuick shortens what the flags left at their defaults.
func applyQuick(c *Config) {
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["duration"] {
		c.Duration = 2 * time.Second
	}
	if !set["rounds"] {
		c.Rounds = 1
	}
	if !set["read-duration"] {
		c.ReadDuration = time.Second
	}
	if !set["events"] {
		c.Events = 10000
	}
	if !set["scale-entries"] {
		c.ScaleEntries = 200_000
	}
	if !set["scale-points"] {
		c.ScalePoints = 4
	}
	if !set["mixed-prefill"] {
		c.MixedPrefill = 1 << 16
	}
	if !set["mixed-duration"] {
		c.MixedDuration = 5 * time.Second
	}
}

func run(ctx context.Context, cfg Config) error {
	res, err := Run(ctx, cfg)
	if res != nil {
		res.writeMarkdown(os.Stdout)
		if cfg.Out != "" {
			if werr := res.write(cfg.Out); werr != nil {
				return werr
			}
			if perr := res.plots(cfg.Out); perr != nil {
				return perr
			}
		}
	}
	return err
}
