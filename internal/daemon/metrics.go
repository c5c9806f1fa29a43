package daemon

import (
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/provlog/provlog/internal/buildinfo"
)

// RequestSecondsBuckets are the buckets of the request latency histograms
// (HTTP here, gRPC in log/server): 100 µs to about 15 s, each 2.5 times
// the last, the buckets of the log's round and integration histograms
// with two more for slow clients.
var RequestSecondsBuckets = prometheus.ExponentialBuckets(0.0001, 2.5, 14)

// RegisterBuildInfo registers NAMESPACE_build_info on reg: a gauge of 1
// whose labels say what the binary was built from (version, revision,
// goversion; "unknown" where the build did not record it, and the
// revision ends in "+dirty" for a work tree with local changes).
func RegisterBuildInfo(reg prometheus.Registerer, namespace string) {
	i := buildinfo.Read()
	rev := i.Revision
	switch {
	case rev == "":
		rev = "unknown"
	case i.Modified:
		rev += "+dirty"
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        namespace + "_build_info",
		Help:        "1, with the version, VCS revision and Go version the binary was built from.",
		ConstLabels: prometheus.Labels{"version": i.Version, "revision": rev, "goversion": i.GoVersion},
	})
	g.Set(1)
	reg.MustRegister(g)
}

// HTTPMetrics count and time the HTTP requests of a handler by route.
type HTTPMetrics struct {
	requests *prometheus.CounterVec   // by route, code
	seconds  *prometheus.HistogramVec // by route
}

// NewHTTPMetrics returns the metrics NAMESPACE_http_requests_total (by
// route and status code) and NAMESPACE_http_request_duration_seconds (by
// route), registered on reg.
func NewHTTPMetrics(reg prometheus.Registerer, namespace string) *HTTPMetrics {
	m := &HTTPMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: namespace + "_http_requests_total",
			Help: "HTTP requests answered, by route (the pattern that served it, such as \"GET /checkpoint\"; \"unmatched\" for none) and status code.",
		}, []string{"route", "code"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    namespace + "_http_request_duration_seconds",
			Help:    "Time from a request's headers to the end of its handler, by route.",
			Buckets: RequestSecondsBuckets,
		}, []string{"route"}),
	}
	reg.MustRegister(m.requests, m.seconds)
	return m
}

// Handler returns h counted and timed. The route is the pattern of the
// http.ServeMux that served the request (Request.Pattern, which the mux
// sets on the request it is given), so h must be a ServeMux or pass the
// request on unchanged to one; the label's values are bounded by its
// patterns.
func (m *HTTPMetrics) Handler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			route := r.Pattern
			if route == "" {
				route = "unmatched"
			}
			code := sw.code
			if code == 0 {
				code = http.StatusOK
			}
			m.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
			m.seconds.WithLabelValues(route).Observe(time.Since(start).Seconds())
		}()
		h.ServeHTTP(sw, r)
	})
}

// statusWriter records the status code of a response. Unwrap lets
// http.ResponseController reach the connection (write deadlines, flushes).
type statusWriter struct {
	http.ResponseWriter
	code int // 0 until the header is written
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 && code >= 200 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// ReadFrom keeps the wrapped writer's ReadFrom reachable by io.Copy:
// net/http's sends a file (an entry bundle in its bundle file) with
// sendfile(2), where a Write loop would copy it through the process.
func (w *statusWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return io.Copy(w.ResponseWriter, r)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
