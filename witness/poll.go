package witness

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/transparency-dev/tessera/client"
)

// Run polls every log configured with a URL, every Config.PollInterval,
// until ctx is done; then it returns nil. Poll failures are logged and
// counted, not returned.
func (w *Witness) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, l := range w.logs {
		if l.URL == "" {
			continue
		}
		wg.Go(func() { w.pollLoop(ctx, l) })
	}
	wg.Wait()
	return nil
}

func (w *Witness) pollLoop(ctx context.Context, l LogConfig) {
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		if _, err := w.Poll(ctx, l.Origin); err != nil && ctx.Err() == nil {
			w.logger.WarnContext(ctx, "polling log failed", "origin", l.Origin, "url", l.URL, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Poll fetches the checkpoint of the log origin from its tlog-tiles URL
// and, if it is larger than the cosigned one, builds a consistency proof
// from the log's tiles, verifies it and cosigns the checkpoint through
// AddCheckpoint (same checks, same compare-and-swap). It returns the
// cosignature lines, or nil if the checkpoint is unchanged.
//
// A log-signed checkpoint smaller than the cosigned one is refused as
// KindRollback evidence; one of the same size with another root, or one
// whose tiles do not prove it consistent, as the evidence AddCheckpoint
// stores. Errors are as AddCheckpoint's, or fetch errors.
func (w *Witness) Poll(ctx context.Context, origin string) (cosig []byte, err error) {
	result := "error"
	defer func() {
		switch {
		case errors.Is(err, ErrInconsistent):
			result = "inconsistent"
		case err == nil && cosig == nil:
			result = "unchanged"
		case err == nil:
			result = "cosigned"
		}
		w.metrics.polls.WithLabelValues(origin, result).Inc()
	}()
	l, ok := w.logs[origin]
	if !ok || l.URL == "" {
		return nil, fmt.Errorf("%w: %q is not a polled log", ErrUnknownLog, origin)
	}
	u, err := url.Parse(l.URL)
	if err != nil {
		return nil, fmt.Errorf("log %q URL: %w", origin, err)
	}
	f, err := client.NewHTTPFetcher(u, w.http)
	if err != nil {
		return nil, fmt.Errorf("log %q: %w", origin, err)
	}
	raw, err := f.ReadCheckpoint(ctx)
	if err != nil {
		return nil, fmt.Errorf("fetching checkpoint of %q: %w", origin, err)
	}
	cp, _, err := openCheckpoint(raw, w.lookup)
	if err != nil {
		return nil, fmt.Errorf("checkpoint served by %s: %w", l.URL, err)
	}
	if cp.Origin != origin {
		return nil, fmt.Errorf("%w: %s served a checkpoint for %q", ErrUnknownLog, l.URL, cp.Origin)
	}
	rec, _, err := w.state.Latest(ctx, origin)
	if err != nil {
		return nil, err
	}
	req := &AddCheckpointRequest{OldSize: rec.Size, Checkpoint: raw}
	switch {
	case cp.Size < rec.Size:
		return nil, w.fork(ctx, KindRollback, rec, req, fmt.Errorf("log served size %d after the witness cosigned size %d", cp.Size, rec.Size))
	case cp.Size == rec.Size && cp.Hash == rec.Hash:
		return nil, nil
	case cp.Size > rec.Size && rec.Size > 0:
		pb, err := client.NewProofBuilder(ctx, cp.Size, f.ReadTile)
		if err != nil {
			return nil, fmt.Errorf("log %q: %w", origin, err)
		}
		if req.Proof, err = pb.ConsistencyProof(ctx, rec.Size, cp.Size); err != nil {
			return nil, fmt.Errorf("building consistency proof %d→%d from the tiles of %q: %w", rec.Size, cp.Size, origin, err)
		}
	}
	return w.AddCheckpoint(ctx, req)
}
