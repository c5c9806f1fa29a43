package main

import (
	"bytes"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"

	"github.com/provlog/provlog/event"
	"github.com/provlog/provlog/internal/buildinfo"
	"github.com/provlog/provlog/policy"
)

// gateAttestFlags are the gate's --attest flags: its decision, allow or
// deny, emitted as a signed SLSA Verification Summary Attestation whose
// predicate policy.VSA makes (its doc is the format). The envelope goes
// where emitFlags say (--out, --out-bundle, --submit), never to stdout,
// which carries the decision.
type gateAttestFlags struct {
	attest      bool
	e           emitFlags
	verifierID  string
	resourceURI string
	policyURI   string
	now         func() time.Time // timeVerified; nil: time.Now
}

// attestFlagNames are the flags that mean nothing without --attest.
var attestFlagNames = []string{"sign-key", "keyid", "out", "out-bundle", "submit", "verifier-id", "resource-uri", "policy-uri"}

func (a *gateAttestFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.BoolVar(&a.attest, "attest", false, "also emit the decision (allow: PASSED, deny: FAILED) as a SLSA verification summary (VSA) signed with --sign-key, to --out and/or the log (--submit, which needs a key with the verifier role); the exit code is the decision's, or 2 or 3 if the VSA cannot be made or logged")
	a.e.register(cmd)
	fl.StringVar(&a.verifierID, "verifier-id", policy.DefaultVerifierID, "with --attest: the VSA's verifier.id `URI`, who vouches for the decision (name your organization's gate)")
	fl.StringVar(&a.resourceURI, "resource-uri", "", "with --attest: the VSA's resourceUri, a `URI` that must name the environment too (default provlog:deploy/ENV/DIGEST)")
	fl.StringVar(&a.policyURI, "policy-uri", "", "with --attest: the VSA's policy.uri, where the policy is published, as a `URI` (default: the file: URI of --policy)")
	prev := cmd.PreRunE
	cmd.PreRunE = func(cmd *cobra.Command, args []string) error {
		if err := a.check(cmd); err != nil {
			return err
		}
		if prev != nil {
			return prev(cmd, args)
		}
		return nil
	}
}

// check refuses, before the gate reads the log, flags that cannot make a
// VSA.
func (a *gateAttestFlags) check(cmd *cobra.Command) error {
	if !a.attest {
		for _, name := range attestFlagNames {
			if cmd.Flags().Changed(name) {
				return usageErr("--%s goes with --attest", name)
			}
		}
		return nil
	}
	switch {
	case a.e.keyID != keyIDSSLib && a.e.keyID != keyIDNone:
		return usageErr("--keyid %q: want %s or %s", a.e.keyID, keyIDSSLib, keyIDNone)
	case a.e.out == "-":
		return usageErr("--attest --out: give a file; stdout carries the gate's decision")
	case a.e.out == "" && a.e.outBundle == "" && !a.e.submit:
		return usageErr("--attest: give --out FILE, --out-bundle FILE or --submit (stdout carries the gate's decision)")
	}
	for _, u := range []struct{ flag, v string }{
		{"verifier-id", a.verifierID}, {"resource-uri", a.resourceURI}, {"policy-uri", a.policyURI},
	} {
		if cmd.Flags().Changed(u.flag) && !policy.IsAbsoluteURI(u.v) {
			return usageErr("--%s %q: want an absolute URI (scheme:..., no fragment, no spaces)", u.flag, u.v)
		}
	}
	_, err := loadSigningKeys(a.e.signKeys)
	return err
}

// emit makes, signs and emits the VSA of the decision dec, made by p,
// parsed from policyFile, over proven events. It does nothing without
// --attest. In text mode it adds a line saying where the VSA went.
//
// The VSA's policy digest is of the file's bytes, read again here: so that
// it names the policy that decided, the bytes are parsed and the decision
// made again over the same events, and a policy file that changed since
// (giving other reasons) is an error, not a VSA.
func (a *gateAttestFlags) emit(cmd *cobra.Command, g *globals, p *policy.Policy, policyFile string, dec *policy.Decision) error {
	if !a.attest {
		return nil
	}
	raw, err := os.ReadFile(policyFile)
	if err != nil {
		return fmt.Errorf("--attest: reading the policy again: %w", err)
	}
	used, err := policy.Parse(raw, filepath.Dir(policyFile))
	if err != nil {
		return fmt.Errorf("--attest: policy %s changed while the gate ran: %w", policyFile, err)
	}
	used.Witness = p.Witness // what the events were proven with (--witness-policy may replace the file's)
	if again := used.Decide(cmd.Context(), dec.Artifact, dec.Environment, dec.Events); !endsWith(dec.Reasons, again.Reasons) {
		return fmt.Errorf("--attest: policy %s changed while the gate ran: deciding again gives %d other reason(s)", policyFile, len(again.Reasons))
	}
	opts, err := a.options(g, policyFile)
	if err != nil {
		return err
	}
	pred, err := used.VSA(dec, raw, opts)
	if err != nil {
		return usageErr("--attest: %w", err)
	}
	d, err := event.ParseDigest(dec.Artifact)
	if err != nil {
		return fmt.Errorf("--attest: %w", err)
	}
	// emitFlags print the index of a submission on stdout: catch it for
	// the line below, after the decision.
	var idx bytes.Buffer
	quiet := *g
	quiet.stdout, quiet.json = &idx, false
	if err := signAndEmit(cmd, &quiet, &a.e, event.VSAPredicateType, d, "", pred); err != nil {
		return fmt.Errorf("--attest: verification summary: %w", err)
	}
	if g.json {
		return nil
	}
	var where []string
	for _, f := range []string{a.e.out, a.e.outBundle} {
		if f != "" {
			where = append(where, "written to "+f)
		}
	}
	if a.e.submit {
		where = append(where, "logged at index "+strings.TrimSpace(idx.String()))
	}
	_, err = fmt.Fprintf(g.stdout, "VSA %s %s\n", pred.VerificationResult, strings.Join(where, ", "))
	return err
}

// options maps the flags to policy.VSAOptions.
func (a *gateAttestFlags) options(g *globals, policyFile string) (policy.VSAOptions, error) {
	vkey, err := g.verifierKey()
	if err != nil {
		return policy.VSAOptions{}, err
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return policy.VSAOptions{}, usageErr("--log-key: %w", err)
	}
	o := policy.VSAOptions{VerifierID: a.verifierID, ResourceURI: a.resourceURI, PolicyURI: a.policyURI,
		Origin: v.Name(), VerifierVersion: map[string]string{"provlog": buildinfo.Read().Version}, Time: time.Now()}
	if a.now != nil {
		o.Time = a.now()
	}
	if o.PolicyURI == "" {
		abs, err := filepath.Abs(policyFile)
		if err != nil {
			return policy.VSAOptions{}, err
		}
		o.PolicyURI = (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}).String()
	}
	return o, nil
}

// endsWith reports whether the reasons end with tail: the gate puts its
// own (events it could not prove) before the policy's.
func endsWith(reasons, tail []policy.Reason) bool {
	return len(tail) <= len(reasons) && slices.EqualFunc(reasons[len(reasons)-len(tail):], tail, func(a, b policy.Reason) bool {
		return a.Text == b.Text && slices.Equal(a.Entries, b.Entries)
	})
}
