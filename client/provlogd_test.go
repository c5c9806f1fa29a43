package client_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
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
	cmd := exec.Command(goCommand(), "build", "-o", provlogdBin, "github.com/provlog/provlog/cmd/provlogd")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building provlogd: %v\n%s", err, out)
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

// goCommand returns the go command of the running toolchain if it can be
// found, else the one on PATH.
func goCommand() string {
	if root := os.Getenv("GOROOT"); root != "" {
		if p := filepath.Join(root, "bin", "go"); fileExists(p) {
			return p
		}
	}
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "go"
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
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
	printed := make(chan struct{})
	go func() {
		d.readStdout(stdout, printed)
		d.waitErr = d.cmd.Wait()
		close(d.exited)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	select {
	case <-printed:
	case <-d.exited:
		return nil, fmt.Errorf("provlogd exited during start-up (%v):\n%s", d.waitErr, d.output())
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

func (d *provlogd) readStdout(stdout io.Reader, printed chan<- struct{}) {
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		fmt.Fprintf(writerFunc(d.write), "stdout: %s\n", line)
		if printed == nil {
			continue
		}
		if v, ok := strings.CutPrefix(line, "grpc: "); ok {
			if _, _, err := net.SplitHostPort(v); err == nil {
				d.GRPCAddr = v
			}
		}
		if v, ok := strings.CutPrefix(line, "http: "); ok {
			if u, err := url.Parse(v); err == nil && (u.Scheme == "http" || u.Scheme == "https") {
				d.HTTPURL = v
			}
		}
		if v, ok := strings.CutPrefix(line, "verifier key: "); ok {
			d.VerifierKey = v
		}
		if d.GRPCAddr != "" && d.HTTPURL != "" && d.VerifierKey != "" {
			close(printed)
			printed = nil
		}
	}
	io.Copy(io.Discard, stdout)
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
