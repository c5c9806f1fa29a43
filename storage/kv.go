package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"

	"github.com/cockroachdb/pebble/v2"
)

// KV is a small durable key-value store in its own Pebble database, for
// state that is not a log's (the witness keeps its cosigned checkpoints and
// evidence in one). Every write is synced before it returns. Its methods are
// safe for concurrent use; callers serialize read-modify-write themselves.
//
// Key schema: the caller's keys, beside one key of KV's own, "\x00version"
// (the caller's schema version, uint32 big-endian).
type KV struct {
	db *pebble.DB
}

var kvVersionKey = []byte("\x00version")

// OpenKV opens or creates a KV in dir whose data has the given schema
// version; it refuses data of another version. Options.CacheBytes is
// ignored (Pebble's default cache).
func OpenKV(dir string, version uint32, o Options) (*KV, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	opts := &pebble.Options{
		FS:                 o.FS,
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             pebbleLogger{o.Logger.With("component", "pebble")},
	}
	opts.EnsureDefaults()
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("opening pebble at %s: %w", dir, err)
	}
	kv := &KV{db: db}
	if err := kv.checkVersion(version); err != nil {
		db.Close()
		return nil, err
	}
	return kv, nil
}

func (kv *KV) checkVersion(version uint32) error {
	v, err := kv.Get(kvVersionKey)
	if errors.Is(err, ErrNotFound) {
		return kv.Set(kvVersionKey, binary.BigEndian.AppendUint32(nil, version))
	}
	if err != nil {
		return err
	}
	if len(v) != 4 || binary.BigEndian.Uint32(v) != version {
		return fmt.Errorf("schema version %x, want %d: %w", v, version, ErrCorrupt)
	}
	return nil
}

// Close closes the database.
func (kv *KV) Close() error { return kv.db.Close() }

// Get returns a copy of the value of key, or ErrNotFound.
func (kv *KV) Get(key []byte) ([]byte, error) {
	v, closer, err := kv.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("reading %q: %w", key, err)
	}
	defer closer.Close()
	return bytes.Clone(v), nil
}

// Set writes key durably: synced before it returns.
func (kv *KV) Set(key, value []byte) error {
	if _, err := pebbleWrite(func() error { return kv.db.Set(key, value, pebble.Sync) }); err != nil {
		return fmt.Errorf("writing %q: %w", key, err)
	}
	return nil
}

// Scan calls fn with every key starting with prefix (a non-empty prefix,
// not starting with 0x00), in key order; the slices are valid only during
// the call.
func (kv *KV) Scan(prefix []byte, fn func(key, value []byte) error) error {
	if len(prefix) == 0 || prefix[0] == 0 {
		return errors.New("KV.Scan: empty or reserved prefix")
	}
	upper := bytes.Clone(prefix)
	for i := len(upper) - 1; i >= 0; i-- { // the least key above the prefix
		if upper[i]++; upper[i] != 0 {
			upper = upper[:i+1]
			break
		}
	}
	it, err := kv.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("scanning %q: %w", prefix, err)
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return fmt.Errorf("scanning %q: %w", prefix, err)
		}
		if err := fn(it.Key(), v); err != nil {
			return err
		}
	}
	return it.Error()
}
