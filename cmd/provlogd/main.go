// Command provlogd runs a provlog transparency log: a gRPC service
// (provlog.v1.Log) and an HTTP server (C2SP tlog-tiles, POST /add, metrics,
// health) over an embedded Pebble store.
//
//	go run ./cmd/provlogd
//
// runs a working log with data in ./provlog-data, gRPC on 127.0.0.1:7400 and
// HTTP on 127.0.0.1:7401. On first start it creates the log key
// (DATA/log.key, mode 0600) and its verifier key (DATA/log.pub), and prints
// the verifier key and both addresses. SIGINT or SIGTERM drains: queued
// adds are committed and acknowledged, or failed, before it exits.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	plog "github.com/provlog/provlog/log"
	"github.com/provlog/provlog/log/server"
	"github.com/provlog/provlog/storage"
	"github.com/provlog/provlog/witness"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// defaultOrigin names a new log when neither --origin nor a key is given.
const defaultOrigin = "localhost/provlog"

// debugWriteTimeout bounds a response of the profiler, a profile or trace
// of up to about this long included.
const debugWriteTimeout = 2 * time.Minute

type config struct {
	data, origin, key      string
	grpcListen, httpListen string
	debugListen            string
	admission, keyring     string
	auth                   string
	witnessPolicy          string
	witnessFailOpen        bool
	witnessInterval        time.Duration
	tlsCert, tlsKey        string
	clientCA               string
	maxEntrySize           int
	batchMaxEntries        int
	batchMaxAge            time.Duration
	queueMaxEntries        int
	readConcurrency        int
	shutdownTimeout        time.Duration
	logLevel               slog.Level
}

func main() {
	var c config
	flag.StringVar(&c.data, "data", "provlog-data", "data `directory` (created if absent)")
	flag.StringVar(&c.origin, "origin", "", "log origin, a schemeless URL; also the key's name (default: the key's name, or "+defaultOrigin+" for a new log)")
	flag.StringVar(&c.key, "key", "", "note private key `file` (default DATA/log.key, created if absent)")
	flag.StringVar(&c.grpcListen, "grpc-listen", "127.0.0.1:7400", "gRPC listen `address`")
	flag.StringVar(&c.httpListen, "http-listen", "127.0.0.1:7401", "HTTP listen `address` (tlog-tiles, POST /add, /metrics, /healthz)")
	flag.StringVar(&c.debugListen, "debug-listen", "", "`address` serving Go's profiler at /debug/pprof/ (off by default; keep it private)")
	flag.StringVar(&c.admission, "admission", "attestations", "admission mode: attestations (signed build/sign/promote events, checked against the keyring) or open (any non-empty entry up to the size cap)")
	flag.StringVar(&c.keyring, "keyring", "", "keyring `file`: authorized submitter keys, roles and environments (default DATA/keyring.json, created empty if absent)")
	flag.StringVar(&c.auth, "auth", "", "auth `file`: writer identities (bearer token hashes, client certificate subjects) and their roles; without it anyone may write")
	flag.StringVar(&c.witnessPolicy, "witness-policy", "", "tlog-policy `file` (witness, group, quorum lines): publish only checkpoints cosigned by a quorum of these witnesses")
	flag.BoolVar(&c.witnessFailOpen, "witness-fail-open", false, "publish log-signed checkpoints when the witness quorum cannot be met (default: hold them back)")
	flag.DurationVar(&c.witnessInterval, "witness-interval", 500*time.Millisecond, "least time between rounds of witnessing")
	flag.StringVar(&c.tlsCert, "tls-cert", "", "TLS certificate `file` (PEM) for both servers; without it they speak plaintext")
	flag.StringVar(&c.tlsKey, "tls-key", "", "TLS private key `file` (PEM)")
	flag.StringVar(&c.clientCA, "client-ca", "", "CA `file` (PEM) that verifies client certificates (mutual TLS, optional per connection)")
	flag.IntVar(&c.maxEntrySize, "max-entry-size", plog.MaxEntrySizeLimit, "entry size cap in `bytes` (at most 65535, the tlog-tiles bundle limit)")
	flag.IntVar(&c.batchMaxEntries, "batch-max-entries", 4096, "most entries per sequencing round")
	flag.DurationVar(&c.batchMaxAge, "batch-max-age", time.Millisecond, "longest a round waits for more entries while earlier rounds sync; an idle log commits at once (negative: no wait)")
	flag.IntVar(&c.queueMaxEntries, "queue-max-entries", 65536, "most queued entries before adds are pushed back")
	flag.IntVar(&c.readConcurrency, "read-concurrency", 0, "most tile and entry-bundle reads working at once, so readers cannot starve appends (0: half the CPUs, at least 1)")
	flag.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 15*time.Second, "how long a shutdown waits for in-flight requests")
	flag.TextVar(&c.logLevel, "log-level", slog.LevelInfo, "log `level`: debug, info, warn, error")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "Usage: provlogd [flags]\n\nRuns a provlog transparency log.\n\nFlags:\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "provlogd: unexpected arguments %q\n", flag.Args())
		os.Exit(2)
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: c.logLevel})))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c); err != nil {
		fmt.Fprintf(os.Stderr, "provlogd: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, c config) error {
	if c.admission != "open" && c.admission != "attestations" {
		return fmt.Errorf("--admission %q: want attestations or open", c.admission)
	}
	if err := os.MkdirAll(c.data, 0o700); err != nil {
		return fmt.Errorf("creating data directory: %w", err)
	}
	if c.key == "" {
		c.key = filepath.Join(c.data, "log.key")
	}
	store, err := storage.Open(filepath.Join(c.data, "db"), storage.Options{})
	if err != nil {
		return err
	}
	defer store.Close()
	key, err := openKey(c, store)
	if err != nil {
		return err
	}
	admission, err := admission(c, store)
	if err != nil {
		return err
	}
	witnesser, err := witnesses(c)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	lg, err := plog.Open(ctx, plog.Config{
		Origin:          key.Signer.Name(),
		Signer:          key.Signer,
		MaxEntrySize:    c.maxEntrySize,
		BatchMaxEntries: c.batchMaxEntries,
		BatchMaxAge:     c.batchMaxAge,
		QueueMaxEntries: c.queueMaxEntries,
		Admission:       admission,
		Witness:         witnesser,
		WitnessFailOpen: c.witnessFailOpen,
		WitnessInterval: c.witnessInterval,
		Registerer:      reg,
	}, store)
	if err != nil {
		return err
	}
	err = serve(ctx, c, lg, key, reg)
	if cerr := lg.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("closing log: %w", cerr))
	}
	slog.Info("provlogd stopped", "size", lg.Checkpoint().Size)
	return err
}

