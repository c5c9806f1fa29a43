package server

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/provlog/provlog/log"
)

func serveHTTP(h http.Handler, method, path string, body io.Reader, header ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, body)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// checkResponse checks a response's status code and the given headers.
func checkResponse(t *testing.T, rec *httptest.ResponseRecorder, code int, header ...string) {
	t.Helper()
	if rec.Code != code {
		t.Errorf("status %d, want %d (body %q)", rec.Code, code, rec.Body)
	}
	for i := 0; i+1 < len(header); i += 2 {
		if got := rec.Header().Get(header[i]); got != header[i+1] {
			t.Errorf("%s: %q, want %q", header[i], got, header[i+1])
		}
	}
	if b := strings.TrimSuffix(rec.Body.String(), "\n"); rec.Code >= 400 && strings.Contains(b, "\n") {
		t.Errorf("reason is not one line: %q", b)
	}
}

func TestHTTPCheckpoint(t *testing.T) {
	f := newFakeLog(10)
	rec := serveHTTP(HTTPHandler(f, nil), "GET", "/checkpoint", nil)
	checkResponse(t, rec, 200, "Content-Type", "text/plain; charset=utf-8", "Cache-Control", "no-cache")
	if !bytes.Equal(rec.Body.Bytes(), f.cp.Note) {
		t.Errorf("body %q, want %q", rec.Body, f.cp.Note)
	}
	f.cp.Note = nil
	rec = serveHTTP(HTTPHandler(f, nil), "GET", "/checkpoint", nil)
	checkResponse(t, rec, 503, "Retry-After", "1")
}

func TestHTTPTiles(t *testing.T) {
	const (
		immutable = "public, max-age=31536000, immutable"
		partial   = "public, max-age=60"
	)
	h := HTTPHandler(newFakeLog(10), nil)
	for _, tc := range []struct {
		path  string
		code  int
		body  string // prefix of the body
		cache string
	}{
		{"/tile/0/000", 200, "tile 0/0/0", immutable},
		{"/tile/0/x001/x234/067", 404, "", ""}, // the fake has no tile 1234067
		{"/tile/2/x001/067", 200, "tile 2/1067/0", immutable},
		{"/tile/1/x001/067.p/8", 200, "tile 1/1067/8", partial},
		{"/tile/63/000.p/255", 200, "tile 63/0/255", partial},
		{"/tile/0/000.p/0", 400, "tile path: bad partial width", ""},
		{"/tile/0/000.p/256", 400, "tile path: bad partial width", ""},
		{"/tile/0/000.p/08", 400, "tile path: bad partial width", ""},
		{"/tile/00/000", 400, "tile path: bad level", ""},
		{"/tile/64/000", 400, "tile path: bad level", ""},
		{"/tile/0/0067", 400, "tile path: bad index", ""},
		{"/tile/0/x000/067", 400, "tile path: bad index", ""},
		{"/tile/0/067/junk", 400, "tile path: bad index", ""},
		{"/tile/0", 400, "tile path: want", ""},
		{"/tile/entries/000", 200, "bundle 0/0;", immutable},
		{"/tile/entries/x001/067.p/3", 200, "bundle 1067/3;", partial},
		{"/tile/entries/x001/x234/067", 404, "", ""},
		{"/tile/entries/00", 400, "tile path: bad index", ""},
		{"/tile/entries/000.p/256", 400, "tile path: bad partial width", ""},
		{"/tile/entries/x000/001", 400, "tile path: bad index", ""},
	} {
		t.Run(tc.path, func(t *testing.T) {
			rec := serveHTTP(h, "GET", tc.path, nil)
			checkResponse(t, rec, tc.code)
			if !strings.HasPrefix(rec.Body.String(), tc.body) {
				t.Errorf("body %q, want prefix %q", rec.Body, tc.body)
			}
			if tc.code != 200 {
				return
			}
			checkResponse(t, rec, 200, "Content-Type", "application/octet-stream", "Cache-Control", tc.cache,
				"Content-Length", fmt.Sprint(rec.Body.Len()))
		})
	}
}

