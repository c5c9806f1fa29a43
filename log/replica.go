package log

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/provlog/provlog/event"
	"github.com/provlog/provlog/policy"
)

// Replicas
//
// Several replicas of one log share a store that fences its writers
// (storage/postgres). A Replica is one of them: at any time it leads or
// follows, and it serves every read and write either way, so a client may
// talk to any replica.
//
//   - Its supervisor goroutine owns the role. Following, it polls the
//     store (Config.PollInterval): the reader Log refreshes the tree state,
//     and the lease row names the leader. When the lease is free, expired
//     or its own (a restart under the same advertised address), it tries
//     to acquire it.
//   - Once it holds the lease it opens a writing Log over the store. Open
//     reads the tree state and the rightmost tiles after the acquisition,
//     and every round of the old epoch that committed did so before the
//     acquisition did (the store's lease row lock orders them), so the new
//     leader continues from every acknowledged entry; dedup reads the
//     store's exact leaf index, so nothing depends on memory.
//   - Leading, it renews the lease every LeaseTTL/3. A renewal refused
//     (ErrLeaseLost), the local Deadline passing without a renewal, or the
//     writing Log stopping (a fenced or failed commit) ends leadership at
//     once: writes stop going to the Log, the lease is released (which
//     fences the store's commits locally before anything is sent, so no
//     round queued from then on can commit), and the Log is closed, which
//     fails every queued add with ErrUnavailable, never acknowledging one
//     that is not durable. Then it follows again.
//   - Safety never depends on this timing: every commit is fenced by the
//     store (lease epoch, tree-size compare-and-swap, primary keys), so a
//     replica that still believes it leads cannot extend the tree once
//     another has taken the lease. The timing only bounds how long writes
//     are unavailable during a takeover.
//   - Following, writes are forwarded (Forwarder) to the leader the lease
//     names, once: a forwarded write reaching a replica that does not lead
//     is refused with ErrUnavailable rather than forwarded again. The
//     leader's answer is returned once the reader serves a tree holding
//     the entries (read your writes). With no live leader known, writes
//     fail with ErrUnavailable.
//
// Reads go to the writing Log while leading and to the reader otherwise;
// on stepping down the reader first adopts the leader's checkpoints, so
// that the tree a replica serves never shrinks across a change of role.

// Lease is a sequencer lease as a Leaser reports it.
type Lease struct {
	// Holder is the advertised address of the replica holding it; "" if
	// none ever did.
	Holder string
	// Epoch grows at every acquisition.
	Epoch int64
	// Expired reports, from ReadLease, whether the lease had expired by
	// the store's clock.
	Expired bool
	// Deadline, from AcquireLease and RenewLease, is the time in this
	// process's clock before which the lease certainly holds.
	Deadline time.Time
}

// Leaser is the lease of a store shared by replicas (an adapter of
// storage/postgres's Store). Once AcquireLease returns, the store fences
// every Commit and SetPublished by the lease: a commit made after another
// holder acquired it fails, and writes nothing.
type Leaser interface {
	// AcquireLease takes the lease for holder for ttl if it is free,
	// expired or holder's own, starting a new epoch; else it returns an
	// error wrapping ErrLeaseHeld.
	AcquireLease(ctx context.Context, holder string, ttl time.Duration) (Lease, error)
	// RenewLease extends the lease held to ttl from now; an error wraps
	// ErrLeaseLost if the lease is no longer held (any other error may be
	// transient).
	RenewLease(ctx context.Context, ttl time.Duration) (Lease, error)
	// ReleaseLease gives the lease up: commits are fenced from the call
	// on, even if it then fails to reach the store.
	ReleaseLease(ctx context.Context) error
	// ReadLease reads the lease as the store holds it.
	ReadLease(ctx context.Context) (Lease, error)
}

// Sentinels of the Leaser contract.
var (
	ErrLeaseHeld = errors.New("lease held by another replica")
	ErrLeaseLost = errors.New("lease lost")
)

// Forwarder sends writes to the leading replica.
type Forwarder interface {
	// AddBatch adds entries at the replica advertised at leader and
	// returns its answer; errors wrap the sentinels of this package as
	// the leader's answer maps to them (ErrUnavailable if it could not
	// be reached).
	AddBatch(ctx context.Context, leader string, entries [][]byte) ([]AddResult, error)
	// Forwarded reports whether the request of ctx was forwarded by
	// another replica.
	Forwarded(ctx context.Context) bool
}

