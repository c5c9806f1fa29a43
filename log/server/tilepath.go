package server

import (
	"errors"
	"math"
	"strconv"
	"strings"
)

// Paths of the C2SP tlog-tiles read API (c2sp.org/tlog-tiles):
//
//	tile/<L>/<N>[.p/<W>]       hash tile at level L, index N, width W
//	tile/entries/<N>[.p/<W>]   entry bundle N, width W
//
// "<L> is the level of the tile, and MUST be a decimal ASCII integer between
// 0 and 63, with no additional leading zeroes."
//
// "<N> is the index of the tile within the level. It MUST be a non-negative
// integer encoded into zero-padded 3-digit path elements. All but the last
// path element MUST begin with an x. For example, index 1234067 will be
// encoded as x001/x234/067."
//
// "<W> is the width of the tile, a decimal ASCII integer between 1 and 255,
// with no additional leading zeroes." Without the .p/<W> suffix the tile is
// full; the parsers below return width 0 for it.
//
// Only the canonical form is accepted, the one Tessera's layout.TilePath and
// layout.EntriesPath produce: in particular N has no leading x000 element
// (000 is index 0; x000/001 is rejected, not read as 1). Tessera's own
// parser is laxer (it takes leading zeros in L and W, and x000 elements).

// maxIndexElems is the number of 3-digit elements of the largest uint64.
const maxIndexElems = 7

var (
	errTilePath  = errors.New("tile path: want tile/<L>/<N>[.p/<W>]")
	errLevel     = errors.New("tile path: bad level, want 0..63 without leading zeros")
	errTileIndex = errors.New("tile path: bad index, want canonical 3-digit elements, e.g. x001/x234/067")
	errWidth     = errors.New("tile path: bad partial width, want .p/<W> with W in 1..255 without leading zeros")
)

// parseTilePath parses "<L>/<N>[.p/<W>]", a hash tile path after "tile/".
func parseTilePath(p string) (level, index uint64, width uint8, err error) {
	l, rest, ok := strings.Cut(p, "/")
	if !ok {
		return 0, 0, 0, errTilePath
	}
	level, ok = parseDecimal(l, 63)
	if !ok {
		return 0, 0, 0, errLevel
	}
	index, width, err = parseEntriesPath(rest)
	if err != nil {
		return 0, 0, 0, err
	}
	return level, index, width, nil
}

// parseEntriesPath parses "<N>[.p/<W>]", an entry bundle path after
// "tile/entries/" (and the index and width part of a tile path).
func parseEntriesPath(p string) (index uint64, width uint8, err error) {
	n, w, partial := strings.Cut(p, ".p/")
	if partial {
		v, ok := parseDecimal(w, 255)
		if !ok || v == 0 {
			return 0, 0, errWidth
		}
		width = uint8(v)
	}
	index, ok := parseIndex(n)
	if !ok {
		return 0, 0, errTileIndex
	}
	return index, width, nil
}

// parseIndex parses a canonical <N>: elements xDDD/.../DDD, the first not
// x000, the value fitting in a uint64.
func parseIndex(n string) (uint64, bool) {
	elems := strings.Split(n, "/")
	if len(elems) > maxIndexElems {
		return 0, false
	}
	var index uint64
	for i, e := range elems {
		if i < len(elems)-1 {
			var ok bool
			if e, ok = strings.CutPrefix(e, "x"); !ok || (i == 0 && e == "000") {
				return 0, false
			}
		}
		d, ok := parseDigits3(e)
		if !ok || index > (math.MaxUint64-d)/1000 {
			return 0, false
		}
		index = index*1000 + d
	}
	return index, true
}

// parseDigits3 parses exactly three decimal digits.
func parseDigits3(s string) (uint64, bool) {
	if len(s) != 3 {
		return 0, false
	}
	var v uint64
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	return v, true
}

// parseDecimal parses a canonical decimal (no sign, no leading zeros) of
// at most maxValue.
func parseDecimal(s string, maxValue uint64) (uint64, bool) {
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v > maxValue || strconv.FormatUint(v, 10) != s {
		return 0, false
	}
	return v, true
}
