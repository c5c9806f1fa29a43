package strictjson

import (
	"errors"
	"io"
	"strings"
	"testing"
)

type conf struct {
	Name string `json:"name"`
	Keys []struct {
		Name  string   `json:"name"`
		Roles []string `json:"roles"`
	} `json:"keys"`
}

func TestDecode(t *testing.T) {
	var c conf
	if err := Decode([]byte(` {"name":"a"} `), &c); err != nil || c.Name != "a" {
		t.Fatalf("Decode = %+v, %v", c, err)
	}
	for name, in := range map[string]string{
		"unknown field": `{"name":"a","x":1}`,
		"trailing data": `{"name":"a"} {"name":"b"}`,
		"trailing ]":    `{"name":"a"}]`,
		"not JSON":      `name: a`,
		"wrong type":    `{"name":1}`,
		"empty":         ``,
	} {
		if err := Decode([]byte(in), &conf{}); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Decode = %v, want ErrMalformed", name, err)
		}
	}
}

// TestDecodeErrorsSayWhere checks that each kind of error carries the line
// and column of what is wrong, including a file cut short (which
// encoding/json reports as a bare "unexpected EOF").
func TestDecodeErrorsSayWhere(t *testing.T) {
	const keyring = `{
  "name": "ring",
  "keys": [
    {"name": "ci", "roles": ["builder"]},
    {"name": "bob", "roles": ["approver"]}
  ]
}
`
	for _, tc := range []struct {
		name, in     string
		line, column int
		says         string
		is           error
	}{
		{"truncated", keyring[:strings.Index(keyring, `{"name": "bob"`)+9], 5, 14, "truncated", io.ErrUnexpectedEOF},
		{"truncated at a line end", keyring[:strings.Index(keyring, "  ]")], 6, 1, "truncated", io.ErrUnexpectedEOF},
		{"syntax error", strings.Replace(keyring, `"bob",`, `"bob";`, 1), 5, 19, "invalid character ';'", nil},
		// A value of the wrong type is placed at its last character.
		{"wrong type", strings.Replace(keyring, `["approver"]`, `"approver"`, 1), 5, 39, "cannot unmarshal string", nil},
		{"unknown field", strings.Replace(keyring, `"roles": ["approver"]`, `"rolez": ["approver"]`, 1), 5, 21, `unknown field "rolez"`, nil},
		{"trailing data", keyring + "]\n", 8, 1, "trailing data", nil},
		{"empty", "", 1, 1, "empty input", nil},
		{"multi-byte characters counted once", "{\"name\": \"é\" x}", 1, 14, "invalid character 'x'", nil},
	} {
		err := Decode([]byte(tc.in), &conf{})
		var e *Error
		if !errors.As(err, &e) || !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Decode = %v, want an *Error wrapping ErrMalformed", tc.name, err)
			continue
		}
		if e.Line != tc.line || e.Column != tc.column || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: Decode = %q at %d:%d, want %q at %d:%d", tc.name, err, e.Line, e.Column, tc.says, tc.line, tc.column)
		}
		if want := "malformed at line "; !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%s: %q does not start with %q", tc.name, err, want)
		}
		if tc.is != nil && !errors.Is(err, tc.is) {
			t.Errorf("%s: Decode = %v, want it to wrap %v", tc.name, err, tc.is)
		}
	}
}

func TestKeyOffset(t *testing.T) {
	in := `{"a": {"name": 1, "x": [{"x": 2}]}, "name": "x", "y": ["name"]}`
	for name, want := range map[string]int64{
		"a":    1,
		"name": 7,
		"x":    18,
		"y":    49,
		"nope": 0, // not a key, though it could be a string value
	} {
		if got := keyOffset([]byte(in), name); got != want {
			t.Errorf("keyOffset(%q) = %d, want %d", name, got, want)
		}
	}
	if got := keyOffset([]byte(`["x", {"x": 1}]`), "x"); got != 7 {
		t.Errorf("keyOffset skips a string in an array: got %d, want 7", got)
	}
}

// FuzzDecode checks that any input decodes or fails with an *Error whose
// place is within the input.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"name": "a", "keys": [{"name": "b", "roles": ["x"]}]}`))
	f.Add([]byte(`{"keys": [{"name": "b", "rolez": []}]}`))
	f.Add([]byte("{\n  \"name\": \"é\",\n  \"keys\": ["))
	f.Add([]byte(`{"name": 1}`))
	f.Add([]byte(`{} ]`))
	f.Fuzz(func(t *testing.T, in []byte) {
		err := Decode(in, &conf{})
		if err == nil {
			return
		}
		var e *Error
		if !errors.As(err, &e) || !errors.Is(err, ErrMalformed) {
			t.Fatalf("Decode(%q) = %v, want an *Error wrapping ErrMalformed", in, err)
		}
		lines := strings.Split(string(in), "\n")
		if e.Line < 1 || e.Line > len(lines) || e.Column < 1 || e.Column > len([]rune(lines[e.Line-1]))+1 {
			t.Fatalf("Decode(%q) = %v: line %d, column %d is outside the input", in, err, e.Line, e.Column)
		}
	})
}
