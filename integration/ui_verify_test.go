package integration

// The page's verification library (log/server/ui/assets/verify.js) run in
// headless Chromium against the vectors the Go code is checked with: every
// case's verdict in the browser must be the Go code's.

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	fnote "github.com/transparency-dev/formats/note"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"
	"golang.org/x/mod/sumdb/note"

	ckpt "github.com/provlog/provlog/internal/checkpoint"
	"github.com/provlog/provlog/log/server/ui"
	pb "github.com/provlog/provlog/proto/provlog/v1"
)

type inclusionVector struct {
	Name  string   `json:"name"`
	Leaf  []byte   `json:"leaf"` // the entry; the page hashes it
	Index string   `json:"index"`
	Size  string   `json:"size"`
	Proof [][]byte `json:"proof"`
	Root  []byte   `json:"root"`
	OK    bool     `json:"ok"`
}

type consistencyVector struct {
	Name  string   `json:"name"`
	Size1 string   `json:"size1"`
	Size2 string   `json:"size2"`
	Proof [][]byte `json:"proof"`
	Root1 []byte   `json:"root1"`
	Root2 []byte   `json:"root2"`
	OK    bool     `json:"ok"`
}

type cosigResult struct {
	Name     string `json:"name"`
	Time     string `json:"time"`
	Verified *bool  `json:"verified"`
}

type noteVector struct {
	Name      string   `json:"name"`
	Note      []byte   `json:"note"`
	Key       string   `json:"key"`
	Witnesses []string `json:"witnesses"`
	OK        bool     `json:"ok"`
	// What the page must read from a note that verifies.
	Size   string        `json:"size"`
	Root   []byte        `json:"root"`
	Cosigs []cosigResult `json:"cosignatures"`
}

type keyVector struct {
	Name string `json:"name"`
	Key  string `json:"key"`
	OK   bool   `json:"ok"`
}

type uiVectors struct {
	Inclusion   []inclusionVector   `json:"inclusion"`
	Consistency []consistencyVector `json:"consistency"`
	Notes       []noteVector        `json:"notes"`
	Keys        []keyVector         `json:"keys"`
}

// result is one case as the test page ran it.
type result struct {
	Kind  string          `json:"kind"`
	Name  string          `json:"name"`
	OK    bool            `json:"ok"`
	Err   string          `json:"err"`
	Extra json.RawMessage `json:"extra"`
}

func (v *uiVectors) inclusion(name string, leaf []byte, index, size uint64, p [][]byte, root []byte) {
	err := proof.VerifyInclusion(rfc6962.DefaultHasher, index, size, rfc6962.DefaultHasher.HashLeaf(leaf), p, root)
	v.Inclusion = append(v.Inclusion, inclusionVector{Name: name, Leaf: leaf, Index: strconv.FormatUint(index, 10),
		Size: strconv.FormatUint(size, 10), Proof: p, Root: root, OK: err == nil})
}

func (v *uiVectors) consistency(name string, size1, size2 uint64, p [][]byte, root1, root2 []byte) {
	err := proof.VerifyConsistency(rfc6962.DefaultHasher, size1, size2, p, root1, root2)
	v.Consistency = append(v.Consistency, consistencyVector{Name: name, Size1: strconv.FormatUint(size1, 10),
		Size2: strconv.FormatUint(size2, 10), Proof: p, Root1: root1, Root2: root2, OK: err == nil})
}

// flipped returns copies of p, each with one bit of one hash flipped.
func flipped(p [][]byte) [][][]byte {
	var out [][][]byte
	for i := range p {
		q := make([][]byte, len(p))
		copy(q, p)
		q[i] = append([]byte{}, p[i]...)
		q[i][i%len(q[i])] ^= 0x10
		out = append(out, q)
	}
	return out
}

