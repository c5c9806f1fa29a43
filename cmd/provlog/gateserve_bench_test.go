package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/mod/sumdb/note"

	"github.com/provlog/provlog/client"
	"github.com/provlog/provlog/event"
	"github.com/provlog/provlog/log"
	"github.com/provlog/provlog/log/server"
	"github.com/provlog/provlog/policy"
	"github.com/provlog/provlog/storage"
)

// benchLogEvents is the size of the log the gate serve benchmarks decide
// over (issue 16: "against a log with 100,000 events").
const benchLogEvents = 100_000

// benchGatePolicy is the policy decided with: an allowed builder and
// source, a sign event and a prod promotion approved by the named key
// (whose signatures the gate verifies itself), along dev, staging, prod.
const benchGatePolicy = `{
  "builders": ["https://ci.example.com/runner@v2"],
  "sourceRepositories": ["git+https://git.example.com/app"],
  "keys": {"ci": "ci.pub"},
  "requiredSigners": ["ci"],
  "promotionPath": ["dev", "staging", "prod"],
  "approvals": {"prod": {"count": 1, "keys": ["ci"]}}
}`

// benchGateLog is an in-process log of benchLogEvents signed events served
// over tlog-tiles, and the policy to decide with.
type benchGateLog struct {
	tilesURL, vkey string
	policy         *policy.Policy
	policyFile     string
	// artifacts are the digests built, in log order; allowed[i] says
	// whether artifacts[i] should be allowed into prod.
	artifacts []event.Digest
	allowed   []bool
}

// benchEvent is an event to log: its statement, made when the index of
// the build it is about is known.
type benchEvent struct {
	predType string
	digest   event.Digest
	pred     any
}

// planBenchEvents lays out n events about artifacts: each is built (every
// 10th built a second time from a source the policy refuses), signed and
// promoted to dev and staging, and all but every 5th promoted to prod, so
// that a digest has 4 to 6 events and decisions both allow and deny.
func planBenchEvents(n int) (evs []benchEvent, artifacts []event.Digest, allowed []bool) {
	for k := 0; len(evs) < n; k++ {
		h := sha256.Sum256(fmt.Appendf(nil, "artifact %d", k))
		d := event.Digest{Alg: "sha256", Hex: hex.EncodeToString(h[:])}
		build := uint64(len(evs))
		evs = append(evs, benchEvent{event.ProvenancePredicateType, d, event.BuildSpec{BuilderID: "https://ci.example.com/runner@v2",
			BuildType: "https://ci.example.com/go@v1", SourceRepo: "git+https://git.example.com/app", SourceCommit: fmt.Sprintf("%040x", k)}})
		if k%10 == 0 {
			evs = append(evs, benchEvent{event.ProvenancePredicateType, d, event.BuildSpec{BuilderID: "https://ci.example.com/runner@v2",
				BuildType: "https://ci.example.com/go@v1", SourceRepo: "git+https://evil.example.com/app", SourceCommit: fmt.Sprintf("%040x", k)}})
		}
		evs = append(evs,
			benchEvent{event.SignPredicateType, d, event.SignPredicate{Algorithm: "ed25519", KeyID: "ci", Signature: "c2lnbmF0dXJl", BuildIndex: build}},
			benchEvent{event.PromotePredicateType, d, event.PromotePredicate{To: "dev", BuildIndex: build, Decision: event.DecisionApproved}},
			benchEvent{event.PromotePredicateType, d, event.PromotePredicate{From: "dev", To: "staging", BuildIndex: build, Decision: event.DecisionApproved}})
		prod := k%5 != 4
		if prod {
			evs = append(evs, benchEvent{event.PromotePredicateType, d, event.PromotePredicate{From: "staging", To: "prod", BuildIndex: build, Decision: event.DecisionApproved}})
		}
		artifacts, allowed = append(artifacts, d), append(allowed, prod)
	}
	if len(evs) > n { // the last artifact's events cut short: not promoted to prod
		evs, allowed[len(allowed)-1] = evs[:n], false
	}
	return evs, artifacts, allowed
}

