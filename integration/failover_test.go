package integration

// Process-level failover of provlogd replicas on PostgreSQL (issue 14):
// three real provlogd processes share one database under concurrent load
// (appends through every replica), a fault is injected for real (SIGSTOP,
// pg_terminate_backend, PostgreSQL stopped -m immediate, a network
// partition made of network namespaces, the primary database lost and its
// synchronous standby promoted), and the log is then verified with code
// independent of provlog's packages, as TestCrashUnderLoad does
// (crashModel, crashLog.verify): 0 acknowledged entries lost, indices
// unique, the root recomputed with sumdb/tlog from every entry, the tiles
// equal to sumdb/tlog's, every checkpoint seen on any replica of a prefix
// of the final tree, consistency proofs verified with
// transparency-dev/merkle (live, from the largest checkpoint seen to every
// larger one, and afterwards).
//
// The replicas run as
//
//	provlogd --storage postgres://… --advertise ADDR --lease-ttl 1s
//	         --key SHARED --origin O --grpc-listen ADDR --http-listen …
//
// and the test finds the leader by reading the lease row
// (provlog_lease.holder, the advertised address) from the database.
//
// Durations are measured and logged; the one asserted is the issue's
// bound for a new leader, the lease TTL plus one renewal, computed
// generously from the TTL (foLeaderBound).

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	pb "github.com/provlog/provlog/proto/provlog/v1"
	"github.com/transparency-dev/merkle/proof"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc/status"

	"github.com/provlog/provlog/internal/pgtest"
	"github.com/provlog/provlog/internal/provlogdproc"
)

// foAllowRollback logs rather than fails a replica's GET /checkpoint going
// back: a leader stepping down switches its reads to its reader before the
// reader adopts the checkpoints it served (log/replica.go lead), so that
// for up to the lease TTL and more it serves its start-up tree.
var foAllowRollback = flag.Bool("failover.allow-rollback", false, "log rather than fail a replica's GET /checkpoint going back in the failover tests")

const (
	// foOrigin is the origin of the replicated log.
	foOrigin = "example.com/provlog-failover"
	// foLeaseTTL is the replicas' --lease-ttl.
	foLeaseTTL = time.Second
	// foReplicas is the number of provlogd replicas.
	foReplicas = 3
	// foWritersPerReplica writers append through each replica.
	foWritersPerReplica = 2
	// foCallTimeout bounds one append; longer than any stall a scenario
	// makes, so that an answer given after the stall is seen.
	foCallTimeout = 15 * time.Second
	// foWarmup is how long the load runs before the fault.
	foWarmup = 1500 * time.Millisecond
	// foAfter is how long the load runs once the fault is over.
	foAfter = 1500 * time.Millisecond
	// foRequireNetnsEnv turns a missing ip netns into a failure.
	foRequireNetnsEnv = "PROVLOG_REQUIRE_NETNS"
)

// foLeaderBound is the bound on the time to a new leader: the
// lease TTL plus one renewal (at most a TTL), with 5 s of slack for a
// loaded 2-core machine.
func foLeaderBound() time.Duration { return 2*foLeaseTTL + 5*time.Second }

// foCluster is one log key and the replicas sharing a database.
type foCluster struct {
	t        *testing.T
	origin   string
	dsn      string // the replicas' --storage
	adminDSN string // what the test reads the lease with
	keyFile  string
	vkey     string
	v        note.Verifier
	reps     []*foReplica
}

// foReplica is one provlogd replica.
type foReplica struct {
	name      string
	advertise string // its --grpc-listen and --advertise
	netns     string // the network namespace it runs in, or ""
	dsn       string
	d         *provlogd
}

func (r *foReplica) pid() int { return r.d.cmd.Process.Pid }

// foNewCluster makes the shared log key; replicas are added with start.
func foNewCluster(t *testing.T, dsn, adminDSN string) *foCluster {
	t.Helper()
	dir := t.TempDir()
	skey, vkey, err := note.GenerateKey(rand.Reader, foOrigin)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "log.key", skey+"\n")
	return &foCluster{t: t, origin: foOrigin, dsn: dsn, adminDSN: adminDSN, keyFile: filepath.Join(dir, "log.key"), vkey: vkey, v: v}
}

// foURL is the postgres:// URL of database db on the servers at hostports.
func foURL(db string, hostports ...string) string {
	u := "postgres://postgres@" + strings.Join(hostports, ",") + "/" + db + "?sslmode=disable&connect_timeout=3"
	if len(hostports) > 1 {
		u += "&target_session_attrs=read-write"
	}
	return u
}

// start starts replica name with its gRPC server on grpcAddr (also its
// advertised address) and HTTP on httpAddr, inside netns if not "", on
// the database dsn (the cluster's if ""). It returns once provlogd has
// printed its banner and answers GET /healthz (with any status: a
// follower may not be healthy in the leader's sense). The process is
// killed when the test ends.
func (c *foCluster) start(name, grpcAddr, httpAddr, netns, dsn string) *foReplica {
	t := c.t
	t.Helper()
	if dsn == "" {
		dsn = c.dsn
	}
	r := &foReplica{name: name, advertise: grpcAddr, netns: netns, dsn: dsn}
	d, err := launchProvlogd(t, launch{name: name, netns: netns, answering: true, argv: []string{"--data", t.TempDir(), "--origin", foOrigin, "--key", c.keyFile,
		"--grpc-listen", grpcAddr, "--http-listen", httpAddr, "--admission", "open",
		"--storage", dsn, "--advertise", grpcAddr, "--lease-ttl", foLeaseTTL.String()}})
	if err != nil {
		t.Fatalf("replica %s: %v", name, err)
	}
	r.d = d
	c.reps = append(c.reps, r)
	return r
}

// foLease is the lease row as the database holds it.
type foLease struct {
	Holder string
	Epoch  int64
	Valid  bool // not expired by the database's clock
}

// lease reads the lease row (storage/postgres's provlog_lease).
func (c *foCluster) lease(ctx context.Context) (foLease, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.adminDSN)
	if err != nil {
		return foLease{}, err
	}
	defer conn.Close(context.Background())
	var l foLease
	err = conn.QueryRow(ctx, `SELECT holder, epoch, expires_at > now() FROM provlog_lease WHERE id = 1`).Scan(&l.Holder, &l.Epoch, &l.Valid)
	return l, err
}

