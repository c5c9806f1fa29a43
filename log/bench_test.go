package log

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/provlog/provlog/storage"
	"golang.org/x/mod/sumdb/note"
)

// benchLog opens a log on a real directory, so commits pay for fsync.
func benchLog(b *testing.B) *Log {
	b.Helper()
	st, err := storage.Open(b.TempDir(), storage.Options{})
	if err != nil {
		b.Fatal(err)
	}
	skey, _, _ := note.GenerateKey(rand.Reader, testOrigin)
	signer, _ := note.NewSigner(skey)
	l, err := Open(context.Background(), Config{Origin: testOrigin, Signer: signer}, st)
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
						if _, err := l.AddBatch(context.Background(), batch); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
		})
	}
}
