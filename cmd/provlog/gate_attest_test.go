package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	"github.com/secure-systems-lab/go-securesystemslib/signerverifier"
	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc"

	"github.com/provlog/provlog/event"
	plog "github.com/provlog/provlog/log"
	"github.com/provlog/provlog/policy"
	provlogv1 "github.com/provlog/provlog/proto/provlog/v1"
	"github.com/provlog/provlog/storage"
)

// The gate's --attest flags, tested through a command wired to them as
// gate.go wires them, deciding over events made here instead of read from
// a log. Its VSAs are checked with securesystemslib's DSSE verifier,
// parsed with event.ParseStatement and offered to a log.

const attestOrigin = "example.com/provlog"

// attestEnv is a directory with keys (NAME.key, NAME.pub), a log key
// (log.pub, with its signing half in skey) and a policy file, and events
// about an artifact: a build and a promotion into dev, signed by ci.
type attestEnv struct {
	t      *testing.T
	dir    string
	skey   string
	digest event.Digest
	events []policy.Event
}

func newAttestEnv(t *testing.T) *attestEnv {
	t.Helper()
	dir := t.TempDir()
	t.Chdir(dir)
	e := &attestEnv{t: t, dir: dir, digest: event.Digest{Alg: "sha256", Hex: strings.Repeat("cd", 32)}}
	for _, k := range []struct{ name, kind string }{{"ci", event.KeyEd25519}, {"gate", event.KeyECDSAP256}, {"scanner", event.KeyEd25519}} {
		priv, pub, err := event.GenerateKey(k.kind)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(k.name+".key", priv, 0o600)
		os.WriteFile(k.name+".pub", pub, 0o644)
	}
	skey, vkey, err := note.GenerateKey(rand.Reader, attestOrigin)
	if err != nil {
		t.Fatal(err)
	}
	e.skey = skey
	os.WriteFile("log.pub", []byte(vkey+"\n"), 0o644)
	os.WriteFile("policy.json", []byte(`{"builders": ["https://ci.example.com/runner"], "promotionPath": ["dev", "prod"]}`), 0o644)
	prov, err := event.NewProvenance(event.BuildSpec{BuilderID: "https://ci.example.com/runner", BuildType: "https://ci.example.com/go@v1",
		SourceRepo: "git+https://git.example.com/app", SourceCommit: strings.Repeat("5e", 20)})
	if err != nil {
		t.Fatal(err)
	}
	e.events = []policy.Event{e.event(0, event.ProvenancePredicateType, prov),
		e.event(1, event.PromotePredicateType, &event.PromotePredicate{To: "dev", Decision: event.DecisionApproved})}
	return e
}

func (e *attestEnv) signingKey(name string) event.SigningKey {
	b, err := os.ReadFile(filepath.Join(e.dir, name+".key"))
	if err != nil {
		e.t.Fatal(err)
	}
	k, err := event.LoadSigningKey(b)
	if err != nil {
		e.t.Fatal(err)
	}
	return k
}

func (e *attestEnv) event(index uint64, predType string, pred any) policy.Event {
	st, err := event.NewStatement(predType, []event.Subject{{Name: "app", Digest: e.digest}}, pred)
	if err != nil {
		e.t.Fatal(err)
	}
	raw, err := event.SignEnvelope(context.Background(), st, e.signingKey("ci"))
	if err != nil {
		e.t.Fatal(err)
	}
	env, _ := event.ParseEntry(raw)
	ev, err := event.ParseStatement(env.Payload)
	if err != nil {
		e.t.Fatal(err)
	}
	return policy.Event{Index: index, Envelope: env, Event: ev}
}

