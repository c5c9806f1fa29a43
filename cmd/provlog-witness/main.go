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
// As provlogd does, it binds --listen before it writes anything (a busy
// port fails the start with nothing created) and listens only once its key
// and state are ready. "provlog-witness --help" gives the flags, examples
// and exit codes; flags are written --flag, as provlog's are (the older
// -flag is still read). --version prints the build (internal/buildinfo).
//
// The HTTP server bounds every connection (serverLimits): 10 s to send the
// request headers (at most 64 KiB), 30 s for the whole request, one minute
// to write a response, two minutes idle between requests; a client that
// sends or reads slowly is cut off rather than holding a handler.
package main

import (
	"context"
	"errors"
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
	"github.com/spf13/cobra"

	"github.com/provlog/provlog/internal/daemon"
	"github.com/provlog/provlog/witness"
)

const defaultName = "localhost/provlog-witness"

type config struct {
	configFile, key, name, data, listen string
	pollInterval, shutdownTimeout       time.Duration
	logging                             daemon.Logging
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

const long = `provlog-witness runs a C2SP tlog-witness for the logs its --config file
lists, one "log <origin> <verifier key> [<tlog-tiles URL>]" line each: it
cosigns a log's checkpoint only if it is consistent with the largest one
it has cosigned of that log, so it never cosigns a fork, and it keeps the
evidence when it sees one. Logs push checkpoints to it (POST
/add-checkpoint, C2SP tlog-witness); a log given with a URL is also
polled every --poll-interval.

It serves on --listen: POST /add-checkpoint, each log's cosigned
checkpoint at /<hex sha256(origin)>/checkpoint, the fork evidence it keeps
at /evidence (?limit=N, paged with a Link header), GET /metrics
(Prometheus) and GET /healthz. Its state is in DATA/db.

Without --key it uses DATA/witness.key, created on first start (mode
0600, named --name, with its verifier key in DATA/witness.pub). It binds
--listen before it writes anything, so a busy port fails the start with
nothing created, and accepts connections only once its key files exist.
Then it prints on stdout:

  provlog-witness: localhost/provlog-witness witnessing 1 logs
  verifier key: localhost/provlog-witness+5a6b7c8d+BPq...
  http: http://127.0.0.1:7402/

SIGINT or SIGTERM stops it gracefully.

` + daemon.ExitCodesHelp

const example = `  # Witness the log of ./provlog-data, on 127.0.0.1:7402.
  echo "log localhost/provlog $(cat provlog-data/log.pub)" > logs.conf
  provlog-witness --config logs.conf --data /tmp/w1

  # Also poll a tlog-tiles log every 30 s.
  echo "log example.com/log example.com/log+1a2b3c4d+AX... https://log.example.com/" >> logs.conf
  provlog-witness --config logs.conf --poll-interval 30s

  # A key made beforehand, then the witness line of a log's witness policy.
  provlog-witness keygen --name example.com/w1 --key w1.key
  provlog-witness --config logs.conf --key w1.key --listen 0.0.0.0:7402
  echo "witness w1 $(cat w1.key.pub) https://w1.example.com/" >> witnesses.policy`

func main() {
	os.Exit(execute(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// execute runs provlog-witness with args and returns its exit code.
func execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return daemon.Execute(ctx, newCommand(stdout, stderr), args, stdout, stderr)
}

// newCommand returns the provlog-witness command and its keygen
// subcommand.
func newCommand(stdout, stderr io.Writer) *cobra.Command {
	var c config
	cmd := &cobra.Command{
		Use:     "provlog-witness --config FILE [flags]",
		Short:   "Run a C2SP transparency log witness",
		Long:    long,
		Example: example,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := c.check(); err != nil {
				return err // a usage error
			}
			slog.SetDefault(c.logging.Logger(stderr))
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return daemon.Failure(run(ctx, c, stdout))
		},
	}
	f := cmd.Flags()
	f.SortFlags = false
	f.StringVar(&c.configFile, "config", "", "log list `file`: lines \"log <origin> <verifier key> [<tlog-tiles URL>]\" (required)")
	f.StringVar(&c.data, "data", "provlog-witness-data", "data `directory` (created if absent): the state in DATA/db, the key beside it")
	f.StringVar(&c.key, "key", "", "witness note private key `file` (default DATA/witness.key, created if absent)")
	f.StringVar(&c.name, "name", defaultName, "witness key `name`, used when a new key is created")
	f.StringVar(&c.listen, "listen", "127.0.0.1:7402", "HTTP listen `address` (add-checkpoint, checkpoints, evidence, /metrics, /healthz)")
	f.DurationVar(&c.pollInterval, "poll-interval", time.Minute, "how often logs with a URL are polled")
	f.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 10*time.Second, "how long a shutdown waits for in-flight requests")
	c.logging.AddFlags(cmd)
	cmd.AddCommand(newKeygenCommand(stdout))
	return cmd
}

func newKeygenCommand(stdout io.Writer) *cobra.Command {
	var name, key string
	cmd := &cobra.Command{
		Use:   "keygen --name NAME --key FILE",
		Short: "Create a witness cosigning key",
		Long: `Create a witness cosigning key (Ed25519, C2SP cosignature/v1) named NAME:
the private key in FILE (mode 0600, never replacing an existing file) and
its verifier key in FILE.pub, which it also prints.

Exit codes: 0 created; 1 FILE exists or cannot be written; 2 usage.`,
		Example: `  provlog-witness keygen --name example.com/w1 --key w1.key
  provlog-witness --config logs.conf --key w1.key`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" || key == "" {
				return errors.New("--name and --key are required")
			}
			k, err := witness.CreateKey(key, key+".pub", name)
			if err != nil {
				return daemon.Failure(err)
			}
			fmt.Fprintf(stdout, "verifier key: %s\n", k.Verifier)
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "witness key `name`, a schemeless URL such as example.com/w1 (required)")
	cmd.Flags().StringVar(&key, "key", "", "private key `file` to create, mode 0600; the verifier key goes to FILE.pub (required)")
	return cmd
}

// check checks the flags' values that need no file.
func (c config) check() error {
	if c.configFile == "" {
		return errors.New(`--config is required (a file of "log <origin> <verifier key> [<url>]" lines)`)
	}
	if c.pollInterval <= 0 {
		return fmt.Errorf("--poll-interval %s must be positive", c.pollInterval)
	}
	return nil
}

// testHookReserved, nil outside tests, runs once --listen is bound,
// before anything is written.
var testHookReserved func(net.Addr)

// run runs the witness until ctx ends or its server fails. As provlogd
// does, it reads its configuration, binds --listen (a busy port fails
// here, before the data directory is touched), creates or opens the key
// and state, and only then listens.
func run(ctx context.Context, c config, stdout io.Writer) error {
	if err := c.check(); err != nil {
		return err
	}
	raw, err := os.ReadFile(c.configFile)
	if err != nil {
		return fmt.Errorf("reading config: %w", err)
	}
	logs, err := witness.ParseLogList(raw)
	if err != nil {
		return fmt.Errorf("config %s: %w", c.configFile, err)
	}
	port, err := daemon.Reserve("listen", c.listen)
	if err != nil {
		return err
	}
	defer port.Close()
	if testHookReserved != nil {
		testHookReserved(port.Addr())
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
	daemon.RegisterBuildInfo(reg, "provlog_witness")
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
	hs := newHTTPServer(daemon.NewHTTPMetrics(reg, "provlog_witness").Handler(w.Handler()), c.limits)
	l, err := port.Listen()
	if err != nil {
		return err
	}
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
