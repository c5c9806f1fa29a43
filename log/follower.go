package log

import (
	"bytes"
	"context"
	"fmt"

	"github.com/provlog/provlog/storage"
)

// A reader is a Log that serves the reads of a log another process
// sequences (a follower replica, see Replica): OpenReader opens it over
// the same store, and Refresh brings it up to what the store holds. It
// shares every read of Log (proofs, tiles, entry bundles, search, proof
// bundles, decoded signers) and their caches of immutable tiles and
// bundles; it never writes the store, signs nothing it serves, and
// refuses Add and Submit with ErrUnavailable.
//
// What it serves comes from the store's tree state only: the checkpoint
// stored with the state (checked, as at Open, to be the one this log's
// key signs over the stored compact range), and, for a witnessed log
// (Config.Witness set, used only as that flag), the published checkpoint
// the leader stored. Both only grow: a store that goes back is an error,
// and nothing it served is withdrawn.

// OpenReader opens the log held by store for reading, as Open does,
// without starting a sequencer or witnessing. With AttestationAdmission,
// it reads the trust history of its own (for Signers), on a copy of
// cfg.Admission, so that it never touches a sequencer's.
func OpenReader(ctx context.Context, cfg Config, store Storage) (*Log, error) {
	if a, ok := cfg.Admission.(*AttestationAdmission); ok {
		cfg.Admission = &AttestationAdmission{Keyring: a.Keyring, Index: a.Index, Logger: a.Logger}
	}
	l, err := open(ctx, cfg, store, true)
	if err != nil {
		return nil, err
	}
	if err := l.refreshTrust(ctx, 0); err != nil {
		return nil, err
	}
	return l, nil
}

// Refresh reads the store's tree state and serves it, if it has grown;
// it returns whether it grew. Only for a Log opened by OpenReader. Calls
// are serialized.
func (l *Log) Refresh(ctx context.Context) (bool, error) {
	l.refreshMu.Lock()
	defer l.refreshMu.Unlock()
	st, err := l.store.ReadState()
	if err != nil {
		return false, fmt.Errorf("%w: reading the tree state: %w", ErrUnavailable, err)
	}
	cur := l.latest.Load()
	if st.Size < cur.Size {
		return false, fmt.Errorf("the store's tree of size %d is behind the tree of size %d already served: %w", st.Size, cur.Size, storage.ErrCorrupt)
	}
	grew := st.Size > cur.Size
	if grew {
		rng, err := rangeFactory.NewRange(0, st.Size, st.Range)
		if err != nil {
			return false, fmt.Errorf("tree state of size %d: %w", st.Size, err)
		}
		root, err := rng.GetRootHash(nil)
		if err != nil {
			return false, fmt.Errorf("computing the root of size %d: %w", st.Size, err)
		}
		if err := l.checkStoredCheckpoint(st.Checkpoint, st.Size, root); err != nil {
			return false, err
		}
		l.latest.Store(&Checkpoint{Size: st.Size, Root: root, Note: st.Checkpoint})
	}
	if err := l.readPublished(st); err != nil {
		return grew, err
	}
	if grew {
		if err := l.refreshTrust(ctx, cur.Size); err != nil {
			return grew, err
		}
	}
	return grew, nil
}

// readPublished serves a reader's published checkpoint: the latest one,
// unless the log is witnessed and the leader stored a published one.
func (l *Log) readPublished(st storage.State) error {
	latest := l.latest.Load()
	if l.cfg.Witness == nil || st.Published == nil {
		l.publish(latest)
		return nil
	}
	if cur := l.published.Load(); cur != nil && bytes.Equal(cur.Note, st.Published) {
		return nil
	}
	return l.publishStored(st.Published)
}

// refreshTrust rebuilds a reader's trust history if the log has trust
// events from index from on (or has none yet): Signers then reads the
// keyrings that the leader's sequencer applied.
func (l *Log) refreshTrust(ctx context.Context, from uint64) error {
	a, ok := l.cfg.Admission.(*AttestationAdmission)
	if !ok {
		return nil
	}
	if a.History() != nil {
		hits, _, err := a.Index.SearchIndex(IndexTrust, TrustIndexValue, from, 1)
		if err != nil {
			return fmt.Errorf("reading the trust index: %w", err)
		}
		if len(hits) == 0 {
			return nil
		}
	}
	h, err := a.replay(ctx, l.cfg.Signer)
	if err != nil {
		return err
	}
	a.history.Store(h)
	return nil
}
