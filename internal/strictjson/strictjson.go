// Package strictjson decodes provlog's JSON configuration files (keyring,
// auth file, gate policy, watch file) strictly: one JSON value, no unknown
// fields and nothing after it, so that a typo or a stray fragment is an
// error rather than a setting silently ignored. Errors say where in the
// file: line and column.
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// ErrMalformed is returned (wrapped) for input that is not exactly one JSON
// value of v's shape.
var ErrMalformed = errors.New("malformed")

// Error is a decoding error at a place in the input. It wraps
// ErrMalformed and the encoding/json error.
type Error struct {
	// Line and Column are where the error is, from 1; the column counts
	// characters (UTF-8 sequences), not bytes.
	Line, Column int
	// Err is what is wrong there.
	Err error
}

func (e *Error) Error() string {
	return fmt.Sprintf("malformed at line %d, column %d: %v", e.Line, e.Column, e.Err)
}

// Unwrap returns ErrMalformed and the underlying error.
func (e *Error) Unwrap() []error { return []error{ErrMalformed, e.Err} }

// Decode decodes b into v, refusing unknown fields and trailing data.
// Errors are *Error.
func Decode(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errorAt(b, offset(b, err), describe(err))
	}
	end := dec.InputOffset()
	if _, err := dec.Token(); err != io.EOF {
		rest := len(b) - len(bytes.TrimLeft(b[end:], " \t\r\n"))
		return errorAt(b, int64(rest), errors.New("trailing data after the JSON value"))
	}
	return nil
}

// errorAt returns err at the byte offset off of b.
func errorAt(b []byte, off int64, err error) *Error {
	before := b[:max(0, min(off, int64(len(b))))]
	return &Error{
		Line:   bytes.Count(before, []byte("\n")) + 1,
		Column: utf8.RuneCount(before[bytes.LastIndexByte(before, '\n')+1:]) + 1,
		Err:    err,
	}
}

// offset returns the byte offset in b that err from decoding b is about:
// the offset the error carries, the end for input cut short, or the key of
// an unknown field (the first one of that name).
func offset(b []byte, err error) int64 {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		// The offset is just past the offending byte, or the end.
		return max(0, se.Offset-1)
	case errors.As(err, &te):
		return max(0, te.Offset-1)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return int64(len(b))
	}
	if name, ok := unknownField(err); ok {
		return keyOffset(b, name)
	}
	return 0
}

// describe words err for a person: input cut short says so.
func describe(err error) error {
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("the input ends inside a JSON value (truncated?): %w", err)
	case errors.Is(err, io.EOF):
		return errors.New("empty input: want a JSON object")
	}
	return err
}

// unknownField returns the name in encoding/json's error for an unknown
// field, which carries no offset.
func unknownField(err error) (string, bool) {
	rest, ok := strings.CutPrefix(err.Error(), "json: unknown field ")
	if !ok {
		return "", false
	}
	var name string
	if json.Unmarshal([]byte(rest), &name) != nil {
		return "", false
	}
	return name, true
}

// keyOffset returns the offset of the first object key named name in b, a
// complete JSON value, or 0.
func keyOffset(b []byte, name string) int64 {
	dec := json.NewDecoder(bytes.NewReader(b))
	// inObject[i] is whether the i-th open container is an object, and
	// wantKey whether the next token is a key (or the object's end).
	var inObject []bool
	wantKey := false
	for {
		start := dec.InputOffset()
		tok, err := dec.Token()
		if err != nil {
			return 0
		}
		if s, ok := tok.(string); ok && wantKey && s == name {
			// start is before any separator and space before the key.
			return start + int64(bytes.IndexByte(b[start:], '"'))
		}
		switch tok {
		case json.Delim('{'):
			inObject = append(inObject, true)
			wantKey = true
			continue
		case json.Delim('['):
			inObject = append(inObject, false)
			wantKey = false
			continue
		case json.Delim('}'), json.Delim(']'):
			inObject = inObject[:len(inObject)-1]
		default:
			if wantKey { // a key: its value comes next
				wantKey = false
				continue
			}
		}
		// A value ended: in an object, a key (or the end) comes next.
		wantKey = len(inObject) > 0 && inObject[len(inObject)-1]
	}
}