// proofVectors adds the inclusion and consistency proofs of tree, whose
// leaves are leaves, for the given pairs, each with its tampered twins:
// every hash flipped, one dropped or added, another index, size, leaf or
// root. The verdict expected is transparency-dev/merkle's.
func (v *uiVectors) proofVectors(t *testing.T, what string, leaves [][]byte, tree *testonly.Tree, pairs [][2]uint64) {
	for _, pr := range pairs {
		index, size := pr[0], pr[1]
		p, err := tree.InclusionProof(index, size)
		if err != nil {
			t.Fatal(err)
		}
		root := tree.HashAt(size)
		name := fmt.Sprintf("%s inclusion %d in %d", what, index, size)
		v.inclusion(name, leaves[index], index, size, p, root)
		for i, q := range flipped(p) {
			v.inclusion(fmt.Sprintf("%s, hash %d flipped", name, i), leaves[index], index, size, q, root)
		}
		if len(p) > 0 {
			v.inclusion(name+", last hash dropped", leaves[index], index, size, p[:len(p)-1], root)
		}
		v.inclusion(name+", a hash added", leaves[index], index, size, append(append([][]byte{}, p...), root), root)
		v.inclusion(name+", next index", leaves[index], index+1, size, p, root)
		v.inclusion(name+", size+1", leaves[index], index, size+1, p, root)
		v.inclusion(name+", another leaf", append([]byte{}, append(leaves[index], 'x')...), index, size, p, root)
		v.inclusion(name+", root of size-1", leaves[index], index, size, p, tree.HashAt(size-1))

		// Consistency from index+1 to size, the same pairs.
		from := index + 1
		c, err := tree.ConsistencyProof(from, size)
		if err != nil {
			t.Fatal(err)
		}
		r1 := tree.HashAt(from)
		name = fmt.Sprintf("%s consistency %d to %d", what, from, size)
		v.consistency(name, from, size, c, r1, root)
		for i, q := range flipped(c) {
			v.consistency(fmt.Sprintf("%s, hash %d flipped", name, i), from, size, q, r1, root)
		}
		if len(c) > 0 {
			v.consistency(name+", last hash dropped", from, size, c[:len(c)-1], r1, root)
		}
		v.consistency(name+", a hash added", from, size, append(append([][]byte{}, c...), r1), r1, root)
		v.consistency(name+", old root flipped", from, size, c, flipped([][]byte{r1})[0][0], root)
		v.consistency(name+", new root flipped", from, size, c, r1, flipped([][]byte{root})[0][0])
		v.consistency(name+", sizes swapped", size, from, c, root, r1)
		v.consistency(name+", from 0", 0, size, c, rfc6962.DefaultHasher.EmptyRoot(), root)
		v.consistency(name+", from 0, no proof", 0, size, nil, rfc6962.DefaultHasher.EmptyRoot(), root)
	}
}

// merkleVectors: transparency-dev/merkle's reference tree of
// testonly.LeafInputs (every pair of its eight leaves, roots checked
// against testonly.RootHashes), and a tree of 300 leaves at random pairs.
func merkleVectors(t *testing.T, v *uiVectors) {
	leaves := testonly.LeafInputs()
	tree := testonly.New(rfc6962.DefaultHasher)
	tree.AppendData(leaves...)
	var pairs [][2]uint64
	for size := uint64(1); size <= uint64(len(leaves)); size++ {
		if got, want := tree.HashAt(size), testonly.RootHashes()[size]; string(got) != string(want) {
			t.Fatalf("reference tree root at %d: %x, want %x", size, got, want)
		}
		for index := range size {
			pairs = append(pairs, [2]uint64{index, size})
		}
	}
	v.proofVectors(t, "reference", leaves, tree, pairs)

	rng := mrand.New(mrand.NewPCG(17, 6962))
	big := testonly.New(rfc6962.DefaultHasher)
	var bigLeaves [][]byte
	for i := range 300 {
		bigLeaves = append(bigLeaves, fmt.Appendf(nil, "leaf %d %d", i, rng.Uint64()))
	}
	big.AppendData(bigLeaves...)
	pairs = [][2]uint64{{0, 300}, {299, 300}, {255, 256}, {127, 300}, {256, 257}}
	for range 10 {
		size := 1 + rng.Uint64N(300)
		pairs = append(pairs, [2]uint64{rng.Uint64N(size), size})
	}
	v.proofVectors(t, "300 leaves", bigLeaves, big, pairs)
}