// waitLeader waits until a valid lease is held by a replica other than
// not (if not is set) with an epoch above minEpoch, and returns it and
// the replica.
func (c *foCluster) waitLeader(ctx context.Context, not *foReplica, minEpoch int64, limit time.Duration) (foLease, *foReplica, error) {
	deadline := time.Now().Add(limit)
	var last foLease
	var lastErr error
	for time.Now().Before(deadline) {
		l, err := c.lease(ctx)
		if err == nil && l.Valid && l.Epoch > minEpoch && (not == nil || l.Holder != not.advertise) {
			for _, r := range c.reps {
				if r.advertise == l.Holder {
					return l, r, nil
				}
			}
			return l, nil, fmt.Errorf("the lease is held by %q, which is no replica's advertised address", l.Holder)
		}
		last, lastErr = l, err
		time.Sleep(20 * time.Millisecond)
	}
	return last, nil, fmt.Errorf("no new leader within %v: last lease %+v, last error %v", limit, last, lastErr)
}

// foSetup starts a database of the test's own and three replicas on it
// over loopback with startReplicas (replicas_helpers_test.go), and waits
// for a leader.
func foSetup(t *testing.T, ctx context.Context) (*pgtest.Cluster, *foCluster, *foReplica, foLease) {
	t.Helper()
	rs := startReplicas(t, foReplicas, "--lease-ttl", foLeaseTTL.String())
	c := &foCluster{t: t, origin: rs.Verifier.Name(), dsn: rs.DSN, adminDSN: rs.DSN, keyFile: rs.KeyFile, vkey: rs.VerifierKey, v: rs.Verifier}
	for i := range rs.len() {
		d := rs.replica(i)
		// provlogd advertises the bound gRPC address by default.
		c.reps = append(c.reps, &foReplica{name: fmt.Sprintf("r%d", i), advertise: d.GRPCAddr, dsn: rs.DSN, d: d})
	}
	l, leader, err := c.waitLeader(ctx, nil, 0, startTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("replica %s leads (epoch %d)", leader.name, l.Epoch)
	return rs.PG, c, leader, l
}

// foCall is one acknowledged append.
type foCall struct {
	rep        int // index in foCluster.reps
	start, end time.Time
	entries    int
}

// foLoad is the concurrent load over every replica and the checkpoint
// monitors, with what they saw.
type foLoad struct {
	c      *foCluster
	m      *crashModel
	cl     *crashLog
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex // guards what follows
	calls   []foCall
	failed  []foCall       // failed appends
	errs    map[string]int // failed appends by replica and code
	bad     []error        // model violations, forks: the test fails
	largest checkpoint     // the largest checkpoint seen on any replica
	proofs  int            // consistency proofs verified live
	backs   []foBack       // a replica serving a smaller checkpoint than it served before
	dups    int            // entries sent once and acknowledged as duplicates
}

// foBack is a replica's GET /checkpoint going back.
type foBack struct {
	rep       string
	size, was uint64
	at        time.Time
}

// foStartLoad starts foWritersPerReplica writers per replica (single
// Appends and AppendBatches of 2 to 32 fresh entries) and one checkpoint
// monitor per replica.
func (c *foCluster) foStartLoad(round int) *foLoad {
	seed := mrand.Uint64()
	c.t.Logf("load seed %d", seed)
	ctx, cancel := context.WithCancel(context.Background())
	l := &foLoad{c: c, m: newCrashModel(seed), cl: &crashLog{}, cancel: cancel, errs: map[string]int{}}
	for i := range c.reps {
		for w := range foWritersPerReplica {
			id := i*foWritersPerReplica + w
			rng := mrand.New(mrand.NewPCG(seed, uint64(id)))
			l.wg.Go(func() { l.write(ctx, i, round, id, rng) })
		}
		l.wg.Go(func() { l.monitor(ctx, i) })
	}
	return l
}

func (l *foLoad) fail(err error) {
	l.mu.Lock()
	l.bad = append(l.bad, err)
	l.mu.Unlock()
}

// write appends fresh entries through replica i until ctx is done.
func (l *foLoad) write(ctx context.Context, i, round, w int, rng *mrand.Rand) {
	r := l.c.reps[i]
	for n := 0; ctx.Err() == nil; {
		k := 1
		if rng.IntN(5) >= 3 {
			k = 2 + rng.IntN(31)
		}
		entries := make([][]byte, k)
		for j := range entries {
			entries[j] = l.m.newEntry(round, w, n+j)
		}
		n += k
		l.m.send(entries)
		cctx, cancel := context.WithTimeout(ctx, foCallTimeout)
		start := time.Now()
		var res []*pb.AppendResponse
		var err error
		if k == 1 {
			var a *pb.AppendResponse
			if a, err = r.d.Log.Append(cctx, &pb.AppendRequest{Entry: entries[0]}); err == nil {
				res = []*pb.AppendResponse{a}
			}
		} else {
			var b *pb.AppendBatchResponse
			if b, err = r.d.Log.AppendBatch(cctx, &pb.AppendBatchRequest{Entries: entries}); err == nil {
				res = b.Results
			}
		}
		end := time.Now()
		cancel()
		if err != nil {
			l.mu.Lock()
			l.errs[r.name+" "+status.Code(err).String()]++
			l.failed = append(l.failed, foCall{rep: i, start: start, end: end, entries: k})
			l.mu.Unlock()
			select {
			case <-ctx.Done():
			case <-time.After(20 * time.Millisecond):
			}
			continue
		}
		// Sent once, an entry may still come back a duplicate: a follower
		// may forward it again after a leader committed it and died.
		dups := 0
		for _, a := range res {
			if a.Duplicate {
				dups++
			}
		}
		if err := l.m.ack(entries, res, false); err != nil {
			l.fail(fmt.Errorf("append through %s: %w", r.name, err))
			return
		}
		l.mu.Lock()
		l.calls = append(l.calls, foCall{rep: i, start: start, end: end, entries: k})
		l.dups += dups
		l.mu.Unlock()
	}
}

// monitor polls replica i's GET /checkpoint. Every checkpoint must verify
// with the log key and have the root of every other seen at its size
// (crashLog.see); one larger than the largest seen so far must be proven
// consistent with it by a proof from that replica, verified with
// transparency-dev/merkle. A client keeping the largest checkpoint sees
// no fork this way.
func (l *foLoad) monitor(ctx context.Context, i int) {
	r := l.c.reps[i]
	var last uint64
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
			return
		case <-time.After(25 * time.Millisecond):
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		cp, err := fetchCheckpoint(cctx, r.d.HTTPURL, l.c.v)
		cancel()
		if err != nil {
			if strings.Contains(err.Error(), "checkpoint note") || strings.Contains(err.Error(), "checkpoint text") ||
				strings.Contains(err.Error(), "checkpoint origin") || strings.Contains(err.Error(), "checkpoint size") ||
				strings.Contains(err.Error(), "checkpoint root") {
				l.fail(fmt.Errorf("%s served a checkpoint that does not verify: %w", r.name, err))
				return
			}
			continue // down, stopped or partitioned
		}
		if cp.Size < last {
			l.mu.Lock()
			l.backs = append(l.backs, foBack{r.name, cp.Size, last, time.Now()})
			l.mu.Unlock()
		}
		last = max(last, cp.Size)
		if err := l.cl.see(cp); err != nil {
			l.fail(fmt.Errorf("fork seen on %s: %w", r.name, err))
			return
		}
		l.mu.Lock()
		old := l.largest
		l.mu.Unlock()
		if cp.Size <= old.Size {
			continue
		}
		if old.Size > 0 {
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			res, err := r.d.Log.GetConsistencyProof(cctx, &pb.GetConsistencyProofRequest{FromSize: old.Size, ToSize: cp.Size})
			cancel()
			if err != nil {
				continue // try again at the next poll
			}
			if err := proof.VerifyConsistency(hasher, old.Size, cp.Size, res.Proof, old.Root, cp.Root); err != nil {
				l.fail(fmt.Errorf("fork: %s's checkpoint of size %d is not consistent with the largest seen before, of size %d, by its proof: %w\n%s\n%s",
					r.name, cp.Size, old.Size, err, old.Raw, cp.Raw))
				return
			}
		}
		l.mu.Lock()
		if cp.Size > l.largest.Size {
			l.largest = cp
			if old.Size > 0 {
				l.proofs++
			}
		}
		l.mu.Unlock()
	}
}

