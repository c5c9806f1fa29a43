package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/provlog/provlog/client"
	"github.com/provlog/provlog/internal/atomicfile"
	"github.com/provlog/provlog/internal/buildinfo"
)

// globals are the flags every command has, and the standard streams.
type globals struct {
	log, logKey, tiles string
	ca, cert, keyFile  string
	serverName, token  string
	forceTLS           bool
	json               bool
	timeout            time.Duration

	stdin          io.Reader
	stdout, stderr io.Writer
	cmd            *cobra.Command // the root, to see which flags were set

	// key is the log key verifierKey returned, with where it came from,
	// or nil: named when a checkpoint does not verify.
	key *logKey
}

const rootLong = `provlog is the client of a provlog transparency log of software
supply-chain events: what was built, from which source, by whom, signed by
which key, and promoted by whom to which environment.

Global flags may also come from the environment: PROVLOG_LOG (--log),
PROVLOG_LOG_KEY (--log-key), PROVLOG_TILES (--tiles), PROVLOG_TOKEN
(--token). The log key is given as the key itself, @FILE or the path of a
file holding it; without --log-key, the key provlogd writes in its default
data directory (` + defaultLogKeyFile + `) is used if it exists. A checkpoint
that does not verify is reported with the key used and where it came from.

A command that finds nothing listening at --log (connection refused, no
route, a name that does not resolve) fails at once with exit 3; "provlog
wait" waits for a log that is starting. A log that pushes back is retried
until --timeout, with a line on stderr for each wait.

gRPC goes without TLS to a loopback address (127.0.0.1, ::1, localhost)
unless --tls, --ca or --cert is given; any other address needs TLS.

Exit codes, for every command:
  0  success (gate: allow; verify: valid)
  1  a negative finding: gate denies, verify finds a bundle invalid,
     audit finds a mismatch, monitor sees a fork
  2  usage: bad flags or arguments, unreadable or malformed input files
  3  operational: the log unreachable or refusing, I/O errors
Errors are one line on stderr.`

const rootExample = `  # Run a log (it admits events signed by the keys of its keyring) and wait
  # until it serves (and has written provlog-data/log.pub).
  provlogd --keyring keyring.json & provlog wait

  provlog keygen --type submitter --name ci --out ci
  provlog attest build --artifact app.tar.gz --builder-id https://ci.example.com/runner \
      --build-type https://ci.example.com/go@v1 --source-repo git+https://git.example.com/app \
      --source-commit 0123456789abcdef0123456789abcdef01234567 --sign-key ci.key --submit
  provlog search --artifact app.tar.gz
  provlog gate --artifact app.tar.gz --env prod --policy policy.json`

func newRoot(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:           "provlog",
		Short:         "Client of a provlog transparency log of supply-chain events",
		Long:          rootLong,
		Example:       rootExample,
		SilenceErrors: true,
		SilenceUsage:  true,
		Version:       buildinfo.Read().String(),
	}
	root.SetVersionTemplate("provlog {{.Version}}\n")
	root.Flags().Bool("version", false, "print the module version and VCS revision provlog was built from (as provlog version)")
	g.cmd = root
	pf := root.PersistentFlags()
	pf.StringVar(&g.log, "log", "127.0.0.1:7400", "gRPC `address` of the log (env PROVLOG_LOG)")
	pf.StringVar(&g.logKey, "log-key", "", "the log's note verifier key, as `VKEY`, @FILE or FILE (env PROVLOG_LOG_KEY; default @"+defaultLogKeyFile+" if it exists)")
	pf.StringVar(&g.tiles, "tiles", "http://127.0.0.1:7401/", "base `URL` of the log's tlog-tiles HTTP API (env PROVLOG_TILES)")
	pf.StringVar(&g.ca, "ca", "", "PEM `file` of CA certificates to trust for gRPC TLS (default: the system roots)")
	pf.StringVar(&g.cert, "cert", "", "PEM client certificate `file` for mutual TLS")
	pf.StringVar(&g.keyFile, "key-file", "", "PEM private key `file` of --cert")
	pf.StringVar(&g.serverName, "server-name", "", "`name` the server's TLS certificate must have (default: the host of --log)")
	pf.BoolVar(&g.forceTLS, "tls", false, "use TLS even to a loopback address")
	pf.StringVar(&g.token, "token", "", "bearer `token` of a writer identity (env PROVLOG_TOKEN)")
	pf.BoolVar(&g.json, "json", false, "print machine-readable JSON")
	pf.DurationVar(&g.timeout, "timeout", time.Minute, "give up on the log after this long (0: never; monitor: per poll)")

	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageErr("%w (see %s --help)", err, c.CommandPath())
	})
	root.AddCommand(
		newKeygenCmd(g),
		newAttestCmd(g),
		newApproveCmd(g),
		newKeyringCmd(g),
		newSubmitCmd(g),
		newGetCmd(g),
		newSearchCmd(g),
		newProveCmd(g),
		newCheckpointCmd(g),
		newVerifyCmd(g),
		newGateCmd(g),
		newAuditCmd(g),
		newMonitorCmd(g),
		newWaitCmd(g),
		newVersionCmd(g),
	)
	return root
}

