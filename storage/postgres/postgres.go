// Package postgres is provlog's PostgreSQL layout: a second implementation
// of the storage that package log declares (log.Storage, log.IndexReader),
// for several replicas sharing one database, one of which leads. It is
// portable SQL (no advisory locks, no LISTEN/NOTIFY, nothing outside what
// PostgreSQL, CockroachDB and YugabyteDB all accept), through
// github.com/jackc/pgx/v5.
//
// # Schema
//
// The tables mirror the Pebble key schema of package storage. Integers are
// BIGINT (indices above 2^63-1 are refused); byte strings are BYTEA.
//
//	provlog_meta      (id = 1, version INTEGER, origin TEXT)
//	                  schema version (currently 1) and the log's origin
//	                  ('' until SetOrigin): Pebble's 'v' and 'o'
//	provlog_tree      (id = 1, size BIGINT, compact_range BYTEA,
//	                   checkpoint BYTEA NULL)
//	                  the tree state: size, the compact range [0, size)
//	                  (32-byte hashes concatenated, as compact.Range.Hashes)
//	                  and the checkpoint signed over it ('s' and 'c'); the
//	                  row every round compare-and-swaps on its size
//	provlog_published (id = 1, checkpoint BYTEA)
//	                  the latest published checkpoint when it is held back
//	                  for witnessing ('p'); no row while the log runs
//	                  unwitnessed
//	provlog_entries   (idx BIGINT PRIMARY KEY, entry BYTEA)       'e'
//	provlog_leaves    (hash BYTEA PRIMARY KEY, idx BIGINT)        'h': the
//	                  dedup and leaf-hash index
//	provlog_tiles     (level SMALLINT, idx BIGINT, hashes BYTEA,
//	                   inner_levels BYTEA NULL, PRIMARY KEY (level, idx))
//	                  tlog-tiles hash tiles ('t'): the hashes so far, the
//	                  rightmost tile of a level rewritten as it grows; a full
//	                  tile may carry its inner levels 1–7 (254 hashes, as
//	                  merkle.TileTree.Inner)
//	provlog_index     (kind SMALLINT, vhash BYTEA, value BYTEA, idx BIGINT,
//	                   tag SMALLINT, PRIMARY KEY (kind, vhash, idx))
//	                  the search index ('x'): vhash is SHA-256(value), so
//	                  that values of up to 64 KiB fit a B-tree key; reads
//	                  compare value too
//	provlog_bundles   (idx BIGINT PRIMARY KEY, data BYTEA)        'b':
//	                  full entry bundles in their stored form, derived
//	                  data written by any replica, never changed
//	provlog_lease     (id = 1, holder TEXT, epoch BIGINT,
//	                   expires_at TIMESTAMPTZ)
//	                  the sequencer's lease (see Leadership)
//
// Open creates the tables (CREATE TABLE IF NOT EXISTS) and the single rows,
// and refuses a database of another schema version.
//
// # Durability
//
// All the writes of one sequencing round go in one transaction, each table
// in one statement (entries, leaf hashes, search-index keys and tiles as
// INSERTs of unnested arrays; not COPY, whose backend waits without a
// timeout for a client that stalls mid-COPY, holding the lease row's lock
// against a takeover: see writeRound); Commit returns nil only once it has committed, so the round
// is as durable as the database makes a commit (PostgreSQL: synchronous
// commit, fsync on). A failure before COMMIT rolls the round back whole; a
// failed COMMIT (the connection lost during it) leaves the outcome unknown,
// and Commit then returns an error, as storage.Store does for a failed
// sync: the caller stops writing and trusts only ReadState. Bundles are
// written each in its own statement.
//
// # Leadership and fencing
//
// One replica sequences. It holds the lease row: holder (its advertised
// address), epoch, and an expiry computed by the database (now() + TTL),
// so that the replicas' clocks do not matter. AcquireLease takes a free,
// expired or own lease and always starts a new epoch; RenewLease extends
// it while holder and epoch are unchanged; ReleaseLease expires it. Each
// Commit of a leader is one transaction that
//
//  1. re-reads the lease row FOR SHARE and checks holder, epoch and expiry;
//  2. compare-and-swaps the tree state on the old size
//     (UPDATE provlog_tree … WHERE size = $old, exactly one row);
//  3. writes the round's rows, whose primary keys (entry index, leaf hash)
//     refuse a second writer of the same index or leaf;
//
// then commits. A failed guard is ErrFenced and the transaction writes
// nothing. The three guards are independent: a deposed leader is refused
// by the lease (even when its round reaches the database after the new
// leader's and the size would match), a stale round by the size, and a
// round over rows already written by the keys, so that two sequencers can
// never both extend the tree, even while both believe they lead.
// SetPublished is fenced by the lease too; PutBundle, of derived data, is
// not.
//
// # Isolation
//
// The design needs no isolation above READ COMMITTED, and works under
// SERIALIZABLE: transactions run at the database's default level
// (PostgreSQL: READ COMMITTED; CockroachDB: SERIALIZABLE). What it relies
// on:
//
//   - The size CAS is a single-row UPDATE with its condition in the WHERE
//     clause. Two of them cannot both succeed on one old size: PostgreSQL
//     at READ COMMITTED makes the second wait for the first's row lock and
//     re-evaluates its WHERE on the committed row (no row matches); at
//     REPEATABLE READ or SERIALIZABLE, and on CockroachDB, the second
//     aborts with a serialization failure (40001), is retried, and then
//     matches no row.
//   - The lease check holds a shared row lock on the lease row until the
//     round commits, so an AcquireLease (an UPDATE of that row) waits for
//     every round in flight, and a round that starts after it reads the
//     new epoch. On CockroachDB, FOR SHARE takes a shared lock too, and in
//     any case its SERIALIZABLE isolation orders the round's read of the
//     lease row and the acquisition's write of it: either the round reads
//     the new epoch and is fenced, or it is serialized before the
//     acquisition, which then reads its tree state. A new leader reads the
//     tree state after acquiring the lease, so it continues from every
//     round the old epoch committed.
//   - Primary keys are unique under every isolation level.
//
// Serialization failures and deadlocks (SQLSTATE 40001, 40P01) roll the
// transaction back and it is retried, a few times at most. Every session
// sets statement_timeout and idle_in_transaction_session_timeout
// (Options.StatementTimeout, to be set near the lease TTL), so that a
// stalled leader's transaction, and the lock it holds on the lease row,
// cannot stall a takeover much beyond the TTL.
//
// # Reads
//
// Every read (state, tiles, entries, bundles, search, dedup lookups)
// queries the database; nothing depends on in-memory state being complete.
// LookupLeaves reads the leaf-hash index with WHERE hash = ANY($1).
package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/provlog/provlog/storage"
)

