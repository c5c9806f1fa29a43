package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	fwitness "github.com/transparency-dev/formats/witness"

	"github.com/provlog/provlog/client"
	"github.com/provlog/provlog/event"
	"github.com/provlog/provlog/internal/atomicfile"
)

// entryFor returns what is submitted for a file's contents: the canonical
// form of a DSSE envelope, bare or in a Sigstore bundle (what the log
// stores for it), else the bytes as they are (for logs that admit any
// entry).
func entryFor(raw []byte) []byte {
	if env, err := event.ParseEntry(raw); err == nil {
		return env.Canonical()
	}
	return raw
}

func newSubmitCmd(g *globals) *cobra.Command {
	var wait bool
	cmd := &cobra.Command{
		Use:   "submit FILE...",
		Short: "Submit envelopes to the log and print their indices",
		Long: `Submit each FILE ("-" for stdin) as one entry and print its index, one per
line, once the entry is durable and covered by a signed checkpoint. A DSSE
envelope, or a Sigstore bundle holding one (what cosign attest-blob
--bundle writes), is sent as the envelope's canonical form; the same event
submitted again gets its original index back.

With --wait, also wait until the log publishes a checkpoint covering each
entry (which, for a log with a witness policy, is cosigned), fetch its
offline proof bundle (C2SP tlog-proof), verify it, and write it to
FILE.tlog-proof (stdin.tlog-proof for stdin). "provlog verify" checks such a
file offline.

Each index is printed once the entry is appended, before its proof is
fetched: if a later step fails (--wait: the checkpoint does not verify,
no proof), the indices of what was appended are on stdout (with --json,
the results so far, the failed one with its "error") and the error says
which entry is in the log without a proof.

Exit codes: 0 all submitted; 2 a file is unreadable; 3 the log refused an
entry or could not be reached (entries before it were submitted), or an
appended entry's proof could not be fetched or verified.`,
		Example: `  provlog submit build.json sign.json
  cosign attest-blob --key cosign.key --type slsaprovenance1 --predicate prov.json \
      --bundle app.sigstore.json app.tar.gz && provlog submit app.sigstore.json
  provlog attest build ... --sign-key ci.key | provlog submit -
  provlog submit --wait prod.json && provlog verify prod.json.tlog-proof --artifact app.tar.gz`,
		Args: cobra.MinimumNArgs(1),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			ctx, cancel := g.context(cmd)
			defer cancel()
			entries := make([][]byte, len(args))
			for i, name := range args {
				raw, err := g.readInput(name)
				if err != nil {
					return err
				}
				if len(raw) == 0 {
					return usageErr("%s is empty", name)
				}
				entries[i] = entryFor(raw)
			}
			c, err := g.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			// Each index is printed as soon as the entry is appended, so
			// that what is in the log is known even if a later step fails;
			// with --json, the results so far are printed on failure too.
			results := []submitResult{}
			fail := func(err error) error {
				if g.json {
					g.printJSON(results)
				}
				return err
			}
			for i, name := range args {
				res, err := c.Append(ctx, entries[i])
				if err != nil {
					return fail(fmt.Errorf("%s: %w", name, err))
				}
				r := submitResult{File: name, Index: res.Index, Duplicate: res.Duplicate}
				if !g.json {
					fmt.Fprintln(g.stdout, r.Index)
				}
				if wait {
					r.Proof, err = writeProof(ctx, c, name, entries[i], res.Index)
					if err != nil {
						r.Error = err.Error()
						results = append(results, r)
						return fail(fmt.Errorf("%s: appended at index %d, but no proof: %w", name, res.Index, err))
					}
				}
				results = append(results, r)
			}
			if g.json {
				return g.printJSON(results)
			}
			return nil
		}),
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "wait for inclusion and write FILE.tlog-proof for each entry")
	return cmd
}

