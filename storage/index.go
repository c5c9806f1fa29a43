package storage

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// IndexKey is one search-index key of an entry: the entry at Index is
// found under (Kind, Value). Tag is a byte the index keeps with it (the
// event type). Index keys are written in the same batch as the entry.
//
// Stored as 'x' || kind u8 || len(value) u16 || value || index u64 → tag.
type IndexKey struct {
	Kind  byte
	Value string
	Index uint64
	Tag   byte
}

// MaxIndexValue caps the length of an index value.
const MaxIndexValue = 1<<16 - 1

// Hit is one search result.
type Hit struct {
	Index uint64
	Tag   byte
}

func indexPrefix(kind byte, value string) []byte {
	p := make([]byte, 0, 4+len(value)+8)
	p = append(p, 'x', kind)
	p = binary.BigEndian.AppendUint16(p, uint16(len(value)))
	return append(p, value...)
}

func (k IndexKey) key() []byte {
	return binary.BigEndian.AppendUint64(indexPrefix(k.Kind, k.Value), k.Index)
}

func (k IndexKey) check() error {
	if len(k.Value) > MaxIndexValue {
		return fmt.Errorf("index value of %d bytes", len(k.Value))
	}
	return nil
}

// HasIndex reports whether the index holds exactly (kind, value, index)
// with the given tag.
func (s *Store) HasIndex(kind byte, value string, index uint64, tag byte) (bool, error) {
	v, err := s.get(IndexKey{Kind: kind, Value: value, Index: index}.key())
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return len(v) == 1 && v[0] == tag, nil
}

// SearchIndex returns up to limit hits under (kind, value) with index >=
// from, in index order, and whether more follow.
func (s *Store) SearchIndex(kind byte, value string, from uint64, limit int) ([]Hit, bool, error) {
	if len(value) > MaxIndexValue {
		return nil, false, nil
	}
	prefix := indexPrefix(kind, value)
	lower := binary.BigEndian.AppendUint64(append([]byte(nil), prefix...), from)
	upper := append(append([]byte(nil), prefix...), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, false, fmt.Errorf("searching index: %w", err)
	}
	defer it.Close()
	var hits []Hit
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if len(k) != len(prefix)+8 {
			return nil, false, fmt.Errorf("index key of %d bytes under a %d-byte prefix: %w", len(k), len(prefix), ErrCorrupt)
		}
		if len(hits) == limit {
			return hits, true, nil
		}
		v, err := it.ValueAndErr()
		if err != nil || len(v) != 1 {
			return nil, false, fmt.Errorf("reading index value: %w", errors.Join(err, ErrCorrupt))
		}
		hits = append(hits, Hit{Index: binary.BigEndian.Uint64(k[len(prefix):]), Tag: v[0]})
	}
	return hits, false, it.Error()
}
