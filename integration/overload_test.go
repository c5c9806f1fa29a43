package integration

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pb "github.com/provlog/provlog/proto/provlog/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// rssBound is the peak resident memory provlogd may reach under the
// overload and input-limit tests below (its queue is bounded by entries
// and bytes, and requests by the entry cap and gRPC message limit).
const rssBound = 768 << 20

// peakRSS returns the process's peak resident set (VmHWM) in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err) // not Linux: the bound cannot be read
	}
	m := regexp.MustCompile(`VmHWM:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no VmHWM in /proc/%d/status", pid)
	}
	kb, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return kb << 10
}

// goroutines reads go_goroutines from provlogd's /metrics.
func goroutines(t *testing.T, d *provlogd) int {
	t.Helper()
	_, body, _, err := httpGet(context.Background(), d.HTTPURL+"metrics")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go_goroutines (\d+)`).FindSubmatch(body)
	if m == nil {
		t.Fatal("no go_goroutines in /metrics")
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// TestOverload drives far more concurrent batched writes than the log can
// sequence: the excess is refused fast with ResourceExhausted and retry
// information, everything accepted is durable, reads keep being served,
// and memory stays under rssBound.
func TestOverload(t *testing.T) {
	d := mustStartProvlogd(t, t.TempDir(), "--queue-max-entries", "1024")
	defer d.mustStop(t)
	// The load runs 3 s, and on until a batch has been accepted and one
	// pushed back, for at most a minute: on a loaded machine (CI, two
	// suites at once) no batch was answered at all in the first 3 s.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var ok, pushedBack, withRetry, other atomic.Int64
	go func() {
		start := time.Now()
		for ctx.Err() == nil && (time.Since(start) < 3*time.Second || ok.Load() == 0 || pushedBack.Load() == 0) {
			time.Sleep(20 * time.Millisecond)
		}
		cancel()
	}()
	var seq atomic.Uint64
	var wg sync.WaitGroup
	for range 48 {
		wg.Go(func() {
			for ctx.Err() == nil {
				batch := make([][]byte, 256)
				for i := range batch {
					batch[i] = append(fmt.Appendf(nil, "overload %d;", seq.Add(1)), make([]byte, 4096)...)
				}
				_, err := d.Log.AppendBatch(ctx, &pb.AppendBatchRequest{Entries: batch})
				switch st := status.Convert(err); {
				case err == nil:
					ok.Add(1)
				case st.Code() == codes.ResourceExhausted:
					pushedBack.Add(1)
					for _, det := range st.Details() {
						if ri, isRI := det.(*errdetails.RetryInfo); isRI && ri.RetryDelay.AsDuration() > 0 {
							withRetry.Add(1)
						}
					}
				case ctx.Err() != nil, st.Code() == codes.DeadlineExceeded:
					// The window closed (the server may see the deadline
					// pass a moment before the client does).
				default:
					other.Add(1)
					t.Errorf("write under overload: %v", err)
				}
			}
		})
	}
	var reads, readErrs atomic.Int64
	var maxRead atomic.Int64
	wg.Go(func() {
		for ctx.Err() == nil {
			start := time.Now()
			// A read in flight when the window closes may see the
			// deadline at the server a moment before ctx reports it.
			_, err := d.Log.GetCheckpoint(ctx, &pb.GetCheckpointRequest{})
			if err != nil && ctx.Err() == nil && status.Code(err) != codes.DeadlineExceeded {
				readErrs.Add(1)
				t.Logf("read under overload: %v", err)
			}
			reads.Add(1)
			if el := int64(time.Since(start)); el > maxRead.Load() {
				maxRead.Store(el)
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
	wg.Wait()
	rss := peakRSS(t, d.cmd.Process.Pid)
	t.Logf("overload: %d batches accepted, %d pushed back (%d with RetryInfo), %d other errors; %d reads, %d failed, slowest %v; peak RSS %d MiB",
		ok.Load(), pushedBack.Load(), withRetry.Load(), other.Load(), reads.Load(), readErrs.Load(), time.Duration(maxRead.Load()), rss>>20)
	if pushedBack.Load() == 0 {
		t.Error("no write was pushed back: the load did not exceed the queue")
	}
	if withRetry.Load() != pushedBack.Load() {
		t.Errorf("%d of %d pushbacks carried RetryInfo", withRetry.Load(), pushedBack.Load())
	}
	if ok.Load() == 0 || readErrs.Load() != 0 {
		t.Errorf("accepted %d batches, %d reads failed", ok.Load(), readErrs.Load())
	}
	if rss > rssBound {
		t.Errorf("peak RSS %d MiB over the %d MiB bound", rss>>20, rssBound>>20)
	}
	// Everything acknowledged is in the signed tree.
	cp, err := d.Log.GetCheckpoint(context.Background(), &pb.GetCheckpointRequest{})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitN(string(cp.Checkpoint), "\n", 3)
	if size, _ := strconv.ParseUint(lines[1], 10, 64); size < uint64(ok.Load())*256 {
		t.Errorf("tree size %d, but %d batches of 256 were acknowledged", size, ok.Load())
	}
}

// TestInputLimits sends 1,000 concurrent requests, half maximum-size entries
// and half malformed (over the cap, empty, bad tile paths): each is served
// or refused with the right status, memory stays under rssBound, and no
// goroutine is left behind.
func TestInputLimits(t *testing.T) {
	d := mustStartProvlogd(t, t.TempDir())
	defer d.mustStop(t)
	before := goroutines(t, d)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 60 * time.Second}
	type req struct {
		method, path string
		body         []byte
		want         []int
	}
	maxEntry := func(i int) []byte {
		b := bytes.Repeat([]byte{byte(i)}, 65535)
		copy(b, fmt.Sprintf("max %d;", i))
		return b
	}
	var mu sync.Mutex
	counts := map[string]int{}
	var wg sync.WaitGroup
	for i := range 1000 {
		var r req
		switch i % 6 {
		case 0, 1, 2:
			r = req{"POST", "add", maxEntry(i), []int{200, 429, 503}}
		case 3:
			r = req{"POST", "add", make([]byte, 70000), []int{413}}
		case 4:
			r = req{"POST", "add", nil, []int{400}}
		case 5:
			r = req{"GET", "tile/0/" + strings.Repeat("x", i%300), nil, []int{400, 404}}
		}
		wg.Go(func() {
			hr, _ := http.NewRequest(r.method, d.HTTPURL+r.path, bytes.NewReader(r.body))
			resp, err := client.Do(hr)
			if err != nil {
				t.Errorf("%s %s: %v", r.method, r.path, err)
				return
			}
			resp.Body.Close()
			mu.Lock()
			counts[fmt.Sprint(resp.StatusCode)]++
			mu.Unlock()
			for _, w := range r.want {
				if resp.StatusCode == w {
					return
				}
			}
			t.Errorf("%s %s (%d bytes): status %d, want one of %v", r.method, r.path[:min(len(r.path), 20)], len(r.body), resp.StatusCode, r.want)
		})
	}
	wg.Wait()
	client.CloseIdleConnections()
	rss := peakRSS(t, d.cmd.Process.Pid)
	var after int
	for range 100 { // let the server's connection goroutines wind down
		if after = goroutines(t, d); after <= before+5 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("1,000 requests: statuses %v; goroutines %d before, %d after; peak RSS %d MiB", counts, before, after, rss>>20)
	if after > before+5 {
		t.Errorf("goroutines grew from %d to %d", before, after)
	}
	if rss > rssBound {
		t.Errorf("peak RSS %d MiB over the %d MiB bound", rss>>20, rssBound>>20)
	}
}
