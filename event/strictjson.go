package event

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/go-json-experiment/json/jsontext"
)

// Limits on decoded JSON.
const (
	// MaxDepth is the deepest nesting of objects and arrays.
	MaxDepth = 32
	// MaxTokens caps the JSON tokens of one document.
	MaxTokens = 20000
	// MaxString caps one JSON string (the envelope's payload excepted,
	// which the entry size cap bounds).
	MaxString = 16 << 10
)

// checkJSON checks that b is one well-formed JSON value with no duplicate
// object names, within MaxDepth and MaxTokens, and strings within maxString.
// what names the document in errors.
func checkJSON(b []byte, what string, maxString int) error {
	dec := jsontext.NewDecoder(bytes.NewReader(b)) // rejects duplicate names by default
	tokens, done := 0, false
	for {
		tok, err := dec.ReadToken()
		if errors.Is(err, io.EOF) && done {
			break
		}
		if err == nil && done {
			return &FieldError{Field: what, Reason: "trailing data after the JSON value"}
		}
		if err != nil {
			return &FieldError{Field: what, Reason: "malformed JSON: " + trimJSONError(err)}
		}
		if tokens++; tokens > MaxTokens {
			return &FieldError{Field: what, Reason: fmt.Sprintf("more than %d JSON tokens", MaxTokens)}
		}
		if d := dec.StackDepth(); d > MaxDepth {
			return &FieldError{Field: what, Reason: fmt.Sprintf("nested deeper than %d", MaxDepth)}
		}
		if tok.Kind() == '"' && len(tok.String()) > maxString {
			return &FieldError{Field: what + strings.ReplaceAll(string(dec.StackPointer()), "/", "."), Reason: fmt.Sprintf("string longer than %d bytes", maxString)}
		}
		done = dec.StackDepth() == 0
	}
	return nil
}

// trimJSONError shortens a jsontext error to its message.
func trimJSONError(err error) string {
	var se *jsontext.SyntacticError
	if errors.As(err, &se) {
		msg := se.Err.Error()
		if se.JSONPointer != "" {
			msg += " at " + string(se.JSONPointer)
		}
		return msg
	}
	return err.Error()
}
