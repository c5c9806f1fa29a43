package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/provlog/provlog/internal/buildinfo"
)

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the module version and VCS revision provlog was built from",
		Long: `Print the module version, the VCS revision (with +dirty for a build from a
work tree with local changes) and the Go version provlog was built with, as
"provlog --version" does. With --json, print them as fields.

Exit codes: 0 printed.`,
		Example: `  provlog version
  provlog --version
  provlog version --json | jq -r .revision`,
		Args: cobra.NoArgs,
		RunE: run(func(*cobra.Command, []string) error {
			bi := buildinfo.Read()
			if g.json {
				return g.printJSON(map[string]any{"version": bi.Version, "revision": bi.Revision, "time": bi.Time,
					"modified": bi.Modified, "goVersion": bi.GoVersion})
			}
			_, err := fmt.Fprintf(g.stdout, "provlog %s\n", bi)
			return err
		}),
	}
}
