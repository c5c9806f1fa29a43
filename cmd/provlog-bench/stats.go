package main

import (
	"slices"
	"time"
)

// Dist summarizes a latency distribution in milliseconds.
type Dist struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50_ms"`
	P90 float64 `json:"p90_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

// summarize sorts d in place and returns its distribution.
func summarize(d []time.Duration) Dist {
	if len(d) == 0 {
		return Dist{}
	}
	slices.Sort(d)
	return Dist{
		N:   len(d),
		P50: ms(quantile(d, 0.50)),
		P90: ms(quantile(d, 0.90)),
		P99: ms(quantile(d, 0.99)),
		Max: ms(d[len(d)-1]),
	}
}

// quantile returns the q-quantile of sorted d (nearest rank).
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[int(q*float64(len(sorted)-1)+0.5)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// cdf returns up to n points (latency ms, fraction at or below) of sorted d,
// for plotting.
func cdf(sorted []time.Duration, n int) [][2]float64 {
	if len(sorted) == 0 {
		return nil
	}
	n = min(n, len(sorted))
	pts := make([][2]float64, 0, n)
	for i := range n {
		j := i * (len(sorted) - 1) / max(n-1, 1)
		pts = append(pts, [2]float64{ms(sorted[j]), float64(j+1) / float64(len(sorted))})
	}
	return pts
}

// ratio returns a/b, or 0 if b is 0.
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}
