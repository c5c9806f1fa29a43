package integration

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	pb "github.com/provlog/provlog/proto/provlog/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/provlog/provlog/internal/provlogdproc"
)

const (
	// startTimeout bounds how long provlogd may take to print its addresses
	// and to answer /healthz with 200.
	startTimeout = 30 * time.Second
	// stopTimeout bounds how long provlogd may take to exit after SIGTERM.
	stopTimeout = 20 * time.Second
)

// provlogdBin is the provlogd binary TestMain builds.
var provlogdBin string

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "provlog-integration-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "integration: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	provlogdBin = filepath.Join(dir, "provlogd")
	if err := buildProvlogd(provlogdBin); err != nil {
		fmt.Fprintf(os.Stderr, "integration: building provlogd: %v\n", err)
		return 1
	}
	return m.Run()
}

// buildProvlogd builds cmd/provlogd into bin with the go command that runs
// the tests.
func buildProvlogd(bin string) error {
	return provlogdproc.Build(context.Background(), "github.com/provlog/provlog/cmd/provlogd", bin)
}

// provlogd is one run of the provlogd binary as a child process.
//
// Its methods other than those taking a testing.TB may be called from any
// goroutine.
type provlogd struct {
	DataDir     string
	GRPCAddr    string // host:port the gRPC server bound
	HTTPURL     string // http://host:port/ the HTTP server bound
	VerifierKey string // as printed on stdout
	Log         pb.LogClient

	conn    *grpc.ClientConn
	cmd     *exec.Cmd
	logPath string        // the child's stdout and stderr, for diagnostics
	exited  chan struct{} // closed once the child has exited; then waitErr is set
	waitErr error

	stopOnce sync.Once
	stopErr  error
}

// startProvlogd starts provlogd on dataDir with both servers on ephemeral
// ports, admitting any entry (--admission open, unless args say otherwise:
// the last flag wins) and extra flags args, and returns once it has printed its addresses
// and GET /healthz answers 200. The child is killed when the test ends if it
// is still running; if the test failed, the end of its output is logged.
func startProvlogd(t testing.TB, dataDir string, args ...string) (*provlogd, error) {
	argv := append([]string{"--data", dataDir, "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--admission", "open"}, args...)
	d, err := launchProvlogd(t, launch{argv: argv})
	if d != nil {
		d.DataDir = dataDir
	}
	return d, err
}

// launch says how launchProvlogd starts provlogd.
type launch struct {
	argv []string
	// name names the child in its log file and in the test's log; netns,
	// if set, is the network namespace it runs in (ip netns exec execs
	// provlogd, so the pid is provlogd's).
	name, netns string
	// answering is enough for health: a replica's GET /healthz says 503
	// while it does not serve (see cmd/provlogd/replica.go).
	answering bool
}

// launchProvlogd starts provlogd as the launch says, and returns once it
// has printed its banner and GET /healthz answers (200, unless answering
// is enough), with a gRPC connection to it. The child is killed when the
// test ends, or if the test binary dies; if the test failed, the end of
// its output is logged.
func launchProvlogd(t testing.TB, l launch) (*provlogd, error) {
	logFile, err := os.CreateTemp(t.TempDir(), "provlogd-"+l.name+"*.log")
	if err != nil {
		return nil, err
	}
	bin, args := provlogdBin, l.argv
	if l.netns != "" {
		bin, args = "ip", append([]string{"netns", "exec", l.netns, provlogdBin}, l.argv...)
	}
	d := &provlogd{logPath: logFile.Name(), exited: make(chan struct{})}
	d.cmd = exec.Command(bin, args...)
	d.cmd.Stderr = logFile
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := d.cmd.StdoutPipe()
	if err != nil {
		logFile.Close()
		return nil, err
	}
	if err := d.cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting provlogd: %w", err)
	}
	fmt.Fprintf(logFile, "integration: started %s\n", strings.Join(d.cmd.Args, " "))
	t.Cleanup(func() {
		d.kill()
		if d.conn != nil {
			d.conn.Close()
		}
		if t.Failed() {
			t.Logf("end of provlogd %s output (%s):\n%s", l.name, strings.Join(d.cmd.Args, " "), tail(d.logPath, 60))
		}
	})
	type banner struct {
		provlogdproc.Banner
		err error
	}
	banners := make(chan banner, 1)
	go func() {
		b, drained, err := provlogdproc.ReadBanner(stdout, logFile)
		banners <- banner{b, err}
		<-drained
		d.waitErr = d.cmd.Wait()
		logFile.Close()
		close(d.exited)
	}()

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	select {
	case b := <-banners:
		if b.err != nil {
			<-d.exited
			return nil, fmt.Errorf("provlogd exited during start-up (%v):\n%s", d.waitErr, tail(d.logPath, 30))
		}
		d.GRPCAddr, d.HTTPURL, d.VerifierKey = b.GRPCAddr, b.HTTPURL, b.VerifierKey
	case <-ctx.Done():
		d.kill()
		return nil, fmt.Errorf("provlogd did not print its addresses and verifier key within %v:\n%s", startTimeout, tail(d.logPath, 30))
	}
	if err := d.waitHealthy(ctx, l.answering); err != nil {
		return nil, err
	}
	// Open rebuilds a damaged leaf-hash index (before provlogd serves):
	// no test damages one, so a rebuild is a crash or fault that did.
	if b, err := os.ReadFile(d.logPath); err == nil && bytes.Contains(b, []byte("index is damaged; rebuilding it")) {
		return nil, fmt.Errorf("provlogd found its leaf-hash index damaged at start and rebuilt it:\n%s", tail(d.logPath, 30))
	}
	d.conn, err = grpc.NewClient(d.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("dialling provlogd gRPC at %s: %w", d.GRPCAddr, err)
	}
	d.Log = pb.NewLogClient(d.conn)
	return d, nil
}

