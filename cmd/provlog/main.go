// Command provlog is the command-line client of a provlog transparency log.
//
// It makes keys (keygen), builds and signs supply-chain events (attest,
// approve), submits them (submit), reads and proves what the log holds
// (get, search, prove, checkpoint), verifies proof bundles offline
// (verify), decides whether an artifact may be deployed (gate), replays
// or follows a log (audit, monitor), and waits for a log that is starting
// (wait); version and completion print its build and shell completion
// scripts. Each command maps its flags to the client and event packages;
// run "provlog help COMMAND" for its flags, examples and exit codes.
//
// Exit codes, for every command:
//
//	0  success (gate: allow; verify: valid)
//	1  a negative finding: gate denies, verify finds the bundle invalid,
//	   audit finds a mismatch, monitor sees a fork
//	2  usage: bad flags or arguments, an unreadable or malformed input file
//	3  operational: the log unreachable, a refusal by the log, I/O errors
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/provlog/provlog/client"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := execute(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit codes.
const (
	exitOK       = 0
	exitNegative = 1 // deny, invalid, mismatch, fork
	exitUsage    = 2
	exitFailure  = 3
)

// exitError is an error with the exit code it calls for. An error that is
// not one, returned by a command, is operational (exitFailure); cobra's own
// errors (unknown flags and commands, wrong argument counts) are usage
// errors.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageErr is an error of the caller: flags, arguments, input files.
func usageErr(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// negative wraps a negative finding (exit 1).
func negative(err error) error { return &exitError{code: exitNegative, err: err} }

// asUsage marks err as a usage error, keeping it if it already has a code.
func asUsage(err error) error {
	if err == nil {
		return nil
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return err
	}
	return &exitError{code: exitUsage, err: err}
}

// execute runs provlog with args and returns the exit code. Errors are
// printed on stderr as one line, "provlog: <reason>".
func execute(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	g := &globals{stdin: stdin, stdout: stdout, stderr: stderr}
	root := newRoot(g)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	code := exitUsage // an error cobra made, or a command's untyped usage error
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
	}
	fmt.Fprintf(stderr, "provlog: %s\n", oneLine(explain(g, err).Error()))
	return code
}

// explain returns err in the words a user needs: a call that reached no
// log says so and what to check; a checkpoint that does not verify names
// the log key used and where it came from.
func explain(g *globals, err error) error {
	var ce *client.ConnectError
	if errors.As(err, &ce) {
		switch {
		case ce.Reason == "connection refused":
			return fmt.Errorf("no log at %s (connection refused): is provlogd running?", ce.Target)
		case strings.HasPrefix(ce.Reason, "TLS handshake failed"):
			return fmt.Errorf("no connection to the log at %s (%s): check --ca, --cert, --key-file and --server-name", ce.Target, ce.Reason)
		}
		return fmt.Errorf("no log at %s (%s)", ce.Target, ce.Reason)
	}
	if errors.Is(err, client.ErrLogSignature) && g.key != nil {
		return fmt.Errorf("%w (checked with the %s)", err, g.key)
	}
	return err
}

// oneLine keeps an error message on one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
