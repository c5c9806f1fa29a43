package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/provlog/provlog/internal/pgtest"
	"github.com/provlog/provlog/storage"
	"github.com/provlog/provlog/storage/storagetest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

var quiet = slog.New(slog.DiscardHandler)

// open opens a store on dsn, closed at the end of the test.
func open(t testing.TB, dsn string, o Options) *Store {
	t.Helper()
	if o.Logger == nil {
		o.Logger = quiet
	}
	s, err := Open(context.Background(), dsn, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// leader opens a store on dsn holding the lease as holder.
func leader(t testing.TB, dsn, holder string, ttl time.Duration) *Store {
	t.Helper()
	s := open(t, dsn, Options{ApplicationName: holder})
	if _, err := s.AcquireLease(context.Background(), holder, ttl); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSuite runs the storage suite on PostgreSQL, each test in a database
// of its own; every store the suite opens takes the lease.
func TestSuite(t *testing.T) {
	storagetest.Run(t, storagetest.Backend{
		New: func(t *testing.T) storagetest.Opener {
			dsn := pgtest.NewDB(t)
			return func(t *testing.T) storagetest.Store {
				t.Helper()
				return leader(t, dsn, "suite", time.Minute)
			}
		},
		Faults: faults(),
	})
}

// faults is PostgreSQL's fault table, injected in the transaction: a
// statement that fails inside it (division by zero), the session killed
// inside it (pg_terminate_backend of its own backend), or, after COMMIT
// succeeded, an error as a lost COMMIT reply would give.
func faults() []storagetest.Fault {
	failing := func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `SELECT 1/0`)
		if err == nil {
			err = errors.New("SELECT 1/0 succeeded")
		}
		return err
	}
	kill := func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `SELECT pg_terminate_backend(pg_backend_pid())`)
		if err == nil {
			err = errors.New("the session survived pg_terminate_backend")
		}
		return err
	}
	lost := func(context.Context, pgx.Tx) error { return errors.New("connection lost reading the COMMIT reply") }
	rows := []struct {
		name     string
		op       storagetest.Op
		step     string
		persists bool
		act      func(context.Context, pgx.Tx) error
	}{
		{"lookup fails", storagetest.OpLookup, "lookup", false, lost},
		{"lease read fails", storagetest.OpCommit, "lease", false, failing},
		{"session killed after the size CAS", storagetest.OpCommit, "entries", false, kill},
		{"leaf hash COPY fails", storagetest.OpCommit, "leaves", false, failing},
		{"tile writes fail", storagetest.OpCommit, "tiles", false, failing},
		{"session killed before COMMIT", storagetest.OpCommit, "commit", false, kill},
		{"COMMIT succeeded, reported failed", storagetest.OpCommit, "committed", true, lost},
	}
	var out []storagetest.Fault
	for _, r := range rows {
		out = append(out, storagetest.Fault{Name: r.name, Op: r.op, Persists: r.persists, Arm: func(t *testing.T, st storagetest.Store) {
			var fired atomic.Bool
			failAt(st.(*Store), r.step, func(ctx context.Context, tx pgx.Tx) error {
				if fired.Swap(true) {
					return nil
				}
				return r.act(ctx, tx)
			})
		}})
	}
	return out
}

// failAt sets s's hook to call fn at step.
func failAt(s *Store, step string, fn func(context.Context, pgx.Tx) error) {
	h := hookFunc(func(ctx context.Context, at string, tx pgx.Tx) error {
		if at != step {
			return nil
		}
		return fn(ctx, tx)
	})
	s.hook.Store(&h)
}

func TestSchemaVersionChecked(t *testing.T) {
	dsn := pgtest.NewDB(t)
	s := open(t, dsn, Options{})
	if _, err := s.pool.Exec(context.Background(), `UPDATE provlog_meta SET version = 9`); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), dsn, Options{Logger: quiet}); !errors.Is(err, storage.ErrCorrupt) {
		t.Errorf("Open of a version-9 database: %v, want ErrCorrupt", err)
	}
}

