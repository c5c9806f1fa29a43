package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	plog "github.com/provlog/provlog/log"
	provlogv1 "github.com/provlog/provlog/proto/provlog/v1"
	"github.com/provlog/provlog/storage/postgres"
)

// Replicas on PostgreSQL (--storage postgres://…): the store is shared by
// every replica, log.Replica leads or follows over it, and this file
// adapts the store's lease to log.Leaser, forwards a follower's writes to
// the leader over gRPC (log.Forwarder), and answers /healthz with the
// replica's role.

// isPostgres reports whether --storage names a PostgreSQL database.
func isPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// leaser adapts postgres.Store's lease to log.Leaser.
type leaser struct{ s *postgres.Store }

func fromPG(l postgres.Lease) plog.Lease {
	return plog.Lease{Holder: l.Holder, Epoch: l.Epoch, Expired: l.Expired, Deadline: l.Deadline}
}

func (a leaser) AcquireLease(ctx context.Context, holder string, ttl time.Duration) (plog.Lease, error) {
	l, err := a.s.AcquireLease(ctx, holder, ttl)
	if errors.Is(err, postgres.ErrLeaseHeld) {
		err = fmt.Errorf("%w: %w", plog.ErrLeaseHeld, err)
	}
	return fromPG(l), err
}

func (a leaser) RenewLease(ctx context.Context, ttl time.Duration) (plog.Lease, error) {
	l, err := a.s.RenewLease(ctx, ttl)
	if errors.Is(err, postgres.ErrFenced) {
		err = fmt.Errorf("%w: %w", plog.ErrLeaseLost, err)
	}
	return fromPG(l), err
}

func (a leaser) ReleaseLease(ctx context.Context) error { return a.s.ReleaseLease(ctx) }

func (a leaser) ReadLease(ctx context.Context) (plog.Lease, error) {
	l, err := a.s.ReadLease(ctx)
	return fromPG(l), err
}

// forwardedBy is the gRPC metadata key a forwarded write carries: the
// advertised address of the follower that forwarded it.
const forwardedBy = "provlog-forwarded-by"

// forwarder forwards writes to the leader over provlog.v1 gRPC, one
// connection per leader address (the last one kept).
type forwarder struct {
	self  string // this replica's advertised address
	creds credentials.TransportCredentials

	mu   sync.Mutex // guards addr and conn
	addr string
	conn *grpc.ClientConn
}

// newForwarder returns the forwarder of a replica advertised at self:
// plaintext, or with tlsConfig (the servers' own) TLS verified by the
// system roots and the servers' own certificate, so that replicas sharing
// one certificate reach each other.
func newForwarder(self string, tlsConfig *tls.Config) (*forwarder, error) {
	f := &forwarder{self: self, creds: insecure.NewCredentials()}
	if tlsConfig != nil {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		for _, c := range tlsConfig.Certificates {
			for _, der := range c.Certificate {
				if cert, err := x509.ParseCertificate(der); err == nil {
					pool.AddCert(cert)
				}
			}
		}
		f.creds = credentials.NewTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	}
	return f, nil
}

func (f *forwarder) client(leader string) (provlogv1.LogClient, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conn != nil && f.addr == leader {
		return provlogv1.NewLogClient(f.conn), nil
	}
	if f.conn != nil {
		f.conn.Close()
		f.conn = nil
	}
	conn, err := grpc.NewClient(leader, grpc.WithTransportCredentials(f.creds))
	if err != nil {
		return nil, fmt.Errorf("%w: dialling the leader %s: %w", plog.ErrUnavailable, leader, err)
	}
	f.addr, f.conn = leader, conn
	return provlogv1.NewLogClient(conn), nil
}

// Close closes the connection to the leader.
func (f *forwarder) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conn != nil {
		f.conn.Close()
		f.conn = nil
	}
}

// Forwarded implements log.Forwarder.
func (f *forwarder) Forwarded(ctx context.Context) bool {
	md, ok := metadata.FromIncomingContext(ctx)
	return ok && len(md.Get(forwardedBy)) > 0
}

// AddBatch implements log.Forwarder: it sends one AppendBatch to the
// leader, with the caller's bearer token (from the gRPC call, or from a
// POST /add's Authorization header). An mTLS identity cannot be forwarded.
func (f *forwarder) AddBatch(ctx context.Context, leader string, entries [][]byte) ([]plog.AddResult, error) {
	lc, err := f.client(leader)
	if err != nil {
		return nil, err
	}
	out := metadata.Pairs(forwardedBy, f.self)
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		for _, v := range md.Get("authorization") {
			out.Append("authorization", v)
		}
	}
	if a := plog.ForwardedAuthorization(ctx); a != "" && len(out.Get("authorization")) == 0 {
		out.Append("authorization", a) // a POST /add's bearer token
	}
	resp, err := lc.AppendBatch(metadata.NewOutgoingContext(ctx, out), &provlogv1.AppendBatchRequest{Entries: entries})
	if err != nil {
		return nil, forwardError(leader, err)
	}
	res := make([]plog.AddResult, len(resp.Results))
	for i, r := range resp.Results {
		res[i] = plog.AddResult{Index: r.Index, Duplicate: r.Duplicate}
	}
	return res, nil
}

// forwardError maps the leader's answer to the sentinel the follower's
// servers map back to the same status; anything else (a leader that
// cannot be reached, a call cut off) is ErrUnavailable: the outcome is
// unknown, and a retry is safe since identical entries deduplicate.
func forwardError(leader string, err error) error {
	st := status.Convert(err)
	var sentinel error
	switch st.Code() {
	case codes.InvalidArgument:
		sentinel = plog.ErrInvalidEntry
	case codes.ResourceExhausted:
		sentinel = plog.ErrPushback
	case codes.PermissionDenied, codes.Unauthenticated:
		sentinel = plog.ErrPermissionDenied
	case codes.FailedPrecondition:
		sentinel = plog.ErrFailedPrecondition
	case codes.Canceled:
		return fmt.Errorf("forwarded to the leader %s: %w", leader, context.Canceled)
	default:
		sentinel = plog.ErrUnavailable
	}
	return fmt.Errorf("%w: the leader %s: %s", sentinel, leader, st.Message())
}

// replicaHealth answers GET /healthz for a replica: 200 (or 503 with the
// reason, as for one log) and then its role, one "key: value" a line:
//
//	ok
//	role: follower
//	epoch: 3
//	leader: 127.0.0.1:7400
//	size: 1234
//	lag_entries: 0
//
// Every other request goes to next.
func replicaHealth(r *plog.Replica, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != "/healthz" || req.Method != http.MethodGet {
			next.ServeHTTP(w, req)
			return
		}
		st := r.Status()
		role := "follower"
		if st.Leading {
			role = "leader"
		}
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		first := "ok"
		if err := r.Healthy(); err != nil {
			first = strings.ReplaceAll(err.Error(), "\n", " ")
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		io.WriteString(w, fmt.Sprintf("%s\nrole: %s\nepoch: %d\nleader: %s\nsize: %d\nlag_entries: %d\n",
			first, role, st.Epoch, st.Leader, st.Size, st.Lag))
	})
}
