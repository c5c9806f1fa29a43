package integration

// Tests of provlog gate serve and gate --replay, run as the binary against
// real provlogd processes: a log whose search lies by omission, the
// Kubernetes webhook over TLS with the AdmissionReview documents of
// testdata/admission, failing closed with the log down, and SIGHUP.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	provlogv1 "github.com/provlog/provlog/proto/provlog/v1"
)

// lyingLog serves the gRPC API of up honestly, but for Search, which
// leaves out the entry at hide.
type lyingLog struct {
	provlogv1.UnimplementedLogServer
	up   provlogv1.LogClient
	hide uint64
}

func (l *lyingLog) GetCheckpoint(ctx context.Context, r *provlogv1.GetCheckpointRequest) (*provlogv1.GetCheckpointResponse, error) {
	return l.up.GetCheckpoint(ctx, r)
}

func (l *lyingLog) GetInclusionProof(ctx context.Context, r *provlogv1.GetInclusionProofRequest) (*provlogv1.GetInclusionProofResponse, error) {
	return l.up.GetInclusionProof(ctx, r)
}

func (l *lyingLog) GetConsistencyProof(ctx context.Context, r *provlogv1.GetConsistencyProofRequest) (*provlogv1.GetConsistencyProofResponse, error) {
	return l.up.GetConsistencyProof(ctx, r)
}

func (l *lyingLog) GetProofBundle(ctx context.Context, r *provlogv1.GetProofBundleRequest) (*provlogv1.GetProofBundleResponse, error) {
	return l.up.GetProofBundle(ctx, r)
}

func (l *lyingLog) GetEntries(r *provlogv1.GetEntriesRequest, stream grpc.ServerStreamingServer[provlogv1.GetEntriesResponse]) error {
	up, err := l.up.GetEntries(stream.Context(), r)
	if err != nil {
		return err
	}
	for {
		resp, err := up.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}

func (l *lyingLog) Search(ctx context.Context, r *provlogv1.SearchRequest) (*provlogv1.SearchResponse, error) {
	resp, err := l.up.Search(ctx, r)
	if err != nil {
		return nil, err
	}
	resp.Results = slices.DeleteFunc(resp.Results, func(res *provlogv1.SearchResult) bool { return res.Index == l.hide })
	return resp, nil
}

// startLyingLog serves the log of d at a new address, its search leaving
// out the entry at hide; it stops when the test ends.
func startLyingLog(t *testing.T, d *provlogd, hide uint64) string {
	t.Helper()
	conn, err := grpc.NewClient(d.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	provlogv1.RegisterLogServer(s, &lyingLog{up: provlogv1.NewLogClient(conn), hide: hide})
	go s.Serve(lis)
	t.Cleanup(s.Stop)
	return lis.Addr().String()
}

// syncBuffer is a bytes.Buffer safe for a writer and readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// gateProc is a running provlog gate serve.
type gateProc struct {
	url    string // http(s)://host:port
	cmd    *exec.Cmd
	stderr *syncBuffer
	exited chan struct{}
}

// startGateServe runs provlog gate serve in c's directory with c's global
// flags and args, --listen 127.0.0.1:0 added, and returns once it says
// where it listens. It is killed when the test ends.
func startGateServe(t *testing.T, c cli, args ...string) *gateProc {
	t.Helper()
	all := append(append(append([]string{}, c.global...), "gate", "serve", "--listen", "127.0.0.1:0"), args...)
	g := &gateProc{cmd: exec.Command(provlogCLI(t), all...), stderr: &syncBuffer{}, exited: make(chan struct{})}
	g.cmd.Dir = c.dir
	g.cmd.Stderr = g.stderr
	stdout, err := g.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			lines <- sc.Text()
		}
		io.Copy(io.Discard, stdout)
		g.cmd.Wait()
		close(g.exited)
	}()
	t.Cleanup(func() {
		g.cmd.Process.Kill()
		<-g.exited
		if t.Failed() {
			t.Logf("gate serve stderr:\n%s", g.stderr.String())
		}
	})
	select {
	case l := <-lines:
		u, ok := strings.CutPrefix(l, "gate serve: listening on ")
		if !ok {
			t.Fatalf("gate serve's first line %q", l)
		}
		g.url = u
	case <-g.exited:
		t.Fatalf("gate serve exited:\n%s", g.stderr.String())
	case <-time.After(startTimeout):
		t.Fatalf("gate serve did not listen within %v:\n%s", startTimeout, g.stderr.String())
	}
	return g
}

