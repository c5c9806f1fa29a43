package server

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/transparency-dev/tessera/api/layout"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/provlog/provlog/log"
	provlogv1 "github.com/provlog/provlog/proto/provlog/v1"
	"github.com/provlog/provlog/storage"
)

// benchServer serves a real log of size 1 KiB entries over gRPC and HTTP
// on loopback TCP, as provlogd does.
// benchEntry is entry i of the benchmark logs: its index, then random
// bytes (zeros would compress to nothing and flatter entry bundles), 1 KiB.
func benchEntry(i int) []byte {
	e := binary.BigEndian.AppendUint64(make([]byte, 0, 1024), uint64(i))
	r := mrand.New(mrand.NewPCG(uint64(i), 0x62656e6368))
	for len(e) < 1024 {
		e = binary.LittleEndian.AppendUint64(e, r.Uint64())
	}
	return e
}

// jsonBenchEntry is entry i of a log of entries that compress about as
// DSSE envelopes do (JSON around base64), 1 KiB.
func jsonBenchEntry(i int) []byte {
	r := mrand.New(mrand.NewPCG(uint64(i), 0x6a736f6e))
	payload := make([]byte, 600)
	for j := range payload {
		payload[j] = "abcdefghijklmnopqrstuvwxyz0123456789"[r.IntN(36)]
	}
	e := fmt.Appendf(nil, `{"payloadType":"application/vnd.in-toto+json","payload":"eyJfdHlwZSI6Imh0dHBzOi8vaW4tdG90by5pby9TdGF0ZW1lbnQvdjEi%s","signatures":[{"keyid":"ci-%d","sig":"`, payload, i%7)
	for len(e) < 1022 {
		e = append(e, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[r.IntN(64)])
	}
	return append(e, `"}]}`...)[:1024]
}

func benchServer(b *testing.B, size int) (grpcAddr, httpURL string) {
	return benchServerOf(b, size, benchEntry)
}

// benchServerOf serves a log of size entries made by entry over gRPC and
// HTTP on loopback.
func benchServerOf(b *testing.B, size int, entry func(int) []byte) (grpcAddr, httpURL string) {
	b.Helper()
	st, err := storage.Open(b.TempDir(), storage.Options{})
	if err != nil {
		b.Fatal(err)
	}
	skey, _, _ := note.GenerateKey(rand.Reader, "example.com/bench")
	signer, _ := note.NewSigner(skey)
	l, err := log.Open(context.Background(), log.Config{Origin: "example.com/bench", Signer: signer}, st)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close(); st.Close() })
	for start := 0; start < size; start += 4096 {
		batch := make([][]byte, min(4096, size-start))
		for j := range batch {
			batch[j] = entry(start + j)
		}
		if _, err := l.AddBatch(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	gs := grpc.NewServer(ServerOptions(GRPCConfig{})...)
	RegisterGRPC(gs, l)
	go gs.Serve(gl)
	b.Cleanup(gs.Stop)
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	hs := &http.Server{Handler: HTTPHandler(l, http.NotFoundHandler())}
	go hs.Serve(hl)
	b.Cleanup(func() { hs.Close() })
	return gl.Addr().String(), "http://" + hl.Addr().String()
}

// benchClients opens 4 gRPC connections to addr, as the bench tool does.
func benchClients(b *testing.B, addr string) [4]provlogv1.LogClient {
	var conns [4]provlogv1.LogClient
	for i := range conns {
		cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { cc.Close() })
		conns[i] = provlogv1.NewLogClient(cc)
	}
	return conns
}

// BenchmarkReads measures inclusion proofs over gRPC, full tiles and entry
// bundles over HTTP from a log of 2^20 + 1000 entries of 1 KiB, with 32
// concurrent readers (the bench tool's read load) sharing 4 gRPC
// connections; client and server share the machine.
func BenchmarkReads(b *testing.B) {
	const size = 1<<20 + 1000
	grpcAddr, httpURL := benchServer(b, size)
	b.Run("inclusion-proof", func(b *testing.B) { benchProofs(b, grpcAddr, size) })
	// The bound for any proof server on this gRPC stack: the same calls
	// over the same connections and server options, answered with a
	// prebuilt response of the same shape (a 21-hash proof of a 2^20-entry
	// tree and its checkpoint) by a server that does nothing else.
	b.Run("grpc-bound", func(b *testing.B) {
		resp := &provlogv1.GetInclusionProofResponse{TreeSize: size, Checkpoint: make([]byte, 220)}
		for range 21 {
			resp.Proof = append(resp.Proof, make([]byte, 32))
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		gs := grpc.NewServer(ServerOptions(GRPCConfig{})...)
		provlogv1.RegisterLogServer(gs, constProofs{resp: resp})
		go gs.Serve(l)
		defer gs.Stop()
		benchProofs(b, l.Addr().String(), size)
	})
	b.Run("tile", func(b *testing.B) {
		benchTiles(b, 8192, func(i uint64) string { return httpURL + "/" + layout.TilePath(0, i%(size/256), 0) })
	})
	// Entry bundles as monitors read them (Accept-Encoding: gzip; the
	// client counts the bytes sent, without decompressing them), once each
	// has been read before: what serving a bundle costs in steady state.
	// Of random entries, which do not compress, from the 4,096 full
	// bundles of the log above; then of entries that compress like DSSE
	// envelopes, from a second log as large; beside http.FileServer
	// serving 256 KiB files from disk, the cost of a static file.
	b.Run("entry-bundle", func(b *testing.B) {
		benchBundles(b, size/256, func(i uint64) string { return httpURL + "/" + layout.EntriesPath(i, 0) })
	})
	parent := b
	var jsonURL string // made once, on the first run of the sub-benchmark; closed with parent
	b.Run("entry-bundle-json", func(b *testing.B) {
		if jsonURL == "" {
			_, jsonURL = benchServerOf(parent, 1<<20, jsonBenchEntry)
		}
		benchBundles(b, 4096, func(i uint64) string { return jsonURL + "/" + layout.EntriesPath(i, 0) })
	})
	b.Run("static-file", func(b *testing.B) {
		dir := b.TempDir()
		body := make([]byte, 256*(2+1024))
		for i := range 64 {
			mrand.NewChaCha8([32]byte{byte(i)}).Read(body)
			if err := os.WriteFile(filepath.Join(dir, strconv.Itoa(i)), body, 0o644); err != nil {
				b.Fatal(err)
			}
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		hs := &http.Server{Handler: http.FileServer(http.Dir(dir))}
		go hs.Serve(l)
		defer hs.Close()
		benchBundles(b, 64, func(i uint64) string { return "http://" + l.Addr().String() + "/" + strconv.FormatUint(i, 10) })
	})
	// The bound for any tile server on this HTTP stack: the same requests
	// answered with a constant 8 KiB body from memory.
	b.Run("http-bound", func(b *testing.B) {
		body := make([]byte, 8192)
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			setTileHeaders(w, 0)
			w.Header().Set("Content-Length", "8192")
			w.Write(body)
		})}
		go hs.Serve(l)
		defer hs.Close()
		benchTiles(b, 8192, func(i uint64) string {
			return "http://" + l.Addr().String() + "/" + layout.TilePath(0, i%(size/256), 0)
		})
	})
}

