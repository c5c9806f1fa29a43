package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/note"

	"github.com/provlog/provlog/internal/pgtest"
	"github.com/provlog/provlog/internal/provlogdproc"
)

// replicaOrigin is the origin of the replicated log the bench runs.
const replicaOrigin = "bench.example/provlog-replicas"

// replicaSet is provlogd replicas on one PostgreSQL database, sharing one
// log key.
type replicaSet struct {
	bin     string
	dir     string
	dsn     string // the replicas' --storage
	keyFile string
	vkey    string
	ttl     time.Duration
	reps    []*replica
}

// replica is one provlogd of a replicaSet; its addresses stay the same
// across restarts.
type replica struct {
	name      string
	grpcAddr  string // --grpc-listen and --advertise
	httpAddr  string
	dataDir   string
	logFile   string
	p         *provlog // nil while down
	restarted int
}

// freeLoopback returns 127.0.0.1:port with a port free at the moment.
func freeLoopback() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// newReplicaSet makes the log key and n replicas' addresses under dir;
// start starts them.
func newReplicaSet(bin, dir, dsn string, n int, ttl time.Duration) (*replicaSet, error) {
	skey, vkey, err := note.GenerateKey(rand.Reader, replicaOrigin)
	if err != nil {
		return nil, err
	}
	s := &replicaSet{bin: bin, dir: dir, dsn: dsn, keyFile: filepath.Join(dir, "log.key"), vkey: vkey, ttl: ttl}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(s.keyFile, []byte(skey+"\n"), 0o600); err != nil {
		return nil, err
	}
	for i := range n {
		r := &replica{name: fmt.Sprintf("r%d", i), dataDir: filepath.Join(dir, fmt.Sprintf("r%d", i)), logFile: filepath.Join(dir, fmt.Sprintf("r%d.log", i))}
		if r.grpcAddr, err = freeLoopback(); err != nil {
			return nil, err
		}
		if r.httpAddr, err = freeLoopback(); err != nil {
			return nil, err
		}
		s.reps = append(s.reps, r)
	}
	return s, nil
}

// start starts replica r and returns once it serves HTTP (any status of
// /healthz: a follower may report itself so).
func (s *replicaSet) start(ctx context.Context, r *replica) error {
	argv := []string{"--data", r.dataDir, "--origin", replicaOrigin, "--key", s.keyFile, "--admission", "open",
		"--grpc-listen", r.grpcAddr, "--http-listen", r.httpAddr,
		"--storage", s.dsn, "--advertise", r.grpcAddr, "--lease-ttl", s.ttl.String()}
	var banner provlogdproc.Banner
	c, err := startChild("provlogd "+r.name, s.bin, argv, r.logFile, func(stdout io.Reader) (<-chan struct{}, error) {
		var drained <-chan struct{}
		var err error
		banner, drained, err = provlogdproc.ReadBanner(stdout, nil)
		return drained, err
	})
	if err != nil {
		return err
	}
	p := &provlog{args: provlogdArgs{bin: s.bin, dataDir: r.dataDir, logFile: r.logFile}, proc: c}
	if err := p.connect(banner); err != nil {
		c.kill()
		return err
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		resp, err := p.http.Get(p.httpURL + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			c.kill()
			return fmt.Errorf("replica %s does not serve HTTP (log in %s): %w", r.name, r.logFile, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.p = p
	return nil
}

// kill ends replica r with SIGKILL and waits for it.
func (r *replica) kill() error {
	if r.p == nil {
		return nil
	}
	if err := r.p.proc.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	<-r.p.proc.exited
	for _, c := range r.p.conns {
		c.Close()
	}
	r.p = nil
	return nil
}

// close stops every replica.
func (s *replicaSet) close() error {
	var errs []error
	for _, r := range s.reps {
		if r.p != nil {
			errs = append(errs, r.p.Close())
			r.p = nil
		}
	}
	return errors.Join(errs...)
}

// leaseRow is storage/postgres's lease row.
type leaseRow struct {
	holder string
	epoch  int64
	valid  bool // unexpired by the database's clock
}

// lease reads the lease row.
func (s *replicaSet) lease(ctx context.Context) (leaseRow, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.dsn)
	if err != nil {
		return leaseRow{}, err
	}
	defer conn.Close(context.Background())
	var l leaseRow
	err = conn.QueryRow(ctx, `SELECT holder, epoch, expires_at > now() FROM provlog_lease WHERE id = 1`).Scan(&l.holder, &l.epoch, &l.valid)
	return l, err
}

// leader waits up to timeout for a valid lease held by a running replica
// other than not, with an epoch above minEpoch.
func (s *replicaSet) leader(ctx context.Context, not *replica, minEpoch int64, timeout time.Duration) (*replica, leaseRow, error) {
	deadline := time.Now().Add(timeout)
	var last leaseRow
	var lastErr error
	for time.Now().Before(deadline) && ctx.Err() == nil {
		l, err := s.lease(ctx)
		if err == nil && l.valid && l.epoch > minEpoch {
			for _, r := range s.reps {
				if r.grpcAddr == l.holder && r != not && r.p != nil {
					return r, l, nil
				}
			}
		}
		last, lastErr = l, err
		time.Sleep(10 * time.Millisecond)
	}
	return nil, last, fmt.Errorf("no leader within %v (lease %+v, %v)", timeout, last, lastErr)
}

// followers returns the running replicas other than leader.
func (s *replicaSet) followers(leader *replica) []*replica {
	var out []*replica
	for _, r := range s.reps {
		if r != leader && r.p != nil {
			out = append(out, r)
		}
	}
	return out
}

// postgresFor returns the DSN of a fresh database: on the server at dsn
// if set (its database must be empty), else on a throwaway cluster that
// stop removes.
func postgresFor(ctx context.Context, dsn string) (url string, stop func() error, err error) {
	if dsn != "" {
		return dsn, func() error { return nil }, nil
	}
	c, err := pgtest.Start(ctx)
	if err != nil {
		return "", nil, fmt.Errorf("starting PostgreSQL (or pass -pg-dsn): %w", err)
	}
	if _, err := c.CreateDB(ctx, "bench"); err != nil {
		c.Close()
		return "", nil, err
	}
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/bench?sslmode=disable&connect_timeout=3", c.Port()), c.Close, nil
}

// healthz returns replica r's /healthz status and first line.
func (r *replica) healthz() string {
	if r.p == nil {
		return "down"
	}
	resp, err := r.p.http.Get(r.p.httpURL + "/healthz")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	line, _, _ := strings.Cut(string(b), "\n")
	return fmt.Sprintf("%d %s", resp.StatusCode, line)
}
