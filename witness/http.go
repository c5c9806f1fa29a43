package witness

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Handler returns the witness's HTTP API, at the root:
//
//	POST /add-checkpoint             C2SP tlog-witness add-checkpoint
//	GET  /<origin hash>/checkpoint   latest cosigned checkpoint (C2SP tlog-witness monitor retrieval)
//	GET  /<origin hash>/evidence     fork evidence for one log, JSON array of Evidence
//	GET  /evidence                   fork evidence for all logs, JSON array of Evidence
//	GET  /metrics                    Prometheus metrics
//	GET  /healthz                    "ok"
//
// <origin hash> is the lowercase hex SHA-256 of the log's origin
// (OriginHash).
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

func (w *Witness) serveEvidence(rw http.ResponseWriter, r *http.Request) {
	origin, ok := w.originFor(r)
	if !ok {
		http.Error(rw, "unknown log", http.StatusNotFound)
		return
	}
	ev, err := w.Evidence(r.Context(), origin)
	if err != nil {
		w.logger.ErrorContext(r.Context(), "reading evidence", "origin", origin, "err", err)
		http.Error(rw, "internal error", http.StatusInternalServerError)
		return
	}
	if ev == nil {
		ev = []Evidence{}
	}
	rw.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(rw)
	enc.SetIndent("", "  ")
	enc.Encode(ev)
}
