package client_test

import (
	"context"
	"fmt"
	"log"
	"path/filepath"

	"github.com/provlog/provlog/client"
)

// Each example runs against a fresh provlogd (exampleLog), whose gRPC
// address, tlog-tiles URL and verifier key it prints on start.

func ExampleClient_Append() {
	srv := exampleLog()
	ctx := context.Background()

	c, err := client.Dial(ctx, srv.GRPCAddr, client.Config{
		VerifierKey: srv.VerifierKey, // the contents of DATA/log.pub
		Plaintext:   true,            // a loopback address; use TLS otherwise
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	entry := []byte("hello, log")
	res, err := c.Append(ctx, entry)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("index", res.Index, "duplicate", res.Duplicate)

	// The same bytes again get the same index.
	res, err = c.Append(ctx, entry)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("index", res.Index, "duplicate", res.Duplicate)

	// Prove it: a checkpoint signed by the log, and an inclusion proof.
	cp, err := c.VerifyInclusion(ctx, entry, res.Index)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("included in the tree of size", cp.Size)
	// Output:
	// index 0 duplicate false
	// index 0 duplicate true
	// included in the tree of size 1
}

func ExampleClient_AppendMany() {
	srv := exampleLog()
	ctx := context.Background()
	c, err := client.Dial(ctx, srv.GRPCAddr, client.Config{VerifierKey: srv.VerifierKey, Plaintext: true})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	var entries [][]byte
	for i := range 10000 {
		entries = append(entries, fmt.Appendf(nil, "event %d", i))
	}
	results, err := c.AppendMany(ctx, entries)
	if err != nil {
		log.Fatal(err)
	}
	last := results[len(results)-1]
	cp, err := c.WaitForInclusion(ctx, last.Index)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(results), "entries; checkpoint size", cp.Size)
	// Output:
	// 10000 entries; checkpoint size 10000
}

func ExampleVerifyBundle() {
	srv := exampleLog()
	ctx := context.Background()
	c, err := client.Dial(ctx, srv.GRPCAddr, client.Config{VerifierKey: srv.VerifierKey, Plaintext: true})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	for _, e := range []string{"build a", "build b", "build c"} {
		if _, err := c.Append(ctx, []byte(e)); err != nil {
			log.Fatal(err)
		}
	}

	// The pipeline keeps the bundle (a .tlog-proof file) beside the artifact.
	bundle, err := c.ProofBundle(ctx, 1)
	if err != nil {
		log.Fatal(err)
	}

	// Later, offline, anyone with the log's verifier key can check it.
	vb, err := client.VerifyBundle(bundle, srv.VerifierKey, client.VerifyOptions{
		Entry: []byte("build b"), // optional: the entry we expect
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("entry %q is at index %d of %s\n", vb.Entry, vb.Index, vb.Checkpoint.Origin)
	// Output:
	// entry "build b" is at index 1 of localhost/provlog
}

func ExampleMonitor() {
	srv := exampleLog()
	ctx := context.Background()

	// Any tlog-tiles log can be monitored through its HTTP URL.
	m, err := client.NewMonitor(client.MonitorConfig{
		VerifierKey: srv.VerifierKey,
		TilesURL:    srv.HTTPURL,
		StateFile:   filepath.Join(srv.DataDir, "monitor-state"),
	})
	if err != nil {
		log.Fatal(err)
	}
	c, err := client.Dial(ctx, srv.GRPCAddr, client.Config{VerifierKey: srv.VerifierKey, Plaintext: true})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	for _, e := range []string{"one", "two", "three"} {
		if _, err := c.Append(ctx, []byte(e)); err != nil {
			log.Fatal(err)
		}
		// Poll proves the new checkpoint consistent with the stored one
		// before storing it; a fork is an *InconsistencyError. (Run polls
		// in a loop.)
		cp, err := m.Poll(ctx)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("verified size", cp.Size)
	}
	// Output:
	// verified size 1
	// verified size 2
	// verified size 3
}

func ExampleAudit() {
	srv := exampleLog()
	ctx := context.Background()
	c, err := client.Dial(ctx, srv.GRPCAddr, client.Config{VerifierKey: srv.VerifierKey, Plaintext: true})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	var entries [][]byte
	for i := range 1000 {
		entries = append(entries, fmt.Appendf(nil, "entry %d", i))
	}
	if _, err := c.AppendMany(ctx, entries); err != nil {
		log.Fatal(err)
	}

	sum, err := client.Audit(ctx, srv.HTTPURL, srv.VerifierKey, client.AuditOptions{
		Progress: func(done, total uint64) {
			if done == total {
				fmt.Printf("replayed %d/%d\n", done, total)
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(sum.Entries, "entries,", sum.Bundles, "bundles,", sum.Tiles, "hash tiles match the signed root")
	// Output:
	// replayed 1000/1000
	// 1000 entries, 4 bundles, 5 hash tiles match the signed root
}

func ExampleClient_Search() {
	ctx := context.Background()
	c, err := client.Dial(ctx, "127.0.0.1:7400", client.Config{VerifierKey: "localhost/provlog+1f2e3d4c+AXm...", Plaintext: true})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	for r, err := range c.Search(ctx, client.SearchKey{Digest: "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}) {
		if err != nil {
			log.Fatal(err)
		}
		// Search results are the log's claims; prove each one.
		if _, err := c.VerifyInclusion(ctx, r.Entry, r.Index); err != nil {
			log.Fatal(err)
		}
		fmt.Println(r.Index, r.EventType)
	}
}
