package client_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/provlog/provlog/internal/provlogdproc"
)

// The tests and examples of this package run the real provlogd binary,
// built once by TestMain, as child processes on ephemeral ports.

const startTimeout = 30 * time.Second

var (
	// provlogdBin is the binary TestMain builds.
	provlogdBin string
	// tmpRoot holds the binary and the data of logs started by examples.
	tmpRoot string
	// running are the provlogd processes not yet stopped; TestMain stops
	// any left when the tests end.
	runningMu sync.Mutex
	running   []*provlogd
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	var err error
	tmpRoot, err = os.MkdirTemp("", "provlog-client-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmpRoot)
	provlogdBin = filepath.Join(tmpRoot, "provlogd")
	if err := provlogdproc.Build(context.Background(), "github.com/provlog/provlog/cmd/provlogd", provlogdBin); err != nil {
		fmt.Fprintf(os.Stderr, "building provlogd: %v\n", err)
		return 1
	}
	defer func() {
		runningMu.Lock()
		defer runningMu.Unlock()
		for _, d := range running {
			d.kill()
		}
	}()
	return m.Run()
}

// provlogd is one provlogd child process.
type provlogd struct {
	DataDir     string
	GRPCAddr    string // host:port
	HTTPURL     string // http://host:port/
	VerifierKey string

	cmd     *exec.Cmd
	out     bytes.Buffer // stderr and stdout, for diagnostics
	outMu   sync.Mutex
	exited  chan struct{}
	waitErr error
}

// startProvlogd starts provlogd on dataDir (created if needed) with extra
// flags and returns once it is healthy. It is killed when the test ends.
func startProvlogd(t testing.TB, dataDir string, args ...string) *provlogd {
	t.Helper()
	d, err := launch(dataDir, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.kill()
		if t.Failed() {
			t.Logf("provlogd output:\n%s", d.output())
		}
	})
	return d
}

// exampleLog starts a fresh log for an example; TestMain stops it.
func exampleLog() *provlogd {
	dir, err := os.MkdirTemp(tmpRoot, "example-")
	if err != nil {
		panic(err)
	}
	d, err := launch(dir)
	if err != nil {
		panic(err)
	}
	return d
}

func launch(dataDir string, args ...string) (*provlogd, error) {
	d := &provlogd{DataDir: dataDir, exited: make(chan struct{})}
	argv := append([]string{"--data", dataDir, "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--log-level", "warn", "--admission", "open"}, args...)
	d.cmd = exec.Command(provlogdBin, argv...)
	d.cmd.Stderr = writerFunc(d.write)
	stdout, err := d.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := d.cmd.Start(); err != nil {
		return nil, err
	}
	runningMu.Lock()
	running = append(running, d)
	runningMu.Unlock()
	type banner struct {
		provlogdproc.Banner
		err error
	}
	banners := make(chan banner, 1)
	go func() {
		b, drained, err := provlogdproc.ReadBanner(stdout, writerFunc(d.write))
		banners <- banner{b, err}
		<-drained
		d.waitErr = d.cmd.Wait()
		close(d.exited)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	select {
	case b := <-banners:
		if b.err != nil {
			<-d.exited
			return nil, fmt.Errorf("provlogd exited during start-up (%v):\n%s", d.waitErr, d.output())
		}
		d.GRPCAddr, d.HTTPURL, d.VerifierKey = b.GRPCAddr, b.HTTPURL, b.VerifierKey
	case <-ctx.Done():
		d.kill()
		return nil, fmt.Errorf("provlogd did not start within %v:\n%s", startTimeout, d.output())
	}
	for {
		resp, err := healthClient.Get(d.HTTPURL + "healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return d, nil
			}
		}
		select {
		case <-ctx.Done():
			d.kill()
			return nil, fmt.Errorf("provlogd not healthy within %v:\n%s", startTimeout, d.output())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// healthClient probes /healthz; it does not verify TLS certificates (the
// probe only waits for the server to be up).
var healthClient = &http.Client{
	Timeout:   5 * time.Second,
	Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

func (d *provlogd) write(b []byte) (int, error) {
	d.outMu.Lock()
	defer d.outMu.Unlock()
	return d.out.Write(b)
}

func (d *provlogd) output() string {
	d.outMu.Lock()
	defer d.outMu.Unlock()
	return d.out.String()
}

func (d *provlogd) kill() {
	select {
	case <-d.exited:
		return
	default:
	}
	d.cmd.Process.Kill()
	<-d.exited
}