// writeProof waits for entry's inclusion, fetches its bundle, checks that
// it is for entry and writes it beside name.
func writeProof(ctx context.Context, c *client.Client, name string, entry []byte, index uint64) (string, error) {
	if _, err := c.WaitForInclusion(ctx, index); err != nil {
		return "", err
	}
	bundle, err := c.ProofBundle(ctx, index)
	if err != nil {
		return "", err
	}
	p, err := client.ParseBundle(bundle)
	if err != nil {
		return "", err
	}
	if !bytes.Equal(p.ExtraData, entry) {
		return "", fmt.Errorf("%w: the proof bundle of entry %d carries another entry", client.ErrLogMisbehaved, index)
	}
	out := name + ".tlog-proof"
	if name == "-" {
		out = "stdin.tlog-proof"
	}
	if err := atomicfile.WriteFile(out, bundle, 0o644); err != nil {
		return "", err
	}
	return out, nil
}

// parseIndex parses an entry index argument.
func parseIndex(s string) (uint64, error) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, usageErr("index %q: want a non-negative decimal number", s)
	}
	return n, nil
}

func newGetCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "get INDEX",
		Short: "Print the entry at an index, proven included in the log",
		Long: `Fetch the entry at INDEX with its proof bundle, verify the bundle with the
log's key (the entry is included in a checkpoint the log signed), and print
the entry as it is stored (for an event, its canonical DSSE envelope). With
--json, print the decoded event instead: type, subjects, signers (DSSE key
ids) and predicate.

Exit codes: 0 printed; 2 bad arguments; 3 no such entry, the log
unreachable, or its answer does not verify.`,
		Example: `  provlog get 42
  provlog get 42 --json | jq .promote`,
		Args: cobra.ExactArgs(1),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			index, bundle, err := fetchBundle(cmd, g, args[0])
			if err != nil {
				return err
			}
			p, err := client.ParseBundle(bundle)
			if err != nil {
				return err
			}
			if g.json {
				return g.printJSON(describe(index, p.ExtraData))
			}
			out := p.ExtraData
			if !bytes.HasSuffix(out, []byte("\n")) {
				out = append(out[:len(out):len(out)], '\n')
			}
			_, err = g.stdout.Write(out)
			return err
		}),
	}
}

// eventJSON is the JSON form of a logged event.
type eventJSON struct {
	Index         uint64                  `json:"index"`
	Type          string                  `json:"type,omitempty"`
	PredicateType string                  `json:"predicateType,omitempty"`
	StatementType string                  `json:"statementType,omitempty"`
	Subjects      []string                `json:"subjects,omitempty"`
	Signers       []string                `json:"signers,omitempty"` // DSSE key ids (hints; may be empty)
	Build         *buildJSON              `json:"build,omitempty"`
	Sign          *event.SignPredicate    `json:"sign,omitempty"`
	Promote       *event.PromotePredicate `json:"promote,omitempty"`
	SBOM          *sbomJSON               `json:"sbom,omitempty"`
	TestResult    *testResultJSON         `json:"testResult,omitempty"`
	VSA           *vsaJSON                `json:"vsa,omitempty"`
	Link          *linkJSON               `json:"link,omitempty"`
	// Entry is the entry in base64 when it is not an event.
	Entry string `json:"entry,omitempty"`
	// Error says why the entry is not an event.
	Error string `json:"error,omitempty"`
}

type sbomJSON struct {
	Format      string `json:"format"`
	SpecVersion string `json:"specVersion,omitempty"`
	Inline      bool   `json:"inline"`
	MediaType   string `json:"mediaType"`
	Digest      string `json:"digest,omitempty"`
	Size        uint64 `json:"size,omitempty"`
	URI         string `json:"uri,omitempty"`
}

type testResultJSON struct {
	Result string `json:"result"`
	URL    string `json:"url,omitempty"`
	Passed int    `json:"passed"`
	Warned int    `json:"warned"`
	Failed int    `json:"failed"`
}

type vsaJSON struct {
	VerifierID     string     `json:"verifierId"`
	ResourceURI    string     `json:"resourceUri"`
	PolicyURI      string     `json:"policyUri"`
	Result         string     `json:"verificationResult"`
	VerifiedLevels []string   `json:"verifiedLevels"`
	TimeVerified   *time.Time `json:"timeVerified,omitempty"`
}

type linkJSON struct {
	Name      string   `json:"name"`
	Command   []string `json:"command,omitempty"`
	Materials int      `json:"materials"`
}

