package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/provlog/provlog/internal/strictjson"
	"github.com/provlog/provlog/log"
)

// Auth authenticates writers. Reads are public; every write (Append,
// AppendBatch, AppendStream, POST /add) must present a bearer token or a
// TLS client certificate of a configured identity, and is limited to the
// identity's rate. The identity and its roles travel to the log in the
// request context (log.WithSubmitter), which refuses entries the roles do
// not allow.
//
// Its file (--auth) is JSON:
//
//	{"identities": [
//	  {"name": "ci", "tokenSHA256": "<hex SHA-256 of the token>", "roles": ["builder", "signer"], "rate": 200, "burst": 400},
//	  {"name": "deployer", "certSubject": "CN=deployer,O=Example", "roles": ["promoter"]},
//	  {"name": "loadtest", "certSHA256": "<hex SHA-256 of the DER certificate>", "roles": ["writer"]}
//	]}
//
// Tokens are stored only as hashes and never logged. A certificate is
// matched by subject or by fingerprint, after TLS has verified it against
// the configured client CAs; only the leaf of the verified chain is
// matched, never another certificate the client sent along with it.
//
// rate is entries per second (0: unlimited); burst, the most entries one
// write may take at once, defaults to rate (at least 1). A write over the
// rate is pushed back with retry information (ResourceExhausted with
// RetryInfo; 429 with Retry-After): waiting helps. A batch of more entries
// than the burst could never be admitted, however long the client waited,
// so it is refused once, as invalid, without retry information
// (InvalidArgument; 413 with no Retry-After), with a reason naming the
// burst; the client must split it. The burst is not raised to the largest
// batch, which would let one write take what the rate allows in a much
// longer time.
type Auth struct {
	byToken   map[[32]byte]*identity
	bySubject map[string]*identity
	byCert    map[[32]byte]*identity
}

type identity struct {
	sub     log.Submitter
	limiter *rate.Limiter // nil: unlimited
}

type authFile struct {
	Identities []struct {
		Name        string   `json:"name"`
		TokenSHA256 string   `json:"tokenSHA256,omitempty"`
		CertSubject string   `json:"certSubject,omitempty"`
		CertSHA256  string   `json:"certSHA256,omitempty"`
		Roles       []string `json:"roles"`
		Rate        float64  `json:"rate,omitempty"`
		Burst       int      `json:"burst,omitempty"`
	} `json:"identities"`
}

// Errors of authentication.
var (
	errUnauthenticated = errors.New("writes need a bearer token or client certificate of a configured identity")
	errRateLimited     = errors.New("identity over its rate limit")
	// errOverBurst ends the reason of a batch larger than the identity's
	// burst, which no wait would admit.
	errOverBurst = errors.New("split it into smaller batches")
)

var authRoles = []string{log.RoleWriter, log.RoleBuilder, log.RoleSigner, log.RolePromoter, log.RoleApprover}

// LoadAuth reads an auth file.
func LoadAuth(path string) (*Auth, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading auth file: %w", err)
	}
	a, err := ParseAuth(b)
	if err != nil {
		return nil, fmt.Errorf("auth file %s: %w", path, err)
	}
	return a, nil
}

// ParseAuth parses an auth file's contents.
func ParseAuth(b []byte) (*Auth, error) {
	var f authFile
	if err := strictjson.Decode(b, &f); err != nil {
		return nil, err
	}
	a := &Auth{byToken: map[[32]byte]*identity{}, bySubject: map[string]*identity{}, byCert: map[[32]byte]*identity{}}
	for i, id := range f.Identities {
		where := fmt.Sprintf("identities[%d] (%s)", i, id.Name)
		if id.Name == "" || len(id.Roles) == 0 {
			return nil, fmt.Errorf("%s: want a name and roles", where)
		}
		for _, r := range id.Roles {
			if !slices.Contains(authRoles, r) {
				return nil, fmt.Errorf("%s: unknown role %q, want one of %v", where, r, authRoles)
			}
		}
		ident := &identity{sub: log.Submitter{Name: id.Name, Roles: id.Roles}}
		if id.Rate < 0 || id.Burst < 0 {
			return nil, fmt.Errorf("%s: negative rate or burst", where)
		}
		if id.Rate > 0 {
			burst := id.Burst
			if burst == 0 {
				burst = max(1, int(id.Rate))
			}
			ident.limiter = rate.NewLimiter(rate.Limit(id.Rate), burst)
		}
		n := 0
		if id.TokenSHA256 != "" {
			h, err := parseSHA256(id.TokenSHA256)
			if err != nil {
				return nil, fmt.Errorf("%s: tokenSHA256: %w", where, err)
			}
			a.byToken[h], n = ident, n+1
		}
		if id.CertSHA256 != "" {
			h, err := parseSHA256(id.CertSHA256)
			if err != nil {
				return nil, fmt.Errorf("%s: certSHA256: %w", where, err)
			}
			a.byCert[h], n = ident, n+1
		}
		if id.CertSubject != "" {
			a.bySubject[id.CertSubject], n = ident, n+1
		}
		if n == 0 {
			return nil, fmt.Errorf("%s: want tokenSHA256, certSubject or certSHA256", where)
		}
	}
	return a, nil
}

