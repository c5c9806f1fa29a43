package client

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	provlogv1 "github.com/provlog/provlog/proto/provlog/v1"
)

const (
	// maxBatchEntries and maxBatchBytes bound one AppendBatch request
	// (the server takes at most 4096 entries and 64 MiB).
	maxBatchEntries = 4096
	maxBatchBytes   = 16 << 20
	// appendConcurrency is how many AppendBatch calls AppendMany keeps in
	// flight.
	appendConcurrency = 4
	// maxMsgSize is the largest gRPC message sent or received.
	maxMsgSize = 64 << 20
)

// Config configures a Client.
type Config struct {
	// VerifierKey is the log's note verifier key ("origin+hash+base64", as
	// in DATA/log.pub). Required: every checkpoint is verified with it.
	VerifierKey string
	// Origin is the origin checkpoints must name. If empty, the verifier
	// key's name (which in provlog equals the origin).
	Origin string
	// Plaintext disables TLS. Dial accepts it only for a loopback target
	// (localhost, 127.0.0.0/8, ::1).
	Plaintext bool
	// TLS configures TLS when Plaintext is false.
	TLS TLSConfig
	// BearerToken, if not empty, is sent with every call as
	// "authorization: Bearer <token>", the credential of a writer identity
	// (reads need none). It is sent over TLS, or in plaintext only to a
	// loopback address.
	BearerToken string
	// Retry says how Unavailable and ResourceExhausted from a log that
	// answers are retried. The zero value retries until the context ends.
	Retry RetryPolicy
	// WaitForReady makes a call wait while no connection to the log can
	// be made (it is down, restarting or not started yet) until one can or
	// the call's context ends, as gRPC's WaitForReady: for a client that
	// must ride out a restart of the log. If false, such a call fails at
	// once with a *ConnectError (ErrNoConnection): connection refused, no
	// route to the host, a name that does not resolve, a failed TLS
	// handshake. Either way, a log that answers with pushback or
	// unavailability is retried as Retry says.
	WaitForReady bool
	// PollInterval is the first wait between checkpoint polls in
	// WaitForInclusion; it doubles up to MaxPollInterval. If zero, 25ms.
	PollInterval time.Duration
	// MaxPollInterval caps the wait between checkpoint polls. If zero, 2s.
	MaxPollInterval time.Duration
	// Logger receives debug logs of retries. If nil, slog.Default().
	Logger *slog.Logger
}

// TLSConfig configures the TLS of a gRPC connection.
type TLSConfig struct {
	// CAFile is a PEM file of the CA certificates to trust. If empty, the
	// system roots.
	CAFile string
	// CertFile and KeyFile are the PEM client certificate and key for
	// mutual TLS. If both are empty, no client certificate is sent.
	CertFile, KeyFile string
	// ServerName is the name the server's certificate must have. If empty,
	// the target's host.
	ServerName string
}

// Client talks to a provlog log over gRPC and verifies what it reads.
// Its methods may be called from any goroutine.
type Client struct {
	log      provlogv1.LogClient
	cc       grpc.ClientConnInterface // what calls go through (a failFastConn)
	conn     *grpc.ClientConn         // nil if the caller owns the connection
	vkey     string
	verifier note.Verifier
	origin   string
	cfg      Config
	logger   *slog.Logger
}

// Dial returns a Client for the provlog.v1.Log service at target
// ("host:port", or any gRPC target). The connection is made lazily, on the
// first call; a call that cannot make it fails at once with a
// *ConnectError unless cfg.WaitForReady is set. ctx only cancels Dial
// itself. opts are applied after the options Dial derives from cfg, so
// they may override them.
func Dial(ctx context.Context, target string, cfg Config, opts ...grpc.DialOption) (*Client, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	creds, err := transportCredentials(target, cfg)
	if err != nil {
		return nil, err
	}
	all := append([]grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsgSize), grpc.MaxCallSendMsgSize(maxMsgSize)),
	}, opts...)
	conn, err := grpc.NewClient(target, all...)
	if err != nil {
		return nil, fmt.Errorf("dialling %s: %w", target, err)
	}
	c, err := New(conn, cfg)
	if err != nil {
		conn.Close()
		return nil, err
	}
	c.conn = conn
	return c, nil
}

