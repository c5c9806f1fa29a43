package witness

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
)

const seedCheckpoint = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"

// FuzzParseAddCheckpointRequest checks that the request parser never
// panics and is canonical: whatever parses re-encodes to the same bytes.
func FuzzParseAddCheckpointRequest(f *testing.F) {
	for _, s := range []string{
		"old 20852014\nPlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\njrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=\n5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8=\n/6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=\n\n" + seedCheckpoint,
		"old 0\n\n" + seedCheckpoint,
		"old 0\n\n",
		"old 01\n\n" + seedCheckpoint,
		"old -1\n\n" + seedCheckpoint,
		"old 1\nPlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw\n\n" + seedCheckpoint,
		"old 1\n" + strings.Repeat("PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n", 64) + "\n" + seedCheckpoint,
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := ParseAddCheckpointRequest(body)
		if err != nil {
			return
		}
		if len(r.Proof) > MaxProofLines {
			t.Fatalf("%d proof lines", len(r.Proof))
		}
		for _, h := range r.Proof {
			if len(h) != 32 {
				t.Fatalf("proof hash of %d bytes", len(h))
			}
		}
		if got := r.Marshal(); !bytes.Equal(got, body) {
			t.Fatalf("re-encoding differs:\n%q\n%q", got, body)
		}
	})
}

// FuzzParseCheckpointText checks that the checkpoint parser never panics
// and is canonical: a text that parses re-encodes to itself, so the
// witness cosigns exactly what it was sent.
func FuzzParseCheckpointText(f *testing.F) {
	for _, s := range []string{
		"example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
		"example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\nextension\n",
		"o\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n",
		"o\n00\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n",
		"o\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFV=\n",
		"o\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n\n",
		"o\n0\n",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, text []byte) {
		c, err := ParseCheckpointText(text)
		if err != nil {
			return
		}
		if got := c.Marshal(); !bytes.Equal(got, text) {
			t.Fatalf("re-encoding differs:\n%q\n%q", got, text)
		}
	})
}

// FuzzOpenCheckpoint runs the whole signed-checkpoint path (split, parse,
// verify) on arbitrary notes: no panics, and whatever verifies is
// canonical.
func FuzzOpenCheckpoint(f *testing.F) {
	lg := newTestLog(f, "example.com/log")
	lg.add(f, 3, "a")
	f.Add(lg.checkpoint(f, 3))
	f.Add(lg.checkpoint(f, 0))
	f.Add([]byte(seedCheckpoint))
	f.Add(lg.signText(f, "example.com/log\n03\n"+strings.Repeat("A", 43)+"=\n"))
	f.Add(append(lg.checkpoint(f, 3), "— other.example/key !!!\n— example.com/log AAAAAAAAAAA\n"...))
	cfg := lg.config(f)
	lookup := func(o string) ([]noteVerifier, bool) {
		if o != cfg.Origin {
			return nil, false
		}
		return cfg.Verifiers, true
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		cp, sigs, err := openCheckpoint(msg, lookup)
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
		}
	})
}

// FuzzParseLogList checks that the config parser never panics.
func FuzzParseLogList(f *testing.F) {
	lg := newTestLog(f, "example.com/log")
	f.Add([]byte("# logs\nlog example.com/log " + lg.vkey + " https://example.com/log/\n"))
	f.Add([]byte("log example.com/log " + lg.vkey + "\nlog example.com/log " + lg.vkey + "\n"))
	f.Add([]byte("log a b c d e\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		logs, err := ParseLogList(data)
		if err != nil {
			return
		}
		for _, l := range logs {
			if l.Origin == "" || len(l.Verifiers) == 0 {
				t.Fatalf("parsed log %+v", l)
			}
		}
	})
}