type buildJSON struct {
	BuilderID    string     `json:"builderId"`
	BuildType    string     `json:"buildType"`
	SourceRepo   string     `json:"sourceRepo,omitempty"`
	SourceCommit string     `json:"sourceCommit"`
	InvocationID string     `json:"invocationId,omitempty"`
	StartedOn    *time.Time `json:"startedOn,omitempty"`
	FinishedOn   *time.Time `json:"finishedOn,omitempty"`
}

// parsedEvent is a logged entry parsed as an event.
type parsedEvent struct {
	Index uint64
	Env   *event.Envelope
	Event *event.Event
}

// parseEntry parses a logged entry as an event.
func parseEntry(index uint64, entry []byte) (*parsedEvent, error) {
	env, err := event.ParseEntry(entry)
	if err != nil {
		return nil, err
	}
	ev, err := event.ParseStatement(env.Payload)
	if err != nil {
		return nil, err
	}
	return &parsedEvent{Index: index, Env: env, Event: ev}, nil
}

// describe returns the JSON form of the entry at index.
func describe(index uint64, entry []byte) eventJSON {
	pe, err := parseEntry(index, entry)
	if err != nil {
		return eventJSON{Index: index, Entry: base64.StdEncoding.EncodeToString(entry), Error: "not an event: " + err.Error()}
	}
	return pe.json()
}

func (pe *parsedEvent) json() eventJSON {
	ev := pe.Event
	j := eventJSON{Index: pe.Index, Type: ev.Type, PredicateType: ev.PredicateType, StatementType: ev.StatementType, Sign: ev.Sign, Promote: ev.Promote}
	if m := ev.SBOM; m != nil {
		j.SBOM = &sbomJSON{Format: m.Format, SpecVersion: m.SpecVersion, Inline: m.Inline, MediaType: m.MediaType, Size: m.Size, URI: m.URI}
		if !m.Inline {
			j.SBOM.Digest = m.Digest.String()
		}
	}
	if t := ev.TestResult; t != nil {
		j.TestResult = &testResultJSON{Result: t.Result, URL: t.URL, Passed: len(t.PassedTests), Warned: len(t.WarnedTests), Failed: len(t.FailedTests)}
	}
	if v := ev.VSA; v != nil {
		j.VSA = &vsaJSON{VerifierID: v.VerifierID, ResourceURI: v.ResourceURI, PolicyURI: v.PolicyURI, Result: v.Result, VerifiedLevels: v.VerifiedLevels}
		if !v.TimeVerified.IsZero() {
			j.VSA.TimeVerified = &v.TimeVerified
		}
	}
	if l := ev.Link; l != nil {
		j.Link = &linkJSON{Name: l.Name, Command: l.Command, Materials: len(l.Materials)}
	}
	for _, s := range ev.Subjects {
		j.Subjects = append(j.Subjects, s.String())
	}
	for _, s := range pe.Env.Signatures {
		j.Signers = append(j.Signers, s.KeyID)
	}
	if b := ev.Build; b != nil {
		j.Build = &buildJSON{BuilderID: b.BuilderID, BuildType: b.BuildType, SourceRepo: b.SourceRepo,
			SourceCommit: b.SourceCommit, InvocationID: b.InvocationID}
		if !b.StartedOn.IsZero() {
			j.Build.StartedOn = &b.StartedOn
		}
		if !b.FinishedOn.IsZero() {
			j.Build.FinishedOn = &b.FinishedOn
		}
	}
	return j
}

// summary is a one-line description of the event.
func (pe *parsedEvent) summary() string {
	return fmt.Sprintf("%d\t%s\t%s\tsigners=%d", pe.Index, pe.Event.Type, pe.Event.Summary(), len(pe.Env.Signatures))
}

type searchFlags struct {
	subject      subjectFlags
	builderID    string
	sourceCommit string
	keyID        string
	keyFile      string
}

