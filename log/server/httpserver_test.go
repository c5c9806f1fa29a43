package server

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/provlog/provlog/log"
)

// bigBundleLog serves every entry bundle as a full bundle of entries of
// the largest size, 16 MiB: more than socket buffers hold, so that
// writing it to a slow reader blocks.
type bigBundleLog struct {
	*fakeLog
	bundle []byte
}

func newBigBundleLog() bigBundleLog {
	rec := append([]byte{0xff, 0xff}, bytes.Repeat([]byte{'e'}, 1<<16-1)...)
	return bigBundleLog{newFakeLog(1 << 20), bytes.Repeat(rec, 256)}
}

func (b bigBundleLog) ServeEntryBundle(context.Context, uint64, uint8, bool) (log.ServedBundle, error) {
	return log.ServedBundle{Data: b.bundle}, nil
}

// serveTimeouts serves h with NewHTTPServer(h, to) on a loopback listener
// and returns its address and a channel that receives the time each
// connection closes.
func serveTimeouts(t *testing.T, h http.Handler, to HTTPTimeouts) (string, <-chan time.Time) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan time.Time, 16)
	srv := NewHTTPServer(h, to)
	srv.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateClosed {
			closed <- time.Now()
		}
	}
	go srv.Serve(lis)
	t.Cleanup(func() { srv.Close() })
	return lis.Addr().String(), closed
}

// trickle dials addr with a small receive buffer, writes first, then
// sends rest and reads the response one byte a second each, until the
// connection fails or the test ends. It returns when it started.
func trickle(t *testing.T, addr, first, rest string) time.Time {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	conn.(*net.TCPConn).SetReadBuffer(4 << 10)
	done := make(chan struct{})
	t.Cleanup(func() { close(done); conn.Close() })
	conn.SetDeadline(time.Now().Add(time.Minute)) // nothing here outlives a minute
	if _, err := io.WriteString(conn, first); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	tick := func(do func() error) {
		for {
			select {
			case <-done:
				return
			case <-time.After(time.Second):
			}
			if do() != nil {
				return
			}
		}
	}
	go tick(func() error {
		if rest == "" {
			return nil
		}
		_, err := io.WriteString(conn, rest[:1])
		rest = rest[1:]
		return err
	})
	go tick(func() error { _, err := conn.Read(make([]byte, 1)); return err })
	return start
}

// TestHTTPSlowClients: a client reading an entry bundle one byte a second
// is cut off when the bundle's write bound, LargeWrite, passes (not the
// shorter Write: bundles get longer); one sending its headers or its
// request body one byte a second is cut off by ReadHeader or Read.
func TestHTTPSlowClients(t *testing.T) {
	to := HTTPTimeouts{ReadHeader: 500 * time.Millisecond, Read: time.Second, Write: 300 * time.Millisecond, LargeWrite: 1500 * time.Millisecond}
	for _, tc := range []struct {
		name        string
		first, rest string
		bound       time.Duration
	}{
		{"slow reader of a bundle", "GET /tile/entries/" + indexPathFor(0, 0) + " HTTP/1.1\r\nHost: log\r\n\r\n", "", to.LargeWrite},
		{"slow headers", "GET /checkpoint HTTP/1.1\r\n", "Host: log\r\nX-Slow: 0123456789\r\n\r\n", to.ReadHeader},
		{"slow body", "POST /add HTTP/1.1\r\nHost: log\r\nContent-Length: 40\r\n\r\n", "0123456789012345678901234567890123456789", to.Read},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, closed := serveTimeouts(t, HTTPHandler(newBigBundleLog(), nil), to)
			start := trickle(t, addr, tc.first, tc.rest)
			select {
			case at := <-closed:
				took := at.Sub(start)
				if took < tc.bound-100*time.Millisecond || took > tc.bound+5*time.Second {
					t.Errorf("connection closed after %v, want about %v", took, tc.bound)
				}
			case <-time.After(tc.bound + 15*time.Second):
				t.Fatalf("connection still open %v after the bound of %v", tc.bound+15*time.Second, tc.bound)
			}
		})
	}
}

// TestNewHTTPServerDefaults: the zero HTTPTimeouts bounds every phase.
func TestNewHTTPServerDefaults(t *testing.T) {
	s := NewHTTPServer(http.NotFoundHandler(), HTTPTimeouts{})
	if s.ReadHeaderTimeout != 10*time.Second || s.ReadTimeout != 30*time.Second || s.WriteTimeout != time.Minute ||
		s.IdleTimeout != 2*time.Minute || s.MaxHeaderBytes != 64<<10 {
		t.Errorf("defaults: %+v", s)
	}
	if d := s.BaseContext(nil).Value(largeWriteKey{}); d != 5*time.Minute {
		t.Errorf("LargeWrite default %v, want 5m", d)
	}
}
