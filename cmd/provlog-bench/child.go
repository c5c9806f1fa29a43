package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// child is a server process the bench started: provlogd, or this binary
// serving a Tessera log (serve-tessera).
type child struct {
	name    string // for messages
	cmd     *exec.Cmd
	logFile string     // its stderr
	exited  chan error // Wait's result, once the process exited and its stdout was drained
}

// startChild starts bin with args, its stderr appended to logFile, and
// hands its stdout to banner, which reads what the child prints once it
// serves and returns a channel closed once stdout is drained (EOF). If
// banner fails the child is killed. The child gets SIGTERM if the bench
// dies first.
func startChild(name, bin string, args []string, logFile string, banner func(stdout io.Reader) (drained <-chan struct{}, err error)) (*child, error) {
	logf, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening %s log: %w", name, err)
	}
	defer logf.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("%s stdout: %w", name, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, logFile: logFile, exited: make(chan error, 1)}
	drained, err := banner(stdout)
	go func() {
		<-drained
		c.exited <- cmd.Wait()
	}()
	if err != nil {
		c.kill()
		return nil, fmt.Errorf("%s (log in %s): %w", name, logFile, err)
	}
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// stop sends SIGTERM and waits for the child to drain and exit, returning
// how long that took; after timeout it kills it.
func (c *child) stop(timeout time.Duration) (time.Duration, error) {
	t0 := time.Now()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return 0, fmt.Errorf("signalling %s: %w", c.name, err)
	}
	select {
	case err := <-c.exited:
		if err != nil {
			return time.Since(t0), fmt.Errorf("%s exited: %w (its log: %s)", c.name, err, c.logFile)
		}
		return time.Since(t0), nil
	case <-time.After(timeout):
		c.kill()
		return time.Since(t0), fmt.Errorf("%s did not stop within %v (its log: %s)", c.name, timeout, c.logFile)
	}
}

func (c *child) kill() {
	if c.cmd.Process != nil {
		c.cmd.Process.Kill() //nolint:errcheck // best effort after a failure
	}
}

// exitStatus describes the child's exit for an error message, or returns
// "" if it is still running a second later.
func (c *child) exitStatus() string {
	select {
	case err := <-c.exited:
		c.exited <- err // for stop
		return fmt.Sprintf(" (%s exited: %v; its log: %s)", c.name, err, c.logFile)
	case <-time.After(time.Second):
		return ""
	}
}
