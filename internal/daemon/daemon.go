// Package daemon holds what provlog's two daemons, provlogd and
// provlog-witness, share: the command line (cobra, flags written --flag as
// provlog writes them, --version, exit codes), the logger (--log-level,
// --log-format), reserving listen addresses before anything is written
// (Reserve), and the metrics every daemon serves beside its own (build
// information, HTTP requests).
package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"

	"github.com/provlog/provlog/internal/buildinfo"
)

// Exit codes of both daemons.
const (
	ExitOK      = 0 // stopped cleanly by SIGINT or SIGTERM; --help, --version
	ExitFailure = 1 // failed to start, or while serving
	ExitUsage   = 2 // bad flags or arguments
)

// ExitCodesHelp documents the exit codes in a daemon's --help.
const ExitCodesHelp = `Exit codes:
  0  stopped cleanly by SIGINT or SIGTERM (also --help and --version)
  1  failed to start (a busy port, an unreadable or mismatched key or
     configuration file, storage) or failed while serving
  2  usage: unknown flags, bad flag values, arguments
Errors are one line on stderr.`

// exitError is an error with the exit code it calls for.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// Failure marks err, returned by a command, as a failure to run (exit 1).
// A command's errors that are not marked are usage errors, as cobra's own
// (unknown flags, arguments) are.
func Failure(err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: ExitFailure, err: err}
}

// Execute runs the daemon's command cmd with args and returns its exit
// code. It gives cmd --version (the line "NAME VERSION (REVISION,
// GOVERSION)", from internal/buildinfo), and prints an error on stderr as
// one line, "NAME: reason".
//
// Long flags may also be written with one dash (-data DIR, -data=DIR),
// as the daemons took them when they used Go's flag package; --help shows
// only the two-dash form, the one provlog's commands take.
func Execute(ctx context.Context, cmd *cobra.Command, args []string, stdout, stderr io.Writer) int {
	cmd.Version = buildinfo.Read().String()
	cmd.SetVersionTemplate("{{.Name}} {{.Version}}\n")
	cmd.SilenceErrors, cmd.SilenceUsage = true, true
	cmd.CompletionOptions.DisableDefaultCmd = true
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return fmt.Errorf("%w (see %s --help)", err, c.CommandPath())
	})
	cmd.SetArgs(LongFlags(cmd, args))
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	err := cmd.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	code := ExitUsage
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
	}
	fmt.Fprintf(stderr, "%s: %s\n", cmd.Name(), strings.Join(strings.Fields(err.Error()), " "))
	return code
}

// LongFlags returns args with every "-name" or "-name=value" that names a
// long flag of cmd or of one of its subcommands (or help or version)
// rewritten as "--name…", up to a "--" that ends the flags. Other
// arguments, one-letter shorthands ("-h") and values such as "-1ms" are
// left as they are.
func LongFlags(cmd *cobra.Command, args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "--" {
			copy(out[i:], args[i:])
			break
		}
		out[i] = a
		name, ok := strings.CutPrefix(a, "-")
		if !ok || len(name) < 2 || name[0] == '-' {
			continue
		}
		name, _, _ = strings.Cut(name, "=")
		if name == "help" || name == "version" || hasFlag(cmd, name) {
			out[i] = "-" + a
		}
	}
	return out
}

// hasFlag reports whether cmd or one of its subcommands has a flag name.
func hasFlag(cmd *cobra.Command, name string) bool {
	if cmd.Flags().Lookup(name) != nil || cmd.PersistentFlags().Lookup(name) != nil {
		return true
	}
	for _, sub := range cmd.Commands() {
		if hasFlag(sub, name) {
			return true
		}
	}
	return false
}

// Logging is a daemon's logger configuration: --log-level and
// --log-format.
type Logging struct {
	Level  slog.Level
	Format LogFormat
}

// LogFormat is the format of log lines: "text" (slog's key=value lines)
// or "json" (one JSON object a line). The zero value is text.
type LogFormat string

// Set implements pflag.Value, refusing formats other than text and json.
func (f *LogFormat) Set(s string) error {
	switch s {
	case "text", "json":
		*f = LogFormat(s)
		return nil
	}
	return errors.New("want text or json")
}

func (f *LogFormat) String() string {
	if *f == "" {
		return "text"
	}
	return string(*f)
}

// Type implements pflag.Value.
func (f *LogFormat) Type() string { return "format" }

// AddFlags adds --log-level and --log-format to cmd.
func (l *Logging) AddFlags(cmd *cobra.Command) {
	l.Level, l.Format = slog.LevelInfo, "text"
	cmd.Flags().TextVar(&l.Level, "log-level", slog.LevelInfo, "log `level`: debug, info, warn, error")
	cmd.Flags().Var(&l.Format, "log-format", "log line `format`: text (key=value) or json (one object a line)")
}

// Logger returns the logger writing to w that l asks for.
func (l Logging) Logger(w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: l.Level}
	if l.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