type forwardAuthKey struct{}

// WithForwardedAuthorization returns ctx carrying a write's Authorization
// header value (as an HTTP front end received it, once it authenticated
// the caller), for a Forwarder to send on to the leader, which
// authenticates the caller again.
func WithForwardedAuthorization(ctx context.Context, authorization string) context.Context {
	return context.WithValue(ctx, forwardAuthKey{}, authorization)
}

// ForwardedAuthorization returns the Authorization value
// WithForwardedAuthorization put in ctx, if any.
func ForwardedAuthorization(ctx context.Context) string {
	v, _ := ctx.Value(forwardAuthKey{}).(string)
	return v
}

// ReplicaConfig configures a Replica. Zero values take the defaults
// given.
type ReplicaConfig struct {
	// Log configures the logs the replica opens (Log.Registerer also
	// receives the replica's metrics, Log.Logger its log lines).
	Log Config
	// Store is the shared store; Leaser its lease. Both required.
	Store  Storage
	Leaser Leaser
	// Forwarder forwards writes to the leader; required.
	Forwarder Forwarder
	// Advertise is this replica's address as other replicas reach it
	// (the lease holder's name); required.
	Advertise string
	// LeaseTTL is the lease's time to live; the leader renews it every
	// third of it. If zero, 3 seconds.
	LeaseTTL time.Duration
	// PollInterval is how often a follower reads the tree state and the
	// lease. If zero, 200ms.
	PollInterval time.Duration
}

// Replica is one replica of a log: a server.Log that leads or follows
// (see the Replicas section above). Its methods are safe for concurrent
// use.
type Replica struct {
	cfg    ReplicaConfig
	logger *slog.Logger
	reader *Log // opened by StartReplica; Refresh by anyone

	// Written by the supervisor goroutine only; read by anyone.
	leading atomic.Pointer[Log] // the writing Log while leading
	leader  atomic.Pointer[string]
	epoch   atomic.Int64
	lag     atomic.Uint64

	gauges replicaGauges

	stop context.CancelFunc
	done chan struct{} // closed when the supervisor has exited
}

// ReplicaStatus is what a replica reports of its role.
type ReplicaStatus struct {
	// Leading is true while this replica sequences.
	Leading bool
	// Epoch is the lease epoch it leads in, or the leader's as last read.
	Epoch int64
	// Leader is the advertised address writes go to ("" if no live
	// leader is known); this replica's own while leading.
	Leader string
	// Size is the size of the tree it serves.
	Size uint64
	// Lag is how many entries the follower was behind the store at its
	// last poll (0 while leading).
	Lag uint64
}

type replicaGauges struct {
	leader, epoch, lag prometheus.Gauge
	takeovers          prometheus.Counter
}

func newReplicaGauges(reg prometheus.Registerer) replicaGauges {
	return replicaGauges{
		leader: register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "provlog_replica_leader", Help: "1 while this replica leads (sequences), 0 while it follows.",
		})),
		epoch: register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "provlog_replica_epoch", Help: "The lease epoch this replica leads in, or the leader's as last read.",
		})),
		lag: register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "provlog_replica_lag_entries", Help: "Entries this follower was behind the store at its last poll.",
		})),
		takeovers: register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "provlog_replica_acquisitions_total", Help: "Times this replica acquired the sequencer lease.",
		})),
	}
}

func (c *ReplicaConfig) setDefaults() error {
	switch {
	case c.Store == nil || c.Leaser == nil || c.Forwarder == nil:
		return errors.New("replica config: Store, Leaser and Forwarder are required")
	case c.Advertise == "":
		return errors.New("replica config: Advertise is empty")
	case c.LeaseTTL < 0 || c.PollInterval < 0:
		return errors.New("replica config: negative LeaseTTL or PollInterval")
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = 3 * time.Second
	}
	if c.PollInterval == 0 {
		c.PollInterval = 200 * time.Millisecond
	}
	return c.Log.setDefaults()
}

