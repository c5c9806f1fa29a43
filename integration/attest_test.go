package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/provlog/provlog/event"
	pb "github.com/provlog/provlog/proto/provlog/v1"
	fproof "github.com/transparency-dev/formats/proof"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"google.golang.org/grpc/codes"
)

// TestAttestationsEndToEnd runs provlogd admitting attestations (its
// default) with a keyring, logs one artifact's build, signature and
// promotions dev → staging → prod over gRPC, refuses a bad event, searches
// the artifact's digest, and verifies a proof bundle offline with
// independent code.
func TestAttestationsEndToEnd(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	keys := map[string]event.SigningKey{}
	var ring strings.Builder
	ring.WriteString(`{"keys":[`)
	for i, k := range []struct{ name, kind, role string }{
		{"ci", event.KeyEd25519, "builder"},
		{"signer", event.KeyECDSAP256, "signer"},
		{"alice", event.KeyECDSAP256, "promoter"},
		{"bob", event.KeyEd25519, "approver"},
	} {
		priv, pub, err := event.GenerateKey(k.kind)
		if err != nil {
			t.Fatal(err)
		}
		if keys[k.name], err = event.LoadSigningKey(priv); err != nil {
			t.Fatal(err)
		}
		pj, _ := json.Marshal(string(pub))
		if i > 0 {
			ring.WriteString(",")
		}
		fmt.Fprintf(&ring, `{"name":%q,"publicKey":%s,"roles":[%q]}`, k.name, pj, k.role)
	}
	ring.WriteString(`],"environments":[{"name":"dev"},{"name":"staging","from":"dev"},{"name":"prod","from":"staging","approvals":2}]}`)
	ringPath := filepath.Join(dir, "keyring.json")
	if err := os.WriteFile(ringPath, []byte(ring.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	d := mustStartProvlogd(t, filepath.Join(dir, "data"), "--origin", testOrigin, "--admission", "attestations", "--keyring", ringPath)
	defer d.mustStop(t)
	v, _, err := loadVerifier(d.DataDir)
	if err != nil {
		t.Fatal(err)
	}

	sum := sha256.Sum256([]byte("app-1.2.3.tar.gz contents"))
	app := event.Digest{Alg: "sha256", Hex: hex.EncodeToString(sum[:])}
	envelope := func(predType string, pred any, signers ...string) []byte {
		t.Helper()
		st, err := event.NewStatement(predType, []event.Subject{{Name: "app-1.2.3.tar.gz", Digest: app}}, pred)
		if err != nil {
			t.Fatal(err)
		}
		var ks []event.SigningKey
		for _, s := range signers {
			ks = append(ks, keys[s])
		}
		env, err := event.SignEnvelope(ctx, st, ks...)
		if err != nil {
			t.Fatal(err)
		}
		return env
	}
	appendOK := func(env []byte) uint64 {
		t.Helper()
		res, err := d.Log.Append(ctx, &pb.AppendRequest{Entry: env})
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		return res.Index
	}
	prov, err := event.NewProvenance(event.BuildSpec{BuilderID: "https://ci.example.com/runner@v2", BuildType: "https://ci.example.com/go@v1",
		SourceRepo: "git+https://git.example.com/app", SourceCommit: strings.Repeat("5e", 20), InvocationID: "run-7"})
	if err != nil {
		t.Fatal(err)
	}
	build := appendOK(envelope(event.ProvenancePredicateType, prov, "ci"))
	sign := appendOK(envelope(event.SignPredicateType, &event.SignPredicate{Algorithm: "ecdsa-p256-sha256", KeyID: "release", Signature: "c2lnbmF0dXJl", BuildIndex: build}, "signer"))
	promote := func(from, to string, signers ...string) []byte {
		return envelope(event.PromotePredicateType, &event.PromotePredicate{From: from, To: to, BuildIndex: build, Decision: event.DecisionApproved}, signers...)
	}
	dev := appendOK(promote("", "dev", "alice"))
	staging := appendOK(promote("dev", "staging", "alice"))

	before, err := fetchCheckpoint(ctx, d.HTTPURL, v)
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		entry []byte
		code  codes.Code
	}{
		"prod with one approval": {promote("staging", "prod", "alice"), codes.PermissionDenied},
		"prod skipping staging":  {promote("dev", "prod", "alice", "bob"), codes.FailedPrecondition},
		"builder signs a sign":   {envelope(event.SignPredicateType, &event.SignPredicate{Algorithm: "ed25519", KeyID: "k", Signature: "c2ln", BuildIndex: build}, "ci"), codes.PermissionDenied},
		"opaque bytes":           {[]byte("not an event"), codes.InvalidArgument},
	} {
		_, err := d.Log.Append(ctx, &pb.AppendRequest{Entry: tc.entry})
		if grpcCode(err) != tc.code {
			t.Errorf("%s: %v, want %v", name, err, tc.code)
		}
	}
	if after, err := fetchCheckpoint(ctx, d.HTTPURL, v); err != nil || after.Size != before.Size {
		t.Fatalf("refused events changed the log: size %d → %d (%v)", before.Size, after.Size, err)
	}
	prod := appendOK(promote("staging", "prod", "alice", "bob"))

	// Search by digest returns the five events in order.
	resp, err := d.Log.Search(ctx, &pb.SearchRequest{Key: &pb.SearchRequest_Digest{Digest: app.String()}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range resp.Results {
		got = append(got, fmt.Sprintf("%d:%s", r.Index, r.EventType))
	}
	if want := fmt.Sprintf("[%d:build %d:sign %d:promote %d:promote %d:promote]", build, sign, dev, staging, prod); fmt.Sprint(got) != want {
		t.Errorf("Search = %v, want %s", got, want)
	}

	// The prod promotion's proof bundle verifies offline, with formats'
	// tlog-proof parser, the log's note key and merkle/proof.
	b, err := d.Log.GetProofBundle(ctx, &pb.GetProofBundleRequest{Leaf: &pb.GetProofBundleRequest_Index{Index: prod}})
	if err != nil {
		t.Fatal(err)
	}
	var p fproof.TLogProof
	if err := p.Unmarshal(b.Bundle); err != nil {
		t.Fatal(err)
	}
	cp, err := openCheckpoint(p.Checkpoint, v)
	if err != nil {
		t.Fatalf("bundle checkpoint: %v", err)
	}
	hashes := make([][]byte, len(p.Hashes))
	for i := range p.Hashes {
		hashes[i] = p.Hashes[i][:]
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, p.Index, cp.Size, rfc6962.DefaultHasher.HashLeaf(p.ExtraData), hashes, cp.Root); err != nil {
		t.Fatalf("bundle inclusion: %v", err)
	}
	if p.Index != prod || !bytes.Contains(p.ExtraData, []byte(`"payloadType":"application/vnd.in-toto+json"`)) {
		t.Errorf("bundle for index %d carries %q", p.Index, p.ExtraData)
	}
}
