package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/tessera/api/layout"
)

func TestFullPath(t *testing.T) {
	for _, tc := range []struct {
		kind string
		n    uint64
		want string
	}{
		{readBundle, 0, "tile/entries/000"},
		{readBundle, 7, "tile/entries/007"},
		{readBundle, 999, "tile/entries/999"},
		{readBundle, 1000, "tile/entries/x001/000"},
		{readBundle, 1234, "tile/entries/x001/234"},
		{readBundle, 1234067, "tile/entries/x001/x234/067"},
		{readTile, 0, "tile/0/000"},
		{readTile, 1234, "tile/0/x001/234"},
		{readTile, 1234067, "tile/0/x001/x234/067"},
	} {
		if got := fullPath(tc.kind, tc.n); got != tc.want {
			t.Errorf("fullPath(%s, %d) = %q, want %q", tc.kind, tc.n, got, tc.want)
		}
	}
}

// bundle returns an entry bundle of n entries of size bytes.
func bundle(n, size int) []byte {
	var b []byte
	for i := range n {
		b = binary.BigEndian.AppendUint16(b, uint16(size))
		b = append(b, bytes.Repeat([]byte{byte(i)}, size)...)
	}
	return b
}

func TestCheckBundle(t *testing.T) {
	if err := checkBundle(bundle(layout.TileWidth, 1024)); err != nil {
		t.Errorf("full bundle: %v", err)
	}
	for name, b := range map[string][]byte{
		"partial":  bundle(layout.TileWidth-1, 1024),
		"too many": bundle(layout.TileWidth+1, 16),
		"dangling": append(bundle(layout.TileWidth, 16), 0),
		"cut":      bundle(layout.TileWidth, 16)[:100],
		"empty":    nil,
	} {
		if err := checkBundle(b); err == nil {
			t.Errorf("%s bundle: no error", name)
		}
	}
}

// tileServer serves full bundles and tiles at any index below full,
// gzipped if asked and gz, and 503 for index 3.
func tileServer(t *testing.T, gz bool) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := strings.TrimPrefix(r.URL.Path, "/")
		var body []byte
		switch {
		case p == fullPath(readBundle, 3) || p == fullPath(readTile, 3):
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		case strings.HasPrefix(p, "tile/entries/"):
			body = bundle(layout.TileWidth, 1024)
		case strings.HasPrefix(p, "tile/0/"):
			body = make([]byte, 32*layout.TileWidth)
		default:
			http.NotFound(w, r)
			return
		}
		if !gz || !strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			w.Write(body)
			return
		}
		w.Header().Set("Content-Encoding", "gzip")
		zw := gzip.NewWriter(w)
		zw.Write(body)
		if err := zw.Close(); err != nil {
			t.Error(err)
		}
	}))
}

func TestHTTPGet(t *testing.T) {
	for _, gz := range []bool{false, true} {
		srv := tileServer(t, gz)
		g := &getter{hc: srv.Client()}
		r, err := fetchFull(context.Background(), g, srv.URL, readBundle, 1234)
		if err != nil || r.gzipped != gz || len(r.body) != layout.TileWidth*1026 {
			t.Errorf("gzip %v: bundle: gzipped %v, %d bytes, %v", gz, r.gzipped, len(r.body), err)
		}
		if gz && r.wire >= int64(len(r.body)) {
			t.Errorf("gzipped bundle of %d bytes took %d on the wire", len(r.body), r.wire)
		}
		if _, err := fetchFull(context.Background(), g, srv.URL, readTile, 5); err != nil {
			t.Errorf("gzip %v: tile: %v", gz, err)
		}
		_, err = fetchFull(context.Background(), g, srv.URL, readTile, 3)
		if se := (*statusError)(nil); !errors.As(err, &se) || se.status != http.StatusServiceUnavailable || errorClass(err) != "status 503" {
			t.Errorf("gzip %v: busy tile: %v (class %q), want status 503", gz, err, errorClass(err))
		}
		srv.Close()
	}
	if c := errorClass(&badBodyError{url: "u", err: io.ErrUnexpectedEOF}); c != "bad body" {
		t.Errorf("errorClass(badBodyError) = %q", c)
	}
	if c := errorClass(fmt.Errorf("GET: %w", context.DeadlineExceeded)); c != "timeout" {
		t.Errorf("errorClass(deadline) = %q", c)
	}
}

