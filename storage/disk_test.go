package storage

import (
	"flag"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

var (
	diskEntries = flag.Int("disk.entries", 0, "TestDiskPerEntry: entries committed in each mode (0: skip the test)")
	diskRounds  = flag.String("disk.rounds", "1,256", "TestDiskPerEntry: the modes, as entries per round")
	diskBundles = flag.Bool("disk.bundles", false, "TestDiskPerEntry: also PutBundle each full entry bundle (256 records of 2+1024 random bytes)")
)

// TestDiskPerEntry measures what a store takes on disk per 1 KiB entry:
// allocated bytes (stat blocks, as du counts them: preallocated space
// counts) and apparent bytes (du --apparent-size), for -disk.entries
// random entries committed in single-entry rounds and in rounds of 256,
// with the tiles, tree state and checkpoint a sequencer writes each round.
// It reports the figures at each quarter of the run, after Close, and the
// files that hold them; it fails if files allocate more than they hold, or
// if the allocated bytes per entry after Close exceed 1.5 times the entry
// plus its hashes. The WAL beside the log is about 32 MiB at most (see
// wal.go), which single-entry rounds amortize below 1.5× from about
// 90,000 entries (1,465 bytes per entry at 100,000):
//
//	go test -timeout 10m -run TestDiskPerEntry -v ./storage/ -disk.entries=200000 -disk.rounds=1,8,256
func TestDiskPerEntry(t *testing.T) {
	if *diskEntries <= 0 {
		t.Skip("set -disk.entries to run")
	}
	for _, f := range strings.Split(*diskRounds, ",") {
		perRound, err := strconv.Atoi(f)
		if err != nil || perRound <= 0 {
			t.Fatalf("-disk.rounds: %q is not a positive number of entries", f)
		}
		t.Run(fmt.Sprintf("round%d", perRound), func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(dir, Options{Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			n := uint64(*diskEntries)
			rng := rand.New(rand.NewPCG(uint64(perRound), 1))
			start := time.Now()
			var size uint64
			for q := 1; q <= 4; q++ {
				for size < n*uint64(q)/4 {
					k := min(uint64(perRound), n*uint64(q)/4-size)
					if err := s.Commit(diskRound(rng, size, k)); err != nil {
						t.Fatal(err)
					}
					if *diskBundles && (size+k)/256 > size/256 {
						if err := s.PutBundle(size/256, randomBytes(rng, 256*(2+1024))); err != nil {
							t.Fatal(err)
						}
					}
					size += k
				}
				t.Logf("%7d entries, open:   %s", size, measureDisk(t, dir, size))
			}
			elapsed := time.Since(start)
			m := s.db.Metrics()
			tot := m.Total()
			t.Logf("written by flushes %s, by compactions %s to sstables and %s to blob files; %d blob files",
				mib(int64(tot.TableBytesFlushed)), mib(int64(tot.TableBytesCompacted)), mib(int64(tot.BlobBytesCompacted)), m.BlobFiles.LiveCount)
			if *diskBundles && size >= 256 {
				const reads = 200
				t0 := time.Now()
				for range reads {
					if _, err := s.Bundle(nil, rng.Uint64N(size/256)); err != nil {
						t.Fatal(err)
					}
				}
				t.Logf("Bundle: %v per read of a random bundle", time.Since(t0)/reads)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			u := diskUsage(t, dir)
			t.Logf("%7d entries, closed: %s (%v, %.0f entries/s)", size, u.perEntry(size), elapsed.Round(time.Millisecond), float64(size)/elapsed.Seconds())
			t.Logf("files: %s", u.byKind())
			t.Logf("WAL files (allocated/apparent): %s", strings.Join(u.wals, ", "))
			// An entry, its leaf hash and its share of the level-0 tile,
			// as BENCHMARKS.md counts the raw size.
			const raw = 1024 + hashSize + hashSize
			t.Logf("%.2f× the entries and their hashes (%d bytes each)", float64(u.allocated)/float64(size)/raw, raw)
			if u.allocated > u.apparent+u.apparent/100+1<<20 {
				t.Errorf("files allocate %s for %s of content", mib(u.allocated), mib(u.apparent))
			}
			// Stored bundles are a second copy of the entries, beside
			// the target.
			if got := float64(u.allocated) / float64(size); got > 1.5*raw && !*diskBundles {
				t.Errorf("%.0f bytes allocated per entry, want at most %.0f (1.5 × %d)", got, 1.5*raw, raw)
			}
		})
	}
}

// diskRound is a round of k random 1 KiB entries after size, with the
// tiles a sequencer rewrites (the rightmost tile of each level, full
// level-0 tiles with their inner levels), a compact range and a
// checkpoint of the usual sizes.
func diskRound(rng *rand.Rand, size, k uint64) *Round {
	r := &Round{Start: size}
	for range k {
		e := make([]byte, 1024)
		for i := 0; i < len(e); i += 8 {
			v := rng.Uint64()
			for j := range 8 {
				e[i+j] = byte(v >> (8 * j))
			}
		}
		r.Entries, r.LeafHashes = append(r.Entries, e), append(r.LeafHashes, hash(e))
	}
	end := size + k
	for level := uint64(0); end>>(8*level) > 0; level++ {
		lo, hi := size>>(8*level), end>>(8*level)
		if hi == lo {
			continue
		}
		for idx := lo / 256; idx <= (hi-1)/256; idx++ {
			w := min(256, hi-idx*256)
			t := Tile{Level: level, Index: idx, Hashes: randomBytes(rng, int(w)*hashSize)}
			if w == 256 {
				t.Inner = randomBytes(rng, innerSize)
			}
			r.Tiles = append(r.Tiles, t)
		}
	}
	r.State.Size = end
	for range popcount(end) {
		r.State.Range = append(r.State.Range, randomBytes(rng, hashSize))
	}
	r.State.Checkpoint = fmt.Appendf(nil, "example.com/log\n%d\n%x\n\n— example.com/log %x\n", end, randomBytes(rng, hashSize), randomBytes(rng, 68))
	return r
}

func randomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func popcount(x uint64) (n int) {
	for ; x != 0; x &= x - 1 {
		n++
	}
	return n
}

// diskUse is what the files under a directory take, by kind of file.
type diskUse struct {
	allocated, apparent int64
	kinds               map[string][2]int64 // allocated, apparent
	wals                []string            // each WAL: name allocated/apparent
}

func (u diskUse) perEntry(n uint64) string {
	return fmt.Sprintf("%6.0f bytes/entry allocated, %6.0f apparent (%s allocated, %s apparent)",
		float64(u.allocated)/float64(n), float64(u.apparent)/float64(n), mib(u.allocated), mib(u.apparent))
}

func (u diskUse) byKind() string {
	var parts []string
	for _, k := range []string{"log", "sst", "blob", "manifest", "other"} {
		if v, ok := u.kinds[k]; ok {
			parts = append(parts, fmt.Sprintf("%s %s allocated / %s apparent", k, mib(v[0]), mib(v[1])))
		}
	}
	return strings.Join(parts, "; ")
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func measureDisk(t *testing.T, dir string, n uint64) string {
	u := diskUsage(t, dir)
	return u.perEntry(n) + "; " + u.byKind()
}

// diskUsage sums stat blocks (as du does) and sizes under dir.
func diskUsage(t *testing.T, dir string) diskUse {
	t.Helper()
	u := diskUse{kinds: map[string][2]int64{}}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) { // removed by Pebble meanwhile
				return nil
			}
			return err
		}
		fi, err := d.Info()
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("%s: no stat blocks", path)
		}
		alloc, size := st.Blocks*512, fi.Size()
		u.allocated += alloc
		u.apparent += size
		kind := "other"
		switch name := d.Name(); {
		case strings.HasSuffix(name, ".log"):
			kind = "log"
		case strings.HasSuffix(name, ".sst"):
			kind = "sst"
		case strings.HasSuffix(name, ".blob"):
			kind = "blob"
		case strings.HasPrefix(name, "MANIFEST"):
			kind = "manifest"
		}
		if kind == "log" {
			u.wals = append(u.wals, fmt.Sprintf("%s %s/%s", d.Name(), mib(alloc), mib(size)))
		}
		v := u.kinds[kind]
		u.kinds[kind] = [2]int64{v[0] + alloc, v[1] + size}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestWALFilesBounded checks, on the real filesystem, where preallocation
// shows, that WAL files are not preallocated (each allocates what it
// holds) and that the WAL stays within a few memtables.
func TestWALFilesBounded(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rng := rand.New(rand.NewPCG(3, 4))
	// 48 MiB of entries: the memtable fills and rotates several times.
	var size uint64
	for size < 48<<10 {
		if err := s.Commit(diskRound(rng, size, 256)); err != nil {
			t.Fatal(err)
		}
		size += 256
		if size%(8<<10) == 0 {
			var total int64
			for _, w := range walFiles(t, dir) {
				if w.allocated > w.apparent+1<<20 {
					t.Errorf("after %d entries: WAL %s allocates %s for %s of content", size, w.name, mib(w.allocated), mib(w.apparent))
				}
				total += w.allocated
			}
			// The live WAL, one being flushed and three recycled ones.
			if total > 5*(16<<20)*11/10 {
				t.Errorf("after %d entries: the WAL allocates %s", size, mib(total))
			}
		}
	}
	if err := s.db.Flush(); err != nil {
		t.Fatal(err)
	}
	// Pebble deletes or recycles obsolete WAL files in the background:
	// the live one and three recycled ones remain.
	deadline := time.Now().Add(10 * time.Second)
	for {
		wals := walFiles(t, dir)
		if len(wals) <= 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a flush, %d WAL files kept: %v", len(wals), wals)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type walFile struct {
	name                string
	allocated, apparent int64
}

func walFiles(t *testing.T, dir string) []walFile {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var wals []walFile
	for _, d := range des {
		if !strings.HasSuffix(d.Name(), ".log") {
			continue
		}
		fi, err := d.Info()
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		wals = append(wals, walFile{d.Name(), fi.Sys().(*syscall.Stat_t).Blocks * 512, fi.Size()})
	}
	return wals
}
