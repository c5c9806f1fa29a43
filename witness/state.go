package witness

// The witness state lives in its own database, a storage.KV (package
// storage owns every use of Pebble). Key schema:
//
//	"c/" + hex sha256(origin)        → JSON Record: the latest cosigned checkpoint of the log
//	"e/" + hex sha256(origin) + "/" + Evidence.ID() → JSON Evidence
//
// Every write is synced before it returns: once a write returns, it
// survives a crash or kill -9.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/provlog/provlog/storage"
)

// Record is the witness's record of one log: the latest checkpoint it
// cosigned.
type Record struct {
	Origin string `json:"origin"`
	// Size and Hash are the cosigned tree head.
	Size uint64   `json:"size"`
	Hash [32]byte `json:"hash"`
	// Checkpoint is the cosigned checkpoint as served to monitors: the
	// canonical text, the log's verified signatures and the witness's
	// cosignature.
	Checkpoint []byte `json:"checkpoint"`
}

// State is the witness's durable state. Implementations must be safe for
// concurrent use.
type State interface {
	// Latest returns the record of origin, or ok false if the witness
	// never cosigned a checkpoint for it.
	Latest(ctx context.Context, origin string) (rec Record, ok bool, err error)
	// CompareAndSwap replaces the record of next.Origin with next if the
	// stored record is still old (nil: no record), and returns
	// ErrStateChanged otherwise. The check and the write are atomic with
	// respect to other calls, and next is durable when it returns nil.
	CompareAndSwap(ctx context.Context, old *Record, next Record) error
	// AddEvidence stores e durably and returns added true, unless evidence
	// with its ID is stored already (added false, nil error) or e.Origin
	// already has limit records (ErrEvidenceFull): the first limit records
	// are kept, never replaced. limit <= 0 means no limit.
	AddEvidence(ctx context.Context, e Evidence, limit int) (added bool, err error)
	// Evidence returns up to limit stored records for origin, or for every
	// log if origin is "", in a fixed order, starting after the record
	// whose cursor (EvidenceCursor) is after ("" for the first). next is
	// the cursor to pass for the following page, or "" if there are no
	// more records. limit must be positive.
	Evidence(ctx context.Context, origin, after string, limit int) (ev []Evidence, next string, err error)
}

// EvidenceCursor names the position of e in the order of State.Evidence:
// the lowercase hex hash of its origin, "/", and its ID.
func EvidenceCursor(e *Evidence) string { return OriginHash(e.Origin) + "/" + e.ID() }

const stateSchemaVersion = 1

// PebbleState is the State kept in a storage.KV (a Pebble database).
type PebbleState struct {
	kv *storage.KV
	// casMu serializes CompareAndSwap's read-compare-write. Cosignatures
	// are rare, so one mutex for all logs costs nothing measurable.
	casMu sync.Mutex
	// evMu serializes AddEvidence's count-check-write, so that the limit
	// holds under concurrent calls.
	evMu sync.Mutex

	closeOnce sync.Once
	closeErr  error // set by closeOnce
}

// StateOptions configure OpenState.
type StateOptions struct {
	// FS is the file system Pebble uses. If nil, the OS file system;
	// tests may pass vfs.NewMem().
	FS vfs.FS
	// Logger receives Pebble's log lines (its info lines at debug level).
	// If nil, slog.Default().
	Logger *slog.Logger
}

// OpenState opens or creates the witness state database in dir.
func OpenState(dir string, o StateOptions) (*PebbleState, error) {
	kv, err := storage.OpenKV(dir, stateSchemaVersion, storage.Options{FS: o.FS, Logger: o.Logger})
	if err != nil {
		return nil, fmt.Errorf("opening witness state: %w", err)
	}
	return &PebbleState{kv: kv}, nil
}

// Close closes the database. Closing again is a no-op.
func (s *PebbleState) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.kv.Close() })
	return s.closeErr
}

func recordKey(origin string) []byte { return []byte("c/" + OriginHash(origin)) }