// New returns a Client using conn, which the caller owns and closes.
// cfg's connection fields (Plaintext, TLS) are ignored; WaitForReady
// applies to the calls made on conn.
func New(conn grpc.ClientConnInterface, cfg Config) (*Client, error) {
	v, err := newLogVerifier(cfg.VerifierKey)
	if err != nil {
		return nil, err
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 25 * time.Millisecond
	}
	if cfg.MaxPollInterval <= 0 {
		cfg.MaxPollInterval = 2 * time.Second
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	origin := cfg.Origin
	if origin == "" {
		origin = v.Name()
	}
	target := ""
	if t, ok := conn.(interface{ Target() string }); ok {
		target = t.Target()
	}
	cc := failFastConn{cc: conn, target: target, waitForReady: cfg.WaitForReady}
	return &Client{
		log:      provlogv1.NewLogClient(cc),
		cc:       cc,
		vkey:     cfg.VerifierKey,
		verifier: v,
		origin:   origin,
		cfg:      cfg,
		logger:   logger,
	}, nil
}

// Close closes the connection if Dial made it.
func (c *Client) Close() error {
	if c.conn == nil {
		return nil
	}
	return c.conn.Close()
}

// LogClient returns the underlying gRPC client, for calls this package does
// not wrap. What it returns is not verified.
func (c *Client) LogClient() provlogv1.LogClient { return c.log }

// transportCredentials returns plaintext or TLS credentials for target.
func transportCredentials(target string, cfg Config) (credentials.TransportCredentials, error) {
	if cfg.Plaintext {
		if !IsLoopback(target) {
			return nil, fmt.Errorf("plaintext gRPC to %q: only loopback targets may go without TLS", target)
		}
		return insecure.NewCredentials(), nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: cfg.TLS.ServerName}
	if cfg.TLS.CAFile != "" {
		pem, err := os.ReadFile(cfg.TLS.CAFile)
		if err != nil {
			return nil, fmt.Errorf("reading CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s: no PEM certificates", cfg.TLS.CAFile)
		}
		tc.RootCAs = pool
	}
	if cfg.TLS.CertFile != "" || cfg.TLS.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("loading client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return credentials.NewTLS(tc), nil
}

// IsLoopback reports whether the gRPC target names a loopback host: the
// targets Dial accepts with Config.Plaintext.
func IsLoopback(target string) bool {
	for _, scheme := range []string{"dns:///", "passthrough:///"} {
		target = strings.TrimPrefix(target, scheme)
	}
	host, _, err := net.SplitHostPort(target)
	if err != nil {
		host = target
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// retry makes a call (see retry), with the bearer token if there is one.
func (c *Client) retry(ctx context.Context, op string, call func(context.Context) error) error {
	if c.cfg.BearerToken != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+c.cfg.BearerToken)
	}
	return retry(ctx, c.cfg.Retry, c.logger, op, call)
}

// Result is where an appended entry is in the log.
type Result struct {
	// Index is the entry's index.
	Index uint64
	// Duplicate is true if the entry was already in the log; Index is then
	// the original one.
	Duplicate bool
}

// Append appends entry and returns its index once the entry is durable
// and covered by a signed checkpoint. Pushback and unavailability are
// retried (see RetryPolicy), which is safe because the log deduplicates
// identical entries. Errors wrap ErrRejected (the entry was refused, e.g.
// empty or too large) or ErrUnavailable, and the gRPC status.
func (c *Client) Append(ctx context.Context, entry []byte) (Result, error) {
	var resp *provlogv1.AppendResponse
	err := c.retry(ctx, "append", func(ctx context.Context) error {
		var err error
		resp, err = c.log.Append(ctx, &provlogv1.AppendRequest{Entry: entry})
		return err
	})
	if err != nil {
		return Result{}, err
	}
	return Result{Index: resp.GetIndex(), Duplicate: resp.GetDuplicate()}, nil
}

// AppendMany appends entries in AppendBatch calls of at most 4096 entries
// and about 16 MiB, a few at a time, each retried as in Append, and
// returns their results in order. Entries are not guaranteed contiguous.
// On error some entries may have been appended; calling AppendMany again
// with the same entries is safe and returns their indices.
func (c *Client) AppendMany(ctx context.Context, entries [][]byte) ([]Result, error) {
	results := make([]Result, len(entries))
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sem := make(chan struct{}, appendConcurrency)
	var wg sync.WaitGroup
	var once sync.Once
	var firstErr error
	for lo, hi := range batches(entries) {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := c.appendBatch(ctx, entries[lo:hi], results[lo:hi]); err != nil {
				once.Do(func() { firstErr = fmt.Errorf("entries [%d, %d): %w", lo, hi, err) })
				cancel(err)
			}
		})
	}
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = context.Cause(ctx)
	}
	if firstErr != nil {
		return nil, firstErr
	}
	return results, nil
}