// gate runs a command wired as gate.go wires gateAttestFlags, deciding
// --env over the env's events with policy.json; between the decision and
// emit it calls between, if not nil. It returns the exit code, stdout and
// stderr, and whether the command ran (flags checks come first).
func (e *attestEnv) gate(between func(), args ...string) (code int, stdout, stderr string, ran bool) {
	e.t.Helper()
	for _, v := range []string{"PROVLOG_LOG", "PROVLOG_LOG_KEY", "PROVLOG_TILES", "PROVLOG_TOKEN"} {
		e.t.Setenv(v, "")
	}
	var out, errs bytes.Buffer
	g := &globals{stdin: strings.NewReader(""), stdout: &out, stderr: &errs}
	root := newRoot(g)
	var (
		att gateAttestFlags
		env string
	)
	att.now = func() time.Time { return time.Date(2026, 12, 1, 20, 5, 29, 0, time.UTC) }
	cmd := &cobra.Command{Use: "gate-attest-test", RunE: run(func(cmd *cobra.Command, _ []string) error {
		ran = true
		p, err := loadPolicy("policy.json")
		if err != nil {
			return err
		}
		dec := p.Decide(cmd.Context(), e.digest.String(), env, e.events)
		if between != nil {
			between()
		}
		// The wiring lines of gate.go:
		rerr := reportDecision(g, dec)
		if err := att.emit(cmd, g, p, "policy.json", dec); err != nil {
			return err
		}
		return rerr
	})}
	att.register(cmd)
	cmd.Flags().StringVar(&env, "env", "dev", "")
	root.AddCommand(cmd)
	root.SetArgs(append([]string{"gate-attest-test", "--log-key", "@log.pub"}, args...))
	root.SetOut(&out)
	root.SetErr(&errs)
	err := root.ExecuteContext(context.Background())
	var ee *exitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.code
	default:
		code = exitUsage
	}
	if err != nil {
		errs.WriteString(err.Error())
	}
	return code, out.String(), errs.String(), ran
}

// TestGateAttestFlagChecks: flags that cannot make a VSA are usage errors
// before the gate decides anything.
func TestGateAttestFlagChecks(t *testing.T) {
	e := newAttestEnv(t)
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"--sign-key", "gate.key", "--out", "vsa.json"}, "--sign-key goes with --attest"},
		{[]string{"--submit"}, "--submit goes with --attest"},
		{[]string{"--policy-uri", "https://example.com/p"}, "--policy-uri goes with --attest"},
		{[]string{"--attest", "--out", "vsa.json"}, "--sign-key: at least one signing key"},
		{[]string{"--attest", "--sign-key", "gate.key"}, "give --out FILE, --out-bundle FILE or --submit"},
		{[]string{"--attest", "--sign-key", "gate.key", "--out", "-"}, "stdout carries the gate's decision"},
		{[]string{"--attest", "--sign-key", "missing.key", "--out", "vsa.json"}, "--sign-key"},
		{[]string{"--attest", "--sign-key", "gate.pub", "--out", "vsa.json"}, "--sign-key gate.pub"},
		{[]string{"--attest", "--sign-key", "gate.key", "--keyid", "sha256", "--out", "vsa.json"}, `--keyid "sha256"`},
		{[]string{"--attest", "--sign-key", "gate.key", "--out", "vsa.json", "--resource-uri", "app.tar.gz"}, `--resource-uri "app.tar.gz": want an absolute URI`},
		{[]string{"--attest", "--sign-key", "gate.key", "--out", "vsa.json", "--policy-uri", "https://example.com/p#v2"}, "--policy-uri"},
		{[]string{"--attest", "--sign-key", "gate.key", "--out", "vsa.json", "--verifier-id", ""}, "--verifier-id"},
	} {
		code, _, stderr, ran := e.gate(nil, tc.args...)
		if code != exitUsage || ran || !strings.Contains(stderr, tc.says) {
			t.Errorf("%v: exit %d, ran %v, stderr %q; want exit 2 before deciding, saying %q", tc.args, code, ran, stderr, tc.says)
		}
	}
	if _, err := os.Stat("vsa.json"); err == nil {
		t.Error("a refused run wrote vsa.json")
	}
	if code, stdout, stderr, _ := e.gate(nil); code != 0 || !strings.HasPrefix(stdout, "ALLOW "+e.digest.String()+" to dev\n") || strings.Contains(stdout, "VSA") {
		t.Errorf("without --attest: exit %d, %q, %q", code, stdout, stderr)
	}
}