func (f *searchFlags) key() (client.SearchKey, error) {
	n := 0
	for _, v := range []string{f.subject.artifact + f.subject.digest, f.builderID, f.sourceCommit, f.keyID, f.keyFile} {
		if v != "" {
			n++
		}
	}
	if n != 1 {
		return client.SearchKey{}, usageErr("search by exactly one of --digest, --artifact, --builder-id, --source-commit, --key, --key-file")
	}
	switch {
	case f.builderID != "":
		return client.SearchKey{BuilderID: f.builderID}, nil
	case f.sourceCommit != "":
		return client.SearchKey{SourceCommit: f.sourceCommit}, nil
	case f.keyID != "":
		return client.SearchKey{SignerKeyID: f.keyID}, nil
	case f.keyFile != "":
		b, err := os.ReadFile(f.keyFile)
		if err != nil {
			return client.SearchKey{}, usageErr("--key-file: %w", err)
		}
		k, err := event.LoadKey(b)
		if err != nil {
			return client.SearchKey{}, usageErr("--key-file %s: %w", f.keyFile, err)
		}
		id, err := k.KeyID()
		if err != nil {
			return client.SearchKey{}, usageErr("--key-file %s: %w", f.keyFile, err)
		}
		return client.SearchKey{SignerKeyID: id}, nil
	}
	d, _, err := f.subject.resolve()
	if err != nil {
		return client.SearchKey{}, err
	}
	return client.SearchKey{Digest: d.String()}, nil
}

// provenEvent is a search result proven included in the log.
type provenEvent struct {
	Index  uint64
	Entry  []byte
	Bundle []byte
}

// proveAll runs a search and proves each result: its proof bundle must
// verify with the log's key and carry the entry the search returned.
func proveAll(ctx context.Context, c *client.Client, key client.SearchKey) ([]provenEvent, error) {
	var out []provenEvent
	for r, err := range c.Search(ctx, key) {
		if err != nil {
			return nil, fmt.Errorf("search: %w", err)
		}
		bundle, err := c.ProofBundle(ctx, r.Index)
		if err != nil {
			return nil, fmt.Errorf("proving search result %d: %w", r.Index, err)
		}
		p, err := client.ParseBundle(bundle)
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(p.ExtraData, r.Entry) {
			return nil, fmt.Errorf("%w: search result %d is not the entry the log proves at that index", client.ErrLogMisbehaved, r.Index)
		}
		out = append(out, provenEvent{Index: r.Index, Entry: r.Entry, Bundle: bundle})
	}
	return out, nil
}

func newSearchCmd(g *globals) *cobra.Command {
	var f searchFlags
	cmd := &cobra.Command{
		Use:   "search --digest sha256:HEX | --artifact FILE | --builder-id ID | --source-commit HEX | --key KEYID | --key-file PEM",
		Short: "List every event about an artifact, builder or source commit, or signed by a key",
		Long: `List, in log order, every event the log indexed under an artifact digest,
a builder id, a source commit or a signer key (--key, its securesystemslib
key id as "provlog keygen" prints it, or --key-file, its public key: every
event of any type the key signed, whatever key id the envelope carried):
one line per event with its index, type, a summary and its number of
signers. Each result is proven included in the
log (its proof bundle verifies with the log's key and carries the entry).
With --json, print the decoded events.

Exit codes: 0 listed (perhaps none); 2 bad flags; 3 the log unreachable or
its answer does not verify.`,
		Example: `  provlog search --artifact app.tar.gz
  provlog search --digest sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 --json
  provlog search --builder-id https://ci.example.com/runner@v2
  provlog search --key-file ci.pub     # what has this key signed?`,
		Args: cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, _ []string) error {
			key, err := f.key()
			if err != nil {
				return err
			}
			ctx, c, done, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			events, err := proveAll(ctx, c, key)
			if err != nil {
				return err
			}
			js := []eventJSON{}
			for _, e := range events {
				if g.json {
					js = append(js, describe(e.Index, e.Entry))
					continue
				}
				pe, err := parseEntry(e.Index, e.Entry)
				if err != nil {
					fmt.Fprintf(g.stdout, "%d\t(not an event: %s)\n", e.Index, oneLine(err.Error()))
					continue
				}
				fmt.Fprintln(g.stdout, pe.summary())
			}
			if g.json {
				return g.printJSON(js)
			}
			return nil
		}),
	}
	f.subject.register(cmd, false)
	cmd.Flags().StringVar(&f.builderID, "builder-id", "", "SLSA builder `id` of build events")
	cmd.Flags().StringVar(&f.sourceCommit, "source-commit", "", "source `commit` of build events (lowercase hex)")
	cmd.Flags().StringVar(&f.keyID, "key", "", "signer key `id` (securesystemslib key id): every event the key signed")
	cmd.Flags().StringVar(&f.keyFile, "key-file", "", "signer public key PEM `file`: every event the key signed")
	return cmd
}

