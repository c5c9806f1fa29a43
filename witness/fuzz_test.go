package witness

import (
	"bytes"
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
