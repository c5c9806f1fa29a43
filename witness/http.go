package witness

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Handler returns the witness's HTTP API, at the root:
//
//	POST /add-checkpoint             C2SP tlog-witness add-checkpoint
//	GET  /<origin hash>/checkpoint   latest cosigned checkpoint (C2SP tlog-witness monitor retrieval)
//	GET  /<origin hash>/evidence     fork evidence for one log, JSON array of Evidence, paginated
//	GET  /evidence                   fork evidence for all logs, JSON array of Evidence, paginated
//	GET  /metrics                    Prometheus metrics
//	GET  /healthz                    "ok"
//
// <origin hash> is the lowercase hex SHA-256 of the log's origin
// (OriginHash).
//
// The evidence endpoints return one page: at most ?limit= records (1 to
// MaxEvidencePage; if absent, DefaultEvidencePage), starting after the
// record named by the opaque cursor ?after= (if absent, from the first).
// When more records follow, the response carries an RFC 8288 header
//
//	Link: </evidence?limit=100&after=<cursor>>; rel="next"
//
// with the URL of the next page; without it, the page is the last. The
// order is fixed (by log, then by record ID) and records are never
// deleted, so paging sees each record once. A bad limit or cursor is 400.
func (w *Witness) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /add-checkpoint", w.serveAddCheckpoint)
	mux.HandleFunc("GET /{origin}/checkpoint", w.serveCheckpoint)
	mux.HandleFunc("GET /{origin}/evidence", w.serveEvidence)
	mux.HandleFunc("GET /evidence", w.serveEvidence)
	mux.Handle("GET /metrics", promhttp.HandlerFor(w.registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(rw, "ok\n")
	})
	return mux
}

// statusFor maps AddCheckpoint's errors to C2SP tlog-witness status codes.
func statusFor(err error) int {
	var conflict *ConflictError
	switch {
	case errors.As(err, &conflict):
		return http.StatusConflict
	case errors.Is(err, ErrMalformed), errors.Is(err, ErrOldSizeTooLarge):
		return http.StatusBadRequest
	case errors.Is(err, ErrUnknownLog):
		return http.StatusNotFound
	case errors.Is(err, ErrUnverified):
		return http.StatusForbidden
	case errors.Is(err, ErrInvalidProof), errors.Is(err, ErrInconsistent):
		return http.StatusUnprocessableEntity
	default:
		return http.StatusInternalServerError
	}
}

func (w *Witness) serveAddCheckpoint(rw http.ResponseWriter, r *http.Request) {
	code, body, contentType := w.addCheckpoint(r)
	w.metrics.requests.WithLabelValues(strconv.Itoa(code)).Inc()
	rw.Header().Set("Content-Type", contentType)
	rw.WriteHeader(code)
	rw.Write(body)
}

func (w *Witness) addCheckpoint(r *http.Request) (code int, body []byte, contentType string) {
	const text = "text/plain; charset=utf-8"
	raw, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, int64(MaxRequestSize)))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return http.StatusRequestEntityTooLarge, []byte("request body too large\n"), text
		}
		return http.StatusBadRequest, []byte("reading request body failed\n"), text
	}
	req, err := ParseAddCheckpointRequest(raw)
	if err == nil {
		var cosig []byte
		if cosig, err = w.AddCheckpoint(r.Context(), req); err == nil {
			return http.StatusOK, cosig, text
		}
	}
	code = statusFor(err)
	var conflict *ConflictError
	switch {
	case errors.As(err, &conflict):
		return code, []byte(strconv.FormatUint(conflict.Size, 10) + "\n"), "text/x.tlog.size"
	case code == http.StatusInternalServerError:
		w.logger.ErrorContext(r.Context(), "add-checkpoint failed", "err", err)
		return code, []byte("internal error\n"), text
	default:
		w.logger.DebugContext(r.Context(), "add-checkpoint refused", "code", code, "err", err)
		return code, []byte(err.Error() + "\n"), text
	}
}

// originFor returns the configured origin whose hash is the {origin} path
// value; evidence for all logs if there is no such path value.
func (w *Witness) originFor(r *http.Request) (origin string, ok bool) {
	h := r.PathValue("origin")
	if h == "" {
		return "", r.URL.Path == "/evidence"
	}
	for o := range w.logs {
		if OriginHash(o) == h {
			return o, true
		}
	}
	return "", false
}

func (w *Witness) serveCheckpoint(rw http.ResponseWriter, r *http.Request) {
	origin, ok := w.originFor(r)
	if !ok || origin == "" {
		http.Error(rw, "unknown log", http.StatusNotFound)
		return
	}
	cp, ok, err := w.Checkpoint(r.Context(), origin)
	if err != nil {
		w.logger.ErrorContext(r.Context(), "reading checkpoint", "origin", origin, "err", err)
		http.Error(rw, "internal error", http.StatusInternalServerError)
		return
	}
	if !ok {
		http.Error(rw, "no checkpoint cosigned for this log", http.StatusNotFound)
		return
	}
	rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
	rw.Header().Set("Cache-Control", "no-cache")
	rw.Write(cp)
}

// Page sizes of the evidence endpoints (Handler).
const (
	DefaultEvidencePage = 100
	MaxEvidencePage     = 1000
)

// evidenceCursorPattern is the form of EvidenceCursor: two lowercase hex
// SHA-256 hashes.
var evidenceCursorPattern = regexp.MustCompile(`^[0-9a-f]{64}/[0-9a-f]{64}$`)

// evidencePage parses the limit and after query parameters of the evidence
// endpoints for origin ("" for all logs).
func evidencePage(q url.Values, origin string) (limit int, after string, err error) {
	limit = DefaultEvidencePage
	if s := q.Get("limit"); s != "" {
		n, err := parseDecimal(s)
		if err != nil || n < 1 || n > MaxEvidencePage {
			return 0, "", fmt.Errorf("limit %.20q: want 1 to %d", s, MaxEvidencePage)
		}
		limit = int(n)
	}
	after = q.Get("after")
	if after != "" && (!evidenceCursorPattern.MatchString(after) || origin != "" && !strings.HasPrefix(after, OriginHash(origin)+"/")) {
		return 0, "", fmt.Errorf("after %.140q is not a cursor of this evidence list", after)
	}
	return limit, after, nil
}

func (w *Witness) serveEvidence(rw http.ResponseWriter, r *http.Request) {
	origin, ok := w.originFor(r)
	if !ok {
		http.Error(rw, "unknown log", http.StatusNotFound)
		return
	}
	limit, after, err := evidencePage(r.URL.Query(), origin)
	if err != nil {
		http.Error(rw, err.Error(), http.StatusBadRequest)
		return
	}
	ev, next, err := w.EvidencePage(r.Context(), origin, after, limit)
	if err != nil {
		w.logger.ErrorContext(r.Context(), "reading evidence", "origin", origin, "err", err)
		http.Error(rw, "internal error", http.StatusInternalServerError)
		return
	}
	if ev == nil {
		ev = []Evidence{}
	}
	rw.Header().Set("Content-Type", "application/json")
	if next != "" {
		q := url.Values{"limit": {strconv.Itoa(limit)}, "after": {next}}
		rw.Header().Set("Link", fmt.Sprintf("<%s?%s>; rel=\"next\"", r.URL.Path, q.Encode()))
	}
	enc := json.NewEncoder(rw)
	enc.SetIndent("", "  ")
	enc.Encode(ev)
}
