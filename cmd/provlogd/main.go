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
//
// A start goes in this order (run): read every configuration file the
// flags name, bind the listen addresses (a busy port fails here, before
// anything is written), create or open the data directory, store, key and
// keyring, open the log, and only then listen and serve. So a failed start
// in a new data directory leaves no files, and whoever can connect to a
// port finds DATA/log.pub written.
//
// "provlogd --help" gives the flags, examples and exit codes; the flags
// are written --flag, as provlog's are (the older -flag is still read).
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/provlog/provlog/internal/atomicfile"
	"github.com/provlog/provlog/internal/daemon"
	plog "github.com/provlog/provlog/log"
	"github.com/provlog/provlog/log/server"
	"github.com/provlog/provlog/storage"
	"github.com/provlog/provlog/storage/postgres"
	"github.com/provlog/provlog/witness"
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
	storage, advertise     string
	leaseTTL               time.Duration
	logging                daemon.Logging
}

const long = `provlogd runs a provlog transparency log of software supply-chain events:
the gRPC service provlog.v1.Log (with the standard health service and
reflection) on --grpc-listen, and on --http-listen the C2SP tlog-tiles read
API (GET /checkpoint, /tile/...), POST /add, GET /metrics (Prometheus) and
GET /healthz, over an embedded Pebble store in DATA/db.

On first start in a data directory it creates the log key (DATA/log.key,
mode 0600), its verifier key (DATA/log.pub, one line origin+hash+key) and,
admitting attestations without --keyring, an empty keyring
(DATA/keyring.json). It binds its addresses before it writes anything, so
a busy port fails the start with nothing created, and accepts connections
only once those files exist. Then it prints the log, its verifier key and
both addresses on stdout:

  provlogd: log localhost/provlog (tree size 0)
  verifier key: localhost/provlog+1f2e3d4c+AXm...
  grpc: 127.0.0.1:7400
  http: http://127.0.0.1:7401/

With --storage postgres://… several replicas share one PostgreSQL
database: one leads (sequences, holding a lease row renewed every third of
--lease-ttl), the others follow: they serve every read from the database
and forward appends to the leader over gRPC, at the address it advertises
(--advertise). When the leader dies, another takes the lease once it
expires. Every replica must be given the same log key with --key (create
it once: provlog keygen --type log --name ORIGIN --out log); a key not
named as the database's log is refused. GET /healthz then also says the
replica's role, lease epoch, leader and lag.

GET /healthz answers 200 while the log accepts writes. SIGINT or SIGTERM
drains: every queued add is committed and acknowledged, or failed, never
acknowledged and lost; the last line logged gives the integrated and the
published tree size.

` + daemon.ExitCodesHelp

const example = `  # A generic log that takes any bytes, in /tmp/open-log.
  provlogd --admission open --data /tmp/open-log
  curl -s --data-binary 'hello, log' http://127.0.0.1:7401/add

  # Signed supply-chain events only (the default), from the keyring's keys.
  provlogd --keyring keyring.json

  # Start in the background and wait until it answers before using it.
  provlogd --data /tmp/log &
  until curl -sf http://127.0.0.1:7401/healthz >/dev/null; do sleep 0.1; done
  provlog checkpoint --log-key @/tmp/log/log.pub

  # Authenticated writers over TLS; publish only checkpoints witnessed by a quorum.
  provlogd --auth auth.json --tls-cert server.crt --tls-key server.key \
      --witness-policy witnesses.policy

  # Replicas on one PostgreSQL database, all with the same log key.
  provlog keygen --type log --name example.com/log --out log
  provlogd --storage postgres://provlog@localhost/provlog --key log.key \
      --data r1 --grpc-listen 127.0.0.1:7400 --http-listen 127.0.0.1:7401 &
  provlogd --storage postgres://provlog@localhost/provlog --key log.key \
      --data r2 --grpc-listen 127.0.0.1:7410 --http-listen 127.0.0.1:7411 &

  # JSON logs with every refused submission (reason and identity).
  provlogd --log-format json --log-level debug`

