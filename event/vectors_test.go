package event

import (
	"errors"
	"testing"
)

// canonicalVectors are envelopes and their canonical encodings (the log's
// leaves) as captured from the encoding/json-based Canonical: leaves must
// never change. An empty canonical means the envelope is refused on field.
var canonicalVectors = []struct{ in, canonical, field string }{
	{
		`{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[{"keyid":"k","sig":"c2ln"}]}`,
		`{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[{"keyid":"k","sig":"c2ln"}]}`, "",
	},
	{
		" { \"signatures\" : [ {\"sig\":\"c2lnMg==\",\"keyid\":\"b\"}, {\"keyid\":\"a\",\"sig\":\"c2lnMQ==\"}, {\"keyid\":\"b\",\"sig\":\"YWJj\"} ] ,\n\t\t  \"payload\" : \"eyJfdHlwZSI6MX0=\", \"payloadType\" : \"application/vnd.in-toto+json\" } ",
		`{"payloadType":"application/vnd.in-toto+json","payload":"eyJfdHlwZSI6MX0=","signatures":[{"keyid":"a","sig":"c2lnMQ=="},{"keyid":"b","sig":"YWJj"},{"keyid":"b","sig":"c2lnMg=="}]}`, "",
	},
	{
		`{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[{"keyid":"<a&b>\u2028\u2029 \u00e9\"\\/x","sig":"c2ln"},{"keyid":"","sig":"AAEC"}]}`,
		`{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[{"keyid":"","sig":"AAEC"},{"keyid":"\u003ca\u0026b\u003e\u2028\u2029 é\"\\/x","sig":"c2ln"}]}`, "",
	},
	{
		`{"payloadType":"application\/vnd.in-toto+json","payload":"e3\n0=\r","signatures":[{"keyid":"\u006b\ud83d\ude00","sig":"c2\u006cn"},{"keyid":"日本","sig":"//79/A=="}]}`,
		`{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[{"keyid":"k😀","sig":"c2ln"},{"keyid":"日本","sig":"//79/A=="}]}`, "",
	},
	{
		`{"payloadType":"application/vnd.in-toto+json","payload":"PD4mJyI=","signatures":[{"keyid":"k","sig":"c2ln"},{"keyid":"k","sig":"c2lm"}]}`,
		`{"payloadType":"application/vnd.in-toto+json","payload":"PD4mJyI=","signatures":[{"keyid":"k","sig":"c2lm"},{"keyid":"k","sig":"c2ln"}]}`, "",
	},
	{
		`{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[null,{"keyid":"x"}]}`,
		"", "envelope.signatures[0].sig",
	},
}

func TestCanonicalVectors(t *testing.T) {
	for _, v := range canonicalVectors {
		e, err := ParseEnvelope([]byte(v.in))
		if v.canonical == "" {
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != v.field {
				t.Errorf("%s: %v, want a FieldError on %s", v.in, err, v.field)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", v.in, err)
			continue
		}
		if got := string(e.Canonical()); got != v.canonical {
			t.Errorf("%s: canonical\n%s\nwant\n%s", v.in, got, v.canonical)
		}
	}
}

// TestCanonicalOfBuiltEnvelopes covers envelopes not from ParseEnvelope:
// no signatures, or key ids with what JSON escapes.
func TestCanonicalOfBuiltEnvelopes(t *testing.T) {
	for _, e := range []*Envelope{
		{},
		{Payload: []byte("x"), Signatures: []Signature{}},
		{Payload: []byte("x"), Signatures: []Signature{{KeyID: "a\x00\x1f\x7f\b\f\n\r\t", Sig: []byte{0}}}},
		{Payload: []byte("x"), Signatures: []Signature{{KeyID: "\xff\xfe bad UTF-8 \u2028", Sig: []byte{1}}, {KeyID: "ok"}}},
	} {
		if got, want := e.Canonical(), refCanonical(e); string(got) != string(want) {
			t.Errorf("%+v: canonical\n%s\nwant\n%s", e, got, want)
		}
	}
}