// TestOpenConcurrently: replicas opening a new database at once all
// succeed, and share one schema.
func TestOpenConcurrently(t *testing.T) {
	dsn := pgtest.NewDB(t)
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			s, err := Open(context.Background(), dsn, Options{Logger: quiet})
			if err == nil {
				s.Close()
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func TestOriginSetOnce(t *testing.T) {
	s := open(t, pgtest.NewDB(t), Options{})
	if err := s.SetOrigin("example.com/a"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetOrigin("example.com/a"); err != nil {
		t.Errorf("setting the same origin again: %v", err)
	}
	if err := s.SetOrigin("example.com/b"); err == nil {
		t.Error("SetOrigin changed the stored origin")
	}
	if o, err := s.Origin(); o != "example.com/a" || err != nil {
		t.Errorf("origin %q, %v", o, err)
	}
}

// TestLease: acquisitions, renewals and releases, with the epoch growing
// at every acquisition and the database's clock deciding expiry.
func TestLease(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.NewDB(t)
	a, b := open(t, dsn, Options{}), open(t, dsn, Options{})
	if l, err := a.ReadLease(ctx); err != nil || l.Holder != "" || l.Epoch != 0 || !l.Expired {
		t.Fatalf("new lease row %+v, %v", l, err)
	}
	if err := a.Commit(storagetest.Round(0, 1)); !errors.Is(err, ErrFenced) {
		t.Errorf("Commit without a lease: %v, want ErrFenced", err)
	}
	if err := a.SetPublished([]byte("x")); !errors.Is(err, ErrFenced) {
		t.Errorf("SetPublished without a lease: %v, want ErrFenced", err)
	}
	la, err := a.AcquireLease(ctx, "a:1", time.Minute)
	if err != nil || la.Epoch != 1 || la.Holder != "a:1" || time.Until(la.Deadline) <= 0 {
		t.Fatalf("AcquireLease = %+v, %v", la, err)
	}
	if _, err := b.AcquireLease(ctx, "b:1", time.Minute); !errors.Is(err, ErrLeaseHeld) {
		t.Errorf("AcquireLease of a held lease: %v, want ErrLeaseHeld", err)
	}
	// The same holder again (a restarted replica): a new epoch, and the
	// old incarnation is fenced.
	a2 := open(t, dsn, Options{})
	if l, err := a2.AcquireLease(ctx, "a:1", time.Minute); err != nil || l.Epoch != 2 {
		t.Fatalf("AcquireLease by the same holder = %+v, %v; want epoch 2", l, err)
	}
	if err := a.Commit(storagetest.Round(0, 1)); !errors.Is(err, ErrFenced) {
		t.Errorf("Commit of the earlier incarnation: %v, want ErrFenced", err)
	}
	if _, err := a.RenewLease(ctx, time.Minute); !errors.Is(err, ErrFenced) {
		t.Errorf("RenewLease of the earlier incarnation: %v, want ErrFenced", err)
	}
	if _, ok := a.Lease(); ok {
		t.Error("a store whose renewal was refused still holds a lease")
	}
	l, err := a2.RenewLease(ctx, time.Minute)
	if err != nil || l.Epoch != 2 {
		t.Fatalf("RenewLease = %+v, %v", l, err)
	}
	if err := a2.Commit(storagetest.Round(0, 1)); err != nil {
		t.Fatal(err)
	}
	if err := a2.ReleaseLease(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a2.Commit(storagetest.Round(1, 1)); !errors.Is(err, ErrFenced) {
		t.Errorf("Commit after ReleaseLease: %v, want ErrFenced", err)
	}
	lb, err := b.AcquireLease(ctx, "b:1", time.Minute)
	if err != nil || lb.Epoch != 3 {
		t.Fatalf("AcquireLease of a released lease = %+v, %v; want epoch 3", lb, err)
	}
	if got, err := b.ReadLease(ctx); err != nil || got.Holder != "b:1" || got.Epoch != 3 || got.Expired || !got.Expires.Equal(lb.Expires) {
		t.Errorf("ReadLease = %+v, %v; want %+v", got, err, lb)
	}
	if st, err := b.ReadState(); err != nil || st.Size != 1 {
		t.Errorf("the new leader reads size %d, %v; want 1", st.Size, err)
	}
}

// takeOver waits (bounded) for the lease to expire and takes it for s.
func takeOver(t *testing.T, s *Store, holder string, ttl time.Duration) Lease {
	t.Helper()
	l, err := takeOverErr(s, holder, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// checkSize checks the stored tree size and that no entry is stored at or
// beyond it.
func checkSize(t *testing.T, s *Store, want uint64) {
	t.Helper()
	st, err := s.ReadState()
	if err != nil || st.Size != want {
		t.Fatalf("stored size %d, %v; want %d", st.Size, err, want)
	}
	var n int
	if err := s.pool.QueryRow(context.Background(), `SELECT count(*) FROM provlog_entries WHERE idx >= $1`, int64(want)).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d entries stored at or beyond size %d (%v)", n, want, err)
	}
}

// TestDeposedLeaderFenced: a leader whose lease was taken over has its
// round refused, even when the round reaches the database after the new
// leader's and starts at the size the new leader left (so that the size
// CAS alone would let it through): the lease epoch fences it, and it
// writes nothing.
func TestDeposedLeaderFenced(t *testing.T) {
	dsn := pgtest.NewDB(t)
	old := leader(t, dsn, "old:1", 200*time.Millisecond)
	if err := old.Commit(storagetest.Round(0, 10)); err != nil {
		t.Fatal(err)
	}
	// The old leader prepares its next round, then stalls past its lease.
	stale := storagetest.Round(10, 5)
	next := open(t, dsn, Options{})
	nl := takeOver(t, next, "new:1", time.Minute)
	if ol, _ := old.Lease(); nl.Epoch <= ol.Epoch {
		t.Fatalf("new epoch %d, old %d", nl.Epoch, ol.Epoch)
	}
	st, err := next.ReadState()
	if err != nil || st.Size != 10 {
		t.Fatalf("the new leader reads size %d, %v", st.Size, err)
	}
	if err := next.Commit(storagetest.Round(10, 20)); err != nil {
		t.Fatal(err)
	}
	// Arriving after the new leader's round: refused by the size and the
	// lease.
	if err := old.Commit(stale); !errors.Is(err, ErrFenced) {
		t.Fatalf("the deposed leader's stale round: %v, want ErrFenced", err)
	}
	// A round at the current size, which the size CAS would take: refused
	// by the lease alone.
	atSize := storagetest.Round(30, 5)
	if err := old.Commit(atSize); !errors.Is(err, ErrFenced) {
		t.Fatalf("the deposed leader's round at the current size: %v, want ErrFenced", err)
	}
	if err := old.SetPublished([]byte("old")); !errors.Is(err, ErrFenced) {
		t.Errorf("the deposed leader's SetPublished: %v, want ErrFenced", err)
	}
	checkSize(t, next, 30)
	if err := next.Commit(atSize); err != nil {
		t.Fatalf("the new leader's round: %v", err)
	}
	checkSize(t, next, 35)
}

// TestExpiredLeaseFenced: a leader whose lease expired is refused even
// though nobody took the lease over; renewing it (holder and epoch
// unchanged) lets it commit again.
func TestExpiredLeaseFenced(t *testing.T) {
	ctx := context.Background()
	s := leader(t, pgtest.NewDB(t), "a:1", 50*time.Millisecond)
	deadline := time.Now().Add(30 * time.Second)
	for {
		l, err := s.ReadLease(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if l.Expired {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the lease did not expire")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := s.Commit(storagetest.Round(0, 3)); !errors.Is(err, ErrFenced) {
		t.Fatalf("Commit with an expired lease: %v, want ErrFenced", err)
	}
	checkSize(t, s, 0)
	if _, err := s.RenewLease(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(storagetest.Round(0, 3)); err != nil {
		t.Fatal(err)
	}
}

// TestStaleSizeFenced: with a valid lease, a round that does not start at
// the stored size is refused by the size CAS and writes nothing.
func TestStaleSizeFenced(t *testing.T) {
	s := leader(t, pgtest.NewDB(t), "a:1", time.Minute)
	if err := s.Commit(storagetest.Round(0, 10)); err != nil {
		t.Fatal(err)
	}
	for _, start := range []uint64{0, 5, 11} {
		if err := s.Commit(storagetest.Round(start, 3)); !errors.Is(err, ErrFenced) {
			t.Errorf("round at %d over size 10: %v, want ErrFenced", start, err)
		}
	}
	checkSize(t, s, 10)
	if _, err := s.Bundle(nil, 0); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Bundle(0): %v", err)
	}
}

// TestExistingRowsFenced: with a valid lease and the right size, a round
// over entry or leaf-hash rows that already exist is refused by the
// primary keys and writes nothing.
func TestExistingRowsFenced(t *testing.T) {
	ctx := context.Background()
	s := leader(t, pgtest.NewDB(t), "a:1", time.Minute)
	if err := s.Commit(storagetest.Round(0, 10)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO provlog_entries (idx, entry) VALUES (12, 'planted')`); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(storagetest.Round(10, 5)); !errors.Is(err, ErrFenced) {
		t.Errorf("round over an existing entry row: %v, want ErrFenced", err)
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM provlog_entries WHERE idx = 12`); err != nil {
		t.Fatal(err)
	}
	dup := storagetest.Round(10, 5)
	dup.LeafHashes[2] = storagetest.Round(0, 1).LeafHashes[0] // entry 0's leaf hash
	if err := s.Commit(dup); !errors.Is(err, ErrFenced) {
		t.Errorf("round over an existing leaf hash: %v, want ErrFenced", err)
	}
	checkSize(t, s, 10)
	if err := s.Commit(storagetest.Round(10, 5)); err != nil {
		t.Fatal(err)
	}
}

// TestRetriesSerializationFailure: a serialization failure inside the
// round's transaction rolls it back and the round is retried, written
// once.
func TestRetriesSerializationFailure(t *testing.T) {
	s := leader(t, pgtest.NewDB(t), "a:1", time.Minute)
	var n atomic.Int32
	failAt(s, "entries", func(context.Context, pgx.Tx) error {
		if n.Add(1) <= 2 {
			return &pgconn.PgError{Code: "40001", Message: "injected serialization failure"}
		}
		return nil
	})
	if err := s.Commit(storagetest.Round(0, 10)); err != nil {
		t.Fatal(err)
	}
	if n.Load() != 3 {
		t.Errorf("%d attempts, want 3", n.Load())
	}
	checkSize(t, s, 10)
	failAt(s, "entries", func(context.Context, pgx.Tx) error {
		return &pgconn.PgError{Code: "40P01", Message: "injected deadlock"}
	})
	if err := s.Commit(storagetest.Round(10, 1)); err == nil || errors.Is(err, ErrFenced) {
		t.Errorf("Commit failing every attempt: %v, want a non-fencing error", err)
	}
	checkSize(t, s, 10)
}

// TestTakeoverWaitsForRoundInFlight: a round in flight holds the lease row
// FOR SHARE, so a takeover once the lease has expired waits for it to
// commit, and the new leader then reads the round.
func TestTakeoverWaitsForRoundInFlight(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.NewDB(t)
	old := leader(t, dsn, "old:1", 300*time.Millisecond)
	inTx, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	defer unblock() // before the stores close, should the test fail
	failAt(old, "entries", func(context.Context, pgx.Tx) error {
		close(inTx)
		<-release
		return nil
	})
	committed := make(chan error, 1)
	go func() { committed <- old.Commit(storagetest.Round(0, 10)) }()
	<-inTx
	next := open(t, dsn, Options{ApplicationName: "next"})
	acquired := make(chan error, 1)
	go func() {
		_, err := takeOverErr(next, "new:1", time.Minute)
		acquired <- err
	}()
	// Wait (bounded) until the takeover waits on the lease row's lock.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var waiting int
		if err := old.pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = 'next' AND wait_event_type = 'Lock'`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			break
		}
		select {
		case err := <-acquired:
			t.Fatalf("the lease was taken over while a round was in flight (%v)", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the takeover never waited on the lease row")
		}
		time.Sleep(10 * time.Millisecond)
	}
	unblock()
	if err := <-committed; err != nil {
		t.Fatalf("the round in flight: %v", err)
	}
	if err := <-acquired; err != nil {
		t.Fatal(err)
	}
	checkSize(t, next, 10)
}

// takeOverErr takes the lease for s once it expires, within 30 seconds.
func takeOverErr(s *Store, holder string, ttl time.Duration) (Lease, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		l, err := s.AcquireLease(ctx, holder, ttl)
		if !errors.Is(err, ErrLeaseHeld) {
			return l, err
		}
		select {
		case <-ctx.Done():
			return Lease{}, fmt.Errorf("the lease did not expire: %w", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}
