package witness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	fwitness "github.com/transparency-dev/formats/witness"
	"golang.org/x/mod/sumdb/note"
)

// ConsistencyProofFunc returns the RFC 6962 consistency proof from tree
// size from to tree size to (from < to) of the log. It must honour ctx.
type ConsistencyProofFunc func(ctx context.Context, from, to uint64) ([][]byte, error)

// ClientConfig configures a Client.
type ClientConfig struct {
	// Policy is a tlog-policy text: "witness <name> <vkey> <url>",
	// "group <name> <n|any|all> <member>...", "quorum <name|none>" lines,
	// as parsed by formats/witness.ParsePolicy (the format Tessera reads).
	// Each witness's add-checkpoint URL is <url>/add-checkpoint. Required.
	Policy []byte
	// HTTPClient sends the requests. If nil, a new http.Client; requests
	// are bounded by Timeout either way.
	HTTPClient *http.Client
	// Timeout bounds each Cosign call, all witnesses in parallel,
	// including a 409 resync and its retry. If zero, ten seconds.
	Timeout time.Duration
	// Logger is where the client logs each change of a witness's state:
	// WARN when it starts failing, with why; INFO when it cosigns again.
	// If nil, slog.Default().
	Logger *slog.Logger
	// MinBackoff is how long the client waits, after a witness failed to
	// cosign, before sending to it again; each further consecutive failure
	// doubles the wait, up to MaxBackoff, and a cosignature resets it.
	// Meanwhile Cosign counts the witness as failed (ErrBackoff) without
	// sending to it. If zero, one second.
	MinBackoff time.Duration
	// MaxBackoff caps the wait between tries of a failing witness. If zero,
	// five minutes, or MinBackoff if that is longer.
	MaxBackoff time.Duration
}

// ErrBackoff is the error of a witness that Cosign did not send to because
// it failed recently and its backoff (ClientConfig.MinBackoff) has not
// passed; the error also wraps the witness's last failure.
var ErrBackoff = errors.New("witness failing, waiting before retrying it")

// ErrWitnessAhead is the error of a witness that has cosigned a larger
// tree than the checkpoint: Cosign sends it nothing (no proof can go
// backwards). It is no failure of the witness, so it does not count
// towards its backoff: the log is behind (restored from a backup, or a
// fork of the log the witness follows), and the witness is sent the next
// checkpoint beyond its size.
var ErrWitnessAhead = errors.New("witness has cosigned a larger tree than the checkpoint")

// RefusedError is a witness's answer that is neither cosignatures (200)
// nor a 409 resync (a 409 whose Content-Type is text/x.tlog.size, body the
// witness's size, answered to the first try).
type RefusedError struct {
	// URL is the witness's add-checkpoint URL.
	URL string
	// Status is the HTTP status code.
	Status int
	// Body is the start of the response body: its first line, at most
	// 200 bytes.
	Body string
	// Reason says why a 409 is not a resync; "" for other statuses.
	Reason string
}

func (e *RefusedError) Error() string {
	why := ""
	if e.Reason != "" {
		why = " (" + e.Reason + ")"
	}
	return fmt.Sprintf("witness %s refused the checkpoint: status %d %s%s: %q", e.URL, e.Status, http.StatusText(e.Status), why, e.Body)
}

// Client is the log side of C2SP tlog-witness: it sends each new checkpoint
// to the witnesses of a tlog-policy and gathers their cosignatures. It is
// safe for concurrent use, but a log should send its checkpoints in order.
type Client struct {
	policy     fwitness.Group
	witnesses  []clientWitness // sorted by URL; read-only
	http       *http.Client
	timeout    time.Duration
	minBackoff time.Duration
	maxBackoff time.Duration
	logger     *slog.Logger
	now        func() time.Time // time.Now; tests replace it before use

	mu     sync.Mutex
	health map[string]*witnessHealth // guarded by mu: by add-checkpoint URL
}

