package log

import (
	"bytes"
	"context"
	"fmt"
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
