// Package strictjson decodes provlog's JSON configuration files (keyring,
// auth file, gate policy) strictly: one JSON value, no unknown fields and
// nothing after it, so that a typo or a stray fragment is an error rather
// than a setting silently ignored.
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// ErrMalformed is returned (wrapped) for input that is not exactly one JSON
// value of v's shape.
var ErrMalformed = errors.New("malformed")

// Decode decodes b into v, refusing unknown fields and trailing data.
func Decode(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: trailing data", ErrMalformed)
	}
	return nil
}
