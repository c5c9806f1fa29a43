package client_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/provlog/provlog/client"
)

// writeCert writes a certificate for tmpl signed by parent (self-signed if
// parent is nil) and its key as PEM files dir/name.pem and dir/name.key.
func writeCert(t *testing.T, dir, name string, tmpl *x509.Certificate, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, name+".pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	write(t, filepath.Join(dir, name+".key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func write(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestTLSAndWriterAuth(t *testing.T) {
	ctx := testContext(t)
	dir := t.TempDir()
	now := time.Now()
	ca, caKey := writeCert(t, dir, "ca", &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}, nil, nil)
	writeCert(t, dir, "server", &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "provlogd"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, ca, caKey)
	writeCert(t, dir, "client", &x509.Certificate{
		SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "pipeline"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, ca, caKey)
	const token = "s3cret-token"
	sum := sha256.Sum256([]byte(token))
	write(t, filepath.Join(dir, "auth.json"), fmt.Appendf(nil,
		`{"identities": [{"name": "ci", "tokenSHA256": %q, "roles": ["writer"]}, {"name": "pipeline", "certSubject": "CN=pipeline", "roles": ["writer"]}]}`,
		hex.EncodeToString(sum[:])))

	d := startProvlogd(t, filepath.Join(dir, "data"),
		"--tls-cert", filepath.Join(dir, "server.pem"), "--tls-key", filepath.Join(dir, "server.key"),
		"--client-ca", filepath.Join(dir, "ca.pem"), "--auth", filepath.Join(dir, "auth.json"))

	dialTLS := func(cfg client.Config) *client.Client {
		t.Helper()
		cfg.VerifierKey = d.VerifierKey
		cfg.TLS.CAFile = filepath.Join(dir, "ca.pem")
		c, err := client.Dial(ctx, d.GRPCAddr, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}

	anon := dialTLS(client.Config{})
	if _, err := anon.Checkpoint(ctx); err != nil {
		t.Fatalf("Checkpoint over TLS: %v", err)
	}
	if _, err := anon.Append(ctx, []byte("anonymous")); !errors.Is(err, client.ErrRejected) || status.Code(err) != codes.Unauthenticated {
		t.Errorf("Append without credentials = %v, want ErrRejected (Unauthenticated)", err)
	}
	if _, err := dialTLS(client.Config{BearerToken: "wrong"}).Append(ctx, []byte("wrong")); status.Code(err) != codes.Unauthenticated {
		t.Errorf("Append with a wrong token = %v, want Unauthenticated", err)
	}
	byToken := dialTLS(client.Config{BearerToken: token})
	r, err := byToken.Append(ctx, []byte("by token"))
	if err != nil {
		t.Fatalf("Append with the token: %v", err)
	}
	if _, err := byToken.VerifyInclusion(ctx, []byte("by token"), r.Index); err != nil {
		t.Fatal(err)
	}
	byCert := dialTLS(client.Config{TLS: client.TLSConfig{CertFile: filepath.Join(dir, "client.pem"), KeyFile: filepath.Join(dir, "client.key")}})
	if _, err := byCert.Append(ctx, []byte("by certificate")); err != nil {
		t.Fatalf("Append with a client certificate: %v", err)
	}

	// The system roots do not trust the test CA.
	c, err := client.Dial(ctx, d.GRPCAddr, client.Config{VerifierKey: d.VerifierKey, Retry: client.RetryPolicy{MaxAttempts: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := c.Checkpoint(sctx); err == nil {
		t.Error("Checkpoint over TLS with an untrusted certificate succeeded")
	}
}
