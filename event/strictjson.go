package event

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

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
//
// The parsers check all this as they go (see jsonReader) and run checkJSON
// only once they have met an error, since its errors come first: it names
// the offending field.
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

// errLimit reports a document over MaxDepth, MaxTokens or the string cap.
// Parsers return it as is; their callers rerun checkJSON on any error,
// which names the offending field.
var errLimit = errors.New("over the JSON limits")

// A jsonReader reads one JSON document strictly in a single pass, token by
// token, enforcing everything checkJSON does: well-formed, no duplicate
// object names, one value, within MaxDepth, MaxTokens and its string cap.
// Every value must be consumed through its methods (never through the
// Decoder directly) so that the limits see every token.
//
// Errors from its methods are syntax or limit errors; once one occurs the
// document is malformed and parsing must stop (bad is then set).
type jsonReader struct {
	dec       *jsontext.Decoder
	in        bytes.Buffer // the decoder reads it in place, without a copy
	src       []byte
	text      string // src, once string needs it
	tokens    int
	maxString int
	depth0    int   // depth of the document's root in an enclosing document
	bad       error // the first syntax or limit error
	scratch   []byte
}

var readerPool = sync.Pool{New: func() any {
	r := &jsonReader{}
	r.dec = jsontext.NewDecoder(&r.in) // rejects duplicate names by default
	return r
}}

// newReader returns a pooled reader of src; release it with free.
func newReader(src []byte, maxString, depth0 int) *jsonReader {
	r := readerPool.Get().(*jsonReader)
	r.in = *bytes.NewBuffer(src)
	r.dec.Reset(&r.in)
	r.src, r.text, r.tokens, r.maxString, r.depth0, r.bad = src, "", 0, maxString, depth0, nil
	return r
}

// free returns r to the pool, dropping its references to the input.
func (r *jsonReader) free() {
	r.in = bytes.Buffer{}
	r.dec.Reset(&r.in)
	r.src, r.text, r.bad = nil, "", nil
	if cap(r.scratch) > MaxString {
		r.scratch = nil
	}
	readerPool.Put(r)
}

func (r *jsonReader) fail(err error) error {
	if r.bad == nil {
		r.bad = err
	}
	return r.bad
}

// count counts one token against MaxTokens and checks the depth.
func (r *jsonReader) count() error {
	if r.tokens++; r.tokens > MaxTokens || r.depth0+r.dec.StackDepth() > MaxDepth {
		return r.fail(errLimit)
	}
	return nil
}

// peek returns the kind of the next token, or 0 if it is malformed (the
// next read then reports the error).
func (r *jsonReader) peek() jsontext.Kind { return r.dec.PeekKind() }

// delim reads the next token, which must be want ('{', '}', '[' or ']'),
// or for want 'n' a null. It reports false for any other token, which it
// leaves unread.
func (r *jsonReader) delim(want jsontext.Kind) (bool, error) {
	if r.bad != nil {
		return false, r.bad
	}
	if k := r.dec.PeekKind(); k != want {
		if k == 0 {
			_, err := r.dec.ReadToken()
			return false, r.fail(cmp.Or(err, io.ErrUnexpectedEOF))
		}
		return false, nil
	}
	if _, err := r.dec.ReadToken(); err != nil {
		return false, r.fail(err)
	}
	return true, r.count()
}

// more reports whether the current object or array has another member,
// consuming its end ('}' or ']') if not.
func (r *jsonReader) more() (bool, error) {
	if r.bad != nil {
		return false, r.bad
	}
	switch r.dec.PeekKind() {
	case '}', ']':
		if _, err := r.dec.ReadToken(); err != nil {
			return false, r.fail(err)
		}
		return false, r.count()
	case 0:
		_, err := r.dec.ReadToken()
		return false, r.fail(cmp.Or(err, io.ErrUnexpectedEOF))
	}
	return true, nil
}

// str reads a string (or an object name), which must be next, and returns
// it unescaped. The result is valid only until the next read.
func (r *jsonReader) str() ([]byte, error) {
	_, s, err := r.rawStr()
	return s, err
}

// string reads a string like str and returns it as a string. Strings
// without escapes share the memory of one copy of the whole input, made on
// the first call: one allocation per document rather than one per string.
func (r *jsonReader) string() (string, error) {
	v, s, err := r.rawStr()
	if err != nil || len(s) == 0 {
		return "", err
	}
	if len(s) != len(v)-2 { // it had escapes: s is in scratch
		return string(s), nil
	}
	if r.text == "" {
		r.text = string(r.src)
	}
	end := int(r.dec.InputOffset())
	return r.text[end-len(v)+1 : end-1], nil
}