func main() {
	var c config
	os.Exit(daemon.Execute(context.Background(), newCommand(&c, os.Stdout, os.Stderr), os.Args[1:], os.Stdout, os.Stderr))
}

// newCommand returns the provlogd command, whose flags set c, and which
// runs the log with the banner on stdout and the log lines on stderr.
func newCommand(c *config, stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "provlogd [flags]",
		Short:   "Run a provlog transparency log",
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
			return daemon.Failure(run(ctx, *c, stdout))
		},
	}
	f := cmd.Flags()
	f.SortFlags = false
	f.StringVar(&c.data, "data", "provlog-data", "data `directory` (created if absent): the Pebble store in DATA/db, the keys beside it")
	f.StringVar(&c.origin, "origin", "", "log origin, a schemeless URL; also the key's name (default: the key's name, or "+defaultOrigin+" for a new log)")
	f.StringVar(&c.key, "key", "", "note private key `file` (default DATA/log.key, created if absent; with --storage postgres it must exist, the same file for every replica)")
	f.StringVar(&c.grpcListen, "grpc-listen", "127.0.0.1:7400", "gRPC listen `address`")
	f.StringVar(&c.httpListen, "http-listen", "127.0.0.1:7401", "HTTP listen `address` (tlog-tiles, POST /add, /metrics, /healthz)")
	f.StringVar(&c.admission, "admission", "attestations", "admission `mode`: attestations (signed supply-chain events, checked against the keyring) or open (any non-empty entry up to the size cap)")
	f.StringVar(&c.keyring, "keyring", "", "keyring `file`: authorized submitter keys, roles and environments (default DATA/keyring.json, created empty if absent; attestations only)")
	f.StringVar(&c.auth, "auth", "", "auth `file`: writer identities (bearer token hashes, client certificate subjects or fingerprints), roles and rate limits; without it anyone may write")
	f.StringVar(&c.tlsCert, "tls-cert", "", "TLS certificate `file` (PEM) for both servers; without it they speak plaintext")
	f.StringVar(&c.tlsKey, "tls-key", "", "TLS private key `file` (PEM) of --tls-cert")
	f.StringVar(&c.clientCA, "client-ca", "", "CA `file` (PEM) that verifies client certificates (mutual TLS, optional per connection)")
	f.StringVar(&c.witnessPolicy, "witness-policy", "", "tlog-policy `file` (witness, group, quorum lines): publish only checkpoints cosigned by a quorum of these witnesses")
	f.BoolVar(&c.witnessFailOpen, "witness-fail-open", false, "publish log-signed checkpoints when the witness quorum cannot be met (default: hold them back)")
	f.DurationVar(&c.witnessInterval, "witness-interval", 500*time.Millisecond, "least time between rounds of witnessing")
	f.IntVar(&c.maxEntrySize, "max-entry-size", plog.MaxEntrySizeLimit, "entry size cap in `bytes` (at most 65535, the tlog-tiles bundle limit)")
	f.IntVar(&c.batchMaxEntries, "batch-max-entries", 4096, "most entries per sequencing round")
	f.DurationVar(&c.batchMaxAge, "batch-max-age", time.Millisecond, "longest a round waits for more entries while earlier rounds sync; an idle log commits at once (negative: no wait)")
	f.IntVar(&c.queueMaxEntries, "queue-max-entries", 65536, "most queued entries before adds are pushed back (429, ResourceExhausted)")
	f.IntVar(&c.readConcurrency, "read-concurrency", 0, "most tile and entry-bundle reads working at once, so readers cannot starve appends (0: half the CPUs, at least 1)")
	f.StringVar(&c.storage, "storage", "", "storage: empty for Pebble in DATA/db, or a PostgreSQL `URL` (postgres://user@host/db) shared by replicas, one leading and the others following")
	f.StringVar(&c.advertise, "advertise", "", "gRPC `address` other replicas forward appends to while this one leads (default the bound --grpc-listen address; --storage postgres only)")
	f.DurationVar(&c.leaseTTL, "lease-ttl", 3*time.Second, "the sequencer lease's time to live: a dead leader is replaced within about this long; renewed every third of it, and the database's statement timeouts are set to it (--storage postgres only)")
	f.StringVar(&c.debugListen, "debug-listen", "", "`address` serving Go's profiler at /debug/pprof/ (off by default; keep it private)")
	f.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 15*time.Second, "how long a shutdown waits for in-flight requests")
	c.logging.AddFlags(cmd)
	return cmd
}