func parseSHA256(s string) ([32]byte, error) {
	var h [32]byte
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 {
		return h, errors.New("want 64 hex digits")
	}
	return [32]byte(b), nil
}

// identify returns the identity presenting token (may be empty) or the
// verified client certificate leaf (may be nil).
func (a *Auth) identify(token string, leaf *x509.Certificate) (*identity, error) {
	if token != "" {
		h := sha256.Sum256([]byte(token))
		for k, id := range a.byToken { // compare in constant time; few identities
			if subtle.ConstantTimeCompare(k[:], h[:]) == 1 {
				return id, nil
			}
		}
		return nil, fmt.Errorf("%w: unknown token", errUnauthenticated)
	}
	if leaf == nil {
		return nil, errUnauthenticated
	}
	if id, ok := a.byCert[sha256.Sum256(leaf.Raw)]; ok {
		return id, nil
	}
	if id, ok := a.bySubject[leaf.Subject.String()]; ok {
		return id, nil
	}
	return nil, fmt.Errorf("%w: certificate %q is not a configured identity", errUnauthenticated, leaf.Subject.String())
}

// admit authenticates a write of n entries and returns ctx carrying the
// submitter, or errUnauthenticated, errOverBurst or errRateLimited.
func (a *Auth) admit(ctx context.Context, token string, leaf *x509.Certificate, n int) (context.Context, error) {
	id, err := a.identify(token, leaf)
	if err != nil {
		return nil, err
	}
	if id.limiter != nil {
		// AllowN never allows more than the burst: refuse for good what
		// waiting cannot admit.
		if burst := id.limiter.Burst(); n > burst {
			return nil, fmt.Errorf("batch of %d entries exceeds identity %s's rate-limit burst of %d: %w", n, id.sub.Name, burst, errOverBurst)
		}
		if !id.limiter.AllowN(time.Now(), n) {
			return nil, fmt.Errorf("%w (%s)", errRateLimited, id.sub.Name)
		}
	}
	return log.WithSubmitter(ctx, id.sub), nil
}

// grpcCredentials returns the bearer token and the verified client
// certificate of a gRPC request.
func grpcCredentials(ctx context.Context) (string, *x509.Certificate) {
	var token string
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get("authorization"); len(v) > 0 {
			token = bearer(v[0])
		}
	}
	var leaf *x509.Certificate
	if p, ok := peer.FromContext(ctx); ok {
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok {
			leaf = verifiedLeaf(ti.State)
		}
	}
	return token, leaf
}

// httpCredentials does the same for an HTTP request.
func httpCredentials(r *http.Request) (string, *x509.Certificate) {
	var leaf *x509.Certificate
	if r.TLS != nil {
		leaf = verifiedLeaf(*r.TLS)
	}
	return bearer(r.Header.Get("Authorization")), leaf
}

// verifiedLeaf returns the leaf of the first verified chain, or nil if TLS
// verified no client certificate. Only the leaf identifies the client: the
// rest of the chain the client presented (PeerCertificates[1:]) is
// whatever it chose to send, such as another identity's public
// certificate, and proves nothing about who holds the key.
func verifiedLeaf(cs tls.ConnectionState) *x509.Certificate {
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return nil
	}
	return cs.VerifiedChains[0][0]
}

func bearer(h string) string {
	if t, ok := strings.CutPrefix(h, "Bearer "); ok {
		return strings.TrimSpace(t)
	}
	return ""
}

// Option configures the servers.
type Option func(*options)

type options struct {
	auth            *Auth
	readConcurrency int
}

// WithAuth makes writes require an identity of a (see Auth). Without it,
// anyone may write, subject to the log's admission.
func WithAuth(a *Auth) Option { return func(o *options) { o.auth = a } }

// WithReadConcurrency bounds how many HTTP tile and entry-bundle reads
// work at once (see readSlots). If n <= 0, or without this option, half
// the CPUs (GOMAXPROCS), at least one: on two cores, one read works while
// the sequencer and the committer have the other core.
func WithReadConcurrency(n int) Option { return func(o *options) { o.readConcurrency = n } }

func applyOptions(opts []Option) options {
	var o options
	for _, f := range opts {
		f(&o)
	}
	if o.readConcurrency <= 0 {
		o.readConcurrency = max(1, runtime.GOMAXPROCS(0)/2)
	}
	return o
}

// authorizeGRPC authenticates a gRPC write of n entries; with no Auth it
// returns ctx unchanged.
func (o options) authorizeGRPC(ctx context.Context, n int) (context.Context, error) {
	if o.auth == nil {
		return ctx, nil
	}
	token, leaf := grpcCredentials(ctx)
	return o.auth.admit(ctx, token, leaf, n)
}

// authorizeHTTP does the same for an HTTP write.
func (o options) authorizeHTTP(r *http.Request, n int) (context.Context, error) {
	if o.auth == nil {
		return r.Context(), nil
	}
	token, leaf := httpCredentials(r)
	return o.auth.admit(r.Context(), token, leaf, n)
}