// signBenchEvents signs the planned events with key, on every CPU.
func signBenchEvents(b *testing.B, evs []benchEvent, key event.SigningKey) [][]byte {
	out := make([][]byte, len(evs))
	workers := max(1, min(8, runtime.GOMAXPROCS(0)))
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(evs); i += workers {
				e := evs[i]
				pred := e.pred
				if spec, ok := pred.(event.BuildSpec); ok {
					p, err := event.NewProvenance(spec)
					if err != nil {
						errs[w] = err
						return
					}
					pred = p
				}
				st, err := event.NewStatement(e.predType, []event.Subject{{Name: "app.tar.gz", Digest: e.digest}}, pred)
				if err == nil {
					out[i], err = event.SignEnvelope(context.Background(), st, key)
				}
				if err != nil {
					errs[w] = fmt.Errorf("event %d: %w", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	return out
}

// newBenchGateLog opens a log in b's temporary directory, appends the
// events in batches, waits for them to be published and serves the log's
// tlog-tiles API on a local test server.
func newBenchGateLog(b *testing.B) *benchGateLog {
	b.Helper()
	ctx := context.Background()
	dir := b.TempDir()
	quiet := slog.New(slog.DiscardHandler)
	priv, pub, err := event.GenerateKey(event.KeyEd25519)
	if err != nil {
		b.Fatal(err)
	}
	key, err := event.LoadSigningKey(priv)
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ci.pub"), pub, 0o644); err != nil {
		b.Fatal(err)
	}
	bl := &benchGateLog{policyFile: filepath.Join(dir, "policy.json")}
	if err := os.WriteFile(bl.policyFile, []byte(benchGatePolicy), 0o644); err != nil {
		b.Fatal(err)
	}
	if bl.policy, err = policy.Parse([]byte(benchGatePolicy), dir); err != nil {
		b.Fatal(err)
	}

	planned, artifacts, allowed := planBenchEvents(benchLogEvents)
	bl.artifacts, bl.allowed = artifacts, allowed
	entries := signBenchEvents(b, planned, key)

	const origin = "bench.provlog.example/gate"
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		b.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		b.Fatal(err)
	}
	bl.vkey = vkey
	st, err := storage.Open(filepath.Join(dir, "db"), storage.Options{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	l, err := log.Open(ctx, log.Config{Origin: origin, Signer: signer, Logger: quiet}, st)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close(); st.Close() })
	const batch = 4096
	for start := 0; start < len(entries); start += batch {
		res, err := l.AddBatch(ctx, entries[start:min(start+batch, len(entries))])
		if err != nil {
			b.Fatal(err)
		}
		for i, r := range res {
			// Sign and promote events name their build by index.
			if r.Index != uint64(start+i) || r.Duplicate {
				b.Fatalf("entry %d logged at %d (duplicate %v)", start+i, r.Index, r.Duplicate)
			}
		}
	}
	for deadline := time.Now().Add(time.Minute); l.Checkpoint().Size < uint64(len(entries)); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatalf("checkpoint of size %d, want %d", l.Checkpoint().Size, len(entries))
		}
	}
	srv := httptest.NewServer(server.HTTPHandler(l, nil))
	b.Cleanup(srv.Close)
	bl.tilesURL = srv.URL + "/"
	return bl
}

// follow replays the whole log with a new Follower.
func (bl *benchGateLog) follow(b *testing.B) *client.Follower { return bl.followWith(b, false) }