// benchBundles GETs the n resources at url(0..n-1) once, then in a
// scattered order from 32 concurrent readers, as a monitor would with
// Accept-Encoding: gzip and without decompressing, and reports gets/s and
// the bytes sent.
func benchBundles(b *testing.B, n uint64, url func(i uint64) string) {
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1024, DisableCompression: true}}
	get := func(u string) (int64, error) {
		req, _ := http.NewRequest("GET", u, nil)
		req.Header.Set("Accept-Encoding", "gzip")
		resp, err := hc.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		m, err := io.Copy(io.Discard, resp.Body)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("GET %s: %s", u, resp.Status)
		}
		return m, err
	}
	for i := range n {
		if _, err := get(url(i)); err != nil {
			b.Fatal(err)
		}
	}
	var k atomic.Uint64
	var sent atomic.Int64
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m, err := get(url(k.Add(1) * 7919 % n))
			if err != nil {
				b.Error(err)
				return
			}
			sent.Add(m)
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "gets/s")
	b.ReportMetric(float64(sent.Load())/float64(b.N), "bytes/get")
}

// benchTiles GETs resources of want bytes at url(i) from 32 concurrent
// readers.
func benchTiles(b *testing.B, want int64, url func(i uint64) string) {
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1024}}
	var n atomic.Uint64
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			u := url(n.Add(1) * 7919)
			resp, err := hc.Get(u)
			if err != nil {
				b.Error(err)
				return
			}
			m, err := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK || m != want {
				b.Errorf("GET %s: %s, %d bytes, %v", u, resp.Status, m, err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "gets/s")
}

// BenchmarkAppendSingle measures durable single-entry appends of 1 KiB
// over gRPC on loopback TCP from 64 concurrent writers sharing 4
// connections, as the bench tool's single mode does.
func BenchmarkAppendSingle(b *testing.B) {
	grpcAddr, _ := benchServer(b, 0)
	conns := benchClients(b, grpcAddr)
	var n atomic.Uint64
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c := conns[n.Add(1)%uint64(len(conns))]
		entry := make([]byte, 1024)
		for pb.Next() {
			binary.BigEndian.PutUint64(entry, n.Add(1))
			if _, err := c.Append(context.Background(), &provlogv1.AppendRequest{Entry: entry}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}

// benchProofs asks the log at addr for inclusion proofs of scattered
// leaves below size, from 32 concurrent readers on 4 connections, and
// reports proofs/s.
func benchProofs(b *testing.B, addr string, size uint64) {
	conns := benchClients(b, addr)
	var n atomic.Uint64
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c := conns[n.Add(1)%uint64(len(conns))]
		for pb.Next() {
			i := (n.Add(1) * 7919) % size
			r, err := c.GetInclusionProof(context.Background(), &provlogv1.GetInclusionProofRequest{
				Leaf: &provlogv1.GetInclusionProofRequest_Index{Index: i}})
			if err != nil || r.Index != i {
				b.Errorf("GetInclusionProof(%d) = %v, %v", i, r, err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "proofs/s")
}

// constProofs answers every inclusion-proof request with resp.
type constProofs struct {
	provlogv1.UnimplementedLogServer
	resp *provlogv1.GetInclusionProofResponse
}

func (c constProofs) GetInclusionProof(_ context.Context, r *provlogv1.GetInclusionProofRequest) (*provlogv1.GetInclusionProofResponse, error) {
	return &provlogv1.GetInclusionProofResponse{Index: r.GetIndex(), TreeSize: c.resp.TreeSize, Proof: c.resp.Proof, Checkpoint: c.resp.Checkpoint}, nil
}
