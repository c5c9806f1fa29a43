package client_test

import (
	"bytes"
	"crypto/ed25519"
	"testing"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/provlog/provlog/client"
)

// fuzzLog is a two-entry tree signed by a fixed key, and a bundle for each
// entry: the seeds of the fuzz tests.
type fuzzLog struct {
	vkey       string
	checkpoint []byte
	entries    [2][]byte
	bundles    [2][]byte
}

func newFuzzLog(t testing.TB) fuzzLog {
	const origin = "example.com/fuzz"
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	vkey, err := note.NewEd25519VerifierKey(origin, priv.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := newEd25519Signer(origin, vkey, priv)
	if err != nil {
		t.Fatal(err)
	}
	h := rfc6962.DefaultHasher
	fl := fuzzLog{vkey: vkey, entries: [2][]byte{[]byte("zero"), []byte("one")}}
	l0, l1 := h.HashLeaf(fl.entries[0]), h.HashLeaf(fl.entries[1])
	text := log.Checkpoint{Origin: origin, Size: 2, Hash: h.HashChildren(l0, l1)}.Marshal()
	if fl.checkpoint, err = note.Sign(&note.Note{Text: string(text)}, signer); err != nil {
		t.Fatal(err)
	}
	for i, sibling := range [][]byte{l1, l0} {
		if fl.bundles[i], err = client.BuildBundle(fl.entries[i], uint64(i), [][]byte{sibling}, fl.checkpoint); err != nil {
			t.Fatal(err)
		}
	}
	return fl
}

// newEd25519Signer returns a note signer for priv named origin.
func newEd25519Signer(origin, vkey string, priv ed25519.PrivateKey) (note.Signer, error) {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, err
	}
	return signerFunc{origin, v.KeyHash(), func(msg []byte) ([]byte, error) { return ed25519.Sign(priv, msg), nil }}, nil
}

type signerFunc struct {
	name string
	hash uint32
	sign func([]byte) ([]byte, error)
}

func (s signerFunc) Name() string                    { return s.name }
func (s signerFunc) KeyHash() uint32                 { return s.hash }
func (s signerFunc) Sign(msg []byte) ([]byte, error) { return s.sign(msg) }

func FuzzParseBundle(f *testing.F) {
	fl := newFuzzLog(f)
	for _, b := range fl.bundles {
		f.Add(b)
	}
	f.Add([]byte("c2sp.org/tlog-proof@v1\nindex 0\n\nx\n"))
	f.Add([]byte("c2sp.org/tlog-proof@v1\nextra AA==\nindex 18446744073709551615\n\nx\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := client.ParseBundle(b)
		if err != nil {
			return
		}
		if !bytes.Equal(p.Marshal(), b) {
			t.Fatalf("ParseBundle accepted a non-canonical bundle:\n%q\nre-encodes as\n%q", b, p.Marshal())
		}
		if len(b) > client.MaxBundleSize || len(p.Hashes) > 64 || len(p.Checkpoint) == 0 || (p.ExtraData != nil && len(p.ExtraData) == 0) {
			t.Fatalf("ParseBundle accepted %q", b)
		}
	})
}

func FuzzVerifyBundle(f *testing.F) {
	fl := newFuzzLog(f)
	for _, b := range fl.bundles {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		vb, err := client.VerifyBundle(b, fl.vkey, client.VerifyOptions{})
		if err != nil {
			return
		}
		// Without the key, the only provable statements are the two
		// entries of the signed tree at their indices.
		if vb.Index > 1 || !bytes.Equal(vb.Entry, fl.entries[vb.Index]) || vb.Checkpoint.Size != 2 {
			t.Fatalf("VerifyBundle proved entry %q at %d in a tree of size %d:\n%q", vb.Entry, vb.Index, vb.Checkpoint.Size, b)
		}
	})
}

func FuzzOpenCheckpoint(f *testing.F) {
	fl := newFuzzLog(f)
	f.Add(fl.checkpoint)
	v, err := note.NewVerifier(fl.vkey)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		cp, err := client.OpenCheckpoint(b, v, "")
		if err != nil {
			return
		}
		text, _, _ := bytes.Cut(fl.checkpoint, []byte("\n\n"))
		if !bytes.HasPrefix(b, append(text, "\n\n"...)) || cp.Size != 2 || len(cp.Hash) != 32 {
			t.Fatalf("OpenCheckpoint accepted %q as %+v", b, cp)
		}
	})
}
