package storage_test

import (
	"log/slog"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/provlog/provlog/storage"
	"github.com/provlog/provlog/storage/storagetest"
)

// TestSuite runs the storage suite on Pebble, each test over an in-memory
// filesystem of its own. Its fault table injects at the log.Storage
// interface (storagetest.Injector); Pebble's real filesystem faults are
// TestAppendFaults's.
func TestSuite(t *testing.T) {
	storagetest.Run(t, storagetest.Backend{
		New: func(t *testing.T) storagetest.Opener {
			fs := vfs.NewMem()
			return func(t *testing.T) storagetest.Store {
				t.Helper()
				s, err := storage.Open("db", storage.Options{FS: fs, Logger: slog.New(slog.DiscardHandler)})
				if err != nil {
					t.Fatal(err)
				}
				return &storagetest.Injector{Store: s}
			}
		},
		Faults: storagetest.InjectorFaults(),
	})
}