// verifyVSA checks a VSA envelope with securesystemslib's DSSE verifier and
// the public key in pubFile, and returns its statement parsed.
func verifyVSA(t *testing.T, envFile, pubFile string) (*event.Event, []byte) {
	t.Helper()
	raw, err := os.ReadFile(envFile)
	if err != nil {
		t.Fatal(err)
	}
	var env dsse.Envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		t.Fatalf("%s: %v", envFile, err)
	}
	pub, err := os.ReadFile(pubFile)
	if err != nil {
		t.Fatal(err)
	}
	k, err := signerverifier.LoadKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	var sv dsse.Verifier
	switch k.KeyType {
	case signerverifier.ECDSAKeyType:
		sv, err = signerverifier.NewECDSASignerVerifierFromSSLibKey(k)
	default:
		sv, err = signerverifier.NewED25519SignerVerifierFromSSLibKey(k)
	}
	if err != nil {
		t.Fatal(err)
	}
	v, err := dsse.NewEnvelopeVerifier(sv)
	if err != nil {
		t.Fatal(err)
	}
	accepted, payload, err := v.VerifyAndDecode(context.Background(), &env)
	if err != nil || len(accepted) != 1 {
		t.Fatalf("%s: DSSE verification with %s: %d keys accepted, %v", envFile, pubFile, len(accepted), err)
	}
	if env.PayloadType != event.PayloadType {
		t.Errorf("payloadType %q", env.PayloadType)
	}
	ev, err := event.ParseStatement(payload)
	if err != nil {
		t.Fatalf("%s: statement: %v", envFile, err)
	}
	return ev, raw
}

// openAttestLog opens a log of origin attestOrigin admitting attestations
// with the keyring ring (key files in the env's directory).
func (e *attestEnv) openAttestLog(ring string) *plog.Log {
	e.t.Helper()
	kr, err := plog.ParseKeyring([]byte(ring), e.dir)
	if err != nil {
		e.t.Fatal(err)
	}
	quiet := slog.New(slog.DiscardHandler)
	st, err := storage.Open(e.t.TempDir(), storage.Options{Logger: quiet, CacheBytes: 1 << 20})
	if err != nil {
		e.t.Fatal(err)
	}
	signer, err := note.NewSigner(e.skey)
	if err != nil {
		e.t.Fatal(err)
	}
	l, err := plog.Open(context.Background(), plog.Config{Origin: attestOrigin, Signer: signer, Logger: quiet,
		Admission: &plog.AttestationAdmission{Keyring: kr, Index: st}}, st)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { l.Close(); st.Close() })
	return l
}

