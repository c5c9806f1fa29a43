package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Lease is the sequencer's lease as the database recorded it.
type Lease struct {
	// Holder names the replica holding it (its advertised address); ""
	// before the first acquisition.
	Holder string
	// Epoch grows by one at every acquisition; 0 before the first.
	Epoch int64
	// Expires is its expiry in the database's clock.
	Expires time.Time
	// Expired reports, for ReadLease, whether the lease had expired by the
	// database's clock when it was read.
	Expired bool
	// Deadline, for a lease this process acquired or renewed, bounds its
	// expiry in this process's clock: the time the request was sent plus
	// the TTL (the database computed its expiry after it received the
	// request, so the lease lasts at least until then). A leader stops
	// sequencing before it. Zero for a lease read by ReadLease.
	Deadline time.Time
}

// expiryExpr is the expiry of a lease of TTL $2 microseconds, in the
// database's clock.
const expiryExpr = `now() + $2::BIGINT * INTERVAL '1 microsecond'`

// AcquireLease takes the lease for holder for ttl, if it is free, expired
// or already holder's, and starts a new epoch (even for the same holder:
// an earlier process of the same name is fenced). From then on Commit and
// SetPublished are fenced by this lease. If another holder's lease has not
// expired, it returns an error wrapping ErrLeaseHeld and changes nothing.
//
// The caller, now the leader, must read the tree state (ReadState) after
// AcquireLease returns, and continue from it.
func (s *Store) AcquireLease(ctx context.Context, holder string, ttl time.Duration) (Lease, error) {
	if holder == "" || ttl < time.Millisecond {
		return Lease{}, fmt.Errorf("acquiring the lease: holder %q, TTL %v; want a name and a TTL of 1ms or more", holder, ttl)
	}
	sent := time.Now()
	l := Lease{Holder: holder, Deadline: sent.Add(ttl)}
	found := true
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `UPDATE provlog_lease SET holder = $1, epoch = epoch + 1, expires_at = `+expiryExpr+`
			WHERE id = 1 AND (expires_at <= now() OR holder = $1) RETURNING epoch, expires_at`,
			holder, ttl.Microseconds()).Scan(&l.Epoch, &l.Expires)
		if errors.Is(err, pgx.ErrNoRows) {
			found, err = false, nil
		}
		return err
	})
	if err != nil {
		return Lease{}, fmt.Errorf("acquiring the lease for %q: %w", holder, err)
	}
	if !found {
		cur, err := s.ReadLease(ctx)
		if err != nil {
			return Lease{}, fmt.Errorf("acquiring the lease for %q: %w (and reading it: %w)", holder, ErrLeaseHeld, err)
		}
		return Lease{}, fmt.Errorf("acquiring the lease for %q: %w: %q holds epoch %d until %s", holder, ErrLeaseHeld, cur.Holder, cur.Epoch, cur.Expires.Format(time.RFC3339Nano))
	}
	s.mu.Lock()
	s.lease = l
	s.mu.Unlock()
	s.logger.Info("acquired the sequencer lease", "holder", holder, "epoch", l.Epoch, "expires", l.Expires)
	return l, nil
}

// RenewLease extends the store's lease to ttl from now (the database's
// now), if holder and epoch are still its own. Otherwise the store no
// longer holds a lease, and it returns an error wrapping ErrFenced.
func (s *Store) RenewLease(ctx context.Context, ttl time.Duration) (Lease, error) {
	l, ok := s.Lease()
	if !ok {
		return Lease{}, fmt.Errorf("renewing the lease: %w: the store holds no lease", ErrFenced)
	}
	if ttl < time.Millisecond {
		return Lease{}, fmt.Errorf("renewing the lease: TTL %v, want 1ms or more", ttl)
	}
	sent := time.Now()
	found := true
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `UPDATE provlog_lease SET expires_at = `+expiryExpr+`
			WHERE id = 1 AND holder = $1 AND epoch = $3 RETURNING expires_at`,
			l.Holder, ttl.Microseconds(), l.Epoch).Scan(&l.Expires)
		if errors.Is(err, pgx.ErrNoRows) {
			found, err = false, nil
		}
		return err
	})
	if err != nil {
		return Lease{}, fmt.Errorf("renewing the lease of epoch %d: %w", l.Epoch, err)
	}
	if !found {
		s.dropLease(l.Epoch)
		return Lease{}, fmt.Errorf("renewing the lease of epoch %d: %w: the lease changed hands", l.Epoch, ErrFenced)
	}
	l.Deadline = sent.Add(ttl)
	s.mu.Lock()
	if s.lease.Epoch == l.Epoch {
		s.lease = l
	}
	s.mu.Unlock()
	return l, nil
}

// ReleaseLease gives up the store's lease, if it holds one: it expires the
// lease row now (after any round in flight commits, since they hold it
// FOR SHARE), so that another replica can take it at once. Commit is
// fenced from the moment ReleaseLease is called.
func (s *Store) ReleaseLease(ctx context.Context) error {
	l, ok := s.Lease()
	if !ok {
		return nil
	}
	s.dropLease(l.Epoch)
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE provlog_lease SET expires_at = now() WHERE id = 1 AND holder = $1 AND epoch = $2 AND expires_at > now()`,
			l.Holder, l.Epoch)
		return err
	})
	if err != nil {
		return fmt.Errorf("releasing the lease of epoch %d: %w", l.Epoch, err)
	}
	s.logger.Info("released the sequencer lease", "holder", l.Holder, "epoch", l.Epoch)
	return nil
}

// ReadLease returns the lease row as the database holds it now.
func (s *Store) ReadLease(ctx context.Context) (Lease, error) {
	var l Lease
	err := s.pool.QueryRow(ctx, `SELECT holder, epoch, expires_at, expires_at <= now() FROM provlog_lease WHERE id = 1`).
		Scan(&l.Holder, &l.Epoch, &l.Expires, &l.Expired)
	if err != nil {
		return Lease{}, fmt.Errorf("reading the lease: %w", err)
	}
	return l, nil
}

// Lease returns the lease the store fences its writes with, and whether it
// holds one (as far as it knows: the database decides at each Commit).
func (s *Store) Lease() (Lease, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lease, s.lease.Epoch != 0
}

// dropLease forgets the store's lease if it is still of epoch.
func (s *Store) dropLease(epoch int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lease.Epoch == epoch {
		s.lease = Lease{}
	}
}

// checkLease is a leader's first step in a write transaction: it reads the
// lease row FOR SHARE (so that no acquisition commits before this
// transaction ends) and checks that it is still l and unexpired.
func (s *Store) checkLease(ctx context.Context, tx pgx.Tx, l Lease) error {
	if err := s.step(ctx, "lease", tx); err != nil {
		return err
	}
	var holder string
	var epoch int64
	var live bool
	err := tx.QueryRow(ctx, `SELECT holder, epoch, expires_at > now() FROM provlog_lease WHERE id = 1 FOR SHARE`).Scan(&holder, &epoch, &live)
	if err != nil {
		return fmt.Errorf("reading the lease: %w", err)
	}
	switch {
	case holder != l.Holder || epoch != l.Epoch:
		return fmt.Errorf("%w: the lease of %q, epoch %d, is now %q's, epoch %d", ErrFenced, l.Holder, l.Epoch, holder, epoch)
	case !live:
		return fmt.Errorf("%w: the lease of %q, epoch %d, has expired", ErrFenced, l.Holder, l.Epoch)
	}
	return nil
}