// Test hooks, nil outside tests: reserved runs once the addresses are
// bound, before anything is written; prepared once the data directory,
// key, keyring and log are ready, before the servers listen.
var (
	testHookReserved func(grpc, http net.Addr)
	testHookPrepared func()
)

// run runs the log until ctx ends or a server fails. The order of its
// steps is what a failed start leaves behind and what a client that can
// connect may rely on (see the package doc).
func run(ctx context.Context, c config, stdout io.Writer) error {
	// 1. Check the flags and read the configuration files they name outside
	// the data directory: nothing is written yet.
	if err := c.check(); err != nil {
		return err
	}
	if c.key == "" {
		c.key = filepath.Join(c.data, "log.key")
	}
	tlsConfig, opts, err := security(c)
	if err != nil {
		return err
	}
	witnesser, err := witnesses(c)
	if err != nil {
		return err
	}
	var keyring *plog.Keyring
	if c.admission == "attestations" && c.keyring != "" {
		if keyring, err = plog.LoadKeyring(c.keyring); err != nil {
			return err
		}
	}

	// 2. Bind the addresses: a busy port fails the start here, before the
	// data directory is touched. They refuse connections until step 4.
	ports, err := reserve(c)
	if err != nil {
		return err
	}
	defer ports.close()
	if testHookReserved != nil {
		testHookReserved(ports.grpc.Addr(), ports.http.Addr())
	}

	// 3. The data directory, store, key and keyring, then the log.
	if err := os.MkdirAll(c.data, 0o700); err != nil {
		return fmt.Errorf("creating data directory: %w", err)
	}
	advertise := c.advertise
	if advertise == "" {
		advertise = ports.grpc.Addr().String()
	}
	store, err := openStore(ctx, c, advertise)
	if err != nil {
		return err
	}
	defer store.Close()
	key, err := openKey(c, store)
	if err != nil {
		return err
	}
	admission, err := admission(c, keyring, store)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	daemon.RegisterBuildInfo(reg, "provlog")
	if ps, ok := store.(*storage.Store); ok {
		registerLeafIndexMetrics(reg, ps)
	}
	cfg := plog.Config{
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
	}
	var (
		lg       server.Log
		closeLog func() error
		wrap     = func(h http.Handler) http.Handler { return h }
	)
	if pg, ok := store.(*postgres.Store); ok {
		fw, err := newForwarder(advertise, tlsConfig)
		if err != nil {
			return err
		}
		defer fw.Close()
		r, err := plog.StartReplica(ctx, plog.ReplicaConfig{
			Log: cfg, Store: pg, Leaser: leaser{pg}, Forwarder: fw,
			Advertise: advertise, LeaseTTL: c.leaseTTL,
		})
		if err != nil {
			return err
		}
		slog.Info("replica started: following until it acquires the sequencer lease", "advertise", advertise, "lease_ttl", c.leaseTTL)
		lg, closeLog = r, r.Close
		wrap = func(h http.Handler) http.Handler { return replicaHealth(r, h) }
	} else {
		l, err := plog.Open(ctx, cfg, store)
		if err != nil {
			return err
		}
		lg, closeLog = l, l.Close
	}
	if testHookPrepared != nil {
		testHookPrepared()
	}

	// 4. Listen and serve.
	err = serve(ctx, c, lg, key, reg, ports, tlsConfig, opts, wrap, stdout)
	if cerr := closeLog(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("closing log: %w", cerr))
	}
	// What the tree holds, and what readers were last shown: a witnessed
	// log publishes behind what it has integrated.
	slog.Info("provlogd stopped", "size", lg.IntegratedSize(), "published", lg.Checkpoint().Size)
	return err
}

