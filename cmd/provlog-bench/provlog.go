package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	provlogv1 "github.com/provlog/provlog/proto/provlog/v1"
	tlog "github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/provlog/provlog/internal/provlogdproc"
)

// buildProvlogd builds cmd/provlogd of the module in the current directory
// into dir and returns the binary's path.
func buildProvlogd(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "provlogd")
	if err := provlogdproc.Build(ctx, "github.com/provlog/provlog/cmd/provlogd", bin); err != nil {
		return "", fmt.Errorf("building provlogd (run provlog-bench from the provlog module): %w", err)
	}
	return bin, nil
}

// provlogdArgs are the flags of one provlogd child process.
type provlogdArgs struct {
	bin, dataDir string
	// logFile receives the child's stderr.
	logFile string
	// keyring, if set, runs it with --admission attestations.
	keyring string
	extra   []string
	// debugAddr is the address of --debug-listen in extra, if any.
	debugAddr string
}

// provlog is a provlogd child process, or a running provlogd the bench was
// pointed at (cmd nil), and gRPC connections to it.
type provlog struct {
	args     provlogdArgs
	proc     *child // nil if the bench did not start it
	grpcAddr string
	httpURL  string
	verifier note.Verifier
	conns    []*grpc.ClientConn
	http     *http.Client

	streamsMu sync.Mutex
	streams   map[int]*sharedStream // by stream number, for modeStream
}

// startProvlogd starts provlogd and returns once it answers /healthz, with
// the time that took from exec.
func startProvlogd(ctx context.Context, a provlogdArgs) (*provlog, time.Duration, error) {
	admission := []string{"--admission", "open"}
	if a.keyring != "" {
		admission = []string{"--admission", "attestations", "--keyring", a.keyring}
	}
	argv := append([]string{"--data", a.dataDir, "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"}, admission...)
	argv = append(argv, a.extra...)
	t0 := time.Now()
	var banner provlogdproc.Banner
	c, err := startChild("provlogd", a.bin, argv, a.logFile, func(stdout io.Reader) (drained <-chan struct{}, err error) {
		banner, drained, err = provlogdproc.ReadBanner(stdout, nil)
		return drained, err
	})
	if err != nil {
		return nil, 0, err
	}
	p := &provlog{args: a, proc: c}
	err = p.connect(banner)
	if err == nil {
		err = p.waitHealthy(ctx, 30*time.Second)
	}
	if err != nil {
		c.kill()
		return nil, 0, fmt.Errorf("provlogd %s (log in %s): %w", a.dataDir, a.logFile, err)
	}
	return p, time.Since(t0), nil
}

// dialProvlog connects to a running provlogd.
func dialProvlog(grpcAddr, httpURL, verifierKey string) (*provlog, error) {
	p := &provlog{}
	err := p.connect(provlogdproc.Banner{GRPCAddr: grpcAddr, HTTPURL: httpURL, VerifierKey: verifierKey})
	return p, err
}

// grpcConns is how many gRPC connections the bench opens to provlogd;
// writers share them round robin.
const grpcConns = 4

func (p *provlog) connect(banner provlogdproc.Banner) error {
	v, err := note.NewVerifier(banner.VerifierKey)
	if err != nil {
		return fmt.Errorf("log verifier key: %w", err)
	}
	p.verifier, p.grpcAddr, p.httpURL = v, banner.GRPCAddr, strings.TrimSuffix(banner.HTTPURL, "/")
	for range grpcConns {
		c, err := grpc.NewClient(p.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(64<<20)))
		if err != nil {
			return fmt.Errorf("dialing %s: %w", p.grpcAddr, err)
		}
		p.conns = append(p.conns, c)
	}
	p.http = newHTTPClient(1024)
	p.streams = map[int]*sharedStream{}
	return nil
}

func (p *provlog) waitHealthy(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		resp, err := p.http.Get(p.httpURL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		var exited chan error
		if p.proc != nil {
			exited = p.proc.exited
		}
		select {
		case err := <-exited:
			return fmt.Errorf("exited before healthy: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not healthy after %v", timeout)
		}
	}
}

func (p *provlog) client(i int) provlogv1.LogClient {
	return provlogv1.NewLogClient(p.conns[i%len(p.conns)])
}

func (p *provlog) Name() string { return "provlog" }

func (p *provlog) PID() int {
	if p.proc == nil {
		return 0
	}
	return p.proc.pid()
}

