package integration

// Independent verification of what provlogd serves. Nothing here uses
// provlog's own packages: checkpoints are opened with
// golang.org/x/mod/sumdb/note and parsed here from the C2SP tlog-checkpoint
// text, tiles are recomputed with golang.org/x/mod/sumdb/tlog, and proofs
// are checked with github.com/transparency-dev/merkle.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// hasher is the RFC 6962 hasher of the merkle module.
var hasher = rfc6962.DefaultHasher

// checkpoint is a signed C2SP tlog-checkpoint, verified and parsed.
type checkpoint struct {
	Origin string
	Size   uint64
	Root   []byte
	Raw    []byte // the whole signed note
}

// loadVerifier reads DATA/log.pub, which must hold exactly one line: a note
// verifier key.
func loadVerifier(dataDir string) (note.Verifier, string, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "log.pub"))
	if err != nil {
		return nil, "", err
	}
	vkey, ok := strings.CutSuffix(string(b), "\n")
	if !ok || vkey == "" || strings.ContainsAny(vkey, "\n\r \t") {
		return nil, "", fmt.Errorf("log.pub = %q, want one line holding a verifier key", b)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, "", fmt.Errorf("log.pub: %w", err)
	}
	return v, vkey, nil
}

// openCheckpoint verifies the signed note raw with v and parses its text as
// a C2SP tlog-checkpoint whose origin is the verifier's name. Parsing is
// strict: the size is canonical decimal, the root canonical base64 of 32
// bytes, and the text ends with a newline.
func openCheckpoint(raw []byte, v note.Verifier) (checkpoint, error) {
	n, err := note.Open(raw, note.VerifierList(v))
	if err != nil {
		return checkpoint{}, fmt.Errorf("opening checkpoint note: %w\n%s", err, raw)
	}
	text, ok := strings.CutSuffix(n.Text, "\n")
	if !ok {
		return checkpoint{}, fmt.Errorf("checkpoint text %q does not end with a newline", n.Text)
	}
	lines := strings.Split(text, "\n")
	if len(lines) < 3 {
		return checkpoint{}, fmt.Errorf("checkpoint text %q: want at least 3 lines", n.Text)
	}
	if lines[0] != v.Name() {
		return checkpoint{}, fmt.Errorf("checkpoint origin %q, want %q", lines[0], v.Name())
	}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil || strconv.FormatUint(size, 10) != lines[1] {
		return checkpoint{}, fmt.Errorf("checkpoint size %q: not canonical decimal", lines[1])
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != 32 || base64.StdEncoding.EncodeToString(root) != lines[2] {
		return checkpoint{}, fmt.Errorf("checkpoint root %q: want canonical base64 of 32 bytes", lines[2])
	}
	for _, ext := range lines[3:] {
		if ext == "" {
			return checkpoint{}, fmt.Errorf("checkpoint text %q: empty extension line", n.Text)
		}
	}
	return checkpoint{Origin: lines[0], Size: size, Root: root, Raw: raw}, nil
}

// fetchCheckpoint fetches GET /checkpoint and verifies it.
func fetchCheckpoint(ctx context.Context, httpURL string, v note.Verifier) (checkpoint, error) {
	code, body, hdr, err := httpGet(ctx, httpURL+"checkpoint")
	if err != nil {
		return checkpoint{}, err
	}
	if code != http.StatusOK {
		return checkpoint{}, fmt.Errorf("GET /checkpoint: status %d (%q)", code, firstLine(body))
	}
	// tlog-tiles: "with Content-Type: text/plain; charset=utf-8".
	if ct := hdr.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		return checkpoint{}, fmt.Errorf("GET /checkpoint: Content-Type %q, want text/plain; charset=utf-8", ct)
	}
	return openCheckpoint(body, v)
}

// tileIndexPath encodes a tile index as tlog-tiles says: "zero-padded
// 3-digit path elements. All but the last path element MUST begin with an
// x", e.g. 1234067 as x001/x234/067.
func tileIndexPath(n uint64) string {
	s := fmt.Sprintf("%03d", n%1000)
	for n >= 1000 {
		n /= 1000
		s = fmt.Sprintf("x%03d/%s", n%1000, s)
	}
	return s
}

// tileRef names one tlog-tiles resource: a hash tile at Level, or an entry
// bundle if Entries is set. Width is 256 for a full tile.
type tileRef struct {
	Entries bool
	Level   int
	Index   uint64
	Width   int
}

// Path is the resource's path below the log's prefix.
func (r tileRef) Path() string {
	level := strconv.Itoa(r.Level)
	if r.Entries {
		level = "entries"
	}
	p := "tile/" + level + "/" + tileIndexPath(r.Index)
	if r.Width < 256 {
		p += ".p/" + strconv.Itoa(r.Width)
	}
	return p
}

