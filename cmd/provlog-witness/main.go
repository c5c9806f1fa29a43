// Command provlog-witness runs a C2SP transparency log witness: it cosigns
// checkpoints of the logs listed in its config file, pushed to it with
// add-checkpoint (C2SP tlog-witness) or polled from their tlog-tiles URLs,
// and keeps evidence of any inconsistency.
//
//	provlog-witness --config logs.txt
//
// serves on 127.0.0.1:7402 with state in ./provlog-witness-data. Without
// --key it uses DATA/witness.key, created (mode 0600, with its verifier key
// in DATA/witness.pub) on first start and named by --name. It prints its
// verifier key and HTTP address at start; SIGINT or SIGTERM stops it
// gracefully.
//
//	provlog-witness keygen --name example.com/w1 --key w1.key
//
// writes a new witness key to w1.key (mode 0600) and its verifier key to
// w1.key.pub, and prints the verifier key.
//
// The config file lists the logs, one "log <origin> <verifier key> [<url>]"
// per line (see witness.ParseLogList).
//
// The HTTP server bounds every connection (serverLimits): 10 s to send the
// request headers (at most 64 KiB), 30 s for the whole request, one minute
// to write a response, two minutes idle between requests; a client that
// sends or reads slowly is cut off rather than holding a handler.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/provlog/provlog/witness"
)

const defaultName = "localhost/provlog-witness"

type config struct {
	configFile, key, name, data, listen string
	pollInterval, shutdownTimeout       time.Duration
	logLevel                            slog.Level
	limits                              serverLimits
}

// serverLimits bound the HTTP server's connections, so that a client that
// sends or reads slowly cannot hold a handler or a connection for ever.
// Each zero field takes its default (newHTTPServer); tests set short ones.
type serverLimits struct {
	// readHeader bounds reading a request's headers. If zero, 10 s.
	readHeader time.Duration
	// read bounds reading a whole request, body included (at most
	// witness.MaxRequestSize, about 100 kB). If zero, 30 s.
	read time.Duration
	// write bounds writing a response, from the end of reading the request
	// headers. The largest responses are evidence pages (at most
	// witness.MaxEvidencePage records). If zero, one minute.
	write time.Duration
	// idle bounds how long a keep-alive connection waits for its next
	// request. If zero, two minutes.
	idle time.Duration
	// maxHeaderBytes caps a request's headers. If zero, 64 KiB.
	maxHeaderBytes int
}

// newHTTPServer returns the server for h, bounded by l.
func newHTTPServer(h http.Handler, l serverLimits) *http.Server {
	or := func(d, def time.Duration) time.Duration {
		if d == 0 {
			return def
		}
		return d
	}
	maxHeader := l.maxHeaderBytes
	if maxHeader == 0 {
		maxHeader = 64 << 10
	}
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: or(l.readHeader, 10*time.Second),
		ReadTimeout:       or(l.read, 30*time.Second),
		WriteTimeout:      or(l.write, time.Minute),
		IdleTimeout:       or(l.idle, 2*time.Minute),
		MaxHeaderBytes:    maxHeader,
	}
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "keygen" {
		os.Exit(keygen(os.Args[2:], os.Stdout, os.Stderr))
	}
	fs := flag.NewFlagSet("provlog-witness", flag.ContinueOnError)
	var c config
	fs.StringVar(&c.configFile, "config", "", "log list `file`: lines \"log <origin> <verifier key> [<tlog-tiles URL>]\" (required)")
	fs.StringVar(&c.key, "key", "", "witness note private key `file` (default DATA/witness.key, created if absent)")
	fs.StringVar(&c.name, "name", defaultName, "witness key name, used when a new key is created")
	fs.StringVar(&c.data, "data", "provlog-witness-data", "data `directory` (created if absent)")
	fs.StringVar(&c.listen, "listen", "127.0.0.1:7402", "HTTP listen `address` (add-checkpoint, checkpoints, evidence, /metrics, /healthz)")
	fs.DurationVar(&c.pollInterval, "poll-interval", time.Minute, "how often logs with a URL are polled")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 10*time.Second, "how long a shutdown waits for in-flight requests")
	fs.TextVar(&c.logLevel, "log-level", slog.LevelInfo, "log `level`: debug, info, warn, error")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: provlog-witness [flags]\n       provlog-witness keygen --name NAME --key FILE\n\nRuns a C2SP tlog-witness for the logs in --config.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		os.Exit(2)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "provlog-witness: unexpected arguments %q\n", fs.Args())
		os.Exit(2)
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: c.logLevel})))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "provlog-witness: %v\n", err)
		os.Exit(1)
	}
}