func (p *provlog) DataDir() string                   { return p.args.dataDir }
func (p *provlog) TileBaseURL() string               { return p.httpURL }
func (p *provlog) CheckpointInterval() time.Duration { return 0 }

func (p *provlog) CheckpointSize(ctx context.Context) (uint64, error) {
	resp, err := p.client(0).GetCheckpoint(ctx, &provlogv1.GetCheckpointRequest{})
	if err != nil {
		return 0, fmt.Errorf("GetCheckpoint: %w", err)
	}
	return verifiedSize(resp.Checkpoint, p.verifier)
}

// verifiedSize verifies a signed checkpoint and returns its tree size.
func verifiedSize(cp []byte, v note.Verifier) (uint64, error) {
	c, _, _, err := tlog.ParseCheckpoint(cp, v.Name(), v)
	if err != nil {
		return 0, fmt.Errorf("checkpoint: %w", err)
	}
	return c.Size, nil
}

// Close stops the child (if the bench started it) and closes the
// connections.
func (p *provlog) Close() error {
	var errs []error
	for _, c := range p.conns {
		errs = append(errs, c.Close())
	}
	if p.proc != nil {
		_, err := p.proc.stop(time.Minute)
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (p *provlog) NewWriter(mode string, i int) (writer, error) {
	switch mode {
	case modeSingle:
		return &appendWriter{c: p.client(i)}, nil
	case modeBatch, modeEvents:
		return &batchWriter{c: p.client(i)}, nil
	case modeHTTP, modeMixed:
		return &httpWriter{c: p.http, url: p.httpURL + "/add"}, nil
	case modeStream:
		return p.streamWriter(i / streamDepth)
	}
	return nil, fmt.Errorf("provlog: unknown mode %q", mode)
}

// grpcErr maps ResourceExhausted (pushback) to errPushback.
func grpcErr(what string, err error) error {
	if status.Code(err) == codes.ResourceExhausted {
		return fmt.Errorf("%s: %w: %w", what, errPushback, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

type appendWriter struct{ c provlogv1.LogClient }

func (w *appendWriter) add(ctx context.Context, entries [][]byte) (uint64, error) {
	var last uint64
	for _, e := range entries {
		r, err := w.c.Append(ctx, &provlogv1.AppendRequest{Entry: e})
		if err != nil {
			return 0, grpcErr("Append", err)
		}
		last = max(last, r.Index)
	}
	return last, nil
}

func (w *appendWriter) close() error { return nil }

type batchWriter struct{ c provlogv1.LogClient }

func (w *batchWriter) add(ctx context.Context, entries [][]byte) (uint64, error) {
	r, err := w.c.AppendBatch(ctx, &provlogv1.AppendBatchRequest{Entries: entries})
	if err != nil {
		return 0, grpcErr("AppendBatch", err)
	}
	return maxIndex(r.Results)
}

func (w *batchWriter) close() error { return nil }

func maxIndex(rs []*provlogv1.AppendResponse) (uint64, error) {
	if len(rs) == 0 {
		return 0, errors.New("no results")
	}
	var m uint64
	for _, r := range rs {
		m = max(m, r.Index)
	}
	return m, nil
}

type httpWriter struct {
	c   *http.Client
	url string
}

func (w *httpWriter) add(ctx context.Context, entries [][]byte) (uint64, error) {
	var last uint64
	for _, e := range entries {
		i, err := w.post(ctx, e)
		if err != nil {
			return 0, err
		}
		last = max(last, i)
	}
	return last, nil
}

func (w *httpWriter) post(ctx context.Context, e []byte) (uint64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(e))
	if err != nil {
		return 0, fmt.Errorf("POST /add: %w", err)
	}
	resp, err := w.c.Do(req)
	if err != nil {
		return 0, fmt.Errorf("POST /add: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return 0, fmt.Errorf("POST /add: reading response: %w", err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		return 0, fmt.Errorf("POST /add: %s: %w", resp.Status, errPushback)
	default:
		return 0, fmt.Errorf("POST /add: %s: %s", resp.Status, bytes.TrimSpace(body))
	}
	i, err := strconv.ParseUint(string(bytes.TrimSpace(body)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("POST /add: response %q: %w", body, err)
	}
	return i, nil
}

func (w *httpWriter) close() error { return nil }

// exitStatus describes the child's exit for an error message, or returns
// "" if it is still running a second later (or the bench did not start it).
func (p *provlog) exitStatus() string {
	if p.proc == nil {
		return ""
	}
	return p.proc.exitStatus()
}
