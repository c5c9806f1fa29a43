package log_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/provlog/provlog/internal/pgtest"
	"github.com/provlog/provlog/log"
	"github.com/provlog/provlog/storage/postgres"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

const replicaOrigin = "example.com/replica-test"

// faultyLeaser is the store's lease as log.Leaser, with a partition that
// fails every call (a release still fences the store's commits, as the
// store's own ReleaseLease does before it reaches the database).
type faultyLeaser struct {
	s         *postgres.Store
	partition atomic.Bool
}

var errPartition = errors.New("test: partitioned from the database")

func (f *faultyLeaser) AcquireLease(ctx context.Context, holder string, ttl time.Duration) (log.Lease, error) {
	if f.partition.Load() {
		return log.Lease{}, errPartition
	}
	l, err := f.s.AcquireLease(ctx, holder, ttl)
	if errors.Is(err, postgres.ErrLeaseHeld) {
		err = fmt.Errorf("%w: %w", log.ErrLeaseHeld, err)
	}
	return log.Lease{Holder: l.Holder, Epoch: l.Epoch, Deadline: l.Deadline}, err
}

func (f *faultyLeaser) RenewLease(ctx context.Context, ttl time.Duration) (log.Lease, error) {
	if f.partition.Load() {
		return log.Lease{}, errPartition
	}
	l, err := f.s.RenewLease(ctx, ttl)
	if errors.Is(err, postgres.ErrFenced) {
		err = fmt.Errorf("%w: %w", log.ErrLeaseLost, err)
	}
	return log.Lease{Holder: l.Holder, Epoch: l.Epoch, Deadline: l.Deadline}, err
}

func (f *faultyLeaser) ReleaseLease(ctx context.Context) error {
	if f.partition.Load() {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		f.s.ReleaseLease(cctx) // fences locally; the database is not reached
		return errPartition
	}
	return f.s.ReleaseLease(ctx)
}

func (f *faultyLeaser) ReadLease(ctx context.Context) (log.Lease, error) {
	if f.partition.Load() {
		return log.Lease{}, errPartition
	}
	l, err := f.s.ReadLease(ctx)
	return log.Lease{Holder: l.Holder, Epoch: l.Epoch, Expired: l.Expired}, err
}

// localForwarder forwards to replicas of this process by address.
type localForwarder struct {
	mu sync.Mutex
	to map[string]*log.Replica
}

type forwardedKey struct{}

func (f *localForwarder) AddBatch(ctx context.Context, leader string, entries [][]byte) ([]log.AddResult, error) {
	f.mu.Lock()
	r := f.to[leader]
	f.mu.Unlock()
	if r == nil {
		return nil, fmt.Errorf("%w: no replica at %s", log.ErrUnavailable, leader)
	}
	return r.AddBatch(context.WithValue(ctx, forwardedKey{}, true), entries)
}

func (f *localForwarder) Forwarded(ctx context.Context) bool { return ctx.Value(forwardedKey{}) != nil }

// replicaEnv is a database and the replicas of one log on it.
type replicaEnv struct {
	dsn    string
	signer note.Signer
	fw     *localForwarder
	ttl    time.Duration
}

func newReplicaEnv(t *testing.T, ttl time.Duration) *replicaEnv {
	t.Helper()
	dsn := pgtest.NewDB(t)
	skey, _, err := note.GenerateKey(rand.Reader, replicaOrigin)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return &replicaEnv{dsn: dsn, signer: signer, fw: &localForwarder{to: map[string]*log.Replica{}}, ttl: ttl}
}

// start starts replica name with signer (the env's if nil).
func (e *replicaEnv) start(t *testing.T, name string, signer note.Signer) (*log.Replica, *faultyLeaser, error) {
	t.Helper()
	s, err := postgres.Open(t.Context(), e.dsn, postgres.Options{StatementTimeout: e.ttl, ApplicationName: name})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if signer == nil {
		signer = e.signer
	}
	fl := &faultyLeaser{s: s}
	r, err := log.StartReplica(t.Context(), log.ReplicaConfig{
		Log:       log.Config{Origin: replicaOrigin, Signer: signer},
		Store:     s,
		Leaser:    fl,
		Forwarder: e.fw,
		Advertise: name,
		LeaseTTL:  e.ttl,
	})
	if err != nil {
		return nil, nil, err
	}
	t.Cleanup(func() { r.Close() })
	e.fw.mu.Lock()
	e.fw.to[name] = r
	e.fw.mu.Unlock()
	return r, fl, nil
}

