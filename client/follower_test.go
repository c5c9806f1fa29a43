package client_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/provlog/provlog/client"
	"github.com/provlog/provlog/event"
)

// follower returns a Follower of the log at d over source ("grpc" or
// "tiles").
func follower(t *testing.T, d *provlogd, source string, set func(*client.FollowerConfig)) *client.Follower {
	t.Helper()
	cfg := client.FollowerConfig{VerifierKey: d.VerifierKey}
	switch source {
	case "grpc":
		cfg.Client = dial(t, d)
	case "tiles":
		cfg.TilesURL = d.HTTPURL
	}
	if set != nil {
		set(&cfg)
	}
	f, err := client.NewFollower(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// indices returns the indices of events.
func indices(events []client.IndexedEvent) []uint64 {
	var out []uint64
	for _, e := range events {
		out = append(out, e.Index)
	}
	return out
}

// TestFollowerIndexes appends events about three digests among opaque
// entries, across bundle edges and several polls, and wants Events to
// answer exactly the logged events about each digest, with the entries as
// logged, in a checkpoint holding them all, over gRPC and over tiles; a
// fresh follower replaying the whole log answers the same.
func TestFollowerIndexes(t *testing.T) {
	ctx := testContext(t)
	l := newWatchLog(t)
	a, b, c := digestOf(0xa1), digestOf(0xb2), digestOf(0xc3)
	want := map[event.Digest][]uint64{}
	logged := map[uint64][]byte{}
	var size uint64
	add := func(n int) {
		var es [][]byte
		about := map[int]event.Digest{}
		for i := range n {
			switch i % 97 {
			case 3:
				es, about[i] = append(es, buildEvent(t, a, "https://ci.example.com/r", "https://git.example.com/a", l.ci)), a
			case 50:
				es, about[i] = append(es, signEvent(t, b, l.other)), b
			default:
				es = append(es, fmt.Appendf(nil, "opaque %d %d", size, i))
			}
		}
		res, err := dial(t, l.d).AppendMany(ctx, es)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range res {
			if d, ok := about[i]; ok {
				want[d] = append(want[d], r.Index)
				logged[r.Index] = es[i]
			}
		}
		size += uint64(n)
	}
	for _, source := range []string{"grpc", "tiles"} {
		t.Run(source, func(t *testing.T) {
			f := follower(t, l.d, source, nil)
			if evs, cp := f.Events(a); evs != nil || cp != nil {
				t.Fatalf("Events before the first poll = %v, %v; want nothing", evs, cp)
			}
			check := func(f *client.Follower) {
				t.Helper()
				cp, err := f.Poll(ctx)
				if err != nil {
					t.Fatal(err)
				}
				for _, d := range []event.Digest{a, b, c} {
					evs, at := f.Events(d)
					if at != cp || at.Size < size {
						t.Fatalf("Events(%s) at %+v, want the polled checkpoint of size >= %d", d, at, size)
					}
					if got := indices(evs); !slices.Equal(got, want[d]) {
						t.Fatalf("Events(%s) = %v, want %v", d, got, want[d])
					}
					for _, e := range evs {
						if !bytes.Equal(e.Entry, logged[e.Index]) || !e.Event.HasSubject(d) || e.Envelope == nil {
							t.Fatalf("event %d is not the entry logged about %s", e.Index, d)
						}
					}
				}
				if st := f.Status(); st.Err != nil || st.Checkpoint != cp || st.Events+st.Skipped != cp.Size {
					t.Fatalf("Status = %+v, want the checkpoint of size %d, every entry counted", st, cp.Size)
				}
			}
			check(f) // the log as the previous subtest left it
			for _, n := range []int{300, 1, 255, 520} {
				add(n)
				check(f)
			}
			check(follower(t, l.d, source, nil))
		})
	}
}

// switchProxy serves the tlog-tiles resources of *upstream, which the
// test may change.
func switchProxy(t *testing.T, upstream *atomic.Pointer[string]) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp, err := http.Get(*upstream.Load() + strings.TrimPrefix(r.URL.Path, "/"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/"
}

// TestFollowerRefusesFork follows a log, then its fork (same key, another
// history: a bad consistency proof, a rollback, two roots for one size),
// served at the same URL, and wants an *InconsistencyError with the
// evidence written, the same error from every later poll, and answers kept
// at the checkpoint followed before.
func TestFollowerRefusesFork(t *testing.T) {
	ctx := testContext(t)
	dirA := t.TempDir()
	a := startProvlogd(t, dirA)
	b := startProvlogd(t, t.TempDir(), "--key", filepath.Join(dirA, "log.key"))
	append_(t, a, "e0", "e1")
	append_(t, b, "e0", "f1", "f2")
	check := func(t *testing.T, first, second *provlogd) {
		var upstream atomic.Pointer[string]
		upstream.Store(&first.HTTPURL)
		evidence := t.TempDir()
		f, err := client.NewFollower(client.FollowerConfig{VerifierKey: a.VerifierKey, TilesURL: switchProxy(t, &upstream), EvidenceDir: evidence})
		if err != nil {
			t.Fatal(err)
		}
		trusted, err := f.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		upstream.Store(&second.HTTPURL)
		_, err = f.Poll(ctx)
		var ie *client.InconsistencyError
		if !errors.As(err, &ie) || !bytes.Equal(ie.Older, trusted.Raw) || bytes.Equal(ie.Newer, trusted.Raw) {
			t.Fatalf("Poll of the fork = %v, want *InconsistencyError against the trusted checkpoint", err)
		}
		if filepath.Dir(ie.EvidenceFile) != evidence {
			t.Errorf("evidence file %q, want one in %s", ie.EvidenceFile, evidence)
		} else if _, err := os.Stat(ie.EvidenceFile); err != nil {
			t.Error(err)
		}
		upstream.Store(&first.HTTPURL) // even the honest view is refused now
		if _, err2 := f.Poll(ctx); !errors.Is(err2, client.ErrInconsistent) {
			t.Errorf("Poll after the fork = %v, want the inconsistency again", err2)
		}
		if _, cp := f.Events(digestOf(1)); cp != trusted {
			t.Errorf("Events after the fork at %+v, want the trusted checkpoint", cp)
		}
		if st := f.Status(); !errors.Is(st.Err, client.ErrInconsistent) {
			t.Errorf("Status().Err = %v, want the inconsistency", st.Err)
		}
	}
	t.Run("bad proof", func(t *testing.T) { check(t, a, b) })
	t.Run("rollback", func(t *testing.T) { check(t, b, a) })
	append_(t, a, "e2")
	t.Run("same size", func(t *testing.T) { check(t, a, b) })
}

// TestFollowerTamperedEntry has the log serve an entry bundle with a byte
// flipped: the poll fails, nothing of the tampered tree is answered, and
// the follower goes on once the log serves the honest bundle.
func TestFollowerTamperedEntry(t *testing.T) {
	ctx := testContext(t)
	l := newWatchLog(t)
	ev := buildEvent(t, digestOf(0x77), "https://ci.example.com/r", "https://git.example.com/a", l.ci)
	append_(t, l.d, "o0", "o1", string(ev), "o3")
	f := follower(t, l.d, "", func(c *client.FollowerConfig) { c.TilesURL = tamperProxy(t, l.d.HTTPURL, "tile/entries/000.p/4$") })
	if _, err := f.Poll(ctx); !errors.Is(err, client.ErrInclusionProof) {
		t.Fatalf("Poll of a tampered bundle = %v, want ErrInclusionProof", err)
	}
	if evs, cp := f.Events(digestOf(0x77)); evs != nil || cp != nil {
		t.Fatalf("Events after a tampered poll = %v at %v, want nothing", evs, cp)
	}
	if st := f.Status(); !errors.Is(st.Err, client.ErrInclusionProof) {
		t.Errorf("Status().Err = %v", st.Err)
	}
	honest := follower(t, l.d, "tiles", nil)
	if _, err := honest.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if evs, _ := honest.Events(digestOf(0x77)); !slices.Equal(indices(evs), []uint64{2}) {
		t.Errorf("honest follower: Events = %v, want [2]", indices(evs))
	}
}

// TestFollowerWitnessPolicy wants a checkpoint without the cosignatures
// the witness policy asks for refused (nothing followed), and a policy the
// log meets (no witness needed) followed.
func TestFollowerWitnessPolicy(t *testing.T) {
	ctx := testContext(t)
	d := startProvlogd(t, t.TempDir())
	append_(t, d, "x")
	w := newWitness(t, "w1.example")
	v, err := note.NewVerifier(d.VerifierKey)
	if err != nil {
		t.Fatal(err)
	}
	pol := fmt.Appendf(nil, "log %s %s\nwitness w1 %s https://w1.example/\nquorum w1\n", v.Name(), d.VerifierKey, w.vkey)
	f := follower(t, d, "tiles", func(c *client.FollowerConfig) { c.WitnessPolicy = pol })
	if _, err := f.Poll(ctx); !errors.Is(err, client.ErrPolicyNotSatisfied) {
		t.Fatalf("Poll of an uncosigned checkpoint = %v, want ErrPolicyNotSatisfied", err)
	}
	if st := f.Status(); st.Checkpoint != nil {
		t.Errorf("followed %+v without its cosignatures", st.Checkpoint)
	}
	none := follower(t, d, "tiles", func(c *client.FollowerConfig) { c.WitnessPolicy = []byte("quorum none\n") })
	if _, err := none.Poll(ctx); err != nil {
		t.Errorf("Poll with quorum none: %v", err)
	}
}
