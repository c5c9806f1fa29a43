package integration

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pb "github.com/provlog/provlog/proto/provlog/v1"
	"golang.org/x/mod/sumdb/note"
)

// TestWitnessPollsAndIsPushed: a witness that both polls a witnessed
// provlogd and receives its pushes, as the README suggests, cosigns the
// log's latest checkpoint by push while the log's published checkpoint
// lags behind, waiting for a quorum. Polling that older, consistent
// checkpoint is staleness, not a rollback: no fork evidence.
func TestWitnessPollsAndIsPushed(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	const origin = "example.com/stale-log"
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	logV, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "log.key")
	writeFile(t, dir, "log.key", skey+"\n")
	logHTTP := freeAddr(t, "127.0.0.1")
	logs := filepath.Join(dir, "logs.conf")
	writeFile(t, dir, "logs.conf", fmt.Sprintf("log %s %s http://%s/\n", origin, vkey, logHTTP))
	w := startWitness(t, buildWitness(t), "--config", logs, "--data", filepath.Join(dir, "w"),
		"--name", "w.example", "--poll-interval", "50ms")

	// First the witness alone makes the quorum; then a second witness,
	// which refuses everything, is required too.
	dead := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		http.Error(rw, "down", http.StatusServiceUnavailable)
	}))
	defer dead.Close()
	_, deadKey, err := note.GenerateKey(rand.Reader, "dead.example")
	if err != nil {
		t.Fatal(err)
	}
	alone, both := filepath.Join(dir, "policy-alone"), filepath.Join(dir, "policy-both")
	writeFile(t, dir, "policy-alone", fmt.Sprintf("witness w %s %s\nquorum w\n", w.vkey, strings.TrimSuffix(w.url, "/")))
	writeFile(t, dir, "policy-both", fmt.Sprintf("witness w %s %s\nwitness dead %s %s\ngroup g all w dead\nquorum g\n", w.vkey, strings.TrimSuffix(w.url, "/"), deadKey, dead.URL))
	start := func(policy string) *provlogd {
		return mustStartProvlogd(t, filepath.Join(dir, "log"), "--origin", origin, "--key", keyFile,
			"--http-listen", logHTTP, "--witness-policy", policy, "--witness-interval", "20ms")
	}
	appendN := func(d *provlogd, tag string, n int) {
		t.Helper()
		for i := range n {
			if _, err := d.Log.Append(ctx, &pb.AppendRequest{Entry: fmt.Appendf(nil, "%s %d", tag, i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			if ctx.Err() != nil {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	published := func(d *provlogd) uint64 {
		cp, err := fetchCheckpoint(ctx, d.HTTPURL, logV)
		if err != nil {
			return 0
		}
		return cp.Size
	}

	d := start(alone)
	appendN(d, "a", 10)
	waitFor("the log to publish size 10", func() bool { return published(d) == 10 })
	d.mustStop(t)

	d = start(both)
	defer d.mustStop(t)
	appendN(d, "b", 10)
	cosigned := func() uint64 {
		h := sha256.Sum256([]byte(origin))
		code, body, _, err := httpGet(ctx, w.url+hex.EncodeToString(h[:])+"/checkpoint")
		if err != nil || code != http.StatusOK {
			return 0
		}
		cp, err := openCheckpoint(body, logV)
		if err != nil {
			t.Fatalf("witness's checkpoint: %v", err)
		}
		return cp.Size
	}
	waitFor("the witness to cosign size 20 by push", func() bool { return cosigned() == 20 })
	if got := published(d); got != 10 {
		t.Fatalf("log published %d without its quorum, want 10", got)
	}
	// The witness polls the log's older checkpoint (size 10) and proves it
	// consistent with size 20 from the log's tiles: a stale log.
	evidence := func() string {
		code, body, _, err := httpGet(ctx, w.url+"evidence")
		if err != nil || code != http.StatusOK {
			t.Fatalf("GET /evidence: %d %v", code, err)
		}
		return strings.TrimSpace(string(body))
	}
	waitFor("a stale poll", func() bool {
		_, body, _, err := httpGet(ctx, w.url+"metrics")
		return err == nil && strings.Contains(string(body), `provlog_witness_polled_tree_size{origin="`+origin+`"} 10`) || evidence() != "[]"
	})
	if ev := evidence(); ev != "[]" {
		t.Fatalf("witness evidence after polling a stale log: %s, want []", ev)
	}
}