const (
	schemaVersion = 1
	hashSize      = 32
	fullTileSize  = 256 * hashSize
	innerSize     = 254 * hashSize
)

// ErrFenced is returned (wrapped) by Commit and SetPublished when a guard
// refuses the write: the store holds no lease, or the lease changed hands
// or expired, or the tree state moved on from the round's start, or rows
// of the round already exist. Nothing was written. RenewLease returns it
// when the lease is no longer the store's.
var ErrFenced = errors.New("fenced: not the log's sequencer")

// ErrLeaseHeld is returned (wrapped) by AcquireLease when another holder's
// lease has not expired.
var ErrLeaseHeld = errors.New("lease held by another replica")

// Options configures a Store. The zero value is ready to use.
type Options struct {
	// StatementTimeout is the sessions' statement_timeout and
	// idle_in_transaction_session_timeout: set it near the lease TTL. If
	// zero, 5 seconds.
	StatementTimeout time.Duration
	// OpTimeout bounds each call of a log.Storage method (they take no
	// context). If zero, three times StatementTimeout.
	OpTimeout time.Duration
	// MaxConns is the connection pool's size. If zero, 8.
	MaxConns int32
	// ApplicationName is the sessions' application_name. If empty,
	// "provlog".
	ApplicationName string
	// Logger receives the store's log lines. If nil, slog.Default().
	Logger *slog.Logger
}

// Store is a log's PostgreSQL database. Its methods are safe for
// concurrent use. Only the leader writes the log (Commit, SetPublished,
// fenced by its lease); SetOrigin is written once; PutBundle, called by
// readers, writes derived data only.
type Store struct {
	pool   *pgxpool.Pool
	opts   Options
	logger *slog.Logger
	// ctx is cancelled by Close, ending every call in flight.
	ctx    context.Context
	cancel context.CancelFunc

	// mu guards lease, the lease Commit fences with (Epoch 0: none).
	mu    sync.Mutex
	lease Lease

	// hook, set by tests, is called at each step of a transaction (see
	// step); a non-nil error fails the step.
	hook atomic.Pointer[hookFunc]
}