// witnesses returns the witnessing the flags ask for: nil for none.
func witnesses(c config) (plog.Witnesser, error) {
	if c.witnessPolicy == "" {
		return nil, nil
	}
	policy, err := os.ReadFile(c.witnessPolicy)
	if err != nil {
		return nil, fmt.Errorf("reading witness policy: %w", err)
	}
	wc, err := witness.NewClient(witness.ClientConfig{Policy: policy})
	if err != nil {
		return nil, fmt.Errorf("witness policy %s: %w", c.witnessPolicy, err)
	}
	slog.Info("publishing only witnessed checkpoints", "policy", c.witnessPolicy, "fail_open", c.witnessFailOpen)
	return witnessClient{wc}, nil
}

// witnessClient adapts witness.Client to log.Witnesser.
type witnessClient struct{ c *witness.Client }

func (w witnessClient) Witness(ctx context.Context, cp []byte, proof func(context.Context, uint64, uint64) ([][]byte, error)) ([]byte, bool, error) {
	res, err := w.c.Cosign(ctx, cp, proof)
	if err != nil {
		return nil, false, err
	}
	return res.Checkpoint, res.Satisfied, nil
}

// defaultKeyring is written to DATA/keyring.json when attestations are
// admitted and no keyring exists: no keys yet, and the usual environments.
const defaultKeyring = `{
  "keys": [],
  "environments": [
    {"name": "dev"},
    {"name": "staging", "from": "dev"},
    {"name": "prod", "from": "staging", "approvals": 2}
  ]
}
`

// admission returns the admission policy the flags ask for.
func admission(c config, store *storage.Store) (plog.Admitter, error) {
	if c.admission == "open" {
		return plog.OpenAdmission{}, nil
	}
	path := c.keyring
	if path == "" {
		path = filepath.Join(c.data, "keyring.json")
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			if err := os.WriteFile(path, []byte(defaultKeyring), 0o644); err != nil {
				return nil, fmt.Errorf("creating keyring: %w", err)
			}
			slog.Warn("created an empty keyring: every event is refused until submitter keys are added", "file", path)
		}
	}
	kr, err := plog.LoadKeyring(path)
	if err != nil {
		return nil, err
	}
	slog.Info("admitting attestations", "keyring", path, "keys", kr.Len())
	return &plog.AttestationAdmission{Keyring: kr, Index: store}, nil
}

// openKey loads or creates the log key and checks it against the origin the
// store was created with.
func openKey(c config, store *storage.Store) (*plog.Key, error) {
	stored, err := store.Origin()
	if err != nil {
		return nil, err
	}
	origin := c.origin
	if origin == "" {
		origin = stored
	}
	if _, err := os.Stat(c.key); origin == "" && errors.Is(err, os.ErrNotExist) {
		origin = defaultOrigin
	}
	key, err := plog.LoadOrCreateKey(c.key, filepath.Join(c.data, "log.pub"), origin)
	if err != nil {
		return nil, err
	}
	switch name := key.Signer.Name(); {
	case stored == "":
		if err := store.SetOrigin(name); err != nil {
			return nil, err
		}
	case stored != name:
		return nil, fmt.Errorf("data in %s belongs to log %q, but the key is for %q", c.data, stored, name)
	}
	if key.Created {
		slog.Info("created log key", "file", c.key, "origin", key.Signer.Name())
	}
	return key, nil
}