// batches yields the bounds [lo, hi) of consecutive batches of entries of
// at most maxBatchEntries entries and, unless one entry is larger, at most
// maxBatchBytes bytes.
func batches(entries [][]byte) iter.Seq2[int, int] {
	return func(yield func(int, int) bool) {
		lo, size := 0, 0
		for i, e := range entries {
			if i > lo && (i-lo == maxBatchEntries || size+len(e) > maxBatchBytes) {
				if !yield(lo, i) {
					return
				}
				lo, size = i, 0
			}
			size += len(e) + 4 // with the protobuf tag and length
		}
		if lo < len(entries) {
			yield(lo, len(entries))
		}
	}
}

// appendBatch appends one batch, writing its results into out.
func (c *Client) appendBatch(ctx context.Context, batch [][]byte, out []Result) error {
	var resp *provlogv1.AppendBatchResponse
	err := c.retry(ctx, "append batch", func(ctx context.Context) error {
		var err error
		resp, err = c.log.AppendBatch(ctx, &provlogv1.AppendBatchRequest{Entries: batch})
		return err
	})
	if err != nil {
		return err
	}
	if n := len(resp.GetResults()); n != len(batch) {
		return fmt.Errorf("%w: AppendBatch answered %d results for %d entries", ErrLogMisbehaved, n, len(batch))
	}
	for i, r := range resp.GetResults() {
		out[i] = Result{Index: r.GetIndex(), Duplicate: r.GetDuplicate()}
	}
	return nil
}

// Checkpoint fetches the log's latest checkpoint and verifies its
// signature by the log's key and its origin (see OpenCheckpoint).
func (c *Client) Checkpoint(ctx context.Context) (*Checkpoint, error) {
	var resp *provlogv1.GetCheckpointResponse
	err := c.retry(ctx, "get checkpoint", func(ctx context.Context) error {
		var err error
		resp, err = c.log.GetCheckpoint(ctx, &provlogv1.GetCheckpointRequest{})
		return err
	})
	if err != nil {
		return nil, err
	}
	return OpenCheckpoint(resp.GetCheckpoint(), c.verifier, c.origin)
}