// strSpan reads a string like str but returns where its raw JSON (quotes
// included) lies in the input, to be unescaped later with unquote.
func (r *jsonReader) strSpan() (span [2]int, err error) {
	v, _, err := r.rawStr()
	if err != nil {
		return span, err
	}
	end := int(r.dec.InputOffset())
	return [2]int{end - len(v), end}, nil
}

func (r *jsonReader) rawStr() (jsontext.Value, []byte, error) {
	if r.bad != nil {
		return nil, nil, r.bad
	}
	v, err := r.dec.ReadValue()
	if err != nil {
		return nil, nil, r.fail(err)
	}
	if err := r.count(); err != nil {
		return nil, nil, err
	}
	if v.Kind() != '"' {
		return nil, nil, r.fail(errors.New("internal error: not a string"))
	}
	s := v[1 : len(v)-1]
	if bytes.IndexByte(s, '\\') >= 0 {
		if r.scratch, err = jsontext.AppendUnquote(r.scratch[:0], v); err != nil {
			return nil, nil, r.fail(err)
		}
		s = r.scratch
	}
	if len(s) > r.maxString {
		return nil, nil, r.fail(errLimit)
	}
	return v, s, nil
}

// unquote returns the string whose raw JSON is src[span[0]:span[1]],
// unescaped, or "" for the zero span; it appends to dst only if the string
// has escapes.
func unquote(dst, src []byte, span [2]int) ([]byte, error) {
	if span == [2]int{} {
		return nil, nil
	}
	v := src[span[0]:span[1]]
	if bytes.IndexByte(v, '\\') < 0 {
		return v[1 : len(v)-1], nil
	}
	return jsontext.AppendUnquote(dst, v)
}

// scalar reads a number, true, false or null, which must be next, and
// returns its JSON text (valid until the next read).
func (r *jsonReader) scalar() (jsontext.Value, error) {
	if r.bad != nil {
		return nil, r.bad
	}
	v, err := r.dec.ReadValue()
	if err != nil {
		return nil, r.fail(err)
	}
	return v, r.count()
}

// skip reads the next value whatever it is, checking the limits.
func (r *jsonReader) skip() error {
	depth := r.dec.StackDepth()
	if err := r.step(); err != nil {
		return err
	}
	return r.skipTo(depth)
}

// skipTo reads on until the decoder is back at depth: the rest of the
// values it is in below that depth.
func (r *jsonReader) skipTo(depth int) error {
	for r.dec.StackDepth() > depth {
		if err := r.step(); err != nil {
			return err
		}
	}
	return nil
}

// step reads one token whatever it is, checking the limits.
func (r *jsonReader) step() error {
	var err error
	switch r.peek() {
	case '"':
		_, err = r.str()
	case '{', '[':
		_, err = r.dec.ReadToken()
		if err == nil {
			err = r.count()
		}
	case '}', ']':
		_, err = r.more()
	default:
		_, err = r.scalar()
	}
	if err != nil {
		return r.fail(err)
	}
	return nil
}

// end checks that nothing but white space follows the value.
func (r *jsonReader) end() error {
	if r.bad != nil {
		return r.bad
	}
	if _, err := r.dec.ReadToken(); !errors.Is(err, io.EOF) {
		return r.fail(cmp.Or(err, errors.New("trailing data after the JSON value")))
	}
	return nil
}

// object reads a JSON object, calling member with each member's name;
// member must read the value. If the next value is not an object, object
// returns notObject().
func (r *jsonReader) object(notObject func() error, member func(name []byte) error) error {
	if ok, err := r.delim('{'); err != nil {
		return err
	} else if !ok {
		return notObject()
	}
	for {
		if more, err := r.more(); err != nil || !more {
			return err
		}
		name, err := r.str()
		if err != nil {
			return err
		}
		if err := member(name); err != nil {
			return err
		}
	}
}

// mismatch returns the error for a value of the wrong kind: the syntax
// error if the next token is malformed, else a plain error saying what
// was wanted.
func (r *jsonReader) mismatch(want string) error {
	if r.bad != nil {
		return r.bad
	}
	if r.peek() == 0 {
		_, err := r.dec.ReadToken()
		return r.fail(cmp.Or(err, io.ErrUnexpectedEOF))
	}
	return errors.New(want)
}

// fieldErr returns a semantic error as a *FieldError on field, or the
// syntax or limit error met first.
func (r *jsonReader) fieldErr(field string, err error) error {
	if r.bad != nil {
		return r.bad
	}
	var fe *FieldError
	if errors.As(err, &fe) {
		return err
	}
	return &FieldError{Field: field, Reason: err.Error()}
}
