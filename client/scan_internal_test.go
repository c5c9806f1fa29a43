package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"

	"github.com/provlog/provlog/event"
)

// treeSource is a logSource over an in-memory tree of entries, which a
// test may make lie: tamper, if not nil, may change what it serves.
type treeSource struct {
	leaves [][]byte // the entries
	tree   *testonly.Tree
	// tamper is called with what is served: "entry" (i its index) or
	// "inclusion" or "consistency" (i the hash's position in the proof);
	// it returns what to serve instead.
	tamper func(what string, i int, b []byte) []byte
}

func newTreeSource(entries [][]byte) *treeSource {
	s := &treeSource{leaves: entries, tree: testonly.New(rfc6962.DefaultHasher)}
	s.tree.AppendData(entries...)
	return s
}

func (s *treeSource) checkpointOf() *Checkpoint {
	return &Checkpoint{Size: s.tree.Size(), Hash: s.tree.Hash()}
}

func (s *treeSource) serve(what string, i int, b []byte) []byte {
	b = bytes.Clone(b)
	if s.tamper != nil {
		return s.tamper(what, i, b)
	}
	return b
}

func (s *treeSource) proof(what string, p [][]byte, err error) ([][]byte, error) {
	for i := range p {
		p[i] = s.serve(what, i, p[i])
	}
	return p, err
}

func (s *treeSource) checkpoint(context.Context) ([]byte, error) { return nil, errors.New("unused") }

func (s *treeSource) consistencyProof(_ context.Context, from, to uint64) ([][]byte, error) {
	p, err := s.tree.ConsistencyProof(from, to)
	return s.proof("consistency", p, err)
}

func (s *treeSource) inclusionProof(_ context.Context, index, size uint64) ([][]byte, error) {
	p, err := s.tree.InclusionProof(index, size)
	return s.proof("inclusion", p, err)
}

func (s *treeSource) entries(_ context.Context, start, end, _ uint64) ([][]byte, error) {
	var out [][]byte
	for i := start; i < end; i++ {
		out = append(out, s.serve("entry", int(i), s.leaves[i]))
	}
	return out, nil
}