// WaitForInclusion polls the log's checkpoint, with growing waits (see
// Config.PollInterval), until a verified checkpoint covers index (its size
// is greater than index), and returns it. It fails at once if a checkpoint
// does not verify.
func (c *Client) WaitForInclusion(ctx context.Context, index uint64) (*Checkpoint, error) {
	wait := c.cfg.PollInterval
	for {
		cp, err := c.Checkpoint(ctx)
		if err != nil {
			return nil, err
		}
		if cp.Size > index {
			return cp, nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("waiting for a checkpoint covering entry %d (latest size %d): %w", index, cp.Size, ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, c.cfg.MaxPollInterval)
	}
}

// InclusionProof fetches the RFC 6962 inclusion proof of the entry at
// index in the tree of cp, a verified checkpoint, and checks its shape
// (not its hashes: see VerifyInclusion).
func (c *Client) InclusionProof(ctx context.Context, index uint64, cp *Checkpoint) ([][]byte, error) {
	if index >= cp.Size {
		return nil, fmt.Errorf("inclusion proof: entry %d is not in the tree of size %d", index, cp.Size)
	}
	var resp *provlogv1.GetInclusionProofResponse
	err := c.retry(ctx, "get inclusion proof", func(ctx context.Context) error {
		var err error
		resp, err = c.log.GetInclusionProof(ctx, &provlogv1.GetInclusionProofRequest{
			Leaf:     &provlogv1.GetInclusionProofRequest_Index{Index: index},
			TreeSize: cp.Size,
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	if resp.GetIndex() != index || resp.GetTreeSize() != cp.Size {
		return nil, fmt.Errorf("%w: asked for the proof of entry %d at size %d, got entry %d at size %d",
			ErrLogMisbehaved, index, cp.Size, resp.GetIndex(), resp.GetTreeSize())
	}
	if err := checkHashes(resp.GetProof()); err != nil {
		return nil, fmt.Errorf("inclusion proof: %w", err)
	}
	return resp.GetProof(), nil
}

// checkHashes checks that a proof has at most 64 hashes of 32 bytes.
func checkHashes(hashes [][]byte) error {
	if len(hashes) > maxProofHashes {
		return fmt.Errorf("%w: %d hashes, want <= %d", ErrFormat, len(hashes), maxProofHashes)
	}
	for i, h := range hashes {
		if len(h) != sha256.Size {
			return fmt.Errorf("%w: hash %d has %d bytes, want %d", ErrFormat, i, len(h), sha256.Size)
		}
	}
	return nil
}

// VerifyInclusion waits until a verified checkpoint covers index (as
// WaitForInclusion), fetches the inclusion proof of the entry at index in
// its tree and verifies that it binds SHA-256(0x00||entry) to the
// checkpoint's root. It returns the checkpoint. A proof that does not
// verify wraps ErrInclusionProof.
func (c *Client) VerifyInclusion(ctx context.Context, entry []byte, index uint64) (*Checkpoint, error) {
	cp, err := c.WaitForInclusion(ctx, index)
	if err != nil {
		return nil, err
	}
	hashes, err := c.InclusionProof(ctx, index, cp)
	if err != nil {
		return nil, err
	}
	if err := verifyInclusion(entry, index, toArrays(hashes), cp); err != nil {
		return nil, err
	}
	return cp, nil
}

// toArrays converts hashes already checked to be 32 bytes.
func toArrays(hashes [][]byte) [][sha256.Size]byte {
	out := make([][sha256.Size]byte, len(hashes))
	for i, h := range hashes {
		out[i] = [sha256.Size]byte(h)
	}
	return out
}

// Entries fetches the entries [start, start+count). They are not verified:
// the log could send any bytes (VerifyInclusion or a bundle proves an
// entry). A GetEntries call may return only the first part of its range
// (provlogd sends at most 1,024 entries a call, as RFC 6962 get-entries
// may), so Entries asks again from where the last answer ended.
func (c *Client) Entries(ctx context.Context, start, count uint64) ([][]byte, error) {
	out := make([][]byte, 0, min(count, 4096))
	for uint64(len(out)) < count {
		from := start + uint64(len(out))
		page, err := c.entriesPage(ctx, from, count-uint64(len(out)))
		if err != nil {
			return nil, err
		}
		if len(page) == 0 {
			return nil, fmt.Errorf("%w: GetEntries sent no entries from %d, %d wanted", ErrLogMisbehaved, from, count-uint64(len(out)))
		}
		out = append(out, page...)
	}
	return out, nil
}

// entriesPage is one GetEntries call for [start, start+count): the entries
// the log sends, a prefix of the range.
func (c *Client) entriesPage(ctx context.Context, start, count uint64) ([][]byte, error) {
	var out [][]byte
	err := c.retry(ctx, "get entries", func(ctx context.Context) error {
		out = out[:0]
		stream, err := c.log.GetEntries(ctx, &provlogv1.GetEntriesRequest{Start: start, Count: count})
		if err != nil {
			return err
		}
		for {
			resp, err := stream.Recv()
			if err != nil {
				if errors.Is(err, io.EOF) {
					return nil
				}
				return err
			}
			if resp.GetStart() != start+uint64(len(out)) || uint64(len(out)+len(resp.GetEntries())) > count {
				return fmt.Errorf("%w: GetEntries chunk at %d of %d entries, after %d of %d from %d",
					ErrLogMisbehaved, resp.GetStart(), len(resp.GetEntries()), len(out), count, start)
			}
			out = append(out, resp.GetEntries()...)
		}
	})
	return out, err
}

// ProofBundle returns a tlog-proof bundle for the entry at index, from the
// GetProofBundle call or, if the log does not implement it, built from
// the checkpoint, the inclusion proof and the entry. Either way the bundle
// is verified (VerifyBundle with the log's key) before it is returned.
func (c *Client) ProofBundle(ctx context.Context, index uint64) ([]byte, error) {
	var resp *provlogv1.GetProofBundleResponse
	err := c.retry(ctx, "get proof bundle", func(ctx context.Context) error {
		var err error
		resp, err = c.log.GetProofBundle(ctx, &provlogv1.GetProofBundleRequest{
			Leaf: &provlogv1.GetProofBundleRequest_Index{Index: index},
		})
		return err
	})
	var bundle []byte
	switch {
	case status.Code(err) == codes.Unimplemented:
		if bundle, err = c.buildBundle(ctx, index); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	default:
		bundle = resp.GetBundle()
	}
	vb, err := VerifyBundle(bundle, c.vkey, VerifyOptions{Origin: c.origin})
	if err != nil {
		return nil, fmt.Errorf("proof bundle for entry %d: %w", index, err)
	}
	if vb.Index != index {
		return nil, fmt.Errorf("%w: asked for the bundle of entry %d, got entry %d", ErrLogMisbehaved, index, vb.Index)
	}
	return bundle, nil
}

// buildBundle builds the bundle of entry index from a checkpoint covering
// it, the inclusion proof and the entry.
func (c *Client) buildBundle(ctx context.Context, index uint64) ([]byte, error) {
	cp, err := c.WaitForInclusion(ctx, index)
	if err != nil {
		return nil, err
	}
	hashes, err := c.InclusionProof(ctx, index, cp)
	if err != nil {
		return nil, err
	}
	entries, err := c.Entries(ctx, index, 1)
	if err != nil {
		return nil, err
	}
	return BuildBundle(entries[0], index, hashes, cp.Raw)
}

// SearchKey names what to search for: exactly one field is set.
type SearchKey struct {
	// Digest is an artifact digest, "<algorithm>:<lowercase hex>".
	Digest string
	// BuilderID is a SLSA builder id, exactly as in build events.
	BuilderID string
	// SourceCommit is a source commit id, lowercase hex.
	SourceCommit string
	// SignerKeyID is a keyring key's securesystemslib key id: every event
	// the key signed ("what has my key signed?").
	SignerKeyID string
	// TrustEvents, if true, lists every trust event (keyring, revoke,
	// quarantine, unquarantine), in log order (see TrustHistory).
	TrustEvents bool
}

// SearchResult is one published event found by Search. It is the log's
// claim: VerifyInclusion(ctx, r.Entry, r.Index) proves it.
type SearchResult struct {
	Index     uint64
	EventType string // "build", "sign", "promote", "sbom", "test-result", "vsa" or "link"
	Entry     []byte
}

// Search iterates over all the log's events matching key, in log order,
// fetching pages as needed. Iteration stops at the first error, which is
// yielded with a zero SearchResult; a page that does not advance (a
// repeated page token, or indices not increasing) is ErrLogMisbehaved.
func (c *Client) Search(ctx context.Context, key SearchKey) iter.Seq2[SearchResult, error] {
	return func(yield func(SearchResult, error) bool) {
		req, err := searchRequest(key)
		if err != nil {
			yield(SearchResult{}, err)
			return
		}
		var last uint64
		seen := false
		for {
			var resp *provlogv1.SearchResponse
			err := c.retry(ctx, "search", func(ctx context.Context) error {
				var err error
				resp, err = c.log.Search(ctx, req)
				return err
			})
			if err != nil {
				yield(SearchResult{}, err)
				return
			}
			next := resp.GetNextPageToken()
			if next != "" && (next == req.PageToken || len(resp.GetResults()) == 0) {
				yield(SearchResult{}, fmt.Errorf("%w: Search page token %q does not advance", ErrLogMisbehaved, next))
				return
			}
			for _, r := range resp.GetResults() {
				if seen && r.GetIndex() <= last {
					yield(SearchResult{}, fmt.Errorf("%w: Search result %d after %d, want log order", ErrLogMisbehaved, r.GetIndex(), last))
					return
				}
				last, seen = r.GetIndex(), true
				if !yield(SearchResult{Index: r.GetIndex(), EventType: r.GetEventType(), Entry: r.GetEntry()}, nil) {
					return
				}
			}
			if next == "" {
				return
			}
			req.PageToken = next
		}
	}
}

// searchRequest builds the first SearchRequest for key.
func searchRequest(key SearchKey) (*provlogv1.SearchRequest, error) {
	req := &provlogv1.SearchRequest{}
	n := 0
	if key.Digest != "" {
		req.Key, n = &provlogv1.SearchRequest_Digest{Digest: key.Digest}, n+1
	}
	if key.BuilderID != "" {
		req.Key, n = &provlogv1.SearchRequest_BuilderId{BuilderId: key.BuilderID}, n+1
	}
	if key.SourceCommit != "" {
		req.Key, n = &provlogv1.SearchRequest_SourceCommit{SourceCommit: key.SourceCommit}, n+1
	}
	if key.SignerKeyID != "" {
		req.Key, n = &provlogv1.SearchRequest_SignerKeyId{SignerKeyId: key.SignerKeyID}, n+1
	}
	if key.TrustEvents {
		req.Key, n = &provlogv1.SearchRequest_TrustEvents{TrustEvents: true}, n+1
	}
	if n != 1 {
		return nil, fmt.Errorf("search key: %d fields set, want exactly one of Digest, BuilderID, SourceCommit, SignerKeyID, TrustEvents", n)
	}
	return req, nil
}