// StartReplica opens the log held by the store for reading (failing as
// Open does for another key or origin) and starts the supervisor, which
// follows until it acquires the lease. Close stops it.
func StartReplica(ctx context.Context, cfg ReplicaConfig) (*Replica, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	reader, err := OpenReader(ctx, cfg.Log, cfg.Store)
	if err != nil {
		return nil, err
	}
	sctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	r := &Replica{cfg: cfg, logger: cfg.Log.Logger, reader: reader, gauges: newReplicaGauges(cfg.Log.Registerer), stop: stop, done: make(chan struct{})}
	r.setLeader("")
	go r.supervise(sctx)
	return r, nil
}

// Close stops the supervisor: a leader commits what is queued, closes its
// Log and releases the lease, so that another replica takes over at once.
func (r *Replica) Close() error {
	r.stop()
	<-r.done
	return r.reader.Close()
}

// Status returns the replica's role as it stands.
func (r *Replica) Status() ReplicaStatus {
	return ReplicaStatus{
		Leading: r.leading.Load() != nil,
		Epoch:   r.epoch.Load(),
		Leader:  *r.leader.Load(),
		Size:    r.current().IntegratedSize(),
		Lag:     r.lag.Load(),
	}
}

func (r *Replica) setLeader(addr string) { r.leader.Store(&addr) }

// supervise is the supervisor goroutine: follow until the lease is
// acquired, lead until it is lost, and again, until ctx ends.
func (r *Replica) supervise(ctx context.Context) {
	defer close(r.done)
	for ctx.Err() == nil {
		lease, ok := r.follow(ctx)
		if !ok {
			return
		}
		r.lead(ctx, lease)
	}
}

// follow polls the store until it acquires the lease (ok) or ctx ends.
func (r *Replica) follow(ctx context.Context) (Lease, bool) {
	t := time.NewTicker(r.cfg.PollInterval)
	defer t.Stop()
	for {
		r.poll(ctx)
		lease, err := r.cfg.Leaser.ReadLease(ctx)
		switch {
		case err != nil:
			if ctx.Err() == nil {
				r.logger.Warn("reading the sequencer lease", "err", err)
			}
			r.setLeader("")
		case lease.Expired || lease.Holder == "" || lease.Holder == r.cfg.Advertise:
			r.setLeader("")
			acquired, err := r.cfg.Leaser.AcquireLease(ctx, r.cfg.Advertise, r.cfg.LeaseTTL)
			if err == nil {
				return acquired, true
			}
			if !errors.Is(err, ErrLeaseHeld) && ctx.Err() == nil {
				r.logger.Warn("acquiring the sequencer lease", "err", err)
			}
		default:
			r.setLeader(lease.Holder)
			r.epoch.Store(lease.Epoch)
			r.gauges.epoch.Set(float64(lease.Epoch))
		}
		select {
		case <-ctx.Done():
			return Lease{}, false
		case <-t.C:
		}
	}
}

// poll refreshes the reader and records how far behind it was.
func (r *Replica) poll(ctx context.Context) {
	before := r.reader.IntegratedSize()
	if _, err := r.reader.Refresh(ctx); err != nil {
		if ctx.Err() == nil {
			r.logger.Warn("follower: reading the tree state", "err", err)
		}
		return
	}
	lag := r.reader.IntegratedSize() - before
	r.lag.Store(lag)
	r.gauges.lag.Set(float64(lag))
}

// lead opens the writing Log under lease and serves writes with it until
// the lease is lost, the Log stops or ctx ends; then it steps down.
func (r *Replica) lead(ctx context.Context, lease Lease) {
	r.gauges.takeovers.Inc()
	r.epoch.Store(lease.Epoch)
	r.gauges.epoch.Set(float64(lease.Epoch))
	// Open reads the tree state now that the lease is held: every round
	// of an earlier epoch either committed before the acquisition or is
	// fenced.
	lg, err := Open(ctx, r.cfg.Log, r.cfg.Store)
	if err != nil {
		r.logger.Error("acquired the sequencer lease but could not open the log; releasing it", "epoch", lease.Epoch, "err", err)
		r.release(ctx)
		wait(ctx, r.cfg.LeaseTTL) // let another replica try
		return
	}
	r.leading.Store(lg)
	r.setLeader(r.cfg.Advertise)
	r.gauges.leader.Set(1)
	r.lag.Store(0)
	r.gauges.lag.Set(0)
	r.logger.Info("leading: sequencing the log", "epoch", lease.Epoch, "size", lg.IntegratedSize())

	reason := r.hold(ctx, lg, lease)
	r.logger.Warn("stepping down: no longer sequencing", "epoch", lease.Epoch, "reason", reason)
	// The reader serves reads from now on: it first takes the leader's
	// latest checkpoint, so that no reader of this replica sees the tree
	// go back (it is not refreshed while this replica leads), then again
	// once the Log is closed (a shutdown commits what is queued).
	r.reader.adopt(ctx, lg)
	r.leading.Store(nil) // writes are forwarded (or refused) from now on
	r.setLeader("")
	if ctx.Err() != nil {
		// Shutting down while the lease holds: commit what is queued, then
		// hand the lease over.
		r.closeLog(lg)
		r.release(ctx)
	} else {
		// The lease is lost or in doubt: fence the store first, so that
		// nothing queued commits, then fail what is queued.
		r.release(ctx)
		r.closeLog(lg)
	}
	r.reader.adopt(ctx, lg)
	r.gauges.leader.Set(0)
}