// TestLeftSiblings checks, for every leaf of every tree of up to 130
// leaves, that the left siblings of its inclusion proof are the compact
// range [0, index) computed from the leaves.
func TestLeftSiblings(t *testing.T) {
	tree := testonly.New(rfc6962.DefaultHasher)
	rf := &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	for size := uint64(1); size <= 130; size++ {
		tree.AppendData(fmt.Appendf(nil, "leaf %d", size-1))
		left := rf.NewEmptyRange(0)
		for index := range size {
			p, err := tree.InclusionProof(index, size)
			if err != nil {
				t.Fatal(err)
			}
			got := leftSiblings(index, size, p)
			if want := left.Hashes(); !slices.EqualFunc(got, want, bytes.Equal) {
				t.Fatalf("leftSiblings(%d, %d) = %x, want %x", index, size, got, want)
			}
			if err := left.Append(tree.LeafHash(index), nil); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// scanFixture is a log of 600 entries, mostly opaque, with events about a
// watched digest at watchedAt and events about another digest beside them.
type scanFixture struct {
	entries   [][]byte
	watchedAt []uint64
	watch     *Watch
}

func newScanFixture(t *testing.T) *scanFixture {
	t.Helper()
	priv, _, err := event.GenerateKey(event.KeyEd25519)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := event.LoadSigningKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	watched := event.Digest{Alg: "sha256", Hex: strings.Repeat("aa", 32)}
	other := event.Digest{Alg: "sha256", Hex: strings.Repeat("bb", 32)}
	ev := func(d event.Digest, i int) []byte {
		st, err := event.NewStatement(event.SignPredicateType, []event.Subject{{Name: "app", Digest: d}},
			&event.SignPredicate{Algorithm: "ed25519", KeyID: fmt.Sprint("k", i), Signature: "c2ln", BuildIndex: 0})
		if err != nil {
			t.Fatal(err)
		}
		env, err := event.SignEnvelope(context.Background(), st, sk)
		if err != nil {
			t.Fatal(err)
		}
		return env
	}
	f := &scanFixture{watchedAt: []uint64{0, 1, 254, 255, 256, 300, 511, 512, 598, 599}}
	for i := range 600 {
		switch {
		case slices.Contains(f.watchedAt, uint64(i)):
			f.entries = append(f.entries, ev(watched, i))
		case i%50 == 7:
			f.entries = append(f.entries, ev(other, i))
		default:
			f.entries = append(f.entries, fmt.Appendf(nil, "opaque entry %d", i))
		}
	}
	if f.watch, err = ParseWatch([]byte(`{"digests": ["`+watched.String()+`"]}`), ""); err != nil {
		t.Fatal(err)
	}
	return f
}

// scanner returns a Monitor reading src, recording the indices it alerts on.
func (f *scanFixture) scanner(src logSource, alerts *[]uint64) *Monitor {
	return &Monitor{src: src, cfg: MonitorConfig{Watch: f.watch, OnAlert: func(_ context.Context, a Alert) error {
		if !bytes.Equal(a.Entry, f.entries[a.Index]) {
			return fmt.Errorf("alert on entry %d carries another entry", a.Index)
		}
		*alerts = append(*alerts, a.Index)
		return nil
	}}}
}

// TestScanAlertsFrom scans the fixture from several starts (mid-bundle,
// at a bundle's edge, at the end) and wants exactly the watched entries
// from there on, in order.
func TestScanAlertsFrom(t *testing.T) {
	f := newScanFixture(t)
	src := newTreeSource(f.entries)
	cp := src.checkpointOf()
	for _, from := range []uint64{0, 1, 2, 255, 256, 257, 300, 512, 599, 600} {
		var got []uint64
		if err := f.scanner(src, &got).scan(context.Background(), from, cp); err != nil {
			t.Fatalf("scan from %d: %v", from, err)
		}
		var want []uint64
		for _, i := range f.watchedAt {
			if i >= from {
				want = append(want, i)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("scan from %d alerted on %v, want %v", from, got, want)
		}
	}
	// A shorter tree: the pages end at its size.
	small := newTreeSource(f.entries[:257])
	var got []uint64
	if err := f.scanner(small, &got).scan(context.Background(), 100, small.checkpointOf()); err != nil {
		t.Fatal(err)
	}
	if want := []uint64{254, 255, 256}; !slices.Equal(got, want) {
		t.Errorf("scan of 257 entries from 100 alerted on %v, want %v", got, want)
	}
}

// TestScanDetectsEveryLie makes the log serve, in turn, each entry of the
// scanned range altered (a byte flipped, or swapped for its neighbour),
// and each hash of the proofs altered, and wants every lie to be an
// ErrInclusionProof error, with no alert on the altered entry nor on any
// entry of its page or later.
func TestScanDetectsEveryLie(t *testing.T) {
	f := newScanFixture(t)
	src := newTreeSource(f.entries)
	cp := src.checkpointOf()
	const from = 200
	check := func(t *testing.T, lie string, firstBad uint64) {
		t.Helper()
		var got []uint64
		err := f.scanner(src, &got).scan(context.Background(), from, cp)
		if !errors.Is(err, ErrInclusionProof) {
			t.Fatalf("%s: scan = %v, want ErrInclusionProof", lie, err)
		}
		pageStart := firstBad / 256 * 256
		if len(got) > 0 && got[len(got)-1] >= max(pageStart, from) {
			t.Fatalf("%s: alerts %v reach the page of the lie (from %d)", lie, got, pageStart)
		}
	}
	for i := range uint64(len(f.entries)) {
		if i < from {
			continue
		}
		src.tamper = func(what string, j int, b []byte) []byte {
			if what == "entry" && uint64(j) == i {
				b[len(b)-1] ^= 1
			}
			return b
		}
		check(t, fmt.Sprintf("entry %d flipped", i), i)
		src.tamper = func(what string, j int, b []byte) []byte {
			switch {
			case what == "entry" && uint64(j) == i:
				return bytes.Clone(f.entries[(j+1)%len(f.entries)])
			case what == "entry" && uint64(j) == i+1:
				return bytes.Clone(f.entries[i])
			}
			return b
		}
		if i+1 < uint64(len(f.entries)) {
			check(t, fmt.Sprintf("entries %d and %d swapped", i, i+1), i)
		}
	}
	for _, what := range []string{"inclusion", "consistency"} {
		for k := range 12 {
			hit := false
			src.tamper = func(w string, j int, b []byte) []byte {
				if w == what && j == k {
					b[0] ^= 0x80
					hit = true
				}
				return b
			}
			var got []uint64
			err := f.scanner(src, &got).scan(context.Background(), from, cp)
			if !hit {
				continue // no proof of the scan has that many hashes
			}
			if what == "inclusion" {
				// The first proof: nothing is alerted before it verifies.
				if !errors.Is(err, ErrInclusionProof) || len(got) > 0 {
					t.Errorf("%s proof hash %d flipped: scan = %v with alerts %v, want ErrInclusionProof and none", what, k, err, got)
				}
				continue
			}
			if !errors.Is(err, ErrInclusionProof) {
				t.Errorf("%s proof hash %d flipped: scan = %v, want ErrInclusionProof", what, k, err)
			}
		}
	}
	src.tamper = nil
	var got []uint64
	if err := f.scanner(src, &got).scan(context.Background(), from, cp); err != nil || len(got) != 8 {
		t.Errorf("honest scan after the lies: %v alerts %v, want 8 and no error", err, got)
	}
}

// TestScanShortPage wants a page of fewer entries than asked for to be
// ErrLogMisbehaved, not a panic or a skipped entry.
func TestScanShortPage(t *testing.T) {
	f := newScanFixture(t)
	src := &shortSource{newTreeSource(f.entries)}
	var got []uint64
	err := f.scanner(src, &got).scan(context.Background(), 10, src.checkpointOf())
	if !errors.Is(err, ErrLogMisbehaved) || len(got) > 0 {
		t.Errorf("scan of a short page = %v with alerts %v, want ErrLogMisbehaved and none", err, got)
	}
}

type shortSource struct{ *treeSource }

func (s *shortSource) entries(ctx context.Context, start, end, size uint64) ([][]byte, error) {
	e, err := s.treeSource.entries(ctx, start, end, size)
	return e[:len(e)-1], err
}
