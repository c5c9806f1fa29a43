package integration

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	pb "github.com/provlog/provlog/proto/provlog/v1"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc/codes"
)

// logState is what a rejected request must leave unchanged: the checkpoint
// and the entry bundles.
type logState struct {
	size    uint64
	root    []byte
	bundles [][]byte
}

func readLogState(ctx context.Context, d *provlogd, v note.Verifier) (logState, error) {
	cp, err := fetchCheckpoint(ctx, d.HTTPURL, v)
	if err != nil {
		return logState{}, err
	}
	bundles, err := fetchAll(ctx, d.HTTPURL, bundlesForSize(cp.Size))
	if err != nil {
		return logState{}, err
	}
	// Nothing may be served beyond the tree either.
	next := tileRef{Entries: true, Index: cp.Size / 256, Width: int(cp.Size%256) + 1}
	if code, _, _, err := httpGet(ctx, d.HTTPURL+next.Path()); err != nil {
		return logState{}, err
	} else if code != http.StatusNotFound {
		return logState{}, fmt.Errorf("GET %s beyond the tree of size %d: status %d, want 404", next.Path(), cp.Size, code)
	}
	return logState{size: cp.Size, root: cp.Root, bundles: bundles}, nil
}

// TestRejectionsWriteNothing sends invalid requests of every kind to a
// fresh provlogd and checks that each fails with the right code and leaves
// the checkpoint and the entry bundles unchanged.
func TestRejectionsWriteNothing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const maxEntry = 1024
	dataDir := t.TempDir()
	d := mustStartProvlogd(t, dataDir, "--origin", testOrigin, "--max-entry-size", strconv.Itoa(maxEntry))
	v := checkKeyFiles(t, d, testOrigin)

	// 300 entries: one full bundle and a partial one of 44.
	seed := makeEntries(1_000_000, 300)
	res, err := d.Log.AppendBatch(ctx, &pb.AppendBatchRequest{Entries: seed})
	if err != nil {
		t.Fatalf("AppendBatch of 300 entries: %v", err)
	}
	for i, r := range res.Results {
		if r.Duplicate || r.Index >= 300 {
			t.Fatalf("AppendBatch result %d = %+v, want a new index below 300", i, r)
		}
	}
	before, err := readLogState(ctx, d, v)
	if err != nil {
		t.Fatal(err)
	}
	if before.size != 300 {
		t.Fatalf("checkpoint size %d after appending 300 entries", before.size)
	}
	fresh := makeEntry(2_000_000) // a valid entry never logged
	tooBig := bytes.Repeat([]byte{'x'}, maxEntry+1)
	huge := bytes.Repeat([]byte{'y'}, 70_000)
	unknownLeaf := hasher.HashLeaf([]byte("never logged"))
	if len(makeEntry(0)) > maxEntry {
		t.Fatal("test entries exceed the entry cap")
	}

	unchanged := func(t *testing.T) {
		t.Helper()
		after, err := readLogState(ctx, d, v)
		if err != nil {
			t.Fatal(err)
		}
		if after.size != before.size || !bytes.Equal(after.root, before.root) {
			t.Fatalf("checkpoint changed from size %d root %x to size %d root %x", before.size, before.root, after.size, after.root)
		}
		for i := range after.bundles {
			if !bytes.Equal(after.bundles[i], before.bundles[i]) {
				t.Fatalf("entry bundle %d changed", i)
			}
		}
	}
	wantCode := func(t *testing.T, err error, want ...codes.Code) {
		t.Helper()
		got := grpcCode(err)
		for _, w := range want {
			if got == w {
				return
			}
		}
		t.Errorf("got %v (%v), want %v", got, err, want)
	}

	grpcCases := []struct {
		name string
		call func() error
		want []codes.Code
	}{
		{"Append/empty", func() error {
			_, err := d.Log.Append(ctx, &pb.AppendRequest{})
			return err
		}, []codes.Code{codes.InvalidArgument}},
		{"Append/over-cap", func() error {
			_, err := d.Log.Append(ctx, &pb.AppendRequest{Entry: tooBig})
			return err
		}, []codes.Code{codes.InvalidArgument}},
		{"Append/over-bundle-limit", func() error {
			_, err := d.Log.Append(ctx, &pb.AppendRequest{Entry: huge})
			return err
		}, []codes.Code{codes.InvalidArgument}},
		{"AppendBatch/no-entries", func() error {
			_, err := d.Log.AppendBatch(ctx, &pb.AppendBatchRequest{})
			return err
		}, []codes.Code{codes.InvalidArgument}},
		{"AppendBatch/valid-and-empty", func() error {
			_, err := d.Log.AppendBatch(ctx, &pb.AppendBatchRequest{Entries: [][]byte{fresh, {}}})
			return err
		}, []codes.Code{codes.InvalidArgument}},
		{"AppendBatch/valid-and-over-cap", func() error {
			_, err := d.Log.AppendBatch(ctx, &pb.AppendBatchRequest{Entries: [][]byte{fresh, tooBig}})
			return err
		}, []codes.Code{codes.InvalidArgument}},
		{"AppendStream/valid-and-empty", func() error {
			st, err := d.Log.AppendStream(ctx)
			if err != nil {
				return err
			}
			st.Send(&pb.AppendBatchRequest{Entries: [][]byte{fresh, {}}})
			st.CloseSend()
			for {
				if _, err := st.Recv(); err != nil {
					return err
				}
			}
		}, []codes.Code{codes.InvalidArgument}},
		{"GetInclusionProof/index-at-size", func() error {
			_, err := d.Log.GetInclusionProof(ctx, &pb.GetInclusionProofRequest{Leaf: &pb.GetInclusionProofRequest_Index{Index: 300}})
			return err
		}, []codes.Code{codes.OutOfRange}},
		{"GetInclusionProof/index-beyond-size", func() error {
			_, err := d.Log.GetInclusionProof(ctx, &pb.GetInclusionProofRequest{Leaf: &pb.GetInclusionProofRequest_Index{Index: 1 << 40}})
			return err
		}, []codes.Code{codes.OutOfRange}},
		{"GetInclusionProof/tree-size-beyond-tree", func() error {
			_, err := d.Log.GetInclusionProof(ctx, &pb.GetInclusionProofRequest{Leaf: &pb.GetInclusionProofRequest_Index{Index: 0}, TreeSize: 301})
			return err
		}, []codes.Code{codes.OutOfRange}},
		{"GetInclusionProof/index-at-tree-size", func() error {
			_, err := d.Log.GetInclusionProof(ctx, &pb.GetInclusionProofRequest{Leaf: &pb.GetInclusionProofRequest_Index{Index: 5}, TreeSize: 5})
			return err
		}, []codes.Code{codes.OutOfRange, codes.InvalidArgument}},
		{"GetInclusionProof/unknown-leaf-hash", func() error {
			_, err := d.Log.GetInclusionProof(ctx, &pb.GetInclusionProofRequest{Leaf: &pb.GetInclusionProofRequest_LeafHash{LeafHash: unknownLeaf}})
			return err
		}, []codes.Code{codes.NotFound}},
		{"GetInclusionProof/short-leaf-hash", func() error {
			_, err := d.Log.GetInclusionProof(ctx, &pb.GetInclusionProofRequest{Leaf: &pb.GetInclusionProofRequest_LeafHash{LeafHash: unknownLeaf[:31]}})
			return err
		}, []codes.Code{codes.InvalidArgument}},
		{"GetConsistencyProof/from-after-to", func() error {
			_, err := d.Log.GetConsistencyProof(ctx, &pb.GetConsistencyProofRequest{FromSize: 200, ToSize: 100})
			return err
		}, []codes.Code{codes.OutOfRange, codes.InvalidArgument}},
		{"GetConsistencyProof/from-after-latest", func() error {
			_, err := d.Log.GetConsistencyProof(ctx, &pb.GetConsistencyProofRequest{FromSize: 301})
			return err
		}, []codes.Code{codes.OutOfRange, codes.InvalidArgument}},
		{"GetConsistencyProof/to-beyond-tree", func() error {
			_, err := d.Log.GetConsistencyProof(ctx, &pb.GetConsistencyProofRequest{FromSize: 100, ToSize: 301})
			return err
		}, []codes.Code{codes.OutOfRange}},
		{"GetEntries/beyond-tree", func() error {
			_, err := getEntries(ctx, d, 299, 2)
			return err
		}, []codes.Code{codes.OutOfRange}},
		{"GetEntries/start-at-size", func() error {
			_, err := getEntries(ctx, d, 300, 1)
			return err
		}, []codes.Code{codes.OutOfRange}},
	}
	for _, c := range grpcCases {
		t.Run("grpc/"+c.name, func(t *testing.T) {
			wantCode(t, c.call(), c.want...)
			unchanged(t)
		})
	}

	postCases := []struct {
		name string
		body []byte
		want int
	}{
		{"empty", nil, http.StatusBadRequest},
		{"over-cap", tooBig, http.StatusRequestEntityTooLarge},
		{"over-bundle-limit", huge, http.StatusRequestEntityTooLarge},
	}
	for _, c := range postCases {
		t.Run("http/add/"+c.name, func(t *testing.T) {
			code, body, _, err := httpPost(ctx, d.HTTPURL+"add", c.body)
			if err != nil {
				t.Fatal(err)
			}
			if code != c.want {
				t.Errorf("POST /add with %d bytes: status %d (%q), want %d", len(c.body), code, firstLine(body), c.want)
			}
			// ARCHITECTURE: "4xx with a one-line reason for bad input".
			if reason := strings.TrimSuffix(string(body), "\n"); reason == "" || strings.Contains(reason, "\n") {
				t.Errorf("POST /add with %d bytes: body %q, want a one-line reason", len(c.body), body)
			}
			unchanged(t)
		})
	}

	// Malformed tile paths, and well-formed ones naming nothing in the
	// tree: nothing is served and nothing changes.
	badPaths := []string{
		"tile/0/1", "tile/0/0001", "tile/0/00a", "tile/0/x000", "tile/0/x001",
		"tile/0/x000/001", "tile/0/001/", "tile/0//001", "tile/00/000", "tile/64/000",
		"tile/-1/000", "tile/a/000", "tile/0/000.p/0", "tile/0/000.p/256", "tile/0/000.p/07",
		"tile/0/000.p/", "tile/0/000.p/-1", "tile/0/000.p/1/2", "tile/0", "tile/",
		"tile/entries/1", "tile/entries/x000/001", "tile/entries/001.p/0", "tile/entries/000.p/256",
		"tile/entries/", "tile/entries/abc",
		"tile/0/002", "tile/0/001", "tile/0/001.p/45", "tile/1/000", "tile/1/000.p/2",
		"tile/2/000.p/1", "tile/entries/001", "tile/entries/001.p/45", "tile/entries/x001/000",
	}
	for _, p := range badPaths {
		t.Run("http/get/"+p, func(t *testing.T) {
			checkStatus(ctx, t, d.HTTPURL+p, http.StatusBadRequest, http.StatusNotFound)
			unchanged(t)
		})
	}
	d.mustStop(t)
}