// witnessHealth is what the Client knows of one witness.
type witnessHealth struct {
	size     uint64    // the size it last cosigned or reported
	failures int       // consecutive failures; 0 when healthy
	retryAt  time.Time // while failing: no request before then
	err      error     // while failing: the last failure
}

type clientWitness struct {
	url string
	key note.Verifier
}

// NewClient returns a Client for cfg.
func NewClient(cfg ClientConfig) (*Client, error) {
	g, err := fwitness.ParsePolicy(cfg.Policy)
	if err != nil {
		return nil, fmt.Errorf("witness policy: %w", err)
	}
	c := &Client{
		policy:     g,
		http:       cfg.HTTPClient,
		timeout:    cfg.Timeout,
		minBackoff: cfg.MinBackoff,
		maxBackoff: cfg.MaxBackoff,
		logger:     cfg.Logger,
		now:        time.Now,
		health:     map[string]*witnessHealth{},
	}
	for u, v := range g.Endpoints() {
		c.witnesses = append(c.witnesses, clientWitness{url: u, key: v})
	}
	slices.SortFunc(c.witnesses, func(a, b clientWitness) int { return strings.Compare(a.url, b.url) })
	if c.http == nil {
		c.http = &http.Client{}
	}
	if c.timeout == 0 {
		c.timeout = 10 * time.Second
	}
	if c.minBackoff == 0 {
		c.minBackoff = time.Second
	}
	if c.maxBackoff == 0 {
		c.maxBackoff = max(5*time.Minute, c.minBackoff)
	}
	if c.maxBackoff < c.minBackoff {
		return nil, fmt.Errorf("witness client: MaxBackoff %s below MinBackoff %s", c.maxBackoff, c.minBackoff)
	}
	if c.logger == nil {
		c.logger = slog.Default()
	}
	return c, nil
}

// CosignResult is the outcome of Client.Cosign.
type CosignResult struct {
	// Checkpoint is the checkpoint sent, with the verified cosignature
	// lines of every witness that cosigned appended.
	Checkpoint []byte
	// Satisfied reports whether the cosignatures satisfy the policy's
	// quorum (formats/witness Group.Satisfied).
	Satisfied bool
	// Cosigned lists the add-checkpoint URLs of the witnesses that
	// cosigned.
	Cosigned []string
	// Failed maps the add-checkpoint URL of each witness that did not
	// cosign to why.
	Failed map[string]error
}

