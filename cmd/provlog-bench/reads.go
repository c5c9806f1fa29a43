package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"

	provlogv1 "github.com/provlog/provlog/proto/provlog/v1"
	"github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"
)

// reads measures inclusion-proof reads (provlog only: Tessera serves no
// proofs, its clients build them from tiles) and tile reads on t.
func (b *bench) reads(ctx context.Context, t target, round int) error {
	size, err := t.CheckpointSize(ctx)
	if err != nil {
		return err
	}
	if p, ok := t.(*provlog); ok {
		stopProfile := b.profile(ctx, t, fmt.Sprintf("round%d-provlog-inclusion-proof", round), b.cfg.ReadDuration)
		r, err := b.measureReads(ctx, t.Name(), "inclusion-proof", size, proofRead(p, size))
		stopProfile()
		if err != nil {
			return err
		}
		r.Round = round
		b.res.Reads = append(b.res.Reads, r)
	}
	if size < layout.TileWidth {
		slog.Warn("no full tile to read", "target", t.Name(), "size", size)
		return nil
	}
	r, err := b.measureReads(ctx, t.Name(), "tile", size, tileRead(t.TileBaseURL(), size))
	if err != nil {
		return err
	}
	r.Round = round
	b.res.Reads = append(b.res.Reads, r)
	return nil
}

// readFunc performs one read with the reader's random source.
type readFunc func(ctx context.Context, rng *rand.Rand) error

// proofRead asks for the inclusion proof of a random entry in the tree of
// the latest checkpoint.
func proofRead(p *provlog, size uint64) func(int) readFunc {
	return func(worker int) readFunc {
		c := p.client(worker)
		return func(ctx context.Context, rng *rand.Rand) error {
			i := rng.Uint64N(size)
			r, err := c.GetInclusionProof(ctx, &provlogv1.GetInclusionProofRequest{
				Leaf: &provlogv1.GetInclusionProofRequest_Index{Index: i}})
			if err != nil {
				return fmt.Errorf("GetInclusionProof(%d): %w", i, err)
			}
			if r.Index != i || len(r.Proof) == 0 && size > 1 {
				return fmt.Errorf("GetInclusionProof(%d): index %d, %d hashes", i, r.Index, len(r.Proof))
			}
			return nil
		}
	}
}

// tileRead fetches a random full level-0 tile (8 KiB of leaf hashes).
func tileRead(base string, size uint64) func(int) readFunc {
	hc := newHTTPClient(1024)
	full := size / layout.TileWidth
	return func(int) readFunc {
		g := &getter{hc: hc}
		return func(ctx context.Context, rng *rand.Rand) error {
			_, err := fetchFull(ctx, g, base, readTile, rng.Uint64N(full))
			return err
		}
	}
}

// Kinds of full-tile reads.
const (
	readTile   = "tile"         // a level-0 hash tile, GET /tile/0/<N>
	readBundle = "entry-bundle" // an entry bundle, GET /tile/entries/<N>
)

// fullPath returns the tlog-tiles path (no leading slash) of full tile or
// entry bundle n: 3-digit elements, all but the last prefixed with x.
func fullPath(kind string, n uint64) string {
	if kind == readBundle {
		return layout.EntriesPath(n, 0)
	}
	return layout.TilePath(0, n, 0)
}

// fetchFull fetches full tile or entry bundle n from base and checks it
// holds layout.TileWidth hashes or entries.
func fetchFull(ctx context.Context, g *getter, base, kind string, n uint64) (getResult, error) {
	url := base + "/" + fullPath(kind, n)
	r, err := g.get(ctx, url)
	if err != nil {
		return r, err
	}
	if kind == readBundle {
		err = checkBundle(r.body)
	} else if len(r.body) != 32*layout.TileWidth {
		err = fmt.Errorf("%d bytes, want %d", len(r.body), 32*layout.TileWidth)
	}
	if err != nil {
		return r, &badBodyError{url: url, err: err}
	}
	return r, nil
}

