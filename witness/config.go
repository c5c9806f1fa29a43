package witness

// This file is the witness's log list, a text file naming the logs it
// witnesses, one per line:
//
//	# comment (also after a line's fields)
//	log <origin> <verifier key> [<tlog-tiles URL>]
//
// <origin> is the log's checkpoint origin line (no spaces); <verifier key>
// is the log's note verifier key, "name+hash+base64" (C2SP signed-note
// vkey: Ed25519, ECDSA, RFC 6962 STH or cosignature types); the optional
// URL is the log's tlog-tiles prefix (http or https) that the witness polls
// for /checkpoint and /tile/. Repeating an origin adds another trusted key
// for it (key rotation); its URL, if given on several lines, must agree.
// For example:
//
//	log example.com/log1 example.com/log1+2f09a1b4+AeXz...= https://example.com/log1/
//	log localhost/provlog localhost/provlog+0a1b2c3d+Af3c...=
//
// The file is at most 1 MiB.

import (
	"bufio"
	"bytes"
	"fmt"
	"net/url"
	"strings"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// ParseLogList parses a log list file (see the file comment).
func ParseLogList(data []byte) ([]LogConfig, error) {
	if len(data) > 1<<20 {
		return nil, fmt.Errorf("log list of %d bytes, want at most 1 MiB", len(data))
	}
	var logs []LogConfig
	index := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if fields[0] != "log" || len(fields) < 3 || len(fields) > 4 {
			return nil, fmt.Errorf("line %d: want \"log <origin> <verifier key> [<url>]\"", n)
		}
		origin, vkey := fields[1], fields[2]
		v, err := fnote.NewVerifier(vkey)
		if err != nil {
			return nil, fmt.Errorf("line %d: log %q verifier key: %w", n, origin, err)
		}
		var u string
		if len(fields) == 4 {
			pu, err := url.Parse(fields[3])
			if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
				return nil, fmt.Errorf("line %d: log %q URL %q is not an absolute http(s) URL", n, origin, fields[3])
			}
			u = pu.String()
		}
		i, seen := index[origin]
		if !seen {
			index[origin] = len(logs)
			logs = append(logs, LogConfig{Origin: origin, Verifiers: []note.Verifier{v}, URL: u})
			continue
		}
		l := &logs[i]
		for _, o := range l.Verifiers {
			if o.Name() == v.Name() && o.KeyHash() == v.KeyHash() {
				return nil, fmt.Errorf("line %d: log %q: key %s+%08x listed twice", n, origin, v.Name(), v.KeyHash())
			}
		}
		l.Verifiers = append(l.Verifiers, v)
		switch {
		case u == "":
		case l.URL == "":
			l.URL = u
		case l.URL != u:
			return nil, fmt.Errorf("line %d: log %q has two URLs, %q and %q", n, origin, l.URL, u)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading log list: %w", err)
	}
	return logs, nil
}
