// Package integration holds provlog's end-to-end tests. They build the real
// provlogd binary, run it as a child process on a temporary data directory,
// drive it over gRPC and HTTP, stop it with SIGTERM and restart it, and then
// verify everything it served with code independent of provlog's own
// packages: golang.org/x/mod/sumdb/note and sumdb/tlog,
// github.com/transparency-dev/merkle and Tessera's client.
//
// The tests import only provlog's generated gRPC code (proto/provlog/v1).
// Run them with
//
//	go test ./integration/
//
// or with -short for a smaller workload.
package integration