// registerLeafIndexMetrics exports the backlog of a Pebble store's
// leaf-hash index: entries in memory not yet in a run (at most about two
// runs' worth while runs are written; rounds are refused at its bound),
// and whether the index's last attempt to write or merge runs failed.
func registerLeafIndexMetrics(reg prometheus.Registerer, s *storage.Store) {
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "provlog_leaf_index_pending_entries",
			Help: "Entries whose leaf hashes the dedup index holds in memory, not yet written to a run file.",
		}, func() float64 {
			n, _ := s.LeafIndexBacklog()
			return float64(n)
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "provlog_leaf_index_failing",
			Help: "1 if the dedup index's last attempt to write or merge run files failed (it retries; rounds are refused once its memory is full), or a damaged run file was found (rebuilt at the next start).",
		}, func() float64 {
			if _, err := s.LeafIndexBacklog(); err != nil {
				return 1
			}
			return 0
		}),
	)
}

// store is what provlogd needs of either backend.
type store interface {
	plog.Storage
	Origin() (string, error)
	SetOrigin(origin string) error
	Close() error
}

// openStore opens the store --storage names: Pebble in DATA/db, or the
// PostgreSQL database, its sessions named "provlogd ADVERTISE" and their
// statement timeouts set to the lease TTL.
func openStore(ctx context.Context, c config, advertise string) (store, error) {
	if c.storage == "" {
		return storage.Open(filepath.Join(c.data, "db"), storage.Options{})
	}
	pg, err := postgres.Open(ctx, c.storage, postgres.Options{
		StatementTimeout: c.leaseTTL,
		ApplicationName:  "provlogd " + advertise,
	})
	if err != nil {
		return nil, fmt.Errorf("--storage %s: %w", redact(c.storage), err)
	}
	return pg, nil
}

// redact returns a database URL without its password.
func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// check checks the flags' values that need no file.
func (c config) check() error {
	if c.admission != "open" && c.admission != "attestations" {
		return fmt.Errorf("--admission %q: want attestations or open", c.admission)
	}
	if c.readConcurrency < 0 {
		return fmt.Errorf("--read-concurrency %d: want 0 (half the CPUs) or more", c.readConcurrency)
	}
	if c.clientCA != "" && (c.tlsCert == "" || c.tlsKey == "") {
		return errors.New("--client-ca needs --tls-cert and --tls-key")
	}
	if c.storage != "" && !isPostgres(c.storage) {
		return fmt.Errorf("--storage %q: want empty (Pebble) or a postgres:// URL", redact(c.storage))
	}
	if c.storage == "" && c.advertise != "" {
		return errors.New("--advertise needs --storage postgres://…")
	}
	if c.leaseTTL < 30*time.Millisecond {
		return fmt.Errorf("--lease-ttl %v: want 30ms or more", c.leaseTTL)
	}
	return nil
}

// ports are the addresses run reserves; debug is nil without
// --debug-listen.
type ports struct {
	grpc, http, debug *daemon.Reservation
}

// reserve binds every address the flags give, or none.
func reserve(c config) (*ports, error) {
	p := &ports{}
	var err error
	if p.grpc, err = daemon.Reserve("grpc-listen", c.grpcListen); err != nil {
		return nil, err
	}
	if p.http, err = daemon.Reserve("http-listen", c.httpListen); err != nil {
		p.close()
		return nil, err
	}
	if c.debugListen != "" {
		if p.debug, err = daemon.Reserve("debug-listen", c.debugListen); err != nil {
			p.close()
			return nil, err
		}
	}
	return p, nil
}

