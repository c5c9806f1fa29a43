package client

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sync/atomic"
	"time"

	"github.com/transparency-dev/tessera/api/layout"
)

const (
	// maxTileSize caps a hash tile: 256 hashes.
	maxTileSize = layout.TileWidth * sha256.Size
	// maxBundleSize caps an entry bundle: 256 entries of at most 65535
	// bytes, each with its 2-byte length.
	maxBundleSize = layout.EntryBundleWidth * (2 + 65535)
)

// defaultHTTPClient is used when a configuration gives no HTTP client.
var defaultHTTPClient = &http.Client{Timeout: time.Minute}

// tilesFetcher reads a log's C2SP tlog-tiles resources under a base URL,
// capping the size of each. It may be used from several goroutines.
type tilesFetcher struct {
	base *url.URL // ends with "/"
	hc   *http.Client
	read atomic.Int64 // bytes of bodies read
}

func newTilesFetcher(base string, hc *http.Client) (*tilesFetcher, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("tlog-tiles URL %q: want an http or https URL", base)
	}
	if u.Path == "" || u.Path[len(u.Path)-1] != '/' {
		u.Path += "/"
	}
	if hc == nil {
		hc = defaultHTTPClient
	}
	return &tilesFetcher{base: u, hc: hc}, nil
}

// get fetches the resource at path under the base URL, of at most max
// bytes. A 404 wraps os.ErrNotExist.
func (f *tilesFetcher) get(ctx context.Context, path string, max int64) ([]byte, error) {
	u := f.base.JoinPath(path)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := f.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return nil, fmt.Errorf("GET %s: %s: %w", u, resp.Status, os.ErrNotExist)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	f.read.Add(int64(len(b)))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%w: GET %s: more than %d bytes", ErrFormat, u, max)
	}
	return b, nil
}

// checkpoint fetches the raw checkpoint.
func (f *tilesFetcher) checkpoint(ctx context.Context) ([]byte, error) {
	return f.get(ctx, layout.CheckpointPath, MaxCheckpointSize)
}

// partialOrFull fetches the resource at pathOf(p) or, if that is partial
// (p > 0) and absent because the tree has grown, at pathOf(0). It reports
// whether it fell back to the full resource.
func (f *tilesFetcher) partialOrFull(ctx context.Context, p uint8, max int64, pathOf func(uint8) string) ([]byte, bool, error) {
	b, err := f.get(ctx, pathOf(p), max)
	if p > 0 && errors.Is(err, os.ErrNotExist) {
		b, err = f.get(ctx, pathOf(0), max)
		return b, true, err
	}
	return b, false, err
}

// tile fetches hash tile (level, index) of width p (0: full), falling back
// to the full tile; it satisfies tessera client.TileFetcherFunc.
func (f *tilesFetcher) tile(ctx context.Context, level, index uint64, p uint8) ([]byte, error) {
	b, _, err := f.partialOrFull(ctx, p, maxTileSize, func(p uint8) string { return layout.TilePath(level, index, p) })
	return b, err
}
