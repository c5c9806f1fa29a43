package client_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/transparency-dev/formats/proof"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/provlog/provlog/client"
)

// dial returns a Client for d, closed when the test ends.
func dial(t testing.TB, d *provlogd, opts ...grpc.DialOption) *client.Client {
	t.Helper()
	c, err := client.Dial(context.Background(), d.GRPCAddr, client.Config{VerifierKey: d.VerifierKey, Plaintext: true}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// entries returns n distinct entries with the given prefix.
func entries(prefix string, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = fmt.Appendf(nil, "%s-%d", prefix, i)
	}
	return out
}

func TestAppendWaitVerify(t *testing.T) {
	ctx := testContext(t)
	d := startProvlogd(t, t.TempDir())
	c := dial(t, d)

	r, err := c.Append(ctx, []byte("first"))
	if err != nil || r != (client.Result{Index: 0}) {
		t.Fatalf("Append(first) = %+v, %v; want index 0, not duplicate", r, err)
	}
	r, err = c.Append(ctx, []byte("first"))
	if err != nil || r != (client.Result{Index: 0, Duplicate: true}) {
		t.Fatalf("Append(first) again = %+v, %v; want index 0, duplicate", r, err)
	}
	batch := append(entries("many", 5000), []byte("first"))
	rs, err := c.AppendMany(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint64]bool{0: true}
	for i, r := range rs[:5000] {
		if r.Duplicate || seen[r.Index] || r.Index > 5000 {
			t.Fatalf("AppendMany result %d = %+v: want a new, distinct index <= 5000", i, r)
		}
		seen[r.Index] = true
	}
	if last := rs[5000]; last != (client.Result{Index: 0, Duplicate: true}) {
		t.Fatalf("AppendMany of a duplicate = %+v, want index 0 duplicate", last)
	}

	cp, err := c.WaitForInclusion(ctx, 5000)
	if err != nil || cp.Size != 5001 {
		t.Fatalf("WaitForInclusion(5000) = %+v, %v; want size 5001", cp, err)
	}
	for _, i := range []int{0, 1, 255, 256, 2047, 4999} {
		if _, err := c.VerifyInclusion(ctx, batch[i], rs[i].Index); err != nil {
			t.Errorf("VerifyInclusion(entry %d at %d): %v", i, rs[i].Index, err)
		}
	}
	if _, err := c.VerifyInclusion(ctx, []byte("not logged"), 3); !errors.Is(err, client.ErrInclusionProof) {
		t.Errorf("VerifyInclusion(wrong entry) = %v, want ErrInclusionProof", err)
	}
	// More entries than one GetEntries call sends: Entries pages.
	got, err := c.Entries(ctx, 1, 5000)
	if err != nil || len(got) != 5000 {
		t.Fatalf("Entries(1, 5000) = %d entries, %v", len(got), err)
	}
	byIndex := map[uint64][]byte{}
	for i, r := range rs[:5000] {
		byIndex[r.Index] = batch[i]
	}
	for i, e := range got {
		if want := byIndex[uint64(i)+1]; !bytes.Equal(e, want) {
			t.Fatalf("Entries(1, 5000)[%d] = %q, want %q", i, e, want)
		}
	}

	_, err = c.Append(ctx, nil)
	if !errors.Is(err, client.ErrRejected) || status.Code(err) != codes.InvalidArgument {
		t.Errorf("Append(empty) = %v, want ErrRejected with InvalidArgument", err)
	}
	if _, err := c.AppendMany(ctx, [][]byte{[]byte("ok"), {}}); !errors.Is(err, client.ErrRejected) {
		t.Errorf("AppendMany with an empty entry = %v, want ErrRejected", err)
	}
}

func TestCheckpointWrongKey(t *testing.T) {
	ctx := testContext(t)
	d := startProvlogd(t, t.TempDir())
	_, other, err := note.GenerateKey(rand.Reader, "localhost/provlog")
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(ctx, d.GRPCAddr, client.Config{VerifierKey: other, Plaintext: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Checkpoint(ctx); !errors.Is(err, client.ErrLogSignature) {
		t.Errorf("Checkpoint with another key = %v, want ErrLogSignature", err)
	}
	c2, err := client.Dial(ctx, d.GRPCAddr, client.Config{VerifierKey: d.VerifierKey, Origin: "example.com/other", Plaintext: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if _, err := c2.Checkpoint(ctx); !errors.Is(err, client.ErrLogSignature) {
		t.Errorf("Checkpoint with another origin = %v, want ErrLogSignature", err)
	}
}

func TestDialPlaintextOnlyLoopback(t *testing.T) {
	_, vkey, _ := note.GenerateKey(rand.Reader, "example.com/log")
	for target, ok := range map[string]bool{
		"127.0.0.1:7400": true, "localhost:7400": true, "[::1]:7400": true, "dns:///localhost:7400": true,
		"example.com:443": false, "10.0.0.1:7400": false,
	} {
		c, err := client.Dial(context.Background(), target, client.Config{VerifierKey: vkey, Plaintext: true})
		if (err == nil) != ok {
			t.Errorf("Dial(%q, Plaintext) error = %v, want ok=%v", target, err, ok)
		}
		if c != nil {
			c.Close()
		}
	}
}

// withoutProofBundleRPC makes GetProofBundle fail with Unimplemented on the
// client side, so that ProofBundle builds the bundle itself.
var withoutProofBundleRPC = grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if method == "/provlog.v1.Log/GetProofBundle" {
		return status.Error(codes.Unimplemented, "not here")
	}
	return invoker(ctx, method, req, reply, cc, opts...)
})

func TestProofBundle(t *testing.T) {
	ctx := testContext(t)
	d := startProvlogd(t, t.TempDir())
	es := entries("bundle", 23)
	rs, err := dial(t, d).AppendMany(ctx, es)
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*client.Client{
		"server":   dial(t, d),
		"fallback": dial(t, d, withoutProofBundleRPC),
	} {
		t.Run(name, func(t *testing.T) {
			for _, i := range []int{0, 7, 22} {
				b, err := c.ProofBundle(ctx, rs[i].Index)
				if err != nil {
					t.Fatalf("ProofBundle(%d): %v", rs[i].Index, err)
				}
				vb, err := client.VerifyBundle(b, d.VerifierKey, client.VerifyOptions{Entry: es[i]})
				if err != nil {
					t.Fatalf("VerifyBundle: %v\n%s", err, b)
				}
				if vb.Index != rs[i].Index || !bytes.Equal(vb.Entry, es[i]) || vb.Checkpoint.Size < 23 {
					t.Errorf("VerifyBundle = index %d entry %q size %d; want %d %q >= 23", vb.Index, vb.Entry, vb.Checkpoint.Size, rs[i].Index, es[i])
				}
				if _, err := client.VerifyBundle(b, d.VerifierKey, client.VerifyOptions{Entry: []byte("other")}); !errors.Is(err, client.ErrEntryMismatch) {
					t.Errorf("VerifyBundle(expecting another entry) = %v, want ErrEntryMismatch", err)
				}
			}
		})
	}
}

// logBundle starts a log with 11 entries and returns it and a bundle for
// entry 5 (built by the client, so with a proof of 4 hashes).
func logBundle(t *testing.T) (*provlogd, []byte) {
	ctx := testContext(t)
	d := startProvlogd(t, t.TempDir())
	c := dial(t, d, withoutProofBundleRPC)
	if _, err := c.AppendMany(ctx, entries("e", 11)); err != nil {
		t.Fatal(err)
	}
	b, err := c.ProofBundle(ctx, 5)
	if err != nil {
		t.Fatal(err)
	}
	return d, b
}

func TestVerifyBundleRejectsEveryFlip(t *testing.T) {
	d, b := logBundle(t)
	if _, err := client.VerifyBundle(b, d.VerifierKey, client.VerifyOptions{}); err != nil {
		t.Fatalf("VerifyBundle(good) = %v\n%s", err, b)
	}
	p, err := client.ParseBundle(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Hashes) != 4 {
		t.Fatalf("bundle has %d proof hashes, want 4", len(p.Hashes))
	}
	cpStart := len(b) - len(p.Checkpoint)
	for i := range b {
		for _, mask := range []byte{0x01, 0x02, 0x20, 0x80} {
			bad := bytes.Clone(b)
			bad[i] ^= mask
			_, err := client.VerifyBundle(bad, d.VerifierKey, client.VerifyOptions{})
			if err == nil {
				t.Fatalf("VerifyBundle accepted the bundle with byte %d (%q) ^ %#x:\n%s", i, b[i], mask, bad)
			}
			// A flip in the signed checkpoint is caught by its signature
			// or its format, never passed on to the proof.
			if i >= cpStart && errors.Is(err, client.ErrInclusionProof) {
				t.Errorf("flip of checkpoint byte %d: %v, want a signature or format error", i, err)
			}
		}
	}
}

func TestVerifyBundleOtherKey(t *testing.T) {
	d, b := logBundle(t)
	p, err := client.ParseBundle(b)
	if err != nil {
		t.Fatal(err)
	}
	// Another key with the same name (origin) signs the same checkpoint text.
	skey, vkey, err := note.GenerateKey(rand.Reader, "localhost/provlog")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	text, _, _ := bytes.Cut(p.Checkpoint, []byte("\n\n"))
	forged, err := note.Sign(&note.Note{Text: string(text) + "\n"}, signer)
	if err != nil {
		t.Fatal(err)
	}
	p.Checkpoint = forged
	if _, err := client.VerifyBundle(p.Marshal(), d.VerifierKey, client.VerifyOptions{}); !errors.Is(err, client.ErrLogSignature) {
		t.Errorf("VerifyBundle(signed by another key) = %v, want ErrLogSignature", err)
	}
	if _, err := client.VerifyBundle(p.Marshal(), vkey, client.VerifyOptions{}); err != nil {
		t.Errorf("VerifyBundle(signed by another key, with that key) = %v, want success", err)
	}
	if _, err := client.VerifyBundle(b, vkey, client.VerifyOptions{}); !errors.Is(err, client.ErrLogSignature) {
		t.Errorf("VerifyBundle(genuine bundle, another key) = %v, want ErrLogSignature", err)
	}
}

// witnessKey is a witness's cosignature/v1 signer and its verifier key.
type witnessKey struct {
	signer note.Signer
	vkey   string
}

func newWitness(t *testing.T, name string) witnessKey {
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := cosigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return witnessKey{s, vkey}
}

// cosign adds cosignatures by ws to the bundle's checkpoint.
func cosign(t *testing.T, bundle []byte, logKey string, ws ...witnessKey) []byte {
	t.Helper()
	p, err := client.ParseBundle(bundle)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(logKey)
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(p.Checkpoint, note.VerifierList(v))
	if err != nil {
		t.Fatal(err)
	}
	var signers []note.Signer
	for _, w := range ws {
		signers = append(signers, w.signer)
	}
	if p.Checkpoint, err = note.Sign(n, signers...); err != nil {
		t.Fatal(err)
	}
	return p.Marshal()
}

func TestVerifyBundleWitnessPolicy(t *testing.T) {
	d, b := logBundle(t)
	w1, w2, w3 := newWitness(t, "w1.example"), newWitness(t, "w2.example"), newWitness(t, "w3.example")
	policy := func(group string) []byte {
		return fmt.Appendf(nil, "# test policy\nlog localhost/provlog %s\nwitness w1 %s https://w1.example/\nwitness w2 %s https://w2.example/\nwitness w3 %s https://w3.example/\ngroup g %s w1 w2 w3\nquorum g\n",
			d.VerifierKey, w1.vkey, w2.vkey, w3.vkey, group)
	}
	flipLastSig := func(b []byte) []byte {
		b = bytes.Clone(b)
		b[len(b)-5] ^= 0x01 // inside the last signature's base64
		return b
	}
	for _, tc := range []struct {
		name   string
		bundle []byte
		policy []byte
		ok     bool
	}{
		{"no policy, no cosignatures", b, nil, true},
		{"quorum none", b, []byte("quorum none\n"), true},
		{"2 of 3, none", b, policy("2"), false},
		{"2 of 3, one", cosign(t, b, d.VerifierKey, w1), policy("2"), false},
		{"2 of 3, two", cosign(t, b, d.VerifierKey, w1, w3), policy("2"), true},
		{"any, one", cosign(t, b, d.VerifierKey, w2), policy("any"), true},
		{"all, two", cosign(t, b, d.VerifierKey, w1, w2), policy("all"), false},
		{"all, three", cosign(t, b, d.VerifierKey, w1, w2, w3), policy("all"), true},
		{"2 of 3, two, one bad", flipLastSig(cosign(t, b, d.VerifierKey, w1, w2)), policy("2"), false},
		{"unknown witness", cosign(t, b, d.VerifierKey, newWitness(t, "w4.example")), policy("1"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := client.VerifyBundle(tc.bundle, d.VerifierKey, client.VerifyOptions{WitnessPolicy: tc.policy})
			switch {
			case tc.ok && err != nil:
				t.Errorf("VerifyBundle = %v, want success", err)
			case !tc.ok && !errors.Is(err, client.ErrPolicyNotSatisfied) && !errors.Is(err, client.ErrFormat):
				t.Errorf("VerifyBundle = %v, want ErrPolicyNotSatisfied", err)
			}
		})
	}
	if _, err := client.VerifyBundle(b, d.VerifierKey, client.VerifyOptions{WitnessPolicy: []byte("quorum\n")}); err == nil {
		t.Error("VerifyBundle with a malformed policy succeeded")
	}
}

func TestParseBundleCanonical(t *testing.T) {
	good, err := client.BuildBundle([]byte("entry"), 1, [][]byte{make([]byte, 32)}, []byte("origin\n2\nAAAA\n\n— origin sig\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.ParseBundle(good); err != nil {
		t.Fatalf("ParseBundle(%q) = %v", good, err)
	}
	for _, bad := range []string{
		"",
		"c2sp.org/tlog-proof@v1\n",
		strings_Replace(good, "index 1\n", "index 01\n"),
		strings_Replace(good, "index 1\n", "index +1\n"),
		strings_Replace(good, "extra ZW50cnk=\n", "extra ZW50cnl=\n"), // non-canonical padding bits
		strings_Replace(good, "extra ZW50cnk=\n", "extra ZW50cnk\n"),
		strings_Replace(good, "extra ZW50cnk=\n", "extra \n"),
		strings_Replace(good, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=\n"),
		strings_Replace(good, "\n", "\r\n"),
		strings_Replace(good, "\n\norigin", "\norigin"),
		string(good[:len(good)-1]),
		"c2sp.org/tlog-proof@v1\nextra ZW50cnk=\nindex 1\n\n",
	} {
		if p, err := client.ParseBundle([]byte(bad)); err == nil {
			t.Errorf("ParseBundle(%q) = %+v, want error", bad, p)
		} else if !errors.Is(err, client.ErrFormat) {
			t.Errorf("ParseBundle(%q) = %v, want ErrFormat", bad, err)
		}
	}
	// An entry of the largest size a log serves fits, although formats'
	// Unmarshal alone cannot read such a long line.
	big := bytes.Repeat([]byte("x"), 65535)
	b, err := client.BuildBundle(big, 0, nil, []byte("o\n1\nAAAA\n\n— o sig\n"))
	if err != nil {
		t.Fatal(err)
	}
	if p, err := client.ParseBundle(b); err != nil || !bytes.Equal(p.ExtraData, big) {
		t.Errorf("ParseBundle(bundle with a 65535-byte entry) = %v", err)
	}
	var tooMany proof.TLogProof
	tooMany.Index, tooMany.ExtraData, tooMany.Checkpoint = 1, []byte("e"), []byte("c\n")
	tooMany.Hashes = make([][32]byte, 65)
	if _, err := client.ParseBundle(tooMany.Marshal()); !errors.Is(err, client.ErrFormat) {
		t.Errorf("ParseBundle(65 hashes) = %v, want ErrFormat", err)
	}
}

func strings_Replace(b []byte, old, new string) string {
	return string(bytes.Replace(b, []byte(old), []byte(new), 1))
}