// mustStartProvlogd is startProvlogd for the test goroutine.
func mustStartProvlogd(t testing.TB, dataDir string, args ...string) *provlogd {
	t.Helper()
	d, err := startProvlogd(t, dataDir, args...)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// waitHealthy polls GET /healthz until it answers 200, or at all if
// answering is enough.
func (d *provlogd) waitHealthy(ctx context.Context, answering bool) error {
	var last string
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.HTTPURL+"healthz", nil)
		if err != nil {
			return err
		}
		resp, err := httpClient.Do(req)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || answering {
				return nil
			}
			last = fmt.Sprintf("%s: %q", resp.Status, body)
		} else {
			last = err.Error()
		}
		select {
		case <-d.exited:
			return fmt.Errorf("provlogd exited before it was healthy (%v):\n%s", d.waitErr, tail(d.logPath, 30))
		case <-ctx.Done():
			return fmt.Errorf("GET /healthz did not answer 200 within %v; last answer: %s", startTimeout, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop sends SIGTERM and waits for the child to exit. It fails unless the
// child exits with status 0 within stopTimeout; if it does not exit, it is
// killed. The gRPC connection stays open (calls on it fail with Unavailable)
// until the test ends, so that goroutines still holding it see a retryable
// error rather than a closed connection.
func (d *provlogd) Stop() error {
	d.stopOnce.Do(func() {
		if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			d.stopErr = fmt.Errorf("sending SIGTERM to provlogd: %w", err)
			return
		}
		select {
		case <-d.exited:
		case <-time.After(stopTimeout):
			d.cmd.Process.Kill()
			<-d.exited
			d.stopErr = fmt.Errorf("provlogd did not exit within %v of SIGTERM; killed", stopTimeout)
			return
		}
		if d.waitErr != nil {
			d.stopErr = fmt.Errorf("provlogd after SIGTERM: %w, want exit status 0:\n%s", d.waitErr, tail(d.logPath, 30))
		}
	})
	return d.stopErr
}

// mustStop is Stop for the test goroutine.
func (d *provlogd) mustStop(t testing.TB) {
	t.Helper()
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
}

// kill kills the child if it is still running and waits for it.
func (d *provlogd) kill() {
	select {
	case <-d.exited:
		return
	default:
	}
	d.cmd.Process.Kill()
	<-d.exited
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// httpClient is the client for every HTTP request of the tests.
var httpClient = &http.Client{Timeout: 30 * time.Second}

// httpGet fetches u and returns the status code and body.
func httpGet(ctx context.Context, u string) (int, []byte, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, nil, nil, err
	}
	return httpDo(req)
}

// httpPost posts body to u and returns the status code and response body.
func httpPost(ctx context.Context, u string, body []byte) (int, []byte, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	return httpDo(req)
}

func httpDo(req *http.Request) (int, []byte, http.Header, error) {
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("%s %s: reading body: %w", req.Method, req.URL, err)
	}
	return resp.StatusCode, body, resp.Header, nil
}

// fetchOK fetches u and fails unless it answers 200.
func fetchOK(ctx context.Context, u string) ([]byte, error) {
	code, body, _, err := httpGet(ctx, u)
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("GET %s: status %d (%q), want 200", u, code, firstLine(body))
	}
	return body, nil
}

// firstLine returns the first line of b, shortened, for messages.
func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\n")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// handedOut holds the ports freeAddr has returned in this test binary.
var handedOut struct {
	sync.Mutex
	ports map[int]bool
}

// freeAddr returns an address on host with a port free at the moment, so
// that a process can be started (or restarted) there. It never returns a
// port it returned before in this test binary: the kernel may hand a
// closed port straight back, and two addresses asked for one after the
// other then collided (CI: a replica's gRPC and HTTP listeners given the
// same port).
func freeAddr(t *testing.T, host string) string {
	t.Helper()
	for {
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		addr := l.Addr().String()
		l.Close()
		handedOut.Lock()
		fresh := !handedOut.ports[port]
		if fresh {
			if handedOut.ports == nil {
				handedOut.ports = map[int]bool{}
			}
			handedOut.ports[port] = true
		}
		handedOut.Unlock()
		if fresh {
			return addr
		}
	}
}
