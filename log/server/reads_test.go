package server

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/provlog/provlog/log"
)

// gatedLog holds every tile and bundle read until its gate opens, counting
// the reads working at once.
type gatedLog struct {
	*fakeLog
	gate          chan struct{}
	working, most atomic.Int32
}

func (g *gatedLog) hold(ctx context.Context) {
	n := g.working.Add(1)
	for {
		m := g.most.Load()
		if n <= m || g.most.CompareAndSwap(m, n) {
			break
		}
	}
	select {
	case <-g.gate:
	case <-ctx.Done():
	}
	g.working.Add(-1)
}

func (g *gatedLog) Tile(ctx context.Context, level, index uint64, width uint8) ([]byte, error) {
	g.hold(ctx)
	return g.fakeLog.Tile(ctx, level, index, width)
}

func (g *gatedLog) ServeEntryBundle(ctx context.Context, index uint64, width uint8, gz bool) (log.ServedBundle, error) {
	g.hold(ctx)
	return g.fakeLog.ServeEntryBundle(ctx, index, width, gz)
}

// TestReadConcurrencyBound: however many readers, at most the bound of
// tile and bundle reads work at once; the rest wait, and all are served.
func TestReadConcurrencyBound(t *testing.T) {
	g := &gatedLog{fakeLog: newFakeLog(1 << 20), gate: make(chan struct{})}
	opened := false
	open := func() {
		if !opened {
			close(g.gate)
			opened = true
		}
	}
	t.Cleanup(open) // never leave readers blocked
	srv := httptest.NewServer(HTTPHandler(g, nil, WithReadConcurrency(2)))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	const readers = 16
	errs := make(chan error, readers)
	for i := range readers {
		path := "/tile/0/00" + string(rune('0'+i%10))
		if i%2 == 1 {
			path = "/tile/entries/00" + string(rune('0'+i%10))
		}
		go func() {
			req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err == nil && resp.StatusCode != http.StatusOK {
					err = io.ErrUnexpectedEOF
				}
			}
			errs <- err
		}()
	}
	// Two reads reach the log; the others wait for a slot.
	for g.working.Load() < 2 {
		if ctx.Err() != nil {
			t.Fatal("reads never reached the log")
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	if n := g.working.Load(); n != 2 {
		t.Fatalf("%d reads working at once, want the bound of 2", n)
	}
	open()
	for range readers {
		if err := <-errs; err != nil {
			t.Errorf("read: %v", err)
		}
	}
	if m := g.most.Load(); m != 2 {
		t.Errorf("at most %d reads worked at once, want 2", m)
	}
}

// TestSlowReaderHoldsNoReadSlot: a client that does not read its bundle
// holds no slot: with a bound of one, another read is served meanwhile.
func TestSlowReaderHoldsNoReadSlot(t *testing.T) {
	srv := httptest.NewServer(HTTPHandler(newBigBundleLog(), nil, WithReadConcurrency(1)))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	// 16 MiB, more than the socket buffers hold: the handler blocks
	// writing it while this client reads nothing.
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/tile/entries/000", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	req, _ = http.NewRequestWithContext(ctx, "GET", srv.URL+"/tile/0/000", nil)
	other, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("read beside a slow reader: %v", err)
	}
	other.Body.Close()
	if other.StatusCode != http.StatusOK {
		t.Fatalf("read beside a slow reader: %s", other.Status)
	}
}
