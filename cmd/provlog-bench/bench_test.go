package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestTimeToCheckpoint(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	seen := []sizeSeen{{at(5), 10}, {at(20), 30}, {at(50), 31}}
	calls := []call{
		{start: at(0), maxIndex: 9, n: 1},  // covered by size 10, seen at 5
		{start: at(1), maxIndex: 10, n: 2}, // needs size 11: seen at 20, for both entries
		{start: at(2), maxIndex: 30, n: 1}, // needs size 31: seen at 50
		{start: at(3), maxIndex: 31, n: 1}, // never covered
	}
	got, missing := timeToCheckpoint(calls, seen)
	want := []time.Duration{5 * time.Millisecond, 19 * time.Millisecond, 19 * time.Millisecond, 48 * time.Millisecond}
	if !slices.Equal(got, want) || missing != 1 {
		t.Errorf("timeToCheckpoint = %v, %d missing; want %v, 1 missing", got, missing, want)
	}
}

func TestScaleSizes(t *testing.T) {
	for _, tc := range []struct {
		total int64
		n     int
		want  []uint64
	}{
		{10_000_000, 10, []uint64{1e6, 2e6, 3e6, 4e6, 5e6, 6e6, 7e6, 8e6, 9e6, 10e6}},
		{10_000_000, 4, []uint64{1e6, 2_500_000, 5e6, 7_500_000, 10e6}},
		{200_000, 4, []uint64{50_000, 100_000, 150_000, 200_000}},
	} {
		if got := scaleSizes(tc.total, tc.n); !slices.Equal(got, tc.want) {
			t.Errorf("scaleSizes(%d, %d) = %v, want %v", tc.total, tc.n, got, tc.want)
		}
	}
}

func TestSummarize(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	got := summarize(d)
	if got.N != 100 || got.P50 != 51 || got.P99 != 99 || got.Max != 100 {
		t.Errorf("summarize(1..100 ms) = %+v", got)
	}
	if got := summarize(nil); got != (Dist{}) {
		t.Errorf("summarize(nil) = %+v, want zero", got)
	}
}

func TestOpaqueSource(t *testing.T) {
	src := opaqueSource(1024, 0)
	a, b := src(1), src(2)
	if len(a) != 1024 || slices.Equal(a, b) || !slices.Equal(a, src(1)) {
		t.Error("opaqueSource: entries not 1024 bytes, distinct and reproducible")
	}
}

func TestProcSelf(t *testing.T) {
	pid := os.Getpid()
	if _, err := procCPU(pid); err != nil {
		t.Skipf("no /proc: %v", err)
	}
	if rss, err := procPeakRSS(pid); err != nil || rss <= 0 {
		t.Errorf("procPeakRSS = %d, %v", rss, err)
	}
}

// TestDiskUsage checks that diskUsage counts what the file system
// allocated, as du does, beside the apparent size: a file preallocated
// beyond its size (as a WAL is) counts its preallocation, a sparse one
// only its data.
func TestDiskUsage(t *testing.T) {
	dir := t.TempDir()
	empty, err := diskUsage(dir)
	if err != nil {
		t.Fatal(err)
	}
	small := filepath.Join(dir, "small")
	if err := os.WriteFile(small, []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	sparse, err := os.Create(filepath.Join(dir, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	defer sparse.Close()
	if err := sparse.Truncate(1 << 20); err != nil {
		t.Fatal(err)
	}
	got, err := diskUsage(dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := empty.Apparent + 10 + 1<<20; got.Apparent != want {
		t.Errorf("apparent = %d, want %d", got.Apparent, want)
	}
	if got.Allocated <= empty.Allocated || got.Allocated >= empty.Allocated+1<<20 {
		t.Errorf("allocated = %d: want some blocks for the small file and none for the 1 MiB hole (empty dir %d)",
			got.Allocated, empty.Allocated)
	}
	pre, err := os.Create(filepath.Join(dir, "prealloc"))
	if err != nil {
		t.Fatal(err)
	}
	defer pre.Close()
	const keepSize = 1 // FALLOC_FL_KEEP_SIZE: allocate without growing the file
	if err := syscall.Fallocate(int(pre.Fd()), keepSize, 0, 4<<20); err != nil {
		t.Skipf("fallocate: %v", err)
	}
	after, err := diskUsage(dir)
	if err != nil {
		t.Fatal(err)
	}
	if after.Apparent != got.Apparent || after.Allocated < got.Allocated+4<<20 {
		t.Errorf("after preallocating 4 MiB: %+v, before %+v; want the same apparent size and 4 MiB more allocated", after, got)
	}
	if _, err := diskUsage(filepath.Join(dir, "missing")); err == nil {
		t.Error("diskUsage of a missing directory: no error")
	}
}

// TestRunningProvlogdFlags checks that the flags naming a running
// provlogd are refused, each naming the flag at fault, unless all three
// are given and well formed, before anything is loaded.
func TestRunningProvlogdFlags(t *testing.T) {
	const vkey = "localhost/provlog+ed249694+AZrOXjH9UXVeHt9ZOtbJ6Q6oD/gS+4km/ZInZ9OZL97j"
	for _, tc := range []struct {
		grpc, http, key string
		want            string // in the error; empty: accepted
	}{
		{"", "", "", ""},
		{"127.0.0.1:9090", "http://127.0.0.1:8080/", vkey, ""},
		{"", "http://127.0.0.1:8080/", "", "-grpc"},
		{"", "", vkey, "-grpc"},
		{"127.0.0.1:9090", "", vkey, "-http"},
		{"127.0.0.1:9090", "http://127.0.0.1:8080/", "", "-verifier-key"},
		{"127.0.0.1:9090", "http://127.0.0.1:8080/", "localhost/provlog+ed249694", "-verifier-key"},
		{"127.0.0.1:9090", "127.0.0.1:8080", vkey, "-http"},
	} {
		c := Config{GRPCAddr: tc.grpc, HTTPURL: tc.http, VerifierKey: tc.key}
		err := c.setDefaults()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("-grpc %q -http %q -verifier-key %q: %v, want an error naming %q", tc.grpc, tc.http, tc.key, err, tc.want)
		}
	}
}
