package integration

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/provlog/provlog/event"
	pb "github.com/provlog/provlog/proto/provlog/v1"
)

// TestAPIAgainstProvlogd runs provlogd admitting attestations, logs a
// build, a signature and a promotion, and reads them back through the
// JSON API on the HTTP port: every answer decodes (protojson) into the
// RPC's response and equals what the gRPC port answers the same request,
// the checkpoint verifies with the log's key, the inclusion proofs from
// the JSON verify against it with transparency-dev/merkle, and the
// decoded entries carry each event's fields.
func TestAPIAgainstProvlogd(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	keys := map[string]event.SigningKey{}
	type ringKey struct {
		Name      string   `json:"name"`
		PublicKey string   `json:"publicKey"`
		Roles     []string `json:"roles"`
	}
	var ring struct {
		Keys         []ringKey        `json:"keys"`
		Environments []map[string]any `json:"environments"`
	}
	for _, k := range []struct{ name, role string }{{"ci", "builder"}, {"signer", "signer"}, {"alice", "promoter"}} {
		priv, pub, err := event.GenerateKey(event.KeyEd25519)
		if err != nil {
			t.Fatal(err)
		}
		if keys[k.name], err = event.LoadSigningKey(priv); err != nil {
			t.Fatal(err)
		}
		ring.Keys = append(ring.Keys, ringKey{k.name, string(pub), []string{k.role}})
	}
	ring.Environments = []map[string]any{{"name": "dev"}}
	rb, _ := json.Marshal(ring)
	ringPath := filepath.Join(dir, "keyring.json")
	if err := os.WriteFile(ringPath, rb, 0o644); err != nil {
		t.Fatal(err)
	}
	d := mustStartProvlogd(t, filepath.Join(dir, "data"), "--origin", testOrigin, "--admission", "attestations", "--keyring", ringPath)
	defer d.mustStop(t)
	v, _, err := loadVerifier(d.DataDir)
	if err != nil {
		t.Fatal(err)
	}

	sum := sha256.Sum256([]byte("api artifact"))
	app := event.Digest{Alg: "sha256", Hex: hex.EncodeToString(sum[:])}
	add := func(predType string, pred any, signer string) uint64 {
		t.Helper()
		st, err := event.NewStatement(predType, []event.Subject{{Name: "app", Digest: app}}, pred)
		if err != nil {
			t.Fatal(err)
		}
		env, err := event.SignEnvelope(ctx, st, keys[signer])
		if err != nil {
			t.Fatal(err)
		}
		res, err := d.Log.Append(ctx, &pb.AppendRequest{Entry: env})
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		return res.Index
	}
	const builder, commit = "https://ci.example.com/api@v1", "0123456789abcdef0123456789abcdef01234567"
	prov, err := event.NewProvenance(event.BuildSpec{BuilderID: builder, BuildType: "https://ci.example.com/go@v1",
		SourceRepo: "git+https://git.example.com/app", SourceCommit: commit})
	if err != nil {
		t.Fatal(err)
	}
	build := add(event.ProvenancePredicateType, prov, "ci")
	sign := add(event.SignPredicateType, &event.SignPredicate{Algorithm: "ed25519", KeyID: "release", Signature: "c2lnbmF0dXJl", BuildIndex: build}, "signer")
	dev := add(event.PromotePredicateType, &event.PromotePredicate{To: "dev", BuildIndex: build, Decision: event.DecisionApproved}, "alice")
	aliceID, err := keys["alice"].KeyID()
	if err != nil {
		t.Fatal(err)
	}

	get := func(path string, m proto.Message) {
		t.Helper()
		code, body, hdr, err := httpGet(ctx, d.HTTPURL+strings.TrimPrefix(path, "/"))
		if err != nil {
			t.Fatal(err)
		}
		if code != http.StatusOK || hdr.Get("Content-Type") != "application/json" {
			t.Fatalf("GET %s: %d %s %s", path, code, hdr.Get("Content-Type"), body)
		}
		if err := protojson.Unmarshal(body, m); err != nil {
			t.Fatalf("GET %s: %v\n%s", path, err, body)
		}
	}
	same := func(path string, got, want proto.Message, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("gRPC for %s: %v", path, err)
		}
		if !proto.Equal(got, want) {
			t.Errorf("GET %s differs from gRPC:\nJSON %v\ngRPC %v", path, got, want)
		}
	}

	// The checkpoint: the log's, as gRPC and /checkpoint serve it.
	var cpResp pb.GetCheckpointResponse
	get("/api/v1/checkpoint", &cpResp)
	cp, err := openCheckpoint(cpResp.Checkpoint, v)
	if err != nil {
		t.Fatalf("the API's checkpoint: %v", err)
	}
	grpcCP, err := d.Log.GetCheckpoint(ctx, &pb.GetCheckpointRequest{})
	same("/api/v1/checkpoint", &cpResp, grpcCP, err)
	if cp.Size != dev+1 {
		t.Fatalf("checkpoint size %d, want %d", cp.Size, dev+1)
	}

	// Entries, decoded, as gRPC streams them: the whole log (the events,
	// after anything provlogd logs itself on first start).
	var entries pb.GetEntriesResponse
	get(fmt.Sprintf("/api/v1/entries?start=0&count=%d&decode=true", cp.Size), &entries)
	stream, err := d.Log.GetEntries(ctx, &pb.GetEntriesRequest{Start: 0, Count: cp.Size, Decode: true})
	if err != nil {
		t.Fatal(err)
	}
	grpcEntries, err := stream.Recv()
	same("/api/v1/entries", &entries, grpcEntries, err)
	if b := entries.Decoded[build].GetBuild(); b == nil || b.BuilderId != builder || b.SourceCommit != commit {
		t.Errorf("decoded build: %v", entries.Decoded[build])
	}
	if s := entries.Decoded[sign].GetSign(); s == nil || s.BuildIndex != build || s.KeyId != "release" {
		t.Errorf("decoded sign: %v", entries.Decoded[sign])
	}
	p := entries.Decoded[dev]
	if pp := p.GetPromote(); pp == nil || pp.To != "dev" || len(p.Signatures) != 1 || p.Signatures[0].KeyId != aliceID {
		t.Errorf("decoded promote: %v", p)
	}
	var one pb.GetEntriesResponse
	get(fmt.Sprintf("/api/v1/entries/%d", sign), &one)
	if len(one.Entries) != 1 || !proto.Equal(one.Decoded[0], entries.Decoded[sign]) {
		t.Errorf("/api/v1/entries/%d: %v", sign, &one)
	}

	// Inclusion proofs from the JSON verify against the verified checkpoint.
	for i, e := range entries.Entries {
		var ip pb.GetInclusionProofResponse
		leaf := rfc6962.DefaultHasher.HashLeaf(e)
		path := "/api/v1/proofs/inclusion?leafHash=" + hex.EncodeToString(leaf) + fmt.Sprintf("&treeSize=%d", cp.Size)
		get(path, &ip)
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(i), cp.Size, leaf, ip.Proof, cp.Root); err != nil || ip.Index != uint64(i) {
			t.Errorf("inclusion of entry %d (index %d): %v", i, ip.Index, err)
		}
		want, err := d.Log.GetInclusionProof(ctx, &pb.GetInclusionProofRequest{Leaf: &pb.GetInclusionProofRequest_LeafHash{LeafHash: leaf}, TreeSize: cp.Size})
		same(path, &ip, want, err)
	}
	var cons pb.GetConsistencyProofResponse
	get(fmt.Sprintf("/api/v1/proofs/consistency?fromSize=1&toSize=%d", cp.Size), &cons)
	first := rfc6962.DefaultHasher.HashLeaf(entries.Entries[0])
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, 1, cp.Size, cons.Proof, first, cp.Root); err != nil {
		t.Errorf("consistency 1 → %d: %v", cp.Size, err)
	}

	// Search by each key, as gRPC answers it.
	for path, req := range map[string]*pb.SearchRequest{
		"/api/v1/search?digest=" + app.String():                  {Key: &pb.SearchRequest_Digest{Digest: app.String()}},
		"/api/v1/search?builderId=" + url.QueryEscape(builder):   {Key: &pb.SearchRequest_BuilderId{BuilderId: builder}},
		"/api/v1/search?sourceCommit=" + commit + "&decode=true": {Key: &pb.SearchRequest_SourceCommit{SourceCommit: commit}, Decode: true},
		"/api/v1/search?signerKeyId=" + aliceID + "&pageSize=1":  {Key: &pb.SearchRequest_SignerKeyId{SignerKeyId: aliceID}, PageSize: 1},
	} {
		var got pb.SearchResponse
		get(path, &got)
		want, err := d.Log.Search(ctx, req)
		same(path, &got, want, err)
		if len(got.Results) == 0 {
			t.Errorf("GET %s: no results", path)
		}
	}

	// The proof bundle, as gRPC gives it.
	var pbResp pb.GetProofBundleResponse
	get(fmt.Sprintf("/api/v1/proof-bundle?index=%d", dev), &pbResp)
	wantBundle, err := d.Log.GetProofBundle(ctx, &pb.GetProofBundleRequest{Leaf: &pb.GetProofBundleRequest_Index{Index: dev}})
	same("/api/v1/proof-bundle", &pbResp, wantBundle, err)

	// Refusals are JSON statuses; writes are not served.
	for path, want := range map[string]int{
		"api/v1/entries?start=0&count=1&limit=9":                       http.StatusBadRequest,
		"api/v1/entries?start=99&count=1":                              http.StatusBadRequest,
		"api/v1/proofs/inclusion?leafHash=" + strings.Repeat("00", 32): http.StatusNotFound,
		"api/v1/nothing": http.StatusNotFound,
	} {
		code, body, hdr, err := httpGet(ctx, d.HTTPURL+path)
		if err != nil || code != want || hdr.Get("Content-Type") != "application/json" || !strings.Contains(string(body), `"code":`) {
			t.Errorf("GET /%s: %d %s (%v), want %d with a JSON status", path, code, body, err, want)
		}
	}
	if code, _, _, err := httpPost(ctx, d.HTTPURL+"api/v1/entries", []byte("x")); err != nil || code != http.StatusMethodNotAllowed {
		t.Errorf("POST /api/v1/entries: %d (%v), want 405", code, err)
	}
}
