package client

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// ErrNoConnection: a call reached no log, because no connection to it
// could be made (connection refused, no route to the host, a name that
// does not resolve, a failed TLS handshake). Errors wrapping it are
// *ConnectError. Without Config.WaitForReady such a call fails at once:
// nothing listening is an answer, not pushback.
var ErrNoConnection = errors.New("no connection to the log")

// ConnectError reports a call that reached no log (see ErrNoConnection).
type ConnectError struct {
	// Target is the gRPC target of the connection, as dialled, or "" if
	// the connection New was given does not say.
	Target string
	// Reason is the cause in a few words: "connection refused", "no route
	// to host", "network is unreachable", "no such host", "the name does
	// not resolve", "connection timed out", "TLS handshake failed: …", or
	// else what gRPC reported.
	Reason string
	// Err is the gRPC status error of the call (code Unavailable).
	Err error
}

func (e *ConnectError) Error() string {
	if e.Target == "" {
		return fmt.Sprintf("no connection to the log (%s)", e.Reason)
	}
	return fmt.Sprintf("no connection to the log at %s (%s)", e.Target, e.Reason)
}

// Unwrap returns ErrNoConnection and the gRPC status error, so that
// status.Code gives Unavailable.
func (e *ConnectError) Unwrap() []error { return []error{ErrNoConnection, e.Err} }

// connReasons are the causes connectReason recognizes in a gRPC
// connection error, as the net package and the resolver word them.
var connReasons = []struct{ in, reason string }{
	{"connection refused", "connection refused"},
	{"no route to host", "no route to host"},
	{"network is unreachable", "network is unreachable"},
	{"no such host", "no such host"},
	{"produced zero addresses", "the name does not resolve"},
	{"i/o timeout", "connection timed out"},
	{"connection reset by peer", "connection reset by peer"},
}

// connectReason returns the cause of a connection failure from the message
// of the gRPC status gRPC fails a call with. The status carries the
// dialler's error only as text.
func connectReason(msg string) string {
	if i := strings.Index(msg, "authentication handshake failed: "); i >= 0 {
		return "TLS handshake failed: " + strings.TrimRight(msg[i+len("authentication handshake failed: "):], `"`)
	}
	for _, r := range connReasons {
		if strings.Contains(msg, r.in) {
			return r.reason
		}
	}
	return msg
}

// failFastConn is the connection a Client calls through. It tells a call
// that reached no server from one a server answered: gRPC fails a call
// with Unavailable both when the log says so (a live log draining) and,
// for a call that does not wait for ready, when no connection can be
// made; only in the second case does the call have no peer. Such a
// failure becomes a *ConnectError, which retry does not retry. With
// waitForReady, calls wait for a connection instead (gRPC's WaitForReady).
type failFastConn struct {
	cc           grpc.ClientConnInterface
	target       string
	waitForReady bool
}

func (c failFastConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	var p peer.Peer
	err := c.cc.Invoke(ctx, method, args, reply, c.callOptions(&p, opts)...)
	return c.classify(err, &p)
}

func (c failFastConn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	var p peer.Peer
	s, err := c.cc.NewStream(ctx, desc, method, c.callOptions(&p, opts)...)
	return s, c.classify(err, &p)
}

// callOptions returns the options of a call: the peer to record, wait for
// ready if configured, then the caller's own.
func (c failFastConn) callOptions(p *peer.Peer, opts []grpc.CallOption) []grpc.CallOption {
	all := []grpc.CallOption{grpc.Peer(p)}
	if c.waitForReady {
		all = append(all, grpc.WaitForReady(true))
	}
	return append(all, opts...)
}

// classify returns err, as a *ConnectError if the call failed with
// Unavailable without reaching a server.
func (c failFastConn) classify(err error, p *peer.Peer) error {
	if err == nil || c.waitForReady || p.Addr != nil || status.Code(err) != codes.Unavailable {
		return err
	}
	return &ConnectError{Target: c.target, Reason: connectReason(status.Convert(err).Message()), Err: err}
}
