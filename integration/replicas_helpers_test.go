package integration

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/provlog/provlog/internal/pgtest"
)

// Helpers for provlogd replicas on PostgreSQL (--storage postgres://…),
// shared by the failover tests.

// replicaOrigin is the origin of the replicas' log.
const replicaOrigin = "example.com/replicas"

// replicaSet is provlogd replicas sharing one database of a PostgreSQL
// cluster of their own, all with one log key. Replica i runs in its own
// data directory; start restarts it there.
type replicaSet struct {
	PG          *pgtest.Cluster
	DSN         string // the --storage URL
	KeyFile     string // the shared --key
	VerifierKey string
	Verifier    note.Verifier
	TTL         time.Duration // --lease-ttl

	args []string // every replica's extra flags
	dir  string

	mu       sync.Mutex // guards replicas
	replicas []*provlogd
}

// replicaTTL is the lease TTL the helpers give replicas unless args say
// otherwise.
const replicaTTL = 2 * time.Second

// startReplicas starts a PostgreSQL cluster and n replicas on one of its
// databases (--admission open, --lease-ttl replicaTTL and args, the last
// flag winning), one after another, and returns once each answers
// /healthz with 200: the first to start leads. Everything is stopped when
// the test ends.
func startReplicas(t *testing.T, n int, args ...string) *replicaSet {
	t.Helper()
	pg := pgtest.New(t)
	if _, err := pg.CreateDB(t.Context(), "provlog"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	skey, vkey, err := note.GenerateKey(rand.Reader, replicaOrigin)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	rs := &replicaSet{
		PG:          pg,
		DSN:         fmt.Sprintf("postgres://postgres@127.0.0.1:%d/provlog?sslmode=disable&connect_timeout=5", pg.Port()),
		KeyFile:     filepath.Join(dir, "log.key"),
		VerifierKey: vkey,
		Verifier:    v,
		TTL:         replicaTTL,
		args:        args,
		dir:         dir,
	}
	for i, a := range args {
		if a == "--lease-ttl" && i+1 < len(args) {
			if d, err := time.ParseDuration(args[i+1]); err == nil {
				rs.TTL = d
			}
		}
	}
	if err := os.WriteFile(rs.KeyFile, []byte(skey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rs.replicas = make([]*provlogd, n)
	for i := range n {
		rs.start(t, i)
	}
	return rs
}

// start starts (or restarts) replica i in its data directory and waits
// until it is healthy.
func (rs *replicaSet) start(t *testing.T, i int, extra ...string) *provlogd {
	t.Helper()
	argv := append([]string{"--storage", rs.DSN, "--key", rs.KeyFile, "--lease-ttl", replicaTTL.String()}, rs.args...)
	d := mustStartProvlogd(t, filepath.Join(rs.dir, "replica"+strconv.Itoa(i)), append(argv, extra...)...)
	rs.mu.Lock()
	rs.replicas[i] = d
	rs.mu.Unlock()
	return d
}

// replica returns replica i as last started.
func (rs *replicaSet) replica(i int) *provlogd {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.replicas[i]
}

// len returns the number of replicas.
func (rs *replicaSet) len() int { return len(rs.replicas) }

// replicaHealth is a replica's GET /healthz.
type replicaHealth struct {
	Code   int    // HTTP status
	OK     string // the first line: "ok", or the reason it is unhealthy
	Role   string // leader or follower
	Epoch  int64
	Leader string // the gRPC address writes go to
	Size   uint64
	Lag    uint64
}

// health reads d's GET /healthz.
func health(ctx context.Context, d *provlogd) (replicaHealth, error) {
	code, body, _, err := httpGet(ctx, d.HTTPURL+"healthz")
	if err != nil {
		return replicaHealth{}, err
	}
	h := replicaHealth{Code: code}
	lines := strings.Split(strings.TrimRight(string(body), "\n"), "\n")
	h.OK = lines[0]
	for _, l := range lines[1:] {
		k, v, _ := strings.Cut(l, ": ")
		switch k {
		case "role":
			h.Role = v
		case "epoch":
			h.Epoch, _ = strconv.ParseInt(v, 10, 64)
		case "leader":
			h.Leader = v
		case "size":
			h.Size, _ = strconv.ParseUint(v, 10, 64)
		case "lag_entries":
			h.Lag, _ = strconv.ParseUint(v, 10, 64)
		}
	}
	if h.Role == "" {
		return h, fmt.Errorf("GET %shealthz: no role in %q", d.HTTPURL, body)
	}
	return h, nil
}

// leader returns the index of the replica that says it leads, among those
// not in skip, and its health; -1 if none does.
func (rs *replicaSet) leader(ctx context.Context, skip ...int) (int, replicaHealth) {
	for i := range rs.len() {
		if contains(skip, i) {
			continue
		}
		h, err := health(ctx, rs.replica(i))
		if err == nil && h.Role == "leader" && h.Code == 200 {
			return i, h
		}
	}
	return -1, replicaHealth{}
}

// waitLeader polls the replicas not in skip until one leads and every
// other one of them forwards to it, or timeout passes; it returns the
// leader's index and health and how long it waited.
func (rs *replicaSet) waitLeader(ctx context.Context, timeout time.Duration, skip ...int) (int, replicaHealth, time.Duration, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		if i, h := rs.leader(ctx, skip...); i >= 0 && rs.agree(ctx, h.Leader, append(skip, i)...) {
			return i, h, time.Since(start), nil
		}
		select {
		case <-ctx.Done():
			return -1, replicaHealth{}, time.Since(start), fmt.Errorf("no replica led, followed by the others, within %v", timeout)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// agree reports whether every replica not in skip is a healthy follower
// forwarding to leader.
func (rs *replicaSet) agree(ctx context.Context, leader string, skip ...int) bool {
	for i := range rs.len() {
		if contains(skip, i) {
			continue
		}
		h, err := health(ctx, rs.replica(i))
		if err != nil || h.Code != 200 || h.Role != "follower" || h.Leader != leader {
			return false
		}
	}
	return true
}

func contains(s []int, x int) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}
