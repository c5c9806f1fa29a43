package client

import (
	"bytes"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

func TestBatches(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 6<<20)
	small := []byte("x")
	for _, tc := range []struct {
		name    string
		entries [][]byte
		want    [][2]int
	}{
		{"empty", nil, nil},
		{"one", [][]byte{small}, [][2]int{{0, 1}}},
		{"by count", make([][]byte, 2*maxBatchEntries+1), [][2]int{{0, 4096}, {4096, 8192}, {8192, 8193}}},
		{"by bytes", [][]byte{big, big, big, small, big, big}, [][2]int{{0, 2}, {2, 5}, {5, 6}}},
		{"one larger than the cap", [][]byte{bytes.Repeat(small, 20<<20), small}, [][2]int{{0, 1}, {1, 2}}},
	} {
		var got [][2]int
		for lo, hi := range batches(tc.entries) {
			got = append(got, [2]int{lo, hi})
		}
		if len(got) != len(tc.want) {
			t.Errorf("%s: batches = %v, want %v", tc.name, got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%s: batches = %v, want %v", tc.name, got, tc.want)
			}
		}
	}
}

func TestBackoff(t *testing.T) {
	p := RetryPolicy{InitialBackoff: 100 * time.Millisecond, MaxBackoff: time.Second}.withDefaults()
	plain := status.Error(codes.Unavailable, "x")
	for attempt, max := range []time.Duration{100, 200, 400, 800, 1000, 1000, 1000} {
		max *= time.Millisecond
		for range 50 {
			if d := p.backoff(attempt+1, plain); d < max/2 || d > max {
				t.Fatalf("backoff(%d) = %v, want in [%v, %v]", attempt+1, d, max/2, max)
			}
		}
	}
	st, _ := status.New(codes.ResourceExhausted, "x").WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(5 * time.Second)})
	for range 50 {
		if d := p.backoff(1, st.Err()); d < 5*time.Second || d > 6*time.Second {
			t.Fatalf("backoff with RetryInfo 5s = %v, want in [5s, 6s]", d)
		}
	}
}

func TestIsLoopback(t *testing.T) {
	for target, want := range map[string]bool{
		"127.0.0.1:1": true, "127.1.2.3:1": true, "[::1]:1": true, "localhost:1": true, "localhost": true,
		"passthrough:///127.0.0.1:1": true, "0.0.0.0:1": false, "example.com:1": false, "[::]:1": false, "": false,
	} {
		if got := IsLoopback(target); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", target, got, want)
		}
	}
}
