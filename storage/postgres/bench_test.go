package postgres

import (
	"testing"
	"time"

	"github.com/provlog/provlog/internal/pgtest"
	"github.com/provlog/provlog/storage/storagetest"
)

// BenchmarkPostgresCommit commits rounds of 4096 random 1 KiB entries, each
// one fenced transaction (lease FOR SHARE, size CAS, COPY of the rows), to
// the test cluster over loopback TCP (fsync and synchronous_commit on),
// beside storage's BenchmarkPebbleCommit.
func BenchmarkPostgresCommit(b *testing.B) {
	for _, indexed := range []bool{false, true} {
		name := "plain"
		if indexed {
			name = "indexed"
		}
		b.Run(name, func(b *testing.B) {
			s := leader(b, pgtest.NewDB(b), "bench:7400", time.Hour)
			storagetest.BenchCommit(b, s, 4096, 1024, indexed)
		})
	}
}
