package storage_test

import (
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/provlog/provlog/storage"
	"github.com/provlog/provlog/storage/storagetest"
)

// BenchmarkPebbleCommit commits rounds of 4096 random 1 KiB entries into a
// store on disk (synced), beside storage/postgres's
// BenchmarkPostgresCommit.
func BenchmarkPebbleCommit(b *testing.B) {
	for _, indexed := range []bool{false, true} {
		name := "plain"
		if indexed {
			name = "indexed"
		}
		b.Run(name, func(b *testing.B) {
			s, err := storage.Open(filepath.Join(b.TempDir(), "db"), storage.Options{Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			storagetest.BenchCommit(b, s, 4096, 1024, indexed)
		})
	}
}