// hookFunc is a test hook: tx is nil after the commit.
type hookFunc func(ctx context.Context, step string, tx pgx.Tx) error

// Open connects to the database at dsn (a PostgreSQL URL or key=value
// string), creates the schema if absent and checks its version.
func Open(ctx context.Context, dsn string, o Options) (*Store, error) {
	if o.StatementTimeout == 0 {
		o.StatementTimeout = 5 * time.Second
	}
	if o.OpTimeout == 0 {
		o.OpTimeout = 3 * o.StatementTimeout
	}
	if o.MaxConns == 0 {
		o.MaxConns = 8
	}
	if o.ApplicationName == "" {
		o.ApplicationName = "provlog"
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parsing the PostgreSQL DSN: %w", err)
	}
	cfg.MaxConns = o.MaxConns
	ms := strconv.FormatInt(o.StatementTimeout.Milliseconds(), 10)
	rp := cfg.ConnConfig.RuntimeParams
	rp["statement_timeout"] = ms
	rp["idle_in_transaction_session_timeout"] = ms
	rp["application_name"] = o.ApplicationName
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to PostgreSQL: %w", err)
	}
	base, cancel := context.WithCancel(context.Background())
	s := &Store{pool: pool, opts: o, logger: o.Logger, ctx: base, cancel: cancel}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// schema creates the tables and their single rows; every statement is
// idempotent.
var schema = []string{
	`CREATE TABLE IF NOT EXISTS provlog_meta (
		id SMALLINT PRIMARY KEY CHECK (id = 1),
		version INTEGER NOT NULL,
		origin TEXT NOT NULL DEFAULT '')`,
	`CREATE TABLE IF NOT EXISTS provlog_tree (
		id SMALLINT PRIMARY KEY CHECK (id = 1),
		size BIGINT NOT NULL,
		compact_range BYTEA NOT NULL,
		checkpoint BYTEA)`,
	`CREATE TABLE IF NOT EXISTS provlog_published (
		id SMALLINT PRIMARY KEY CHECK (id = 1),
		checkpoint BYTEA NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS provlog_entries (
		idx BIGINT PRIMARY KEY,
		entry BYTEA NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS provlog_leaves (
		hash BYTEA PRIMARY KEY,
		idx BIGINT NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS provlog_tiles (
		level SMALLINT NOT NULL,
		idx BIGINT NOT NULL,
		hashes BYTEA NOT NULL,
		inner_levels BYTEA,
		PRIMARY KEY (level, idx))`,
	`CREATE TABLE IF NOT EXISTS provlog_index (
		kind SMALLINT NOT NULL,
		vhash BYTEA NOT NULL,
		value BYTEA NOT NULL,
		idx BIGINT NOT NULL,
		tag SMALLINT NOT NULL,
		PRIMARY KEY (kind, vhash, idx))`,
	`CREATE TABLE IF NOT EXISTS provlog_bundles (
		idx BIGINT PRIMARY KEY,
		data BYTEA NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS provlog_lease (
		id SMALLINT PRIMARY KEY CHECK (id = 1),
		holder TEXT NOT NULL,
		epoch BIGINT NOT NULL,
		expires_at TIMESTAMPTZ NOT NULL)`,
	// The single rows, inserted only where absent: a row that exists may
	// be locked by a round in flight, which INSERT … ON CONFLICT would
	// wait for.
	`INSERT INTO provlog_meta (id, version) SELECT 1, ` + strconv.Itoa(schemaVersion) + ` WHERE NOT EXISTS (SELECT 1 FROM provlog_meta WHERE id = 1)`,
	`INSERT INTO provlog_tree (id, size, compact_range) SELECT 1, 0, ''::BYTEA WHERE NOT EXISTS (SELECT 1 FROM provlog_tree WHERE id = 1)`,
	`INSERT INTO provlog_lease (id, holder, epoch, expires_at) SELECT 1, '', 0, '1970-01-01T00:00:00Z'
		WHERE NOT EXISTS (SELECT 1 FROM provlog_lease WHERE id = 1)`,
}

