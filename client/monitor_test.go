package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/provlog/provlog/client"
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