// checkBundle checks that b is a full entry bundle: layout.TileWidth
// records of a big-endian uint16 length and that many bytes.
func checkBundle(b []byte) error {
	var eb api.EntryBundle
	if err := eb.UnmarshalText(b); err != nil {
		return fmt.Errorf("entry bundle: %w", err)
	}
	if len(eb.Entries) != layout.TileWidth {
		return fmt.Errorf("entry bundle of %d entries, want %d", len(eb.Entries), layout.TileWidth)
	}
	return nil
}

// getResult is one GET as the reader saw it.
type getResult struct {
	status  int
	body    []byte // decoded
	wire    int64  // body bytes on the wire
	gzipped bool   // served with Content-Encoding: gzip
}

// maxGetBody caps a decoded body: a full bundle of the largest entries.
const maxGetBody = layout.TileWidth * (2 + 1<<16)

// statusError is a response other than 200 OK.
type statusError struct {
	url    string
	status int
}

func (e *statusError) Error() string { return fmt.Sprintf("GET %s: status %d", e.url, e.status) }

// badBodyError is a 200 OK whose body is not what was asked for.
type badBodyError struct {
	url string
	err error
}

func (e *badBodyError) Error() string { return fmt.Sprintf("GET %s: %v", e.url, e.err) }
func (e *badBodyError) Unwrap() error { return e.err }

// getter makes the GETs of one goroutine, reusing its buffer.
type getter struct {
	hc  *http.Client
	buf bytes.Buffer
}

// get fetches url sending Accept-Encoding: gzip, as Go's client does by
// default and as monitors do, and decodes a gzipped body itself (so it
// knows what was sent). The body returned is valid until the next get. A
// status other than 200 is a *statusError.
func (g *getter) get(ctx context.Context, url string) (getResult, error) {
	var r getResult
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return r, fmt.Errorf("GET %s: %w", url, err)
	}
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := g.hc.Do(req)
	if err != nil {
		return r, fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	r.status = resp.StatusCode
	wire := &countingReader{r: resp.Body}
	var body io.Reader = wire
	if resp.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(wire)
		if err != nil {
			return r, fmt.Errorf("GET %s: gzip: %w", url, err)
		}
		r.gzipped, body = true, zr
	}
	g.buf.Reset()
	_, err = g.buf.ReadFrom(io.LimitReader(body, maxGetBody+1))
	r.body, r.wire = g.buf.Bytes(), wire.n
	switch {
	case err != nil:
		return r, fmt.Errorf("GET %s: %w", url, err)
	case r.status != http.StatusOK:
		return r, &statusError{url: url, status: r.status}
	case len(r.body) > maxGetBody:
		return r, &badBodyError{url: url, err: fmt.Errorf("body over %d bytes", maxGetBody)}
	}
	return r, nil
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// measureReads runs cfg.ReadWorkers readers for cfg.ReadDuration.
func (b *bench) measureReads(ctx context.Context, name, kind string, size uint64, mk func(int) readFunc) (*ReadResult, error) {
	slog.Info("reads", "target", name, "kind", kind, "tree_size", size)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	lats := make([][]time.Duration, b.cfg.ReadWorkers)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range b.cfg.ReadWorkers {
		read := mk(w)
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), rand.Uint64()))
			for ctx.Err() == nil && time.Since(start) < b.cfg.ReadDuration {
				t0 := time.Now()
				if err := read(ctx, rng); err != nil {
					cancel(err)
					return
				}
				lats[w] = append(lats[w], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := context.Cause(ctx); err != nil {
		return nil, fmt.Errorf("%s reads from %s: %w", kind, name, err)
	}
	all := slices.Concat(lats...)
	r := &ReadResult{Target: name, Kind: kind, TreeSize: size, Reads: int64(len(all)),
		PerSec: float64(len(all)) / elapsed.Seconds(), Latency: summarize(all)}
	slog.Info("result", "target", name, "kind", kind, "reads/s", int(r.PerSec), "p99_ms", r.Latency.P99)
	return r, nil
}
