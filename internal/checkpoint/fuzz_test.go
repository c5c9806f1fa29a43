package checkpoint

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

// FuzzParse checks that the text parser never panics and is canonical: a
// text that parses re-encodes to itself, so a witness cosigns exactly what
// it was sent.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
		"example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\nextension\n",
		"o\n0\n" + emptyRoot + "\n",
		"o\n00\n" + emptyRoot + "\n",
		"o\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFV=\n",
		"o\n0\n" + emptyRoot + "\n\n",
		"o\n0\n",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, text []byte) {
		c, err := Parse(text)
		if err != nil {
			return
		}
		if got := c.Marshal(); !bytes.Equal(got, text) {
			t.Fatalf("re-encoding differs:\n%q\n%q", got, text)
		}
		if len(c.Extensions) > MaxExtensions || len(text) > MaxTextSize {
			t.Fatalf("parsed %q beyond the caps", text)
		}
	})
}

// FuzzOpen runs the whole signed-checkpoint path (split, parse, verify) on
// arbitrary notes: no panics, and whatever verifies is canonical, text and
// signatures.
func FuzzOpen(f *testing.F) {
	lg := newTestKey(f, testOrigin)
	text := testOrigin + "\n3\n" + emptyRoot + "\n"
	f.Add(lg.sign(f, text))
	f.Add(lg.sign(f, testOrigin+"\n0\n"+emptyRoot+"\n"))
	f.Add([]byte("example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"))
	f.Add(lg.sign(f, testOrigin+"\n03\n"+strings.Repeat("A", 43)+"=\n"))
	f.Add(append(lg.sign(f, text), "— other.example/key !!!\n— example.com/log AAAAAAAAAAA\n"...))
	f.Add([]byte(text + "\n" + lg.line(f, text, spareBits)))
	verifiers := only(lg.verifier)
	f.Fuzz(func(t *testing.T, msg []byte) {
		cp, sigs, err := Open(msg, verifiers)
		if err != nil {
			return
		}
		if len(sigs) == 0 || !bytes.HasPrefix(msg, append(cp.Marshal(), '\n')) {
			t.Fatalf("opened checkpoint %q is not canonical or unsigned", msg)
		}
		for _, s := range sigs {
			if b, err := base64.StdEncoding.Strict().DecodeString(s.Base64); err != nil || base64.StdEncoding.EncodeToString(b) != s.Base64 {
				t.Fatalf("verified signature %q is not canonical base64", s.Base64)
			}
			if !bytes.Contains(msg, []byte("\n— "+s.Name+" "+s.Base64+"\n")) {
				t.Fatalf("verified signature %+v is not a line of %q", s, msg)
			}
		}
		if _, err := note.Open(append(append(cp.Marshal(), '\n'), FormatSignatures(sigs)...), note.VerifierList(lg.verifier)); err != nil {
			t.Fatalf("the checkpoint re-encoded with its verified signatures does not verify: %v", err)
		}
	})
}
