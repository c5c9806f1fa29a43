package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/provlog/provlog/client"
	"github.com/provlog/provlog/internal/atomicfile"
)

// defaultLogKeyFile is the verifier key provlogd writes on first start in
// its default data directory; provlog uses it when no key is given.
const defaultLogKeyFile = "provlog-data/log.pub"

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
}

const rootLong = `provlog is the client of a provlog transparency log of software
supply-chain events: what was built, from which source, by whom, signed by
which key, and promoted by whom to which environment.

Global flags may also come from the environment: PROVLOG_LOG (--log),
PROVLOG_LOG_KEY (--log-key), PROVLOG_TILES (--tiles), PROVLOG_TOKEN
(--token). Without --log-key, the key provlogd writes in its default data
directory (` + defaultLogKeyFile + `) is used if it exists.

gRPC goes without TLS to a loopback address (127.0.0.1, ::1, localhost)
unless --tls, --ca or --cert is given; any other address needs TLS.

Exit codes, for every command:
  0  success (gate: allow; verify: valid)
  1  a negative finding: gate denies, verify finds a bundle invalid,
     audit finds a mismatch, monitor sees a fork
  2  usage: bad flags or arguments, unreadable or malformed input files
  3  operational: the log unreachable or refusing, I/O errors
Errors are one line on stderr.`

const rootExample = `  # Run a log (it admits events signed by the keys of its keyring).
  provlogd --keyring keyring.json &

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
		CompletionOptions: cobra.CompletionOptions{
			DisableDefaultCmd: true,
		},
	}
	g.cmd = root
	pf := root.PersistentFlags()
	pf.StringVar(&g.log, "log", "127.0.0.1:7400", "gRPC `address` of the log (env PROVLOG_LOG)")
	pf.StringVar(&g.logKey, "log-key", "", "the log's note verifier key, as `VKEY` or @FILE (env PROVLOG_LOG_KEY; default @"+defaultLogKeyFile+" if it exists)")
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
		newSubmitCmd(g),
		newGetCmd(g),
		newSearchCmd(g),
		newProveCmd(g),
		newCheckpointCmd(g),
		newVerifyCmd(g),
		newGateCmd(g),
		newAuditCmd(g),
		newMonitorCmd(g),
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

// verifierKey returns the log's note verifier key (see --log-key).
func (g *globals) verifierKey() (string, error) {
	v := g.setting("log-key", "PROVLOG_LOG_KEY", g.logKey)
	if v == "" {
		if _, err := os.Stat(defaultLogKeyFile); err != nil {
			return "", usageErr("no log verifier key: pass --log-key VKEY or --log-key @FILE (e.g. @provlog-data/log.pub), or set PROVLOG_LOG_KEY")
		}
		v = "@" + defaultLogKeyFile
	}
	return readKeyArg(v)
}

// readKeyArg returns a verifier key given as VKEY or @FILE (the first
// non-empty line of FILE).
func readKeyArg(v string) (string, error) {
	file, ok := strings.CutPrefix(v, "@")
	if !ok {
		return strings.TrimSpace(v), nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", usageErr("reading log key: %w", err)
	}
	for line := range strings.Lines(string(b)) {
		if line = strings.TrimSpace(line); line != "" {
			return line, nil
		}
	}
	return "", usageErr("log key file %s is empty", file)
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

// dial connects to the log's gRPC service.
func (g *globals) dial(ctx context.Context) (*client.Client, error) {
	vkey, err := g.verifierKey()
	if err != nil {
		return nil, err
	}
	target := g.target()
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
		Retry:       client.RetryPolicy{MaxBackoff: 2 * time.Second},
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
