package main

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/provlog/provlog/client"
	"github.com/provlog/provlog/event"
)

// subjectFlags name the artifact an event or a query is about.
type subjectFlags struct {
	artifact, digest, name string
}

func (s *subjectFlags) register(cmd *cobra.Command, withName bool) {
	fl := cmd.Flags()
	fl.StringVar(&s.artifact, "artifact", "", "artifact `file` (its sha256 is computed)")
	fl.StringVar(&s.digest, "digest", "", "artifact `digest`, sha256:HEX or sha512:HEX (instead of --artifact)")
	if withName {
		fl.StringVar(&s.name, "subject-name", "", "subject `name` in the statement (default: the artifact's file name)")
	}
}

// resolve returns the artifact's digest and subject name. required says
// whether one of --artifact and --digest must be given.
func (s *subjectFlags) resolve() (event.Digest, string, error) {
	switch {
	case s.artifact != "" && s.digest != "":
		return event.Digest{}, "", usageErr("give --artifact or --digest, not both")
	case s.artifact != "":
		d, err := fileDigest(s.artifact)
		if err != nil {
			return event.Digest{}, "", err
		}
		name := s.name
		if name == "" {
			name = filepath.Base(s.artifact)
		}
		return d, name, nil
	case s.digest != "":
		d, err := event.ParseDigest(s.digest)
		if err != nil {
			return event.Digest{}, "", usageErr("--digest: %w", err)
		}
		return d, s.name, nil
	}
	return event.Digest{}, "", usageErr("name the artifact with --artifact FILE or --digest sha256:HEX")
}