func newProveCmd(g *globals) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "prove INDEX [--out FILE]",
		Short: "Write the offline proof bundle (tlog-proof) of an entry",
		Long: `Fetch the C2SP tlog-proof bundle of the entry at INDEX — the entry, its
inclusion proof and the signed checkpoint with any witness cosignatures —
verify it with the log's key, and write it to --out (default stdout).
"provlog verify" checks it offline.

Exit codes: 0 written; 2 bad arguments; 3 no such entry, the log
unreachable, or its answer does not verify.`,
		Example: `  provlog prove 42 --out app.tar.gz.tlog-proof`,
		Args:    cobra.ExactArgs(1),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			index, bundle, err := fetchBundle(cmd, g, args[0])
			if err != nil {
				return err
			}
			if out == "" || out == "-" {
				_, err := g.stdout.Write(bundle)
				return err
			}
			if err := atomicfile.WriteFile(out, bundle, 0o644); err != nil {
				return err
			}
			if g.json {
				return g.printJSON(map[string]any{"index": index, "proofFile": out})
			}
			fmt.Fprintf(g.stdout, "wrote %s (entry %d)\n", out, index)
			return nil
		}),
	}
	cmd.Flags().StringVar(&out, "out", "", "write the bundle to `file` (default: stdout)")
	return cmd
}

// checkpointJSON is the JSON form of a verified checkpoint.
type checkpointJSON struct {
	Origin   string `json:"origin"`
	Size     uint64 `json:"size"`
	RootHash string `json:"rootHash"` // base64
	Note     string `json:"note"`
}

func cpJSON(cp *client.Checkpoint) checkpointJSON {
	return checkpointJSON{Origin: cp.Origin, Size: cp.Size, RootHash: base64.StdEncoding.EncodeToString(cp.Hash), Note: string(cp.Raw)}
}

func newCheckpointCmd(g *globals) *cobra.Command {
	var policyFile string
	cmd := &cobra.Command{
		Use:   "checkpoint",
		Short: "Fetch and verify the log's latest checkpoint",
		Long: `Fetch the log's latest checkpoint over gRPC, verify its signature with the
log's key and its origin, and print it (the signed note, with any witness
cosignatures). With --witness-policy, also require cosignatures meeting a
tlog-policy file ("witness <name> <vkey> <url>", "group", "quorum" lines).

Exit codes: 0 verified; 1 the cosignatures do not meet the policy; 2 bad
flags or policy file; 3 the log unreachable, or the checkpoint does not
verify.`,
		Example: `  provlog checkpoint
  provlog checkpoint --witness-policy witnesses.policy --json`,
		Args: cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, _ []string) error {
			var policy *fwitness.Group
			if policyFile != "" {
				raw, err := g.readInput(policyFile)
				if err != nil {
					return err
				}
				p, err := fwitness.ParsePolicy(raw)
				if err != nil {
					return usageErr("witness policy %s: %w", policyFile, err)
				}
				policy = &p
			}
			ctx, c, done, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			cp, err := c.Checkpoint(ctx)
			if err != nil {
				return err
			}
			if policy != nil && !policy.Satisfied(cp.Raw) {
				return negative(fmt.Errorf("%w: checkpoint of size %d", client.ErrPolicyNotSatisfied, cp.Size))
			}
			if g.json {
				return g.printJSON(cpJSON(cp))
			}
			_, err = g.stdout.Write(cp.Raw)
			return err
		}),
	}
	cmd.Flags().StringVar(&policyFile, "witness-policy", "", "tlog-policy `file` the checkpoint's cosignatures must meet")
	return cmd
}

// fetchBundle parses an entry index argument and fetches the entry's proof
// bundle from the log.
func fetchBundle(cmd *cobra.Command, g *globals, arg string) (uint64, []byte, error) {
	index, err := parseIndex(arg)
	if err != nil {
		return 0, nil, err
	}
	ctx, c, done, err := g.connect(cmd)
	if err != nil {
		return 0, nil, err
	}
	defer done()
	bundle, err := c.ProofBundle(ctx, index)
	return index, bundle, err
}