// Cosign sends checkpoint (a log-signed note) to every witness of the
// policy in parallel, with a consistency proof from the size that witness
// last cosigned (from proof; zero, and no proof, for a witness never heard
// from). A witness answering 409 with its size (text/x.tlog.size) is
// resynced to that size and retried once; any other answer than 200 with
// cosignatures that verify with the witness's key counts as a failure of
// that witness, and a failing witness is not sent to again until its
// backoff has passed (ClientConfig.MinBackoff). The cosignatures copied
// into the result are re-encoded canonically. Cosign returns within
// ClientConfig.Timeout (or when ctx is done); it fails only if checkpoint
// does not parse.
func (c *Client) Cosign(ctx context.Context, checkpoint []byte, proof ConsistencyProofFunc) (*CosignResult, error) {
	text, _, err := splitNote(checkpoint)
	if err != nil {
		return nil, err
	}
	cp, err := ParseCheckpointText(text)
	if err != nil {
		return nil, err
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	type result struct {
		i    int
		sigs []byte
		err  error
	}
	got := make([]*result, len(c.witnesses))
	// Buffered for all: a sender abandoned after the deadline does not leak.
	ch := make(chan result, len(c.witnesses))
	sent := 0
	now := c.now()
	for i, w := range c.witnesses {
		if err := c.waiting(w.url, now); err != nil {
			got[i] = &result{i: i, err: err}
			continue
		}
		sent++
		go func() {
			sigs, err := c.add(ctx, w, checkpoint, text, cp.Size, proof)
			ch <- result{i, sigs, err}
		}()
	}
	collect := func(r result) { got[r.i] = &r }
wait:
	for range sent {
		select {
		case r := <-ch:
			collect(r)
		case <-ctx.Done():
			break wait
		}
	}
	for drained := false; !drained; { // results that arrived with the deadline
		select {
		case r := <-ch:
			collect(r)
		default:
			drained = true
		}
	}
	res := &CosignResult{Checkpoint: bytes.Clone(checkpoint), Failed: map[string]error{}}
	for i, w := range c.witnesses {
		r := got[i]
		if r == nil {
			r = &result{err: fmt.Errorf("witness %s: %w", w.url, context.Cause(ctx))}
		}
		switch {
		case errors.Is(r.err, ErrBackoff), errors.Is(r.err, ErrWitnessAhead):
			// Nothing was sent: nothing learnt about the witness.
		case r.err != nil && parent.Err() != nil:
			// The caller gave up, not the witness.
		default:
			c.observe(ctx, w, cp.Size, r.err)
		}
		if r.err != nil {
			res.Failed[w.url] = r.err
			continue
		}
		res.Checkpoint = append(res.Checkpoint, r.sigs...)
		res.Cosigned = append(res.Cosigned, w.url)
	}
	res.Satisfied = c.policy.Satisfied(res.Checkpoint)
	return res, nil
}

// healthOf returns the record of the witness at u, creating it. c.mu must
// be held.
func (c *Client) healthOf(u string) *witnessHealth {
	h := c.health[u]
	if h == nil {
		h = &witnessHealth{}
		c.health[u] = h
	}
	return h
}

// waiting returns an error wrapping ErrBackoff if the witness at u is
// failing and not to be sent to before a later time than now.
func (c *Client) waiting(u string, now time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.healthOf(u)
	if h.failures == 0 || !now.Before(h.retryAt) {
		return nil
	}
	return fmt.Errorf("witness %s: %w (%d consecutive failures, next try in %s): %w", u, ErrBackoff, h.failures, h.retryAt.Sub(now), h.err)
}

// observe records the outcome of sending to w (err nil: it cosigned) and
// logs a change of its state: WARN when it starts failing, INFO when it
// recovers; repeated failures only at DEBUG.
func (c *Client) observe(ctx context.Context, w clientWitness, size uint64, err error) {
	c.mu.Lock()
	h := c.healthOf(w.url)
	failures := h.failures
	if err == nil {
		h.failures, h.err = 0, nil
	} else {
		h.failures++
		h.err = err
		h.retryAt = c.now().Add(c.backoff(h.failures))
	}
	retryIn := c.backoff(h.failures)
	c.mu.Unlock()
	attrs := []any{"witness", w.key.Name(), "url", w.url, "size", size}
	switch {
	case err == nil && failures > 0:
		c.logger.InfoContext(ctx, "witness recovered: cosigning again", append(attrs, "failures", failures)...)
	case err != nil && failures == 0:
		c.logger.WarnContext(ctx, "witness failing: did not cosign; retrying with backoff", append(attrs, "err", err, "retry_in", retryIn)...)
	case err != nil:
		c.logger.DebugContext(ctx, "witness still failing", append(attrs, "err", err, "failures", failures+1, "retry_in", retryIn)...)
	}
}

// backoff is the wait after the failures-th consecutive failure:
// MinBackoff doubled for each failure after the first, capped at
// MaxBackoff.
func (c *Client) backoff(failures int) time.Duration {
	d := c.minBackoff
	for i := 1; i < failures && d < c.maxBackoff; i++ {
		d *= 2
	}
	return min(d, c.maxBackoff)
}

func (c *Client) lastSize(u string) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.healthOf(u).size
}

func (c *Client) setSize(u string, size uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.healthOf(u).size = size
}

