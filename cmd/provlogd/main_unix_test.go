//go:build unix

package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

// A start goes: bind both ports (nothing written yet, connections
// refused) -> write the key, its verifier key, the keyring and the store
// (connections still refused) -> listen and serve. So a client that can
// connect finds log.pub complete (issue 18, item 2), and a busy port
// fails before anything is written (item 9).
func TestStartOrder(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	var grpcAddr, httpAddr string
	var steps []string
	testHookReserved = func(g, h net.Addr) {
		steps = append(steps, "reserved")
		grpcAddr, httpAddr = g.String(), h.String()
		if _, err := os.Stat(data); !os.IsNotExist(err) {
			t.Errorf("ports bound, and the data directory exists already (%v)", err)
		}
		for _, a := range []string{grpcAddr, httpAddr} {
			if err := dialErr(a); !isRefused(err) {
				t.Errorf("reserved %s: dial %v, want connection refused", a, err)
			}
		}
	}
	testHookPrepared = func() {
		steps = append(steps, "prepared")
		pub, err := os.ReadFile(filepath.Join(data, "log.pub"))
		if err != nil {
			t.Errorf("log prepared, but %v", err)
		} else if _, err := note.NewVerifier(strings.TrimSpace(string(pub))); err != nil {
			t.Errorf("log.pub %q: %v", pub, err)
		}
		for _, name := range []string{"log.key", "keyring.json", "db"} {
			if _, err := os.Stat(filepath.Join(data, name)); err != nil {
				t.Errorf("log prepared, but %v", err)
			}
		}
		for _, a := range []string{grpcAddr, httpAddr} {
			if err := dialErr(a); !isRefused(err) {
				t.Errorf("before serving, %s: dial %v, want connection refused", a, err)
			}
		}
	}
	t.Cleanup(func() { testHookReserved, testHookPrepared = nil, nil })

	r := start(t, testConfig(t, data))
	if strings.Join(steps, ",") != "reserved,prepared" {
		t.Fatalf("steps %v, want reserved then prepared", steps)
	}
	if r.GRPCAddr != grpcAddr || r.HTTPURL != "http://"+httpAddr+"/" {
		t.Errorf("serving on %s and %s, reserved %s and %s", r.GRPCAddr, r.HTTPURL, grpcAddr, httpAddr)
	}
	for _, a := range []string{grpcAddr, httpAddr} {
		if err := dialErr(a); err != nil {
			t.Errorf("serving, but %s: dial %v", a, err)
		}
	}
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
}
