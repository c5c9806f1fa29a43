package server

import (
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
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/provlog/provlog/log"
	provlogv1 "github.com/provlog/provlog/proto/provlog/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

const (
	ciToken   = "s3cret-ci-token-1234"
	slowToken = "s3cret-slow-token-5678"
)

func tokenHash(t string) string { h := sha256.Sum256([]byte(t)); return hex.EncodeToString(h[:]) }

func testAuth(t *testing.T, extra string) *Auth {
	t.Helper()
	a, err := ParseAuth([]byte(`{"identities":[
		{"name":"ci","tokenSHA256":"` + tokenHash(ciToken) + `","roles":["builder","writer"]},
		{"name":"slow","tokenSHA256":"` + tokenHash(slowToken) + `","roles":["writer"],"rate":1,"burst":2}` + extra + `]}`))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// recordingLog is a fakeLog that records the submitter of each add.
func recordingLog() (*fakeLog, func() []log.Submitter) {
	f := newFakeLog(10)
	var mu sync.Mutex
	var subs []log.Submitter
	f.addBatch = func(ctx context.Context, entries [][]byte) ([]log.AddResult, error) {
		s, _ := log.SubmitterFrom(ctx)
		mu.Lock()
		subs = append(subs, s)
		mu.Unlock()
		return make([]log.AddResult, len(entries)), nil
	}
	return f, func() []log.Submitter { mu.Lock(); defer mu.Unlock(); return subs }
}

func withToken(token string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
}

func TestGRPCAuth(t *testing.T) {
	f, subs := recordingLog()
	c := provlogv1.NewLogClient(dialBufconn(t, func(s *grpc.Server) { RegisterGRPC(s, f, WithAuth(testAuth(t, ""))) }))
	req := &provlogv1.AppendRequest{Entry: []byte("x")}
	if _, err := c.Append(context.Background(), req); status.Code(err) != codes.Unauthenticated {
		t.Errorf("no token: %v, want Unauthenticated", err)
	}
	if _, err := c.Append(withToken("wrong"), req); status.Code(err) != codes.Unauthenticated {
		t.Errorf("wrong token: %v, want Unauthenticated", err)
	}
	if _, err := c.AppendBatch(context.Background(), &provlogv1.AppendBatchRequest{Entries: [][]byte{[]byte("x")}}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("batch without token: %v, want Unauthenticated", err)
	}
	if got := len(subs()); got != 0 {
		t.Fatalf("%d adds reached the log without authentication", got)
	}
	if _, err := c.Append(withToken(ciToken), req); err != nil {
		t.Fatalf("good token: %v", err)
	}
	if s := subs(); len(s) != 1 || s[0].Name != "ci" || fmt.Sprint(s[0].Roles) != "[builder writer]" {
		t.Errorf("log saw submitters %+v", s)
	}
	// Streams authenticate each request.
	st, err := c.AppendStream(withToken(ciToken))
	if err != nil {
		t.Fatal(err)
	}
	st.Send(&provlogv1.AppendBatchRequest{Entries: [][]byte{[]byte("y")}})
	st.CloseSend()
	if _, err := st.Recv(); err != nil {
		t.Errorf("stream with token: %v", err)
	}
	st, _ = c.AppendStream(context.Background())
	st.Send(&provlogv1.AppendBatchRequest{Entries: [][]byte{[]byte("y")}})
	st.CloseSend()
	if _, err := st.Recv(); status.Code(err) != codes.Unauthenticated {
		t.Errorf("stream without token: %v, want Unauthenticated", err)
	}
	// Reads stay public.
	if _, err := c.GetCheckpoint(context.Background(), &provlogv1.GetCheckpointRequest{}); err != nil {
		t.Errorf("read without token: %v", err)
	}
	// Rate limit: burst 2, then ResourceExhausted with retry information.
	for i := range 2 {
		if _, err := c.Append(withToken(slowToken), req); err != nil {
			t.Fatalf("slow add %d: %v", i, err)
		}
	}
	_, err = c.Append(withToken(slowToken), req)
	if status.Code(err) != codes.ResourceExhausted || len(status.Convert(err).Details()) == 0 {
		t.Errorf("over the rate: %v, want ResourceExhausted with RetryInfo", err)
	}
}

func TestHTTPAuthAndSecretsNotLogged(t *testing.T) {
	var logs bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	defer slog.SetDefault(old)

	f, subs := recordingLog()
	h := HTTPHandler(f, nil, WithAuth(testAuth(t, "")))
	post := func(token string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", "/add", strings.NewReader("entry"))
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec
	}
	if rec := post(""); rec.Code != http.StatusUnauthorized || rec.Header().Get("WWW-Authenticate") != "Bearer" {
		t.Errorf("no token: %d %q", rec.Code, rec.Header())
	}
	if rec := post("not-" + ciToken); rec.Code != http.StatusUnauthorized || strings.Contains(rec.Body.String(), ciToken) {
		t.Errorf("wrong token: %d %q", rec.Code, rec.Body)
	}
	if rec := post(ciToken); rec.Code != http.StatusOK {
		t.Errorf("good token: %d %q", rec.Code, rec.Body)
	}
	post(slowToken)
	post(slowToken)
	if rec := post(slowToken); rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" {
		t.Errorf("over the rate: %d %q", rec.Code, rec.Header())
	}
	if n := len(subs()); n != 3 {
		t.Errorf("%d adds reached the log, want 3", n)
	}
	if strings.Contains(logs.String(), "s3cret") {
		t.Errorf("a token appears in the logs:\n%s", logs.String())
	}
}

// TestHTTPMutualTLS serves POST /add over TLS that verifies client
// certificates against a test CA: a certificate of a configured subject
// writes, one of another subject is refused, and reads need none.
func TestHTTPMutualTLS(t *testing.T) {
	ca, caKey := newCert(t, "test CA", nil, nil)
	deployer, deployerKey := newCert(t, "deployer", ca, caKey)
	stranger, strangerKey := newCert(t, "stranger", ca, caKey)
	f, subs := recordingLog()
	srv := httptest.NewUnstartedServer(HTTPHandler(f, nil, WithAuth(testAuth(t, `,{"name":"deployer","certSubject":"CN=deployer","roles":["promoter"]}`))))
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	srv.TLS = &tls.Config{ClientCAs: pool, ClientAuth: tls.VerifyClientCertIfGiven}
	srv.StartTLS()
	defer srv.Close()
	client := func(cert *x509.Certificate, key *ecdsa.PrivateKey) *http.Client {
		tr := srv.Client().Transport.(*http.Transport).Clone()
		if cert != nil {
			tr.TLSClientConfig.Certificates = []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: key}}
		}
		return &http.Client{Transport: tr}
	}
	post := func(c *http.Client) int {
		resp, err := c.Post(srv.URL+"/add", "application/octet-stream", strings.NewReader("e"))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(client(deployer, deployerKey)); code != http.StatusOK {
		t.Errorf("deployer certificate: %d", code)
	}
	if code := post(client(stranger, strangerKey)); code != http.StatusUnauthorized {
		t.Errorf("stranger certificate: %d, want 401", code)
	}
	if code := post(client(nil, nil)); code != http.StatusUnauthorized {
		t.Errorf("no certificate: %d, want 401", code)
	}
	resp, err := client(nil, nil).Get(srv.URL + "/checkpoint")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("read without certificate: %v %v", resp, err)
	}
	if s := subs(); len(s) != 1 || s[0].Name != "deployer" {
		t.Errorf("log saw %+v", s)
	}
}