// TestGateAttestVSA makes the VSA of an allowed and of a denied decision,
// verifies each with an independent DSSE verifier, parses it as a vsa
// event with the fields the gate decided on, and offers it to a log: one
// whose keyring gives the gate's key the verifier role admits it, one that
// gives it the attester role refuses it, and neither admits a VSA signed
// by a key without the verifier role.
func TestGateAttestVSA(t *testing.T) {
	e := newAttestEnv(t)
	code, stdout, stderr, _ := e.gate(nil, "--attest", "--sign-key", "gate.key", "--out", "allow.vsa.json")
	if code != 0 || !strings.HasPrefix(stdout, "ALLOW "+e.digest.String()+" to dev\n") || !strings.HasSuffix(stdout, "\nVSA PASSED written to allow.vsa.json\n") {
		t.Fatalf("gate --attest for dev: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	code, stdout, stderr, _ = e.gate(nil, "--env", "prod", "--attest", "--sign-key", "gate.key", "--keyid", "none", "--out", "deny.vsa.json",
		"--verifier-id", "https://gate.example.com", "--resource-uri", "oci://registry.example.com/app?env=prod", "--policy-uri", "https://git.example.com/policy.json")
	if code != exitNegative || !strings.HasPrefix(stdout, "DENY ") || !strings.HasSuffix(stdout, "\nVSA FAILED written to deny.vsa.json\n") {
		t.Fatalf("gate --attest for prod: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	policyFile, _ := os.ReadFile("policy.json")
	policyURI := "file://" + filepath.ToSlash(filepath.Join(e.dir, "policy.json"))
	var vsas [][]byte
	for _, tc := range []struct {
		file, result, verifier, resource, policy string
		levels                                   []string
	}{
		{"allow.vsa.json", event.ResultPassed, policy.DefaultVerifierID, "provlog:deploy/dev/" + e.digest.String(), policyURI,
			[]string{policy.LevelIncluded, policy.LevelProvenance, policy.LevelBuilder, policy.LevelPromoted, policy.LevelPromotionPath}},
		{"deny.vsa.json", event.ResultFailed, "https://gate.example.com", "oci://registry.example.com/app?env=prod", "https://git.example.com/policy.json",
			[]string{"FAILED"}},
	} {
		ev, raw := verifyVSA(t, tc.file, "gate.pub")
		vsas = append(vsas, raw)
		v := ev.VSA
		if ev.Type != event.TypeVSA || v == nil || len(ev.Subjects) != 1 || ev.Subjects[0] != e.digest {
			t.Fatalf("%s: a %s event about %v", tc.file, ev.Type, ev.Subjects)
		}
		if v.VerifierID != tc.verifier || v.ResourceURI != tc.resource || v.PolicyURI != tc.policy || v.Result != tc.result ||
			strings.Join(v.VerifiedLevels, " ") != strings.Join(tc.levels, " ") || !v.TimeVerified.Equal(time.Date(2026, 12, 1, 20, 5, 29, 0, time.UTC)) {
			t.Errorf("%s: %+v", tc.file, v)
		}
		// The fields ParseStatement does not keep: the policy digest and
		// the input attestations, by log index.
		var st struct {
			Predicate struct {
				Policy struct {
					Digest map[string]string
				}
				InputAttestations []struct {
					URI    string
					Digest map[string]string
				}
			}
		}
		var env dsse.Envelope
		json.Unmarshal(raw, &env)
		payload, _ := env.DecodeB64Payload()
		if err := json.Unmarshal(payload, &st); err != nil {
			t.Fatal(err)
		}
		if got, want := st.Predicate.Policy.Digest["sha256"], sha256Hex(policyFile); got != want {
			t.Errorf("%s: policy digest %s, want %s", tc.file, got, want)
		}
		in := st.Predicate.InputAttestations
		if len(in) != 2 || in[0].URI != "provlog://"+attestOrigin+"/entries/0" || in[1].URI != "provlog://"+attestOrigin+"/entries/1" ||
			in[0].Digest["sha256"] != sha256Hex(e.events[0].Envelope.Canonical()) || in[1].Digest["sha256"] != sha256Hex(e.events[1].Envelope.Canonical()) {
			t.Errorf("%s: inputAttestations %+v", tc.file, in)
		}
	}

	verifierRing := `{"keys": [{"name": "gate", "publicKeyFile": "gate.pub", "roles": ["verifier"]},
		{"name": "scanner", "publicKeyFile": "scanner.pub", "roles": ["attester"]}]}`
	l := e.openAttestLog(verifierRing)
	for i, raw := range vsas {
		res, err := l.Add(context.Background(), raw)
		if err != nil || res.Index != uint64(i)+1 { // after the genesis keyring
			t.Errorf("a log with the gate's key as verifier: VSA %d got %+v, %v", i, res, err)
		}
	}
	// The same VSA signed by the scanner, an attester, is refused.
	var env dsse.Envelope
	json.Unmarshal(vsas[0], &env)
	payload, _ := env.DecodeB64Payload()
	byScanner, err := event.SignEnvelope(context.Background(), payload, e.signingKey("scanner"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Add(context.Background(), byScanner); !errors.Is(err, plog.ErrPermissionDenied) {
		t.Errorf("a VSA signed by an attester: %v, want ErrPermissionDenied", err)
	}
	attesterRing := `{"keys": [{"name": "gate", "publicKeyFile": "gate.pub", "roles": ["attester"]}]}`
	if _, err := e.openAttestLog(attesterRing).Add(context.Background(), vsas[0]); !errors.Is(err, plog.ErrPermissionDenied) {
		t.Errorf("a log with the gate's key as attester: %v, want ErrPermissionDenied", err)
	}
}

// TestGateAttestSubmit submits the VSA to a log (that answers index 7):
// the text output says where it went after the decision, and --json
// output stays the decision alone.
func TestGateAttestSubmit(t *testing.T) {
	e := newAttestEnv(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	provlogv1.RegisterLogServer(s, &pushbackLog{})
	go s.Serve(lis)
	t.Cleanup(s.Stop)
	args := []string{"--log", lis.Addr().String(), "--attest", "--sign-key", "gate.key", "--submit"}
	code, stdout, stderr, _ := e.gate(nil, args...)
	if code != 0 || !strings.HasPrefix(stdout, "ALLOW "+e.digest.String()+" to dev\n") || !strings.HasSuffix(stdout, "\nVSA PASSED logged at index 7\n") {
		t.Errorf("gate --attest --submit: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	code, stdout, _, _ = e.gate(nil, append(args, "--out", "vsa.json", "--json")...)
	var dec gateDecision
	d := json.NewDecoder(strings.NewReader(stdout))
	if err := d.Decode(&dec); code != 0 || err != nil || dec.Decision != "allow" || d.More() {
		t.Errorf("gate --attest --submit --json: exit %d, stdout %q: want the decision alone", code, stdout)
	}
	if _, err := os.Stat("vsa.json"); err != nil {
		t.Error(err)
	}
}

// TestGateAttestPolicyChanged: a policy file rewritten between the
// decision and the VSA is not attested, since the VSA's digest would name
// a policy that did not decide.
func TestGateAttestPolicyChanged(t *testing.T) {
	e := newAttestEnv(t)
	for name, policy := range map[string]string{
		"another rule":   `{"builders": ["https://other.example.com/"], "promotionPath": ["dev", "prod"]}`,
		"no longer JSON": `{"builders": [`,
	} {
		rewrite := func() { os.WriteFile("policy.json", []byte(policy), 0o644) }
		code, stdout, stderr, _ := e.gate(rewrite, "--attest", "--sign-key", "gate.key", "--out", "vsa.json")
		if code != exitFailure || !strings.Contains(stderr, "changed while the gate ran") || strings.Contains(stdout, "VSA") {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", name, code, stdout, stderr)
		}
		if _, err := os.Stat("vsa.json"); err == nil {
			t.Errorf("%s: vsa.json written", name)
		}
		os.WriteFile("policy.json", []byte(`{"builders": ["https://ci.example.com/runner"], "promotionPath": ["dev", "prod"]}`), 0o644)
	}
	// A change that decides the same (white space) is the policy whose
	// digest is attested.
	code, _, stderr, _ := e.gate(func() {
		os.WriteFile("policy.json", []byte(`{"builders":["https://ci.example.com/runner"],"promotionPath":["dev","prod"]}`), 0o644)
	},
		"--attest", "--sign-key", "gate.key", "--out", "vsa.json")
	if code != 0 {
		t.Errorf("same rules, other bytes: exit %d, %q", code, stderr)
	}
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// TestEndsWith: the policy's reasons come after the gate's own (events it
// could not prove), and must be the same, entries included.
func TestEndsWith(t *testing.T) {
	r := func(text string, entries ...uint64) policy.Reason { return policy.Reason{Text: text, Entries: entries} }
	for _, tc := range []struct {
		reasons, tail []policy.Reason
		want          bool
	}{
		{nil, nil, true},
		{[]policy.Reason{r("event 3 does not verify", 3)}, nil, true},
		{[]policy.Reason{r("event 3 does not verify", 3), r("no promotion into prod")}, []policy.Reason{r("no promotion into prod")}, true},
		{[]policy.Reason{r("no promotion into prod")}, []policy.Reason{r("no promotion into dev")}, false},
		{[]policy.Reason{r("sign event 2", 2)}, []policy.Reason{r("sign event 2", 4)}, false},
		{nil, []policy.Reason{r("no promotion into prod")}, false},
	} {
		if got := endsWith(tc.reasons, tc.tail); got != tc.want {
			t.Errorf("endsWith(%v, %v) = %v", tc.reasons, tc.tail, got)
		}
	}
}
