package client_test

import (
	"context"
	"crypto/rand"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/provlog/provlog/client"
	provlogv1 "github.com/provlog/provlog/proto/provlog/v1"
)

// closedPort returns a loopback address nothing listens on: a port the
// kernel handed out and that was closed again.
func closedPort(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	return addr
}

// TestNoLogFailsFast calls a closed port the way each kind of call goes
// (unary, server stream, paged search): each fails at once with a
// *ConnectError saying "connection refused", not after retrying until the
// deadline.
func TestNoLogFailsFast(t *testing.T) {
	addr := closedPort(t)
	_, vkey, _ := note.GenerateKey(rand.Reader, "example.com/log")
	c, err := client.Dial(context.Background(), addr, client.Config{VerifierKey: vkey, Plaintext: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The bound only keeps a regression from hanging the test: a client
	// that retries is caught by the error it returns once it ends.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	calls := map[string]func() error{
		"Append":     func() error { _, err := c.Append(ctx, []byte("x")); return err },
		"AppendMany": func() error { _, err := c.AppendMany(ctx, [][]byte{[]byte("x"), []byte("y")}); return err },
		"Checkpoint": func() error { _, err := c.Checkpoint(ctx); return err },
		"Entries":    func() error { _, err := c.Entries(ctx, 0, 1); return err },
		"Search": func() error {
			for _, err := range c.Search(ctx, client.SearchKey{Digest: "sha256:" + strings.Repeat("ab", 32)}) {
				return err
			}
			return nil
		},
	}
	for name, call := range calls {
		err := call()
		var ce *client.ConnectError
		switch {
		case !errors.As(err, &ce) || !errors.Is(err, client.ErrNoConnection):
			t.Errorf("%s = %v, want a *ConnectError (ErrNoConnection)", name, err)
		case ce.Reason != "connection refused" || ce.Target != addr:
			t.Errorf("%s: ConnectError{Target: %q, Reason: %q}, want %q, \"connection refused\"", name, ce.Target, ce.Reason, addr)
		case status.Code(err) != codes.Unavailable || errors.Is(err, client.ErrUnavailable):
			t.Errorf("%s = %v: want the Unavailable status, and not ErrUnavailable (nothing was retried)", name, err)
		case !strings.Contains(err.Error(), "no connection to the log at "+addr+" (connection refused)"):
			t.Errorf("%s error %q does not say what failed", name, err)
		}
	}
	if ctx.Err() != nil || time.Since(start) > 5*time.Second {
		t.Errorf("%d calls to a closed port took %v, want each to fail at once", len(calls), time.Since(start))
	}
}

// TestWaitForReadyRidesOutAStart makes a WaitForReady call while nothing
// listens, waits until the connection has failed, then starts the log on
// that port: the call, which without WaitForReady fails at the first
// failure to connect (TestNoLogFailsFast), succeeds.
func TestWaitForReadyRidesOutAStart(t *testing.T) {
	addr := closedPort(t)
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.Config{BaseDelay: 10 * time.Millisecond, Multiplier: 1.5, MaxDelay: 100 * time.Millisecond}}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_, vkey, _ := note.GenerateKey(rand.Reader, "example.com/log")
	c, err := client.New(conn, client.Config{VerifierKey: vkey, WaitForReady: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t)
	type result struct {
		r   client.Result
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := c.Append(ctx, []byte("x"))
		done <- result{r, err}
	}()
	for s := conn.GetState(); s != connectivity.TransientFailure; s = conn.GetState() {
		if !conn.WaitForStateChange(ctx, s) {
			t.Fatalf("the connection to a closed port never failed (state %v)", s)
		}
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("the closed port was taken meanwhile: %v", err)
	}
	s := grpc.NewServer()
	provlogv1.RegisterLogServer(s, &pushbackServer{})
	go s.Serve(lis)
	t.Cleanup(s.Stop)
	select {
	case res := <-done:
		if res.err != nil || res.r.Index != 42 {
			t.Errorf("Append waiting for ready = %+v, %v; want index 42 from the log started meanwhile", res.r, res.err)
		}
	case <-ctx.Done():
		t.Fatal("Append waiting for ready did not return once the log was up")
	}
}

// TestOnRetrySaysWhatItWaitsFor has a live log push back twice: OnRetry
// hears each wait, with the log's status and at least its RetryInfo delay.
func TestOnRetrySaysWhatItWaitsFor(t *testing.T) {
	srv := &pushbackServer{code: codes.ResourceExhausted, delay: 20 * time.Millisecond, fail: 2}
	type retried struct {
		op      string
		attempt int
		wait    time.Duration
		code    codes.Code
	}
	var got []retried
	c := fakeClient(t, srv, client.Config{Retry: client.RetryPolicy{
		InitialBackoff: time.Millisecond,
		OnRetry: func(op string, attempt int, wait time.Duration, err error) {
			got = append(got, retried{op, attempt, wait, status.Code(err)})
		},
	}})
	if _, err := c.Append(testContext(t), []byte("x")); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("OnRetry called %d times, want 2: %+v", len(got), got)
	}
	for i, r := range got {
		if r.op != "append" || r.attempt != i+1 || r.code != codes.ResourceExhausted || r.wait < srv.delay {
			t.Errorf("OnRetry call %d = %+v, want append, attempt %d, ResourceExhausted, wait >= %v", i, r, i+1, srv.delay)
		}
	}
}
