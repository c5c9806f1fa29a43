package main

import (
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
		r, err := b.measureReads(ctx, t.Name(), "inclusion-proof", size, proofRead(p, size))
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
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1024}}
	full := size / layout.TileWidth
	return func(int) readFunc {
		return func(ctx context.Context, rng *rand.Rand) error {
			url := base + "/" + layout.TilePath(0, rng.Uint64N(full), 0)
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				return err
			}
			resp, err := hc.Do(req)
			if err != nil {
				return fmt.Errorf("GET %s: %w", url, err)
			}
			defer resp.Body.Close()
			n, err := io.Copy(io.Discard, resp.Body)
			if err != nil {
				return fmt.Errorf("GET %s: %w", url, err)
			}
			if resp.StatusCode != http.StatusOK || n != 32*layout.TileWidth {
				return fmt.Errorf("GET %s: %s, %d bytes", url, resp.Status, n)
			}
			return nil
		}
	}
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
