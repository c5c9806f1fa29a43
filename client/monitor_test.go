package client_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/provlog/provlog/client"
	"github.com/provlog/provlog/event"
	provlogv1 "github.com/provlog/provlog/proto/provlog/v1"
)

// monitor returns a Monitor of d reading over gRPC or tlog-tiles, with its
// state in stateFile.
func monitor(t *testing.T, d *provlogd, source, stateFile string) *client.Monitor {
	t.Helper()
	cfg := client.MonitorConfig{VerifierKey: d.VerifierKey, StateFile: stateFile}
	switch source {
	case "grpc":
		cfg.Client = dial(t, d)
	case "tiles":
		cfg.TilesURL = d.HTTPURL
	}
	m, err := client.NewMonitor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func append_(t *testing.T, d *provlogd, es ...string) {
	t.Helper()
	var bs [][]byte
	for _, e := range es {
		bs = append(bs, []byte(e))
	}
	if _, err := dial(t, d).AppendMany(testContext(t), bs); err != nil {
		t.Fatal(err)
	}
}

func TestMonitorFollows(t *testing.T) {
	ctx := testContext(t)
	d := startProvlogd(t, t.TempDir())
	for _, source := range []string{"grpc", "tiles"} {
		t.Run(source, func(t *testing.T) {
			state := filepath.Join(t.TempDir(), "state")
			m := monitor(t, d, source, state)
			if m.Latest() != nil {
				t.Fatal("Latest() before the first poll is not nil")
			}
			prev := uint64(0)
			for round := range 4 {
				cp, err := m.Poll(ctx)
				if err != nil {
					t.Fatalf("round %d: Poll: %v", round, err)
				}
				if cp.Size < prev {
					t.Fatalf("round %d: size %d after %d", round, cp.Size, prev)
				}
				prev = cp.Size
				if b, err := os.ReadFile(state); err != nil || !bytes.Equal(b, cp.Raw) {
					t.Fatalf("round %d: state file = %q, %v; want the checkpoint", round, b, err)
				}
				append_(t, d, entriesStrings(source, round*300, 300)...)
			}
			// A new Monitor resumes from the state file.
			m2 := monitor(t, d, source, state)
			if got := m2.Latest(); got == nil || got.Size != prev {
				t.Fatalf("resumed Monitor's Latest = %+v, want size %d", got, prev)
			}
			if cp, err := m2.Poll(ctx); err != nil || cp.Size != prev+300 {
				t.Fatalf("resumed Poll = %+v, %v; want size %d", cp, err, prev+300)
			}
		})
	}
}

func entriesStrings(prefix string, from, n int) []string {
	var out []string
	for _, e := range entries(prefix, from+n)[from:] {
		out = append(out, string(e))
	}
	return out
}

func TestMonitorStateFileMustVerify(t *testing.T) {
	d := startProvlogd(t, t.TempDir())
	state := filepath.Join(t.TempDir(), "state")
	if err := os.WriteFile(state, []byte("not a checkpoint\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := client.NewMonitor(client.MonitorConfig{VerifierKey: d.VerifierKey, StateFile: state, TilesURL: d.HTTPURL}); err == nil {
		t.Error("NewMonitor with a state file not signed by the log succeeded")
	}
}

func TestMonitorRunStopsWithContext(t *testing.T) {
	d := startProvlogd(t, t.TempDir())
	m, err := client.NewMonitor(client.MonitorConfig{VerifierKey: d.VerifierKey, StateFile: filepath.Join(t.TempDir(), "s"), TilesURL: d.HTTPURL, Interval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := m.Run(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Run = %v, want DeadlineExceeded", err)
	}
	if m.Latest() == nil {
		t.Error("Run stored no checkpoint")
	}
}

// TestMonitorDetectsFork runs two logs with the same key (so the same
// origin) and diverging entries, and checks that a Monitor that has seen
// one detects the other on its first poll, keeps its state and leaves the
// evidence.
func TestMonitorDetectsFork(t *testing.T) {
	ctx := testContext(t)
	dirA := t.TempDir()
	a := startProvlogd(t, dirA)
	b := startProvlogd(t, t.TempDir(), "--key", filepath.Join(dirA, "log.key"))
	if a.VerifierKey != b.VerifierKey {
		t.Fatalf("the two logs have keys %s and %s, want the same", a.VerifierKey, b.VerifierKey)
	}
	append_(t, a, "e0", "e1")
	append_(t, b, "e0", "f1", "f2")

	// check polls first (trusting it) then second with the same state, and
	// wants an inconsistency, with a proof if wantProof.
	check := func(t *testing.T, source string, first, second *provlogd, wantProof bool) {
		dir := t.TempDir()
		state := filepath.Join(dir, "state")
		trusted, err := monitor(t, first, source, state).Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		m := monitor(t, second, source, state)
		_, err = m.Poll(ctx)
		var ie *client.InconsistencyError
		if !errors.As(err, &ie) || !errors.Is(err, client.ErrInconsistent) {
			t.Fatalf("Poll of the forked log = %v, want *InconsistencyError", err)
		}
		t.Logf("detected: %v", err)
		if !bytes.Equal(ie.Older, trusted.Raw) || bytes.Equal(ie.Newer, trusted.Raw) || len(ie.Newer) == 0 {
			t.Errorf("evidence checkpoints: older %q, newer %q; want the trusted one and the forked one", ie.Older, ie.Newer)
		}
		if (len(ie.Proof) > 0) != wantProof {
			t.Errorf("evidence proof has %d hashes, want some: %v", len(ie.Proof), wantProof)
		}
		if st, err := os.ReadFile(state); err != nil || !bytes.Equal(st, trusted.Raw) {
			t.Errorf("state file after the fork = %q, %v; want the trusted checkpoint kept", st, err)
		}
		if got := m.Latest(); got == nil || !bytes.Equal(got.Raw, trusted.Raw) {
			t.Errorf("Latest after the fork = %+v, want the trusted checkpoint", got)
		}
		if filepath.Dir(ie.EvidenceFile) != dir {
			t.Fatalf("evidence file %q, want one in %s", ie.EvidenceFile, dir)
		}
		raw, err := os.ReadFile(ie.EvidenceFile)
		if err != nil {
			t.Fatal(err)
		}
		var ev struct {
			Older string   `json:"older_checkpoint"`
			Newer string   `json:"newer_checkpoint"`
			Proof [][]byte `json:"consistency_proof"`
		}
		if err := json.Unmarshal(raw, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Older != string(ie.Older) || ev.Newer != string(ie.Newer) || len(ev.Proof) != len(ie.Proof) {
			t.Errorf("evidence file %s does not hold the evidence:\n%s", ie.EvidenceFile, raw)
		}
	}
	for _, source := range []string{"grpc", "tiles"} {
		t.Run(source+"/bad proof", func(t *testing.T) { check(t, source, a, b, true) })
		t.Run(source+"/rollback", func(t *testing.T) { check(t, source, b, a, false) })
	}
	append_(t, a, "e2")
	for _, source := range []string{"grpc", "tiles"} {
		t.Run(source+"/same size", func(t *testing.T) { check(t, source, a, b, false) })
	}
}

// watchLog is a provlogd (open admission) and the keys and watch file of
// the watch tests: the watch names digest 0xaa, the builder gh, the
// repository https://github.com/octo/app and the key ci (by its public
// key file); "other" is a key nobody watches.
type watchLog struct {
	d         *provlogd
	ci, other watchKey
	watch     *client.Watch
}

const watchedBuilder = "https://github.com/actions/runner/github-hosted"

func newWatchLog(t *testing.T) *watchLog {
	t.Helper()
	dir := t.TempDir()
	l := &watchLog{d: startProvlogd(t, filepath.Join(dir, "log")),
		ci: newWatchKey(t, dir, "ci", event.KeyEd25519), other: newWatchKey(t, dir, "other", event.KeyECDSAP256)}
	path := filepath.Join(dir, "watch.json")
	if err := os.WriteFile(path, []byte(`{
		"digests": ["`+digestOf(0xaa).String()+`"],
		"builders": ["`+watchedBuilder+`"],
		"repositories": ["https://github.com/octo/app"],
		"keys": [{"name": "ci", "publicKeyFile": "ci.pub"}]
	}`), 0o644); err != nil {
		t.Fatal(err)
	}
	var err error
	if l.watch, err = client.LoadWatch(path); err != nil {
		t.Fatal(err)
	}
	return l
}

// watched is an entry and the rules it matches.
type watched struct {
	entry []byte
	want  []client.WatchMatch
}

// batch returns n entries, named by tag: opaque entries and events nobody
// watches, with one event for each rule among them at spread positions.
func (l *watchLog) batch(t *testing.T, tag byte, n int) []watched {
	t.Helper()
	noIDs := func(env []byte) []byte {
		b, err := event.WithoutKeyIDs(env)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	special := map[int]watched{
		n / 7:       {signEvent(t, digestOf(0xaa), l.other), []client.WatchMatch{{Rule: "digest", Value: digestOf(0xaa).String()}}},
		n / 3:       {buildEvent(t, digestOf(tag), watchedBuilder, "https://git.example.com/x", l.other), []client.WatchMatch{{Rule: "builder", Value: watchedBuilder}}},
		n / 2:       {buildEvent(t, digestOf(tag), "https://ci.example.com/r", "git+https://github.com/octo/app@refs/heads/main", l.other), []client.WatchMatch{{Rule: "repository", Value: "https://github.com/octo/app"}}},
		n - n/5:     {noIDs(signEvent(t, digestOf(tag), l.ci)), []client.WatchMatch{{Rule: "key", Value: "ci"}}},
		n - 1:       {buildEvent(t, digestOf(0xaa), watchedBuilder, "https://github.com/octo/app", l.ci), []client.WatchMatch{{Rule: "digest", Value: digestOf(0xaa).String()}, {Rule: "builder", Value: watchedBuilder}, {Rule: "repository", Value: "https://github.com/octo/app"}, {Rule: "key", Value: "ci"}}},
		n/7 + 1:     {signEvent(t, digestOf(tag), l.other), nil},
		n/2 + 1:     {buildEvent(t, digestOf(tag), "https://ci.example.com/r", "https://github.com/octo/app2", l.other), nil},
		n - n/5 + 1: {noIDs(signEvent(t, digestOf(0xab), l.other)), nil},
	}
	out := make([]watched, n)
	for i := range out {
		if w, ok := special[i]; ok {
			out[i] = w
		} else {
			out[i] = watched{entry: fmt.Appendf(nil, "opaque %c %d", tag, i)}
		}
	}
	return out
}

// appendWatched appends the batch and returns the alerts it should cause,
// by index.
func (l *watchLog) appendWatched(t *testing.T, b []watched) map[uint64][]client.WatchMatch {
	t.Helper()
	var es [][]byte
	for _, w := range b {
		es = append(es, w.entry)
	}
	res, err := dial(t, l.d).AppendMany(testContext(t), es)
	if err != nil {
		t.Fatal(err)
	}
	want := map[uint64][]client.WatchMatch{}
	for i, r := range res {
		if r.Duplicate {
			t.Fatalf("entry %d of the batch is a duplicate", i)
		}
		if b[i].want != nil {
			want[r.Index] = b[i].want
		}
	}
	return want
}

// alertLog records alerts; fail, if not nil, may make OnAlert fail.
type alertLog struct {
	got  []client.Alert
	fail func(client.Alert) error
}

func (a *alertLog) onAlert(_ context.Context, al client.Alert) error {
	if a.fail != nil {
		if err := a.fail(al); err != nil {
			return err
		}
	}
	a.got = append(a.got, al)
	return nil
}

// take returns the alerts recorded since the last call, by index, failing
// the test unless they came in increasing index order.
func (a *alertLog) take(t *testing.T) map[uint64][]client.WatchMatch {
	t.Helper()
	out := map[uint64][]client.WatchMatch{}
	for i, al := range a.got {
		if i > 0 && al.Index <= a.got[i-1].Index {
			t.Errorf("alert on entry %d after one on entry %d", al.Index, a.got[i-1].Index)
		}
		if al.Event == nil || al.Checkpoint == nil || al.Index >= al.Checkpoint.Size {
			t.Errorf("alert on entry %d: event %v, checkpoint %+v", al.Index, al.Event, al.Checkpoint)
		}
		out[al.Index] = al.Matches
	}
	a.got = nil
	return out
}

func (l *watchLog) monitor(t *testing.T, source, state string, alerts *alertLog, from *uint64) *client.Monitor {
	t.Helper()
	cfg := client.MonitorConfig{VerifierKey: l.d.VerifierKey, StateFile: state, Watch: l.watch, OnAlert: alerts.onAlert, WatchFrom: from}
	switch source {
	case "grpc":
		cfg.Client = dial(t, l.d)
	case "tiles":
		cfg.TilesURL = l.d.HTTPURL
	}
	m, err := client.NewMonitor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func sameAlerts(got, want map[uint64][]client.WatchMatch) bool {
	return maps.EqualFunc(got, want, slices.Equal)
}

// TestMonitorWatchAlerts logs events in the watched names among others,
// over several polls (the first from no state, one reading 700 entries in
// four pages, one reading a few), and wants exactly the alerts of the
// entries added since the previous poll, with their indices and rules.
func TestMonitorWatchAlerts(t *testing.T) {
	for _, source := range []string{"grpc", "tiles"} {
		t.Run(source, func(t *testing.T) {
			ctx := testContext(t)
			l := newWatchLog(t)
			before := l.appendWatched(t, l.batch(t, 'a', 40))
			if len(before) != 5 {
				t.Fatalf("the first batch should alert 5 times, not %d", len(before))
			}
			state := filepath.Join(t.TempDir(), "state")
			alerts := &alertLog{}
			m := l.monitor(t, source, state, alerts, nil)
			if _, err := m.Poll(ctx); err != nil {
				t.Fatal(err)
			}
			if got := alerts.take(t); len(got) != 0 {
				t.Fatalf("the first poll, without state, alerted on %v: want only events logged after it", got)
			}
			for round, n := range []int{700, 3, 1} {
				want := l.appendWatched(t, l.batch(t, byte('b'+round), n))
				cp, err := m.Poll(ctx)
				if err != nil {
					t.Fatalf("round %d: Poll: %v", round, err)
				}
				if got := alerts.take(t); !sameAlerts(got, want) {
					t.Errorf("round %d: alerts %v, want %v", round, got, want)
				}
				if b, err := os.ReadFile(state); err != nil || !bytes.Equal(b, cp.Raw) {
					t.Fatalf("round %d: state file = %q, %v; want the checkpoint", round, b, err)
				}
			}
			// Nothing new: no alert.
			if _, err := m.Poll(ctx); err != nil {
				t.Fatal(err)
			}
			if got := alerts.take(t); len(got) != 0 {
				t.Errorf("a poll with nothing new alerted on %v", got)
			}
		})
	}
}

// TestMonitorWatchFrom starts without state from an index: the events
// from there on alert, those before do not; an index beyond the log is an
// error that stores nothing.
func TestMonitorWatchFrom(t *testing.T) {
	ctx := testContext(t)
	l := newWatchLog(t)
	want := l.appendWatched(t, l.batch(t, 'a', 300))
	for _, source := range []string{"grpc", "tiles"} {
		t.Run(source, func(t *testing.T) {
			for _, from := range []uint64{0, 43, 299} {
				alerts := &alertLog{}
				if _, err := l.monitor(t, source, filepath.Join(t.TempDir(), "state"), alerts, &from).Poll(ctx); err != nil {
					t.Fatal(err)
				}
				wantFrom := maps.Clone(want)
				maps.DeleteFunc(wantFrom, func(i uint64, _ []client.WatchMatch) bool { return i < from })
				if got := alerts.take(t); !sameAlerts(got, wantFrom) {
					t.Errorf("from %d: alerts %v, want %v", from, got, wantFrom)
				}
			}
			state := filepath.Join(t.TempDir(), "state")
			beyond := uint64(301)
			if _, err := l.monitor(t, source, state, &alertLog{}, &beyond).Poll(ctx); err == nil || !strings.Contains(err.Error(), "beyond the log's size 300") {
				t.Errorf("Poll from beyond the log = %v, want an error", err)
			}
			if _, err := os.Stat(state); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a failed first poll wrote the state file (%v)", err)
			}
		})
	}
}

// TestMonitorWatchAtLeastOnce fails OnAlert on the second alert of a
// poll: the checkpoint is not stored, the same Monitor's next poll goes on
// from that alert, and a Monitor started afresh on the old state (as after
// a crash) delivers every alert again.
func TestMonitorWatchAtLeastOnce(t *testing.T) {
	ctx := testContext(t)
	l := newWatchLog(t)
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	alerts := &alertLog{}
	m := l.monitor(t, "tiles", state, alerts, nil)
	first, err := m.Poll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := l.appendWatched(t, l.batch(t, 'a', 600))
	calls := 0
	boom := errors.New("pager unreachable")
	alerts.fail = func(client.Alert) error {
		if calls++; calls == 2 {
			return boom
		}
		return nil
	}
	if _, err := m.Poll(ctx); !errors.Is(err, boom) {
		t.Fatalf("Poll with a failing OnAlert = %v, want it", err)
	}
	delivered := alerts.take(t)
	if len(delivered) != 1 {
		t.Fatalf("alerts before the failure: %v, want 1", delivered)
	}
	if b, _ := os.ReadFile(state); !bytes.Equal(b, first.Raw) {
		t.Fatalf("a poll cut short stored its checkpoint")
	}
	if m.Latest().Size != first.Size {
		t.Fatalf("Latest after a poll cut short = %d, want %d", m.Latest().Size, first.Size)
	}
	// The same Monitor resumes at the failed alert.
	if _, err := m.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	rest := alerts.take(t)
	maps.Copy(rest, delivered)
	if !sameAlerts(rest, want) {
		t.Errorf("alerts before and after the failure: %v, want each of %v once", rest, want)
	}
	// A Monitor on the state as it was before that poll (a crash before
	// the checkpoint was stored) delivers them all again.
	crashed := filepath.Join(dir, "crashed")
	if err := os.WriteFile(crashed, first.Raw, 0o644); err != nil {
		t.Fatal(err)
	}
	again := &alertLog{}
	if _, err := l.monitor(t, "grpc", crashed, again, nil).Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if got := again.take(t); !sameAlerts(got, want) {
		t.Errorf("after a crash: alerts %v, want %v", got, want)
	}
}

// substitute replaces every entry equal to from with to in an entry
// bundle (uint16be length || entry, repeated).
func substitute(t *testing.T, bundle, from, to []byte) []byte {
	var out []byte
	for len(bundle) >= 2 {
		n := int(binary.BigEndian.Uint16(bundle))
		if len(bundle) < 2+n {
			t.Errorf("entry bundle truncated")
			return bundle
		}
		e := bundle[2 : 2+n]
		if bytes.Equal(e, from) {
			e = to
		}
		out = binary.BigEndian.AppendUint16(out, uint16(len(e)))
		out = append(out, e...)
		bundle = bundle[2+n:]
	}
	return out
}

// substituteServer serves the log of up over gRPC, with from served as to
// in GetEntries.
type substituteServer struct {
	provlogv1.UnimplementedLogServer
	up       provlogv1.LogClient
	from, to []byte
}

func (s *substituteServer) GetCheckpoint(ctx context.Context, req *provlogv1.GetCheckpointRequest) (*provlogv1.GetCheckpointResponse, error) {
	return s.up.GetCheckpoint(ctx, req)
}

func (s *substituteServer) GetConsistencyProof(ctx context.Context, req *provlogv1.GetConsistencyProofRequest) (*provlogv1.GetConsistencyProofResponse, error) {
	return s.up.GetConsistencyProof(ctx, req)
}

func (s *substituteServer) GetInclusionProof(ctx context.Context, req *provlogv1.GetInclusionProofRequest) (*provlogv1.GetInclusionProofResponse, error) {
	return s.up.GetInclusionProof(ctx, req)
}

func (s *substituteServer) GetEntries(req *provlogv1.GetEntriesRequest, stream grpc.ServerStreamingServer[provlogv1.GetEntriesResponse]) error {
	up, err := s.up.GetEntries(stream.Context(), req)
	if err != nil {
		return err
	}
	for {
		resp, err := up.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		for i, e := range resp.Entries {
			if bytes.Equal(e, s.from) {
				resp.Entries[i] = s.to
			}
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}

// TestMonitorWatchTamperedEntry has the log hide an event in a watched
// name by serving another event (well-formed, signed, watched by nobody)
// in its place, over gRPC and over tlog-tiles, or flip a byte of the entry
// bundle: each is an error, never an alert, and the state is kept.
func TestMonitorWatchTamperedEntry(t *testing.T) {
	ctx := testContext(t)
	l := newWatchLog(t)
	hidden := buildEvent(t, digestOf(0x01), "https://ci.example.com/r", "https://github.com/octo/app", l.other)
	decoy := buildEvent(t, digestOf(0x01), "https://ci.example.com/r", "https://github.com/octo/decoy", l.other)
	target, _ := url.Parse(l.d.HTTPURL)
	tilesProxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp, err := http.Get(target.JoinPath(r.URL.Path).String())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if strings.HasPrefix(r.URL.Path, "/tile/entries/") {
			body = substitute(t, body, hidden, decoy)
		}
		w.WriteHeader(resp.StatusCode)
		w.Write(body)
	}))
	t.Cleanup(tilesProxy.Close)
	grpcProxy := fakeClient(t, &substituteServer{up: dial(t, l.d).LogClient(), from: hidden, to: decoy}, client.Config{VerifierKey: l.d.VerifierKey})

	sources := map[string]func(*client.MonitorConfig){
		"tiles substitute": func(c *client.MonitorConfig) { c.TilesURL = tilesProxy.URL + "/" },
		"grpc substitute":  func(c *client.MonitorConfig) { c.Client = grpcProxy },
		"tiles bit flip":   func(c *client.MonitorConfig) { c.TilesURL = tamperProxy(t, l.d.HTTPURL, "tile/entries/000.p/20") },
	}
	dir := t.TempDir()
	monitors := map[string]*client.Monitor{}
	alerts := map[string]*alertLog{}
	for name, set := range sources {
		alerts[name] = &alertLog{}
		cfg := client.MonitorConfig{VerifierKey: l.d.VerifierKey, StateFile: filepath.Join(dir, name), Watch: l.watch, OnAlert: alerts[name].onAlert}
		set(&cfg)
		m, err := client.NewMonitor(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Poll(ctx); err != nil {
			t.Fatal(err)
		}
		monitors[name] = m
	}
	b := l.batch(t, 'a', 20)
	b[10] = watched{entry: hidden}
	l.appendWatched(t, b)
	for name, m := range monitors {
		before := m.Latest()
		_, err := m.Poll(ctx)
		if err == nil {
			t.Errorf("%s: Poll of a log serving a tampered entry succeeded", name)
		} else if !strings.Contains(name, "flip") && !errors.Is(err, client.ErrInclusionProof) {
			t.Errorf("%s: Poll = %v, want ErrInclusionProof", name, err)
		}
		t.Logf("%s: %v", name, err)
		if got := alerts[name].take(t); len(got) != 0 {
			t.Errorf("%s: alerts %v from a tampered bundle", name, got)
		}
		if st, _ := os.ReadFile(filepath.Join(dir, name)); !bytes.Equal(st, before.Raw) || m.Latest() != before {
			t.Errorf("%s: the state moved past a tampered entry", name)
		}
	}
}

// TestMonitorObserve: a checkpoint seen elsewhere is proven consistent
// with the stored one whichever is larger; a newer one is stored, an older
// one is not; one not signed by the log's key is refused.
func TestMonitorObserve(t *testing.T) {
	ctx := testContext(t)
	d := startProvlogd(t, t.TempDir())
	c := dial(t, d)
	append_(t, d, entriesStrings("o", 0, 10)...)
	older, err := c.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	append_(t, d, entriesStrings("o", 10, 300)...)
	newer, err := c.Checkpoint(ctx)
	if err != nil || newer.Size <= older.Size {
		t.Fatalf("checkpoint %v, %v", newer, err)
	}
	state := filepath.Join(t.TempDir(), "state")
	m := monitor(t, d, "grpc", state)
	if got, err := m.Observe(ctx, older); err != nil || got.Size != older.Size { // trusted on first use
		t.Fatalf("Observe(first) = %v, %v", got, err)
	}
	if got, err := m.Observe(ctx, newer); err != nil || got.Size != newer.Size {
		t.Fatalf("Observe(newer) = %v, %v", got, err)
	}
	if got, err := m.Observe(ctx, older); err != nil || got.Size != newer.Size {
		t.Fatalf("Observe(older) = %v, %v; want the newer kept", got, err)
	}
	if b, _ := os.ReadFile(state); !bytes.Equal(b, newer.Raw) {
		t.Error("the state file does not hold the newer checkpoint")
	}
	// The same size with another root cannot come from the log's key: a
	// checkpoint it did not sign is refused before anything is compared.
	forged := *newer
	forged.Raw = bytes.Replace(newer.Raw, []byte(base64.StdEncoding.EncodeToString(newer.Hash)), []byte(base64.StdEncoding.EncodeToString(make([]byte, 32))), 1)
	if _, err := m.Observe(ctx, &forged); !errors.Is(err, client.ErrLogSignature) {
		t.Errorf("Observe(a checkpoint the log did not sign) = %v, want ErrLogSignature", err)
	}
}