// close releases the addresses not listened on.
func (p *ports) close() {
	for _, r := range []*daemon.Reservation{p.grpc, p.http, p.debug} {
		if r != nil {
			r.Close()
		}
	}
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

// admission returns the admission policy the flags ask for: kr is the
// --keyring already read, if given; else DATA/keyring.json is read, and
// created first if absent.
func admission(c config, kr *plog.Keyring, store plog.IndexReader) (plog.Admitter, error) {
	if c.admission == "open" {
		return plog.OpenAdmission{}, nil
	}
	path := c.keyring
	if kr == nil {
		path = filepath.Join(c.data, "keyring.json")
		err := atomicfile.Create(path, []byte(defaultKeyring), 0o644)
		switch {
		case err == nil:
			slog.Warn("created an empty keyring: every event is refused until submitter keys are added", "file", path)
		case !errors.Is(err, fs.ErrExist):
			return nil, fmt.Errorf("creating keyring: %w", err)
		}
		if kr, err = plog.LoadKeyring(path); err != nil {
			return nil, err
		}
	}
	slog.Info("admitting attestations", "keyring", path, "keys", kr.Len())
	return &plog.AttestationAdmission{Keyring: kr, Index: store}, nil
}

// openKey loads or creates the log key and checks it against the origin the
// store was created with.
func openKey(c config, store store) (*plog.Key, error) {
	stored, err := store.Origin()
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(c.key); c.storage != "" && errors.Is(err, os.ErrNotExist) {
		// Replicas must share one key: none may make its own.
		return nil, fmt.Errorf("--storage postgres needs the log key every replica shares, and %s does not exist: create it once (provlog keygen --type log --name ORIGIN --out PREFIX) and give each replica --key PREFIX.key", c.key)
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
	case stored != name && c.storage != "":
		return nil, fmt.Errorf("the database %s belongs to log %q, but the key %s is for %q", redact(c.storage), stored, c.key, name)
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
	opts := []server.Option{server.WithReadConcurrency(c.readConcurrency)}
	if c.auth != "" {
		a, err := server.LoadAuth(c.auth)
		if err != nil {
			return nil, nil, err
		}
		opts = append(opts, server.WithAuth(a))
	}
	if c.tlsCert == "" && c.tlsKey == "" {
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

// serve listens on the reserved addresses and runs the gRPC and HTTP
// servers (and the profiler's, with --debug-listen) until ctx ends or one
// fails, then shuts them down.
func serve(ctx context.Context, c config, lg server.Log, key *plog.Key, reg *prometheus.Registry, p *ports, tlsConfig *tls.Config, opts []server.Option, wrap func(http.Handler) http.Handler, stdout io.Writer) error {
	gopts := server.ServerOptions(server.GRPCConfig{MaxEntrySize: lg.MaxEntrySize()})
	gopts = append(gopts, server.NewGRPCMetrics(reg).ServerOptions()...)
	if tlsConfig != nil {
		gopts = append(gopts, grpc.Creds(credentials.NewTLS(tlsConfig.Clone())))
	}
	gs := grpc.NewServer(gopts...)
	server.RegisterGRPC(gs, lg, opts...)
	h := wrap(server.HTTPHandler(lg, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), opts...))
	hs := server.NewHTTPServer(daemon.NewHTTPMetrics(reg, "provlog").Handler(h), server.HTTPTimeouts{})
	hs.TLSConfig = tlsConfig

	gl, err := p.grpc.Listen()
	if err != nil {
		return err
	}
	hl, err := p.http.Listen()
	if err != nil {
		gl.Close()
		return err
	}
	fmt.Fprintf(stdout, "provlogd: log %s (tree size %d)\n", key.Signer.Name(), lg.Checkpoint().Size)
	fmt.Fprintf(stdout, "verifier key: %s\n", key.Verifier)
	fmt.Fprintf(stdout, "grpc: %s\n", gl.Addr())
	scheme := "http"
	if tlsConfig != nil {
		scheme = "https"
	}
	fmt.Fprintf(stdout, "http: %s://%s/\n", scheme, hl.Addr())

	if p.debug != nil {
		dl, err := p.debug.Listen()
		if err != nil {
			gl.Close()
			hl.Close()
			return err
		}
		defer dl.Close()
		fmt.Fprintf(stdout, "debug: http://%s/debug/pprof/\n", dl.Addr())
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
