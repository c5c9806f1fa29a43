// Package pgtest starts throwaway PostgreSQL clusters for tests: initdb in
// a temporary directory, the server on a free loopback port with its unix
// socket in that directory and fsync on, stopped and removed afterwards.
//
// The binaries (initdb, pg_ctl, postgres) are found on PATH or in
// /usr/lib/postgresql/*/bin (Debian's layout). initdb and pg_ctl refuse to
// run as root, so under root they run as the unprivileged "postgres" user
// (or "nobody"), which then owns the cluster's directory.
//
// Where PostgreSQL is missing, tests skip, unless the environment sets
// PROVLOG_REQUIRE_PG (CI does): then a missing PostgreSQL fails them.
//
// A test package starts one cluster for all its tests with Main in
// TestMain and gives each test its own database with NewDB:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
//
//	func TestX(t *testing.T) {
//		dsn := pgtest.NewDB(t)
//		…
//	}
//
// A test that stops, restarts or partitions the database starts its own
// cluster with New. Every wait is bounded: a server that does not start or
// stop within a minute is an error, and the postmaster is a child of the
// test process that gets SIGQUIT (PostgreSQL's immediate shutdown) if the
// test process dies, so no server outlives its test binary.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// RequireEnv names the environment variable that turns a missing
// PostgreSQL from a skip into a failure.
const RequireEnv = "PROVLOG_REQUIRE_PG"

// waitLimit bounds every start, stop and command.
const waitLimit = time.Minute

// ErrNoPostgres is returned (wrapped) when the PostgreSQL binaries are not
// found.
var ErrNoPostgres = errors.New("PostgreSQL not found")

// Cluster is one running (or stopped) PostgreSQL cluster. Its methods are
// safe for concurrent use.
type Cluster struct {
	bin     string // directory of initdb, pg_ctl, postgres
	dir     string // the temporary directory, removed by Close
	data    string // the data directory, dir/data
	sock    string // the unix socket directory, dir
	logFile string
	port    int
	cred    *syscall.Credential // nil unless run as another user

	mu     sync.Mutex
	server *exec.Cmd     // nil while stopped
	exited chan struct{} // closed when server has exited
}

// FindBin returns the directory holding initdb, pg_ctl and postgres, or an
// error wrapping ErrNoPostgres.
func FindBin() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		dir := filepath.Dir(p)
		if hasBins(dir) {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Sort(sort.Reverse(sort.StringSlice(dirs))) // the newest version first
	for _, d := range dirs {
		if hasBins(d) {
			return d, nil
		}
	}
	return "", fmt.Errorf("%w: no initdb, pg_ctl and postgres on PATH or in /usr/lib/postgresql/*/bin", ErrNoPostgres)
}

func hasBins(dir string) bool {
	for _, b := range []string{"initdb", "pg_ctl", "postgres"} {
		if fi, err := os.Stat(filepath.Join(dir, b)); err != nil || fi.IsDir() {
			return false
		}
	}
	return true
}

// Start initializes a cluster in a new temporary directory and starts it.
// Close stops it and removes the directory.
func Start(ctx context.Context) (*Cluster, error) {
	bin, err := FindBin()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{bin: bin, dir: dir, data: filepath.Join(dir, "data"), sock: dir, logFile: filepath.Join(dir, "server.log")}
	if err := c.init(ctx); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := c.Start(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// init runs initdb, as an unprivileged user when this process is root.
func (c *Cluster) init(ctx context.Context) error {
	cred, err := User()
	if err != nil {
		return err
	}
	if c.cred = cred; cred != nil {
		if err := os.Chown(c.dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return fmt.Errorf("giving %s to uid %d: %w", c.dir, cred.Uid, err)
		}
	}
	// -N: initdb's own files are not synced (a throwaway cluster); the
	// server runs with fsync on.
	_, err = c.run(ctx, "initdb", "-D", c.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale", "-N")
	return err
}

// unprivileged returns the credentials of the "postgres" user, or of
// "nobody".
func unprivileged() (*syscall.Credential, error) {
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
	}
	return nil, errors.New("running as root, and neither the postgres nor the nobody user exists to run initdb as")
}

// command returns a command running the PostgreSQL binary name, as the
// cluster's user.
func (c *Cluster) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return Command(ctx, c.bin, c.dir, c.cred, name, args...)
}

// Command returns a command running the PostgreSQL binary name of the
// directory bin (FindBin) in dir, as cred (User), the way pgtest runs its
// clusters' binaries (pg_basebackup for a standby, say).
func Command(ctx context.Context, bin, dir string, cred *syscall.Credential, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(bin, name), args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// User returns the credentials pgtest runs PostgreSQL as: nil unless this
// process is root, which initdb refuses; then the postgres user, or
// nobody.
func User() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	return unprivileged()
}

// run runs a PostgreSQL binary to completion, within waitLimit.
func (c *Cluster) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, waitLimit)
	defer cancel()
	out, err := c.command(ctx, name, args...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s %v: %w\n%s", name, args, err, out)
	}
	return out, nil
}

