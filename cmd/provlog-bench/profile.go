package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"time"
)

// With -profile DIR, every provlogd the bench starts serves Go's profiler
// (--debug-listen on a free loopback port), and each read measurement and
// signed-events load writes two CPU profiles into DIR: provlogd's
// (NAME-provlogd.pprof, fetched from /debug/pprof/profile for the
// profile's length) and the bench process's own (NAME-bench.pprof), the
// load generator's side. NAME is the round, target and kind.

// debugListenArgs returns provlogd's --debug-listen flag on a free loopback
// port and the address, or nothing without -profile.
func (b *bench) debugListenArgs() ([]string, string, error) {
	if b.cfg.ProfileDir == "" {
		return nil, "", nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", fmt.Errorf("reserving a debug port: %w", err)
	}
	addr := l.Addr().String()
	l.Close()
	return []string{"--debug-listen", addr}, addr, nil
}

// profile starts the CPU profiles of a measurement called name on t, for
// d; the returned function waits for them and writes them. Without
// -profile, or on a target that is not a provlogd the bench started, it
// profiles nothing (the bench's own profile is still written for a
// provlogd the bench was pointed at).
func (b *bench) profile(ctx context.Context, t target, name string, d time.Duration) func() {
	if b.cfg.ProfileDir == "" {
		return func() {}
	}
	if err := os.MkdirAll(b.cfg.ProfileDir, 0o755); err != nil {
		slog.Warn("profile directory", "err", err)
		return func() {}
	}
	base := filepath.Join(b.cfg.ProfileDir, name)
	done := make(chan struct{})
	go func() {
		defer close(done)
		p, ok := t.(*provlog)
		if !ok || p.args.debugAddr == "" {
			return
		}
		if err := fetchProfile(ctx, p.args.debugAddr, d, base+"-provlogd.pprof"); err != nil {
			slog.Warn("provlogd profile", "name", name, "err", err)
		}
	}()
	f, err := os.Create(base + "-bench.pprof")
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		slog.Warn("bench profile", "name", name, "err", err)
	}
	start := time.Now()
	return func() {
		if f != nil {
			if err == nil {
				if rest := d - time.Since(start); rest > 0 {
					time.Sleep(rest) // the same window as provlogd's
				}
				pprof.StopCPUProfile()
			}
			f.Close()
		}
		<-done
	}
}

// fetchProfile writes provlogd's CPU profile of the next d to path.
func fetchProfile(ctx context.Context, addr string, d time.Duration, path string) error {
	secs := max(int((d+time.Second/2)/time.Second), 1)
	url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, secs)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("GET %s: %w", url, err)
	}
	return f.Close()
}
