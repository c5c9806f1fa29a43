package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/api/layout"
	"github.com/transparency-dev/tessera/storage/posix"
	"golang.org/x/mod/sumdb/note"
)

// tesseraConfig configures the Tessera POSIX log the bench runs in
// process.
type tesseraConfig struct {
	// BatchMaxSize and BatchMaxAge are Tessera's WithBatching options.
	BatchMaxSize uint
	BatchMaxAge  time.Duration
	// CheckpointInterval is WithCheckpointInterval (at least 100ms for
	// the POSIX driver).
	CheckpointInterval time.Duration
}

// tesseraLog is Tessera's POSIX driver running in this process: its own
// library code, with its directory served by http.FileServer for tile reads.
//
// Add's future from the POSIX driver resolves only after the entry's batch
// is written (files created with O_SYNC, directories fsynced) and
// integrated into the tree state: the same durability as a provlog ack.
// The checkpoint that commits to it is published later, on the checkpoint
// interval.
type tesseraLog struct {
	*tesseraAppender
	verifier note.Verifier
	srv      *http.Server
	url      string
}

// tesseraOrigin names the Tessera log's checkpoints.
const tesseraOrigin = "bench.example/tessera"

// tesseraKey is a Tessera log's checkpoint key pair, as note keys.
type tesseraKey struct{ signer, verifier string }

func newTesseraKey() (tesseraKey, error) {
	skey, vkey, err := note.GenerateKey(rand.Reader, tesseraOrigin)
	if err != nil {
		return tesseraKey{}, fmt.Errorf("tessera key: %w", err)
	}
	return tesseraKey{skey, vkey}, nil
}

func (k tesseraKey) noteVerifier() (note.Verifier, error) {
	v, err := note.NewVerifier(k.verifier)
	if err != nil {
		return nil, fmt.Errorf("tessera verifier: %w", err)
	}
	return v, nil
}

// writeSigner writes the signer key into file, readable by its owner only:
// serve-tessera's -key.
func (k tesseraKey) writeSigner(file string) error {
	if err := os.WriteFile(file, []byte(k.signer+"\n"), 0o600); err != nil {
		return fmt.Errorf("writing tessera key: %w", err)
	}
	return nil
}

// tesseraAppender is Tessera's POSIX appender on a directory.
type tesseraAppender struct {
	dir      string
	cfg      tesseraConfig
	appender *tessera.Appender
	shutdown func(context.Context) error
	cancel   context.CancelFunc
}

// openTessera opens (or creates) the POSIX log in dir, its checkpoints
// signed with skey (a note signer key).
func openTessera(dir string, cfg tesseraConfig, skey string) (*tesseraAppender, error) {
	signer, err := note.NewSigner(skey)
	if err != nil {
		return nil, fmt.Errorf("tessera signer: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	driver, err := posix.New(ctx, posix.Config{Path: dir})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("tessera posix driver: %w", err)
	}
	opts := tessera.NewAppendOptions().
		WithCheckpointSigner(signer).
		WithCheckpointInterval(cfg.CheckpointInterval).
		WithBatching(cfg.BatchMaxSize, cfg.BatchMaxAge)
	appender, shutdown, _, err := tessera.NewAppender(ctx, driver, opts)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("tessera appender: %w", err)
	}
	return &tesseraAppender{dir: dir, cfg: cfg, appender: appender, shutdown: shutdown, cancel: cancel}, nil
}

// close waits for the entries added to be integrated and stops the
// appender.
func (a *tesseraAppender) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := a.shutdown(ctx)
	a.cancel()
	if err != nil {
		return fmt.Errorf("stopping tessera: %w", err)
	}
	return nil
}

func startTessera(dir string, cfg tesseraConfig, key tesseraKey) (*tesseraLog, error) {
	verifier, err := key.noteVerifier()
	if err != nil {
		return nil, err
	}
	a, err := openTessera(dir, cfg, key.signer)
	if err != nil {
		return nil, err
	}
	t := &tesseraLog{tesseraAppender: a, verifier: verifier}
	if err := t.serveFiles(); err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}

// serveFiles serves the log directory over HTTP, as a tlog-tiles log on
// POSIX is meant to be served (Tessera's own conformance binary does so).
func (t *tesseraLog) serveFiles() error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("tessera file server: %w", err)
	}
	t.srv = &http.Server{Handler: http.FileServer(http.Dir(t.dir)), ReadHeaderTimeout: 10 * time.Second}
	t.url = "http://" + l.Addr().String()
	go t.srv.Serve(l) //nolint:errcheck // ends with ErrServerClosed on Close
	return nil
}

func (t *tesseraLog) Name() string                      { return "tessera" }
func (t *tesseraLog) PID() int                          { return os.Getpid() }
func (t *tesseraLog) DataDir() string                   { return t.dir }
func (t *tesseraLog) TileBaseURL() string               { return t.url }
func (t *tesseraLog) CheckpointInterval() time.Duration { return t.cfg.CheckpointInterval }

func (t *tesseraLog) CheckpointSize(context.Context) (uint64, error) {
	cp, err := os.ReadFile(filepath.Join(t.dir, layout.CheckpointPath))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading tessera checkpoint: %w", err)
	}
	return verifiedSize(cp, t.verifier)
}

func (t *tesseraLog) Close() error {
	err := t.close()
	if t.srv != nil {
		err = errors.Join(err, t.srv.Close())
	}
	return err
}

// NewWriter returns a writer that adds each entry of a call with the
// library's Add and waits for all their futures: the in-process
// equivalent of a call carrying that many entries.
func (t *tesseraLog) NewWriter(string, int) (writer, error) {
	return &tesseraWriter{a: t.appender}, nil
}

type tesseraWriter struct{ a *tessera.Appender }

func (w *tesseraWriter) add(ctx context.Context, entries [][]byte) (uint64, error) {
	futures := make([]tessera.IndexFuture, len(entries))
	for i, e := range entries {
		futures[i] = w.a.Add(ctx, tessera.NewEntry(e))
	}
	var last uint64
	var errs []error
	for _, f := range futures {
		idx, err := f()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		last = max(last, idx.Index)
	}
	// The POSIX driver sequences and integrates synchronously and never
	// pushes back; an error is a failure, not a retry (a retry would add
	// the batch's successful entries again: the log has no dedup).
	if err := errors.Join(errs...); err != nil {
		return 0, fmt.Errorf("tessera Add: %w", err)
	}
	return last, nil
}

func (w *tesseraWriter) close() error { return nil }
