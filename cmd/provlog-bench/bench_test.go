package main

import (
	"os"
	"slices"
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
	if n, err := diskUsage(t.TempDir()); err != nil || n < 0 {
		t.Errorf("diskUsage = %d, %v", n, err)
	}
}
