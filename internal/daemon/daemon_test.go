package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

func testCommand(run func() error) *cobra.Command {
	cmd := &cobra.Command{Use: "d", Args: cobra.NoArgs, RunE: func(*cobra.Command, []string) error { return run() }}
	cmd.Flags().String("data", "", "")
	cmd.Flags().Bool("fail-open", false, "")
	sub := &cobra.Command{Use: "keygen", RunE: func(*cobra.Command, []string) error { return nil }}
	sub.Flags().String("name", "", "")
	cmd.AddCommand(sub)
	return cmd
}

func TestLongFlags(t *testing.T) {
	cmd := testCommand(nil)
	for _, tc := range []struct{ in, want []string }{
		{[]string{"-data", "/d", "-data=/e", "-fail-open"}, []string{"--data", "/d", "--data=/e", "--fail-open"}},
		{[]string{"keygen", "-name", "n"}, []string{"keygen", "--name", "n"}},
		{[]string{"-help", "-version", "-h"}, []string{"--help", "--version", "-h"}},
		// Values, unknown names and everything after "--" are left alone.
		{[]string{"--data", "-1ms", "-nope", "x"}, []string{"--data", "-1ms", "-nope", "x"}},
		{[]string{"--", "-data"}, []string{"--", "-data"}},
	} {
		if got := LongFlags(cmd, tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("LongFlags(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestExecuteExitCodes(t *testing.T) {
	for _, tc := range []struct {
		args []string
		err  error
		code int
		out  string
	}{
		{nil, nil, ExitOK, ""},
		{nil, Failure(errors.New("storage\nbroken")), ExitFailure, "d: storage broken\n"},
		{nil, errors.New("--x: bad value"), ExitUsage, "d: --x: bad value\n"},
		{[]string{"--nope"}, nil, ExitUsage, "d: unknown flag: --nope (see d --help)\n"},
		{[]string{"arg"}, nil, ExitUsage, "d: unknown command \"arg\" for \"d\"\n"},
	} {
		var stdout, stderr bytes.Buffer
		cmd := testCommand(func() error { return tc.err })
		code := Execute(context.Background(), cmd, tc.args, &stdout, &stderr)
		if code != tc.code || stderr.String() != tc.out {
			t.Errorf("%q returning %v: exit %d, stderr %q; want %d, %q", tc.args, tc.err, code, stderr.String(), tc.code, tc.out)
		}
	}
}

func TestLogging(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		json   bool
		levels []string // the levels logged
	}{
		{nil, false, []string{"INFO", "WARN"}},
		{[]string{"--log-format", "json", "--log-level", "debug"}, true, []string{"DEBUG", "INFO", "WARN"}},
		{[]string{"--log-format=text", "--log-level=warn"}, false, []string{"WARN"}},
	} {
		var l Logging
		cmd := &cobra.Command{Use: "d"}
		l.AddFlags(cmd)
		if err := cmd.ParseFlags(tc.args); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		lg := l.Logger(&buf)
		lg.Debug("d", "k", 1)
		lg.Info("i", "k", 1)
		lg.Warn("w", "k", 1)
		var levels []string
		for line := range strings.Lines(buf.String()) {
			var m map[string]any
			isJSON := json.Unmarshal([]byte(line), &m) == nil
			if isJSON != tc.json {
				t.Errorf("%q: line %q, want JSON %v", tc.args, line, tc.json)
			}
			if isJSON {
				levels = append(levels, m["level"].(string))
			} else {
				_, after, _ := strings.Cut(line, "level=")
				lvl, _, _ := strings.Cut(after, " ")
				levels = append(levels, lvl)
			}
		}
		if !slices.Equal(levels, tc.levels) {
			t.Errorf("%q: logged %v, want %v", tc.args, levels, tc.levels)
		}
	}
	var l Logging
	cmd := &cobra.Command{Use: "d"}
	l.AddFlags(cmd)
	if err := cmd.ParseFlags([]string{"--log-format", "logfmt"}); err == nil {
		t.Error("--log-format logfmt accepted")
	}
	if l.Level != slog.LevelInfo || l.Format != "text" {
		t.Errorf("defaults %v %q", l.Level, l.Format)
	}
}