// Start starts the stopped cluster's server (on a new free port if the
// old one is taken) and waits until it accepts connections.
func (c *Cluster) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.server != nil {
		return errors.New("pgtest: server already running")
	}
	var err error
	for range 3 {
		if c.port == 0 || err != nil {
			if c.port, err = freePort(); err != nil {
				return err
			}
		}
		if err = c.startServer(ctx); err == nil {
			return nil
		}
	}
	return err
}

func (c *Cluster) startServer(ctx context.Context) error {
	logf, err := os.OpenFile(c.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	// Not CommandContext: the server outlives ctx, until Stop.
	cmd := exec.Command(filepath.Join(c.bin, "postgres"), "-D", c.data, "-p", strconv.Itoa(c.port),
		"-k", c.sock, "-c", "listen_addresses=127.0.0.1", "-c", "fsync=on", "-c", "synchronous_commit=on",
		"-c", "max_connections=300", "-c", "shared_buffers=64MB")
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.Stdout, cmd.Stderr = logf, logf
	// SIGQUIT is PostgreSQL's immediate shutdown: if the test binary
	// dies, its server does too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred, Pdeathsig: syscall.SIGQUIT}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting postgres: %w", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	c.server, c.exited = cmd, exited
	ctx, cancel := context.WithTimeout(ctx, waitLimit)
	defer cancel()
	for {
		conn, err := pgx.Connect(ctx, c.DSN("postgres"))
		if err == nil {
			conn.Close(ctx)
			return nil
		}
		select {
		case <-exited:
			c.server = nil
			return fmt.Errorf("postgres exited at start: %w\n%s", err, c.tailLog())
		case <-ctx.Done():
			c.kill()
			return fmt.Errorf("postgres did not accept connections within %v: %w\n%s", waitLimit, err, c.tailLog())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// tailLog returns the end of the server's log.
func (c *Cluster) tailLog() string {
	b, _ := os.ReadFile(c.logFile)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// kill ends the server with SIGKILL and waits for it; c.mu is held.
func (c *Cluster) kill() {
	if c.server == nil {
		return
	}
	c.server.Process.Kill()
	<-c.exited
	c.server = nil
}

// StopImmediate stops the server as a crash would (pg_ctl stop -m
// immediate: no checkpoint, recovery from the WAL at the next start).
func (c *Cluster) StopImmediate(ctx context.Context) error { return c.stop(ctx, "immediate") }

// Stop stops the server cleanly (pg_ctl stop -m fast).
func (c *Cluster) Stop(ctx context.Context) error { return c.stop(ctx, "fast") }

func (c *Cluster) stop(ctx context.Context, mode string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.server == nil {
		return nil
	}
	_, err := c.run(ctx, "pg_ctl", "stop", "-D", c.data, "-m", mode, "-w", "-t", "30")
	select {
	case <-c.exited:
		c.server = nil
		return err
	case <-time.After(waitLimit):
		c.kill()
		return fmt.Errorf("postgres did not exit after pg_ctl stop -m %s (killed): %w", mode, err)
	}
}

// Restart stops the server immediately and starts it again.
func (c *Cluster) Restart(ctx context.Context) error {
	if err := c.StopImmediate(ctx); err != nil {
		return err
	}
	return c.Start(ctx)
}

// Close stops the server (immediately, then fast, then SIGKILL, whichever
// works) and removes the cluster's directory.
func (c *Cluster) Close() error {
	ctx := context.Background()
	err := c.StopImmediate(ctx)
	if err != nil {
		err = c.Stop(ctx)
	}
	c.mu.Lock()
	c.kill()
	c.mu.Unlock()
	return errors.Join(err, os.RemoveAll(c.dir))
}

// Port is the server's TCP port on 127.0.0.1.
func (c *Cluster) Port() int { return c.port }

// DSN returns the connection string of database db as user postgres over
// loopback TCP.
func (c *Cluster) DSN(db string) string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=%s sslmode=disable connect_timeout=10", c.port, db)
}

// CreateDB creates database name and returns its DSN.
func (c *Cluster) CreateDB(ctx context.Context, name string) (string, error) {
	if _, err := c.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", err
	}
	return c.DSN(name), nil
}

// Exec runs one SQL statement as postgres in the postgres database and
// returns the rows it affected.
func (c *Cluster) Exec(ctx context.Context, sql string, args ...any) (n int64, err error) {
	err = c.withConn(ctx, func(conn *pgx.Conn) error {
		tag, err := conn.Exec(ctx, sql, args...)
		if err != nil {
			return fmt.Errorf("%s: %w", sql, err)
		}
		n = tag.RowsAffected()
		return nil
	})
	return n, err
}

// Terminate ends every session whose application_name is name
// (pg_terminate_backend) and returns how many it ended.
func (c *Cluster) Terminate(ctx context.Context, name string) (n int, err error) {
	err = c.withConn(ctx, func(conn *pgx.Conn) error {
		return conn.QueryRow(ctx, `SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
			WHERE application_name = $1 AND pid <> pg_backend_pid()) AS t`, name).Scan(&n)
	})
	return n, err
}

// withConn calls fn with a connection to the postgres database as
// postgres, within waitLimit.
func (c *Cluster) withConn(ctx context.Context, fn func(*pgx.Conn) error) error {
	ctx, cancel := context.WithTimeout(ctx, waitLimit)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	return fn(conn)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// required reports whether a missing PostgreSQL must fail the tests.
func required() bool { return os.Getenv(RequireEnv) != "" }

// New starts a cluster of the test's own, closed in t.Cleanup. It skips
// the test when PostgreSQL is missing and RequireEnv is unset.
func New(t testing.TB) *Cluster {
	t.Helper()
	c, err := Start(context.Background())
	if err != nil {
		missing(t, err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("pgtest: closing the cluster: %v", err)
		}
	})
	return c
}

// missing skips or fails t for err.
func missing(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, ErrNoPostgres) && !required() {
		t.Skipf("skipping: %v (set %s to make this a failure)", err, RequireEnv)
	}
	t.Fatalf("pgtest: %v", err)
}

// shared is the cluster Main started, or the error it met.
var shared struct {
	c   *Cluster
	err error
	n   atomic.Int64 // databases made by NewDB
}

// Main starts the package's shared cluster, runs the tests and closes the
// cluster; its result is the exit code. If PostgreSQL is missing, the
// tests run and NewDB skips them (or fails them under RequireEnv).
func Main(m *testing.M) int {
	shared.c, shared.err = Start(context.Background())
	if shared.err != nil && (required() || !errors.Is(shared.err, ErrNoPostgres)) {
		fmt.Fprintf(os.Stderr, "pgtest: %v\n", shared.err)
		return 1
	}
	code := m.Run()
	if shared.c != nil {
		if err := shared.c.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: closing the cluster: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// Shared returns the cluster Main started (skipping or failing t as New
// does when PostgreSQL is missing).
func Shared(t testing.TB) *Cluster {
	t.Helper()
	if shared.c == nil {
		err := shared.err
		if err == nil {
			err = errors.New("pgtest.Shared without pgtest.Main in TestMain")
		}
		missing(t, err)
	}
	return shared.c
}

// NewDB creates a new, empty database in the shared cluster and returns
// its DSN.
func NewDB(t testing.TB) string {
	t.Helper()
	c := Shared(t)
	dsn, err := c.CreateDB(context.Background(), fmt.Sprintf("t%d", shared.n.Add(1)))
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return dsn
}
