package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	spb "google.golang.org/genproto/googleapis/rpc/status"

	"github.com/provlog/provlog/event"
	"github.com/provlog/provlog/log"
	provlogv1 "github.com/provlog/provlog/proto/provlog/v1"
	"github.com/provlog/provlog/storage"
)

// apiLog is a real log admitting attestations, with the events of one
// artifact, served over gRPC (in memory) and over HTTP.
type apiLog struct {
	t        *testing.T
	log      *log.Log
	grpc     provlogv1.LogClient
	url      string // the HTTP server's base URL
	keys     map[string]event.SigningKey
	artifact event.Digest
	// build, sign and dev are the indices of the artifact's build, sign
	// and promotion into dev.
	build, sign, dev uint64
	commit, builder  string
	// logSigner is the log's checkpoint key, which signs keyring changes
	// while the keyring names no admins.
	logSigner note.Signer
}

func newAPILog(t *testing.T) *apiLog {
	t.Helper()
	a := &apiLog{t: t, keys: map[string]event.SigningKey{},
		builder: "https://ci.example.com/runner@v2", commit: strings.Repeat("5e", 20)}
	var ring strings.Builder
	ring.WriteString(`{"keys":[`)
	for i, k := range []struct{ name, kind, role string }{
		{"ci", event.KeyEd25519, "builder"},
		{"signer", event.KeyECDSAP256, "signer"},
		{"alice", event.KeyEd25519, "promoter"},
	} {
		priv, pub, err := event.GenerateKey(k.kind)
		if err != nil {
			t.Fatal(err)
		}
		if a.keys[k.name], err = event.LoadSigningKey(priv); err != nil {
			t.Fatal(err)
		}
		pj, _ := json.Marshal(string(pub))
		if i > 0 {
			ring.WriteString(",")
		}
		fmt.Fprintf(&ring, `{"name":%q,"publicKey":%s,"roles":[%q]}`, k.name, pj, k.role)
	}
	ring.WriteString(`],"environments":[{"name":"dev"}]}`)
	kr, err := log.ParseKeyring([]byte(ring.String()), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	st, err := storage.Open(t.TempDir(), storage.Options{CacheBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	skey, _, _ := note.GenerateKey(rand.Reader, "example.com/api")
	signer, _ := note.NewSigner(skey)
	a.logSigner = signer
	a.log, err = log.Open(context.Background(), log.Config{Origin: "example.com/api", Signer: signer,
		Admission: &log.AttestationAdmission{Keyring: kr, Index: st}}, st)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.log.Close(); st.Close() })

	sum := sha256.Sum256([]byte("app contents"))
	a.artifact = event.Digest{Alg: "sha256", Hex: hex.EncodeToString(sum[:])}
	prov, err := event.NewProvenance(event.BuildSpec{BuilderID: a.builder, BuildType: "https://ci.example.com/go@v1",
		SourceRepo: "git+https://git.example.com/app", SourceCommit: a.commit, InvocationID: "run-7"})
	if err != nil {
		t.Fatal(err)
	}
	a.build = a.add(a.envelope(event.ProvenancePredicateType, prov, "ci"))
	a.sign = a.add(a.envelope(event.SignPredicateType, &event.SignPredicate{Algorithm: "ecdsa-p256-sha256", KeyID: "release", Signature: "c2lnbmF0dXJl", BuildIndex: a.build}, "signer"))
	a.dev = a.add(a.envelope(event.PromotePredicateType, &event.PromotePredicate{To: "dev", BuildIndex: a.build, Decision: event.DecisionApproved}, "alice"))

	a.grpc = provlogv1.NewLogClient(dialBufconn(t, func(s *grpc.Server) { RegisterGRPC(s, a.log) }))
	srv := httptest.NewServer(HTTPHandler(a.log, nil))
	t.Cleanup(srv.Close)
	a.url = srv.URL
	return a
}

// envelope is a statement about the artifact signed by the named keys.
func (a *apiLog) envelope(predType string, pred any, signers ...string) []byte {
	a.t.Helper()
	st, err := event.NewStatement(predType, []event.Subject{{Name: "app.tar.gz", Digest: a.artifact}}, pred)
	if err != nil {
		a.t.Fatal(err)
	}
	var ks []event.SigningKey
	for _, s := range signers {
		ks = append(ks, a.keys[s])
	}
	env, err := event.SignEnvelope(context.Background(), st, ks...)
	if err != nil {
		a.t.Fatal(err)
	}
	return env
}

func (a *apiLog) add(entry []byte) uint64 {
	a.t.Helper()
	res, err := a.log.Add(context.Background(), entry)
	if err != nil {
		a.t.Fatal(err)
	}
	return res.Index
}

func (a *apiLog) keyID(name string) string {
	id, err := a.keys[name].KeyID()
	if err != nil {
		a.t.Fatal(err)
	}
	return id
}

// entry is the stored entry at index.
func (a *apiLog) entry(index uint64) []byte {
	var e []byte
	if err := a.log.Entries(context.Background(), index, 1, func(_ uint64, b []byte) error { e = bytes.Clone(b); return nil }); err != nil {
		a.t.Fatal(err)
	}
	return e
}

// apiGet GETs path from the API server and returns its status and body.
func apiGet(t *testing.T, base, path string) (int, http.Header, []byte) {
	t.Helper()
	resp, err := http.Get(base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// getJSON GETs path, wants 200 and decodes the body into m with protojson.
func getJSON(t *testing.T, base, path string, m proto.Message) {
	t.Helper()
	code, h, body := apiGet(t, base, path)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, code, body)
	}
	if ct := h.Get("Content-Type"); ct != "application/json" {
		t.Errorf("GET %s: Content-Type %q", path, ct)
	}
	if err := protojson.Unmarshal(body, m); err != nil {
		t.Fatalf("GET %s: %v\n%s", path, err, body)
	}
}

// TestAPIMatchesGRPC: every route answers, in JSON that protojson decodes
// into the RPC's response message, exactly what the gRPC server answers
// the same request, whichever naming of the parameters is used.
func TestAPIMatchesGRPC(t *testing.T) {
	a := newAPILog(t)
	ctx := context.Background()
	size := a.log.Checkpoint().Size
	leaf := rfc6962.DefaultHasher.HashLeaf(a.entry(a.sign))
	type rpcCase struct {
		path string
		resp proto.Message                 // an empty response message
		call func() (proto.Message, error) // the same request over gRPC
	}
	one := func(path string, resp proto.Message, call func() (proto.Message, error)) rpcCase {
		return rpcCase{path, resp, call}
	}
	entries := func(req *provlogv1.GetEntriesRequest) func() (proto.Message, error) {
		return func() (proto.Message, error) {
			s, err := a.grpc.GetEntries(ctx, req)
			if err != nil {
				return nil, err
			}
			all := &provlogv1.GetEntriesResponse{}
			for {
				m, err := s.Recv()
				if err == io.EOF {
					return all, nil
				}
				if err != nil {
					return nil, err
				}
				if len(all.Entries) == 0 {
					all.Start = m.Start
				}
				all.Entries = append(all.Entries, m.Entries...)
				all.Decoded = append(all.Decoded, m.Decoded...)
			}
		}
	}
	search := func(req *provlogv1.SearchRequest) func() (proto.Message, error) {
		return func() (proto.Message, error) { return a.grpc.Search(ctx, req) }
	}
	incl := func(req *provlogv1.GetInclusionProofRequest) func() (proto.Message, error) {
		return func() (proto.Message, error) { return a.grpc.GetInclusionProof(ctx, req) }
	}
	bundle := func(req *provlogv1.GetProofBundleRequest) func() (proto.Message, error) {
		return func() (proto.Message, error) { return a.grpc.GetProofBundle(ctx, req) }
	}
	for _, tc := range []rpcCase{
		one("/api/v1/checkpoint", &provlogv1.GetCheckpointResponse{}, func() (proto.Message, error) {
			return a.grpc.GetCheckpoint(ctx, &provlogv1.GetCheckpointRequest{})
		}),
		one("/api/v1/entries?start=0&count=3", &provlogv1.GetEntriesResponse{}, entries(&provlogv1.GetEntriesRequest{Start: 0, Count: 3})),
		one("/api/v1/entries?start=1&count=2&decode=true", &provlogv1.GetEntriesResponse{}, entries(&provlogv1.GetEntriesRequest{Start: 1, Count: 2, Decode: true})),
		one("/api/v1/entries/2", &provlogv1.GetEntriesResponse{}, entries(&provlogv1.GetEntriesRequest{Start: 2, Count: 1, Decode: true})),
		one("/api/v1/proofs/inclusion?index=1&treeSize=3", &provlogv1.GetInclusionProofResponse{},
			incl(&provlogv1.GetInclusionProofRequest{Leaf: &provlogv1.GetInclusionProofRequest_Index{Index: 1}, TreeSize: 3})),
		one("/api/v1/proofs/inclusion?index=0", &provlogv1.GetInclusionProofResponse{},
			incl(&provlogv1.GetInclusionProofRequest{Leaf: &provlogv1.GetInclusionProofRequest_Index{Index: 0}})),
		one("/api/v1/proofs/inclusion?leafHash="+hex.EncodeToString(leaf), &provlogv1.GetInclusionProofResponse{},
			incl(&provlogv1.GetInclusionProofRequest{Leaf: &provlogv1.GetInclusionProofRequest_LeafHash{LeafHash: leaf}})),
		one("/api/v1/proofs/inclusion?leaf_hash="+base64.RawURLEncoding.EncodeToString(leaf)+"&tree_size="+strconv.FormatUint(size, 10), &provlogv1.GetInclusionProofResponse{},
			incl(&provlogv1.GetInclusionProofRequest{Leaf: &provlogv1.GetInclusionProofRequest_LeafHash{LeafHash: leaf}, TreeSize: size})),
		one("/api/v1/proofs/inclusion?leafHash="+url.QueryEscape(base64.StdEncoding.EncodeToString(leaf)), &provlogv1.GetInclusionProofResponse{},
			incl(&provlogv1.GetInclusionProofRequest{Leaf: &provlogv1.GetInclusionProofRequest_LeafHash{LeafHash: leaf}})),
		one("/api/v1/proofs/consistency?fromSize=1&toSize=3", &provlogv1.GetConsistencyProofResponse{}, func() (proto.Message, error) {
			return a.grpc.GetConsistencyProof(ctx, &provlogv1.GetConsistencyProofRequest{FromSize: 1, ToSize: 3})
		}),
		one("/api/v1/proofs/consistency?from_size=2", &provlogv1.GetConsistencyProofResponse{}, func() (proto.Message, error) {
			return a.grpc.GetConsistencyProof(ctx, &provlogv1.GetConsistencyProofRequest{FromSize: 2})
		}),
		one("/api/v1/search?digest="+a.artifact.String(), &provlogv1.SearchResponse{},
			search(&provlogv1.SearchRequest{Key: &provlogv1.SearchRequest_Digest{Digest: a.artifact.String()}})),
		one("/api/v1/search?digest="+a.artifact.String()+"&pageSize=2&decode=true", &provlogv1.SearchResponse{},
			search(&provlogv1.SearchRequest{Key: &provlogv1.SearchRequest_Digest{Digest: a.artifact.String()}, PageSize: 2, Decode: true})),
		one("/api/v1/search?digest="+a.artifact.String()+"&page_size=2&page_token=2", &provlogv1.SearchResponse{},
			search(&provlogv1.SearchRequest{Key: &provlogv1.SearchRequest_Digest{Digest: a.artifact.String()}, PageSize: 2, PageToken: "2"})),
		one("/api/v1/search?builderId="+url.QueryEscape(a.builder), &provlogv1.SearchResponse{},
			search(&provlogv1.SearchRequest{Key: &provlogv1.SearchRequest_BuilderId{BuilderId: a.builder}})),
		one("/api/v1/search?source_commit="+a.commit, &provlogv1.SearchResponse{},
			search(&provlogv1.SearchRequest{Key: &provlogv1.SearchRequest_SourceCommit{SourceCommit: a.commit}})),
		one("/api/v1/search?signerKeyId="+a.keyID("alice")+"&decode=1", &provlogv1.SearchResponse{},
			search(&provlogv1.SearchRequest{Key: &provlogv1.SearchRequest_SignerKeyId{SignerKeyId: a.keyID("alice")}, Decode: true})),
		one("/api/v1/proof-bundle?index=1", &provlogv1.GetProofBundleResponse{},
			bundle(&provlogv1.GetProofBundleRequest{Leaf: &provlogv1.GetProofBundleRequest_Index{Index: 1}})),
		one("/api/v1/proof-bundle?leafHash="+hex.EncodeToString(leaf), &provlogv1.GetProofBundleResponse{},
			bundle(&provlogv1.GetProofBundleRequest{Leaf: &provlogv1.GetProofBundleRequest_LeafHash{LeafHash: leaf}})),
	} {
		t.Run(tc.path, func(t *testing.T) {
			getJSON(t, a.url, tc.path, tc.resp)
			want, err := tc.call()
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(tc.resp, want) {
				t.Errorf("JSON answer differs from gRPC's:\nJSON %v\ngRPC %v", tc.resp, want)
			}
		})
	}

	// The searches found what the log holds.
	var res provlogv1.SearchResponse
	getJSON(t, a.url, "/api/v1/search?digest="+a.artifact.String(), &res)
	if len(res.Results) != 3 || res.Results[0].Index != a.build || res.Results[2].EventType != "promote" || res.NextPageToken != "" {
		t.Errorf("search by digest: %v", &res)
	}
	getJSON(t, a.url, "/api/v1/search?signerKeyId="+a.keyID("signer"), &res)
	if len(res.Results) != 1 || res.Results[0].Index != a.sign {
		t.Errorf("search by the signer's key id: %v", &res)
	}
}

// TestAPIJSONShape pins the JSON field names and encodings the web page
// reads: lowerCamelCase names, uint64 as strings, bytes in standard
// base64, zero values present.
func TestAPIJSONShape(t *testing.T) {
	a := newAPILog(t)
	_, _, body := apiGet(t, a.url, fmt.Sprintf("/api/v1/entries/%d", a.build))
	var got struct {
		Start   string   `json:"start"`
		Entries []string `json:"entries"`
		Decoded []struct {
			Index         string `json:"index"`
			DecodeError   string `json:"decodeError"`
			EventType     string `json:"eventType"`
			PredicateType string `json:"predicateType"`
			Subjects      []string
			Statement     string `json:"statement"`
			Signatures    []struct {
				KeyID string `json:"keyId"`
			} `json:"signatures"`
			Build struct {
				BuilderID    string `json:"builderId"`
				SourceCommit string `json:"sourceCommit"`
			} `json:"build"`
		} `json:"decoded"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	entry, index := a.entry(a.build), strconv.FormatUint(a.build, 10)
	switch {
	case got.Start != index || len(got.Entries) != 1 || got.Entries[0] != base64.StdEncoding.EncodeToString(entry):
		t.Errorf("start %q, entries %q", got.Start, got.Entries)
	case len(got.Decoded) != 1 || got.Decoded[0].Index != index || got.Decoded[0].EventType != "build" || got.Decoded[0].PredicateType != event.ProvenancePredicateType:
		t.Errorf("decoded %+v", got.Decoded)
	case got.Decoded[0].Build.BuilderID != a.builder || got.Decoded[0].Build.SourceCommit != a.commit:
		t.Errorf("build %+v", got.Decoded[0].Build)
	case len(got.Decoded[0].Signatures) != 1 || got.Decoded[0].Signatures[0].KeyID != a.keyID("ci"):
		t.Errorf("signatures %+v, want ci's key id %s", got.Decoded[0].Signatures, a.keyID("ci"))
	case len(got.Decoded[0].Subjects) != 1 || got.Decoded[0].Subjects[0] != a.artifact.String():
		t.Errorf("subjects %v", got.Decoded[0].Subjects)
	}
	if !bytes.Contains(body, []byte(`"decodeError":""`)) {
		t.Errorf("zero fields are left out: %s", body)
	}
	env, _ := event.ParseEntry(entry)
	if got.Decoded[0].Statement != string(env.Payload) {
		t.Errorf("statement %q, want the payload %q", got.Decoded[0].Statement, env.Payload)
	}
}

// TestAPIDecodedEvents: each event type's fields, as the page shows them.
func TestAPIDecodedEvents(t *testing.T) {
	a := newAPILog(t)
	var resp provlogv1.GetEntriesResponse
	getJSON(t, a.url, fmt.Sprintf("/api/v1/entries?start=%d&count=3&decode=true", a.build), &resp)
	if len(resp.Decoded) != 3 || a.sign != a.build+1 || a.dev != a.build+2 {
		t.Fatalf("%d decoded entries, want 3 (build %d, sign %d, dev %d)", len(resp.Decoded), a.build, a.sign, a.dev)
	}
	b, s, p := resp.Decoded[0], resp.Decoded[1], resp.Decoded[2]
	if bp := b.GetBuild(); bp == nil || bp.BuilderId != a.builder || bp.SourceCommit != a.commit || bp.SourceRepo != "git+https://git.example.com/app" || bp.InvocationId != "run-7" {
		t.Errorf("build: %v", b)
	}
	if sp := s.GetSign(); s.EventType != "sign" || sp == nil || sp.KeyId != "release" || sp.BuildIndex != a.build || sp.Algorithm != "ecdsa-p256-sha256" {
		t.Errorf("sign: %v", s)
	}
	if pp := p.GetPromote(); p.EventType != "promote" || pp == nil || pp.From != "" || pp.To != "dev" || pp.BuildIndex != a.build || pp.Decision != "approved" {
		t.Errorf("promote: %v", p)
	}
	if len(p.Signatures) != 1 || p.Signatures[0].KeyId != a.keyID("alice") {
		t.Errorf("promote's approvals %v, want alice's key id", p.Signatures)
	}
	for i, d := range resp.Decoded {
		if d.Index != a.build+uint64(i) || d.DecodeError != "" || d.Summary == "" || d.StatementType == "" {
			t.Errorf("decoded[%d]: %v", i, d)
		}
	}
}

// TestDecodeEntryNotAnEvent: what a log with open admission may hold is
// decoded as far as it goes, and always makes a valid message.
func TestDecodeEntryNotAnEvent(t *testing.T) {
	envelope := func(payload []byte) []byte {
		return fmt.Appendf(nil, `{"payloadType":"application/vnd.in-toto+json","payload":%q,"signatures":[{"keyid":"k1","sig":"c2ln"}]}`,
			base64.StdEncoding.EncodeToString(payload))
	}
	for _, tc := range []struct {
		name      string
		entry     []byte
		statement string
		sigs      int
	}{
		{"opaque bytes", []byte("not an event \xff"), "", 0},
		{"payload not UTF-8", envelope([]byte("{\"_type\":\"\xff\"}")), "", 1},
		{"payload not a statement", envelope([]byte(`{"hello":"world"}`)), `{"hello":"world"}`, 1},
	} {
		d := decodeEntry(context.Background(), newFakeLog(8), 7, tc.entry)
		if d.Index != 7 || d.DecodeError == "" || d.EventType != "" || d.Statement != tc.statement || len(d.Signatures) != tc.sigs {
			t.Errorf("%s: %v", tc.name, d)
		}
		if _, err := apiJSON.Marshal(d); err != nil {
			t.Errorf("%s: the JSON mapping refuses it: %v", tc.name, err)
		}
		if _, err := proto.Marshal(d); err != nil {
			t.Errorf("%s: proto refuses it: %v", tc.name, err)
		}
	}
}

// TestAPIProofsVerify: proofs taken from the JSON verify with
// transparency-dev/merkle's verifier against the checkpoints' roots.
func TestAPIProofsVerify(t *testing.T) {
	a := newAPILog(t)
	var cp1 provlogv1.GetCheckpointResponse
	getJSON(t, a.url, "/api/v1/checkpoint", &cp1)
	size1, root1 := parseCheckpointNote(t, cp1.Checkpoint)
	for range 5 {
		a.add(a.envelope(event.SignPredicateType, &event.SignPredicate{Algorithm: "ed25519", KeyID: "k" + strconv.Itoa(int(a.log.Checkpoint().Size)), Signature: "c2ln", BuildIndex: a.build}, "signer"))
	}
	var cp2 provlogv1.GetCheckpointResponse
	getJSON(t, a.url, "/api/v1/checkpoint", &cp2)
	size2, root2 := parseCheckpointNote(t, cp2.Checkpoint)
	if size2 != size1+5 {
		t.Fatalf("sizes %d, %d", size1, size2)
	}
	for i := range size2 {
		var ip provlogv1.GetInclusionProofResponse
		getJSON(t, a.url, fmt.Sprintf("/api/v1/proofs/inclusion?index=%d&treeSize=%d", i, size2), &ip)
		leaf := rfc6962.DefaultHasher.HashLeaf(a.entry(i))
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, i, size2, leaf, ip.Proof, root2); err != nil {
			t.Errorf("inclusion of %d in %d: %v", i, size2, err)
		}
		// A proof for another leaf does not verify.
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, (i+1)%size2, size2, leaf, ip.Proof, root2); err == nil && size2 > 1 {
			t.Errorf("the proof of %d verifies for %d", i, (i+1)%size2)
		}
	}
	var ip provlogv1.GetInclusionProofResponse
	getJSON(t, a.url, "/api/v1/proofs/inclusion?index=1", &ip)
	if ip.TreeSize != size2 || !bytes.Equal(ip.Checkpoint, cp2.Checkpoint) {
		t.Errorf("treeSize 0: tree size %d, checkpoint %q; want the latest", ip.TreeSize, ip.Checkpoint)
	}
	var cons provlogv1.GetConsistencyProofResponse
	getJSON(t, a.url, fmt.Sprintf("/api/v1/proofs/consistency?fromSize=%d&toSize=%d", size1, size2), &cons)
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, size1, size2, cons.Proof, root1, root2); err != nil {
		t.Errorf("consistency %d → %d: %v", size1, size2, err)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, size1, size2, cons.Proof, root2, root1); err == nil {
		t.Error("the consistency proof verifies with the roots swapped")
	}
}

// parseCheckpointNote returns a checkpoint note's size and root hash.
func parseCheckpointNote(t *testing.T, n []byte) (uint64, []byte) {
	t.Helper()
	lines := strings.SplitN(string(n), "\n", 4)
	if len(lines) < 4 {
		t.Fatalf("checkpoint %q", n)
	}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil {
		t.Fatal(err)
	}
	return size, root
}

// TestAPIBadRequests sends what honest clients never do: each is refused
// with the gRPC code's HTTP status and a google.rpc.Status naming the
// problem.
func TestAPIBadRequests(t *testing.T) {
	a := newAPILog(t)
	size := a.log.Checkpoint().Size
	hash := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		path string
		http int
		code codes.Code
		says string
	}{
		{"/api/v1/checkpoint?x=1", 400, codes.InvalidArgument, `query parameter "x": unknown, want none`},
		{"/api/v1/entries?start=0&count=1&limit=5", 400, codes.InvalidArgument, `query parameter "limit": unknown, want start, count, decode`},
		{"/api/v1/entries?start=0&count=1&count=2", 400, codes.InvalidArgument, "GetEntriesRequest.count: given more than once"},
		{"/api/v1/entries?start=0&count=1&Count=2", 400, codes.InvalidArgument, `query parameter "Count": unknown`},
		{"/api/v1/entries?start=-1&count=1", 400, codes.InvalidArgument, `GetEntriesRequest.start: "-1", want a decimal integer`},
		{"/api/v1/entries?start=0&count=1e3", 400, codes.InvalidArgument, `GetEntriesRequest.count: "1e3"`},
		{"/api/v1/entries?start=0&count=18446744073709551616", 400, codes.InvalidArgument, "GetEntriesRequest.count"},
		{"/api/v1/entries?start=1&count=18446744073709551615", 400, codes.InvalidArgument, "start+count overflows"},
		{"/api/v1/entries?start=0&count=0", 400, codes.InvalidArgument, "GetEntriesRequest.count: 0"},
		{"/api/v1/entries?start=0", 400, codes.InvalidArgument, "GetEntriesRequest.count: 0"},
		{"/api/v1/entries?start=0&count=1000000", 400, codes.OutOfRange, "beyond the log's size"},
		{fmt.Sprintf("/api/v1/entries?start=%d&count=1", size), 400, codes.OutOfRange, "beyond the log's size"},
		{"/api/v1/entries?start=0&count=1&decode=yes", 400, codes.InvalidArgument, "GetEntriesRequest.decode"},
		{"/api/v1/entries/abc", 400, codes.InvalidArgument, `"abc", want a decimal index`},
		{"/api/v1/entries/-1", 400, codes.InvalidArgument, "want a decimal index"},
		{"/api/v1/entries/1?decode=false", 400, codes.InvalidArgument, "takes no query parameters"},
		{fmt.Sprintf("/api/v1/entries/%d", size), 400, codes.OutOfRange, "beyond the log's size"},
		{"/api/v1/entries/", 404, codes.NotFound, "no API route"},
		{"/api/v1/proofs/inclusion", 400, codes.InvalidArgument, "GetInclusionProofRequest.leaf: unset"},
		{"/api/v1/proofs/inclusion?index=0&leafHash=" + hash, 400, codes.InvalidArgument, "GetInclusionProofRequest.leaf: both index and leaf_hash given"},
		{"/api/v1/proofs/inclusion?leafHash=" + hash[:62], 400, codes.InvalidArgument, "GetInclusionProofRequest.leaf_hash: 31 bytes, want 32"},
		{"/api/v1/proofs/inclusion?leafHash=" + hash + "ab", 400, codes.InvalidArgument, "GetInclusionProofRequest.leaf_hash: 33 bytes"},
		{"/api/v1/proofs/inclusion?leafHash=%%%", 400, codes.InvalidArgument, "query string"},
		{"/api/v1/proofs/inclusion?leafHash=not*base64", 400, codes.InvalidArgument, "GetInclusionProofRequest.leaf_hash: \"not*base64\", want hex, or standard or URL-safe base64"},
		{"/api/v1/proofs/inclusion?leafHash=" + hash, 404, codes.NotFound, "leaf hash"},
		{fmt.Sprintf("/api/v1/proofs/inclusion?index=%d", size), 400, codes.OutOfRange, ""},
		{fmt.Sprintf("/api/v1/proofs/inclusion?index=0&treeSize=%d", size+1), 400, codes.OutOfRange, ""},
		{"/api/v1/proofs/consistency?fromSize=3&toSize=2", 400, codes.InvalidArgument, "GetConsistencyProofRequest.from_size: 3, want <= to_size 2"},
		{fmt.Sprintf("/api/v1/proofs/consistency?fromSize=1&toSize=%d", size+1), 400, codes.OutOfRange, ""},
		{"/api/v1/search", 400, codes.InvalidArgument, "SearchRequest.key: unset"},
		{"/api/v1/search?digest=sha256:abc", 400, codes.InvalidArgument, "SearchRequest.digest"},
		{"/api/v1/search?digest=" + a.artifact.String() + "&builderId=b", 400, codes.InvalidArgument, "SearchRequest.key: both"},
		{"/api/v1/search?digest=" + a.artifact.String() + "&pageToken=garbage", 400, codes.InvalidArgument, "SearchRequest.page_token: malformed"},
		{"/api/v1/search?digest=" + a.artifact.String() + "&pageToken=-5", 400, codes.InvalidArgument, "SearchRequest.page_token: malformed"},
		{"/api/v1/search?digest=" + a.artifact.String() + "&pageSize=1001", 400, codes.InvalidArgument, "SearchRequest.page_size: 1001"},
		{"/api/v1/search?digest=" + a.artifact.String() + "&pageSize=4294967296", 400, codes.InvalidArgument, "SearchRequest.page_size"},
		{"/api/v1/search?signerKeyId=ABC", 400, codes.InvalidArgument, "SearchRequest.signer_key_id"},
		{"/api/v1/search?builderId=%ff", 400, codes.InvalidArgument, `SearchRequest.builder_id: "\xff", want UTF-8 text`},
		{"/api/v1/search?%ff=1", 400, codes.InvalidArgument, "query parameter"},
		{"/api/v1/search?builderId=" + strings.Repeat("b", maxSearchValue+1), 400, codes.InvalidArgument, "SearchRequest.key: 1025 bytes"},
		{"/api/v1/search?builderId=" + strings.Repeat("b", maxAPIQuery), 400, codes.InvalidArgument, "query string: 4106 bytes, want <= 4096"},
		{"/api/v1/proof-bundle", 400, codes.InvalidArgument, "GetProofBundleRequest.leaf: unset"},
		{"/api/v1/proof-bundle?leafHash=AQID", 400, codes.InvalidArgument, "GetProofBundleRequest.leaf_hash: 3 bytes"},
		{"/api/v1/proof-bundle?leafHash=abab", 400, codes.InvalidArgument, "GetProofBundleRequest.leaf_hash: 2 bytes"},
		{fmt.Sprintf("/api/v1/proof-bundle?index=%d", size), 400, codes.OutOfRange, ""},
		{"/api/v1/proof-bundle?leafHash=" + hash, 404, codes.NotFound, ""},
		{"/api/v1/nothing", 404, codes.NotFound, "no API route /api/v1/nothing"},
		{"/api/v1/", 404, codes.NotFound, "no API route"},
	} {
		code, h, body := apiGet(t, a.url, tc.path)
		var st spb.Status
		if err := protojson.Unmarshal(body, &st); err != nil {
			t.Errorf("GET %s: %d, body not a google.rpc.Status: %v\n%s", tc.path, code, err, body)
			continue
		}
		if code != tc.http || codes.Code(st.Code) != tc.code || !strings.Contains(st.Message, tc.says) || h.Get("Content-Type") != "application/json" {
			t.Errorf("GET %s: %d %v %q; want %d %v saying %q", tc.path, code, codes.Code(st.Code), st.Message, tc.http, tc.code, tc.says)
		}
	}
	// No writes under /api/v1/.
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		req, _ := http.NewRequest(m, a.url+"/api/v1/entries?start=0&count=1", strings.NewReader("x"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("%s /api/v1/entries: %d, want 405", m, resp.StatusCode)
		}
	}
}

// TestAPIErrorMapping: the log's errors reach JSON clients as gRPC codes
// under grpc-gateway's HTTP statuses; internal errors keep their text.
func TestAPIErrorMapping(t *testing.T) {
	for _, tc := range []struct {
		err        error
		http       int
		code       codes.Code
		retryAfter bool
	}{
		{fmt.Errorf("stopping: %w", log.ErrUnavailable), 503, codes.Unavailable, true},
		{fmt.Errorf("%w: size 9", log.ErrOutOfRange), 400, codes.OutOfRange, false},
		{fmt.Errorf("%w: hash", log.ErrNotFound), 404, codes.NotFound, false},
		{fmt.Errorf("queue: %w", log.ErrPushback), 429, codes.ResourceExhausted, true},
		{fmt.Errorf("%w: no", log.ErrPermissionDenied), 403, codes.PermissionDenied, false},
		{fmt.Errorf("%w: state", log.ErrFailedPrecondition), 400, codes.FailedPrecondition, false},
		{fmt.Errorf("waiting: %w", context.DeadlineExceeded), 504, codes.DeadlineExceeded, false},
		{fmt.Errorf("pebble: secret internals"), 500, codes.Internal, false},
	} {
		t.Run(tc.code.String(), func(t *testing.T) {
			f := newFakeLog(10)
			f.err = tc.err
			srv := httptest.NewServer(HTTPHandler(f, nil))
			defer srv.Close()
			for _, path := range []string{"/api/v1/entries?start=0&count=1", "/api/v1/proofs/inclusion?index=1", "/api/v1/proofs/consistency?fromSize=1",
				"/api/v1/search?builderId=b", "/api/v1/proof-bundle?index=1"} {
				code, h, body := apiGet(t, srv.URL, path)
				var st spb.Status
				if err := protojson.Unmarshal(body, &st); err != nil {
					t.Fatalf("%s: %v\n%s", path, err, body)
				}
				if code != tc.http || codes.Code(st.Code) != tc.code || (h.Get("Retry-After") != "") != tc.retryAfter {
					t.Errorf("%s: %d %v, Retry-After %q; want %d %v", path, code, codes.Code(st.Code), h.Get("Retry-After"), tc.http, tc.code)
				}
				if tc.code == codes.Internal && (st.Message != "internal error" || strings.Contains(string(body), "pebble")) {
					t.Errorf("%s: an internal error's text reached the client: %s", path, body)
				}
			}
		})
	}
	// No checkpoint yet: Unavailable, as over gRPC.
	f := newFakeLog(0)
	f.cp = log.Checkpoint{}
	srv := httptest.NewServer(HTTPHandler(f, nil))
	defer srv.Close()
	if code, h, body := apiGet(t, srv.URL, "/api/v1/checkpoint"); code != 503 || h.Get("Retry-After") != "1" || !strings.Contains(string(body), `"code":14`) {
		t.Errorf("no checkpoint: %d %s", code, body)
	}
}

// TestAPIStatusOfEveryCode pins httpStatus to grpc-gateway's table.
func TestAPIStatusOfEveryCode(t *testing.T) {
	want := map[codes.Code]int{
		codes.OK: 200, codes.Canceled: 499, codes.Unknown: 500, codes.InvalidArgument: 400, codes.DeadlineExceeded: 504,
		codes.NotFound: 404, codes.AlreadyExists: 409, codes.PermissionDenied: 403, codes.ResourceExhausted: 429,
		codes.FailedPrecondition: 400, codes.Aborted: 409, codes.OutOfRange: 400, codes.Unimplemented: 501,
		codes.Internal: 500, codes.Unavailable: 503, codes.DataLoss: 500, codes.Unauthenticated: 401,
	}
	for c, h := range want {
		if got := httpStatus(c); got != h {
			t.Errorf("%v: %d, want %d", c, got, h)
		}
	}
}

// TestAPIEntriesGathered: a large range is answered with its first part,
// contiguous, up to the response cap (the client continues from there);
// a range of small entries gets the RPC's maxGetEntries.
func TestAPIEntriesGathered(t *testing.T) {
	f := newFakeLog(4096)
	f.entrySize = 64 << 10
	srv := httptest.NewServer(HTTPHandler(f, nil))
	defer srv.Close()
	var resp provlogv1.GetEntriesResponse
	getJSON(t, srv.URL, "/api/v1/entries?start=10&count=1024", &resp)
	n := len(resp.Entries)
	if resp.Start != 10 || n < maxAPIEntryBytes/f.entrySize || n*f.entrySize > maxAPIEntryBytes+chunkBytes+f.entrySize || n >= 1024 {
		t.Fatalf("start %d, %d entries of %d bytes; want the first %d bytes or so", resp.Start, n, f.entrySize, maxAPIEntryBytes)
	}
	for i, e := range resp.Entries {
		if !bytes.Equal(e, fakeEntry(uint64(10+i), f.entrySize)) {
			t.Fatalf("entry %d is not entry %d", i, 10+i)
		}
	}
	small := newFakeLog(4096)
	srv2 := httptest.NewServer(HTTPHandler(small, nil))
	defer srv2.Close()
	getJSON(t, srv2.URL, "/api/v1/entries?start=0&count=4096&decode=true", &resp)
	if len(resp.Entries) != maxGetEntries || len(resp.Decoded) != maxGetEntries || resp.Decoded[5].Index != 5 || resp.Decoded[5].DecodeError == "" {
		t.Errorf("%d entries, %d decoded; want %d of each", len(resp.Entries), len(resp.Decoded), maxGetEntries)
	}
}

// apiGatedLog holds every entries read and proof until its gate opens,
// counting the reads working at once.
type apiGatedLog struct{ *gatedLog }

func (g apiGatedLog) Entries(ctx context.Context, start, count uint64, fn func(uint64, []byte) error) error {
	g.hold(ctx)
	return g.fakeLog.Entries(ctx, start, count, fn)
}

func (g apiGatedLog) InclusionProof(ctx context.Context, index, size uint64) ([][]byte, error) {
	g.hold(ctx)
	return g.fakeLog.InclusionProof(ctx, index, size)
}

// TestAPIReadSlots: API reads share the tile reads' bound.
func TestAPIReadSlots(t *testing.T) {
	g := apiGatedLog{&gatedLog{fakeLog: newFakeLog(100), gate: make(chan struct{})}}
	var opened atomic.Bool
	open := func() {
		if opened.CompareAndSwap(false, true) {
			close(g.gate)
		}
	}
	t.Cleanup(open)
	srv := httptest.NewServer(HTTPHandler(g, nil, WithReadConcurrency(2)))
	t.Cleanup(srv.Close)
	paths := []string{"/api/v1/entries?start=0&count=1", "/api/v1/proofs/inclusion?index=1", "/tile/0/000", "/api/v1/entries/3", "/api/v1/proofs/inclusion?index=2&treeSize=9"}
	errs := make(chan error, len(paths))
	for _, p := range paths {
		go func() {
			resp, err := http.Get(srv.URL + p)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("%s: %d", p, resp.StatusCode)
				}
			}
			errs <- err
		}()
	}
	deadline := time.Now().Add(time.Minute)
	for g.working.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	if n := g.working.Load(); n != 2 {
		t.Errorf("%d reads working at once, want the bound of 2", n)
	}
	open()
	for range paths {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if m := g.most.Load(); m != 2 {
		t.Errorf("at most %d reads worked at once, want 2", m)
	}
}

// FuzzAPIQuery: any query string for any request either sets the request
// or is refused with InvalidArgument, and the refusal is valid JSON.
func FuzzAPIQuery(f *testing.F) {
	for _, s := range []string{"start=0&count=1", "leafHash=" + strings.Repeat("ab", 32), "index=1&leaf_hash=AAAA", "digest=sha256:00&pageToken=x", "%ff=%fe", "a=1;b=2", "decode=true&decode=false"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		for _, req := range []proto.Message{&provlogv1.GetEntriesRequest{}, &provlogv1.GetInclusionProofRequest{}, &provlogv1.SearchRequest{}, &provlogv1.GetProofBundleRequest{}} {
			err := requestFromQuery(req, q)
			if err == nil {
				if _, err := proto.Marshal(req); err != nil {
					t.Fatalf("%q set an invalid %T: %v", q, req, err)
				}
				continue
			}
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("%q: %v, want InvalidArgument", q, err)
			}
			rec := httptest.NewRecorder()
			writeAPIError(rec, err)
			var st spb.Status
			if rec.Code != 400 || protojson.Unmarshal(rec.Body.Bytes(), &st) != nil {
				t.Fatalf("%q: %d %s", q, rec.Code, rec.Body)
			}
		}
	})
}

// TestAPIRoutePattern: the request's Pattern, which the HTTP metrics use
// as their route label, names the API route that served it (a bounded
// set), not the one mount point.
func TestAPIRoutePattern(t *testing.T) {
	h := HTTPHandler(newFakeLog(10), nil)
	for path, want := range map[string]string{
		"/api/v1/entries/3":                 "GET /api/v1/entries/{index}",
		"/api/v1/proofs/inclusion?index=1":  "GET /api/v1/proofs/inclusion",
		"/api/v1/no/such/route?with=params": "/api/v1/",
	} {
		r := httptest.NewRequest(http.MethodGet, path, nil)
		h.ServeHTTP(httptest.NewRecorder(), r)
		if r.Pattern != want {
			t.Errorf("GET %s: pattern %q, want %q", path, r.Pattern, want)
		}
	}
}

// TestAPIDecodedTrustEvents: the genesis keyring decodes with its keys'
// ids and roles, and search by trust_events lists it.
func TestAPIDecodedTrustEvents(t *testing.T) {
	a := newAPILog(t)
	var resp provlogv1.GetEntriesResponse
	getJSON(t, a.url, "/api/v1/entries/0", &resp)
	if len(resp.Decoded) != 1 {
		t.Fatalf("entry 0: %v", &resp)
	}
	d := resp.Decoded[0]
	kp := d.GetKeyring()
	if d.EventType != event.TypeKeyring || kp == nil || len(kp.Keys) == 0 || kp.AdminThreshold != 0 {
		t.Fatalf("genesis keyring: %v", d)
	}
	if !slices.ContainsFunc(kp.Keys, func(k *provlogv1.KeyringPredicate_Key) bool { return k.Name == "alice" && k.KeyId == a.keyID("alice") }) {
		t.Errorf("genesis keys %v lack alice's id", kp.Keys)
	}
	var sr provlogv1.SearchResponse
	getJSON(t, a.url, "/api/v1/search?trustEvents=true", &sr)
	if len(sr.Results) != 1 || sr.Results[0].Index != 0 || sr.Results[0].EventType != event.TypeKeyring {
		t.Errorf("search trustEvents: %v", &sr)
	}
	if code, _, _ := apiGet(t, a.url, "/api/v1/search?trustEvents=false"); code != 400 {
		t.Errorf("search trustEvents=false: %d, want 400", code)
	}
}
