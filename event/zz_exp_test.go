package event

import (
	"bytes"
	"context"
	"testing"

	"github.com/go-json-experiment/json/jsontext"
)

func walk(dec *jsontext.Decoder, b []byte) int {
	bb := bytes.NewBuffer(b)
	dec.Reset(bb)
	n := 0
	for {
		k := dec.PeekKind()
		if k == 0 {
			break
		}
		if k == '"' {
			v, err := dec.ReadValue()
			if err != nil {
				break
			}
			n += len(v)
			continue
		}
		if _, err := dec.ReadToken(); err != nil {
			break
		}
		n++
	}
	return n
}

func BenchmarkExpWalk(b *testing.B) {
	k, _ := genKey(b, false)
	st := buildStatement(b)
	env, _ := SignEnvelope(context.Background(), st, k)
	b.Logf("env %d st %d\n%s\n%s", len(env), len(st), env, st)
	dec := jsontext.NewDecoder(bytes.NewBuffer(nil))
	for b.Loop() {
		walk(dec, env)
		walk(dec, st)
	}
}