func newCert(t *testing.T, cn string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv6loopback, net.IPv4(127, 0, 0, 1)},
	}
	signer, signerKey := tmpl, key
	if parent == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.KeyUsage = true, true, x509.KeyUsageCertSign
	} else {
		signer, signerKey = parent, parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func TestParseAuthErrors(t *testing.T) {
	h := tokenHash("x")
	for name, f := range map[string]string{
		"unknown field": `{"identities":[],"x":1}`,
		"trailing data": `{"identities":[]}]`,
		"no name":       `{"identities":[{"tokenSHA256":"` + h + `","roles":["writer"]}]}`,
		"no roles":      `{"identities":[{"name":"a","tokenSHA256":"` + h + `","roles":[]}]}`,
		"unknown role":  `{"identities":[{"name":"a","tokenSHA256":"` + h + `","roles":["root"]}]}`,
		"bad hash":      `{"identities":[{"name":"a","tokenSHA256":"abc","roles":["writer"]}]}`,
		"no credential": `{"identities":[{"name":"a","roles":["writer"]}]}`,
		"negative rate": `{"identities":[{"name":"a","tokenSHA256":"` + h + `","roles":["writer"],"rate":-1}]}`,
	} {
		if _, err := ParseAuth([]byte(f)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestBatchOverBurst: a batch larger than the identity's burst (slow: 2)
// can never be admitted, so it is refused as invalid, without retry
// information (client/retry.go does not retry InvalidArgument, and
// retries ResourceExhausted even without RetryInfo), and without taking
// tokens; a batch within the burst but over the rate is still pushed back
// with retry information.
func TestBatchOverBurst(t *testing.T) {
	f, subs := recordingLog()
	c := provlogv1.NewLogClient(dialBufconn(t, func(s *grpc.Server) { RegisterGRPC(s, f, WithAuth(testAuth(t, ""))) }))
	three := &provlogv1.AppendBatchRequest{Entries: [][]byte{[]byte("a"), []byte("b"), []byte("c")}}
	wantRefused := func(what string, err error) {
		t.Helper()
		st := status.Convert(err)
		if st.Code() != codes.InvalidArgument || len(st.Details()) != 0 || !strings.Contains(st.Message(), "batch of 3 entries exceeds identity slow's rate-limit burst of 2") {
			t.Errorf("%s: %v (details %v), want InvalidArgument naming the burst, no details", what, err, st.Details())
		}
	}
	for i := range 2 { // refused every time, not "retry later"
		_, err := c.AppendBatch(withToken(slowToken), three)
		wantRefused(fmt.Sprintf("batch of 3, try %d", i), err)
	}
	st, err := c.AppendStream(withToken(slowToken))
	if err != nil {
		t.Fatal(err)
	}
	st.Send(three)
	st.CloseSend()
	_, err = st.Recv()
	wantRefused("stream batch of 3", err)
	// The refusals took no tokens: the full burst is still there.
	if _, err := c.AppendBatch(withToken(slowToken), &provlogv1.AppendBatchRequest{Entries: three.Entries[:2]}); err != nil {
		t.Fatalf("batch of 2 (the burst): %v", err)
	}
	_, err = c.AppendBatch(withToken(slowToken), &provlogv1.AppendBatchRequest{Entries: three.Entries[:2]})
	if s := status.Convert(err); s.Code() != codes.ResourceExhausted || len(s.Details()) == 0 {
		t.Errorf("batch of 2 over the rate: %v, want ResourceExhausted with RetryInfo", err)
	}
	if n := len(subs()); n != 1 {
		t.Errorf("%d batches reached the log, want 1", n)
	}

	// POST /add carries one entry, within any burst (at least 1); a write
	// of more maps to 413 with no Retry-After, and over the rate to 429
	// with it.
	o := applyOptions([]Option{WithAuth(testAuth(t, ""))})
	for _, tc := range []struct{ n, want int }{{3, http.StatusRequestEntityTooLarge}, {2, http.StatusTooManyRequests}} {
		n, want := tc.n, tc.want
		r := httptest.NewRequest("POST", "/add", nil)
		r.Header.Set("Authorization", "Bearer "+slowToken)
		o.authorizeHTTP(r, 1) // take a token, so that 2 is over the rate
		_, err := o.authorizeHTTP(r, n)
		rec := httptest.NewRecorder()
		httpError(rec, err)
		retry := rec.Header().Get("Retry-After")
		if rec.Code != want || (retry == "") != (want == http.StatusRequestEntityTooLarge) {
			t.Errorf("write of %d over HTTP: %d, Retry-After %q; want %d, Retry-After only on 429", n, rec.Code, retry, want)
		}
		if want == http.StatusRequestEntityTooLarge && !strings.Contains(rec.Body.String(), "rate-limit burst of 2") {
			t.Errorf("write of %d over HTTP: reason %q does not name the burst", n, rec.Body)
		}
	}
}

// TestHTTPAddKeepsAuthorizationForForwarding: an authenticated POST /add
// reaches the log with its Authorization value, for a follower replica to
// forward to the leader; without auth configured it carries none.
func TestHTTPAddKeepsAuthorizationForForwarding(t *testing.T) {
	for _, withAuth := range []bool{true, false} {
		f := newFakeLog(10)
		var got string
		f.addBatch = func(ctx context.Context, entries [][]byte) ([]log.AddResult, error) {
			got = log.ForwardedAuthorization(ctx)
			return []log.AddResult{{Index: 0}}, nil
		}
		var opts []Option
		if withAuth {
			opts = append(opts, WithAuth(testAuth(t, "")))
		}
		r := httptest.NewRequest("POST", "/add", strings.NewReader("entry"))
		r.Header.Set("Authorization", "Bearer "+ciToken)
		rec := httptest.NewRecorder()
		HTTPHandler(f, nil, opts...).ServeHTTP(rec, r)
		want := ""
		if withAuth {
			want = "Bearer " + ciToken
		}
		if rec.Code != http.StatusOK || got != want {
			t.Errorf("auth %v: %d, forwarded authorization %q, want %q", withAuth, rec.Code, got, want)
		}
	}
}