func TestHTTPEntryBundleGzip(t *testing.T) {
	f := newFakeLog(10)
	want, _ := f.EntryBundle(t.Context(), 3, 0)
	h := HTTPHandler(f, nil)
	for _, tc := range []struct {
		accept string
		gzip   bool
	}{
		{"", false},
		{"gzip", true},
		{"identity, GZIP;q=0.5", true},
		{"br, gzip;q=0", false},
		{"identity", false},
	} {
		rec := serveHTTP(h, "GET", "/tile/entries/003", nil, "Accept-Encoding", tc.accept)
		checkResponse(t, rec, 200, "Vary", "Accept-Encoding")
		body := rec.Body.Bytes()
		if enc := rec.Header().Get("Content-Encoding"); (enc == "gzip") != tc.gzip {
			t.Fatalf("Accept-Encoding %q: Content-Encoding %q", tc.accept, enc)
		}
		if tc.gzip {
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			if body, err = io.ReadAll(zr); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(body, want) {
			t.Errorf("Accept-Encoding %q: wrong bundle", tc.accept)
		}
	}
}

func TestHTTPAdd(t *testing.T) {
	f := newFakeLog(10)
	h := HTTPHandler(f, nil)
	rec := serveHTTP(h, "POST", "/add", strings.NewReader("entry"))
	checkResponse(t, rec, 200, "Content-Type", "text/plain; charset=utf-8")
	if rec.Body.String() != "10" {
		t.Errorf("body %q, want 10", rec.Body)
	}
	rec = serveHTTP(h, "POST", "/add", bytes.NewReader(make([]byte, 100)))
	checkResponse(t, rec, 200)
	if rec.Body.String() != "11" {
		t.Errorf("body %q, want 11", rec.Body)
	}

	rec = serveHTTP(h, "POST", "/add", bytes.NewReader(make([]byte, 101)))
	checkResponse(t, rec, 413)
	// Unknown length: the body is read up to the cap.
	req := httptest.NewRequest("POST", "/add", io.MultiReader(bytes.NewReader(make([]byte, 101))))
	req.ContentLength = -1
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	checkResponse(t, rec, 413)
	rec = serveHTTP(h, "POST", "/add", strings.NewReader(""))
	checkResponse(t, rec, 400)
	if f.numAdded() != 2 {
		t.Errorf("log saw %d entries, want 2", f.numAdded())
	}
}

func TestHTTPErrors(t *testing.T) {
	for _, tc := range []struct {
		err        error
		code       int
		retryAfter string
	}{
		{fmt.Errorf("%w: too big", log.ErrInvalidEntry), 400, ""},
		{fmt.Errorf("queue: %w", log.ErrPushback), 429, "1"},
		{fmt.Errorf("stopping: %w", log.ErrUnavailable), 503, "1"},
		{fmt.Errorf("waiting: %w", context.Canceled), 503, "1"},
		{fmt.Errorf("waiting: %w", context.DeadlineExceeded), 503, "1"},
		{fmt.Errorf("%w: tile", log.ErrNotFound), 404, ""},
		{fmt.Errorf("%w: tile", log.ErrOutOfRange), 404, ""},
		{errors.New("pebble: secret internals"), 500, ""},
	} {
		t.Run(tc.err.Error(), func(t *testing.T) {
			f := newFakeLog(10)
			f.err = tc.err
			h := HTTPHandler(f, nil)
			for _, rec := range []*httptest.ResponseRecorder{
				serveHTTP(h, "POST", "/add", strings.NewReader("entry")),
				serveHTTP(h, "GET", "/tile/0/000", nil),
				serveHTTP(h, "GET", "/tile/entries/000", nil),
			} {
				checkResponse(t, rec, tc.code, "Retry-After", tc.retryAfter)
				if strings.Contains(rec.Body.String(), "secret") {
					t.Errorf("internal error leaked: %q", rec.Body)
				}
			}
		})
	}
}

func TestHTTPHealthz(t *testing.T) {
	f := newFakeLog(10)
	h := HTTPHandler(f, nil)
	rec := serveHTTP(h, "GET", "/healthz", nil)
	checkResponse(t, rec, 200)
	if rec.Body.String() != "ok\n" {
		t.Errorf("body %q", rec.Body)
	}
	f.setHealth(errors.New("sequencer stopped:\nstorage fault"))
	rec = serveHTTP(h, "GET", "/healthz", nil)
	checkResponse(t, rec, 503)
	if !strings.Contains(rec.Body.String(), "storage fault") {
		t.Errorf("body %q, want the reason", rec.Body)
	}
}

func TestHTTPRoutes(t *testing.T) {
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "metrics") })
	for _, tc := range []struct {
		metrics      http.Handler
		method, path string
		code         int
	}{
		{metrics, "GET", "/metrics", 200},
		{nil, "GET", "/metrics", 404},
		{nil, "GET", "/add", 405},
		{nil, "POST", "/checkpoint", 405},
		{nil, "PUT", "/tile/0/000", 405},
		{nil, "HEAD", "/checkpoint", 200},
		{nil, "GET", "/", 200}, // the page
		{nil, "GET", "/ui/index.html", 301},
		{nil, "GET", "/ui/nope.js", 404},
		{nil, "POST", "/", 405},
		{nil, "GET", "/nope", 404},
	} {
		rec := serveHTTP(HTTPHandler(newFakeLog(1), tc.metrics), tc.method, tc.path, nil)
		if rec.Code != tc.code {
			t.Errorf("%s %s (metrics %v): %d, want %d", tc.method, tc.path, tc.metrics != nil, rec.Code, tc.code)
		}
	}
}