// fileDigest returns the sha256 digest of a file.
func fileDigest(path string) (event.Digest, error) {
	f, err := os.Open(path)
	if err != nil {
		return event.Digest{}, usageErr("artifact: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return event.Digest{}, fmt.Errorf("reading artifact: %w", err)
	}
	return event.Digest{Alg: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}, nil
}

// emitFlags say what to do with a signed envelope.
type emitFlags struct {
	signKeys  []string
	keyID     string
	out       string
	outBundle string
	submit    bool
}

// Key id modes of --keyid.
const (
	keyIDSSLib = "sslib"
	keyIDNone  = "none"
)

func (e *emitFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringArrayVar(&e.signKeys, "sign-key", nil, "PEM private key `file` to sign the envelope with (repeatable; at least one)")
	fl.StringVar(&e.keyID, "keyid", keyIDSSLib, "key ids of the signatures: sslib (the securesystemslib key id, what in-toto tooling expects) or none (empty, which cosign verify-blob-attestation --bundle needs; provlog admits either)")
	fl.StringVar(&e.out, "out", "", "write the envelope to `file` (default: stdout, unless --submit or --out-bundle)")
	fl.StringVar(&e.outBundle, "out-bundle", "", "also write the envelope as a Sigstore bundle v0.3 `file`, for cosign verify-blob-attestation --bundle (needs --keyid none and one --sign-key)")
	fl.BoolVar(&e.submit, "submit", false, "submit the envelope to the log and print its index")
}

// sigstoreBundle wraps a one-signature envelope in a Sigstore bundle v0.3
// with a public key hint (base64 of the SHA-256 of the DER public key, as
// cosign writes it): what cosign verify-blob-attestation --bundle reads.
// cosign skips a signature whose key id is not its own, hence --keyid none.
func sigstoreBundle(env []byte, keyFiles []string, keyID string) ([]byte, error) {
	if keyID != keyIDNone || len(keyFiles) != 1 {
		return nil, usageErr("--out-bundle: a Sigstore bundle holds one signature without key id: give one --sign-key and --keyid none")
	}
	keys, err := loadSigningKeys(keyFiles)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(keys[0].Public())
	if err != nil {
		return nil, err
	}
	hint := sha256.Sum256(der)
	return json.Marshal(map[string]any{
		"mediaType":            event.BundleMediaTypePrefix + ".v0.3+json",
		"verificationMaterial": map[string]any{"publicKey": map[string]string{"hint": base64.StdEncoding.EncodeToString(hint[:])}},
		"dsseEnvelope":         json.RawMessage(env),
	})
}

// loadSigningKeys reads PEM private keys.
func loadSigningKeys(files []string) ([]event.SigningKey, error) {
	if len(files) == 0 {
		return nil, usageErr("--sign-key: at least one signing key is needed")
	}
	var keys []event.SigningKey
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, usageErr("--sign-key: %w", err)
		}
		k, err := event.LoadSigningKey(b)
		if err != nil {
			return nil, usageErr("--sign-key %s: %w", f, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// emit writes the envelope (--out, or stdout without --submit) and submits
// it if asked.
func (e *emitFlags) emit(cmd *cobra.Command, g *globals, env []byte) error {
	switch e.keyID {
	case keyIDSSLib:
	case keyIDNone:
		var err error
		if env, err = event.WithoutKeyIDs(env); err != nil {
			return err
		}
	default:
		return usageErr("--keyid %q: want %s or %s", e.keyID, keyIDSSLib, keyIDNone)
	}
	if e.outBundle != "" {
		b, err := sigstoreBundle(env, e.signKeys, e.keyID)
		if err != nil {
			return err
		}
		if err := g.writeOutput(e.outBundle, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	if e.out != "" || (!e.submit && e.outBundle == "") {
		if err := g.writeOutput(e.out, append(env, '\n'), 0o644); err != nil {
			return err
		}
	}
	if !e.submit {
		return nil
	}
	ctx, c, done, err := g.connect(cmd)
	if err != nil {
		return err
	}
	defer done()
	res, err := c.Append(ctx, env)
	if err != nil {
		return fmt.Errorf("submitting: %w", err)
	}
	if g.json {
		return g.printJSON(submitResult{Index: res.Index, Duplicate: res.Duplicate})
	}
	fmt.Fprintln(g.stdout, res.Index)
	return nil
}

// buildIndexFlag is the --build-index of sign and promote events: given, or
// looked up in the log.
type buildIndexFlag struct {
	index int64
}

func (b *buildIndexFlag) register(cmd *cobra.Command) {
	cmd.Flags().Int64Var(&b.index, "build-index", -1, "log `index` of the artifact's build event (default: the artifact's latest build event in the log)")
}

// resolve returns the build index, searching the log for the artifact's
// latest build event if none was given.
func (b *buildIndexFlag) resolve(cmd *cobra.Command, g *globals, d event.Digest) (uint64, error) {
	if b.index >= 0 {
		return uint64(b.index), nil
	}
	ctx, c, done, err := g.connect(cmd)
	if err != nil {
		return 0, err
	}
	defer done()
	found := false
	var last uint64
	for r, err := range c.Search(ctx, client.SearchKey{Digest: d.String()}) {
		if err != nil {
			return 0, fmt.Errorf("looking up the build event of %s: %w", d, err)
		}
		if r.EventType == event.TypeBuild {
			last, found = r.Index, true
		}
	}
	if !found {
		return 0, usageErr("no build event of %s in the log: pass --build-index", d)
	}
	return last, nil
}

func newAttestCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "attest build|sign|promote|sbom",
		Short: "Make a signed event: a build, an artifact signature, a promotion or an SBOM",
		Long: `Build an in-toto Statement v1 about one artifact from flags, sign it into a
DSSE envelope with one or more --sign-key files, and print the envelope,
write it (--out) or submit it (--submit, printing its index).

Exit codes: 0 done; 2 bad flags or input files; 3 the log refused the
event or could not be reached.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageErr("attest: name the event: build, sign, promote or sbom (see provlog attest --help)")
		},
	}
	cmd.AddCommand(newAttestBuildCmd(g), newAttestSignCmd(g), newAttestPromoteCmd(g), newAttestSBOMCmd(g))
	return cmd
}

func newAttestBuildCmd(g *globals) *cobra.Command {
	var (
		s                 subjectFlags
		e                 emitFlags
		spec              event.BuildSpec
		started, finished string
		deps              []string
	)
	cmd := &cobra.Command{
		Use:   "build --artifact FILE --builder-id URI --build-type URI --source-repo URI --source-commit HEX --sign-key FILE",
		Short: "Make a build event (SLSA Provenance v1)",
		Long: `Make a build event: an in-toto statement about the artifact whose predicate
is SLSA Provenance v1 (https://slsa.dev/provenance/v1), with the builder id,
the build type, the exact source (repository and commit, recorded in
externalParameters.source and as a gitCommit dependency), the invocation id,
start and finish times and resolved dependencies. A log admits it if a key
with the builder role signed it.

Exit codes: 0 done; 2 bad flags or input files; 3 the log refused the
event or could not be reached.`,
		Example: `  provlog attest build --artifact app.tar.gz \
      --builder-id https://ci.example.com/runner@v2 --build-type https://ci.example.com/go@v1 \
      --source-repo git+https://git.example.com/app --source-commit "$(git rev-parse HEAD)" \
      --invocation-id "$CI_JOB_ID" --started 2026-01-02T15:04:05Z --finished 2026-01-02T15:09:00Z \
      --dependency pkg:golang/golang.org/x/mod@v0.42.0=sha256:5f1c... \
      --sign-key ci.key --submit`,
		Args: cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, _ []string) error {
			d, name, err := s.resolve()
			if err != nil {
				return err
			}
			if spec.StartedOn, err = parseTime("--started", started); err != nil {
				return err
			}
			if spec.FinishedOn, err = parseTime("--finished", finished); err != nil {
				return err
			}
			for _, dep := range deps {
				uri, dg, ok := cutLast(dep, "=")
				if !ok || uri == "" {
					return usageErr("--dependency %q: want URI=sha256:HEX", dep)
				}
				pd, err := event.ParseDigest(dg)
				if err != nil {
					return usageErr("--dependency %q: %w", dep, err)
				}
				spec.Dependencies = append(spec.Dependencies, event.Dependency{URI: uri, Digest: map[string]string{pd.Alg: pd.Hex}})
			}
			if err := checkBuildFlags(spec); err != nil {
				return err
			}
			prov, err := event.NewProvenance(spec)
			if err != nil {
				return usageErr("provenance: %w", err)
			}
			return signAndEmit(cmd, g, &e, event.ProvenancePredicateType, d, name, prov)
		}),
	}
	s.register(cmd, true)
	e.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&spec.BuilderID, "builder-id", "", "SLSA builder `id` (runDetails.builder.id) (required)")
	fl.StringVar(&spec.BuildType, "build-type", "", "SLSA build `type` URI (required)")
	fl.StringVar(&spec.SourceRepo, "source-repo", "", "source repository `URI`, e.g. git+https://git.example.com/app")
	fl.StringVar(&spec.SourceCommit, "source-commit", "", "source `commit` id, 40 or 64 lowercase hex digits (required)")
	fl.StringVar(&spec.InvocationID, "invocation-id", "", "build invocation `id` (e.g. the CI job id)")
	fl.StringVar(&started, "started", "", "build start `time`, RFC 3339")
	fl.StringVar(&finished, "finished", "", "build finish `time`, RFC 3339")
	fl.StringArrayVar(&deps, "dependency", nil, "resolved dependency `URI=sha256:HEX` (repeatable)")
	return cmd
}

func newAttestSignCmd(g *globals) *cobra.Command {
	var (
		s         subjectFlags
		e         emitFlags
		b         buildIndexFlag
		p         event.SignPredicate
		sigFile   string
		sigBundle string
	)
	cmd := &cobra.Command{
		Use:   "sign --artifact FILE --algorithm ALG --signature-key-id ID --signature-file FILE --sign-key FILE",
		Short: "Make a sign event: the artifact was signed",
		Long: `Make a sign event (predicate ` + event.SignPredicateType + `):
it records the artifact's signature (--signature in base64, the raw bytes
of --signature-file, or the signature of a Sigstore bundle that cosign
sign-blob --bundle wrote, --signature-bundle), its algorithm, the id of the
artifact-signing key (--signature-key-id, free text such as a KMS key
name), and the index of the artifact's build event (--build-index; by
default the artifact's latest build event in the log). A log admits it if
a key with the signer role signed the envelope; gate policies name those
envelope keys.

A --signature-file that holds base64 text (what cosign's old
--output-signature wrote) is refused: pass it with --signature, or give the
bundle.

Exit codes: 0 done; 2 bad flags or input files; 3 the log refused the
event or could not be reached.`,
		Example: `  cosign sign-blob --key release.key --bundle app.sigstore.json app.tar.gz
  provlog attest sign --artifact app.tar.gz --algorithm ecdsa-p256-sha256 \
      --signature-key-id release --signature-bundle app.sigstore.json --sign-key signer.key --submit
  # or with the raw signature bytes:
  jq -r .messageSignature.signature app.sigstore.json | base64 -d > app.sig
  provlog attest sign ... --signature-file app.sig`,
		Args: cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, _ []string) error {
			d, name, err := s.resolve()
			if err != nil {
				return err
			}
			given := 0
			for _, v := range []string{p.Signature, sigFile, sigBundle} {
				if v != "" {
					given++
				}
			}
			switch {
			case given > 1:
				return usageErr("give one of --signature, --signature-file and --signature-bundle")
			case sigFile != "":
				raw, err := os.ReadFile(sigFile)
				if err != nil {
					return usageErr("--signature-file: %w", err)
				}
				if isBase64Text(raw) {
					return usageErr("--signature-file %s holds base64 text, not the raw signature bytes (cosign's --output-signature writes base64): pass it as --signature \"$(cat %s)\", or give cosign's bundle with --signature-bundle", sigFile, sigFile)
				}
				p.Signature = base64.StdEncoding.EncodeToString(raw)
			case sigBundle != "":
				if p.Signature, err = bundleSignature(sigBundle, d); err != nil {
					return err
				}
			case p.Signature == "":
				return usageErr("the artifact's signature is needed: --signature BASE64, --signature-file FILE or --signature-bundle FILE")
			}
			if err := checkSignFlags(p); err != nil {
				return err
			}
			if p.BuildIndex, err = b.resolve(cmd, g, d); err != nil {
				return err
			}
			return signAndEmit(cmd, g, &e, event.SignPredicateType, d, name, &p)
		}),
	}
	s.register(cmd, true)
	e.register(cmd)
	b.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&p.Algorithm, "algorithm", "", "artifact signature `algorithm`, e.g. ecdsa-p256-sha256, ed25519 (required)")
	fl.StringVar(&p.KeyID, "signature-key-id", "", "`id` of the artifact-signing key (required)")
	fl.StringVar(&p.Signature, "signature", "", "the artifact's signature, standard `base64`")
	fl.StringVar(&sigFile, "signature-file", "", "`file` holding the artifact's raw signature bytes")
	fl.StringVar(&sigBundle, "signature-bundle", "", "Sigstore bundle `file` of the artifact's signature (cosign sign-blob --bundle)")
	return cmd
}

// isBase64Text reports whether a signature file is base64 text (with an
// optional trailing newline) rather than raw signature bytes: raw
// signatures (DER ECDSA, Ed25519) are binary and almost never decode.
func isBase64Text(b []byte) bool {
	t := strings.TrimRight(string(b), "\r\n")
	if len(t) < 16 {
		return false
	}
	_, err := base64.StdEncoding.DecodeString(t)
	return err == nil
}

// bundleSignature returns the artifact signature of a Sigstore bundle of a
// message signature (cosign sign-blob --bundle), in standard base64,
// checking that the bundle is about the artifact d.
func bundleSignature(path string, d event.Digest) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", usageErr("--signature-bundle: %w", err)
	}
	ms, err := event.ParseMessageSignature(b)
	if err != nil {
		return "", usageErr("--signature-bundle %s: %w", path, err)
	}
	if ms.Digest != (event.Digest{}) && d.Alg == "sha256" && ms.Digest != d {
		return "", usageErr("--signature-bundle %s: the bundle signs another artifact (digest %s, artifact %s)", path, ms.Digest, d)
	}
	return base64.StdEncoding.EncodeToString(ms.Signature), nil
}

func newAttestPromoteCmd(g *globals) *cobra.Command {
	var (
		s subjectFlags
		e emitFlags
		b buildIndexFlag
		p event.PromotePredicate
	)
	cmd := &cobra.Command{
		Use:   "promote --artifact FILE [--from ENV] --to ENV --sign-key FILE",
		Short: "Make a promote event: the artifact moves to an environment",
		Long: `Make a promote event (predicate ` + event.PromotePredicateType + `):
the artifact is promoted --from one environment (none for the first) --to
another, with decision "approved", a --rationale and a --change-ref. The
envelope's signatures are the approvals: sign it with the promoter's key,
and add approvers' signatures with --sign-key (several) or later with
"provlog approve". A log admits it if a promoter signed it, it has as many
distinct signers as the target environment's "approvals", and the artifact
was already promoted into --from.

Exit codes: 0 done; 2 bad flags or input files; 3 the log refused the
event or could not be reached.`,
		Example: `  provlog attest promote --artifact app.tar.gz --to dev --sign-key alice.key --submit
  provlog attest promote --artifact app.tar.gz --from dev --to staging --sign-key alice.key --submit
  # prod needs two approvals: alice prepares, bob approves, then submit.
  provlog attest promote --artifact app.tar.gz --from staging --to prod \
      --rationale "release 1.2.3" --change-ref CHG-42 --sign-key alice.key --out prod.json
  provlog approve --envelope prod.json --sign-key bob.key --out prod.json
  provlog submit --wait prod.json`,
		Args: cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, _ []string) error {
			d, name, err := s.resolve()
			if err != nil {
				return err
			}
			if err := checkPromoteFlags(p); err != nil {
				return err
			}
			p.Decision = event.DecisionApproved
			if p.BuildIndex, err = b.resolve(cmd, g, d); err != nil {
				return err
			}
			return signAndEmit(cmd, g, &e, event.PromotePredicateType, d, name, &p)
		}),
	}
	s.register(cmd, true)
	e.register(cmd)
	b.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&p.From, "from", "", "`environment` the artifact comes from (empty for a first environment)")
	fl.StringVar(&p.To, "to", "", "`environment` the artifact is promoted to (required)")
	fl.StringVar(&p.Rationale, "rationale", "", "why: the `text` of the decision")
	fl.StringVar(&p.ChangeRef, "change-ref", "", "change request or ticket `reference`")
	return cmd
}

// The checks below refuse, naming the flag, what the event package would
// refuse naming the statement's field (e.g.
// statement.predicate.buildDefinition.externalParameters.source.commit),
// before the statement is built. They follow its rules.

// checkBuildFlags checks the attest build flags that become fields of the
// provenance.
func checkBuildFlags(spec event.BuildSpec) error {
	for _, f := range []struct{ flag, v string }{
		{"--builder-id", spec.BuilderID}, {"--build-type", spec.BuildType}, {"--source-commit", spec.SourceCommit},
	} {
		if strings.TrimSpace(f.v) == "" {
			return usageErr("%s is required", f.flag)
		}
	}
	if c := spec.SourceCommit; !isCommit(c) {
		hint := "the full commit id, as git rev-parse HEAD prints it"
		if isCommit(strings.ToLower(c)) {
			hint = "in lowercase"
		}
		return usageErr("--source-commit %q: want a 40- or 64-digit lowercase hex commit id (%s)", c, hint)
	}
	if !spec.StartedOn.IsZero() && !spec.FinishedOn.IsZero() && spec.FinishedOn.Before(spec.StartedOn) {
		return usageErr("--finished %s is before --started %s", spec.FinishedOn.Format(time.RFC3339), spec.StartedOn.Format(time.RFC3339))
	}
	// The source is recorded as a dependency too.
	if n := len(spec.Dependencies) + 1; n > event.MaxDependencies {
		return usageErr("--dependency given %d times: a build records at most %d dependencies, the source included", len(spec.Dependencies), event.MaxDependencies)
	}
	return nil
}

// isCommit reports whether s is a 40- or 64-digit lowercase hex commit id.
func isCommit(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// isToken reports whether s is a short token, as the event package wants
// algorithms and environment names: 1 to 64 of [a-z0-9._-], starting with
// a letter or digit.
func isToken(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case i > 0 && (c == '.' || c == '_' || c == '-'):
		default:
			return false
		}
	}
	return true
}

// checkSignFlags checks the attest sign flags that become fields of the
// sign predicate (the signature from a file or bundle is made here and is
// well-formed).
func checkSignFlags(p event.SignPredicate) error {
	switch {
	case p.Algorithm == "":
		return usageErr("--algorithm is required")
	case !isToken(p.Algorithm):
		return usageErr("--algorithm %q: want a short token such as ecdsa-p256-sha256 or ed25519 (1 to 64 of a-z 0-9 . _ -)", p.Algorithm)
	case p.KeyID == "":
		return usageErr("--signature-key-id is required")
	case len(p.KeyID) > event.MaxKeyID:
		return usageErr("--signature-key-id: %d bytes, want at most %d", len(p.KeyID), event.MaxKeyID)
	}
	if sig, err := base64.StdEncoding.DecodeString(p.Signature); err != nil || len(sig) == 0 {
		return usageErr("--signature: want the signature in standard base64 (or give --signature-file with the raw bytes)")
	}
	return nil
}

// checkPromoteFlags checks the attest promote flags that become fields of
// the promote predicate.
func checkPromoteFlags(p event.PromotePredicate) error {
	switch {
	case p.To == "":
		return usageErr("--to is required")
	case !isToken(p.To):
		return usageErr("--to %q: want an environment name (1 to 64 of a-z 0-9 . _ -, as in the keyring)", p.To)
	case p.From != "" && !isToken(p.From):
		return usageErr("--from %q: want an environment name (1 to 64 of a-z 0-9 . _ -, as in the keyring)", p.From)
	case p.From == p.To:
		return usageErr("--from and --to are both %q", p.To)
	}
	return nil
}

// signAndEmit makes the statement, signs it and emits it.
func signAndEmit(cmd *cobra.Command, g *globals, e *emitFlags, predType string, d event.Digest, name string, pred any) error {
	keys, err := loadSigningKeys(e.signKeys)
	if err != nil {
		return err
	}
	st, err := event.NewStatement(predType, []event.Subject{{Name: name, Digest: d}}, pred)
	if err != nil {
		return usageErr("statement: %w", err)
	}
	env, err := event.SignEnvelope(cmd.Context(), st, keys...)
	if err != nil {
		return err
	}
	return e.emit(cmd, g, env)
}

func newApproveCmd(g *globals) *cobra.Command {
	var (
		e        emitFlags
		in       string
		anyEvent bool
	)
	cmd := &cobra.Command{
		Use:   "approve --envelope FILE --sign-key FILE",
		Short: "Add approvers' signatures to a promote event",
		Long: `Add a signature by each --sign-key to an existing envelope (multi-party
approval: every approver signs the same statement). A key that already
signed is not added twice. The envelope must be a promote event unless
--any-event is given. The result is printed, written (--out, which may be
the input file) or submitted (--submit).

Exit codes: 0 done; 2 bad flags or input files; 3 the log refused the
event or could not be reached.`,
		Example: `  provlog approve --envelope prod.json --sign-key bob.key --out prod.json
  provlog approve --envelope prod.json --sign-key bob.key --sign-key carol.key --submit`,
		Args: cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, _ []string) error {
			if in == "" {
				return usageErr("--envelope is required")
			}
			raw, err := g.readInput(in)
			if err != nil {
				return err
			}
			env, err := event.ParseEntry(raw)
			if err != nil {
				return usageErr("%s: %w", in, err)
			}
			raw = env.Canonical()
			ev, err := event.ParseStatement(env.Payload)
			if err != nil {
				return usageErr("%s: %w", in, err)
			}
			if ev.Type != event.TypePromote && !anyEvent {
				return usageErr("%s is a %s event: approvals are signatures on promote events (--any-event to sign it anyway)", in, ev.Type)
			}
			keys, err := loadSigningKeys(e.signKeys)
			if err != nil {
				return err
			}
			out, err := event.AddSignatures(cmd.Context(), raw, keys...)
			if err != nil {
				return err
			}
			return e.emit(cmd, g, out)
		}),
	}
	e.register(cmd)
	cmd.Flags().StringVar(&in, "envelope", "", "the envelope `file` to approve (- for stdin) (required)")
	cmd.Flags().BoolVar(&anyEvent, "any-event", false, "sign an envelope that is not a promote event")
	return cmd
}

// parseTime parses an optional RFC 3339 time.
func parseTime(flag, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, usageErr("%s %q: want an RFC 3339 time such as 2026-01-02T15:04:05Z", flag, v)
	}
	return t, nil
}

// cutLast cuts s around the last sep.
func cutLast(s, sep string) (before, after string, ok bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

// submitResult is the JSON output of a submission.
type submitResult struct {
	File      string `json:"file,omitempty"`
	Index     uint64 `json:"index"`
	Duplicate bool   `json:"duplicate"`
	Proof     string `json:"proofFile,omitempty"`
	// Error says why an appended entry has no proof (submit --wait).
	Error string `json:"error,omitempty"`
}

func newAttestSBOMCmd(g *globals) *cobra.Command {
	var (
		s        subjectFlags
		e        emitFlags
		sbomFile string
		byDigest bool
		uri      string
	)
	cmd := &cobra.Command{
		Use:   "sbom --artifact FILE --sbom FILE [--by-digest [--sbom-uri URI]] --sign-key FILE",
		Short: "Make an SBOM event: an SPDX or CycloneDX document about the artifact",
		Long: `Make an SBOM event about the artifact from an SPDX or CycloneDX JSON
document (--sbom; the format is read from the document). Inline, the
statement's predicate is the document itself (predicate type
` + event.SPDXPredicateType + ` or ` + event.CycloneDXPredicateType + `),
kept as it is; an inline SBOM statement is capped at ` + fmt.Sprint(event.MaxInlineSBOM) + ` bytes.
With --by-digest the statement carries only the document's digest, size
and media type (predicate type ` + event.SBOMRefPredicateType + `) and,
with --sbom-uri, where it is kept: the document stays in your artifact
store and the log proves which one was published. A log admits it if a
key with the attester role signed the envelope.

Exit codes: 0 done; 2 bad flags or input files; 3 the log refused the
event or could not be reached.`,
		Example: `  syft app.tar.gz -o spdx-json > app.spdx.json
  provlog attest sbom --artifact app.tar.gz --sbom app.spdx.json --sign-key scanner.key --submit
  provlog attest sbom --artifact app.tar.gz --sbom big.cdx.json --by-digest \
      --sbom-uri https://artifacts.example.com/app/1.2/big.cdx.json --sign-key scanner.key --submit`,
		Args: cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, _ []string) error {
			d, name, err := s.resolve()
			if err != nil {
				return err
			}
			if sbomFile == "" {
				return usageErr("--sbom is required")
			}
			if uri != "" && !byDigest {
				return usageErr("--sbom-uri goes with --by-digest")
			}
			doc, err := os.ReadFile(sbomFile)
			if err != nil {
				return usageErr("--sbom: %w", err)
			}
			format, specVersion, err := event.DetectSBOM(doc)
			if err != nil {
				return usageErr("--sbom %s: %w", sbomFile, err)
			}
			var predType string
			var pred any
			switch {
			case byDigest:
				sum := sha256.Sum256(doc)
				mediaType := "application/spdx+json"
				if format == event.SBOMCycloneDX {
					mediaType = "application/vnd.cyclonedx+json"
				}
				predType = event.SBOMRefPredicateType
				pred = map[string]any{"format": format, "specVersion": specVersion, "mediaType": mediaType,
					"digest": map[string]string{"sha256": hex.EncodeToString(sum[:])}, "size": len(doc), "uri": uri}
			case format == event.SBOMSPDX:
				predType, pred = event.SPDXPredicateType, json.RawMessage(doc)
			default:
				predType, pred = event.CycloneDXPredicateType, json.RawMessage(doc)
			}
			if err := signAndEmit(cmd, g, &e, predType, d, name, pred); err != nil {
				if !byDigest && errors.Is(err, event.ErrInvalid) && strings.Contains(err.Error(), event.SBOMRefPredicateType) {
					return usageErr("%w (use --by-digest)", err)
				}
				return err
			}
			return nil
		}),
	}
	s.register(cmd, true)
	e.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&sbomFile, "sbom", "", "SPDX or CycloneDX JSON `file` (required)")
	fl.BoolVar(&byDigest, "by-digest", false, "log the SBOM's digest, size and media type instead of the document")
	fl.StringVar(&uri, "sbom-uri", "", "with --by-digest: `URI` where the SBOM is kept")
	return cmd
}
