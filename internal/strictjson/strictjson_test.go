package strictjson

import (
	"errors"
	"testing"
)

func TestDecode(t *testing.T) {
	type conf struct {
		Name string `json:"name"`
	}
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