// run adapts a command's function to cobra: errors without an exit code
// are operational (exit 3).
func run(f func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		err := f(cmd, args)
		if err == nil {
			return nil
		}
		var ee *exitError
		if errors.As(err, &ee) {
			return err
		}
		return &exitError{code: exitFailure, err: err}
	}
}

// setting returns the value of a global flag: the flag if set, else the
// environment variable env if set, else the flag's default.
func (g *globals) setting(flag, env string, value string) string {
	if g.cmd.PersistentFlags().Changed(flag) {
		return value
	}
	if v := os.Getenv(env); v != "" {
		return v
	}
	return value
}

// target returns the gRPC address of the log.
func (g *globals) target() string { return g.setting("log", "PROVLOG_LOG", g.log) }

// tilesURL returns the tlog-tiles base URL and whether it was asked for
// (by flag or environment) rather than defaulted.
func (g *globals) tilesURL() (string, bool) {
	v := g.setting("tiles", "PROVLOG_TILES", g.tiles)
	return v, g.cmd.PersistentFlags().Changed("tiles") || os.Getenv("PROVLOG_TILES") != ""
}

// context returns the context of a command, with the --timeout.
func (g *globals) context(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	if g.timeout > 0 {
		return context.WithTimeout(cmd.Context(), g.timeout)
	}
	return context.WithCancel(cmd.Context())
}

// connect returns the command's context (bounded by --timeout) and a
// client of the log, and done, which closes both.
func (g *globals) connect(cmd *cobra.Command) (context.Context, *client.Client, func(), error) {
	ctx, cancel := g.context(cmd)
	c, err := g.dial(ctx)
	if err != nil {
		cancel()
		return nil, nil, nil, err
	}
	return ctx, c, func() { c.Close(); cancel() }, nil
}

// dial connects to the log's gRPC service. Pushback is retried until the
// context ends, each wait said on stderr; a log that is not there fails
// the first call.
func (g *globals) dial(ctx context.Context) (*client.Client, error) {
	vkey, err := g.verifierKey()
	if err != nil {
		return nil, err
	}
	target := g.target()
	return g.dialKey(ctx, target, vkey, client.RetryPolicy{
		MaxBackoff: 2 * time.Second,
		OnRetry: func(op string, _ int, wait time.Duration, err error) {
			fmt.Fprintf(g.stderr, "provlog: %s; retrying %s in %v\n", retryReason(target, err), op, wait.Round(100*time.Millisecond))
		},
	})
}

// retryReason says why a call to the log at target is retried.
func retryReason(target string, err error) string {
	st := status.Convert(err)
	what := "is unavailable"
	if st.Code() == codes.ResourceExhausted {
		what = "is pushing back"
	}
	return fmt.Sprintf("the log at %s %s (%s: %s)", target, what, st.Code(), oneLine(st.Message()))
}

// dialKey connects to the log's gRPC service at target with the verifier
// key vkey and the retry policy p.
func (g *globals) dialKey(ctx context.Context, target, vkey string, p client.RetryPolicy) (*client.Client, error) {
	useTLS := g.forceTLS || g.ca != "" || g.cert != "" || g.keyFile != "" || !client.IsLoopback(target)
	if (g.cert == "") != (g.keyFile == "") {
		return nil, usageErr("--cert and --key-file go together")
	}
	token := g.token
	if token == "" {
		token = os.Getenv("PROVLOG_TOKEN")
	}
	c, err := client.Dial(ctx, target, client.Config{
		VerifierKey: vkey,
		Plaintext:   !useTLS,
		TLS:         client.TLSConfig{CAFile: g.ca, CertFile: g.cert, KeyFile: g.keyFile, ServerName: g.serverName},
		BearerToken: token,
		Retry:       p,
	})
	if err != nil {
		return nil, asUsage(err)
	}
	return c, nil
}

// printJSON prints v as indented JSON on stdout.
func (g *globals) printJSON(v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(g.stdout, "%s\n", b)
	return err
}

// readInput reads a file argument, "-" being stdin. A missing or unreadable
// file is a usage error.
func (g *globals) readInput(name string) ([]byte, error) {
	if name == "-" {
		b, err := io.ReadAll(g.stdin)
		if err != nil {
			return nil, fmt.Errorf("reading stdin: %w", err)
		}
		return b, nil
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, usageErr("%w", err)
	}
	return b, nil
}

// writeOutput writes data to the file name, or to stdout if name is "" or
// "-". A file is replaced atomically (temporary file, sync, rename).
func (g *globals) writeOutput(name string, data []byte, perm fs.FileMode) error {
	if name == "" || name == "-" {
		_, err := g.stdout.Write(data)
		return err
	}
	return atomicfile.WriteFile(name, data, perm)
}