// hold renews the lease every third of its TTL and watches the Log until
// leadership ends, and says why.
func (r *Replica) hold(ctx context.Context, lg *Log, lease Lease) string {
	renew := time.NewTicker(r.cfg.LeaseTTL / 3)
	defer renew.Stop()
	watch := time.NewTicker(min(r.cfg.PollInterval, r.cfg.LeaseTTL/10))
	defer watch.Stop()
	deadline := lease.Deadline
	for {
		select {
		case <-ctx.Done():
			return "shutting down"
		case <-renew.C:
			rctx, cancel := context.WithDeadline(ctx, deadline)
			l, err := r.cfg.Leaser.RenewLease(rctx, r.cfg.LeaseTTL)
			cancel()
			switch {
			case err == nil:
				deadline = l.Deadline
			case errors.Is(err, ErrLeaseLost):
				return fmt.Sprintf("renewal refused: %v", err)
			case ctx.Err() == nil:
				r.logger.Warn("renewing the sequencer lease; retrying until it expires", "epoch", lease.Epoch, "deadline", deadline, "err", err)
			}
		case <-watch.C:
		}
		if err := lg.Healthy(); err != nil {
			return fmt.Sprintf("the log stopped: %v", err)
		}
		if !time.Now().Before(deadline) {
			return "the lease expired without a renewal"
		}
	}
}

// release gives the lease up, bounded in time (the store fences its
// commits before it is reached).
func (r *Replica) release(ctx context.Context) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.LeaseTTL)
	defer cancel()
	if err := r.cfg.Leaser.ReleaseLease(rctx); err != nil {
		r.logger.Warn("releasing the sequencer lease", "err", err)
	}
}

func (r *Replica) closeLog(lg *Log) {
	if err := lg.Close(); err != nil {
		r.logger.Info("closed the writing log", "err", err)
	}
}

