package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/provlog/provlog/log"
	provlogv1 "github.com/provlog/provlog/proto/provlog/v1"
)

// lockedBuffer is a bytes.Buffer safe for the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// captureDebug sends the default logger's lines at level, as JSON, to the
// returned buffer until the test ends.
func captureDebug(t *testing.T, level slog.Level) *lockedBuffer {
	t.Helper()
	var buf lockedBuffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: level})))
	t.Cleanup(func() { slog.SetDefault(old) })
	return &buf
}

// refusals returns the "submission refused" lines in buf.
func refusals(t *testing.T, buf *lockedBuffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for l := range strings.Lines(buf.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if m["msg"] == "submission refused" {
			out = append(out, m)
		}
	}
	return out
}

// refusingLog is a fake log that refuses every entry as an event whose
// signer it does not know.
func refusingLog() *fakeLog {
	f := newFakeLog(10)
	f.addBatch = func(ctx context.Context, entries [][]byte) ([]log.AddResult, error) {
		return nil, fmt.Errorf("%w: signer abcd1234 is not in the keyring", log.ErrPermissionDenied)
	}
	return f
}

// Every refused write is logged at debug with its method, code, reason,
// identity and peer, and never with a bearer token; accepted writes and
// reads are not logged.
func TestRefusedSubmissionsLoggedGRPC(t *testing.T) {
	logs := captureDebug(t, slog.LevelDebug)
	c := provlogv1.NewLogClient(dialBufconn(t, func(s *grpc.Server) { RegisterGRPC(s, refusingLog(), WithAuth(testAuth(t, ""))) }))
	req := &provlogv1.AppendRequest{Entry: []byte("event")}
	if _, err := c.Append(withToken(ciToken), req); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("Append: %v", err)
	}
	if _, err := c.AppendBatch(withToken("s3cret-unknown-token"), &provlogv1.AppendBatchRequest{Entries: [][]byte{[]byte("e")}}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("AppendBatch: %v", err)
	}
	if _, err := c.Append(withToken(ciToken), &provlogv1.AppendRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("empty Append: %v", err)
	}
	st, err := c.AppendStream(withToken(ciToken))
	if err != nil {
		t.Fatal(err)
	}
	st.Send(&provlogv1.AppendBatchRequest{Entries: [][]byte{[]byte("e")}})
	st.CloseSend()
	if _, err := st.Recv(); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("AppendStream: %v", err)
	}
	if _, err := c.GetCheckpoint(context.Background(), &provlogv1.GetCheckpointRequest{}); err != nil {
		t.Fatal(err)
	}
	got := refusals(t, logs)
	want := []struct{ method, code, identity, reason string }{
		{"/provlog.v1.Log/Append", "PermissionDenied", "ci", "signer abcd1234 is not in the keyring"},
		{"/provlog.v1.Log/AppendBatch", "Unauthenticated", "unauthenticated", "unknown token"},
		{"/provlog.v1.Log/Append", "InvalidArgument", "ci", "AppendRequest.entry"},
		{"/provlog.v1.Log/AppendStream", "PermissionDenied", "ci", "signer abcd1234 is not in the keyring"},
	}
	if len(got) != len(want) {
		t.Fatalf("%d refusals logged, want %d:\n%s", len(got), len(want), logs)
	}
	for i, w := range want {
		g := got[i]
		if g["level"] != "DEBUG" || g["method"] != w.method || g["code"] != w.code || g["identity"] != w.identity ||
			!strings.Contains(fmt.Sprint(g["reason"]), w.reason) || g["peer"] == nil {
			t.Errorf("refusal %d: %v, want %+v", i, g, w)
		}
	}
	if strings.Contains(logs.String(), "s3cret") {
		t.Errorf("a token appears in the logs:\n%s", logs)
	}
}

func TestRefusedSubmissionsLoggedHTTP(t *testing.T) {
	logs := captureDebug(t, slog.LevelDebug)
	for _, tc := range []struct {
		opts     []Option
		token    string
		body     string
		code     float64
		identity string
		reason   string
	}{
		{[]Option{WithAuth(testAuth(t, ""))}, ciToken, "event", 403, "ci", "signer abcd1234 is not in the keyring"},
		{[]Option{WithAuth(testAuth(t, ""))}, "s3cret-unknown-token", "event", 401, "unauthenticated", "unknown token"},
		{nil, "", "event", 403, "anonymous", "signer abcd1234 is not in the keyring"},
		{nil, "", "", 400, "anonymous", "empty entry"},
	} {
		before := len(refusals(t, logs))
		h := HTTPHandler(refusingLog(), nil, tc.opts...)
		r := httptest.NewRequest("POST", "/add", strings.NewReader(tc.body))
		if tc.token != "" {
			r.Header.Set("Authorization", "Bearer "+tc.token)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		got := refusals(t, logs)[before:]
		if len(got) != 1 {
			t.Errorf("%+v: %d lines logged, want 1", tc, len(got))
			continue
		}
		g := got[0]
		if g["method"] != "POST /add" || g["code"] != tc.code || g["identity"] != tc.identity || g["reason"] != strings.TrimSpace(rec.Body.String()) ||
			!strings.Contains(fmt.Sprint(g["reason"]), tc.reason) || g["peer"] != r.RemoteAddr {
			t.Errorf("%+v: logged %v (answer %d %q)", tc, g, rec.Code, rec.Body)
		}
	}
	// Accepted and read requests are not refusals.
	f := newFakeLog(3)
	h := HTTPHandler(f, nil)
	for _, r := range []*http.Request{httptest.NewRequest("POST", "/add", strings.NewReader("e")), httptest.NewRequest("GET", "/tile/0/x", nil)} {
		before := len(refusals(t, logs))
		h.ServeHTTP(httptest.NewRecorder(), r)
		if n := len(refusals(t, logs)) - before; n != 0 {
			t.Errorf("%s %s: %d refusals logged", r.Method, r.URL, n)
		}
	}
	if strings.Contains(logs.String(), "s3cret") {
		t.Errorf("a token appears in the logs:\n%s", logs)
	}
}

// At info level nothing is logged for a refusal.
func TestRefusedSubmissionsNotLoggedAtInfo(t *testing.T) {
	logs := captureDebug(t, slog.LevelInfo)
	c := provlogv1.NewLogClient(dialBufconn(t, func(s *grpc.Server) { RegisterGRPC(s, refusingLog()) }))
	if _, err := c.Append(context.Background(), &provlogv1.AppendRequest{Entry: []byte("e")}); status.Code(err) != codes.PermissionDenied {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	HTTPHandler(refusingLog(), nil).ServeHTTP(rec, httptest.NewRequest("POST", "/add", strings.NewReader("e")))
	if rec.Code != 403 || logs.String() != "" {
		t.Errorf("answer %d; logged %q at info", rec.Code, logs)
	}
}