// add sends checkpoint, whose note text is text, to one witness, resyncing
// once on a 409, and returns its verified cosignature lines.
func (c *Client) add(ctx context.Context, w clientWitness, checkpoint, text []byte, size uint64, proofFn ConsistencyProofFunc) ([]byte, error) {
	old := c.lastSize(w.url)
	for attempt := 0; ; attempt++ {
		if old > size {
			return nil, fmt.Errorf("witness %s: %w: size %d, checkpoint size %d", w.url, ErrWitnessAhead, old, size)
		}
		req := AddCheckpointRequest{OldSize: old, Checkpoint: checkpoint}
		if old > 0 && old < size {
			p, err := proofFn(ctx, old, size)
			if err != nil {
				return nil, fmt.Errorf("consistency proof %d→%d: %w", old, size, err)
			}
			req.Proof = p
		}
		code, contentType, body, err := c.post(ctx, w.url, req.Marshal())
		if err != nil {
			return nil, err
		}
		switch {
		case code == http.StatusOK:
			sigs, err := verifyCosignatures(text, body, w.key)
			if err != nil {
				return nil, fmt.Errorf("witness %s: %w", w.url, err)
			}
			c.setSize(w.url, size)
			return sigs, nil
		case code == http.StatusConflict && isTreeSize(contentType) && attempt == 0:
			s, ok := strings.CutSuffix(string(body), "\n")
			n, err := parseDecimal(s)
			if !ok || err != nil {
				return nil, fmt.Errorf("witness %s: 409 text/x.tlog.size body %.30q is not a tree size", w.url, body)
			}
			c.setSize(w.url, n)
			old = n
		default:
			line, _, _ := strings.Cut(string(body), "\n")
			if len(line) > 200 {
				line = line[:200]
			}
			refused := &RefusedError{URL: w.url, Status: code, Body: line}
			switch {
			case code == http.StatusConflict && attempt > 0:
				refused.Reason = "again, after resyncing to the size it gave"
			case code == http.StatusConflict:
				refused.Reason = "without a text/x.tlog.size body: not a resync"
			}
			return nil, refused
		}
	}
}

// isTreeSize reports whether contentType is text/x.tlog.size, the type of
// a C2SP tlog-witness 409 that gives the witness's size.
func isTreeSize(contentType string) bool {
	t, _, err := mime.ParseMediaType(contentType)
	return err == nil && t == "text/x.tlog.size"
}

// maxResponseSize caps a witness's response, cosignature lines that join
// a checkpoint: the module's checkpoint cap (MaxCheckpointSize, that is
// checkpoint.MaxSize), in which 16 ML-DSA-44 cosignature lines fit
// comfortably.
const maxResponseSize = MaxCheckpointSize

func (c *Client) post(ctx context.Context, u string, body []byte) (code int, contentType string, respBody []byte, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return 0, "", nil, fmt.Errorf("witness %s: %w", u, err)
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, "", nil, fmt.Errorf("witness %s: %w", u, err)
	}
	defer resp.Body.Close()
	respBody, err = io.ReadAll(io.LimitReader(resp.Body, maxResponseSize+1))
	if err != nil {
		return 0, "", nil, fmt.Errorf("witness %s: reading response: %w", u, err)
	}
	if len(respBody) > maxResponseSize {
		return 0, "", nil, fmt.Errorf("witness %s: response larger than %d bytes", u, maxResponseSize)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), respBody, nil
}

// verifyCosignatures checks that resp is a sequence of signature lines
// including at least one valid, timestamped cosignature by key over the
// checkpoint text, and returns those cosignature lines re-encoded
// canonically. Lines of other keys are ignored, as C2SP tlog-witness and
// signed-note require (openNote), whatever their encoding, and so are not
// copied.
func verifyCosignatures(text, resp []byte, key note.Verifier) ([]byte, error) {
	if len(resp) == 0 || resp[len(resp)-1] != '\n' {
		return nil, errors.New("cosignature response is empty or unterminated")
	}
	n, err := openNote(text, resp, note.VerifierList(key))
	if err != nil {
		return nil, fmt.Errorf("cosignature does not verify: %w", err)
	}
	for _, s := range n.Sigs {
		t, err := fnote.CoSigV1Timestamp(s)
		if err != nil || t.Unix() <= 0 {
			return nil, errors.New("cosignature has no timestamp")
		}
	}
	return formatSignatures(n.Sigs), nil
}
