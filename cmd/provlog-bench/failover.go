package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	provlogv1 "github.com/provlog/provlog/proto/provlog/v1"
)

// Failover is one SIGKILL of the leader and what followed.
type Failover struct {
	// Killed is the replica killed, Leader the one that took over.
	Killed string `json:"killed"`
	Leader string `json:"leader"`
	// LeaseMS is the time from the SIGKILL to the lease row naming
	// another replica; AckMS to the first append acknowledged that was
	// sent after the SIGKILL (through either survivor, polled every 5 ms).
	LeaseMS float64 `json:"lease_ms"`
	AckMS   float64 `json:"ack_ms"`
	// Failed is the appends that failed meanwhile.
	Failed int `json:"failed_appends"`
}

// FailoverResult is the failover phase.
type FailoverResult struct {
	LeaseTTLMS float64    `json:"lease_ttl_ms"`
	Runs       []Failover `json:"runs"`
	Ack        Dist       `json:"ack"`
	Lease      Dist       `json:"lease"`
}

// failovers kills the leader n times: each time, from the SIGKILL, the
// surviving replicas are sent single appends every 5 ms until one is
// acknowledged (through whichever replica leads now or forwards to it),
// and the lease row is polled for the new holder. The killed replica is
// restarted (a follower) before the next round.
func (s *replicaSet) failovers(ctx context.Context, n int) (*FailoverResult, error) {
	res := &FailoverResult{LeaseTTLMS: ms(s.ttl)}
	var acks, leases []time.Duration
	src := opaqueSource(256, 0)
	var next int64
	for i := range n {
		leader, l, err := s.leader(ctx, nil, 0, 30*time.Second)
		if err != nil {
			return res, err
		}
		// Warm: the survivors answer appends before the kill.
		survivors := s.followers(leader)
		for _, r := range survivors {
			if err := appendOnce(ctx, r, src(next), 30*time.Second); err != nil {
				return res, fmt.Errorf("failover %d: append through %s before the kill: %w", i, r.name, err)
			}
			next++
		}
		killed := time.Now()
		if err := leader.kill(); err != nil {
			return res, err
		}
		var (
			mu     sync.Mutex
			first  time.Time
			failed int
		)
		pctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		var wg sync.WaitGroup
		for _, r := range survivors {
			wg.Go(func() {
				for pctx.Err() == nil {
					mu.Lock()
					e := src(next)
					next++
					done := !first.IsZero()
					mu.Unlock()
					if done {
						return
					}
					cctx, ccancel := context.WithTimeout(pctx, 2*time.Second)
					_, err := r.p.client(0).Append(cctx, &provlogv1.AppendRequest{Entry: e})
					ccancel()
					mu.Lock()
					if err == nil && first.IsZero() {
						first = time.Now()
						cancel()
					} else if err != nil {
						failed++
					}
					mu.Unlock()
					time.Sleep(5 * time.Millisecond)
				}
			})
		}
		newLeader, nl, lerr := s.leader(ctx, leader, l.epoch, 60*time.Second)
		leaseAt := time.Now()
		wg.Wait()
		cancel()
		if lerr != nil {
			return res, fmt.Errorf("failover %d: %w", i, lerr)
		}
		if first.IsZero() {
			return res, fmt.Errorf("failover %d: no append acknowledged within 60s of the SIGKILL", i)
		}
		f := Failover{Killed: leader.name, Leader: newLeader.name, LeaseMS: ms(leaseAt.Sub(killed)), AckMS: ms(first.Sub(killed)), Failed: failed}
		res.Runs = append(res.Runs, f)
		acks, leases = append(acks, first.Sub(killed)), append(leases, leaseAt.Sub(killed))
		slog.Info("failover", "n", i, "killed", leader.name, "epoch", l.epoch, "new leader", newLeader.name, "new epoch", nl.epoch,
			"lease_ms", int(f.LeaseMS), "ack_ms", int(f.AckMS), "failed appends", failed)
		leader.restarted++
		if err := s.start(ctx, leader); err != nil {
			return res, fmt.Errorf("failover %d: restarting %s: %w", i, leader.name, err)
		}
	}
	res.Ack, res.Lease = summarize(acks), summarize(leases)
	return res, nil
}

// appendOnce appends e through r, retrying failures for up to limit.
func appendOnce(ctx context.Context, r *replica, e []byte, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := r.p.client(0).Append(cctx, &provlogv1.AppendRequest{Entry: e})
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}
