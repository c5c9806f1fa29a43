package log

import (
	"bytes"
	"context"
	"fmt"

	"github.com/transparency-dev/formats/proof"
)

// SearchResult is one published event found by Search.
type SearchResult struct {
	Index uint64
	// Type is the event type ("build", "sign", "promote").
	Type string
	// Entry is the stored entry.
	Entry []byte
}

// MaxSearchResults caps the results of one Search call.
const MaxSearchResults = 1000

// Search returns the published entries indexed under (kind, value) with
// index >= from, in log order, at most limit (1..MaxSearchResults) of them,
// and the index to continue from if more follow (0 if none do).
func (l *Log) Search(ctx context.Context, kind byte, value string, from uint64, limit int) ([]SearchResult, uint64, error) {
	if limit < 1 || limit > MaxSearchResults {
		return nil, 0, fmt.Errorf("%w: limit %d, want 1..%d", ErrOutOfRange, limit, MaxSearchResults)
	}
	size := l.Checkpoint().Size
	hits, more, err := l.store.SearchIndex(kind, value, from, limit)
	if err != nil {
		return nil, 0, fmt.Errorf("searching the index: %w", err)
	}
	var out []SearchResult
	for _, h := range hits {
		if h.Index >= size { // committed but not yet published
			return out, 0, nil
		}
		r := SearchResult{Index: h.Index, Type: TagName(h.Tag)}
		err := l.store.Entries(h.Index, 1, func(_ uint64, e []byte) error {
			r.Entry = bytes.Clone(e)
			return nil
		})
		if err != nil {
			return nil, 0, l.readErr(fmt.Sprintf("entry %d", h.Index), err)
		}
		out = append(out, r)
	}
	if !more {
		return out, 0, nil
	}
	return out, out[len(out)-1].Index + 1, nil
}

// ProofBundle returns a C2SP tlog-proof (c2sp.org/tlog-proof@v1) for entry
// index: the inclusion proof in the latest published checkpoint, that
// checkpoint, and the entry itself as the bundle's extra data, so that the
// bundle verifies offline with only the log's verifier key.
func (l *Log) ProofBundle(ctx context.Context, index uint64) ([]byte, error) {
	cp := l.Checkpoint()
	hashes, err := l.InclusionProof(ctx, index, cp.Size)
	if err != nil {
		return nil, err
	}
	p := proof.TLogProof{Index: index, Checkpoint: cp.Note, Hashes: make([][32]byte, len(hashes))}
	for i, h := range hashes {
		p.Hashes[i] = [32]byte(h)
	}
	err = l.store.Entries(index, 1, func(_ uint64, e []byte) error {
		p.ExtraData = bytes.Clone(e)
		return nil
	})
	if err != nil {
		return nil, l.readErr(fmt.Sprintf("entry %d", index), err)
	}
	return p.Marshal(), nil
}