// stop ends the load: calls in flight are cancelled (unknown outcome).
func (l *foLoad) stop(t *testing.T) {
	t.Helper()
	l.cancel()
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(foCallTimeout + 10*time.Second):
		t.Fatal("the load did not stop")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, err := range l.bad {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
}

// logStuck logs the appends through reps (followers) that were sent
// during a leader's stall [from, to) and were answered only after it
// ended, or never: a follower forwards with the caller's deadline alone,
// so a write forwarded to a stalled leader waits for it even once
// another leads.
func (l *foLoad) logStuck(t *testing.T, from, to time.Time, reps []*foReplica) {
	l.mu.Lock()
	defer l.mu.Unlock()
	stuck, total, longest := 0, 0, time.Duration(0)
	for _, set := range [][]foCall{l.calls, l.failed} {
		for _, c := range set {
			if c.start.Before(from) || !c.start.Before(to) || !slices.Contains(reps, l.c.reps[c.rep]) {
				continue
			}
			total++
			if c.end.After(to) {
				stuck++
				longest = max(longest, c.end.Sub(c.start))
			}
		}
	}
	t.Logf("appends through the followers sent during the stall: %d, of which %d were answered only after it ended (longest %v)", total, stuck, longest.Round(time.Millisecond))
}

// acked returns the acknowledged calls through replicas reps (all if
// none) started at or after since.
func (l *foLoad) acked(since time.Time, reps ...*foReplica) []foCall {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []foCall
	for _, c := range l.calls {
		if !c.start.Before(since) && (len(reps) == 0 || slices.Contains(reps, l.c.reps[c.rep])) {
			out = append(out, c)
		}
	}
	return out
}

// firstAck returns the end of the first call started at or after since
// through one of reps that was acknowledged, waiting up to limit.
func (l *foLoad) firstAck(since time.Time, limit time.Duration, reps ...*foReplica) (time.Time, error) {
	deadline := time.Now().Add(limit)
	for {
		calls := l.acked(since, reps...)
		if len(calls) > 0 {
			first := calls[0].end
			for _, c := range calls {
				if c.end.Before(first) {
					first = c.end
				}
			}
			return first, nil
		}
		if time.Now().After(deadline) {
			l.mu.Lock()
			errs := fmt.Sprint(l.errs)
			l.mu.Unlock()
			return time.Time{}, fmt.Errorf("no append acknowledged within %v (failures so far: %s)", limit, errs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitAcked waits until n appends started after since have been
// acknowledged, within limit.
func (l *foLoad) waitAcked(since time.Time, n int, limit time.Duration) {
	for deadline := time.Now().Add(limit); len(l.acked(since)) < n && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
}

// foAppendThrough appends a fresh entry through each replica of reps,
// each try bounded by 2 s and retried for up to limit: appends through
// followers keep working. It returns when each was acknowledged.
func foAppendThrough(ctx context.Context, t *testing.T, l *foLoad, limit time.Duration, reps ...*foReplica) []time.Time {
	t.Helper()
	var at []time.Time
	for _, r := range reps {
		e := fmt.Appendf(nil, "failover probe through %s at %s", r.name, time.Now().Format(time.RFC3339Nano))
		l.m.send([][]byte{e})
		var err error
		for deadline := time.Now().Add(limit); ; {
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			var a *pb.AppendResponse
			a, err = r.d.Log.Append(cctx, &pb.AppendRequest{Entry: e})
			cancel()
			if err == nil {
				if err := l.m.ack([][]byte{e}, []*pb.AppendResponse{a}, false); err != nil {
					t.Fatal(err)
				}
				at = append(at, time.Now())
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("append through %s: still failing after %v: %v", r.name, limit, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return at
}

// verify checks the whole log as served by replica r against the model
// (crashLog.verify: entries, root, tiles, every checkpoint seen, proofs,
// resubmissions through r), once r's checkpoint covers every entry
// acknowledged.
func (l *foLoad) verify(ctx context.Context, t *testing.T, r *foReplica) {
	t.Helper()
	l.m.mu.Lock()
	var need uint64
	for idx := range l.m.byIndex {
		need = max(need, idx+1)
	}
	l.m.mu.Unlock()
	// r may be a follower, which trails the leader: wait for it to catch
	// up with the largest checkpoint seen too, which may cover entries
	// sequenced whose acknowledgement the stopped load did not receive
	// (CI: a seen checkpoint of 538 beyond r's 537, all acknowledged 537).
	l.mu.Lock()
	seen := l.largest.Size
	l.mu.Unlock()
	for deadline := time.Now().Add(time.Minute); ; {
		cp, err := fetchCheckpoint(ctx, r.d.HTTPURL, l.c.v)
		if err == nil && cp.Size >= max(need, seen) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s's checkpoint (%d, %v) does not cover the %d entries acknowledged, or the checkpoint of %d seen, a minute after the load", r.name, cp.Size, err, need, seen)
		}
		time.Sleep(20 * time.Millisecond)
	}
	rng := mrand.New(mrand.NewPCG(l.m.seed, 1))
	l.cl.verify(ctx, t, r.d, l.c.v, l.m, rng, true, true)
	l.proveSeen(ctx, t, r)
	acked := 0
	for _, rec := range l.m.recs {
		if rec.acked {
			acked++
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	t.Logf("verified through %s: %d entries acknowledged, %d lost; %d sent and unacknowledged found logged; tree size %d; %d checkpoints seen, %d consistency proofs verified live; %d entries sent once came back duplicates; failed appends %v",
		r.name, acked, l.cl.lost, l.cl.recovered, l.cl.size, len(l.cl.seen), l.proofs, l.dups, l.errs)
	byRep := map[string][]foBack{}
	for _, b := range l.backs {
		byRep[b.rep] = append(byRep[b.rep], b)
	}
	report := t.Errorf
	if *foAllowRollback {
		report = t.Logf
	}
	for rep, bs := range byRep {
		report("GET /checkpoint went back on %s %d times, from %s to %s: first size %d after %d, last size %d",
			rep, len(bs), bs[0].at.Format("15:04:05.000"), bs[len(bs)-1].at.Format("15:04:05.000"), bs[0].size, bs[0].was, bs[len(bs)-1].size)
	}
	if l.cl.lost != 0 {
		t.Fatalf("%d acknowledged entries lost", l.cl.lost)
	}
}

// proveSeen verifies, with transparency-dev/merkle, consistency proofs
// served by r from up to 32 of the checkpoints seen (evenly spread over
// their sizes, the smallest and largest included) to the verified tree.
// (crashLog.verify has checked every seen root against the root
// recomputed at its size already.)
func (l *foLoad) proveSeen(ctx context.Context, t *testing.T, r *foReplica) {
	t.Helper()
	var sizes []uint64
	for size := range l.cl.seen {
		if size > 0 && size < l.cl.size {
			sizes = append(sizes, size)
		}
	}
	slices.Sort(sizes)
	const most = 32
	for i := range min(most, len(sizes)) {
		size := sizes[i*(len(sizes)-1)/max(min(most, len(sizes))-1, 1)]
		res, err := r.d.Log.GetConsistencyProof(ctx, &pb.GetConsistencyProofRequest{FromSize: size, ToSize: l.cl.size})
		if err != nil {
			t.Fatalf("GetConsistencyProof(%d, %d) from %s: %v", size, l.cl.size, r.name, err)
		}
		if err := proof.VerifyConsistency(hasher, size, l.cl.size, res.Proof, l.cl.seen[size], l.cl.cp.Root); err != nil {
			t.Fatalf("the checkpoint of size %d seen during the load is not consistent with the verified tree of size %d: %v", size, l.cl.size, err)
		}
	}
}

// others returns the replicas other than r.
func (c *foCluster) others(r *foReplica) []*foReplica {
	var out []*foReplica
	for _, o := range c.reps {
		if o != r {
			out = append(out, o)
		}
	}
	return out
}

// checkNewLeader waits for a leader other than old (or any, with an epoch
// above minEpoch, if old is nil) and fails the test unless one comes
// within foLeaderBound of the fault.
func (c *foCluster) checkNewLeader(ctx context.Context, t *testing.T, fault time.Time, old *foReplica, minEpoch int64) (foLease, *foReplica) {
	t.Helper()
	l, r, err := c.waitLeader(ctx, old, minEpoch, foLeaderBound()+5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(fault)
	t.Logf("new leader %s (epoch %d) %v after the fault", r.name, l.Epoch, took.Round(time.Millisecond))
	if took > foLeaderBound() {
		t.Errorf("new leader %v after the fault, beyond the lease TTL plus one renewal (%v, with slack: %v)", took.Round(time.Millisecond), 2*foLeaseTTL, foLeaderBound())
	}
	return l, r
}

// TestFailoverSIGSTOPLeader stops the leader with SIGSTOP past its lease
// under load, then resumes it: a follower takes over within the bound,
// the old leader's round in flight is fenced (nothing it acknowledges is
// missing; an index it gave is no other entry's), and a real
// provlog-witness polling a follower, as well as the monitors keeping the
// largest checkpoint, see no fork.
func TestFailoverSIGSTOPLeader(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	_, c, leader, lease := foSetup(t, ctx)
	w := foStartWitness(t, c, c.others(leader)[0])
	load := c.foStartLoad(1)
	time.Sleep(foWarmup)

	stopped := time.Now()
	if err := leader.d.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			leader.d.cmd.Process.Signal(syscall.SIGCONT)
		}
	}
	defer resume()
	_, newLeader := c.checkNewLeader(ctx, t, stopped, leader, lease.Epoch)
	for i, at := range foAppendThrough(ctx, t, load, foLeaderBound(), c.others(leader)...) {
		t.Logf("append through follower %s acknowledged %v after SIGSTOP (tries of 2 s)", c.others(leader)[i].name, at.Sub(stopped).Round(time.Millisecond))
	}
	// Past its lease for good: three TTLs in all, then resume it.
	time.Sleep(time.Until(stopped.Add(3 * foLeaseTTL)))
	resume()
	resumedAt := time.Now()
	t.Logf("leader %s stopped for %v", leader.name, resumedAt.Sub(stopped).Round(time.Millisecond))
	time.Sleep(foAfter)
	if l, err := c.lease(ctx); err != nil || l.Holder == leader.advertise && l.Epoch <= lease.Epoch {
		t.Fatalf("after SIGCONT the lease is %+v (%v): the resumed leader still holds its old epoch", l, err)
	}
	foAppendThrough(ctx, t, load, foLeaderBound(), c.reps...)
	load.stop(t)
	n := 0
	for _, cl := range load.acked(stopped.Add(-foCallTimeout), leader) {
		if cl.start.Before(resumedAt) && cl.end.After(resumedAt) {
			n++
		}
	}
	t.Logf("%d appends sent to the stopped leader were acknowledged after SIGCONT (each verified durable below)", n)
	load.logStuck(t, stopped, resumedAt, c.others(leader))
	load.verify(ctx, t, newLeader)
	w.check(ctx, t, load)
}

// TestFailoverTerminateLeaderSessions ends the leader's database sessions
// with pg_terminate_backend, three times 300 ms apart, under load: rounds
// in flight fail (some with an unknown outcome), and a leader (the same
// or another) must be acknowledging appends again within the bound, with
// nothing acknowledged lost.
func TestFailoverTerminateLeaderSessions(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	pg, c, leader, lease := foSetup(t, ctx)
	load := c.foStartLoad(2)
	time.Sleep(foWarmup)

	fault := time.Now()
	total := 0
	for i := range 3 {
		n, how, err := foTerminate(ctx, pg, leader, c.reps)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			t.Logf("terminating the leader's sessions %s", how)
		}
		total += n
		time.Sleep(300 * time.Millisecond)
	}
	t.Logf("terminated %d sessions of leader %s", total, leader.name)
	if total == 0 {
		t.Fatalf("the leader %s had no session to terminate", leader.name)
	}
	last := time.Now()
	l, r := c.checkNewLeader(ctx, t, last, nil, 0)
	first, err := load.firstAck(last, foLeaderBound())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("after the last termination: leader %s (epoch %d, was %s epoch %d); first append acknowledged %v later; %v since the first termination",
		r.name, l.Epoch, leader.name, lease.Epoch, first.Sub(last).Round(time.Millisecond), time.Since(fault).Round(time.Millisecond))
	load.waitAcked(last, 20, foAfter)
	foAppendThrough(ctx, t, load, foLeaderBound(), c.others(r)...)
	load.stop(t)
	load.verify(ctx, t, c.others(r)[0])
}

// foTerminate ends the sessions of replica r: by application_name with
// pgtest's Terminate when r's sessions carry a name of their own, else
// (the replicas share one) by backend pid, the sessions found from r's
// TCP connections to the database (/proc/PID/net/tcp and its fds). It
// returns the sessions ended and how.
func foTerminate(ctx context.Context, pg *pgtest.Cluster, r *foReplica, all []*foReplica) (int, string, error) {
	sessions, err := foSessionsOf(ctx, pg, r.pid())
	if err != nil {
		return 0, "", err
	}
	names := map[string]bool{}
	var pids []int32
	for pid, name := range sessions {
		names[name] = true
		pids = append(pids, pid)
	}
	if len(names) == 1 {
		var name string
		for name = range names {
		}
		shared := false
		for _, o := range all {
			if o == r {
				continue
			}
			os, err := foSessionsOf(ctx, pg, o.pid())
			if err != nil {
				return 0, "", err
			}
			for _, n := range os {
				shared = shared || n == name
			}
		}
		if !shared {
			n, err := pg.Terminate(ctx, name)
			return n, fmt.Sprintf("by application_name %q (pgtest.Terminate)", name), err
		}
		how := fmt.Sprintf("by backend pid: every replica's sessions have application_name %q, so pgtest.Terminate cannot single out the leader", name)
		n, err := foTerminatePids(ctx, pg, pids)
		return n, how, err
	}
	n, err := foTerminatePids(ctx, pg, pids)
	return n, fmt.Sprintf("by backend pid (application names %v)", names), err
}

func foTerminatePids(ctx context.Context, pg *pgtest.Cluster, pids []int32) (int, error) {
	if len(pids) == 0 {
		return 0, nil
	}
	n, err := pg.Exec(ctx, `SELECT pg_terminate_backend(p) FROM unnest($1::int[]) AS p`, pids)
	return int(n), err
}

// foSessionsOf returns the backend pid and application_name of every
// database session process pid holds over TCP.
func foSessionsOf(ctx context.Context, pg *pgtest.Cluster, pid int) (map[int32]string, error) {
	ports, err := foClientPorts(pid, pg.Port())
	if err != nil {
		return nil, err
	}
	out := map[int32]string{}
	if len(ports) == 0 {
		return out, nil
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, pg.DSN("postgres"))
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(cctx, `SELECT pid, application_name FROM pg_stat_activity WHERE client_port = ANY($1)`, ports)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var p int32
		var name string
		if err := rows.Scan(&p, &name); err != nil {
			return nil, err
		}
		out[p] = name
	}
	return out, rows.Err()
}

// foClientPorts returns the local ports of process pid's TCP connections
// to remote port to, from /proc/PID/fd (socket inodes) and
// /proc/PID/net/tcp.
func foClientPorts(pid, to int) ([]int32, error) {
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return nil, err
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if ino, ok := strings.CutPrefix(link, "socket:["); err == nil && ok {
			inodes[strings.TrimSuffix(ino, "]")] = true
		}
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/net/tcp", pid))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ports []int32
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
		fs := strings.Fields(sc.Text())
		if len(fs) < 10 || !inodes[fs[9]] {
			continue
		}
		_, lport, ok1 := strings.Cut(fs[1], ":")
		_, rport, ok2 := strings.Cut(fs[2], ":")
		lp, err1 := strconv.ParseUint(lport, 16, 16)
		rp, err2 := strconv.ParseUint(rport, 16, 16)
		if ok1 && ok2 && err1 == nil && err2 == nil && int(rp) == to {
			ports = append(ports, int32(lp))
		}
	}
	return ports, sc.Err()
}

// TestFailoverPostgresImmediateRestart stops PostgreSQL with -m immediate
// (a crash: recovery from the WAL) under load, keeps it down for a lease
// TTL and starts it again: appends fail meanwhile, and once it is back a
// leader must acknowledge appends within the bound, every replica's
// appends work, and nothing acknowledged is lost.
func TestFailoverPostgresImmediateRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	pg, c, _, lease := foSetup(t, ctx)
	load := c.foStartLoad(3)
	time.Sleep(foWarmup)

	down := time.Now()
	if err := pg.StopImmediate(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(foLeaseTTL)
	if err := pg.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("127.0.0.1:%d", pg.Port()); !strings.Contains(c.dsn, want) {
		t.Fatalf("PostgreSQL came back on another port (%s); the replicas' DSN is %s", want, c.dsn)
	}
	up := time.Now()
	t.Logf("PostgreSQL down for %v", up.Sub(down).Round(time.Millisecond))
	acked := 0
	for _, cl := range load.acked(down.Add(100 * time.Millisecond)) {
		if cl.start.Before(up) {
			acked++
		}
	}
	l, r := c.checkNewLeader(ctx, t, up, nil, 0)
	first, err := load.firstAck(up, foLeaderBound())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("after the restart: leader %s (epoch %d, was %d); first append acknowledged %v after PostgreSQL was back; %d appends started while it was down were acknowledged",
		r.name, l.Epoch, lease.Epoch, first.Sub(up).Round(time.Millisecond), acked)
	load.waitAcked(up, 20, foAfter)
	foAppendThrough(ctx, t, load, foLeaderBound(), c.reps...)
	load.stop(t)
	load.verify(ctx, t, c.others(r)[0])
}

// foNetns is a network namespace with two veth links to the host: one to
// the database (cut to partition), one for clients and the other
// replicas.
type foNetns struct {
	name           string
	dbHost, dbNS   string // the database link's addresses, host side and namespace side
	svcHost, svcNS string // the service link's
	dbLink         string // the host end of the database link
}

// foIP runs ip with args, within 10 s.
func foIP(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// foNewNetns makes the namespace and its links, or skips the test where
// ip netns is not permitted (unless foRequireNetnsEnv is set).
func foNewNetns(t *testing.T) *foNetns {
	t.Helper()
	id := os.Getpid()%10000*10 + mrand.IntN(10)
	n := &foNetns{name: fmt.Sprintf("plfo%d", id), dbLink: fmt.Sprintf("plfd%dh", id)}
	if err := foIP("netns", "add", n.name); err != nil {
		if os.Getenv(foRequireNetnsEnv) == "" {
			t.Skipf("skipping: network namespaces not permitted here (%v); set %s to make this a failure", err, foRequireNetnsEnv)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() {
		foIP("link", "del", n.dbLink)
		foIP("link", "del", fmt.Sprintf("plfs%dh", id))
		if err := foIP("netns", "del", n.name); err != nil {
			t.Errorf("removing the namespace: %v", err)
		}
	})
	// 10.X.Y.0/30 for the database link, 10.X.Y.4/30 for the service link.
	x, y := 100+id%100, id/100%256
	n.dbHost, n.dbNS = fmt.Sprintf("10.%d.%d.1", x, y), fmt.Sprintf("10.%d.%d.2", x, y)
	n.svcHost, n.svcNS = fmt.Sprintf("10.%d.%d.5", x, y), fmt.Sprintf("10.%d.%d.6", x, y)
	links := []struct{ host, ns, hostAddr, nsAddr string }{
		{n.dbLink, fmt.Sprintf("plfd%dn", id), n.dbHost, n.dbNS},
		{fmt.Sprintf("plfs%dh", id), fmt.Sprintf("plfs%dn", id), n.svcHost, n.svcNS},
	}
	steps := [][]string{{"netns", "exec", n.name, "ip", "link", "set", "lo", "up"}}
	for _, l := range links {
		steps = append(steps,
			[]string{"link", "add", l.host, "type", "veth", "peer", "name", l.ns},
			[]string{"link", "set", l.ns, "netns", n.name},
			[]string{"addr", "add", l.hostAddr + "/30", "dev", l.host},
			[]string{"link", "set", l.host, "up"},
			[]string{"netns", "exec", n.name, "ip", "addr", "add", l.nsAddr + "/30", "dev", l.ns},
			[]string{"netns", "exec", n.name, "ip", "link", "set", l.ns, "up"})
	}
	for _, s := range steps {
		if err := foIP(s...); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

// foForward forwards TCP connections accepted on listen (host:0) to
// target and returns the address it listens on; everything closes when
// the test ends. It stands for PostgreSQL listening on the veth address
// (pgtest's server listens on 127.0.0.1 only).
func foForward(t *testing.T, listen, target string) string {
	t.Helper()
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	var closed bool
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		closed = true
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	track := func(c net.Conn) bool {
		mu.Lock()
		defer mu.Unlock()
		if closed {
			c.Close()
			return false
		}
		conns = append(conns, c)
		return true
	}
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.DialTimeout("tcp", target, 5*time.Second)
			if err != nil {
				in.Close()
				continue
			}
			if !track(in) || !track(out) {
				in.Close()
				out.Close()
				return
			}
			go func() { io.Copy(out, in); out.Close() }()
			go func() { io.Copy(in, out); in.Close() }()
		}
	}()
	return ln.Addr().String()
}

// TestFailoverNetworkPartition runs the first leader in a network
// namespace of its own whose link to the database is then cut (ip link
// set … down: packets dropped, sessions hanging, as in a real partition)
// while its service link stays up, so that clients and the other
// replicas still reach it: it must stop acknowledging (every
// acknowledgement it gives is verified durable), a follower must take over
// within the bound, and no fork is seen. The link is restored and the old
// leader rejoins as a follower whose appends work.
func TestFailoverNetworkPartition(t *testing.T) {
	ns := foNewNetns(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	pg := pgtest.New(t)
	if _, err := pg.CreateDB(ctx, "failover"); err != nil {
		t.Fatal(err)
	}
	direct := foURL("failover", fmt.Sprintf("127.0.0.1:%d", pg.Port()))
	viaVeth := foURL("failover", foForward(t, net.JoinHostPort(ns.dbHost, "0"), fmt.Sprintf("127.0.0.1:%d", pg.Port())))
	c := foNewCluster(t, direct, direct)
	// The replica in the namespace starts first and leads; the others
	// listen on the service link's host address, which it can reach.
	leader := c.start("r0", net.JoinHostPort(ns.svcNS, "7400"), net.JoinHostPort(ns.svcNS, "7401"), ns.name, viaVeth)
	lease, first, err := c.waitLeader(ctx, nil, 0, startTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if first != leader {
		t.Fatalf("%s leads, want r0", first.name)
	}
	for i := 1; i < foReplicas; i++ {
		c.start(fmt.Sprintf("r%d", i), freeAddr(t, ns.svcHost), freeAddr(t, ns.svcHost), "", "")
	}
	w := foStartWitness(t, c, c.reps[1])
	load := c.foStartLoad(4)
	time.Sleep(foWarmup)

	cut := time.Now()
	if err := foIP("link", "set", ns.dbLink, "down"); err != nil {
		t.Fatal(err)
	}
	_, newLeader := c.checkNewLeader(ctx, t, cut, leader, lease.Epoch)
	for i, at := range foAppendThrough(ctx, t, load, foLeaderBound(), c.others(leader)...) {
		t.Logf("append through follower %s acknowledged %v after the cut (tries of 2 s)", c.others(leader)[i].name, at.Sub(cut).Round(time.Millisecond))
	}
	time.Sleep(time.Until(cut.Add(3 * foLeaseTTL)))
	during := load.acked(cut, leader)
	if err := foIP("link", "set", ns.dbLink, "up"); err != nil {
		t.Fatal(err)
	}
	healed := time.Now()
	t.Logf("cut at %s, healed at %s", cut.Format("15:04:05.000"), healed.Format("15:04:05.000"))
	t.Logf("partitioned for %v; %d appends through the partitioned leader started after the cut were acknowledged (each verified durable below)",
		healed.Sub(cut).Round(time.Millisecond), len(during))
	time.Sleep(foAfter)
	foAppendThrough(ctx, t, load, foLeaderBound()+5*time.Second, c.reps...)
	rejoined, err := load.firstAck(healed, time.Second, leader)
	if err == nil {
		t.Logf("the old leader acknowledged again %v after the link came back", rejoined.Sub(healed).Round(time.Millisecond))
	}
	load.stop(t)
	load.logStuck(t, cut, healed, c.others(leader))
	load.verify(ctx, t, newLeader)
	w.check(ctx, t, load)
}

// foWitness is a real provlog-witness polling one replica.
type foWitness struct {
	p   *witnessProc
	rep *foReplica
}

var foWitnessBin struct {
	once sync.Once
	path string
	err  error
}

// foStartWitness starts provlog-witness polling r's tiles every 50 ms.
func foStartWitness(t *testing.T, c *foCluster, r *foReplica) *foWitness {
	t.Helper()
	foWitnessBin.once.Do(func() {
		dir, err := os.MkdirTemp("", "provlog-failover-witness-")
		if err != nil {
			foWitnessBin.err = err
			return
		}
		foWitnessBin.path = filepath.Join(dir, "provlog-witness")
		foWitnessBin.err = provlogdproc.Build(context.Background(), "github.com/provlog/provlog/cmd/provlog-witness", foWitnessBin.path)
	})
	if foWitnessBin.err != nil {
		t.Fatal(foWitnessBin.err)
	}
	dir := t.TempDir()
	writeFile(t, dir, "logs.conf", fmt.Sprintf("log %s %s %s\n", c.origin, c.vkey, r.d.HTTPURL))
	p := startWitness(t, foWitnessBin.path, "--config", filepath.Join(dir, "logs.conf"), "--data", filepath.Join(dir, "w"),
		"--name", "failover-witness.example", "--poll-interval", "50ms")
	return &foWitness{p: p, rep: r}
}

// check requires that the witness stored no evidence and cosigned a
// checkpoint of the verified tree.
func (w *foWitness) check(ctx context.Context, t *testing.T, l *foLoad) {
	t.Helper()
	code, body, _, err := httpGet(ctx, w.p.url+"evidence")
	if err != nil || code != 200 {
		t.Fatalf("witness GET /evidence: %d %v", code, err)
	}
	if ev := strings.TrimSpace(string(body)); ev != "[]" {
		t.Fatalf("the witness polling %s stored fork evidence: %s", w.rep.name, ev)
	}
	h := sha256.Sum256([]byte(l.c.origin))
	code, body, _, err = httpGet(ctx, w.p.url+hex.EncodeToString(h[:])+"/checkpoint")
	if err != nil || code != 200 {
		t.Fatalf("witness's checkpoint: %d %v", code, err)
	}
	cp, err := openCheckpoint(body, l.c.v)
	if err != nil {
		t.Fatalf("witness's checkpoint: %v", err)
	}
	if cp.Size == 0 {
		t.Fatal("the witness cosigned only the empty tree")
	}
	if cp.Size <= l.cl.size {
		if root, err := l.cl.hashes.treeHash(cp.Size); err != nil || !bytes.Equal(root, cp.Root) {
			t.Fatalf("the witness cosigned size %d root %x, not a prefix of the verified tree of size %d (%v)", cp.Size, cp.Root, l.cl.size, err)
		}
	} else {
		// Cosigned after the verification's resubmissions: proven
		// consistent with the verified tree.
		res, err := w.rep.d.Log.GetConsistencyProof(ctx, &pb.GetConsistencyProofRequest{FromSize: l.cl.size, ToSize: cp.Size})
		if err != nil {
			t.Fatal(err)
		}
		if err := proof.VerifyConsistency(hasher, l.cl.size, cp.Size, res.Proof, l.cl.cp.Root, cp.Root); err != nil {
			t.Fatalf("the witness's checkpoint of size %d is not consistent with the verified tree of size %d: %v", cp.Size, l.cl.size, err)
		}
	}
	t.Logf("the witness polling %s cosigned up to size %d, no evidence", w.rep.name, cp.Size)
}

// foStandby is a hot standby of a pgtest cluster, made with pg_basebackup
// and streaming from it.
type foStandby struct {
	bin, dir, data string
	port           int
	cred           *syscall.Credential
	cmd            *exec.Cmd
	exited         chan struct{}
}

func (s *foStandby) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return pgtest.Command(ctx, s.bin, s.dir, s.cred, name, args...)
}

func (s *foStandby) run(ctx context.Context, name string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if out, err := s.command(ctx, name, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

// foStartStandby makes a standby of primary with pg_basebackup -R and
// starts it on a free port; it is killed and removed when the test ends.
func foStartStandby(ctx context.Context, t *testing.T, primary *pgtest.Cluster) *foStandby {
	t.Helper()
	bin, err := pgtest.FindBin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath(filepath.Join(bin, "pg_basebackup")); err != nil {
		t.Fatalf("pg_basebackup: %v", err)
	}
	cred, err := pgtest.User()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "pgstandby-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			t.Fatal(err)
		}
	}
	s := &foStandby{bin: bin, dir: dir, data: filepath.Join(dir, "data"), cred: cred, exited: make(chan struct{})}
	if err := s.run(ctx, "pg_basebackup", "-h", "127.0.0.1", "-p", strconv.Itoa(primary.Port()), "-U", "postgres",
		"-D", s.data, "-R", "-X", "stream", "-c", "fast"); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t, "127.0.0.1")
	_, port, _ := net.SplitHostPort(addr)
	s.port, _ = strconv.Atoi(port)
	logf, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	s.cmd = exec.Command(filepath.Join(bin, "postgres"), "-D", s.data, "-p", port, "-k", dir,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=on", "-c", "max_connections=300", "-c", "shared_buffers=64MB",
		"-c", "hot_standby=on", "-c", "cluster_name=standby")
	s.cmd.Dir = dir
	s.cmd.Env = append(os.Environ(), "LC_ALL=C")
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() {
		s.cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-s.exited:
		case <-time.After(30 * time.Second):
			s.cmd.Process.Kill()
			<-s.exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "server.log"))
			t.Logf("standby's log:\n%s", b[max(0, len(b)-3000):])
		}
	})
	if err := foWaitSQL(ctx, s.dsn("postgres"), `SELECT pg_is_in_recovery()::text`, "true"); err != nil {
		t.Fatalf("the standby: %v", err)
	}
	return s
}

func (s *foStandby) dsn(db string) string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=%s sslmode=disable connect_timeout=5", s.port, db)
}

// promote promotes the standby (pg_ctl promote, waiting for it).
func (s *foStandby) promote(ctx context.Context) error {
	return s.run(ctx, "pg_ctl", "promote", "-D", s.data, "-w", "-t", "60")
}

// foWaitSQL waits up to a minute until query, run on dsn, returns want
// (as text).
func foWaitSQL(ctx context.Context, dsn, query, want string) error {
	var got string
	var err error
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		var conn *pgx.Conn
		if conn, err = pgx.Connect(cctx, dsn); err == nil {
			err = conn.QueryRow(cctx, query).Scan(&got)
			conn.Close(context.Background())
		}
		cancel()
		if err == nil && got == want {
			return nil
		}
	}
	return fmt.Errorf("%s: got %q (%v), want %q within a minute", query, got, err, want)
}

// TestFailoverStandbyPromotion runs the replicas on a primary with a
// synchronous standby (streaming replication, synchronous_standby_names
// set, synchronous_commit on) through a DSN naming both servers with
// target_session_attrs=read-write, so that pgx finds the writable one by
// itself. Under load the primary is stopped with -m immediate (and never
// comes back) and the standby promoted: a leader must acknowledge appends
// on it within the bound, and every entry acknowledged before the loss is
// in the promoted database.
func TestFailoverStandbyPromotion(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	primary := pgtest.New(t)
	if _, err := primary.CreateDB(ctx, "failover"); err != nil {
		t.Fatal(err)
	}
	standby := foStartStandby(ctx, t, primary)
	if _, err := primary.Exec(ctx, `ALTER SYSTEM SET synchronous_standby_names = '*'`); err != nil {
		t.Fatal(err)
	}
	if _, err := primary.Exec(ctx, `SELECT pg_reload_conf()`); err != nil {
		t.Fatal(err)
	}
	if err := foWaitSQL(ctx, primary.DSN("postgres"), `SELECT string_agg(sync_state, ',') FROM pg_stat_replication`, "sync"); err != nil {
		t.Fatalf("the standby is not synchronous: %v", err)
	}
	url := foURL("failover", fmt.Sprintf("127.0.0.1:%d", primary.Port()), fmt.Sprintf("127.0.0.1:%d", standby.port))
	c := foNewCluster(t, url, url)
	for i := range foReplicas {
		c.start(fmt.Sprintf("r%d", i), freeAddr(t, "127.0.0.1"), freeAddr(t, "127.0.0.1"), "", "")
	}
	lease, _, err := c.waitLeader(ctx, nil, 0, startTimeout)
	if err != nil {
		t.Fatal(err)
	}
	load := c.foStartLoad(5)
	time.Sleep(foWarmup)

	lost := time.Now()
	if err := primary.StopImmediate(ctx); err != nil {
		t.Fatal(err)
	}
	load.m.mu.Lock()
	var ackedBefore uint64
	for idx := range load.m.byIndex {
		ackedBefore = max(ackedBefore, idx+1)
	}
	load.m.mu.Unlock()
	time.Sleep(foLeaseTTL / 2)
	if err := standby.promote(ctx); err != nil {
		t.Fatal(err)
	}
	promoted := time.Now()
	t.Logf("primary stopped -m immediate; the standby promoted %v later; entries acknowledged up to index %d before the loss",
		promoted.Sub(lost).Round(time.Millisecond), int64(ackedBefore)-1)
	l, r := c.checkNewLeader(ctx, t, promoted, nil, lease.Epoch-1)
	first, err := load.firstAck(promoted, foLeaderBound())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("on the promoted standby: leader %s (epoch %d), first append acknowledged %v after the promotion", r.name, l.Epoch, first.Sub(promoted).Round(time.Millisecond))
	load.waitAcked(promoted, 20, foAfter)
	foAppendThrough(ctx, t, load, foLeaderBound(), c.reps...)
	load.stop(t)
	load.verify(ctx, t, c.others(r)[0])
}
