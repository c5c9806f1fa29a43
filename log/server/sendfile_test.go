package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/mod/sumdb/note"

	"github.com/provlog/provlog/internal/daemon"
	"github.com/provlog/provlog/log"
	"github.com/provlog/provlog/storage"
)

// readFromRecorder records what the handler gives its response writer's
// ReadFrom, then hands it on to net/http's.
type readFromRecorder struct {
	http.ResponseWriter
	mu  *sync.Mutex
	got *[]string // "file" for an io.LimitedReader of an *os.File, else the reader's type
}

func (w *readFromRecorder) ReadFrom(r io.Reader) (int64, error) {
	kind := "other"
	if lr, ok := r.(*io.LimitedReader); ok {
		if _, ok := lr.R.(*os.File); ok {
			kind = "file"
		}
	}
	w.mu.Lock()
	*w.got = append(*w.got, kind)
	w.mu.Unlock()
	return w.ResponseWriter.(io.ReaderFrom).ReadFrom(r)
}

// diskLog is a log of 300 random 1 KiB entries in a store in dir, and
// its first bundle.
func diskLog(t *testing.T) (l *log.Log, dir string, bundle0 []byte) {
	t.Helper()
	dir = t.TempDir()
	st, err := storage.Open(dir, storage.Options{CacheBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	skey, _, _ := note.GenerateKey(rand.Reader, "example.com/sendfile")
	signer, _ := note.NewSigner(skey)
	l, err = log.Open(context.Background(), log.Config{Origin: "example.com/sendfile", Signer: signer}, st)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(); st.Close() })
	entries := make([][]byte, 300)
	for i := range entries {
		entries[i] = make([]byte, 1024)
		rand.Read(entries[i])
	}
	if _, err := l.AddBatch(context.Background(), entries); err != nil {
		t.Fatal(err)
	}
	bundle0, err = l.EntryBundle(context.Background(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return l, dir, bundle0
}

// TestEntryBundleSendfile: over a real connection, a full bundle of
// random entries from a store on disk reaches net/http's response writer
// as a section of its bundle file (io.Copy into ReadFrom, which sends a
// file with sendfile(2)), through provlogd's metrics wrapper
// (daemon.HTTPMetrics' statusWriter), and the client gets the bundle's
// bytes and length.
func TestEntryBundleSendfile(t *testing.T) {
	l, dir, want := diskLog(t)
	var mu sync.Mutex
	var got []string
	h := daemon.NewHTTPMetrics(prometheus.NewRegistry(), "test").Handler(HTTPHandler(l, nil))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(&readFromRecorder{ResponseWriter: w, mu: &mu, got: &got}, r)
	}))
	t.Cleanup(srv.Close)
	hc := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	for i, accept := range []string{"gzip", "identity", "identity"} {
		req, _ := http.NewRequest("GET", srv.URL+"/tile/entries/000", nil)
		req.Header.Set("Accept-Encoding", accept)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || !bytes.Equal(body, want) || resp.ContentLength != int64(len(want)) ||
			resp.Header.Get("Content-Encoding") != "" {
			t.Fatalf("GET %d (Accept-Encoding %s): %s, %d bytes of %d (Content-Length %d), %v", i, accept, resp.Status, len(body), len(want), resp.ContentLength, err)
		}
	}
	mu.Lock()
	// The first read judges the bundle and serves it from memory (and
	// caches it for the readers that accept gzip: a bytes.Reader, written
	// with Write); the later ones send it from its file.
	if len(got) != 2 || got[0] != "file" || got[1] != "file" {
		t.Errorf("the response writer's ReadFrom was given %v, want the file twice", got)
	}
	got = nil
	mu.Unlock()

	// HEAD: the headers, no body, and the file not read.
	req, _ := http.NewRequest("HEAD", srv.URL+"/tile/entries/000", nil)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	mu.Lock()
	if resp.StatusCode != 200 || resp.ContentLength != int64(len(want)) || len(got) != 0 {
		t.Errorf("HEAD: %s, Content-Length %d (want %d), ReadFrom given %v", resp.Status, resp.ContentLength, len(want), got)
	}
	mu.Unlock()

	// The bundle file cut short after the bundle was checked: the client
	// gets a short body and an error, not a bundle, and the server logs
	// it as an error.
	logs := &lockedBuffer{}
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(logs, nil)))
	t.Cleanup(func() { slog.SetDefault(old) })
	if err := os.Truncate(filepath.Join(dir, "bundles", "000000000000.bundles"), int64(len(want)/2)); err != nil {
		t.Fatal(err)
	}
	req, _ = http.NewRequest("GET", srv.URL+"/tile/entries/000", nil)
	req.Header.Set("Accept-Encoding", "identity")
	if resp, err = hc.Do(req); err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil || len(body) >= len(want) {
		t.Errorf("GET of a bundle whose file was cut short: %d bytes of %d, %v; want an error", len(body), len(want), err)
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), "entry bundle sent short"); {
		if time.Now().After(deadline) {
			t.Fatalf("no error logged for the short bundle; logs: %q", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestEntryBundleFileOverTLS: over TLS, HTTP/2 and HTTP/1.1, where nothing
// sends a file without reading it, a bundle in its file is copied whole
// (once checked, so from the file from the second read on).
func TestEntryBundleFileOverTLS(t *testing.T) {
	l, _, want := diskLog(t)
	for _, h2 := range []bool{true, false} {
		srv := httptest.NewUnstartedServer(daemon.NewHTTPMetrics(prometheus.NewRegistry(), "test").Handler(HTTPHandler(l, nil)))
		srv.EnableHTTP2 = h2
		srv.StartTLS()
		hc := srv.Client()
		hc.Transport.(*http.Transport).DisableCompression = true
		for i := range 3 {
			req, _ := http.NewRequest("GET", srv.URL+"/tile/entries/000", nil)
			req.Header.Set("Accept-Encoding", "identity")
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 || !bytes.Equal(body, want) || resp.ProtoMajor != map[bool]int{true: 2, false: 1}[h2] {
				t.Fatalf("HTTP/2 %t, GET %d: %s (%s), %d bytes of %d, %v", h2, i, resp.Status, resp.Proto, len(body), len(want), err)
			}
		}
		srv.Close()
	}
}
