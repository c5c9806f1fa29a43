package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/provlog/provlog/internal/pgtest"
	"github.com/provlog/provlog/storage"
	"github.com/provlog/provlog/storage/storagetest"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/tlog"
)

// committed is one round a sequencer saw commit.
type committed struct {
	size   uint64
	root   []byte
	epoch  int64
	holder string
}

// sequencers is what the sequencers of TestThreeSequencersNeverFork
// report, guarded by mu.
type sequencers struct {
	mu          sync.Mutex
	commits     []committed
	epochs      []int64 // of every acquisition
	fenced      int     // rounds refused with ErrFenced
	unknown     int     // rounds failed otherwise (outcome unknown)
	acquisition int
}

// TestThreeSequencersNeverFork runs three sequencers on one database, each
// with its own connection pool and its own in-memory compact range, a
// 300ms lease, and random stalls inside their rounds' transactions and
// between preparing and committing a round, often past the lease: each
// renews its lease when it is about to run out, takes it over when it is
// free, and carries on after a stall as if it still led. Afterwards the
// tree recomputed from the entry rows with sumdb/tlog has, at every size
// any sequencer committed, the root that sequencer computed; no size was
// committed twice; epochs never go backwards along the tree; and no two
// acquisitions got the same epoch.
func TestThreeSequencersNeverFork(t *testing.T) {
	dsn := pgtest.NewDB(t)
	const ttl = 300 * time.Millisecond
	var rep sequencers
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	minEnd := time.Now().Add(3 * time.Second)
	// enough reports whether the run has shown what it is for: takeovers
	// and rounds the guards refused. It runs at least 3 seconds and at most 60.
	enough := func() bool {
		rep.mu.Lock()
		defer rep.mu.Unlock()
		return time.Now().After(minEnd) && rep.acquisition >= 4 && rep.fenced >= 3 && len(rep.commits) >= 50
	}
	var wg sync.WaitGroup
	for i := range 3 {
		s := open(t, dsn, Options{StatementTimeout: ttl + ttl/3, ApplicationName: fmt.Sprintf("seq%d", i), MaxConns: 4})
		rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(i)))
		var rmu sync.Mutex // rng is used by the hook and the loop
		stall := func(ctx context.Context, p float64, max time.Duration) {
			rmu.Lock()
			d := time.Duration(0)
			if rng.Float64() < p {
				d = time.Duration(rng.Int64N(int64(max)))
			}
			rmu.Unlock()
			select {
			case <-ctx.Done():
			case <-time.After(d):
			}
		}
		h := hookFunc(func(ctx context.Context, step string, _ pgx.Tx) error {
			if step != "committed" && step != "lookup" {
				stall(ctx, 0.03, 2*ttl)
			}
			return nil
		})
		s.hook.Store(&h)
		wg.Go(func() {
			runSequencer(ctx, t, s, fmt.Sprintf("seq%d:7400", i), ttl, &rep, stall, enough)
		})
	}
	wg.Wait()
	if ctx.Err() != nil && !enough() {
		// Not Fatal: the tree is verified all the same.
		t.Errorf("the run did not reach enough takeovers and refusals in 60s: %d acquisitions, %d fenced, %d unknown, %d commits",
			rep.acquisition, rep.fenced, rep.unknown, len(rep.commits))
	}
	t.Logf("%d commits, %d acquisitions, %d rounds fenced, %d of unknown outcome", len(rep.commits), rep.acquisition, rep.fenced, rep.unknown)

	// Verify with independent code: every entry row, hashed by sumdb/tlog.
	s := open(t, dsn, Options{})
	st, err := s.ReadState()
	if err != nil {
		t.Fatal(err)
	}
	var hashes storagetest.HashStore
	err = s.Entries(0, st.Size, func(i uint64, e []byte) error {
		hs, err := tlog.StoredHashes(int64(i), e, hashes)
		hashes = append(hashes, hs...)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Entries(st.Size, 1, func(uint64, []byte) error { return nil }); !errors.Is(err, storage.ErrCorrupt) {
		t.Errorf("an entry beyond the tree size %d (%v)", st.Size, err)
	}
	rootAt := func(n uint64) []byte {
		h, err := tlog.TreeHash(int64(n), hashes)
		if err != nil {
			t.Fatal(err)
		}
		return h[:]
	}
	// The stored state: its checkpoint names the root at its size.
	if want := fmt.Sprintf("%d %x ", st.Size, rootAt(st.Size)); !bytes.HasPrefix(st.Checkpoint, []byte(want)) {
		t.Errorf("stored checkpoint %q, want it to begin %q", st.Checkpoint, want)
	}
	slices.SortFunc(rep.commits, func(a, b committed) int { return int(a.size) - int(b.size) })
	for i, c := range rep.commits {
		if c.size > st.Size {
			t.Fatalf("%s committed size %d beyond the stored %d", c.holder, c.size, st.Size)
		}
		if !bytes.Equal(c.root, rootAt(c.size)) {
			t.Errorf("fork: %s (epoch %d) committed root %x at size %d; the entry rows give %x", c.holder, c.epoch, c.root, c.size, rootAt(c.size))
		}
		if i > 0 {
			p := rep.commits[i-1]
			if p.size == c.size {
				t.Errorf("size %d committed twice: by %s (epoch %d) and %s (epoch %d)", c.size, p.holder, p.epoch, c.holder, c.epoch)
			}
			if c.epoch < p.epoch {
				t.Errorf("epoch went back from %d (%s, size %d) to %d (%s, size %d)", p.epoch, p.holder, p.size, c.epoch, c.holder, c.size)
			}
		}
	}
	slices.Sort(rep.epochs)
	if len(slices.Compact(slices.Clone(rep.epochs))) != len(rep.epochs) {
		t.Errorf("two acquisitions got the same epoch: %v", rep.epochs)
	}
}

// runSequencer is one sequencer of TestThreeSequencersNeverFork, until
// done reports true or ctx ends.
func runSequencer(ctx context.Context, t *testing.T, s *Store, name string, ttl time.Duration, rep *sequencers,
	stall func(context.Context, float64, time.Duration), done func() bool) {
	rf := compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	var cr *compact.Range // nil while not leading
	var lease Lease
	n := 0
	for ctx.Err() == nil && !done() {
		if cr == nil {
			l, err := s.AcquireLease(ctx, name, ttl)
			if errors.Is(err, ErrLeaseHeld) || err != nil && ctx.Err() == nil {
				stall(ctx, 1, 50*time.Millisecond)
				continue
			} else if err != nil {
				return
			}
			st, err := s.ReadState()
			if err != nil {
				continue // the lease stays ours until it expires; try again
			}
			if cr, err = rf.NewRange(0, st.Size, st.Range); err != nil {
				t.Errorf("%s: the stored compact range of size %d: %v", name, st.Size, err)
				return
			}
			lease = l
			rep.mu.Lock()
			rep.acquisition++
			rep.epochs = append(rep.epochs, l.Epoch)
			rep.mu.Unlock()
		}
		// Prepare a round on a copy of the range.
		next, err := rf.NewRange(0, cr.End(), cr.Hashes())
		if err != nil {
			t.Error(err)
			return
		}
		r := &storage.Round{Start: cr.End()}
		for range 1 + n%17 {
			e := fmt.Appendf(nil, "%s epoch %d entry %d", name, lease.Epoch, n)
			n++
			h := rfc6962.DefaultHasher.HashLeaf(e)
			r.Entries, r.LeafHashes = append(r.Entries, e), append(r.LeafHashes, h)
			if err := next.Append(h, nil); err != nil {
				t.Error(err)
				return
			}
		}
		root, err := next.GetRootHash(nil)
		if err != nil {
			t.Error(err)
			return
		}
		r.State = storage.State{Size: next.End(), Range: next.Hashes(),
			Checkpoint: fmt.Appendf(nil, "%d %x %s epoch %d", next.End(), root, name, lease.Epoch)}
		if time.Until(lease.Deadline) < ttl/2 {
			l, err := s.RenewLease(ctx, ttl)
			if err != nil {
				cr = nil // lost, or unknown: take it again
				continue
			}
			lease = l
		}
		// A stall between the renewal and the commit: past the lease, the
		// sequencer commits believing it still leads.
		stall(ctx, 0.15, 3*ttl)
		err = s.Commit(r)
		rep.mu.Lock()
		switch {
		case err == nil:
			rep.commits = append(rep.commits, committed{size: next.End(), root: root, epoch: lease.Epoch, holder: name})
			cr = next
		case errors.Is(err, ErrFenced):
			rep.fenced++
			cr = nil
		default:
			// Timed out or its session killed (idle in transaction past
			// the timeout): the round may have committed; read the state
			// again before going on.
			rep.unknown++
			cr = nil
		}
		rep.mu.Unlock()
	}
}
