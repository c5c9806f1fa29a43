package checkpoint

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	flog "github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
)

// The differential tests hold this package to the reference parsers,
// golang.org/x/mod/sumdb/note (note.Open) and
// github.com/transparency-dev/formats/log (Checkpoint.Unmarshal):
//
//   - whatever Open accepts, they accept, with the same origin, size,
//     root hash, extension lines and verified signatures, except that
//     note.Open refuses a note with any signature line it cannot parse,
//     which signed-note requires ignoring when the line is not a known
//     key's: then, with those lines (and only lines naming no known key)
//     removed, they accept the same;
//   - whatever they accept and Open refuses breaks one of the strictness
//     rules of the package doc, and Open's error names that rule.

// outcome is what differential found, for the table test.
type outcome int

const (
	bothAccept       outcome = iota // Open and the references accept, alike
	toleratedUnknown                // Open accepts; note.Open refuses an unknown key's line
	strictRule                      // the references accept; Open refuses by a rule
	bothRefuse                      // Open and a reference refuse
)

// differential checks Open against the references on msg with known, and
// reports which case it was; when strictRule, rule is the rule Open's
// error wraps.
func differential(t *testing.T, msg []byte, known note.Verifiers) (outcome, error) {
	t.Helper()
	cp, sigs, err := Open(msg, func(string) (note.Verifiers, error) { return known, nil })
	n, nerr := note.Open(msg, known)
	if err == nil {
		if nerr == nil {
			sameAsReferences(t, msg, cp, sigs, n)
			return bothAccept, nil
		}
		// note.Open refused: only for lines it cannot parse that name no
		// known key.
		split := bytes.LastIndex(msg, []byte("\n\n")) + 2
		kept := bytes.Clone(msg[:split])
		for line := range bytes.Lines(msg[split:]) {
			name, b64, _ := strings.Cut(strings.TrimSuffix(strings.TrimPrefix(string(line), "— "), "\n"), " ")
			if noteOpenParses(name, b64) {
				kept = append(kept, line...)
				continue
			}
			if namesKnownKey(name, b64, known) {
				t.Fatalf("Open accepted %q with a known key's line note.Open cannot parse: %q", msg, line)
			}
		}
		n, err = note.Open(kept, known)
		if err != nil {
			t.Fatalf("Open accepted %q; note.Open refuses it (%v), and without the unknown keys' lines it cannot parse (%v)", msg, nerr, err)
		}
		sameAsReferences(t, kept, cp, sigs, n)
		return toleratedUnknown, nil
	}
	if nerr != nil {
		return bothRefuse, nil
	}
	var fc flog.Checkpoint
	if _, ferr := fc.Unmarshal([]byte(n.Text)); ferr != nil {
		return bothRefuse, nil
	}
	rules := brokenRules(msg, n, fc)
	if len(rules) == 0 {
		t.Fatalf("Open refuses %q (%v), which note.Open and formats/log accept, by no documented rule", msg, err)
	}
	for _, r := range rules {
		if errors.Is(err, r) {
			return strictRule, r
		}
	}
	t.Fatalf("Open refuses %q with %v, want one of %v", msg, err, rules)
	return 0, nil
}

// sameAsReferences checks that note.Open's n of msg and formats/log read
// what Open did.
func sameAsReferences(t *testing.T, msg []byte, cp Checkpoint, sigs []note.Signature, n *note.Note) {
	t.Helper()
	var fc flog.Checkpoint
	rest, err := fc.Unmarshal([]byte(n.Text))
	if err != nil {
		t.Fatalf("Open accepted %q; formats/log refuses its text: %v", msg, err)
	}
	ext := ""
	for _, e := range cp.Extensions {
		ext += e + "\n"
	}
	if fc.Origin != cp.Origin || fc.Size != cp.Size || !bytes.Equal(fc.Hash, cp.Hash[:]) || string(rest) != ext {
		t.Fatalf("%q: Open read %+v; formats/log read %+v, extensions %q", msg, cp, fc, rest)
	}
	if n.Text != string(cp.Marshal()) {
		t.Fatalf("%q: note.Open's text %q, Open's %q", msg, n.Text, cp.Marshal())
	}
	if !slices.Equal(n.Sigs, sigs) {
		t.Fatalf("%q: note.Open verified %+v, Open %+v", msg, n.Sigs, sigs)
	}
}