func evidencePrefix(origin string) []byte {
	if origin == "" {
		return []byte("e/")
	}
	return []byte("e/" + OriginHash(origin) + "/")
}

// Latest implements State.
func (s *PebbleState) Latest(_ context.Context, origin string) (Record, bool, error) {
	v, err := s.kv.Get(recordKey(origin))
	if errors.Is(err, storage.ErrNotFound) {
		return Record{}, false, nil
	}
	if err != nil {
		return Record{}, false, fmt.Errorf("reading record of %q: %w", origin, err)
	}
	var rec Record
	if err := json.Unmarshal(v, &rec); err != nil {
		return Record{}, false, fmt.Errorf("decoding record of %q: %w", origin, err)
	}
	if rec.Origin != origin {
		return Record{}, false, fmt.Errorf("record under %q is for origin %q", origin, rec.Origin)
	}
	return rec, true, nil
}

// CompareAndSwap implements State.
func (s *PebbleState) CompareAndSwap(ctx context.Context, old *Record, next Record) error {
	val, err := json.Marshal(next)
	if err != nil {
		return fmt.Errorf("encoding record: %w", err)
	}
	s.casMu.Lock()
	defer s.casMu.Unlock()
	cur, ok, err := s.Latest(ctx, next.Origin)
	if err != nil {
		return err
	}
	switch {
	case old == nil && ok,
		old != nil && !ok,
		old != nil && (cur.Size != old.Size || cur.Hash != old.Hash || !bytes.Equal(cur.Checkpoint, old.Checkpoint)):
		return ErrStateChanged
	}
	if err := s.kv.Set(recordKey(next.Origin), val); err != nil {
		return fmt.Errorf("writing record of %q: %w", next.Origin, err)
	}
	return nil
}

// AddEvidence implements State. It counts the log's records with a scan:
// at most limit keys, and evidence is rare.
func (s *PebbleState) AddEvidence(_ context.Context, e Evidence, limit int) (bool, error) {
	key := append(evidencePrefix(e.Origin), e.ID()...)
	val, err := json.Marshal(e)
	if err != nil {
		return false, fmt.Errorf("encoding evidence: %w", err)
	}
	s.evMu.Lock()
	defer s.evMu.Unlock()
	if _, err := s.kv.Get(key); err == nil {
		return false, nil
	} else if !errors.Is(err, storage.ErrNotFound) {
		return false, fmt.Errorf("reading evidence for %q: %w", e.Origin, err)
	}
	if limit > 0 {
		n := 0
		err := s.kv.Scan(evidencePrefix(e.Origin), func(_, _ []byte) error {
			if n++; n >= limit {
				return ErrEvidenceFull
			}
			return nil
		})
		if err != nil {
			return false, fmt.Errorf("evidence for %q: %w", e.Origin, err)
		}
	}
	if err := s.kv.Set(key, val); err != nil {
		return false, fmt.Errorf("writing evidence for %q: %w", e.Origin, err)
	}
	return true, nil
}

// errPageFull stops an Evidence scan once the page is full.
var errPageFull = errors.New("page full")

// Evidence implements State. The order is the key order: by origin hash,
// then by ID; the cursor is the key without its "e/" prefix.
func (s *PebbleState) Evidence(_ context.Context, origin, after string, limit int) ([]Evidence, string, error) {
	if limit <= 0 {
		return nil, "", fmt.Errorf("evidence page limit %d, want > 0", limit)
	}
	var out []Evidence
	last, next := "", ""
	err := s.kv.Scan(evidencePrefix(origin), func(k, v []byte) error {
		cursor := string(k[len("e/"):])
		if cursor <= after {
			return nil
		}
		if len(out) == limit {
			next = last
			return errPageFull
		}
		last = cursor
		var e Evidence
		if err := json.Unmarshal(v, &e); err != nil {
			return fmt.Errorf("decoding evidence %q: %w", k, err)
		}
		out = append(out, e)
		return nil
	})
	if err != nil && !errors.Is(err, errPageFull) {
		return nil, "", fmt.Errorf("listing evidence: %w", err)
	}
	return out, next, nil
}
