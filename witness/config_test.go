package witness

import (
	"path/filepath"
	"strings"
	"testing"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

func TestParseLogList(t *testing.T) {
	a := newTestLog(t, "example.com/a")
	a2 := newTestLog(t, "example.com/a") // rotated key
	b := newTestLog(t, "example.com/b")
	logs, err := ParseLogList([]byte(strings.Join([]string{
		"# witnessed logs",
		"log example.com/a " + a.vkey + " https://a.example/log/  # polled",
		"",
		"log example.com/b " + b.vkey,
		"log example.com/a " + a2.vkey,
	}, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	if len(logs) != 2 || logs[0].Origin != "example.com/a" || len(logs[0].Verifiers) != 2 || logs[0].URL != "https://a.example/log/" ||
		logs[1].Origin != "example.com/b" || len(logs[1].Verifiers) != 1 || logs[1].URL != "" {
		t.Fatalf("parsed %+v", logs)
	}
	for _, bad := range []string{
		"logs example.com/a " + a.vkey,
		"log example.com/a",
		"log example.com/a not-a-key",
		"log example.com/a " + a.vkey + " ftp://x/",
		"log example.com/a " + a.vkey + " /relative",
		"log example.com/a " + a.vkey + " https://x/ extra",
		"log example.com/a " + a.vkey + "\nlog example.com/a " + a.vkey,
		"log example.com/a " + a.vkey + " https://x/\nlog example.com/a " + a2.vkey + " https://y/",
	} {
		if _, err := ParseLogList([]byte(bad)); err == nil {
			t.Errorf("ParseLogList(%q): no error", bad)
		}
	}
}

func TestKeys(t *testing.T) {
	skey, vkey, err := GenerateKey("witness.example/w1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(skey, "PRIVATE+KEY+witness.example/w1+") {
		t.Fatalf("skey %q", skey)
	}
	k, err := ParseKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	if k.Verifier != vkey {
		t.Fatalf("derived verifier %q, generated %q", k.Verifier, vkey)
	}
	// The verifier key is a type 0x04 (cosignature/v1) key, and the
	// signer's key ID matches it.
	v, err := fnote.NewVerifierForCosignatureV1(vkey)
	if err != nil || v.KeyHash() != k.Signer.KeyHash() || v.Name() != "witness.example/w1" {
		t.Fatalf("verifier %v: %v", v, err)
	}
	if fv, err := fnote.NewVerifier(vkey); err != nil || fv.KeyHash() != v.KeyHash() {
		t.Fatalf("formats/note.NewVerifier does not see a cosignature key: %v", err)
	}
	msg, err := note.Sign(&note.Note{Text: "o\n1\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"}, k.Signer)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := note.Open(msg, note.VerifierList(v)); err != nil {
		t.Fatalf("cosignature does not verify: %v", err)
	}

	dir := t.TempDir()
	keyFile := filepath.Join(dir, "w.key")
	created, err := CreateKey(keyFile, keyFile+".pub", "witness.example/w2")
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := LoadKey(keyFile)
	if err != nil || loaded.Verifier != created.Verifier {
		t.Fatalf("LoadKey: %v, %v", loaded, err)
	}
	if _, err := CreateKey(keyFile, keyFile+".pub", "witness.example/w2"); err == nil {
		t.Error("CreateKey overwrote an existing key")
	}
	if _, err := ParseKey("PRIVATE+KEY+x+00000000+AQ=="); err == nil {
		t.Error("ParseKey accepted a short key")
	}
}
