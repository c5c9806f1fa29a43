package witness

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// After a restart on the same Pebble directory the witness still refuses
// checkpoints inconsistent with the one it cosigned before.
func TestStateSurvivesRestart(t *testing.T) {
	lg := newTestLog(t, "example.com/log")
	lg.add(t, 7, "a")
	fork := lg.fork()
	lg.add(t, 5, "a")
	fork.add(t, 5, "b")

	w := newTestWitness(t, "", lg.config(t))
	if r := do(t, w.Handler(), "POST", "/add-checkpoint", lg.request(t, 0, 10)); r.code != 200 {
		t.Fatalf("first cosignature: %d %q", r.code, r.body)
	}
	w.state.Close()

	w2 := newTestWitness(t, w.dir, lg.config(t))
	h := w2.Handler()
	if r := do(t, h, "POST", "/add-checkpoint", fork.request(t, 0, 10)); r.code != 409 || r.body != "10\n" {
		t.Errorf("after restart, old 0: %d %q, want 409 \"10\\n\"", r.code, r.body)
	}
	if r := do(t, h, "POST", "/add-checkpoint", fork.request(t, 10, 10)); r.code != 422 {
		t.Errorf("after restart, forked size 10: %d %q, want 422", r.code, r.body)
	}
	if r := do(t, h, "POST", "/add-checkpoint", AddCheckpointRequest{OldSize: 10, Proof: fork.proof(t, 10, 12), Checkpoint: fork.checkpoint(t, 12)}.Marshal()); r.code != 422 {
		t.Errorf("after restart, forked size 12: %d %q, want 422", r.code, r.body)
	}
	if r := do(t, h, "POST", "/add-checkpoint", lg.request(t, 10, 12)); r.code != 200 {
		t.Errorf("after restart, consistent size 12: %d %q, want 200", r.code, r.body)
	}
	ev, err := w2.Evidence(t.Context(), lg.origin)
	if err != nil || len(ev) != 2 {
		t.Fatalf("evidence after restart: %d, %v; want 2", len(ev), err)
	}
}

// slowState widens the window between reading the record and swapping it,
// so that concurrent requests race for the compare-and-swap.
type slowState struct {
	State
	delay time.Duration
}

func (s slowState) Latest(ctx context.Context, origin string) (Record, bool, error) {
	rec, ok, err := s.State.Latest(ctx, origin)
	time.Sleep(s.delay)
	return rec, ok, err
}

// Concurrent add-checkpoint requests for one log, half from a fork, never
// get two different roots cosigned at one size, nor a rollback.
func TestConcurrentAddCheckpoint(t *testing.T) {
	lg := newTestLog(t, "example.com/log")
	lg.add(t, 3, "a")
	fork := lg.fork()
	lg.add(t, 13, "a")
	fork.add(t, 13, "b")

	base := newTestWitness(t, "", lg.config(t))
	w, err := New(Config{Signer: base.key.Signer, Logs: []LogConfig{lg.config(t)}, State: slowState{base.state, 5 * time.Millisecond}, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	h := w.Handler()
	if r := do(t, h, "POST", "/add-checkpoint", lg.request(t, 0, 3)); r.code != 200 {
		t.Fatalf("size 3: %d %q", r.code, r.body)
	}
	type win struct {
		size int64
		root [32]byte
	}
	var mu sync.Mutex
	var wins []win
	var wg sync.WaitGroup
	for i := range 40 {
		l := lg
		if i%2 == 1 {
			l = fork
		}
		size := int64(4 + i%12)
		wg.Go(func() {
			r := do(t, h, "POST", "/add-checkpoint", l.request(t, 3, size))
			switch r.code {
			case 200:
				mu.Lock()
				wins = append(wins, win{size, l.root(t, size)})
				mu.Unlock()
			case 409, 422:
			default:
				t.Errorf("status %d %q", r.code, r.body)
			}
		})
	}
	wg.Wait()
	if len(wins) != 1 {
		t.Fatalf("%d requests from size 3 were cosigned, want exactly 1: %v", len(wins), wins)
	}
	rec, _, err := base.state.Latest(t.Context(), lg.origin)
	if err != nil || int64(rec.Size) != wins[0].size || rec.Hash != wins[0].root {
		t.Fatalf("stored %d %x, cosigned %v (%v)", rec.Size, rec.Hash, wins, err)
	}
}

// failState fails CompareAndSwap, after persisting (persist) or not.
type failState struct {
	State
	persist bool
}

var errInjected = errors.New("injected failure")

func (s failState) CompareAndSwap(ctx context.Context, old *Record, next Record) error {
	if s.persist {
		if err := s.State.CompareAndSwap(ctx, old, next); err != nil {
			return err
		}
	}
	return errInjected
}

// A failed state write releases no cosignature, whether or not the write
// reached the disk; the witness then continues from whatever was stored.
func TestStateWriteFailure(t *testing.T) {
	for _, persist := range []bool{false, true} {
		lg := newTestLog(t, "example.com/log")
		lg.add(t, 8, "a")
		base := newTestWitness(t, "", lg.config(t))
		w, err := New(Config{Signer: base.key.Signer, Logs: []LogConfig{lg.config(t)}, State: failState{base.state, persist}, Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		r := do(t, w.Handler(), "POST", "/add-checkpoint", lg.request(t, 0, 5))
		if r.code != 500 || r.body == "" || r.body[0] == 0xe2 {
			t.Errorf("persist=%v: failed write gave %d %q, want 500 and no cosignature", persist, r.code, r.body)
		}
		// The healthy witness on the same state continues from it.
		want, old := 200, int64(0)
		if persist {
			old = 5
		}
		if r := do(t, base.Handler(), "POST", "/add-checkpoint", lg.request(t, old, 8)); r.code != want {
			t.Errorf("persist=%v: next request from %d: %d %q, want %d", persist, old, r.code, r.body, want)
		}
	}
}

func TestCompareAndSwap(t *testing.T) {
	st := newTestWitness(t, "").state
	ctx := t.Context()
	a := Record{Origin: "o", Size: 1, Checkpoint: []byte("a")}
	b := Record{Origin: "o", Size: 2, Checkpoint: []byte("b")}
	if err := st.CompareAndSwap(ctx, &a, b); !errors.Is(err, ErrStateChanged) {
		t.Errorf("swap from a missing record: %v, want ErrStateChanged", err)
	}
	if err := st.CompareAndSwap(ctx, nil, a); err != nil {
		t.Fatal(err)
	}
	if err := st.CompareAndSwap(ctx, nil, b); !errors.Is(err, ErrStateChanged) {
		t.Errorf("swap from nil over a record: %v, want ErrStateChanged", err)
	}
	if err := st.CompareAndSwap(ctx, &b, a); !errors.Is(err, ErrStateChanged) {
		t.Errorf("swap from the wrong record: %v, want ErrStateChanged", err)
	}
	if err := st.CompareAndSwap(ctx, &a, b); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := st.Latest(ctx, "o"); err != nil || !ok || got.Size != 2 {
		t.Errorf("Latest: %+v %v %v", got, ok, err)
	}
}
