package server

import (
	"context"
	"crypto/x509"
	"log/slog"
	"net/http"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Refused writes (Append, AppendBatch, AppendStream, POST /add) are logged
// at debug level, one line each, "submission refused", with the method,
// the status code, the reason the client was given, the submitter's
// identity and the peer address. The identity is an Auth identity's name,
// "unauthenticated" when a configured Auth knows none of the credentials,
// or "anonymous" without Auth: never a token, which Auth holds only as a
// hash. A call the client cancelled is not a refusal and is not logged.

// submitter names who presents token and leaf, for logs.
func (o options) submitter(token string, leaf *x509.Certificate) string {
	if o.auth == nil {
		return "anonymous"
	}
	id, err := o.auth.identify(token, leaf)
	if err != nil {
		return "unauthenticated"
	}
	return id.sub.Name
}

// logRefusedGRPC logs a write refused with err (a status error), if
// debug logging is on.
func (o options) logRefusedGRPC(ctx context.Context, method string, err error) {
	code := status.Code(err)
	if err == nil || code == codes.Canceled || !slog.Default().Enabled(ctx, slog.LevelDebug) {
		return
	}
	var addr string
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		addr = p.Addr.String()
	}
	slog.DebugContext(ctx, "submission refused", "method", method, "code", code.String(),
		"reason", status.Convert(err).Message(), "identity", o.submitter(grpcCredentials(ctx)), "peer", addr)
}

// logRefusedHTTP wraps the handler of a write, logging the responses
// that refuse it.
func (h *httpServer) logRefusedHTTP(method string, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !slog.Default().Enabled(r.Context(), slog.LevelDebug) {
			next(w, r)
			return
		}
		rw := &reasonWriter{ResponseWriter: w}
		next(rw, r)
		if rw.code < 400 || r.Context().Err() != nil {
			return
		}
		slog.DebugContext(r.Context(), "submission refused", "method", method, "code", rw.code,
			"reason", string(rw.reason), "identity", h.opts.submitter(httpCredentials(r)), "peer", r.RemoteAddr)
	}
}

// reasonWriter keeps the status code of a response and, for an error, the
// start of its body: the one-line reason httpError writes.
type reasonWriter struct {
	http.ResponseWriter
	code   int
	reason []byte
}

// maxReason caps the reason kept from a response body.
const maxReason = 512

func (w *reasonWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *reasonWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	if w.code >= 400 && len(w.reason) < maxReason {
		r := b[:min(len(b), maxReason-len(w.reason))]
		for len(r) > 0 && (r[len(r)-1] == '\n' || r[len(r)-1] == '\r') {
			r = r[:len(r)-1]
		}
		w.reason = append(w.reason, r...)
	}
	return w.ResponseWriter.Write(b)
}

func (w *reasonWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