// waitUntil polls cond until it holds, failing the test after 30s with the
// last state it reported.
func waitUntil(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 30s; last: %s", what, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// decision is the part of a gate's JSON decision the tests read.
type decision struct {
	Decision string
	Reasons  []struct {
		Text    string
		Entries []uint64
	}
	Events []struct {
		Index uint64
		Type  string
	}
	Completeness string
	Unverified   bool
	Cached       bool
}

// reasons returns the reasons' texts, one a line.
func (d decision) reasons() string {
	var out []string
	for _, r := range d.Reasons {
		out = append(out, r.Text)
	}
	return strings.Join(out, "\n")
}

func (d decision) indices() []uint64 {
	var out []uint64
	for _, e := range d.Events {
		out = append(out, e.Index)
	}
	return out
}

// decide asks the gate at url over hc for a decision.
func decide(t *testing.T, hc *http.Client, url, digest, env string) decision {
	t.Helper()
	resp, err := hc.Post(url+"/v1/decide", "application/json", strings.NewReader(fmt.Sprintf(`{"digest": %q, "environment": %q}`, digest, env)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var d decision
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &d) != nil {
		t.Fatalf("POST /v1/decide: %s\n%s", resp.Status, body)
	}
	return d
}

// gateLog is a log holding, after its genesis keyring, the artifact
// app.tar.gz, built from the allowed source, built again from a source the
// policy refuses and promoted to prod; other.tar.gz, built and never
// promoted; and the policy allowing prod for namespace shop.
type gateLog struct {
	d           *provlogd
	c           cli // with --log and --tiles of d
	app, other  string
	dir, policy string

	// The indices the log returned for the events, in the order above,
	// and the log's size after the last.
	good, evil, promote, otherBuild uint64
	size                            uint64
}

const gatePolicy = `{
  "sourceRepositories": ["git+https://git.example.com/app"],
  "promotionPath": ["prod"],
  "namespaces": {"shop": "prod"}
}`

func newGateLog(t *testing.T) *gateLog {
	t.Helper()
	dir := t.TempDir()
	local := cli{t: t, dir: dir}
	local.ok("keygen", "--type", "submitter", "--name", "ci", "--out", "ci")
	// Attestation admission: the log indexes the events it admits, for
	// its search.
	writeFile(t, dir, "keyring.json", `{
  "keys": [{"name": "ci", "publicKeyFile": "ci.pub", "roles": ["builder", "promoter"]}],
  "environments": [{"name": "prod"}]
}`)
	d := mustStartProvlogd(t, filepath.Join(dir, "data"), "--origin", testOrigin,
		"--admission", "attestations", "--keyring", filepath.Join(dir, "keyring.json"))
	c := cli{t: t, dir: dir, global: []string{"--log", d.GRPCAddr, "--log-key", "@" + filepath.Join(d.DataDir, "log.pub"), "--tiles", d.HTTPURL}}
	l := &gateLog{d: d, c: c, dir: dir, policy: "policy.json"}
	digest := func(name, content string) string {
		writeFile(t, dir, name, content)
		sum := sha256.Sum256([]byte(content))
		return "sha256:" + hex.EncodeToString(sum[:])
	}
	l.app, l.other = digest("app.tar.gz", "app 1.0"), digest("other.tar.gz", "other 1.0")
	build := func(artifact, repo string) uint64 {
		c.ok("attest", "build", "--artifact", artifact, "--builder-id", "https://ci.example.com/runner@v2",
			"--build-type", "https://ci.example.com/go@v1", "--source-repo", repo, "--source-commit", strings.Repeat("5e", 20),
			"--sign-key", "ci.key", "--out", "build.json")
		return index(t, c.ok("submit", "--wait", "build.json")) // the last one waits for all to be published
	}
	l.good = build("app.tar.gz", "git+https://git.example.com/app")
	l.evil = build("app.tar.gz", "git+https://evil.example.com/app")
	l.promote = index(t, c.ok("attest", "promote", "--artifact", "app.tar.gz", "--to", "prod",
		"--build-index", strconv.FormatUint(l.good, 10), "--sign-key", "ci.key", "--submit"))
	l.otherBuild = build("other.tar.gz", "git+https://git.example.com/app")
	if got, want := []uint64{l.good, l.evil, l.promote, l.otherBuild}, []uint64{l.good, l.good + 1, l.good + 2, l.good + 3}; !slices.Equal(got, want) {
		t.Fatalf("indices %v, want %v", got, want)
	}
	l.size = l.otherBuild + 1
	writeFile(t, dir, l.policy, gatePolicy)
	return l
}

// TestGateSeesWhatSearchOmits has the log's search leave out the second
// build of app.tar.gz (from a source the policy refuses) while its
// tiles and entries stay honest: the plain gate decides without it and
// says it trusted the search; gate --replay, over the same lying server,
// and gate serve decide over it.
func TestGateSeesWhatSearchOmits(t *testing.T) {
	l := newGateLog(t)
	liar := startLyingLog(t, l.d, l.evil)
	lying := cli{t: t, dir: l.dir, global: []string{"--log", liar, "--log-key", "@" + filepath.Join(l.d.DataDir, "log.pub")}}

	var plain, replay decision
	if err := json.Unmarshal([]byte(lying.ok("gate", "--digest", l.app, "--env", "prod", "--policy", l.policy, "--json")), &plain); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(plain.indices(), l.evil) || !strings.Contains(plain.Completeness, "the log's search") {
		t.Errorf("plain gate over the lying log: events %v, completeness %q; want %d missing and the search named as trusted", plain.indices(), plain.Completeness, l.evil)
	}
	if out := lying.ok("gate", "--digest", l.app, "--env", "prod", "--policy", l.policy); !strings.Contains(out, "\ncompleteness: the log's search (use --replay to check it yourself)\n") {
		t.Errorf("plain gate output lacks its completeness line:\n%s", out)
	}
	if err := json.Unmarshal([]byte(lying.ok("gate", "--digest", l.app, "--env", "prod", "--policy", l.policy, "--json", "--replay")), &replay); err != nil {
		t.Fatal(err)
	}
	events := []uint64{l.good, l.evil, l.promote}
	replayed := fmt.Sprintf("replayed and verified all %d entries", l.size)
	if !slices.Equal(replay.indices(), events) || replay.Decision != "allow" || !strings.Contains(replay.Completeness, replayed) {
		t.Errorf("gate --replay over the lying log: %+v; want events %v and the replay named", replay, events)
	}
	if r := lying.want(1, "gate", "--digest", l.other, "--env", "prod", "--policy", l.policy, "--replay"); !strings.Contains(r.stdout, "no promotion into prod") {
		t.Errorf("gate --replay of an unpromoted artifact: %v", r)
	}

	// gate serve follows the lying server over gRPC (its entries are honest).
	g := startGateServe(t, lying, "--policy", l.policy, "--interval", "100ms")
	var d decision
	waitUntil(t, "gate serve follows the log", func() (bool, string) {
		d = decide(t, http.DefaultClient, g.url, l.app, "prod")
		return d.Decision == "allow", fmt.Sprintf("%+v", d)
	})
	if !slices.Equal(d.indices(), events) || !strings.Contains(d.Completeness, replayed) {
		t.Errorf("gate serve: %+v; want events %v from its own replay", d, events)
	}
	if again := decide(t, http.DefaultClient, g.url, l.app, "prod"); !again.Cached || again.Decision != "allow" {
		t.Errorf("the same question again: %+v, want the cached allow", again)
	}
	if d := decide(t, http.DefaultClient, g.url, l.other, "prod"); d.Decision != "deny" || !strings.Contains(d.reasons(), "no promotion into prod") {
		t.Errorf("gate serve, unpromoted artifact: %+v", d)
	}
}

// selfSigned writes a TLS certificate for 127.0.0.1 and its key to dir
// and returns a client trusting it.
func selfSigned(t *testing.T, dir string) *http.Client {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "provlog-gate.provlog.svc"},
		DNSNames: []string{"provlog-gate.provlog.svc"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "tls.crt", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	writeFile(t, dir, "tls.key", string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})))
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// review is the part of an AdmissionReview answer the tests read.
type review struct {
	APIVersion, Kind string
	Response         *struct {
		UID     string
		Allowed bool
		Status  *struct {
			Code    int
			Message string
		} `json:"status"`
	}
}

