// Command mkschema1 wrote storage/testdata/schema1, a store of schema 1 (one key per entry), with provlog at commit 2a6755c, the last of schema 1:
//
//	git worktree add /tmp/schema1 2a6755c
//	mkdir /tmp/schema1/cmd/mkschema1 && cp storage/testdata/mkschema1/main.go /tmp/schema1/cmd/mkschema1/
//	cd /tmp/schema1 && go run ./cmd/mkschema1 /tmp/schema1-store
//
// then storage/testdata/schema1 is /tmp/schema1-store and schema1.vkey its log key.
package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"

	"golang.org/x/mod/sumdb/note"

	"github.com/provlog/provlog/log"
	"github.com/provlog/provlog/storage"
	"github.com/provlog/provlog/storage/storagetest"
)

func entry(i int) []byte {
	e := fmt.Appendf(nil, "schema-1 entry %d;", i)
	for n := (i * 37) % 700; n > 0; n-- {
		e = append(e, byte('a'+(i+n)%26))
	}
	return e
}

func main() {
	dir := os.Args[1]
	st, err := storage.Open(dir, storage.Options{})
	if err != nil {
		panic(err)
	}
	skey, vkey, _ := note.GenerateKey(rand.Reader, "example.com/v1")
	signer, _ := note.NewSigner(skey)
	ctx := context.Background()
	l, err := log.Open(ctx, log.Config{Origin: "example.com/v1", Signer: signer, Admission: storagetest.TermAdmission{}}, st)
	if err != nil {
		panic(err)
	}
	n := 0
	for _, size := range []int{1, 3, 250, 2, 300, 1, 1, 200, 64, 77} {
		var batch [][]byte
		for range size {
			batch = append(batch, entry(n))
			n++
		}
		if _, err := l.AddBatch(ctx, batch); err != nil {
			panic(err)
		}
	}
	// Keep bundle 1's served form, as a monitor's read does.
	if _, err := l.ServeEntryBundle(ctx, 1, 0, true); err != nil {
		panic(err)
	}
	if err := l.Close(); err != nil {
		panic(err)
	}
	if err := st.Close(); err != nil {
		panic(err)
	}
	fmt.Println("entries", n)
	os.WriteFile(dir+".vkey", []byte(vkey+"\n"), 0o644)
}
