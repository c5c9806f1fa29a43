package witness

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
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

// pollLoop polls one log until ctx is done. It logs once per change of
// state: a WARN when polls start failing (with the reason), DEBUG while
// they go on failing, and an INFO when they succeed again. Fork evidence
// is logged where it is stored.
func (w *Witness) pollLoop(ctx context.Context, l LogConfig) {
	t := time.NewTicker(w.interval)
	defer t.Stop()
	failures := 0
	for {
		_, err := w.Poll(ctx, l.Origin)
		switch {
		case ctx.Err() != nil:
		case err != nil && failures == 0:
			w.logger.WarnContext(ctx, "polling log failed", "origin", l.Origin, "url", l.URL, "err", err)
			failures++
		case err != nil:
			w.logger.DebugContext(ctx, "polling log still failing", "origin", l.Origin, "url", l.URL, "failures", failures+1, "err", err)
			failures++
		case failures > 0:
			w.logger.InfoContext(ctx, "polling log recovered", "origin", l.Origin, "url", l.URL, "failures", failures)
			failures = 0
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
// cosignature lines, or nil if there is nothing to cosign.
//
// The size served is exported as provlog_witness_polled_tree_size. A
// checkpoint smaller than the cosigned one is stale, not a fork, if the
// log's tiles prove it consistent with the cosigned one (a consistency
// proof from the smaller to the cosigned size): the poll counts as
// "stale" and returns nil, nil. (provlogd, for one, serves a published
// checkpoint behind the ones it pushes to witnesses.) It is KindRollback
// evidence if that proof does not verify, and an error if the tiles do
// not give one. A larger checkpoint whose proof from the tiles does not
// verify is KindInconsistentProof evidence; one of the same size with
// another root, KindSameSizeDifferentRoot. Errors are as AddCheckpoint's,
// or fetch errors.
func (w *Witness) Poll(ctx context.Context, origin string) (cosig []byte, err error) {
	result := "error"
	stale := false
	defer func() {
		switch {
		case errors.Is(err, ErrInconsistent):
			result = "inconsistent"
		case err == nil && stale:
			result = "stale"
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
	cp, logSigs, err := openCheckpoint(raw, w.lookup)
	if err != nil {
		return nil, fmt.Errorf("checkpoint served by %s: %w", l.URL, err)
	}
	if cp.Origin != origin {
		return nil, fmt.Errorf("%w: %s served a checkpoint for %q", ErrUnknownLog, l.URL, cp.Origin)
	}
	w.metrics.polledSize.WithLabelValues(origin).Set(float64(cp.Size))
	rec, _, err := w.state.Latest(ctx, origin)
	if err != nil {
		return nil, err
	}
	logged := slices.Concat(cp.Marshal(), []byte("\n"), formatSignatures(logSigs))
	req := &AddCheckpointRequest{OldSize: rec.Size, Checkpoint: raw}
	switch {
	case cp.Size < rec.Size:
		stale = true
		return nil, w.checkStale(ctx, f, rec, cp, logged)
	case cp.Size == rec.Size && cp.Hash == rec.Hash:
		return nil, nil
	case cp.Size > rec.Size && rec.Size > 0:
		if req.Proof, err = tileProof(ctx, f, rec.Size, cp.Size); err != nil {
			return nil, fmt.Errorf("log %q: %w", origin, err)
		}
		err := proof.VerifyConsistency(rfc6962.DefaultHasher, rec.Size, cp.Size, req.Proof, rec.Hash[:], cp.Hash[:])
		var mismatch proof.RootMismatchError
		if errors.As(err, &mismatch) {
			return nil, w.fork(ctx, w.evidence(KindInconsistentProof, rec, logged, rec.Size, req.Proof,
				fmt.Sprintf("the consistency proof %d→%d from the log's tiles does not verify: %s", rec.Size, cp.Size, mismatchDetail(err))))
		}
	}
	return w.AddCheckpoint(ctx, req)
}

// checkStale checks that cp, smaller than the cosigned rec, is consistent
// with it by a proof from the log's tiles, and stores KindRollback evidence
// if it is not.
func (w *Witness) checkStale(ctx context.Context, f *client.HTTPFetcher, rec Record, cp Checkpoint, logged []byte) error {
	if cp.Size == 0 {
		if cp.Hash != emptyRoot {
			return fmt.Errorf("%w: checkpoint of size 0 does not have the empty tree's root", ErrInvalidProof)
		}
		return nil
	}
	p, err := tileProof(ctx, f, cp.Size, rec.Size)
	if err != nil {
		return fmt.Errorf("log %q serves size %d, below the cosigned %d: %w", rec.Origin, cp.Size, rec.Size, err)
	}
	err = proof.VerifyConsistency(rfc6962.DefaultHasher, cp.Size, rec.Size, p, cp.Hash[:], rec.Hash[:])
	var mismatch proof.RootMismatchError
	switch {
	case err == nil:
		w.logger.DebugContext(ctx, "log serves a stale checkpoint, consistent with the cosigned one", "origin", rec.Origin, "size", cp.Size, "cosigned_size", rec.Size)
		return nil
	case errors.As(err, &mismatch):
		return w.fork(ctx, w.evidence(KindRollback, rec, logged, cp.Size, p,
			fmt.Sprintf("the log served size %d after the witness cosigned size %d, and the consistency proof between them from the log's tiles does not verify: %s", cp.Size, rec.Size, mismatchDetail(err))))
	default:
		return fmt.Errorf("log %q: consistency proof %d→%d from the tiles: %w", rec.Origin, cp.Size, rec.Size, err)
	}
}

// tileProof builds the consistency proof from size from to size to from
// the log's tiles.
func tileProof(ctx context.Context, f *client.HTTPFetcher, from, to uint64) ([][]byte, error) {
	pb, err := client.NewProofBuilder(ctx, to, f.ReadTile)
	if err != nil {
		return nil, fmt.Errorf("reading the tiles at size %d: %w", to, err)
	}
	p, err := pb.ConsistencyProof(ctx, from, to)
	if err != nil {
		return nil, fmt.Errorf("building consistency proof %d→%d from the tiles: %w", from, to, err)
	}
	return p, nil
}