// noteOpenParses reports whether note.Open parses a signature line of
// this name and base64 (its own test, restated).
func noteOpenParses(name, b64 string) bool {
	validName := name != "" && utf8.ValidString(name) && strings.IndexFunc(name, unicode.IsSpace) < 0 && !strings.Contains(name, "+")
	sig, err := base64.StdEncoding.DecodeString(b64)
	return err == nil && validName && b64 != "" && len(sig) >= 5
}

// namesKnownKey reports whether a signature line names a key of known:
// its base64, read as leniently as can be, gives a key ID that is, with
// its name, a known key's.
func namesKnownKey(name, b64 string, known note.Verifiers) bool {
	sig, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(b64, "="))
	if err != nil || len(sig) < 4 {
		return false
	}
	_, err = known.Verifier(name, binary.BigEndian.Uint32(sig))
	var unknown *note.UnknownVerifierError
	return !errors.As(err, &unknown)
}

// brokenRules returns the strictness rules that msg, which note.Open (n)
// and formats/log (fc) accept, breaks, judged from the references' view.
func brokenRules(msg []byte, n *note.Note, fc flog.Checkpoint) []error {
	var rules []error
	lines := strings.Split(strings.TrimSuffix(n.Text, "\n"), "\n")
	ext := lines[3:]
	if len(msg) > MaxSize {
		rules = append(rules, errNoteTooLarge)
	}
	if len(n.Text) > MaxTextSize {
		rules = append(rules, errTextTooLarge)
	}
	if len(ext) > MaxExtensions {
		rules = append(rules, errTooManyExtensions)
	}
	if slices.Contains(ext, "") {
		rules = append(rules, errEmptyExtension)
	}
	if lines[1] != strconv.FormatUint(fc.Size, 10) {
		rules = append(rules, errSizeNotCanonical)
	}
	if len(fc.Hash) != 32 || base64.StdEncoding.EncodeToString(fc.Hash) != lines[2] {
		rules = append(rules, errHashNotCanonical)
	}
	for _, s := range n.Sigs {
		if b, _ := base64.StdEncoding.DecodeString(s.Base64); base64.StdEncoding.EncodeToString(b) != s.Base64 {
			rules = append(rules, errSignatureNotCanonical)
			break
		}
	}
	return rules
}

// differentialKeys are the known keys of the differential tests: the log
// and a witness.
func differentialKeys(t testing.TB) (lg, w testKey, known note.Verifiers) {
	lg = newTestKey(t, testOrigin)
	w = newTestKey(t, "witness.example/w")
	return lg, w, note.VerifierList(lg.verifier, w.verifier)
}