// followWith is follow, replaying the trust history too if trust (as
// gate serve's follower does: every entry's signatures verified against
// the keyring in force at its index).
func (bl *benchGateLog) followWith(b *testing.B, trust bool) *client.Follower {
	b.Helper()
	f, err := client.NewFollower(client.FollowerConfig{VerifierKey: bl.vkey, TilesURL: bl.tilesURL, Logger: slog.New(slog.DiscardHandler), Trust: trust})
	if err != nil {
		b.Fatal(err)
	}
	cp, err := f.Poll(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	if st := f.Status(); cp.Size != benchLogEvents || st.Events != benchLogEvents {
		b.Fatalf("followed checkpoint size %d, %d events; want %d", cp.Size, st.Events, benchLogEvents)
	}
	return f
}

// gateServer returns a gate server over f, caching cacheSize decisions,
// and its /v1/decide handler.
func (bl *benchGateLog) gateServer(b *testing.B, f *client.Follower, cacheSize int) http.Handler {
	b.Helper()
	reg := prometheus.NewRegistry()
	s, err := newGateServer(gateServeConfig{PolicyFile: bl.policyFile, Policy: bl.policy, Follower: f,
		CacheSize: cacheSize, Logger: slog.New(slog.DiscardHandler)}, reg)
	if err != nil {
		b.Fatal(err)
	}
	return s.handler(reg)
}

// decide asks h about artifact i for prod and returns the answer.
func (bl *benchGateLog) decide(b *testing.B, h http.Handler, i int) *httptest.ResponseRecorder {
	body := fmt.Sprintf(`{"digest": %q, "environment": "prod"}`, bl.artifacts[i].String())
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("POST", "/v1/decide", strings.NewReader(body)))
	if w.Code != http.StatusOK {
		b.Fatalf("artifact %d: %d %s", i, w.Code, w.Body)
	}
	return w
}

// check decides artifact i and fails unless the answer is as planned.
func (bl *benchGateLog) check(b *testing.B, h http.Handler, i int, cached bool) {
	b.Helper()
	var got decideResponse
	if err := json.Unmarshal(bl.decide(b, h, i).Body.Bytes(), &got); err != nil {
		b.Fatal(err)
	}
	want := "deny"
	if bl.allowed[i] {
		want = "allow"
	}
	if got.Decision != want || got.Cached != cached || len(got.Events) < 4 {
		b.Fatalf("artifact %d: decision %s cached %v with %d events %+v; want %s cached %v", i, got.Decision, got.Cached, len(got.Events), got.Reasons, want, cached)
	}
}

// BenchmarkGateServe measures gate serve over a log of 100,000 signed
// build, sign and promote events about some 20,000 artifacts:
//
//   - follow: a new Follower replaying and verifying the whole log over
//     tlog-tiles from a local server (ns/op is the time to catch up);
//   - decide-warm: POST /v1/decide through the real handler, every
//     decision a cache hit;
//   - decide-cold: the same, every decision a cache miss (the cache holds
//     one decision and the artifacts asked about rotate), so each is
//     policy.Decide over the follower's index, signatures verified. It
//     reports the 99th percentile latency, p99-ms; issue 16 targets
//     under 100 ms.
//
// The log is built once per run (well under a minute); go test without
// -bench does not run it.
func BenchmarkGateServe(b *testing.B) {
	start := time.Now()
	bl := newBenchGateLog(b)
	b.Logf("setup: %d events about %d artifacts logged in %v", benchLogEvents, len(bl.artifacts), time.Since(start).Round(time.Millisecond))
	f := bl.follow(b)

	b.Run("follow", func(b *testing.B) {
		for b.Loop() {
			bl.follow(b)
		}
		b.ReportMetric(float64(b.N)*benchLogEvents/b.Elapsed().Seconds(), "events/s")
	})

	b.Run("follow-trust", func(b *testing.B) {
		for b.Loop() {
			if tr := bl.followWith(b, true).Trust(); tr == nil || len(tr.Violations) != 0 {
				b.Fatalf("trust replay: %+v", tr)
			}
		}
		b.ReportMetric(float64(b.N)*benchLogEvents/b.Elapsed().Seconds(), "events/s")
	})

	b.Run("decide-warm", func(b *testing.B) {
		h := bl.gateServer(b, f, 0)
		for i := range bl.artifacts {
			bl.decide(b, h, i)
		}
		bl.check(b, h, 0, true)
		i := 0
		for b.Loop() {
			bl.decide(b, h, i)
			i = (i + 1) % len(bl.artifacts)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
	})

	b.Run("decide-cold", func(b *testing.B) {
		h := bl.gateServer(b, f, 1)
		for _, i := range []int{0, 4, len(bl.artifacts) - 1} {
			bl.check(b, h, i, false)
		}
		var lat []time.Duration
		i := 0
		for b.Loop() {
			t := time.Now()
			bl.decide(b, h, i)
			lat = append(lat, time.Since(t))
			i = (i + 1) % len(bl.artifacts)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)*99/100])/float64(time.Millisecond), "p99-ms")
		bl.check(b, h, 1, false)
	})
}
