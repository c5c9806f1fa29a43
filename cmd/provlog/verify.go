package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"

	"github.com/provlog/provlog/client"
	"github.com/provlog/provlog/policy"
)

// verifyJSON is verify's JSON output.
type verifyJSON struct {
	Valid      bool            `json:"valid"`
	Reason     string          `json:"reason,omitempty"`
	Index      *uint64         `json:"index,omitempty"`
	Event      *eventJSON      `json:"event,omitempty"`
	Checkpoint *checkpointJSON `json:"checkpoint,omitempty"`
}

// loadWitnessPolicy reads and checks a tlog-policy file.
func loadWitnessPolicy(file string) ([]byte, error) {
	raw, err := policy.ReadWitnessPolicy(file)
	if err != nil {
		return nil, usageErr("witness policy: %w", err)
	}
	return raw, nil
}

func newVerifyCmd(g *globals) *cobra.Command {
	var (
		s          subjectFlags
		policyFile string
	)
	cmd := &cobra.Command{
		Use:   "verify BUNDLE [--artifact FILE | --digest D] [--witness-policy FILE]",
		Short: "Verify an offline proof bundle (tlog-proof)",
		Long: `Verify a C2SP tlog-proof bundle offline, with nothing but the log's verifier
key (--log-key): the checkpoint is signed by the log and names its origin,
and the inclusion proof binds the bundle's entry at its index to the
checkpoint's root. With --witness-policy (a tlog-policy file), the
checkpoint's witness cosignatures must meet it. With --artifact or
--digest, the entry must also be an event about that artifact.

A checkpoint that does not verify is reported with the log key used and
where it came from (--log-key, PROVLOG_LOG_KEY or the default file).

Exit codes: 0 valid; 1 invalid (a signature, proof or entry that does not
verify), with the reason; 2 bad flags, an unreadable or malformed bundle
(not in the tlog-proof format), key or policy file.`,
		Example: `  provlog verify app.tar.gz.tlog-proof --log-key @log.pub --artifact app.tar.gz
  provlog verify prod.json.tlog-proof --digest sha256:9f86d0... --witness-policy witnesses.policy --json`,
		Args: cobra.ExactArgs(1),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			vkey, err := g.verifierKey()
			if err != nil {
				return err
			}
			if _, err := note.NewVerifier(vkey); err != nil {
				return usageErr("log key: %w", err)
			}
			var opts client.VerifyOptions
			if policyFile != "" {
				if opts.WitnessPolicy, err = loadWitnessPolicy(policyFile); err != nil {
					return err
				}
			}
			digest := ""
			if s.artifact != "" || s.digest != "" {
				d, _, err := s.resolve()
				if err != nil {
					return err
				}
				digest = d.String()
			}
			res, err := verifyBundleFile(g, args[0], vkey, opts, digest)
			if err != nil {
				return err
			}
			if g.json {
				if err := g.printJSON(res); err != nil {
					return err
				}
			} else if res.Valid {
				what := "entry"
				if res.Event != nil && res.Event.Type != "" {
					what = res.Event.Type + " event about " + fmt.Sprint(res.Event.Subjects)
				}
				fmt.Fprintf(g.stdout, "valid: %s at index %d of %s (checkpoint size %d)\n",
					what, *res.Index, res.Checkpoint.Origin, res.Checkpoint.Size)
			}
			if !res.Valid {
				return negative(fmt.Errorf("%s: invalid: %s", args[0], res.Reason))
			}
			return nil
		}),
	}
	s.register(cmd, false)
	cmd.Flags().StringVar(&policyFile, "witness-policy", "", "tlog-policy `file` the checkpoint's witness cosignatures must meet")
	return cmd
}

// verifyBundleFile verifies the bundle in file; if digest is not empty, its
// entry must be an event about it. An invalid bundle is a result, not an
// error.
func verifyBundleFile(g *globals, file, vkey string, opts client.VerifyOptions, digest string) (verifyJSON, error) {
	raw, err := g.readInput(file)
	if err != nil {
		return verifyJSON{}, err
	}
	vb, err := client.VerifyBundle(raw, vkey, opts)
	switch {
	case errors.Is(err, client.ErrFormat):
		return verifyJSON{}, usageErr("%s is not a tlog-proof bundle: %w", file, err)
	case errors.Is(err, client.ErrLogSignature) && g.key != nil:
		return verifyJSON{Reason: fmt.Sprintf("%v (checked with the %s)", err, g.key)}, nil
	case err != nil:
		return verifyJSON{Reason: err.Error()}, nil
	}
	idx := vb.Index
	cj := cpJSON(vb.Checkpoint)
	res := verifyJSON{Valid: true, Index: &idx, Checkpoint: &cj}
	pe, perr := parseEntry(vb.Index, vb.Entry)
	if perr == nil {
		j := pe.json()
		res.Event = &j
	}
	if digest == "" {
		return res, nil
	}
	switch {
	case perr != nil:
		res.Valid, res.Reason = false, fmt.Sprintf("the entry at index %d is not an event: %v", vb.Index, perr)
	case !hasSubject(pe, digest):
		res.Valid, res.Reason = false, fmt.Sprintf("%v: the %s event at index %d is about %v, not %s",
			client.ErrEntryMismatch, pe.Event.Type, vb.Index, res.Event.Subjects, digest)
	}
	return res, nil
}

func hasSubject(pe *parsedEvent, digest string) bool {
	for _, s := range pe.Event.Subjects {
		if s.String() == digest {
			return true
		}
	}
	return false
}
