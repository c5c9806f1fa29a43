package client_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/provlog/provlog/client"
)

// auditSize exercises full and partial tiles at levels 0, 1 and 2: 257
// full bundles and one of 44; at level 1 one full tile and a partial one
// of 1; at level 2 a partial tile of 1.
const auditSize = 256*256 + 300

// tamperProxy serves the tlog-tiles resources of upstream, with the byte
// in the middle of the body of the resource at path flipped, or the last
// byte if path ends in "$" (which is not part of the path).
func tamperProxy(t *testing.T, upstream, path string) string {
	path, last := strings.CutSuffix(path, "$")
	var mu sync.Mutex
	hit := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp, err := http.Get(upstream + strings.TrimPrefix(r.URL.Path, "/"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		if r.URL.Path == "/"+path && len(body) > 0 {
			if last {
				body[len(body)-1] ^= 0x01
			} else {
				body[len(body)/2] ^= 0x01
			}
			mu.Lock()
			hit = true
			mu.Unlock()
		}
		w.WriteHeader(resp.StatusCode)
		w.Write(body)
	}))
	t.Cleanup(func() {
		srv.Close()
		mu.Lock()
		defer mu.Unlock()
		if path != "" && !hit {
			t.Errorf("the audit never fetched %s", path)
		}
	})
	return srv.URL + "/"
}

func TestAudit(t *testing.T) {
	ctx := testContext(t)
	dirA := t.TempDir()
	d := startProvlogd(t, dirA)
	c := dial(t, d)
	if _, err := c.AppendMany(ctx, entries("audit", 1000)); err != nil {
		t.Fatal(err)
	}
	first, err := client.Audit(ctx, d.HTTPURL, d.VerifierKey, client.AuditOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.AppendMany(ctx, entries("audit", auditSize)[1000:]); err != nil {
		t.Fatal(err)
	}

	var progress [][2]uint64
	sum, err := client.Audit(ctx, d.HTTPURL, d.VerifierKey, client.AuditOptions{
		Previous: first.Checkpoint.Raw,
		Progress: func(done, total uint64) { progress = append(progress, [2]uint64{done, total}) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("audit: %+v", *sum)
	if sum.Entries != auditSize || sum.Bundles != 258 || sum.Tiles != 258+2+1 || sum.Bytes <= 0 {
		t.Errorf("summary %+v: want %d entries, 258 bundles, 261 tiles", *sum, auditSize)
	}
	if len(progress) != 258 || progress[len(progress)-1] != [2]uint64{auditSize, auditSize} || progress[0] != [2]uint64{256, auditSize} {
		t.Errorf("progress: %d calls, first %v, last %v", len(progress), progress[0], progress[len(progress)-1])
	}

	t.Run("tampered", func(t *testing.T) {
		for _, tc := range []struct {
			tamper, path string
			index        int
		}{
			// The last byte of a bundle is in its last entry, whose leaf
			// hash then differs from the tile's.
			{"tile/entries/001$", "tile/0/001", 255},
			{"tile/entries/257.p/44$", "tile/0/257.p/44", 43},
			// The middle of this bundle is a length: it no longer parses.
			{"tile/entries/001", "tile/entries/001", -1},
			{"tile/0/100", "tile/0/100", 128},
			{"tile/0/257.p/44", "tile/0/257.p/44", 22},
			{"tile/1/000", "tile/1/000", 128},
			{"tile/1/001.p/1", "tile/1/001.p/1", 0},
			{"tile/2/000.p/1", "tile/2/000.p/1", 0},
		} {
			t.Run(tc.tamper, func(t *testing.T) {
				_, err := client.Audit(ctx, tamperProxy(t, d.HTTPURL, tc.tamper), d.VerifierKey, client.AuditOptions{})
				var ae *client.AuditError
				if !errors.As(err, &ae) || !errors.Is(err, client.ErrAuditMismatch) {
					t.Fatalf("Audit = %v, want *AuditError", err)
				}
				t.Logf("%v", err)
				if ae.Path != tc.path || ae.Index != tc.index {
					t.Errorf("AuditError names %s [%d], want %s [%d]", ae.Path, ae.Index, tc.path, tc.index)
				}
			})
		}
		_, err := client.Audit(ctx, tamperProxy(t, d.HTTPURL, "checkpoint"), d.VerifierKey, client.AuditOptions{})
		if !errors.Is(err, client.ErrLogSignature) && !errors.Is(err, client.ErrFormat) {
			t.Errorf("Audit with a tampered checkpoint = %v, want a signature error", err)
		}
	})

	t.Run("forked previous", func(t *testing.T) {
		// A log with the same key whose first entries differ.
		b := startProvlogd(t, t.TempDir(), "--key", filepath.Join(dirA, "log.key"))
		if _, err := dial(t, b).AppendMany(ctx, entries("other", 300)); err != nil {
			t.Fatal(err)
		}
		other, err := client.Audit(ctx, b.HTTPURL, b.VerifierKey, client.AuditOptions{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = client.Audit(ctx, d.HTTPURL, d.VerifierKey, client.AuditOptions{Previous: other.Checkpoint.Raw})
		var ie *client.InconsistencyError
		if !errors.As(err, &ie) {
			t.Fatalf("Audit with a previous checkpoint from a fork = %v, want *InconsistencyError", err)
		}
		// And the fork's audit against the bigger tree is a rollback.
		_, err = client.Audit(ctx, b.HTTPURL, b.VerifierKey, client.AuditOptions{Previous: sum.Checkpoint.Raw})
		if !errors.As(err, &ie) {
			t.Fatalf("Audit of a smaller tree = %v, want *InconsistencyError", err)
		}
	})
}

func TestAuditEmptyLog(t *testing.T) {
	ctx := testContext(t)
	d := startProvlogd(t, t.TempDir())
	sum, err := client.Audit(ctx, d.HTTPURL, d.VerifierKey, client.AuditOptions{})
	if err != nil || sum.Entries != 0 || sum.Tiles != 0 {
		t.Fatalf("Audit(empty log) = %+v, %v", sum, err)
	}
	append_(t, d, "a", "b", "c")
	sum, err = client.Audit(ctx, d.HTTPURL, d.VerifierKey, client.AuditOptions{Previous: sum.Checkpoint.Raw})
	if err != nil || sum.Entries != 3 || sum.Tiles != 1 {
		t.Fatalf("Audit(3 entries, previous empty) = %+v, %v", sum, err)
	}
}
