package server

import (
	"fmt"
	"strings"
	"testing"
)

// tilePathFor is the canonical encoding of a tile path after "tile/", as
// Tessera's layout.TilePath writes it (without its "tile/" prefix).
func tilePathFor(level, index uint64, width uint8) string {
	return fmt.Sprintf("%d/%s", level, indexPathFor(index, width))
}

// indexPathFor is the canonical "<N>[.p/<W>]".
func indexPathFor(index uint64, width uint8) string {
	n := fmt.Sprintf("%03d", index%1000)
	for index /= 1000; index > 0; index /= 1000 {
		n = fmt.Sprintf("x%03d/%s", index%1000, n)
	}
	if width > 0 {
		n += fmt.Sprintf(".p/%d", width)
	}
	return n
}

func TestParseTilePath(t *testing.T) {
	for _, tc := range []struct {
		path  string
		level uint64
		index uint64
		width uint8
		err   error
	}{
		{"0/000", 0, 0, 0, nil},
		{"0/x001/x234/067", 0, 1234067, 0, nil},
		{"5/x001/x234/067.p/8", 5, 1234067, 8, nil},
		{"63/999.p/255", 63, 999, 255, nil},
		{"0/x018/x446/x744/x073/x709/x551/615", 0, 1<<64 - 1, 0, nil},
		{"1/x001/000.p/1", 1, 1000, 1, nil},
		{"", 0, 0, 0, errTilePath},
		{"0", 0, 0, 0, errTilePath},
		{"64/000", 0, 0, 0, errLevel},
		{"00/000", 0, 0, 0, errLevel},
		{"01/000", 0, 0, 0, errLevel},
		{"+1/000", 0, 0, 0, errLevel},
		{"-1/000", 0, 0, 0, errLevel},
		{"/000", 0, 0, 0, errLevel},
		{"x/000", 0, 0, 0, errLevel},
		{"0/000.p/0", 0, 0, 0, errWidth},
		{"0/000.p/256", 0, 0, 0, errWidth},
		{"0/000.p/08", 0, 0, 0, errWidth},
		{"0/000.p/", 0, 0, 0, errWidth},
		{"0/000.p/8/", 0, 0, 0, errWidth},
		{"0/000.p/+8", 0, 0, 0, errWidth},
		{"0/000.p", 0, 0, 0, errTileIndex},
		{"0/", 0, 0, 0, errTileIndex},
		{"0/0", 0, 0, 0, errTileIndex},
		{"0/67", 0, 0, 0, errTileIndex},
		{"0/0067", 0, 0, 0, errTileIndex},
		{"0/x067", 0, 0, 0, errTileIndex},
		{"0/x000/067", 0, 0, 0, errTileIndex},
		{"0/x001/x2345/067", 0, 0, 0, errTileIndex},
		{"0/001/x234/067", 0, 0, 0, errTileIndex},
		{"0/x001/x234/x067", 0, 0, 0, errTileIndex},
		{"0/x001//067", 0, 0, 0, errTileIndex},
		{"0/x001/x234/067/", 0, 0, 0, errTileIndex},
		{"0/x01a/067", 0, 0, 0, errTileIndex},
		{"0/-01", 0, 0, 0, errTileIndex},
		{"0/x018/x446/x744/x073/x709/x551/616", 0, 0, 0, errTileIndex},
		{"0/x001/x018/x446/x744/x073/x709/x551/615", 0, 0, 0, errTileIndex},
		{"0/000.p/8.p/8", 0, 0, 0, errWidth},
	} {
		t.Run(tc.path, func(t *testing.T) {
			level, index, width, err := parseTilePath(tc.path)
			if err != tc.err || level != tc.level || index != tc.index || width != tc.width {
				t.Errorf("got %d, %d, %d, %v; want %d, %d, %d, %v", level, index, width, err, tc.level, tc.index, tc.width, tc.err)
			}
		})
	}
}

func TestTilePathRoundTrip(t *testing.T) {
	for _, index := range []uint64{0, 1, 999, 1000, 1234067, 1<<64 - 1} {
		for _, width := range []uint8{0, 1, 255} {
			p := tilePathFor(7, index, width)
			if l, i, w, err := parseTilePath(p); err != nil || l != 7 || i != index || w != width {
				t.Errorf("parseTilePath(%q) = %d, %d, %d, %v", p, l, i, w, err)
			}
		}
	}
}

func FuzzParseTilePath(f *testing.F) {
	for _, s := range []string{"0/000", "0/x001/x234/067", "63/999.p/255", "0/000.p/0", "0/000.p/256",
		"00/000", "64/000", "0/x000/067", "0/x018/x446/x744/x073/x709/x551/615", "0/.p/1", ".p/1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		level, index, width, err := parseTilePath(p)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("multi-line reason %q", err)
			}
			return
		}
		if level > 63 {
			t.Errorf("parseTilePath(%q): level %d", p, level)
		}
		if canon := tilePathFor(level, index, width); canon != p {
			t.Errorf("parseTilePath(%q) accepted a non-canonical path; canonical is %q", p, canon)
		}
		if _, idx, w, err := parseTilePath("0/" + indexPathFor(index, width)); err != nil || idx != index || w != width {
			t.Errorf("round trip of %q failed", p)
		}
	})
}

func FuzzParseEntriesPath(f *testing.F) {
	for _, s := range []string{"000", "x001/x234/067.p/8", "000.p/0", "x000/001", "001.p/08"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		index, width, err := parseEntriesPath(p)
		if err != nil {
			return
		}
		if canon := indexPathFor(index, width); canon != p {
			t.Errorf("parseEntriesPath(%q) accepted a non-canonical path; canonical is %q", p, canon)
		}
	})
}
