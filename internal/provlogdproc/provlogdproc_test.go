package provlogdproc

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the background copy.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestReadBanner(t *testing.T) {
	out := "provlogd: log example.com/log (tree size 0)\n" +
		"verifier key: example.com/log+abcd1234+AAAA\n" +
		"grpc: 127.0.0.1:7400\n" +
		"http: http://127.0.0.1:7401/\n" +
		"later line\n"
	var log syncBuffer
	b, drained, err := ReadBanner(strings.NewReader(out), &log)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-drained:
	case <-time.After(5 * time.Second):
		t.Fatal("stdout not drained after EOF")
	}
	want := Banner{GRPCAddr: "127.0.0.1:7400", HTTPURL: "http://127.0.0.1:7401/", VerifierKey: "example.com/log+abcd1234+AAAA"}
	if b != want {
		t.Errorf("ReadBanner = %+v, want %+v", b, want)
	}
	if !strings.Contains(log.String(), "stdout: later line\n") {
		t.Fatalf("lines after the banner not copied; log has %q", log.String())
	}
	if !strings.HasPrefix(log.String(), "stdout: provlogd: log example.com/log") {
		t.Errorf("log = %q, want every line prefixed", log.String())
	}
}

func TestReadBannerIncomplete(t *testing.T) {
	for name, out := range map[string]string{
		"no http":        "verifier key: k\ngrpc: 127.0.0.1:1\n",
		"bad grpc":       "verifier key: k\ngrpc: nowhere\nhttp: http://127.0.0.1:2/\n",
		"http with path": "verifier key: k\ngrpc: 127.0.0.1:1\nhttp: http://127.0.0.1:2/x\n",
	} {
		if _, _, err := ReadBanner(strings.NewReader(out), nil); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("%s: ReadBanner = %v, want ErrUnexpectedEOF", name, err)
		}
	}
}
