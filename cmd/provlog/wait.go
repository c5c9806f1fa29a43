package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/provlog/provlog/client"
)

// The polls of provlog wait: the first comes waitFirstPoll after the first
// try, the pause grows by half each time up to waitMaxPoll, and one try
// takes at most waitProbeTimeout (a host that drops packets).
const (
	waitFirstPoll    = 50 * time.Millisecond
	waitMaxPoll      = 500 * time.Millisecond
	waitProbeTimeout = 5 * time.Second
)

func newWaitCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "wait [--timeout D]",
		Short: "Wait until the log is up and serving (for scripts that start it)",
		Long: `Wait until the log at --log is ready, then print its origin and tree size
and exit 0: for a script that starts provlogd in the background and uses it
at once. Ready means all of:

  - the log's verifier key can be read: a key file that does not exist yet
    (the default ` + defaultLogKeyFile + `, or the --log-key file) is waited
    for, since provlogd writes it when it first starts;
  - the log's gRPC health service says provlog.v1.Log is SERVING;
  - the log serves a checkpoint signed by that key.

It tries at once, then every 50ms, growing to every 500ms, for at most
--timeout (default 1m; 0: no limit). A checkpoint that the key does not
verify is not waited out: it is another log's key.

Exit codes: 0 ready; 2 bad flags or a malformed key; 3 not ready within
--timeout (with what it was waiting for), or the checkpoint does not verify
with the key.`,
		Example: `  provlogd --keyring keyring.json & provlog wait
  provlog wait --log 127.0.0.1:7400 --log-key @data/log.pub --timeout 30s && provlog submit build.json`,
		Args: cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, _ []string) error { return waitReady(cmd, g) }),
	}
}

// waitReady polls the log until it is ready (see newWaitCmd).
func waitReady(cmd *cobra.Command, g *globals) error {
	ctx, cancel := g.context(cmd)
	defer cancel()
	target := g.target()
	pause := waitFirstPoll
	for {
		cp, waitingFor, err := g.probe(ctx, target)
		if err != nil {
			return err
		}
		if cp != nil {
			if g.json {
				return g.printJSON(map[string]any{"ready": true, "log": target, "origin": cp.Origin, "size": cp.Size})
			}
			fmt.Fprintf(g.stdout, "ready: %s at %s, tree size %d\n", cp.Origin, target, cp.Size)
			return nil
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			if cmd.Context().Err() != nil {
				return fmt.Errorf("interrupted while waiting for the log: %s", waitingFor)
			}
			return fmt.Errorf("gave up after %v waiting for the log: %s", g.timeout, waitingFor)
		case <-t.C:
		}
		pause = min(pause*3/2, waitMaxPoll)
	}
}

// probe tries once whether the log at target is ready. It returns the
// verified checkpoint if it is, else what it is waiting for; an error only
// for what waiting cannot mend (a malformed key, a checkpoint the key does
// not verify, a failed TLS handshake, bad flags).
func (g *globals) probe(ctx context.Context, target string) (*client.Checkpoint, string, error) {
	arg, source := g.keySpec()
	k, err := loadLogKey(arg, source)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Sprintf("no log key file %s yet (provlogd writes it when it first starts)", strings.TrimPrefix(arg, "@")), nil
	}
	if err != nil {
		return nil, "", err
	}
	g.key = k
	ctx, cancel := context.WithTimeout(ctx, waitProbeTimeout)
	defer cancel()
	c, err := g.dialKey(ctx, target, k.vkey, client.RetryPolicy{MaxAttempts: 1})
	if err != nil {
		return nil, "", err
	}
	defer c.Close()
	if err := c.Health(ctx); err != nil && status.Code(err) != codes.Unimplemented {
		why, err := g.waitingFor(err)
		return nil, why, err
	}
	cp, err := c.Checkpoint(ctx)
	if err != nil {
		why, err := g.waitingFor(err)
		return nil, why, err
	}
	return cp, "", nil
}

// waitingFor returns what provlog wait waits for when a try failed with
// err, or err if waiting cannot mend it: a checkpoint the key does not
// verify, a failed TLS handshake.
func (g *globals) waitingFor(err error) (string, error) {
	var ce *client.ConnectError
	if errors.Is(err, client.ErrLogSignature) || (errors.As(err, &ce) && strings.HasPrefix(ce.Reason, "TLS")) {
		return "", err
	}
	return oneLine(explain(g, err).Error()), nil
}