// TestMixedReaders runs the readers of a mixed load against a fake log and
// checks what they count.
func TestMixedReaders(t *testing.T) {
	srv := tileServer(t, true)
	defer srv.Close()
	// A window long enough that, on a loaded machine, some reads of the
	// busy bundle come back before it ends (errors after it are not
	// counted).
	cfg := Config{MixedReaders: 4, MixedTileShare: 0.5, MixedDuration: time.Second}
	rd := newMixedReaders(cfg, srv.URL, 4*layout.TileWidth) // bundles 0..3; 3 is busy
	w := &checkpointWatch{}
	start := time.Now()
	rd.run(context.Background(), w)
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("readers ran %v, want about 1s: they do not stop with the window", d)
	}
	m := rd.result("fake", 1, 4*layout.TileWidth, &Phase{})
	b, ti := m.kind(readBundle), m.kind(readTile)
	if b.Reads == 0 || ti.Reads == 0 || m.Reads != b.Reads+ti.Reads || b.Gzipped != b.Reads {
		t.Errorf("reads: %d bundles (%d gzipped), %d tiles, %d in all", b.Reads, b.Gzipped, ti.Reads, m.Reads)
	}
	if m.ReadErrors == 0 || m.ReadErrors != m.ReadErrorKinds["status 503"] {
		t.Errorf("read errors %d, by kind %v: want all status 503", m.ReadErrors, m.ReadErrorKinds)
	}

	// A cap on the rate holds.
	cfg.MixedReadRate, cfg.MixedDuration = 50, 300*time.Millisecond
	rd = newMixedReaders(cfg, srv.URL, 4*layout.TileWidth)
	rd.run(context.Background(), w)
	if m := rd.result("fake", 1, 0, &Phase{}); m.Reads+m.ReadErrors > 20 {
		t.Errorf("%d reads in 300ms at 50/s", m.Reads+m.ReadErrors)
	}
}

// TestServeTessera runs serve-tessera's server in process: POST /add
// answers distinct indices once integrated, refuses empty and oversized
// entries, and the files it serves hold the entries under a signed
// checkpoint; it stops cleanly.
func TestServeTessera(t *testing.T) {
	dir := t.TempDir()
	key, err := newTesseraKey()
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "key")
	if err := key.writeSigner(keyFile); err != nil {
		t.Fatal(err)
	}
	cfg := tesseraServerConfig{Dir: filepath.Join(dir, "log"), KeyFile: keyFile, Listen: "127.0.0.1:0",
		Tessera: tesseraConfig{BatchMaxSize: 16, BatchMaxAge: time.Millisecond, CheckpointInterval: 100 * time.Millisecond}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	served := make(chan error, 1)
	go func() { served <- serveTessera(ctx, cfg, pw) }()
	url, err := readURLBanner(pr)
	go io.Copy(io.Discard, pr) //nolint:errcheck // nothing more is printed
	if err != nil {
		t.Fatal(err)
	}
	hc := newHTTPClient(8)
	w := &httpWriter{c: hc, url: url + "/add"}

	var mu sync.Mutex
	var got []uint64
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() {
			idx, err := w.post(ctx, fmt.Appendf(nil, "entry %d", i))
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			got = append(got, idx)
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.Sort(got)
	if !slices.Equal(got, []uint64{0, 1, 2}) {
		t.Fatalf("indices %v, want 0, 1, 2", got)
	}
	for name, body := range map[string][]byte{"empty": nil, "oversized": make([]byte, maxAddBody+1)} {
		if _, err := w.post(ctx, body); err == nil || errors.Is(err, errPushback) {
			t.Errorf("%s entry: %v, want a refusal", name, err)
		}
	}

	verifier, err := key.noteVerifier()
	if err != nil {
		t.Fatal(err)
	}
	proc := &tesseraProc{url: url, verifier: verifier, http: hc}
	deadline := time.Now().Add(10 * time.Second)
	for {
		size, err := proc.CheckpointSize(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if size == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("checkpoint size %d after 10s, want 3", size)
		}
		time.Sleep(20 * time.Millisecond)
	}
	g := &getter{hc: hc}
	r, err := g.get(ctx, url+"/"+layout.EntriesPath(0, 3))
	if err != nil || !bytes.Contains(r.body, []byte("entry 2")) {
		t.Errorf("partial bundle: %q, %v", r.body, err)
	}
	resp, err := hc.Get(url + "/" + layout.TilePath(0, 0, 3))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if cc := resp.Header.Get("Cache-Control"); resp.StatusCode != http.StatusOK || !strings.Contains(cc, "immutable") {
		t.Errorf("tile: %s, Cache-Control %q", resp.Status, cc)
	}

	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("serveTessera: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("serveTessera did not stop")
	}
}
