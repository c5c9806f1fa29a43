package log

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/provlog/provlog/storage"
	"golang.org/x/mod/sumdb/note"
)

// latencies collects call latencies from concurrent writers.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

func (l *latencies) quantile(q float64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return 0
	}
	slices.Sort(l.d)
	return l.d[int(q*float64(len(l.d)-1))]
}

// benchLog opens a log on a real directory, so commits pay for fsync.
func benchLog(b *testing.B) *Log {
	b.Helper()
	st, err := storage.Open(b.TempDir(), storage.Options{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	return benchLogOn(b, st, nil)
}

// benchLogOn opens a log on st with the given admission (nil: open).
func benchLogOn(b *testing.B, st *storage.Store, a Admitter) *Log {
	b.Helper()
	skey, _, _ := note.GenerateKey(rand.Reader, testOrigin)
	signer, _ := note.NewSigner(skey)
	l, err := Open(context.Background(), Config{Origin: testOrigin, Signer: signer, Logger: quiet, Admission: a}, st)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close(); st.Close() })
	return l
}

// BenchmarkAdd measures durable appends of 1 KiB entries from 64 concurrent
// single-entry writers, and from 8 writers of 256-entry batches.
func BenchmarkAdd(b *testing.B) {
	for _, bc := range []struct {
		name             string
		writers, perCall int
	}{{"single-64w", 64, 1}, {"batch256-8w", 8, 256}} {
		b.Run(bc.name, func(b *testing.B) {
			l := benchLog(b)
			var next atomic.Int64
			var lat latencies
			b.SetBytes(1024)
			b.ResetTimer()
			var wg sync.WaitGroup
			for range bc.writers {
				wg.Go(func() {
					for {
						first := next.Add(int64(bc.perCall)) - int64(bc.perCall)
						if first >= int64(b.N) {
							return
						}
						n := min(int64(bc.perCall), int64(b.N)-first)
						batch := make([][]byte, n)
						for i := range batch {
							e := make([]byte, 1024)
							binary.BigEndian.PutUint64(e, uint64(first)+uint64(i))
							batch[i] = e
						}
						t0 := time.Now()
						if _, err := l.AddBatch(context.Background(), batch); err != nil {
							b.Error(err)
							return
						}
						lat.add(time.Since(t0))
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
			// An add returns once its entry is durable and its round's
			// checkpoint is signed and published: this is the time to a
			// signed checkpoint.
			b.ReportMetric(lat.quantile(0.5).Seconds()*1e3, "p50-ms")
			b.ReportMetric(lat.quantile(0.99).Seconds()*1e3, "p99-ms")
		})
	}
}

// BenchmarkInclusionProof measures inclusion proofs served from a log of
// 2^17 + 1000 entries, from 2 goroutines per core.
func BenchmarkInclusionProof(b *testing.B) {
	l := benchLog(b)
	const size = 1<<17 + 1000
	batch := make([][]byte, 0, 4096)
	for i := range size {
		batch = append(batch, binary.BigEndian.AppendUint64(make([]byte, 0, 64), uint64(i)))
		if len(batch) == cap(batch) || i == size-1 {
			if _, err := l.AddBatch(context.Background(), batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	b.SetParallelism(2)
	b.ResetTimer()
	var n atomic.Uint64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := (n.Add(1) * 7919) % size
			if _, err := l.InclusionProof(context.Background(), i, size); err != nil {
				b.Error(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "proofs/s")
}