func (e *replicaEnv) mustStart(t *testing.T, name string) (*log.Replica, *faultyLeaser) {
	t.Helper()
	r, fl, err := e.start(t, name, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r, fl
}

// waitFor polls cond until it holds or limit passes, and returns how long
// it took.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %v", what, limit)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

// acks records what adds acknowledged.
type acks struct {
	mu     sync.Mutex
	at     map[string]uint64
	failed int
	errs   []error
}

// load adds distinct entries through r from n goroutines until stop,
// recording acknowledgements; an error must be ErrUnavailable or
// ErrPushback.
func (a *acks) load(r *log.Replica, n int, tag string, stop <-chan struct{}, wg *sync.WaitGroup) {
	for w := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				e := fmt.Sprintf("%s writer %d entry %d", tag, w, k)
				res, err := r.Add(context.Background(), []byte(e))
				a.mu.Lock()
				switch {
				case err == nil:
					a.at[e] = res.Index
				case errors.Is(err, log.ErrUnavailable), errors.Is(err, log.ErrPushback):
					a.failed++
				default:
					a.errs = append(a.errs, err)
				}
				a.mu.Unlock()
				if err != nil {
					time.Sleep(time.Millisecond)
				}
			}
		}()
	}
}

// verify checks that r serves every acknowledged entry at its index and
// that the root recomputed from all the entries (sumdb/tlog) is the
// checkpoint's.
func (a *acks) verify(t *testing.T, r *log.Replica) {
	t.Helper()
	for _, err := range a.errs {
		t.Errorf("an add failed with %v, want ErrUnavailable or ErrPushback", err)
	}
	cp := r.Checkpoint()
	var entries [][]byte
	if cp.Size > 0 {
		if err := r.Entries(t.Context(), 0, cp.Size, func(_ uint64, e []byte) error {
			entries = append(entries, bytes.Clone(e))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	var hashes []tlog.Hash
	stored := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for j, x := range idx {
			out[j] = hashes[x]
		}
		return out, nil
	})
	for i, e := range entries {
		hs, err := tlog.StoredHashes(int64(i), e, stored)
		if err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, hs...)
	}
	if cp.Size > 0 {
		root, err := tlog.TreeHash(int64(cp.Size), stored)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(root[:], cp.Root) {
			t.Fatalf("root recomputed from %d entries %x, checkpoint %x", cp.Size, root, cp.Root)
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for e, idx := range a.at {
		if idx >= cp.Size || string(entries[idx]) != e {
			t.Fatalf("%q acknowledged at %d, missing from the log of size %d", e, idx, cp.Size)
		}
	}
}

// TestReplicaLeaseLostMidLoad takes the lease away from a leader under
// load: every add is either acknowledged and then in the log at its
// index, or fails with ErrUnavailable (never acknowledged and missing);
// the replica steps down, and leads again once the lease is free.
func TestReplicaLeaseLostMidLoad(t *testing.T) {
	e := newReplicaEnv(t, time.Second)
	a, _ := e.mustStart(t, "a")
	waitFor(t, 5*time.Second, "a leads", func() bool { return a.Status().Leading })
	epoch := a.Status().Epoch

	ac := &acks{at: map[string]uint64{}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	ac.load(a, 16, "before", stop, &wg)
	time.Sleep(300 * time.Millisecond)
	conn, err := pgx.Connect(t.Context(), e.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), `UPDATE provlog_lease SET holder = 'thief', epoch = epoch + 1, expires_at = now() + interval '1 second'`); err != nil {
		t.Fatal(err)
	}
	stolen := time.Now()
	took := waitFor(t, 3*time.Second, "a steps down", func() bool { return !a.Status().Leading })
	ac.mu.Lock()
	n0 := len(ac.at)
	ac.mu.Unlock()
	t.Logf("stepped down %v after the lease was taken; %d adds acknowledged so far", took, n0)
	if err := a.Healthy(); err == nil {
		// The thief is no replica: a forwards to it, and cannot reach it.
		if _, err := a.Add(t.Context(), []byte("while the thief holds it")); !errors.Is(err, log.ErrUnavailable) {
			t.Errorf("add while another holds the lease: %v, want ErrUnavailable", err)
		}
	}
	waitFor(t, 5*time.Second, "a leads again", func() bool { return a.Status().Leading && a.Status().Epoch > epoch+1 })
	t.Logf("leads again %v after the theft", time.Since(stolen))
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	if _, err := a.Add(t.Context(), []byte("after")); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d acknowledged, %d failed with ErrUnavailable or ErrPushback", len(ac.at), ac.failed)
	if ac.failed == 0 {
		t.Log("no add failed: none was queued when the lease was lost")
	}
	ac.verify(t, a)
}

// TestReplicaFollowerForwardsAndReads adds through a follower: the
// leader's answer comes back, and the follower at once serves the entry,
// its inclusion proof and a checkpoint covering it.
func TestReplicaFollowerForwardsAndReads(t *testing.T) {
	e := newReplicaEnv(t, time.Second)
	a, _ := e.mustStart(t, "a")
	waitFor(t, 5*time.Second, "a leads", func() bool { return a.Status().Leading })
	b, _ := e.mustStart(t, "b")
	waitFor(t, 5*time.Second, "b follows a", func() bool { return b.Status().Leader == "a" })
	if b.Status().Leading {
		t.Fatal("b leads too")
	}
	if _, err := a.Add(t.Context(), []byte("through the leader")); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		entry := []byte(fmt.Sprintf("through the follower %d", i))
		res, err := b.Add(t.Context(), entry)
		if err != nil {
			t.Fatalf("add through the follower: %v", err)
		}
		cp := b.Checkpoint()
		if cp.Size <= res.Index {
			t.Fatalf("follower serves size %d after acknowledging index %d", cp.Size, res.Index)
		}
		var got []byte
		if err := b.Entries(t.Context(), res.Index, 1, func(_ uint64, e []byte) error { got = bytes.Clone(e); return nil }); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, entry) {
			t.Fatalf("follower reads %q at %d, want %q", got, res.Index, entry)
		}
		p, err := b.InclusionProof(t.Context(), res.Index, cp.Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, res.Index, cp.Size, rfc6962.DefaultHasher.HashLeaf(entry), p, cp.Root); err != nil {
			t.Fatalf("follower's inclusion proof: %v", err)
		}
		if a.Checkpoint().Size < cp.Size {
			t.Fatalf("follower serves size %d beyond the leader's %d", cp.Size, a.Checkpoint().Size)
		}
	}
	// A duplicate through the follower: the leader's original index.
	res, err := b.Add(t.Context(), []byte("through the leader"))
	if err != nil || !res.Duplicate || res.Index != 0 {
		t.Fatalf("duplicate through the follower: %+v, %v; want index 0, duplicate", res, err)
	}
	// A write forwarded to a replica that does not lead is refused, not
	// forwarded again.
	if _, err := b.AddBatch(context.WithValue(t.Context(), forwardedKey{}, true), [][]byte{[]byte("x")}); !errors.Is(err, log.ErrUnavailable) {
		t.Fatalf("a forwarded write at a follower: %v, want ErrUnavailable", err)
	}
	if st := b.Status(); st.Epoch != a.Status().Epoch || st.Leading {
		t.Fatalf("follower status %+v, leader epoch %d", st, a.Status().Epoch)
	}
}