func keygen(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("provlog-witness keygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "", "witness key `name`, a schemeless URL such as example.com/w1 (required)")
	key := fs.String("key", "", "private key `file` to create, mode 0600; the verifier key goes to FILE.pub (required)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: provlog-witness keygen --name NAME --key FILE\n\nCreates a witness cosigning key (Ed25519, C2SP cosignature/v1) and prints its verifier key.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *name == "" || *key == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "provlog-witness keygen: --name and --key are required, and no arguments")
		return 2
	}
	k, err := witness.CreateKey(*key, *key+".pub", *name)
	if err != nil {
		fmt.Fprintf(stderr, "provlog-witness keygen: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "verifier key: %s\n", k.Verifier)
	return 0
}

func run(ctx context.Context, c config, stdout io.Writer) error {
	if c.configFile == "" {
		return errors.New("--config is required (a file of \"log <origin> <verifier key> [<url>]\" lines)")
	}
	if c.pollInterval <= 0 {
		return fmt.Errorf("--poll-interval %s must be positive", c.pollInterval)
	}
	raw, err := os.ReadFile(c.configFile)
	if err != nil {
		return fmt.Errorf("reading config: %w", err)
	}
	logs, err := witness.ParseLogList(raw)
	if err != nil {
		return fmt.Errorf("config %s: %w", c.configFile, err)
	}
	if err := os.MkdirAll(c.data, 0o700); err != nil {
		return fmt.Errorf("creating data directory: %w", err)
	}
	key, err := loadKey(c)
	if err != nil {
		return err
	}
	state, err := witness.OpenState(filepath.Join(c.data, "db"), witness.StateOptions{})
	if err != nil {
		return err
	}
	defer state.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	w, err := witness.New(witness.Config{
		Signer:       key.Signer,
		Logs:         logs,
		State:        state,
		PollInterval: c.pollInterval,
		Registry:     reg,
	})
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", c.listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	hs := newHTTPServer(w.Handler(), c.limits)
	fmt.Fprintf(stdout, "provlog-witness: %s witnessing %d logs\n", key.Signer.Name(), len(logs))
	fmt.Fprintf(stdout, "verifier key: %s\n", key.Verifier)
	fmt.Fprintf(stdout, "http: http://%s/\n", l.Addr())

	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(l) }()
	pollCtx, stopPolling := context.WithCancel(ctx)
	polled := make(chan struct{})
	go func() { w.Run(pollCtx); close(polled) }()
	select {
	case <-ctx.Done():
		slog.Info("shutting down")
		err = nil
	case err = <-errc:
		err = fmt.Errorf("HTTP server failed: %w", err)
	}
	stopPolling()
	sctx, cancel := context.WithTimeout(context.Background(), c.shutdownTimeout)
	defer cancel()
	if herr := hs.Shutdown(sctx); herr != nil {
		hs.Close()
	}
	<-polled
	return err
}

// loadKey loads --key, or DATA/witness.key, creating the latter if absent.
func loadKey(c config) (*witness.Key, error) {
	if c.key != "" {
		return witness.LoadKey(c.key)
	}
	file, pub := filepath.Join(c.data, "witness.key"), filepath.Join(c.data, "witness.pub")
	k, err := witness.LoadKey(file)
	if errors.Is(err, os.ErrNotExist) {
		if k, err = witness.CreateKey(file, pub, c.name); err == nil {
			slog.Info("created witness key", "file", file, "name", c.name)
		}
		return k, err
	}
	if err != nil {
		return nil, err
	}
	// A crash may have left the key without its pub file.
	return k, witness.EnsurePub(pub, k)
}