// TestDifferential runs differential on each strictness rule and each
// tolerance, and on checkpoints all accept, asserting which case each is.
func TestDifferential(t *testing.T) {
	lg, w, known := differentialKeys(t)
	stranger := newTestKey(t, "stranger.example/s")
	text := testOrigin + "\n5\n" + emptyRoot + "\n"
	signed := func(text string, more ...string) []byte {
		return []byte(text + "\n" + lg.line(t, text, nil) + strings.Join(more, ""))
	}
	loose := spareBits(emptyRoot)
	for _, c := range []struct {
		name string
		msg  []byte
		want outcome
		rule error
	}{
		{"canonical", signed(text), bothAccept, nil},
		{"extensions", signed(text + "one\ntwo\n"), bothAccept, nil},
		{"empty tree", signed(testOrigin + "\n0\n" + emptyRoot + "\n"), bothAccept, nil},
		{"cosigned", signed(text, w.line(t, text, nil)), bothAccept, nil},
		{"repeated line", signed(text, lg.line(t, text, nil)), bothAccept, nil},
		{"stranger's line", signed(text, stranger.line(t, text, nil)), bothAccept, nil},
		{"stranger's spare bits", signed(text, stranger.line(t, text, spareBits)), bothAccept, nil},
		{"log's name, other key ID", signed(text, "— "+testOrigin+" AAAAAAAAAAAAAAA=\n"), bothAccept, nil},

		{"stranger unpadded", signed(text, stranger.line(t, text, unpadded)), toleratedUnknown, nil},
		{"not base64", signed(text, "— other.example/key !!!\n"), toleratedUnknown, nil},
		{"too short", signed(text, "— other.example/key AAAA\n"), toleratedUnknown, nil},
		{"no signature", signed(text, "— other.example/key\n"), toleratedUnknown, nil},
		{"empty name", signed(text, "— \n"), toleratedUnknown, nil},
		{"invalid name", signed(text, "— a+b "+strings.Fields(stranger.line(t, text, nil))[2]+"\n"), toleratedUnknown, nil},
		{"before the log's", []byte(text + "\n— other.example/key !!!\n" + lg.line(t, text, nil)), toleratedUnknown, nil},

		{"note too large", signed(text, strings.Repeat("— other.example/key "+strings.Repeat("A", 996)+"\n", MaxSize/1000)), strictRule, errNoteTooLarge},
		{"text too large", signed(strings.Repeat("o", MaxTextSize) + text[len(testOrigin):]), strictRule, errTextTooLarge},
		{"too many extensions", signed(text + strings.Repeat("e\n", MaxExtensions+1)), strictRule, errTooManyExtensions},
		{"empty extension", signed(text + "a\n\nb\n"), strictRule, errEmptyExtension},
		{"leading zero", signed(testOrigin + "\n05\n" + emptyRoot + "\n"), strictRule, errSizeNotCanonical},
		{"hash spare bits", signed(testOrigin + "\n5\n" + loose + "\n"), strictRule, errHashNotCanonical},
		{"hash of 31 bytes", signed(testOrigin + "\n5\n" + base64.StdEncoding.EncodeToString(make([]byte, 31)) + "\n"), strictRule, errHashNotCanonical},
		{"empty hash", signed(testOrigin + "\n5\n\n"), strictRule, errHashNotCanonical},
		{"log's spare bits", []byte(text + "\n" + lg.line(t, text, spareBits)), strictRule, errSignatureNotCanonical},
		{"witness's spare bits", signed(text, w.line(t, text, spareBits)), strictRule, errSignatureNotCanonical},

		{"log's unpadded", []byte(text + "\n" + lg.line(t, text, unpadded)), bothRefuse, nil},
		{"not a signature line", signed(text, "not a signature line\n"), bothRefuse, nil},
		{"control character", signed(text, "— other.example/key \x01\n"), bothRefuse, nil},
		{"too many lines", signed(text, strings.Repeat("— other.example/key AAAAAAAA\n", MaxSignatures)), bothRefuse, nil},
		{"wrong signature", []byte(text + "\n" + lg.line(t, testOrigin+"\n6\n"+emptyRoot+"\n", nil)), bothRefuse, nil},
		{"no known key", []byte(text + "\n" + stranger.line(t, text, nil)), bothRefuse, nil},
		{"two lines", signed(testOrigin + "\n5\n"), bothRefuse, nil},
		{"empty origin", signed(text[len(testOrigin):]), bothRefuse, nil},
	} {
		got, rule := differential(t, c.msg, known)
		if got != c.want || rule != c.rule {
			t.Errorf("%s: outcome %d (%v), want %d (%v)", c.name, got, rule, c.want, c.rule)
		}
	}
}

// FuzzDifferential runs differential on notes built from a fuzzed text
// signed by the log's key (its base64 spelled as spell says), with fuzzed
// bytes before and after the log's line; and on the fuzzed bytes alone as
// a whole note.
func FuzzDifferential(f *testing.F) {
	text := testOrigin + "\n5\n" + emptyRoot + "\n"
	f.Add([]byte(text), []byte(""), []byte(""), uint8(0))
	f.Add([]byte(text+"ext\n"), []byte("— other.example/key !!!\n"), []byte("— a AAAA\n"), uint8(1))
	f.Add([]byte(testOrigin+"\n05\n"+emptyRoot+"\n"), []byte(""), []byte(""), uint8(2))
	f.Add([]byte(testOrigin+"\n5\n"+spareBits(emptyRoot)+"\n"), []byte(""), []byte("— "+testOrigin+" AAAAAAAAAAAAAAA=\n"), uint8(3))
	f.Add([]byte(text+"a\n\nb\n"), []byte("— \n"), []byte("not a line\n"), uint8(4))
	lg, _, known := differentialKeys(f)
	f.Fuzz(func(t *testing.T, text, before, after []byte, spell uint8) {
		var b64 func(string) string
		switch spell % 4 {
		case 1:
			b64 = spareBits
		case 2:
			b64 = unpadded
		case 3: // the fuzzed bytes are the whole note
			differential(t, slices.Concat(text, before, after), known)
			return
		}
		msg := slices.Concat(text, []byte("\n"), before, []byte(lg.line(t, string(text), b64)), after)
		differential(t, msg, known)
	})
}