// migrate creates the schema and checks its version. Replicas opening a
// new database at once may race on CREATE TABLE IF NOT EXISTS (PostgreSQL
// can then report a duplicate catalog row or type) and on the single
// rows (a unique violation): the statements are retried.
func (s *Store) migrate(ctx context.Context) error {
	for _, stmt := range schema {
		var err error
		for attempt := range 5 {
			if _, err = s.pool.Exec(ctx, stmt); err == nil || !isCode(err, "23505", "42P07", "42710", "40001", "40P01") {
				break
			}
			if werr := sleep(ctx, attempt); werr != nil {
				return werr
			}
		}
		if err != nil {
			return fmt.Errorf("creating the schema: %w", err)
		}
	}
	var v int32
	if err := s.pool.QueryRow(ctx, `SELECT version FROM provlog_meta WHERE id = 1`).Scan(&v); err != nil {
		return fmt.Errorf("reading the schema version: %w", err)
	}
	if v != schemaVersion {
		return fmt.Errorf("database schema version %d, want %d: %w", v, schemaVersion, storage.ErrCorrupt)
	}
	return nil
}

// Close ends the calls in flight and closes the connection pool. It does
// not release the lease (ReleaseLease does).
func (s *Store) Close() error {
	s.cancel()
	s.pool.Close()
	return nil
}

// opContext returns the context of one log.Storage call.
func (s *Store) opContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.ctx, s.opts.OpTimeout)
}

// Origin returns the origin recorded in the store, or "" for a new store.
func (s *Store) Origin() (string, error) {
	ctx, cancel := s.opContext()
	defer cancel()
	var o string
	if err := s.pool.QueryRow(ctx, `SELECT origin FROM provlog_meta WHERE id = 1`).Scan(&o); err != nil {
		return "", fmt.Errorf("reading origin: %w", err)
	}
	return o, nil
}

// SetOrigin records the log's origin, once: it refuses to change an origin
// already recorded (setting the same one again is a no-op).
func (s *Store) SetOrigin(origin string) error {
	ctx, cancel := s.opContext()
	defer cancel()
	tag, err := s.pool.Exec(ctx, `UPDATE provlog_meta SET origin = $1 WHERE id = 1 AND (origin = '' OR origin = $1)`, origin)
	if err != nil {
		return fmt.Errorf("writing origin: %w", err)
	}
	if tag.RowsAffected() != 1 {
		stored, err := s.Origin()
		return fmt.Errorf("writing origin %q: the store's origin is already %q (%v)", origin, stored, err)
	}
	return nil
}

// isCode reports whether err is a PostgreSQL error with one of codes.
func isCode(err error, codes ...string) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	for _, c := range codes {
		if pe.Code == c {
			return true
		}
	}
	return false
}

// retryable reports whether err is a serialization failure or a deadlock:
// the transaction was rolled back and may be run again.
func retryable(err error) bool { return isCode(err, "40001", "40P01") }

// maxAttempts bounds the runs of one transaction.
const maxAttempts = 6

// sleep waits before retry attempt+1: 5ms, 10ms, 20ms, … or until ctx
// ends.
func sleep(ctx context.Context, attempt int) error {
	t := time.NewTimer(5 * time.Millisecond << attempt)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// inTx runs fn in a transaction and commits it, retrying the whole
// transaction on a serialization failure or deadlock. fn's error rolls it
// back and is returned. A failed COMMIT is returned as it is (the outcome
// is unknown) unless the database reports a serialization failure, which
// means the transaction did not commit.
func (s *Store) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	for attempt := 0; ; attempt++ {
		err := s.tryTx(ctx, fn)
		if err == nil || !retryable(err) || attempt+1 == maxAttempts {
			return err
		}
		s.logger.Debug("retrying a transaction", "err", err, "attempt", attempt+1)
		if werr := sleep(ctx, attempt); werr != nil {
			return errors.Join(err, werr)
		}
	}
}

func (s *Store) tryTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("beginning a transaction: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) // a no-op once committed
	if err := fn(tx); err != nil {
		return err
	}
	if err := s.step(ctx, "commit", tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("committing: %w", err)
	}
	return s.step(ctx, "committed", nil)
}

// step calls the test hook, if any, at a named step of a transaction.
func (s *Store) step(ctx context.Context, name string, tx pgx.Tx) error {
	h := s.hook.Load()
	if h == nil {
		return nil
	}
	if err := (*h)(ctx, name, tx); err != nil {
		return fmt.Errorf("at %s: %w", name, err)
	}
	return nil
}

// dbIndex converts a log index to a BIGINT.
func dbIndex(i uint64) (int64, error) {
	if i > math.MaxInt64 {
		return 0, fmt.Errorf("index %d beyond BIGINT", i)
	}
	return int64(i), nil
}
