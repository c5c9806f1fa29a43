package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/provlog/provlog/log"
	"github.com/provlog/provlog/log/server/ui"
)

// Cache-Control values. Full tiles and bundles never change; a partial one
// at a given width does not either, but is soon superseded; the checkpoint
// changes with every round.
const (
	cacheImmutable  = "public, max-age=31536000, immutable"
	cachePartial    = "public, max-age=60"
	cacheCheckpoint = "no-cache"
)

// HTTPHandler returns the HTTP front end over l:
//
//	GET  /checkpoint                  the latest signed checkpoint (tlog-tiles)
//	GET  /tile/<L>/<N>[.p/<W>]        a hash tile (tlog-tiles)
//	GET  /tile/entries/<N>[.p/<W>]    an entry bundle (tlog-tiles), gzipped if accepted and it compresses
//	POST /add                         add the body as one entry; 200 with its decimal index
//	GET  /healthz                     200 "ok", or 503 with the reason
//	GET  /                            the auditor's web page (package ui); its assets under /ui/
//	GET  /api/v1/…                    the JSON read API: the read RPCs in JSON (see api.go)
//	GET  /metrics                     served by metrics; 404 if metrics is nil
//
// The JSON API's reads that touch the store share the read slots of the
// tile and bundle reads; its errors are google.rpc.Status objects in JSON,
// as grpc-gateway writes them (writeAPIError). Other errors are one-line
// text/plain reasons: 400 bad input, 403 an event's signatures or roles
// refused, 404 not found, 405 wrong method, 409 an event's lineage
// refused, 413 entry too large (or more entries than the writer's
// rate-limit burst, see Auth), 429 and 503 (with Retry-After) under
// pushback or when the log is unavailable, 500 otherwise.
func HTTPHandler(l Log, metrics http.Handler, opts ...Option) http.Handler {
	o := applyOptions(opts)
	h := &httpServer{log: l, opts: o, reads: newReadSlots(o.readConcurrency)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /checkpoint", h.checkpoint)
	mux.HandleFunc("GET /tile/{path...}", h.tile)
	mux.HandleFunc("GET /tile/entries/{path...}", h.entryBundle)
	mux.HandleFunc("POST /add", h.logRefusedHTTP("POST /add", h.add))
	mux.HandleFunc("GET /healthz", h.healthz)
	page := ui.Handler()
	mux.Handle("GET /{$}", page)
	mux.Handle("GET /ui/", page)
	mux.Handle("GET /api/v1/", apiHandler(l, o, h.reads))
	if metrics != nil {
		mux.Handle("GET /metrics", metrics)
	}
	return mux
}

type httpServer struct {
	log   Log
	opts  options
	reads readSlots // bound the tile and bundle reads working at once
}

// readSlots bound how many tile and entry-bundle reads work at once, so
// that readers, however many, cannot take the CPU the sequencer and the
// committer need: past the bound, reads wait (their latency grows) rather
// than appends slowing. A read holds its slot while it reads the store or
// makes a bundle's served form, not while the response goes to the
// client, so a slow reader holds none.
type readSlots chan struct{}

func newReadSlots(n int) readSlots { return make(readSlots, n) }

// acquire waits for a slot; it returns false if ctx ends first.
func (s readSlots) acquire(ctx context.Context) bool {
	select {
	case s <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

func (s readSlots) release() { <-s }

func (h *httpServer) checkpoint(w http.ResponseWriter, r *http.Request) {
	cp := h.log.Checkpoint()
	if len(cp.Note) == 0 {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "no checkpoint published yet", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", cacheCheckpoint)
	w.Write(cp.Note)
}

func (h *httpServer) tile(w http.ResponseWriter, r *http.Request) {
	level, index, width, err := parseTilePath(r.PathValue("path"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if !h.reads.acquire(r.Context()) {
		return
	}
	data, err := h.log.Tile(r.Context(), level, index, width)
	h.reads.release()
	if err != nil {
		httpError(w, err)
		return
	}
	setTileHeaders(w, width)
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.Write(data)
}

func (h *httpServer) entryBundle(w http.ResponseWriter, r *http.Request) {
	index, width, err := parseEntriesPath(r.PathValue("path"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if !h.reads.acquire(r.Context()) {
		return // the client went away while waiting
	}
	sb, err := h.log.ServeEntryBundle(r.Context(), index, width, acceptsGzip(r))
	h.reads.release()
	if err != nil {
		httpError(w, err)
		return
	}
	defer sb.Release()
	allowLargeWrite(w, r)
	setTileHeaders(w, width)
	w.Header().Add("Vary", "Accept-Encoding")
	if sb.Gzip {
		w.Header().Set("Content-Encoding", "gzip")
	}
	w.Header().Set("Content-Length", strconv.FormatInt(sb.Len(), 10))
	if r.Method == http.MethodHead {
		return // net/http would read a file's section only to drop it
	}
	var n int64
	if r.TLS == nil {
		// A bundle in a file goes out with sendfile(2): io.Copy hands it
		// to the response writer's ReadFrom (wrappers of the writer
		// implement io.ReaderFrom to keep it so, as daemon's statusWriter
		// does).
		n, err = io.Copy(w, sb.Body())
	} else {
		// Over TLS (HTTP/1.1 or 2) nothing can send a file without
		// reading it: a pooled buffer, rather than io.Copy's 32 KiB
		// allocated per response.
		bp := copyBufs.Get().(*[]byte)
		n, err = io.CopyBuffer(struct{ io.Writer }{w}, sb.Body(), *bp)
		copyBufs.Put(bp)
	}
	if err == nil && n < sb.Len() {
		// The body ended early without a write error: the bundle's file
		// was cut short since its bytes were checked. net/http closes
		// the connection, so the client sees a short body, not a bundle.
		slog.ErrorContext(r.Context(), "entry bundle sent short: its bundle file is shorter than the bundle; the store may be damaged",
			"index", index, "sent", n, "length", sb.Len())
	}
}

// copyBufs holds the buffers through which bundles in files are copied
// to TLS connections.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// setTileHeaders sets the headers of a tile or bundle of the given width
// (0 for full).
func setTileHeaders(w http.ResponseWriter, width uint8) {
	w.Header().Set("Content-Type", "application/octet-stream")
	if width == 0 {
		w.Header().Set("Cache-Control", cacheImmutable)
	} else {
		w.Header().Set("Cache-Control", cachePartial)
	}
}

// acceptsGzip reports whether the request's Accept-Encoding lists gzip
// with a non-zero quality.
func acceptsGzip(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept-Encoding") {
		for item := range strings.SplitSeq(v, ",") {
			coding, params, _ := strings.Cut(item, ";")
			if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
				continue
			}
			return !zeroQuality(params)
		}
	}
	return false
}

// zeroQuality reports whether Accept-Encoding parameters give q=0.
func zeroQuality(params string) bool {
	for p := range strings.SplitSeq(params, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(k, "q") {
			q, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return err == nil && q == 0
		}
	}
	return false
}

func (h *httpServer) add(w http.ResponseWriter, r *http.Request) {
	ctx, err := h.opts.authorizeHTTP(r, 1)
	if err != nil {
		httpError(w, err)
		return
	}
	if a := r.Header.Get("Authorization"); a != "" && h.opts.auth != nil {
		// A follower replica forwards the write to the leader, which
		// authenticates the caller again.
		ctx = log.WithForwardedAuthorization(ctx, a)
	}
	entry, status, err := readEntry(w, r, h.log.MaxEntrySize())
	if err != nil {
		http.Error(w, err.Error(), status)
		return
	}
	res, err := h.log.Add(ctx, entry)
	if err != nil {
		httpError(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, strconv.FormatUint(res.Index, 10))
}

// readEntry reads the request body as one entry of at most maxSize bytes,
// returning the HTTP status and reason if it is not one.
func readEntry(w http.ResponseWriter, r *http.Request, maxSize int) ([]byte, int, error) {
	// Made only for a refusal: this is every POST /add's path.
	tooLarge := func() error {
		return errors.New("entry " + log.TooLarge(int(min(r.ContentLength, math.MaxInt32)), maxSize))
	}
	if r.ContentLength > int64(maxSize) {
		return nil, http.StatusRequestEntityTooLarge, tooLarge()
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(maxSize)))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return nil, http.StatusRequestEntityTooLarge, tooLarge()
	case err != nil:
		return nil, http.StatusBadRequest, errors.New("reading request body failed")
	case len(body) == 0:
		return nil, http.StatusBadRequest, errors.New("empty entry")
	}
	return body, http.StatusOK, nil
}

func (h *httpServer) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if err := h.log.Healthy(); err != nil {
		http.Error(w, oneLine(err.Error()), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, "ok\n")
}

// httpError writes the HTTP response for an error from the log. Errors
// wrapping no known sentinel are logged and reported as 500 without their
// text.
func httpError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, log.ErrInvalidEntry):
		code = http.StatusBadRequest
	case errors.Is(err, errOverBurst):
		code = http.StatusRequestEntityTooLarge
	case errors.Is(err, log.ErrPushback), errors.Is(err, errRateLimited):
		code = http.StatusTooManyRequests
	case errors.Is(err, errUnauthenticated):
		code = http.StatusUnauthorized
		w.Header().Set("WWW-Authenticate", "Bearer")
	case errors.Is(err, log.ErrUnavailable),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		code = http.StatusServiceUnavailable
	case errors.Is(err, log.ErrOutOfRange), errors.Is(err, log.ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, log.ErrPermissionDenied):
		code = http.StatusForbidden
	case errors.Is(err, log.ErrFailedPrecondition):
		code = http.StatusConflict
	default:
		slog.Error("internal error serving HTTP request", "err", err)
		http.Error(w, "internal error", code)
		return
	}
	if code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	http.Error(w, oneLine(err.Error()), code)
}

// oneLine replaces line breaks so that a reason fits on one line.
func oneLine(s string) string {
	return strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
}