// tilesForSize lists every hash tile of a tree of the given size as
// tlog-tiles defines them: at level l, floor(size/256**l) hashes, in full
// tiles of 256 and one partial tile of the remainder if it is not zero.
func tilesForSize(size uint64) []tileRef {
	var refs []tileRef
	for l := 0; size>>(8*l) > 0; l++ {
		refs = append(refs, levelTiles(size>>(8*l), func(n uint64, w int) tileRef {
			return tileRef{Level: l, Index: n, Width: w}
		})...)
	}
	return refs
}

// bundlesForSize lists every entry bundle of a tree of the given size.
func bundlesForSize(size uint64) []tileRef {
	return levelTiles(size, func(n uint64, w int) tileRef {
		return tileRef{Entries: true, Index: n, Width: w}
	})
}

func levelTiles(hashes uint64, ref func(n uint64, w int) tileRef) []tileRef {
	var refs []tileRef
	for n := uint64(0); n < hashes/256; n++ {
		refs = append(refs, ref(n, 256))
	}
	if w := hashes % 256; w > 0 {
		refs = append(refs, ref(hashes/256, int(w)))
	}
	return refs
}

// fetchAll fetches every resource of refs below httpURL with a few
// concurrent requests and returns the bodies in the order of refs. Every
// resource must answer 200.
func fetchAll(ctx context.Context, httpURL string, refs []tileRef) ([][]byte, error) {
	bodies := make([][]byte, len(refs))
	errs := make([]error, len(refs))
	var wg sync.WaitGroup
	next := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range next {
				bodies[i], errs[i] = fetchOK(ctx, httpURL+refs[i].Path())
			}
		})
	}
	for i := range refs {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return bodies, nil
}

// parseBundle parses a tlog-tiles entry bundle: "big-endian uint16
// length-prefixed log entries".
func parseBundle(b []byte) ([][]byte, error) {
	var entries [][]byte
	for len(b) > 0 {
		if len(b) < 2 {
			return nil, fmt.Errorf("bundle: %d trailing bytes after entry %d", len(b), len(entries))
		}
		n := int(binary.BigEndian.Uint16(b))
		if len(b) < 2+n {
			return nil, fmt.Errorf("bundle: entry %d has length %d but only %d bytes follow", len(entries), n, len(b)-2)
		}
		entries = append(entries, b[2:2+n])
		b = b[2+n:]
	}
	return entries, nil
}

// hashStore holds the stored hashes of a tree in the layout of
// golang.org/x/mod/sumdb/tlog (StoredHashIndex); it is a tlog.HashReader.
type hashStore []tlog.Hash

// newHashStore computes the stored hashes of the tree of entries.
func newHashStore(entries [][]byte) (hashStore, error) {
	s := make(hashStore, 0, tlog.StoredHashCount(int64(len(entries))))
	for i, e := range entries {
		hs, err := tlog.StoredHashes(int64(i), e, s)
		if err != nil {
			return nil, fmt.Errorf("stored hashes of entry %d: %w", i, err)
		}
		s = append(s, hs...)
	}
	return s, nil
}

// ReadHashes implements tlog.HashReader.
func (s hashStore) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(s)) {
			return nil, fmt.Errorf("stored hash %d not in store of %d", x, len(s))
		}
		out[i] = s[x]
	}
	return out, nil
}

// treeHash returns the root of the tree's first size entries.
func (s hashStore) treeHash(size uint64) ([]byte, error) {
	h, err := tlog.TreeHash(int64(size), s)
	if err != nil {
		return nil, err
	}
	return h[:], nil
}

// tileData recomputes a hash tile with tlog.ReadTileData.
func (s hashStore) tileData(r tileRef) ([]byte, error) {
	return tlog.ReadTileData(tlog.Tile{H: 8, L: r.Level, N: int64(r.Index), W: r.Width}, s)
}

// verifyInclusion checks an inclusion proof of entry at index in the tree of
// size with root.
func verifyInclusion(index, size uint64, entry []byte, p [][]byte, root []byte) error {
	if err := proof.VerifyInclusion(hasher, index, size, hasher.HashLeaf(entry), p, root); err != nil {
		return fmt.Errorf("inclusion proof of %d in %d: %w", index, size, err)
	}
	return nil
}

// equalEntries reports the first difference between got and want.
func equalEntries(start uint64, got, want [][]byte) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d entries from %d, want %d", len(got), start, len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			return fmt.Errorf("entry %d = %d bytes %.40q, want %d bytes %.40q", start+uint64(i), len(got[i]), got[i], len(want[i]), want[i])
		}
	}
	return nil
}
