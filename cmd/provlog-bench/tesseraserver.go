package main

import (
	"bufio"
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
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/api/layout"
	"golang.org/x/mod/sumdb/note"
)

// serveTesseraCommand is the hidden first argument that makes the bench
// binary a Tessera POSIX log server, for the mixed phase: the bench
// re-executes itself with it, so that Tessera serves from its own process
// as provlogd does.
//
//	provlog-bench serve-tessera -dir DIR -key FILE [-listen 127.0.0.1:0] [-tessera-batch-size N] ...
//
// It prints "http: http://ADDR/" on stdout once it listens, and stops on
// SIGTERM: the HTTP server first, then the appender, which integrates what
// was added.
const serveTesseraCommand = "serve-tessera"

// tesseraServerConfig configures serve-tessera.
type tesseraServerConfig struct {
	// Dir is the POSIX log's directory (created if missing).
	Dir string
	// KeyFile holds the note signer key the checkpoints are signed with.
	KeyFile string
	// Listen is the TCP address to serve on.
	Listen  string
	Tessera tesseraConfig
}

// serveTesseraMain runs serve-tessera with its arguments and returns the
// exit code.
func serveTesseraMain(args []string) int {
	fs := flag.NewFlagSet(serveTesseraCommand, flag.ContinueOnError)
	var c tesseraServerConfig
	fs.StringVar(&c.Dir, "dir", "", "the POSIX log's `directory`")
	fs.StringVar(&c.KeyFile, "key", "", "`file` holding the note signer key for checkpoints")
	fs.StringVar(&c.Listen, "listen", "127.0.0.1:0", "`address` to serve on")
	tesseraFlags(fs, &c.Tessera)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if c.Dir == "" || c.KeyFile == "" || fs.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "provlog-bench serve-tessera: want -dir and -key, and no arguments")
		return 2
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, nil)))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serveTessera(ctx, c, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "provlog-bench serve-tessera: %v\n", err)
		return 1
	}
	return 0
}

// tesseraFlags registers the Tessera appender's options on fs.
func tesseraFlags(fs *flag.FlagSet, c *tesseraConfig) {
	fs.UintVar(&c.BatchMaxSize, "tessera-batch-size", 4096, "Tessera WithBatching max size (provlog's default round cap)")
	fs.DurationVar(&c.BatchMaxAge, "tessera-batch-age", 5*time.Millisecond, "Tessera WithBatching max age (5ms: its best of 1ms to 250ms for these loads)")
	fs.DurationVar(&c.CheckpointInterval, "tessera-checkpoint-interval", time.Second, "Tessera WithCheckpointInterval (at least 100ms)")
}

// args returns the flags that give c to serve-tessera.
func (c tesseraConfig) args() []string {
	return []string{
		"-tessera-batch-size", strconv.FormatUint(uint64(c.BatchMaxSize), 10),
		"-tessera-batch-age", c.BatchMaxAge.String(),
		"-tessera-checkpoint-interval", c.CheckpointInterval.String(),
	}
}

// serveTessera serves the log until ctx ends, printing its URL on banner
// once it listens.
func serveTessera(ctx context.Context, c tesseraServerConfig, banner io.Writer) error {
	skey, err := os.ReadFile(c.KeyFile)
	if err != nil {
		return fmt.Errorf("reading key: %w", err)
	}
	a, err := openTessera(c.Dir, c.Tessera, strings.TrimSpace(string(skey)))
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return errors.Join(fmt.Errorf("listening: %w", err), a.close())
	}
	srv := &http.Server{Handler: tesseraHandler(a.appender, c.Dir),
		ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, WriteTimeout: time.Minute, IdleTimeout: time.Minute}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	fmt.Fprintf(banner, "http: http://%s/\n", l.Addr())
	slog.Info("serving tessera", "dir", c.Dir, "addr", l.Addr().String())
	select {
	case <-ctx.Done():
	case err = <-served:
		err = fmt.Errorf("serving: %w", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if serr := srv.Shutdown(sctx); serr != nil {
		err = errors.Join(err, fmt.Errorf("stopping the HTTP server: %w", serr))
	}
	return errors.Join(err, a.close())
}

// tesseraHandler serves POST /add to a and the log's files from dir, as
// Tessera's POSIX conformance server does: tiles, entry bundles and the
// checkpoint by http.FileServer, stored as Tessera stores them
// (uncompressed), with its cache headers.
func tesseraHandler(a *tessera.Appender, dir string) http.Handler {
	files := http.FileServer(http.Dir(dir))
	cache := func(value string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", value)
			files.ServeHTTP(w, r)
		}
	}
	mux := http.NewServeMux()
	mux.Handle("POST /add", addHandler(a))
	mux.Handle("GET /"+layout.CheckpointPath, cache("no-cache"))
	mux.Handle("GET /tile/", cache("max-age=31536000, immutable"))
	return mux
}

