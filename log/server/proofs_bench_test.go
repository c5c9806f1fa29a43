package server

import (
	"context"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	provlogv1 "github.com/provlog/provlog/proto/provlog/v1"
)

// BenchmarkInclusionProofs is BenchmarkReads' inclusion-proof load (32
// readers over 4 connections, random entries of a log of 2^20 + 1000
// entries) reporting, beside proofs/s, the process's CPU time per proof
// (client and server together, user and system): on a shared machine the
// rate follows the other tenants' load, the CPU per proof much less. The
// load first runs untimed for 5 s, so that the compactions the log's
// writing left are over and Pebble's block cache holds the tiles.
func BenchmarkInclusionProofs(b *testing.B) {
	const size = 1<<20 + 1000
	grpcAddr, _ := benchServer(b, size)
	conns := benchClients(b, grpcAddr)
	var n atomic.Uint64
	prove := func(ctx context.Context, b *testing.B, c provlogv1.LogClient) bool {
		i := (n.Add(1) * 7919) % size
		r, err := c.GetInclusionProof(ctx, &provlogv1.GetInclusionProofRequest{
			Leaf: &provlogv1.GetInclusionProofRequest_Index{Index: i}})
		if err != nil || r.Index != i || len(r.Proof) == 0 {
			b.Errorf("GetInclusionProof(%d) = %v, %v", i, r, err)
			return false
		}
		return true
	}
	warm, stop := context.WithTimeout(context.Background(), 5*time.Second)
	defer stop()
	done := make(chan struct{})
	for w := range 32 {
		go func() {
			defer func() { done <- struct{}{} }()
			for warm.Err() == nil && prove(context.Background(), b, conns[w%len(conns)]) {
			}
		}()
	}
	for range 32 {
		<-done
	}
	b.SetParallelism(16)
	cpu0 := processCPU(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c := conns[n.Add(1)%uint64(len(conns))]
		for pb.Next() && prove(context.Background(), b, c) {
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "proofs/s")
	b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/proof")
}

// processCPU returns the CPU time this process has used, user and system.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
