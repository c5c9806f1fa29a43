package server

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	provlogv1 "github.com/provlog/provlog/proto/provlog/v1"
)

// testPKI is a client CA with two client certificates it issued: the
// victim's, which an auth file names, and a stranger's, which none does.
type testPKI struct {
	ca, victim, stranger          *x509.Certificate
	caKey, victimKey, strangerKey *ecdsa.PrivateKey
	pool                          *x509.CertPool
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	p := &testPKI{pool: x509.NewCertPool()}
	p.ca, p.caKey = newCert(t, "test CA", nil, nil)
	p.victim, p.victimKey = newCert(t, "victim", p.ca, p.caKey)
	p.stranger, p.strangerKey = newCert(t, "stranger", p.ca, p.caKey)
	p.pool.AddCert(p.ca)
	return p
}

// clientCert is a TLS client certificate presenting chain, signed with key.
func clientCert(key *ecdsa.PrivateKey, chain ...*x509.Certificate) tls.Certificate {
	c := tls.Certificate{PrivateKey: key}
	for _, cert := range chain {
		c.Certificate = append(c.Certificate, cert.Raw)
	}
	return c
}

// TestBorrowedCertificateChain is the attack of a holder of any
// certificate from the client CA (the stranger) who appends another
// identity's public certificate (the victim's) to its chain: TLS verifies
// the chain (the stranger's certificate leads to the CA; the extra one is
// an unused intermediate), and the write must still be refused, because
// only the verified leaf identifies a client. The victim is named by
// subject in one auth file and by fingerprint in another; both servers,
// gRPC and HTTP, are tried; the honest victim still writes.
func TestBorrowedCertificateChain(t *testing.T) {
	p := newTestPKI(t)
	fp := sha256.Sum256(p.victim.Raw)
	for name, ident := range map[string]string{
		"certSubject": `"certSubject":"CN=victim"`,
		"certSHA256":  `"certSHA256":"` + hex.EncodeToString(fp[:]) + `"`,
	} {
		auth := testAuth(t, `,{"name":"victim",`+ident+`,"roles":["writer"]}`)
		borrowed := clientCert(p.strangerKey, p.stranger, p.victim)
		honest := clientCert(p.victimKey, p.victim)
		t.Run(name+"/grpc", func(t *testing.T) {
			f, subs := recordingLog()
			dial := serveGRPCMutualTLS(t, p, func(s *grpc.Server) { RegisterGRPC(s, f, WithAuth(auth)) })
			_, err := dial(borrowed).Append(t.Context(), &provlogv1.AppendRequest{Entry: []byte("x")})
			if status.Code(err) != codes.Unauthenticated {
				t.Errorf("borrowed chain: %v, want Unauthenticated", err)
			}
			if s := subs(); len(s) != 0 {
				t.Fatalf("borrowed chain wrote as %+v", s)
			}
			if _, err := dial(honest).Append(t.Context(), &provlogv1.AppendRequest{Entry: []byte("x")}); err != nil {
				t.Errorf("victim's own certificate: %v", err)
			}
			if s := subs(); len(s) != 1 || s[0].Name != "victim" {
				t.Errorf("log saw %+v, want one write as victim", s)
			}
		})
		t.Run(name+"/http", func(t *testing.T) {
			f, subs := recordingLog()
			post := serveHTTPMutualTLS(t, p, HTTPHandler(f, nil, WithAuth(auth)))
			if code := post(borrowed); code != http.StatusUnauthorized {
				t.Errorf("borrowed chain: %d, want 401", code)
			}
			if s := subs(); len(s) != 0 {
				t.Fatalf("borrowed chain wrote as %+v", s)
			}
			if code := post(honest); code != http.StatusOK {
				t.Errorf("victim's own certificate: %d, want 200", code)
			}
			if s := subs(); len(s) != 1 || s[0].Name != "victim" {
				t.Errorf("log saw %+v, want one write as victim", s)
			}
		})
	}
}

// serveGRPCMutualTLS serves register's services on a loopback listener
// over TLS that verifies client certificates against p's CA if given, and
// returns a function dialing it with a client certificate.
func serveGRPCMutualTLS(t *testing.T, p *testPKI, register func(*grpc.Server)) func(tls.Certificate) provlogv1.LogClient {
	t.Helper()
	serverCert, serverKey := newCert(t, "server", p.ca, p.caKey)
	creds := credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{clientCert(serverKey, serverCert)},
		ClientCAs:    p.pool,
		ClientAuth:   tls.VerifyClientCertIfGiven,
	})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(grpc.Creds(creds))
	register(s)
	go s.Serve(lis)
	t.Cleanup(s.Stop)
	return func(cert tls.Certificate) provlogv1.LogClient {
		conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
			RootCAs:      p.pool,
			Certificates: []tls.Certificate{cert},
		})))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return provlogv1.NewLogClient(conn)
	}
}

// serveHTTPMutualTLS serves h over TLS that verifies client certificates
// against p's CA if given, and returns a function posting an entry to
// /add with a client certificate and returning the status code.
func serveHTTPMutualTLS(t *testing.T, p *testPKI, h http.Handler) func(tls.Certificate) int {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{ClientCAs: p.pool, ClientAuth: tls.VerifyClientCertIfGiven}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return func(cert tls.Certificate) int {
		tr := srv.Client().Transport.(*http.Transport).Clone()
		tr.TLSClientConfig.Certificates = []tls.Certificate{cert}
		t.Cleanup(tr.CloseIdleConnections)
		c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
		resp, err := c.Post(srv.URL+"/add", "application/octet-stream", strings.NewReader("e"))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode
	}
}