// maxAddBody caps the body of POST /add: the largest entry a bundle can
// hold (a uint16 length).
const maxAddBody = 1<<16 - 1

// addHandler adds the request body as one entry and answers with its
// decimal index once the Add future resolves: durable and integrated. It
// answers 503 with Retry-After when Tessera pushes back, 400 for an empty
// or unreadable body and 413 for one over maxAddBody.
func addHandler(a *tessera.Appender) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxAddBody))
		var tooLarge *http.MaxBytesError
		switch {
		case errors.As(err, &tooLarge):
			http.Error(w, fmt.Sprintf("entry over %d bytes", maxAddBody), http.StatusRequestEntityTooLarge)
			return
		case err != nil:
			http.Error(w, "reading entry: "+err.Error(), http.StatusBadRequest)
			return
		case len(body) == 0:
			http.Error(w, "empty entry", http.StatusBadRequest)
			return
		}
		idx, err := a.Add(r.Context(), tessera.NewEntry(body))()
		switch {
		case errors.Is(err, tessera.ErrPushback):
			w.Header().Set("Retry-After", "1")
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		case err != nil:
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "%d", idx.Index)
	}
}

// tesseraProc is a Tessera POSIX log served by a serve-tessera child
// process: writes over POST /add, reads of its files over HTTP.
type tesseraProc struct {
	proc     *child
	dir      string
	cfg      tesseraConfig
	url      string
	verifier note.Verifier
	http     *http.Client // writers and the checkpoint poll
}

// startTesseraProc writes key's signer into keyFile and starts this binary
// serving the log in dir, its stderr in logFile.
func startTesseraProc(dir, keyFile, logFile string, cfg tesseraConfig, key tesseraKey) (*tesseraProc, error) {
	verifier, err := key.noteVerifier()
	if err != nil {
		return nil, err
	}
	if err := key.writeSigner(keyFile); err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding the bench binary: %w", err)
	}
	args := append([]string{serveTesseraCommand, "-dir", dir, "-key", keyFile, "-listen", "127.0.0.1:0"}, cfg.args()...)
	var url string
	c, err := startChild("tessera server", self, args, logFile, func(stdout io.Reader) (<-chan struct{}, error) {
		var err error
		url, err = readURLBanner(stdout)
		drained := make(chan struct{})
		go func() {
			defer close(drained)
			io.Copy(io.Discard, stdout) //nolint:errcheck // drained until the child exits
		}()
		return drained, err
	})
	if err != nil {
		return nil, err
	}
	return &tesseraProc{proc: c, dir: dir, cfg: cfg, url: url, verifier: verifier, http: newHTTPClient(1024)}, nil
}

// readURLBanner reads serve-tessera's "http: URL" line.
func readURLBanner(stdout io.Reader) (string, error) {
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if u, ok := strings.CutPrefix(strings.TrimSpace(line), "http: "); ok && strings.HasPrefix(u, "http://") {
		return strings.TrimSuffix(u, "/"), nil
	}
	return "", fmt.Errorf("no banner (read %q): %w", line, errors.Join(err, io.ErrUnexpectedEOF))
}

// newHTTPClient returns a client keeping up to conns connections to a host.
func newHTTPClient(conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}}
}

func (t *tesseraProc) Name() string                      { return "tessera" }
func (t *tesseraProc) PID() int                          { return t.proc.pid() }
func (t *tesseraProc) DataDir() string                   { return t.dir }
func (t *tesseraProc) TileBaseURL() string               { return t.url }
func (t *tesseraProc) CheckpointInterval() time.Duration { return t.cfg.CheckpointInterval }

// CheckpointSize fetches GET /checkpoint, as a monitor would, and verifies
// it.
func (t *tesseraProc) CheckpointSize(ctx context.Context) (uint64, error) {
	g := getter{hc: t.http}
	r, err := g.get(ctx, t.url+"/"+layout.CheckpointPath)
	switch {
	case r.status == http.StatusNotFound:
		return 0, nil
	case err != nil:
		return 0, err
	}
	return verifiedSize(r.body, t.verifier)
}

// NewWriter returns a POST /add writer, one entry per request, whatever
// the mode.
func (t *tesseraProc) NewWriter(string, int) (writer, error) {
	return &httpWriter{c: t.http, url: t.url + "/add"}, nil
}

func (t *tesseraProc) Close() error {
	t.http.CloseIdleConnections()
	_, err := t.proc.stop(time.Minute)
	return err
}
