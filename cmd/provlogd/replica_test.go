package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/provlog/provlog/internal/pgtest"
	plog "github.com/provlog/provlog/log"
	provlogv1 "github.com/provlog/provlog/proto/provlog/v1"
)

// writeLogKey writes a new note private key named origin to dir/name.
func writeLogKey(t *testing.T, dir, name, origin string) string {
	t.Helper()
	skey, _, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(skey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestReplicaKeyChecks: with --storage postgres, a replica needs an
// existing key, and one named otherwise than the database's log is
// refused with both names.
func TestReplicaKeyChecks(t *testing.T) {
	pg := pgtest.New(t)
	if _, err := pg.CreateDB(t.Context(), "provlog"); err != nil {
		t.Fatal(err)
	}
	dsn := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/provlog?sslmode=disable", pg.Port())
	dir := t.TempDir()
	base := []string{"--storage", dsn, "--admission", "open", "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"}

	code, _, stderr := execute(t, append(base, "--data", filepath.Join(dir, "a"))...)
	if code == 0 || !strings.Contains(stderr, "needs the log key every replica shares") {
		t.Fatalf("no key: exit %d, stderr %q; want a refusal naming the shared key", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "a", "log.key")); err == nil {
		t.Fatal("a replica created its own key")
	}

	// The database takes the first key's name as its origin.
	k1 := writeLogKey(t, dir, "one.key", "example.com/one")
	s, err := openStore(t.Context(), config{storage: dsn, leaseTTL: 3e9}, "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := openKey(config{storage: dsn, key: k1, data: dir}, s); err != nil {
		t.Fatal(err)
	}
	s.Close()

	k2 := writeLogKey(t, dir, "two.key", "example.com/two")
	code, _, stderr = execute(t, append(base, "--data", filepath.Join(dir, "b"), "--key", k2)...)
	if code == 0 || !strings.Contains(stderr, `"example.com/one"`) || !strings.Contains(stderr, `"example.com/two"`) {
		t.Fatalf("other key: exit %d, stderr %q; want a refusal naming both logs", code, stderr)
	}
}

// recordingLeader is a provlog.v1 server that records the metadata of
// AppendBatch calls.
type recordingLeader struct {
	provlogv1.UnimplementedLogServer
	md chan metadata.MD
}

func (l *recordingLeader) AppendBatch(ctx context.Context, req *provlogv1.AppendBatchRequest) (*provlogv1.AppendBatchResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	l.md <- md
	resp := &provlogv1.AppendBatchResponse{}
	for i := range req.Entries {
		resp.Results = append(resp.Results, &provlogv1.AppendResponse{Index: uint64(i)})
	}
	return resp, nil
}

// TestForwarderSendsCredentials: a forwarded write carries the caller's
// bearer token to the leader, from a gRPC call or from a POST /add, and
// marks itself forwarded.
func TestForwarderSendsCredentials(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	leader := &recordingLeader{md: make(chan metadata.MD, 4)}
	srv := grpc.NewServer()
	provlogv1.RegisterLogServer(srv, leader)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	f, err := newForwarder("127.0.0.1:1", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for name, tc := range map[string]struct {
		ctx  context.Context
		want string
	}{
		"gRPC":      {metadata.NewIncomingContext(ctx, metadata.Pairs("authorization", "Bearer grpc-token")), "Bearer grpc-token"},
		"POST /add": {plog.WithForwardedAuthorization(ctx, "Bearer http-token"), "Bearer http-token"},
		"none":      {ctx, ""},
	} {
		if _, err := f.AddBatch(tc.ctx, lis.Addr().String(), [][]byte{[]byte("x")}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		md := <-leader.md
		if got := strings.Join(md.Get("authorization"), ","); got != tc.want {
			t.Errorf("%s: the leader got authorization %q, want %q", name, got, tc.want)
		}
		if got := md.Get(forwardedBy); len(got) != 1 || got[0] != "127.0.0.1:1" {
			t.Errorf("%s: %s = %v", name, forwardedBy, got)
		}
	}
}
