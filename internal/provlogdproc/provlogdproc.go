// Package provlogdproc builds provlog's commands and reads the start-up
// banner of a provlogd child process: what the client tests, the
// integration tests and the bench share to run the real binaries.
package provlogdproc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// GoCommand returns the go command of the running toolchain if it can be
// found, else the one on PATH.
func GoCommand() string {
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

// Build builds the command of package pkg (an import path of this module,
// such as github.com/provlog/provlog/cmd/provlogd) into bin.
func Build(ctx context.Context, pkg, bin string) error {
	cmd := exec.CommandContext(ctx, GoCommand(), "build", "-o", bin, pkg)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	return nil
}

// Banner is what provlogd prints on stdout once its servers listen.
type Banner struct {
	GRPCAddr    string // host:port ("grpc: ADDR")
	HTTPURL     string // http(s)://host:port/ ("http: URL")
	VerifierKey string // the log's note verifier key ("verifier key: K")
}

// ReadBanner reads provlogd's stdout until it has seen the three banner
// lines, then keeps reading it in the background until EOF, and closes
// drained then: only after that may the caller Wait for the process
// (exec.Cmd.StdoutPipe). Every line read is copied to log, prefixed
// "stdout: ", if log is not nil; log must then be safe to write from
// another goroutine. An EOF before the banner is complete is an error.
func ReadBanner(stdout io.Reader, log io.Writer) (b Banner, drained <-chan struct{}, err error) {
	done := make(chan struct{})
	sc := bufio.NewScanner(stdout)
	for (b.GRPCAddr == "" || b.HTTPURL == "" || b.VerifierKey == "") && sc.Scan() {
		line := sc.Text()
		copyLine(log, line)
		if v, ok := strings.CutPrefix(line, "grpc: "); ok {
			if _, _, err := net.SplitHostPort(v); err == nil {
				b.GRPCAddr = v
			}
		}
		if v, ok := strings.CutPrefix(line, "http: "); ok {
			if u, err := url.Parse(v); err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && u.Path == "/" {
				b.HTTPURL = v
			}
		}
		if v, ok := strings.CutPrefix(line, "verifier key: "); ok {
			b.VerifierKey = v
		}
	}
	if b.GRPCAddr == "" || b.HTTPURL == "" || b.VerifierKey == "" {
		io.Copy(io.Discard, stdout) //nolint:errcheck // drained until the child exits
		close(done)
		return b, done, fmt.Errorf("provlogd start-up banner incomplete (%+v): %w", b, errors.Join(sc.Err(), io.ErrUnexpectedEOF))
	}
	go func() {
		defer close(done)
		for sc.Scan() {
			copyLine(log, sc.Text())
		}
		io.Copy(io.Discard, stdout) //nolint:errcheck // drained until the child exits
	}()
	return b, done, nil
}

func copyLine(log io.Writer, line string) {
	if log != nil {
		fmt.Fprintf(log, "stdout: %s\n", line)
	}
}