// TestReplicaTakeoverAfterExpiry cuts the leader off from the lease: it
// stops leading by its local deadline, and the follower takes over once
// the lease expires, continuing the tree with every acknowledged entry.
func TestReplicaTakeoverAfterExpiry(t *testing.T) {
	const ttl = time.Second
	e := newReplicaEnv(t, ttl)
	a, fa := e.mustStart(t, "a")
	waitFor(t, 5*time.Second, "a leads", func() bool { return a.Status().Leading })
	b, _ := e.mustStart(t, "b")
	waitFor(t, 5*time.Second, "b follows a", func() bool { return b.Status().Leader == "a" })

	ac := &acks{at: map[string]uint64{}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	ac.load(b, 4, "through b", stop, &wg)
	ac.load(a, 4, "through a", stop, &wg)
	time.Sleep(300 * time.Millisecond)
	fa.partition.Store(true)
	cut := time.Now()
	down := waitFor(t, 2*ttl, "a steps down", func() bool { return !a.Status().Leading })
	up := waitFor(t, 3*ttl, "b leads", func() bool { return b.Status().Leading })
	t.Logf("a stepped down %v after the cut; b leads %v after it", down, time.Since(cut))
	if limit := ttl + ttl/3 + 300*time.Millisecond; down+up > limit {
		t.Errorf("b took over %v after the cut, want within the TTL plus one renewal (and a poll): %v", down+up, limit)
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	fa.partition.Store(false)
	waitFor(t, 5*time.Second, "a follows b", func() bool { return a.Status().Leader == "b" })
	if _, err := a.Add(t.Context(), []byte("through a, following")); err != nil {
		t.Fatal(err)
	}
	ac.verify(t, b)
}

// TestReplicaRefusesOtherKey: a replica whose key has the log's name but
// is not the key that signed its checkpoints does not start.
func TestReplicaRefusesOtherKey(t *testing.T) {
	e := newReplicaEnv(t, time.Second)
	a, _ := e.mustStart(t, "a")
	waitFor(t, 5*time.Second, "a leads", func() bool { return a.Status().Leading })
	if _, err := a.Add(t.Context(), []byte("one")); err != nil {
		t.Fatal(err)
	}
	skey, _, _ := note.GenerateKey(rand.Reader, replicaOrigin)
	other, _ := note.NewSigner(skey)
	if _, _, err := e.start(t, "b", other); err == nil {
		t.Fatal("a replica with another key started")
	} else {
		t.Logf("refused: %v", err)
	}
}