// admit POSTs body to the webhook as the API server does (with
// ?timeout=10s) and returns its answer, which must be a valid
// AdmissionReview response with HTTP 200.
func admit(t *testing.T, hc *http.Client, url string, body []byte) review {
	t.Helper()
	resp, err := hc.Post(url+"/validate?timeout=10s", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var r review
	if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &r) != nil || r.APIVersion != "admission.k8s.io/v1" || r.Kind != "AdmissionReview" || r.Response == nil {
		t.Fatalf("POST /validate: %s, want 200 and an AdmissionReview:\n%s", resp.Status, raw)
	}
	if !r.Response.Allowed && (r.Response.Status == nil || r.Response.Status.Code != http.StatusForbidden) {
		t.Fatalf("denial without a 403 status:\n%s", raw)
	}
	return r
}

// TestGateWebhook serves the webhook over TLS and sends it the
// AdmissionReview documents of testdata/admission, then malformed ones,
// and checks every decision and message; then reloads the policy by
// SIGHUP, refuses an invalid one naming the field, and keeps the old.
func TestGateWebhook(t *testing.T) {
	l := newGateLog(t)
	hc := selfSigned(t, l.dir)
	g := startGateServe(t, l.c, "--policy", l.policy, "--tls-cert", "tls.crt", "--tls-key", "tls.key", "--interval", "100ms")
	if !strings.HasPrefix(g.url, "https://") {
		t.Fatalf("gate serve with TLS listens on %s", g.url)
	}
	waitUntil(t, "gate serve ready", func() (bool, string) {
		resp, err := hc.Get(g.url + "/readyz")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
	doc := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", "admission", name))
		if err != nil {
			t.Fatal(err)
		}
		b = bytes.ReplaceAll(b, []byte("APP_DIGEST"), []byte(strings.TrimPrefix(l.app, "sha256:")))
		return bytes.ReplaceAll(b, []byte("OTHER_DIGEST"), []byte(strings.TrimPrefix(l.other, "sha256:")))
	}
	for _, tc := range []struct {
		file    string
		uid     string
		allowed bool
		says    []string
	}{
		{"pod.json", "705ab4f5-6393-11e8-b7cc-42010a800002", true, nil},
		{"cronjob.json", "e911857d-c318-11e8-bbad-025000000001", true, nil},
		{"deployment.json", "b2c5a1de-1f39-4a7e-9c55-3f1d2e6a9b10", false, []string{`Deployment shop/shop`, `container "sidecar" (spec.template.spec.containers[1])`, "denied for prod", "no promotion into prod"}},
		{"pod-by-tag.json", "0df28fbd-5f5f-11e8-bc74-36e6bb280816", false, []string{`container "web" (spec.containers[0])`, `image "nginx:1.25" is not referenced by digest`}},
		{"unknown-kind.json", "3a8c5b7e-2d11-4f6b-8f0e-9a4c1b2d3e4f", false, []string{"request.kind: apps/v1/ControllerRevision is not a kind the gate admits"}},
	} {
		r := admit(t, hc, g.url, doc(tc.file))
		if r.Response.UID != tc.uid || r.Response.Allowed != tc.allowed {
			t.Errorf("%s: uid %q allowed %v, want %q %v (%+v)", tc.file, r.Response.UID, r.Response.Allowed, tc.uid, tc.allowed, r.Response.Status)
			continue
		}
		for _, s := range tc.says {
			if !strings.Contains(r.Response.Status.Message, s) {
				t.Errorf("%s: message %q lacks %q", tc.file, r.Response.Status.Message, s)
			}
		}
		if strings.Contains(tc.file, "by-tag") && strings.Contains(r.Response.Status.Message, `"setup"`) {
			t.Errorf("%s: the init container pinned by an allowed digest is named: %q", tc.file, r.Response.Status.Message)
		}
	}
	// Bad input: each a denial in a valid AdmissionReview, never a 500.
	unmapped := bytes.ReplaceAll(doc("pod.json"), []byte(`"namespace": "shop"`), []byte(`"namespace": "default"`))
	emptyPod := bytes.Replace(doc("pod.json"), []byte(`"containers": [`), []byte(`"containers": [], "x": [`), 1)
	for name, tc := range map[string]struct {
		body []byte
		says string
	}{
		"unmapped namespace": {unmapped, `namespace "default" is not mapped to an environment`},
		"not JSON":           {[]byte("{\"apiVersion\": "), "the request is not an AdmissionReview"},
		"no request":         {[]byte(`{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}`), "no request"},
		"v1beta1":            {bytes.Replace(doc("pod.json"), []byte("admission.k8s.io/v1"), []byte("admission.k8s.io/v1beta1"), 1), "want admission.k8s.io/v1 AdmissionReview"},
		"object not a pod":   {bytes.Replace(doc("pod.json"), []byte(`"spec": {`), []byte(`"spec": 7, "x": {`), 1), "request.object: not a Pod"},
		"no containers":      {emptyPod, "spec: no containers"},
	} {
		r := admit(t, hc, g.url, tc.body)
		if r.Response.Allowed || !strings.Contains(r.Response.Status.Message, tc.says) {
			t.Errorf("%s: allowed %v, %+v; want a denial saying %q", name, r.Response.Allowed, r.Response.Status, tc.says)
		}
	}

	// SIGHUP with a policy that maps no namespace: the pod is now refused.
	writeFile(t, l.dir, l.policy, strings.Replace(gatePolicy, `"shop": "prod"`, `"shop-prod": "prod"`, 1))
	if err := g.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the reloaded policy in force", func() (bool, string) {
		r := admit(t, hc, g.url, doc("pod.json"))
		return !r.Response.Allowed, fmt.Sprintf("%+v", r.Response)
	})
	// An invalid policy is refused, naming the field; the last one stays.
	writeFile(t, l.dir, l.policy, `{"namespaces": {"Not_A_Namespace": "prod"}}`)
	if err := g.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the invalid policy refused", func() (bool, string) {
		s := g.stderr.String()
		return strings.Contains(s, "policy reload refused") && strings.Contains(s, "namespaces"), s
	})
	if r := admit(t, hc, g.url, bytes.ReplaceAll(doc("pod.json"), []byte(`"namespace": "shop"`), []byte(`"namespace": "shop-prod"`))); !r.Response.Allowed {
		t.Errorf("after a refused reload, the policy in force denies: %+v", r.Response.Status)
	}
	resp, err := hc.Get(g.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, m := range []string{`provlog_gate_decisions_total{environment="prod",result="allow",via="admission"}`, `provlog_gate_decisions_total{environment="prod",result="deny",via="admission"}`,
		`provlog_gate_cache_lookups_total{result="hit"}`, "provlog_gate_decision_seconds_bucket", fmt.Sprintf("provlog_gate_log_size %d\n", l.size)} {
		if !strings.Contains(string(metrics), m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
}

// TestGateServeFailsClosed stops the log under a gate serve: decisions
// become denials saying the log is unreachable; under --fail-open they are
// allowed, marked unverified and logged. A gate that never reached the log
// denies, saying it has not followed it.
func TestGateServeFailsClosed(t *testing.T) {
	l := newGateLog(t)
	shut := startGateServe(t, l.c, "--policy", l.policy, "--interval", "50ms")
	open := startGateServe(t, l.c, "--policy", l.policy, "--interval", "50ms", "--fail-open")
	for _, g := range []*gateProc{shut, open} {
		waitUntil(t, "gate serve follows the log", func() (bool, string) {
			d := decide(t, http.DefaultClient, g.url, l.app, "prod")
			return d.Decision == "allow" && !d.Unverified, fmt.Sprintf("%+v", d)
		})
	}
	l.d.mustStop(t)
	waitUntil(t, "denial with the log down", func() (bool, string) {
		d := decide(t, http.DefaultClient, shut.url, l.app, "prod")
		return d.Decision == "deny" && strings.Contains(d.reasons(), "unreachable"), fmt.Sprintf("%+v", d)
	})
	waitUntil(t, "fail-open allow with the log down", func() (bool, string) {
		d := decide(t, http.DefaultClient, open.url, l.app, "prod")
		return d.Decision == "allow" && d.Unverified, fmt.Sprintf("%+v", d)
	})
	// The log line crosses a pipe from the child process: it may land
	// after the answer did.
	waitUntil(t, "--fail-open logs the decision it let through", func() (bool, string) {
		s := open.stderr.String()
		return strings.Contains(s, "allowed unverified") && strings.Contains(s, l.app), s
	})

	// A log never reached.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	never := cli{t: t, dir: l.dir, global: []string{"--log-key", "@" + filepath.Join(l.d.DataDir, "log.pub"), "--tiles", "http://" + addr + "/"}}
	g := startGateServe(t, never, "--policy", l.policy, "--interval", "50ms")
	waitUntil(t, "denial before the log is followed", func() (bool, string) {
		d := decide(t, http.DefaultClient, g.url, l.app, "prod")
		return d.Decision == "deny" && strings.Contains(d.reasons(), "not been followed yet"), fmt.Sprintf("%+v", d)
	})
}
