package integration

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pb "github.com/provlog/provlog/proto/provlog/v1"
	fnote "github.com/transparency-dev/formats/note"
	fwitness "github.com/transparency-dev/formats/witness"
	"golang.org/x/mod/sumdb/note"
)

// witnessedSetup is one log key, three witnesses and a 2-of-3 policy.
type witnessedSetup struct {
	bin                  string
	dir, origin, keyFile string
	logV                 note.Verifier
	addrs, vkeys         []string
	procs                []*witnessProc
	policyFile           string
	policy               fwitness.Group
}

func newWitnessedSetup(t *testing.T) *witnessedSetup {
	t.Helper()
	s := &witnessedSetup{bin: buildWitness(t), dir: t.TempDir(), origin: "example.com/witnessed-log"}
	skey, vkey, err := note.GenerateKey(rand.Reader, s.origin)
	if err != nil {
		t.Fatal(err)
	}
	if s.logV, err = note.NewVerifier(vkey); err != nil {
		t.Fatal(err)
	}
	s.keyFile = filepath.Join(s.dir, "log.key")
	if err := os.WriteFile(s.keyFile, []byte(skey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := filepath.Join(s.dir, "logs.conf")
	if err := os.WriteFile(logs, []byte("log "+s.origin+" "+vkey+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var policy strings.Builder
	for i := range 3 {
		addr := freeAddr(t, "127.0.0.1")
		s.addrs = append(s.addrs, addr)
		p := s.startWitness(t, i)
		s.vkeys = append(s.vkeys, p.vkey)
		fmt.Fprintf(&policy, "witness w%d %s http://%s\n", i, p.vkey, addr)
	}
	policy.WriteString("group g 2 w0 w1 w2\nquorum g\n")
	s.policyFile = filepath.Join(s.dir, "policy")
	if err := os.WriteFile(s.policyFile, []byte(policy.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if s.policy, err = fwitness.ParsePolicy([]byte(policy.String())); err != nil {
		t.Fatal(err)
	}
	return s
}

// startWitness starts (or restarts, on the same data and address) witness i.
func (s *witnessedSetup) startWitness(t *testing.T, i int) *witnessProc {
	t.Helper()
	p := startWitness(t, s.bin, "--listen", s.addrs[i], "--config", filepath.Join(s.dir, "logs.conf"),
		"--data", filepath.Join(s.dir, fmt.Sprintf("w%d", i)), "--name", fmt.Sprintf("w%d.example", i))
	if i < len(s.procs) {
		s.procs[i] = p
	} else {
		s.procs = append(s.procs, p)
	}
	return p
}

// startLog starts a provlogd with the setup's key on its own data dir.
func (s *witnessedSetup) startLog(t *testing.T, name string) *provlogd {
	return mustStartProvlogd(t, filepath.Join(s.dir, name), "--origin", s.origin, "--key", s.keyFile,
		"--witness-policy", s.policyFile, "--witness-interval", "50ms")
}

// published fetches the log's /checkpoint: nil if none is published.
func (s *witnessedSetup) published(t *testing.T, d *provlogd) []byte {
	t.Helper()
	resp, err := http.Get(d.HTTPURL + "checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil
	}
	return b
}

// checkWitnessed verifies a published checkpoint with the log key and the
// witnesses' cosignature/v1 keys, independently of provlog's code, and
// checks the policy with formats/witness. It returns the tree size.
func (s *witnessedSetup) checkWitnessed(t *testing.T, cp []byte) uint64 {
	t.Helper()
	vs := []note.Verifier{s.logV}
	for _, k := range s.vkeys {
		v, err := fnote.NewVerifierForCosignatureV1(k)
		if err != nil {
			t.Fatal(err)
		}
		vs = append(vs, v)
	}
	n, err := note.Open(cp, note.VerifierList(vs...))
	if err != nil {
		t.Fatalf("published checkpoint does not verify: %v\n%s", err, cp)
	}
	cosigs := 0
	for _, sig := range n.Sigs {
		if sig.Name != s.origin {
			cosigs++
		}
	}
	if cosigs < 2 || !s.policy.Satisfied(cp) {
		t.Fatalf("published checkpoint has %d valid cosignatures; policy satisfied: %v\n%s", cosigs, s.policy.Satisfied(cp), cp)
	}
	c, err := openCheckpoint(cp, s.logV)
	if err != nil {
		t.Fatal(err)
	}
	return c.Size
}

// TestWitnessedLog runs one log with three witnesses and a quorum of two:
// entries are appended while a witness is killed and restarted, and every
// published checkpoint carries a quorum of verifying cosignatures; with two
// witnesses down the log keeps acknowledging but publishes nothing new;
// and a fork of the log (the same key, other entries) is refused by the
// witnesses, which keep the evidence, so the fork publishes nothing.
func TestWitnessedLog(t *testing.T) {
	ctx := context.Background()
	s := newWitnessedSetup(t)
	d := s.startLog(t, "log")
	defer d.mustStop(t)

	appendN := func(d *provlogd, tag string, n int) uint64 {
		t.Helper()
		var last uint64
		for i := range n {
			res, err := d.Log.Append(ctx, &pb.AppendRequest{Entry: fmt.Appendf(nil, "%s %d", tag, i)})
			if err != nil {
				t.Fatalf("append: %v", err)
			}
			last = res.Index
		}
		return last
	}
	waitPublished := func(d *provlogd, size uint64) []byte {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			if cp := s.published(t, d); cp != nil && s.checkWitnessed(t, cp) >= size {
				return cp
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("no witnessed checkpoint of size %d published", size)
		return nil
	}

	appendN(d, "a", 50)
	waitPublished(d, 50)
	// Kill witness 1 and restart it while appending.
	s.procs[1].cmd.Process.Kill()
	s.procs[1].cmd.Wait()
	appendN(d, "b", 50)
	s.startWitness(t, 1)
	last := appendN(d, "c", 50)
	cp := waitPublished(d, last+1)
	t.Logf("witnessed checkpoint at size %d with a restarted witness", s.checkWitnessed(t, cp))

	// Two witnesses down: appends are acknowledged, nothing new published.
	for _, i := range []int{0, 2} {
		s.procs[i].cmd.Process.Kill()
		s.procs[i].cmd.Wait()
	}
	appendN(d, "d", 10)
	time.Sleep(300 * time.Millisecond)
	if size := s.checkWitnessed(t, s.published(t, d)); size != last+1 {
		t.Fatalf("published size %d without a quorum, want %d", size, last+1)
	}
	// The checkpoint of the integrated tree went to the witnesses (the one
	// still up cosigned it and serves it): tlog-tiles, "Logs MUST serve
	// partial tiles corresponding to tree sizes for which a checkpoint was
	// produced", so its tiles and entries are served while it waits.
	integrated := last + 11
	for _, ref := range []tileRef{bundlesForSize(integrated)[integrated/256], tilesForSize(integrated)[integrated/256]} {
		code, body, _, err := httpGet(ctx, d.HTTPURL+ref.Path())
		if err != nil || code != http.StatusOK {
			t.Fatalf("GET %s behind the checkpoint sent to witnesses: %d, %v", ref.Path(), code, err)
		}
		if ref.Entries {
			if es, err := parseBundle(body); err != nil || len(es) != ref.Width || string(es[len(es)-1]) != "d 9" {
				t.Fatalf("GET %s: %d entries, %v", ref.Path(), len(es), err)
			}
		}
	}
	if got, err := getEntries(ctx, d, last+1, 10); err != nil || string(got[9]) != "d 9" {
		t.Fatalf("GetEntries beyond the published checkpoint: %v", err)
	}
	for _, i := range []int{0, 2} {
		s.startWitness(t, i)
	}
	waitPublished(d, last+11)

	// A fork: the same key and origin, other entries.
	fork := s.startLog(t, "fork")
	defer fork.mustStop(t)
	appendN(fork, "fork", 200)
	time.Sleep(500 * time.Millisecond)
	// A new witnessed log publishes its empty tree, signed, and nothing
	// more without witnesses.
	if cp, err := openCheckpoint(s.published(t, fork), s.logV); err != nil || cp.Size != 0 {
		t.Fatalf("the fork published a checkpoint of size %d (%v), want only its empty tree", cp.Size, err)
	}
	for i, p := range s.procs {
		resp, err := http.Get(p.url + "evidence")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), s.origin) {
			t.Errorf("witness %d kept no evidence of the fork: %d %s", i, resp.StatusCode, b)
		}
	}
	// The real log goes on being witnessed.
	last = appendN(d, "e", 5)
	waitPublished(d, last+1)
}
