package witness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
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
	// Logger is where the client logs witness failures. If nil,
	// slog.Default().
	Logger *slog.Logger
}

// Client is the log side of C2SP tlog-witness: it sends each new checkpoint
// to the witnesses of a tlog-policy and gathers their cosignatures. It is
// safe for concurrent use, but a log should send its checkpoints in order.
type Client struct {
	policy    fwitness.Group
	witnesses []clientWitness // sorted by URL; read-only
	http      *http.Client
	timeout   time.Duration
	logger    *slog.Logger

	mu    sync.Mutex
	sizes map[string]uint64 // guarded by mu: by add-checkpoint URL, the size each witness last cosigned or reported
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
		policy:  g,
		http:    cfg.HTTPClient,
		timeout: cfg.Timeout,
		logger:  cfg.Logger,
		sizes:   map[string]uint64{},
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
// that witness. Cosign returns within ClientConfig.Timeout (or when ctx is
// done); it fails only if checkpoint does not parse.
func (c *Client) Cosign(ctx context.Context, checkpoint []byte, proof ConsistencyProofFunc) (*CosignResult, error) {
	text, _, err := splitNote(checkpoint)
	if err != nil {
		return nil, err
	}
	cp, err := ParseCheckpointText(text)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	type result struct {
		i    int
		sigs []byte
		err  error
	}
	// Buffered for all: a sender abandoned after the deadline does not leak.
	ch := make(chan result, len(c.witnesses))
	for i, w := range c.witnesses {
		go func() {
			sigs, err := c.add(ctx, w, checkpoint, cp.Size, proof)
			ch <- result{i, sigs, err}
		}()
	}
	got := make([]*result, len(c.witnesses))
	collect := func(r result) { got[r.i] = &r }
wait:
	for range c.witnesses {
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
		if r.err != nil {
			res.Failed[w.url] = r.err
			c.logger.WarnContext(ctx, "witness did not cosign", "witness", w.key.Name(), "url", w.url, "size", cp.Size, "err", r.err)
			continue
		}
		res.Checkpoint = append(res.Checkpoint, r.sigs...)
		res.Cosigned = append(res.Cosigned, w.url)
	}
	res.Satisfied = c.policy.Satisfied(res.Checkpoint)
	return res, nil
}

func (c *Client) lastSize(u string) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sizes[u]
}

func (c *Client) setSize(u string, size uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sizes[u] = size
}

// add sends checkpoint to one witness, resyncing once on a 409, and
// returns its verified cosignature lines.
func (c *Client) add(ctx context.Context, w clientWitness, checkpoint []byte, size uint64, proofFn ConsistencyProofFunc) ([]byte, error) {
	old := c.lastSize(w.url)
	for attempt := 0; ; attempt++ {
		if old > size {
			return nil, fmt.Errorf("witness %s has cosigned size %d, larger than checkpoint size %d", w.url, old, size)
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
			sigs, err := verifyCosignatures(checkpoint, body, w.key)
			if err != nil {
				return nil, fmt.Errorf("witness %s: %w", w.url, err)
			}
			c.setSize(w.url, size)
			return sigs, nil
		case code == http.StatusConflict && attempt == 0:
			if contentType != "text/x.tlog.size" {
				return nil, fmt.Errorf("witness %s: 409 with Content-Type %q, want text/x.tlog.size", w.url, contentType)
			}
			s, ok := strings.CutSuffix(string(body), "\n")
			n, err := parseDecimal(s)
			if !ok || err != nil {
				return nil, fmt.Errorf("witness %s: 409 body %.30q is not a tree size", w.url, body)
			}
			c.setSize(w.url, n)
			old = n
		default:
			line, _, _ := strings.Cut(string(body), "\n")
			return nil, fmt.Errorf("witness %s: status %d: %.200s", w.url, code, line)
		}
	}
}

// maxResponseSize caps a witness's response: 16 cosignature lines of the
// largest (ML-DSA-44) kind fit comfortably.
const maxResponseSize = 64 << 10

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
// including at least one valid, timestamped cosignature by key over
// checkpoint, and returns those cosignature lines (others are ignored, as
// C2SP tlog-witness requires).
func verifyCosignatures(checkpoint, resp []byte, key note.Verifier) ([]byte, error) {
	if len(resp) == 0 || resp[len(resp)-1] != '\n' {
		return nil, errors.New("cosignature response is empty or unterminated")
	}
	n, err := note.Open(append(bytes.Clone(checkpoint), resp...), note.VerifierList(key))
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
