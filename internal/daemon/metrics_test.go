package daemon

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/provlog/provlog/internal/buildinfo"
)

func TestHTTPMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewHTTPMetrics(reg, "test")
	mux := http.NewServeMux()
	mux.HandleFunc("GET /tile/{path...}", func(w http.ResponseWriter, r *http.Request) {
		// The wrapper must let handlers reach the connection.
		if err := http.NewResponseController(w).SetWriteDeadline(time.Now().Add(time.Minute)); err != nil {
			t.Errorf("SetWriteDeadline through the metrics: %v", err)
		}
		io.WriteString(w, "tile")
	})
	mux.HandleFunc("POST /add", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "bad entry", http.StatusBadRequest)
	})
	srv := httptest.NewServer(m.Handler(mux))
	defer srv.Close()
	for _, req := range []struct{ method, path string }{
		{"GET", "/tile/0/000"}, {"GET", "/tile/0/001"}, {"POST", "/add"},
		{"GET", "/nowhere"}, {"DELETE", "/add"},
	} {
		r, err := http.NewRequestWithContext(t.Context(), req.method, srv.URL+req.path, strings.NewReader(""))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := srv.Client().Do(r)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	for _, c := range []struct {
		route, code string
		want        float64
	}{
		{"GET /tile/{path...}", "200", 2},
		{"POST /add", "400", 1},
		{"unmatched", "404", 1},
		{"unmatched", "405", 1},
	} {
		if got := sample(t, reg, "test_http_requests_total", "route", c.route, "code", c.code); got != c.want {
			t.Errorf("test_http_requests_total{route=%q,code=%q} = %v, want %v", c.route, c.code, got, c.want)
		}
	}
	if n := series(t, reg, "test_http_request_duration_seconds"); n != 3 {
		t.Errorf("%d latency series, want 3 (one per route)", n)
	}
	if got := sample(t, reg, "test_http_request_duration_seconds", "route", "GET /tile/{path...}"); got != 2 {
		t.Errorf("%v tile requests timed, want 2", got)
	}
}

// sample returns the value of the series of the metric name with the
// given label pairs: a counter's or gauge's value, a histogram's count.
func sample(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for i := 0; i < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue metrics
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	t.Errorf("no series %s%q", name, labels)
	return 0
}

// series counts the series of the metric name.
func series(t *testing.T, reg *prometheus.Registry, name string) int {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return len(mf.GetMetric())
		}
	}
	return 0
}

func TestBuildInfo(t *testing.T) {
	reg := prometheus.NewRegistry()
	RegisterBuildInfo(reg, "test")
	i := buildinfo.Read()
	rev := i.Revision
	if rev == "" {
		rev = "unknown"
	}
	if n := series(t, reg, "test_build_info"); n != 1 {
		t.Fatalf("%d build_info series, want 1", n)
	}
	if got := sample(t, reg, "test_build_info", "version", i.Version, "revision", rev, "goversion", i.GoVersion); got != 1 {
		t.Errorf("test_build_info = %v, want 1", got)
	}
}