// realLogVectors: proofs and checkpoints from a real provlogd, which the
// page must verify, and tampered copies.
func realLogVectors(t *testing.T, v *uiVectors) {
	d := mustStartProvlogd(t, filepath.Join(t.TempDir(), "data"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var entries [][]byte
	roots := map[uint64][]byte{}
	var lastNote []byte
	for i := range 37 {
		e := fmt.Appendf(nil, "real log entry %d", i)
		if _, err := d.Log.Append(ctx, &pb.AppendRequest{Entry: e}); err != nil {
			t.Fatal(err)
		}
		entries = append(entries, e)
		cp, err := d.Log.GetCheckpoint(ctx, &pb.GetCheckpointRequest{})
		if err != nil {
			t.Fatal(err)
		}
		c, _, err := ckpt.Open(cp.Checkpoint, func(string) (note.Verifiers, error) {
			lv, err := note.NewVerifier(d.VerifierKey)
			return note.VerifierList(lv), err
		})
		if err != nil {
			t.Fatal(err)
		}
		roots[c.Size] = c.Hash[:]
		lastNote = cp.Checkpoint
	}
	size := uint64(len(entries))
	for _, index := range []uint64{0, 1, 16, 31, 36} {
		r, err := d.Log.GetInclusionProof(ctx, &pb.GetInclusionProofRequest{Leaf: &pb.GetInclusionProofRequest_Index{Index: index}, TreeSize: size})
		if err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("real log inclusion %d in %d", index, size)
		v.inclusion(name, entries[index], index, size, r.Proof, roots[size])
		for i, q := range flipped(r.Proof) {
			v.inclusion(fmt.Sprintf("%s, hash %d flipped", name, i), entries[index], index, size, q, roots[size])
		}
	}
	for _, from := range []uint64{1, 7, 16, 30} {
		r, err := d.Log.GetConsistencyProof(ctx, &pb.GetConsistencyProofRequest{FromSize: from, ToSize: size})
		if err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("real log consistency %d to %d", from, size)
		v.consistency(name, from, size, r.Proof, roots[from], roots[size])
		for i, q := range flipped(r.Proof) {
			v.consistency(fmt.Sprintf("%s, hash %d flipped", name, i), from, size, q, roots[from], roots[size])
		}
	}
	v.note(t, "real log checkpoint", lastNote, d.VerifierKey, nil)
	sig := strings.LastIndex(string(lastNote), " ") + 1
	b := []byte(string(lastNote))
	b[sig+10] ^= 0x01 // a base64 character of the signature: another character
	v.note(t, "real log checkpoint, signature tampered", b, d.VerifierKey, nil)
}

// note adds a signed-note case, its verdict and reading checkpoint.Open's
// with key (whose name must be the origin, as the client requires) and
// the cosignatures' formats/note's.
func (v *uiVectors) note(t *testing.T, name string, msg []byte, key string, witnesses []string) {
	t.Helper()
	nv := noteVector{Name: name, Note: msg, Key: key, Witnesses: witnesses}
	lv, err := note.NewVerifier(key)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	cp, _, err := ckpt.Open(msg, func(origin string) (note.Verifiers, error) {
		if origin != lv.Name() {
			return nil, fmt.Errorf("origin %q, want %q", origin, lv.Name())
		}
		return note.VerifierList(lv), nil
	})
	if nv.OK = err == nil; nv.OK {
		nv.Size, nv.Root = strconv.FormatUint(cp.Size, 10), cp.Hash[:]
		nv.Cosigs = goCosignatures(t, msg, lv.Name(), witnesses)
	}
	v.Notes = append(v.Notes, nv)
}

// goCosignatures reads the cosignature-shaped lines of msg (not by the
// log) as the page must: name, timestamp, and verified by formats/note's
// cosignature/v1 verifier when a witness key is given.
func goCosignatures(t *testing.T, msg []byte, logName string, witnesses []string) []cosigResult {
	out := []cosigResult{}
	text, sigs, err := ckpt.Split(msg)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSuffix(string(sigs), "\n"), "\n") {
		rest := strings.TrimPrefix(line, "— ")
		name, b64, _ := strings.Cut(rest, " ")
		sig, err := base64.StdEncoding.DecodeString(b64)
		if name == logName || err != nil || len(sig) != 76 {
			continue
		}
		c := cosigResult{Name: name, Time: strconv.FormatUint(binary.BigEndian.Uint64(sig[4:12]), 10)}
		for _, w := range witnesses {
			wv, err := fnote.NewVerifierForCosignatureV1(w)
			if err != nil {
				t.Fatal(err)
			}
			if wv.Name() == name && wv.KeyHash() == binary.BigEndian.Uint32(sig) {
				ok := wv.Verify(text, sig[4:])
				c.Verified = &ok
			}
		}
		out = append(out, c)
	}
	return out
}

// noteVectors: checkpoints signed with note.Sign and cosigned with
// formats/note's cosignature/v1 signer, and each way of breaking one that
// signed-note, tlog-checkpoint and internal/checkpoint refuse (or, for
// unknown keys' lines, ignore).
func noteVectors(t *testing.T, v *uiVectors) {
	const origin = "example.com/log"
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := note.NewSigner(skey)
	oskey, _, _ := note.GenerateKey(rand.Reader, origin) // same name, another key
	other, _ := note.NewSigner(oskey)
	wskey, wvkey, _ := note.GenerateKey(rand.Reader, "witness.example/w1")
	wsigner, err := fnote.NewSignerForCosignatureV1(wskey)
	if err != nil {
		t.Fatal(err)
	}
	_, w2vkey, _ := note.GenerateKey(rand.Reader, "witness.example/w2")
	sign := func(text string, signers ...note.Signer) []byte {
		msg, err := note.Sign(&note.Note{Text: text}, signers...)
		if err != nil {
			t.Fatalf("signing %q: %v", text, err)
		}
		return msg
	}
	root := base64.StdEncoding.EncodeToString(rfc6962.DefaultHasher.HashLeaf([]byte("root")))
	text := origin + "\n42\n" + root + "\n"
	good := sign(text, signer)
	v.note(t, "signed checkpoint", good, vkey, nil)
	v.note(t, "with an extension line", sign(text+"ext one\n", signer), vkey, nil)
	v.note(t, "of size 0", sign(origin+"\n0\n"+root+"\n", signer), vkey, nil)
	v.note(t, "of the largest size", sign(origin+"\n18446744073709551615\n"+root+"\n", signer), vkey, nil)
	v.note(t, "cosigned", sign(text, signer, wsigner), vkey, []string{wvkey})
	v.note(t, "cosigned, witness key not pinned", sign(text, signer, wsigner), vkey, nil)
	v.note(t, "cosigned, another witness pinned", sign(text, signer, wsigner), vkey, []string{w2vkey})
	cosigned := sign(text, signer, wsigner)
	bad := []byte(string(cosigned))
	bad[len(bad)-5] ^= 0x01 // in the cosignature's base64
	v.note(t, "cosignature tampered", bad, vkey, []string{wvkey})

	flip := func(msg []byte, at int) []byte {
		b := []byte(string(msg))
		b[at] ^= 0x01
		return b
	}
	sigStart := strings.LastIndex(string(good), " ") + 1
	v.note(t, "signature byte flipped", flip(good, sigStart+20), vkey, nil)
	v.note(t, "key id flipped", flip(good, sigStart+1), vkey, nil)
	v.note(t, "signed by another key of the same name", sign(text, other), vkey, nil)
	v.note(t, "signed by both keys", sign(text, other, signer), vkey, nil)
	v.note(t, "size changed after signing", []byte(strings.Replace(string(good), "\n42\n", "\n43\n", 1)), vkey, nil)
	okey, ovkey, _ := note.GenerateKey(rand.Reader, "example.com/other")
	osigner, _ := note.NewSigner(okey)
	v.note(t, "wrong origin", sign(text, osigner), ovkey, nil)
	for _, bad := range []struct{ name, text string }{
		{"size with a leading zero", origin + "\n042\n" + root + "\n"},
		{"size with a sign", origin + "\n+42\n" + root + "\n"},
		{"size past uint64", origin + "\n18446744073709551616\n" + root + "\n"},
		{"root of 31 bytes", origin + "\n42\n" + base64.StdEncoding.EncodeToString(make([]byte, 31)) + "\n"},
		{"root unpadded", origin + "\n42\n" + strings.TrimRight(root, "=") + "\n"},
		{"root with stray bits", origin + "\n42\n" + root[:42] + "B=\n"},
		{"empty extension line", text + "\n"},
		{"two lines only", origin + "\n42\n"},
		{"empty origin", "\n42\n" + root + "\n"},
		{"a tab in the text", origin + "\n42\n" + root + "\n\tx\n"},
		{"17 extension lines", text + strings.Repeat("e\n", 17)},
	} {
		msg, err := note.Sign(&note.Note{Text: bad.text}, signer)
		if err != nil { // note.Sign refuses some itself; sign around it
			sig, _ := signer.Sign([]byte(bad.text))
			id := make([]byte, 4)
			binary.BigEndian.PutUint32(id, signer.KeyHash())
			msg = []byte(bad.text + "\n— " + origin + " " + base64.StdEncoding.EncodeToString(append(id, sig...)) + "\n")
		}
		v.note(t, bad.name, msg, vkey, nil)
	}
	// The signature block.
	line := good[len(text)+1:]
	v.note(t, "no final newline", good[:len(good)-1], vkey, nil)
	v.note(t, "no blank line", append([]byte(text), line...), vkey, nil)
	v.note(t, "a line not a signature", append(append([]byte{}, good...), "x y\n"...), vkey, nil)
	v.note(t, "a carriage return", []byte(strings.Replace(string(good), "\n\n", "\r\n\n", 1)), vkey, nil)
	v.note(t, "invalid UTF-8", []byte(strings.Replace(string(good), origin+"\n", origin+"\xff\n", 1)), vkey, nil)
	unpadded := []byte(strings.TrimRight(strings.TrimSuffix(string(good), "\n"), "=") + "\n")
	v.note(t, "the log's signature unpadded", unpadded, vkey, nil)
	v.note(t, "an unknown key's line", append(append([]byte{}, good...), "— witness.example/w9 AAAAAAAAAAAAAAAA\n"...), vkey, nil)
	v.note(t, "an unknown key's line of bad base64", append(append([]byte{}, good...), "— witness.example/w9 %%%\n"...), vkey, nil)
	v.note(t, "the log's name with a short line", append(append([]byte{}, good...), "— "+origin+" AAAA\n"...), vkey, nil)
	v.note(t, "the log's line twice", append(append([]byte{}, good...), line...), vkey, nil)
	v.note(t, "the log's line then a bad one", append(append([]byte{}, good...), flip(line, len(line)-20)...), vkey, nil)
	v.note(t, "a bad line then the log's", append(append([]byte(text+"\n"), flip(line, len(line)-20)...), line...), vkey, nil)
	v.note(t, "101 signature lines", append(append([]byte{}, good...), strings.Repeat("— w AAAAAAAA\n", 100)...), vkey, nil)
	v.note(t, "100 signature lines", append(append([]byte{}, good...), strings.Repeat("— w AAAAAAAA\n", 99)...), vkey, nil)

	// Verifier keys.
	v.Keys = append(v.Keys, keyVector{"log key", vkey, true}, keyVector{"witness key", wvkey, true})
	name, rest, _ := strings.Cut(vkey, "+")
	id, key, _ := strings.Cut(rest, "+")
	raw, _ := base64.StdEncoding.DecodeString(key)
	for _, k := range []keyVector{
		{"key id changed", name + "+" + strings.Map(func(r rune) rune { return r ^ 1 }, id[:1]) + id[1:] + "+" + key, false},
		{"another name", "example.com/x+" + id + "+" + key, false},
		{"type 0x02", name + "+" + id + "+" + base64.StdEncoding.EncodeToString(append([]byte{2}, raw[1:]...)), false},
		{"short key", name + "+" + id + "+" + base64.StdEncoding.EncodeToString(raw[:20]), false},
		{"no key", name + "+" + id, false},
	} {
		if _, err := note.NewVerifier(k.Key); (err == nil) != k.OK {
			t.Fatalf("key vector %q: Go's note.NewVerifier says %v", k.Name, err)
		}
		v.Keys = append(v.Keys, k)
	}
}

// verifyTestPage runs every vector through verify.js, and the timeline
// cases through events.js, and leaves the results in window.results.
const verifyTestPage = `<!doctype html><meta charset="utf-8"><title>verify.js vectors</title>
<script type="module">
import * as v from '/ui/verify.js';
import * as ev from '/ui/events.js';
const vec = await (await fetch('/vectors.json')).json();
const b = (s) => v.b64decode(s);
const out = [];
async function run(kind, name, f) {
  try { out.push({ kind, name, ok: true, extra: (await f()) ?? null }); }
  catch (e) { out.push({ kind, name, ok: false, err: e instanceof v.VerifyError ? e.message : 'not a VerifyError: ' + e }); }
}
for (const c of vec.inclusion) await run('inclusion', c.name, async () =>
  v.verifyInclusion(BigInt(c.index), BigInt(c.size), await v.leafHash(b(c.leaf)), (c.proof ?? []).map(b), b(c.root)));
for (const c of vec.consistency) await run('consistency', c.name, () =>
  v.verifyConsistency(BigInt(c.size1), BigInt(c.size2), (c.proof ?? []).map(b), b(c.root1), b(c.root2)));
for (const c of vec.notes) await run('note', c.name, async () => {
  const ws = await Promise.all((c.witnesses ?? []).map(v.parseVerifierKey));
  const r = await v.verifyCheckpoint(b(c.note), await v.parseVerifierKey(c.key), ws);
  return { size: String(r.size), root: v.b64encode(r.root),
    cosignatures: r.cosignatures.map((x) => ({ name: x.name, time: String(x.time), verified: x.verified })) };
});
for (const c of vec.keys) await run('key', c.name, () => v.parseVerifierKey(c.key).then(() => null));

// The timeline: events.js over synthetic events. An event signed by key
// ids (hints) or, as the server read it, by {keyId, name} signers; '!'
// marks an event that no longer counts.
const e = (index, type, fields = {}, { hints = [], server } = {}) => ({ index: BigInt(index), ev: { type, fields, subjects: [], signers: hints }, server });
const shape = (nodes) => nodes.map((n) => n.kind === 'event' ? n.ev.type + ':' + n.index + (n.effect.counts ? '' : '!') : n.kind + ':' + n.text).join(' | ');
const by = (...names) => ({ server: { signers: names.map((n) => ({ keyId: n[0] + '1', name: n })) } });
const ring = (index, { names = { a1: 'alice', b1: 'bob', c1: 'ci', s1: 'sec' }, prodApprovals = 2 } = {}) => e(index, 'keyring', {
  keys: [['a1', ['promoter']], ['b1', ['approver']], ['c1', ['builder']], ['s1', ['signer']]].map(([keyId, roles]) => ({ keyId, name: names[keyId], roles })),
  environments: [{ name: 'prod', from: 'staging', approvals: prodApprovals }, { name: 'dev', from: '', approvals: 0 }, { name: 'staging', from: 'dev', approvals: 0 }],
  admins: [], adminThreshold: 0 });
const revoke = (index, keyId, compromisedSince) => e(index, 'revoke', { keyId, compromisedSince: BigInt(compromisedSince), reason: 'leaked' });
const hist = (...events) => ev.trustHistory(events);
const story = (h) => [e(1, 'build', {}, { hints: ['c1'] }), e(2, 'sign', {}, by('sec')), e(3, 'promote', { to: 'dev' }, by('alice')),
  e(4, 'promote', { from: 'dev', to: 'staging' }, by('alice', 'bob')), e(5, 'promote', { from: 'staging', to: 'prod' }, by('alice', 'bob'))];
const cases = [
  ['complete chain', [e(0, 'build'), e(1, 'sign'), e(2, 'promote', { to: 'dev' }), e(3, 'promote', { from: 'dev', to: 'staging' }), e(4, 'promote', { from: 'staging', to: 'prod' })], [],
    'build:0 | sign:1 | promote:2 | promote:3 | promote:4'],
  ['out of order', [e(4, 'promote', { from: 'staging', to: 'prod' }), e(1, 'sign'), e(3, 'promote', { from: 'dev', to: 'staging' }), e(0, 'build'), e(2, 'promote', { to: 'dev' })], [],
    'build:0 | sign:1 | promote:2 | promote:3 | promote:4'],
  ['a missing promotion', [e(0, 'build'), e(1, 'sign'), e(2, 'promote', { to: 'dev' }), e(4, 'promote', { from: 'staging', to: 'prod' })], [],
    'build:0 | sign:1 | promote:2 | gap:no promotion into staging | promote:4'],
  ['a skipped environment of the chain', [e(0, 'build'), e(1, 'sign'), e(2, 'promote', { to: 'dev' }), e(3, 'promote', { to: 'prod' })], ['dev', 'staging', 'prod'],
    'build:0 | sign:1 | promote:2 | gap:no promotion into staging | promote:3'],
  ['not yet promoted', [e(0, 'build'), e(1, 'sign'), e(2, 'promote', { to: 'dev' })], ['dev', 'staging', 'prod'],
    'build:0 | sign:1 | promote:2 | pending:not promoted into staging | pending:not promoted into prod'],
  ['promoted from an environment not on the chain', [e(0, 'build'), e(1, 'sign'), e(2, 'promote', { from: 'qa', to: 'prod' })], ['dev', 'prod'],
    'build:0 | sign:1 | gap:no promotion into dev | gap:promoted into prod from qa at index 2, but never promoted into qa before | promote:2'],
  ['quarantined, lifted, quarantined again', [e(0, 'build'), e(1, 'sign'), e(2, 'quarantine', { reason: 'CVE-1' }), e(3, 'promote', { to: 'dev' }), e(4, 'unquarantine'), e(5, 'quarantine', { reason: 'CVE-2' })], [],
    'build:0 | sign:1 | promote:3 | quarantine:2 | unquarantine:4 | quarantine:5 | gap:quarantined by #5: CVE-2 — may not be promoted'],
  ['two quarantines, the one lifted named', [e(0, 'build'), e(1, 'sign'), e(2, 'quarantine', { reason: 'CVE-1' }), e(3, 'quarantine', { reason: 'CVE-2' }), e(4, 'unquarantine', { quarantineIndex: 2n })], [],
    'build:0 | sign:1 | quarantine:2 | quarantine:3 | unquarantine:4 | gap:quarantined by #3: CVE-2 — may not be promoted'],
  ['an unquarantine naming none lifts all', [e(0, 'build'), e(1, 'sign'), e(2, 'quarantine', { reason: 'CVE-1' }), e(3, 'quarantine', { reason: 'CVE-2' }), e(4, 'unquarantine')], [],
    'build:0 | sign:1 | quarantine:2 | quarantine:3 | unquarantine:4'],
  ['an unquarantine lifts no later quarantine', [e(0, 'build'), e(1, 'sign'), e(3, 'quarantine', { reason: 'CVE-1' }), e(2, 'unquarantine', { quarantineIndex: 3n })], [],
    'build:0 | sign:1 | unquarantine:2 | quarantine:3 | gap:quarantined by #3: CVE-1 — may not be promoted'],
  ['the whole story, nothing revoked', story(), [],
    'build:1 | sign:2 | promote:3 | promote:4 | promote:5', hist(ring(0))],
  ['a revoked approver: prod falls below its approvals', story(), ['dev', 'staging', 'prod'],
    "build:1 | sign:2 | promote:3 | promote:4 | promote:5! | gap:no promotion into prod that still counts: #5's signer bob revoked by #9", hist(ring(0), revoke(9, 'b1', 5))],
  ['a revoked approver: staging needs none, so it counts', story(), ['dev', 'staging', 'prod'],
    "build:1 | sign:2 | promote:3 | promote:4 | promote:5!" + " | gap:no promotion into prod that still counts: #5's signer bob revoked by #9", hist(ring(0), revoke(9, 'b1', 4))],
  ['revoked as compromised since after the event: it counts', story(), [],
    'build:1 | sign:2 | promote:3 | promote:4 | promote:5', hist(ring(0), revoke(9, 'b1', 6))],
  ['a revoked promoter: no promotion counts, each a gap', story(), ['dev', 'staging', 'prod'],
    "build:1 | sign:2 | promote:3! | gap:no promotion into dev that still counts: #3's signer alice revoked by #9 | promote:4! | gap:no promotion into staging that still counts: #4's signer alice revoked by #9 | promote:5! | gap:no promotion into prod that still counts: #5's signer alice revoked by #9",
    hist(ring(0), revoke(9, 'a1', 3))],
  ['a revoked builder, by key id hint only', story(), [],
    "build:1! | gap:no build event that still counts: #1's signer ci revoked by #9 | sign:2 | promote:3 | promote:4 | promote:5", hist(ring(0), revoke(9, 'c1', 0))],
  ['a revoked signer, named as the server read it', story(), [],
    "build:1 | sign:2! | gap:no signature event that still counts: #2's signer sec revoked by #9 | promote:3 | promote:4 | promote:5", hist(ring(0), revoke(9, 's1', 2))],
  ['an unknown key id: nothing to void', [e(1, 'build', {}, { hints: ['zz'] }), e(2, 'sign', {}, { hints: [''] })], [],
    'build:1 | sign:2 | pending:not promoted into dev | pending:not promoted into staging | pending:not promoted into prod', hist(ring(0), revoke(9, 'c1', 0))],
  ['quarantine lifted', [e(0, 'build'), e(1, 'sign'), e(2, 'quarantine', { reason: 'CVE-1' }), e(4, 'unquarantine')], [],
    'build:0 | sign:1 | quarantine:2 | unquarantine:4'],
  ['no build, no signature', [e(5, 'promote', { to: 'dev' })], [],
    'gap:no build event in the log | gap:no signature event in the log | promote:5'],
  ['an sbom among them', [e(0, 'build'), e(1, 'sbom'), e(2, 'sign')], [],
    'build:0 | sign:2 | sbom:1'],
];
for (const [name, events, chain, want, history] of cases) await run('timeline', name, async () => {
  const got = shape(ev.buildTimeline(events, chain.length > 0 || !history ? chain : ev.envChain(ev.keyringAt(history, 100n).environments), history ?? null));
  if (got !== want) throw new v.VerifyError('timeline ' + got + ', want ' + want);
});

// The trust history's readings.
const same = (what, got, want) => {
  const g = JSON.stringify(got, (k, x) => typeof x === 'bigint' ? String(x) : x), w = JSON.stringify(want);
  if (g !== w) throw new v.VerifyError(what + ' ' + g + ', want ' + w);
};
await run('timeline', 'the chain from a keyring listed out of order', () =>
  same('chain', ev.envChain(ring(0).ev.fields.environments), ['dev', 'staging', 'prod']));
await run('timeline', 'a branching chain', () =>
  same('chain', ev.envChain([{ name: 'dev' }, { name: 'qa', from: 'dev' }, { name: 'prod', from: 'qa' }, { name: 'canary', from: 'dev' }, { name: 'lab', from: 'elsewhere' }]), ['dev', 'qa', 'prod', 'canary', 'lab']));
await run('timeline', 'the keyring in force at each index', () => {
  const h = hist(ring(0), ring(5, { names: { a1: 'alice.smith', b1: 'bob', c1: 'ci', s1: 'sec' } }));
  same('in force', [0n, 3n, 5n, 6n, 100n].map((i) => ev.keyringAt(h, i).index), ['0', '0', '0', '5', '5']);
  same('names', [3, 6].map((i) => ev.signersOf(e(i, 'promote', {}, { hints: ['a1'] }), h).map((s) => s.name + '/' + s.by)), [['alice/hint'], ['alice.smith/hint']]);
  same('before the genesis', ev.keyringAt(hist(ring(4)), 2n).index, '4');
  same('no history', ev.keyringAt(null, 2n), null);
});
await run('timeline', 'signers: the server\'s reading first, then key id hints', () => {
  const h = hist(ring(0));
  same('server', ev.signersOf(e(3, 'promote', {}, { hints: [''], ...by('alice') }), h).map((s) => [s.name, s.by, s.roles]), [['alice', 'log', ['promoter']]]);
  same('log key', ev.signersOf(e(0, 'keyring', {}, { server: { signers: [], logKey: true } }), h).map((s) => [s.name, s.logKey]), [['the log key', true]]);
  same('hints', ev.signersOf(e(3, 'promote', {}, { hints: ['b1', 'zz', ''] }), h).map((s) => [s.keyId, s.name]), [['b1', 'bob'], ['zz', ''], ['', '']]);
});
await run('timeline', 'trust events count as applied, whoever is revoked', () => {
  const h = hist(ring(0), revoke(9, 's1', 0));
  same('quarantine by a revoked key', ev.effectOf(e(7, 'quarantine', { reason: 'x' }, by('sec')), h).counts, true);
});
await run('timeline', 'quarantines and revocations of a history', () => {
  const q = (index, type, hex, fields) => ({ index: BigInt(index), ev: { type, fields, subjects: [{ name: '', digest: { sha256: hex } }], signers: [] } });
  const h = hist(q(3, 'quarantine', 'aa', { reason: 'CVE-1' }), q(4, 'quarantine', 'bb', { reason: 'CVE-2' }), q(6, 'unquarantine', 'aa', { reason: 'fine' }),
    revoke(8, 'b1', 2), revoke(9, 'b1', 7), ring(0));
  same('quarantines', h.quarantines.map((x) => [x.index, x.digest, x.lifted ?? null]), [['3', 'sha256:aa', '6'], ['4', 'sha256:bb', null]]);
  same('the first revocation holds', ev.revokedAt(h, 'b1', 2n)?.index, '8');
  same('before compromisedSince', ev.revokedAt(h, 'b1', 1n), null);
  same('versions', h.versions.map((x) => x.index), ['0']);
});
await run('timeline', 'a keyring decoded: ids from its subjects, admins marked', () => {
  const st = { _type: 'https://in-toto.io/Statement/v1', predicateType: 'https://provlog.dev/attestation/keyring/v1',
    subject: [{ name: 'root', digest: { sha256: 'r0' } }, { name: 'ci', digest: { sha256: 'c0' } }],
    predicate: { keys: [{ name: 'ci', publicKey: 'pem', roles: ['builder'], notBefore: 2, notAfter: 9 }, { name: 'root', publicKey: 'pem', roles: [] }],
      environments: [{ name: 'dev' }, { name: 'prod', from: 'dev', approvals: 2 }], admins: { keys: ['root'], threshold: 1 } } };
  const env = { payloadType: 'application/vnd.in-toto+json', payload: v.b64encode(new TextEncoder().encode(JSON.stringify(st))), signatures: [{ keyid: '', sig: 'c2ln' }] };
  const d = ev.decodeEntry(new TextEncoder().encode(JSON.stringify(env)));
  same('keyring', [d.type, d.fields], ['keyring', { keys: [{ name: 'ci', keyId: 'c0', roles: ['builder'], notBefore: '2', notAfter: '9', admin: false }, { name: 'root', keyId: 'r0', roles: [], admin: true }],
    environments: [{ name: 'dev', from: '', approvals: 0, reproducible: 0 }, { name: 'prod', from: 'dev', approvals: 2, reproducible: 0 }], admins: ['root'], adminThreshold: 1 }]);
});
window.results = out;
</script>`

// TestUIVerifyVectors runs the page's verification code in headless
// Chromium over transparency-dev/merkle's reference tree and tampered
// proofs of it, proofs and checkpoints from a real provlogd, and signed
// notes broken every way internal/checkpoint refuses: each verdict (and
// the size, root and cosignatures read) must be the Go code's.
func TestUIVerifyVectors(t *testing.T) {
	findChromium(t)
	var v uiVectors
	merkleVectors(t, &v)
	realLogVectors(t, &v)
	noteVectors(t, &v)
	vectors, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /ui/", ui.Handler())
	mux.HandleFunc("GET /vectors.json", func(w http.ResponseWriter, r *http.Request) { w.Write(vectors) })
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(verifyTestPage)) })
	srv := httptest.NewServer(mux)
	defer srv.Close()

	b := newBrowser(t, 800, 600)
	b.must("opening the test page", 30*time.Second, chromedp.Navigate(srv.URL+"/"))
	start := time.Now()
	raw := waitJS[[]byte](b, 2*time.Minute, "the vectors to run", `window.results && JSON.stringify(window.results)`, `document.body.innerText`)
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	var results []result
	if err := json.Unmarshal([]byte(s), &results); err != nil {
		t.Fatal(err)
	}
	type want struct {
		ok    bool
		extra any
	}
	wants := map[string]want{}
	for _, c := range v.Inclusion {
		wants["inclusion/"+c.Name] = want{c.OK, nil}
	}
	for _, c := range v.Consistency {
		wants["consistency/"+c.Name] = want{c.OK, nil}
	}
	for _, c := range v.Notes {
		var extra any
		if c.OK {
			extra = map[string]any{"size": c.Size, "root": base64.StdEncoding.EncodeToString(c.Root), "cosignatures": c.Cosigs}
		}
		wants["note/"+c.Name] = want{c.OK, extra}
	}
	for _, c := range v.Keys {
		wants["key/"+c.Name] = want{c.OK, nil}
	}
	counts := map[string][2]int{}
	for _, r := range results {
		key := r.Kind + "/" + r.Name
		n := counts[r.Kind]
		if r.OK {
			n[0]++
		} else {
			n[1]++
		}
		counts[r.Kind] = n
		if r.Kind == "timeline" {
			if !r.OK {
				t.Errorf("timeline %q: %s", r.Name, r.Err)
			}
			continue
		}
		w, ok := wants[key]
		if !ok {
			t.Errorf("the page ran %s, not a vector", key)
			continue
		}
		delete(wants, key)
		if r.OK != w.ok {
			t.Errorf("%s: the page says ok=%v (%s), Go says ok=%v", key, r.OK, r.Err, w.ok)
			continue
		}
		if strings.HasPrefix(r.Err, "not a VerifyError") {
			t.Errorf("%s: %s", key, r.Err)
		}
		if w.extra != nil {
			wantJSON, _ := json.Marshal(w.extra)
			var got, exp any
			json.Unmarshal(r.Extra, &got)
			json.Unmarshal(wantJSON, &exp)
			if g, e := fmt.Sprint(got), fmt.Sprint(exp); g != e {
				t.Errorf("%s: the page read %s, Go reads %s", key, r.Extra, wantJSON)
			}
		}
	}
	for key := range wants {
		t.Errorf("vector %s did not run", key)
	}
	t.Logf("%d cases in %v (valid, refused): %v", len(results), time.Since(start).Round(time.Millisecond), counts)
}