// wait waits for d or until ctx ends.
func wait(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// adopt makes a reader serve at least what o, a writing Log over the same
// store, has served: its checkpoints are of durable rounds.
func (l *Log) adopt(ctx context.Context, o *Log) {
	before := l.IntegratedSize()
	for {
		cur, next := l.latest.Load(), o.latest.Load()
		if next.Size <= cur.Size || l.latest.CompareAndSwap(cur, next) {
			break
		}
	}
	l.publish(o.published.Load())
	if err := l.refreshTrust(ctx, before); err != nil {
		l.cfg.Logger.Warn("follower: reading the trust history", "err", err)
	}
}

// current is the Log that serves reads now.
func (r *Replica) current() *Log {
	if lg := r.leading.Load(); lg != nil {
		return lg
	}
	return r.reader
}

// Add adds one entry (see AddBatch).
func (r *Replica) Add(ctx context.Context, entry []byte) (AddResult, error) {
	res, err := r.AddBatch(ctx, [][]byte{entry})
	if err != nil {
		return AddResult{}, err
	}
	return res[0], nil
}

// AddBatch adds entries through the writing Log while leading, else
// forwards them to the leader and returns its answer once this replica
// serves a tree that holds them.
func (r *Replica) AddBatch(ctx context.Context, entries [][]byte) ([]AddResult, error) {
	if lg := r.leading.Load(); lg != nil {
		return lg.AddBatch(ctx, entries)
	}
	if r.cfg.Forwarder.Forwarded(ctx) {
		return nil, fmt.Errorf("%w: %s does not lead (forwarded by a replica whose lease view is stale); retry", ErrUnavailable, r.cfg.Advertise)
	}
	leader := *r.leader.Load()
	if leader == "" {
		return nil, fmt.Errorf("%w: no replica leads now (the lease is free or expired, or a takeover is under way); retry", ErrUnavailable)
	}
	// A leader that stalls (stopped, partitioned) loses its lease within
	// a TTL, and a forward to it must not wait for the caller's whole
	// deadline: past two TTLs it is refused as Unavailable, to retry
	// (against the next leader; identical entries deduplicate).
	fctx, cancel := context.WithTimeout(ctx, 2*r.cfg.LeaseTTL)
	defer cancel()
	res, err := r.cfg.Forwarder.AddBatch(fctx, leader, entries)
	if err != nil {
		if ctx.Err() == nil && fctx.Err() != nil {
			return nil, fmt.Errorf("%w: the leader %s did not answer within %v; retry", ErrUnavailable, leader, 2*r.cfg.LeaseTTL)
		}
		return nil, err
	}
	if len(res) != len(entries) {
		return nil, fmt.Errorf("%w: the leader %s answered %d results for %d entries", ErrUnavailable, leader, len(res), len(entries))
	}
	var end uint64
	for _, x := range res {
		end = max(end, x.Index+1)
	}
	r.awaitSize(ctx, end)
	return res, nil
}

// awaitSize refreshes the reader until it serves a tree of size n (the
// leader answers only once its entries are durable, so one refresh
// normally suffices), a few tries at most.
func (r *Replica) awaitSize(ctx context.Context, n uint64) {
	for try := 0; try < 3 && r.reader.IntegratedSize() < n && ctx.Err() == nil; try++ {
		if _, err := r.reader.Refresh(ctx); err != nil {
			r.logger.Debug("follower: refreshing after a forwarded write", "err", err)
			return
		}
	}
}

// Healthy returns nil while the replica accepts writes: it leads and its
// Log is healthy, or it knows a live leader to forward to.
func (r *Replica) Healthy() error {
	if lg := r.leading.Load(); lg != nil {
		return lg.Healthy()
	}
	if *r.leader.Load() == "" {
		return fmt.Errorf("%w: no replica leads now", ErrUnavailable)
	}
	return nil
}

// The reads, served by the current Log.

func (r *Replica) Checkpoint() Checkpoint { return r.current().Checkpoint() }
func (r *Replica) IntegratedSize() uint64 { return r.current().IntegratedSize() }
func (r *Replica) MaxEntrySize() int      { return r.reader.MaxEntrySize() }
func (r *Replica) InclusionProof(ctx context.Context, index, size uint64) ([][]byte, error) {
	return r.current().InclusionProof(ctx, index, size)
}
func (r *Replica) IndexOf(ctx context.Context, leafHash []byte) (uint64, error) {
	return r.current().IndexOf(ctx, leafHash)
}
func (r *Replica) ConsistencyProof(ctx context.Context, from, to uint64) ([][]byte, error) {
	return r.current().ConsistencyProof(ctx, from, to)
}
func (r *Replica) Entries(ctx context.Context, start, count uint64, fn func(index uint64, entry []byte) error) error {
	return r.current().Entries(ctx, start, count, fn)
}
func (r *Replica) Tile(ctx context.Context, level, index uint64, width uint8) ([]byte, error) {
	return r.current().Tile(ctx, level, index, width)
}
func (r *Replica) ServeEntryBundle(ctx context.Context, index uint64, width uint8, acceptGzip bool) (ServedBundle, error) {
	return r.current().ServeEntryBundle(ctx, index, width, acceptGzip)
}
func (r *Replica) Search(ctx context.Context, kind byte, value string, from uint64, limit int) ([]SearchResult, uint64, error) {
	return r.current().Search(ctx, kind, value, from, limit)
}
func (r *Replica) ProofBundle(ctx context.Context, index uint64) ([]byte, error) {
	return r.current().ProofBundle(ctx, index)
}
func (r *Replica) Signers(ctx context.Context, index uint64, env *event.Envelope) ([]*policy.Key, bool) {
	return r.current().Signers(ctx, index, env)
}
