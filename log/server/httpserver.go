package server

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// HTTPTimeouts bounds how long one client can hold the HTTP server, as
// NewHTTPServer applies them: a client that sends or reads one byte a
// second loses its connection when the bound passes. Zero fields take the
// defaults given.
type HTTPTimeouts struct {
	// ReadHeader bounds reading a request's headers. If zero, 10 seconds.
	ReadHeader time.Duration
	// Read bounds reading a whole request, headers and body (POST /add
	// carries one entry, at most 64 KiB). If zero, 30 seconds.
	Read time.Duration
	// Write bounds a response, from the end of its request's headers to
	// its last byte, the handler's work included (POST /add answers once
	// its entry is durable and published). If zero, 1 minute.
	Write time.Duration
	// LargeWrite replaces Write for the responses that may be large, entry
	// bundles (up to 16 MiB), counted from when the handler starts writing
	// one. If zero, 5 minutes (56 KiB/s for the largest bundle).
	LargeWrite time.Duration
	// Idle bounds the wait for the next request on a kept-alive
	// connection. If zero, 2 minutes.
	Idle time.Duration
	// MaxHeaderBytes caps a request's headers. If zero, 64 KiB.
	MaxHeaderBytes int
}

func (t HTTPTimeouts) withDefaults() HTTPTimeouts {
	for _, f := range []struct {
		d   *time.Duration
		def time.Duration
	}{
		{&t.ReadHeader, 10 * time.Second},
		{&t.Read, 30 * time.Second},
		{&t.Write, time.Minute},
		{&t.LargeWrite, 5 * time.Minute},
		{&t.Idle, 2 * time.Minute},
	} {
		if *f.d <= 0 {
			*f.d = f.def
		}
	}
	if t.MaxHeaderBytes <= 0 {
		t.MaxHeaderBytes = 64 << 10
	}
	return t
}

// NewHTTPServer returns an HTTP server of h bounded by t; the caller sets
// TLSConfig if it serves TLS. Handlers of HTTPHandler that write large
// responses extend their write deadline to t.LargeWrite; other handlers
// get t.Write.
func NewHTTPServer(h http.Handler, t HTTPTimeouts) *http.Server {
	t = t.withDefaults()
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: t.ReadHeader,
		ReadTimeout:       t.Read,
		WriteTimeout:      t.Write,
		IdleTimeout:       t.Idle,
		MaxHeaderBytes:    t.MaxHeaderBytes,
		BaseContext: func(net.Listener) context.Context {
			return context.WithValue(context.Background(), largeWriteKey{}, t.LargeWrite)
		},
	}
}

// largeWriteKey is the context key under which NewHTTPServer gives its
// handlers HTTPTimeouts.LargeWrite.
type largeWriteKey struct{}

// allowLargeWrite gives the rest of the response HTTPTimeouts.LargeWrite
// from now, if the server came from NewHTTPServer (else it keeps the
// server's own write deadline).
func allowLargeWrite(w http.ResponseWriter, r *http.Request) {
	d, ok := r.Context().Value(largeWriteKey{}).(time.Duration)
	if !ok {
		return
	}
	if err := http.NewResponseController(w).SetWriteDeadline(time.Now().Add(d)); err != nil {
		slog.DebugContext(r.Context(), "cannot extend the write deadline", "err", err)
	}
}