// TestHTTPAdd adds entries with POST /add and checks the indices, their
// deduplication (also against gRPC Append), what the tiles serve, and
// /metrics.
func TestHTTPAdd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dataDir := t.TempDir()
	d := mustStartProvlogd(t, dataDir) // default origin
	v := checkKeyFiles(t, d, "localhost/provlog")

	add := func(d *provlogd, body []byte) uint64 {
		t.Helper()
		code, resp, _, err := httpPost(ctx, d.HTTPURL+"add", body)
		if err != nil {
			t.Fatal(err)
		}
		if code != http.StatusOK {
			t.Fatalf("POST /add: status %d (%q), want 200", code, firstLine(resp))
		}
		s := strings.TrimSuffix(string(resp), "\n")
		idx, err := strconv.ParseUint(s, 10, 64)
		if err != nil || strconv.FormatUint(idx, 10) != s {
			t.Fatalf("POST /add: body %q, want a decimal index", resp)
		}
		return idx
	}
	entries := makeEntries(3_000_000, 5)
	for i, e := range entries {
		if got := add(d, e); got != uint64(i) {
			t.Errorf("POST /add of new entry %d to a log of size %d = index %d", i, i, got)
		}
	}
	if got := add(d, entries[2]); got != 2 {
		t.Errorf("POST /add of the entry at index 2 again = index %d, want 2", got)
	}
	res, err := d.Log.Append(ctx, &pb.AppendRequest{Entry: entries[3]})
	if err != nil {
		t.Fatal(err)
	}
	if res.Index != 3 || !res.Duplicate {
		t.Errorf("gRPC Append of the entry added at index 3 over HTTP = index %d, duplicate %v; want 3, true", res.Index, res.Duplicate)
	}

	cp, err := fetchCheckpoint(ctx, d.HTTPURL, v)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size != 5 {
		t.Fatalf("checkpoint size %d after adding 5 distinct entries", cp.Size)
	}
	hs, err := newHashStore(entries)
	if err != nil {
		t.Fatal(err)
	}
	if root, _ := hs.treeHash(5); !bytes.Equal(root, cp.Root) {
		t.Errorf("checkpoint root %x, want %x", cp.Root, root)
	}
	for _, ref := range []tileRef{{Entries: true, Index: 0, Width: 5}, {Level: 0, Index: 0, Width: 5}} {
		code, body, hdr, err := httpGet(ctx, d.HTTPURL+ref.Path())
		if err != nil {
			t.Fatal(err)
		}
		if code != http.StatusOK {
			t.Fatalf("GET %s: status %d", ref.Path(), code)
		}
		// tlog-tiles: "with Content-Type: application/octet-stream".
		if ct := hdr.Get("Content-Type"); ct != "application/octet-stream" {
			t.Errorf("GET %s: Content-Type %q, want application/octet-stream", ref.Path(), ct)
		}
		if ref.Entries {
			got, err := parseBundle(body)
			if err != nil {
				t.Fatal(err)
			}
			if err := equalEntries(0, got, entries); err != nil {
				t.Errorf("GET %s: %v", ref.Path(), err)
			}
		} else if want, _ := hs.tileData(ref); !bytes.Equal(body, want) {
			t.Errorf("GET %s: %x, want %x", ref.Path(), body, want)
		}
	}

	code, body, _, err := httpGet(ctx, d.HTTPURL+"metrics")
	if err != nil {
		t.Fatal(err)
	}
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: status %d", code)
	}
	var samples int
	for line := range strings.Lines(string(body)) {
		if strings.HasPrefix(line, "provlog_") {
			samples++
		}
	}
	if samples == 0 {
		t.Errorf("GET /metrics: no provlog_ samples in %d bytes:\n%.2000s", len(body), body)
	}
	checkStatus(ctx, t, d.HTTPURL+"healthz", http.StatusOK)
	d.mustStop(t)

	// The data survives a restart, which must not change the log.
	d2 := mustStartProvlogd(t, dataDir)
	cp2, err := fetchCheckpoint(ctx, d2.HTTPURL, v)
	if err != nil {
		t.Fatal(err)
	}
	if cp2.Size != cp.Size || !bytes.Equal(cp2.Root, cp.Root) {
		t.Errorf("after restart: checkpoint size %d root %x, want %d %x", cp2.Size, cp2.Root, cp.Size, cp.Root)
	}
	if got := add(d2, entries[4]); got != 4 {
		t.Errorf("POST /add after restart of the entry at index 4 = index %d", got)
	}
	d2.mustStop(t)
}