// security returns the servers' TLS configuration (nil for plaintext) and
// their authentication options.
func security(c config) (*tls.Config, []server.Option, error) {
	if c.readConcurrency < 0 {
		return nil, nil, fmt.Errorf("--read-concurrency %d: want 0 (half the CPUs) or more", c.readConcurrency)
	}
	opts := []server.Option{server.WithReadConcurrency(c.readConcurrency)}
	if c.auth != "" {
		a, err := server.LoadAuth(c.auth)
		if err != nil {
			return nil, nil, err
		}
		opts = append(opts, server.WithAuth(a))
	}
	if c.tlsCert == "" && c.tlsKey == "" {
		if c.clientCA != "" {
			return nil, nil, errors.New("--client-ca needs --tls-cert and --tls-key")
		}
		return nil, opts, nil
	}
	cert, err := tls.LoadX509KeyPair(c.tlsCert, c.tlsKey)
	if err != nil {
		return nil, nil, fmt.Errorf("loading TLS certificate: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if c.clientCA != "" {
		pem, err := os.ReadFile(c.clientCA)
		if err != nil {
			return nil, nil, fmt.Errorf("reading client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, nil, fmt.Errorf("client CA %s: no PEM certificates", c.clientCA)
		}
		// Reads are public: a certificate is verified if given, needed only
		// to write as a certificate identity.
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.VerifyClientCertIfGiven
	}
	return cfg, opts, nil
}

// serve runs the gRPC and HTTP servers until ctx ends or one fails, then
// shuts both down.
func serve(ctx context.Context, c config, lg *plog.Log, key *plog.Key, reg *prometheus.Registry) error {
	gl, err := net.Listen("tcp", c.grpcListen)
	if err != nil {
		return fmt.Errorf("gRPC listen: %w", err)
	}
	hl, err := net.Listen("tcp", c.httpListen)
	if err != nil {
		gl.Close()
		return fmt.Errorf("HTTP listen: %w", err)
	}
	tlsConfig, opts, err := security(c)
	if err != nil {
		gl.Close()
		hl.Close()
		return err
	}
	gopts := server.ServerOptions(server.GRPCConfig{MaxEntrySize: lg.MaxEntrySize()})
	if tlsConfig != nil {
		gopts = append(gopts, grpc.Creds(credentials.NewTLS(tlsConfig.Clone())))
	}
	gs := grpc.NewServer(gopts...)
	server.RegisterGRPC(gs, lg, opts...)
	hs := server.NewHTTPServer(server.HTTPHandler(lg, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), opts...), server.HTTPTimeouts{})
	hs.TLSConfig = tlsConfig
	fmt.Printf("provlogd: log %s (tree size %d)\n", key.Signer.Name(), lg.Checkpoint().Size)
	fmt.Printf("verifier key: %s\n", key.Verifier)
	fmt.Printf("grpc: %s\n", gl.Addr())
	scheme := "http"
	if tlsConfig != nil {
		scheme = "https"
	}
	fmt.Printf("http: %s://%s/\n", scheme, hl.Addr())

	if c.debugListen != "" {
		dl, err := net.Listen("tcp", c.debugListen)
		if err != nil {
			gl.Close()
			hl.Close()
			return fmt.Errorf("debug listen: %w", err)
		}
		defer dl.Close()
		fmt.Printf("debug: http://%s/debug/pprof/\n", dl.Addr())
		go func() {
			// The profiler's own mux, not http.DefaultServeMux: nothing else
			// is served here.
			mux := http.NewServeMux()
			mux.HandleFunc("/debug/pprof/", pprof.Index)
			mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
			mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
			mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
			mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
			// Profiles and traces take ?seconds=N (default 30) to write,
			// which pprof refuses if it reaches the write timeout.
			ds := server.NewHTTPServer(mux, server.HTTPTimeouts{Write: debugWriteTimeout})
			if err := ds.Serve(dl); err != nil && !errors.Is(err, net.ErrClosed) {
				slog.Warn("debug server stopped", "err", err)
			}
		}()
	}

	errc := make(chan error, 2)
	go func() { errc <- gs.Serve(gl) }()
	go func() {
		if tlsConfig != nil {
			errc <- hs.ServeTLS(hl, "", "")
		} else {
			errc <- hs.Serve(hl)
		}
	}()
	select {
	case <-ctx.Done():
		slog.Info("shutting down: draining requests")
		err = nil
	case err = <-errc:
		err = fmt.Errorf("server failed: %w", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), c.shutdownTimeout)
	defer cancel()
	stopped := make(chan struct{})
	go func() { gs.GracefulStop(); close(stopped) }()
	if herr := hs.Shutdown(sctx); herr != nil {
		hs.Close()
	}
	select {
	case <-stopped:
	case <-sctx.Done():
		gs.Stop()
	}
	return err
}
