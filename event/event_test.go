package event

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// genKey returns a new signing key and its PEM public key.
func genKey(t testing.TB, ecdsaKey bool) (SigningKey, []byte) {
	t.Helper()
	kind := KeyEd25519
	if ecdsaKey {
		kind = KeyECDSAP256
	}
	priv, pub, err := GenerateKey(kind)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := LoadSigningKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return sk, pub
}

var digest = Digest{Alg: "sha256", Hex: strings.Repeat("0123456789abcdef", 4)}

func buildStatement(t testing.TB) []byte {
	t.Helper()
	p, err := NewProvenance(BuildSpec{
		BuilderID: "https://ci.example.com/builder@v1", BuildType: "https://ci.example.com/make@v1",
		SourceRepo: "git+https://git.example.com/app", SourceCommit: strings.Repeat("a1", 20),
		InvocationID: "run-42", StartedOn: time.Unix(1700000000, 0), FinishedOn: time.Unix(1700000600, 0),
		Dependencies: []Dependency{{URI: "pkg:golang/example.com/dep@v1.0.0", Digest: map[string]string{"sha256": digest.Hex}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	st, err := NewStatement(ProvenancePredicateType, []Subject{{Name: "app.tar.gz", Digest: digest}}, p)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestBuildEventRoundTrip(t *testing.T) {
	for _, useECDSA := range []bool{false, true} {
		k, pubPEM := genKey(t, useECDSA)
		env, err := SignEnvelope(context.Background(), buildStatement(t), k)
		if err != nil {
			t.Fatal(err)
		}
		e, err := ParseEnvelope(env)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(e.Canonical(), env) {
			t.Errorf("SignEnvelope output is not canonical")
		}
		pub, err := LoadKey(pubPEM)
		if err != nil {
			t.Fatal(err)
		}
		if err := pub.Verify(context.Background(), e.PAE(), e.Signatures[0].Sig); err != nil {
			t.Errorf("signature does not verify with the public key: %v", err)
		}
		id, _ := pub.KeyID()
		if e.Signatures[0].KeyID != id {
			t.Errorf("key id %q, want %q", e.Signatures[0].KeyID, id)
		}
		ev, err := ParseStatement(e.Payload)
		if err != nil {
			t.Fatal(err)
		}
		b := ev.Build
		if ev.Type != TypeBuild || b == nil || b.BuilderID != "https://ci.example.com/builder@v1" || b.SourceCommit != strings.Repeat("a1", 20) ||
			b.SourceRepo != "git+https://git.example.com/app" || b.InvocationID != "run-42" || !b.FinishedOn.Equal(time.Unix(1700000600, 0)) {
			t.Errorf("parsed build %+v", b)
		}
		if !ev.HasSubject(digest) || len(ev.Subjects) != 1 {
			t.Errorf("subjects %v", ev.Subjects)
		}
	}
}

func TestCanonicalIgnoresSerialization(t *testing.T) {
	k1, _ := genKey(t, false)
	k2, _ := genKey(t, true)
	env, err := SignEnvelope(context.Background(), buildStatement(t), k1, k2)
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		PayloadType string `json:"payloadType"`
		Payload     string `json:"payload"`
		Signatures  []struct {
			KeyID string `json:"keyid"`
			Sig   string `json:"sig"`
		} `json:"signatures"`
	}
	if err := json.Unmarshal(env, &raw); err != nil {
		t.Fatal(err)
	}
	// Other field order, white space and signature order.
	s0, s1 := raw.Signatures[0], raw.Signatures[1]
	alt := `{ "signatures": [ {"sig": "` + s1.Sig + `", "keyid": "` + s1.KeyID + `"},
		{"keyid": "` + s0.KeyID + `", "sig": "` + s0.Sig + `"} ],
		"payload": "` + raw.Payload + `", "payloadType": "` + raw.PayloadType + `" }`
	e, err := ParseEnvelope([]byte(alt))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(e.Canonical(), env) {
		t.Errorf("re-serialized envelope has another canonical form:\n%s\n%s", e.Canonical(), env)
	}
}

func TestAddSignatures(t *testing.T) {
	k1, _ := genKey(t, false)
	k2, _ := genKey(t, true)
	env, err := SignEnvelope(context.Background(), buildStatement(t), k1)
	if err != nil {
		t.Fatal(err)
	}
	env2, err := AddSignatures(context.Background(), env, k2, k1)
	if err != nil {
		t.Fatal(err)
	}
	e, err := ParseEnvelope(env2)
	if err != nil || len(e.Signatures) != 2 {
		t.Fatalf("after AddSignatures: %v signatures, %v", len(e.Signatures), err)
	}
	for _, s := range e.Signatures {
		v := Key(k1)
		if id, _ := k2.KeyID(); s.KeyID == id {
			v = k2
		}
		if err := v.Verify(context.Background(), e.PAE(), s.Sig); err != nil {
			t.Errorf("signature by %s: %v", s.KeyID, err)
		}
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func envJSON(payload string) string {
	return `{"payloadType":"application/vnd.in-toto+json","payload":"` + b64(payload) + `","signatures":[{"keyid":"k","sig":"c2ln"}]}`
}

func TestEnvelopeVectors(t *testing.T) {
	good := envJSON(`{}`)
	if _, err := ParseEnvelope([]byte(good)); err != nil {
		t.Fatalf("good envelope: %v", err)
	}
	for name, tc := range map[string]struct{ in, field string }{
		"malformed JSON":      {`{"payloadType":`, "envelope"},
		"duplicate field":     {`{"payloadType":"application/vnd.in-toto+json","payloadType":"x","payload":"e30=","signatures":[{"keyid":"k","sig":"c2ln"}]}`, "envelope"},
		"trailing data":       {good + `{}`, "envelope"},
		"unknown field":       {`{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[{"keyid":"k","sig":"c2ln"}],"x":1}`, "envelope"},
		"wrong payload type":  {`{"payloadType":"text/plain","payload":"e30=","signatures":[{"keyid":"k","sig":"c2ln"}]}`, "envelope.payloadType"},
		"bad base64 payload":  {`{"payloadType":"application/vnd.in-toto+json","payload":"!!","signatures":[{"keyid":"k","sig":"c2ln"}]}`, "envelope.payload"},
		"empty payload":       {`{"payloadType":"application/vnd.in-toto+json","payload":"","signatures":[{"keyid":"k","sig":"c2ln"}]}`, "envelope.payload"},
		"no signatures":       {`{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[]}`, "envelope.signatures"},
		"bad signature b64":   {`{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[{"keyid":"k","sig":"%%"}]}`, "envelope.signatures[0].sig"},
		"duplicate signature": {`{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[{"keyid":"k","sig":"c2ln"},{"keyid":"k","sig":"c2ln"}]}`, "envelope.signatures"},
		"too deep":            {strings.Repeat("[", 40) + strings.Repeat("]", 40), "envelope"},
	} {
		_, err := ParseEnvelope([]byte(tc.in))
		var fe *FieldError
		if !errors.As(err, &fe) || !errors.Is(err, ErrInvalid) || fe.Field != tc.field {
			t.Errorf("%s: %v, want a FieldError on %s", name, err, tc.field)
		}
	}
}

func statementJSON(predType, pred, subjectDigest string) string {
	return `{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"a","digest":{` + subjectDigest + `}}],"predicateType":"` + predType + `","predicate":` + pred + `}`
}

func TestStatementVectors(t *testing.T) {
	d := `"sha256":"` + digest.Hex + `"`
	sign := `{"algorithm":"ecdsa-p256-sha256","keyId":"k1","signature":"c2ln","buildIndex":3}`
	promote := `{"from":"dev","to":"staging","buildIndex":3,"decision":"approved","changeRef":"CHG-1"}`
	ev, err := ParseStatement([]byte(statementJSON(SignPredicateType, sign, d)))
	if err != nil || ev.Type != TypeSign || ev.Sign.BuildIndex != 3 {
		t.Fatalf("sign statement: %+v, %v", ev, err)
	}
	ev, err = ParseStatement([]byte(statementJSON(PromotePredicateType, promote, d)))
	if err != nil || ev.Type != TypePromote || ev.Promote.To != "staging" || ev.Promote.ChangeRef != "CHG-1" {
		t.Fatalf("promote statement: %+v, %v", ev, err)
	}
	for name, tc := range map[string]struct{ in, field string }{
		"duplicate field":        {`{"_type":"https://in-toto.io/Statement/v1","_type":"x"}`, "statement"},
		"wrong statement type":   {strings.Replace(statementJSON(SignPredicateType, sign, d), "Statement/v1", "Statement/v2", 1), "statement._type"},
		"uppercase digest":       {statementJSON(SignPredicateType, sign, strings.ToUpper(d)), "statement.subject[0].digest"},
		"short digest":           {statementJSON(SignPredicateType, sign, `"sha256":"abcd"`), "statement.subject[0].digest.sha256"},
		"md5 digest":             {statementJSON(SignPredicateType, sign, `"md5":"`+digest.Hex[:32]+`"`), "statement.subject[0].digest"},
		"unknown predicate type": {statementJSON("https://example.com/x", sign, d), "statement.predicateType"},
		"sign bad signature":     {statementJSON(SignPredicateType, `{"algorithm":"ed25519","keyId":"k","signature":"%","buildIndex":1}`, d), "statement.predicate.signature"},
		"sign negative index":    {statementJSON(SignPredicateType, `{"algorithm":"ed25519","keyId":"k","signature":"c2ln","buildIndex":-1}`, d), "statement.predicate"},
		"promote not approved":   {statementJSON(PromotePredicateType, `{"to":"prod","buildIndex":1,"decision":"denied"}`, d), "statement.predicate.decision"},
		"promote same env":       {statementJSON(PromotePredicateType, `{"from":"prod","to":"prod","buildIndex":1,"decision":"approved"}`, d), "statement.predicate.to"},
		"build without builder":  {statementJSON(ProvenancePredicateType, `{"buildDefinition":{"buildType":"t","externalParameters":{"source":{"repository":"r","commit":"`+strings.Repeat("a", 40)+`"}}},"runDetails":{"builder":{}}}`, d), "statement.predicate"},
		"build without source":   {statementJSON(ProvenancePredicateType, `{"buildDefinition":{"buildType":"t","externalParameters":{"x":1}},"runDetails":{"builder":{"id":"b"}}}`, d), "statement.predicate.buildDefinition"},
		"build bad commit":       {statementJSON(ProvenancePredicateType, `{"buildDefinition":{"buildType":"t","externalParameters":{"source":{"repository":"r","commit":"main"}}},"runDetails":{"builder":{"id":"b"}}}`, d), "statement.predicate.buildDefinition.externalParameters.source.commit"},
		"long string":            {statementJSON(SignPredicateType, `{"algorithm":"ed25519","keyId":"`+strings.Repeat("k", MaxString+1)+`","signature":"c2ln","buildIndex":1}`, d), "statement.predicate.keyId"},
	} {
		_, err := ParseStatement([]byte(tc.in))
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%s: %v, want a FieldError on %s", name, err, tc.field)
		}
	}
}

func TestParseDigest(t *testing.T) {
	if d, err := ParseDigest(digest.String()); err != nil || d != digest {
		t.Errorf("ParseDigest(%s) = %v, %v", digest, d, err)
	}
	for _, s := range []string{"", "sha256", "sha256:", "sha1:" + digest.Hex[:40], "sha512:" + digest.Hex, "sha256:" + strings.ToUpper(digest.Hex), "sha256:" + digest.Hex[:63] + "g"} {
		if _, err := ParseDigest(s); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseDigest(%q) accepted", s)
		}
	}
}

func FuzzParseEnvelope(f *testing.F) {
	f.Add([]byte(envJSON(`{}`)))
	f.Add([]byte(`{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[{"keyid":"","sig":"c2ln"},{"keyid":"a","sig":"c2lnMg=="}]}`))
	f.Add([]byte(`[[[[]]]]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ParseEnvelope(b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error not ErrInvalid: %v", err)
			}
			return
		}
		// The canonical form parses to the same envelope and is a fixed point.
		c := e.Canonical()
		e2, err := ParseEnvelope(c)
		if err != nil {
			t.Fatalf("canonical form does not parse: %v", err)
		}
		if !bytes.Equal(e2.Canonical(), c) {
			t.Fatalf("canonical form is not a fixed point")
		}
	})
}

func FuzzParseStatement(f *testing.F) {
	d := `"sha256":"` + digest.Hex + `"`
	f.Add([]byte(statementJSON(SignPredicateType, `{"algorithm":"ed25519","keyId":"k","signature":"c2ln","buildIndex":1}`, d)))
	f.Add([]byte(statementJSON(PromotePredicateType, `{"from":"dev","to":"staging","buildIndex":3,"decision":"approved"}`, d)))
	f.Add(buildStatement(f))
	f.Add([]byte(keyringStatement()))
	f.Add([]byte(revokeStatement(revokePred)))
	f.Add([]byte(quarantineStatement(`{"action":"unquarantine","reason":"r","quarantineIndex":1}`)))
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := ParseStatement(b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error not ErrInvalid: %v", err)
			}
			return
		}
		if (ev.Build != nil) != (ev.Type == TypeBuild) || (ev.Sign != nil) != (ev.Type == TypeSign) || (ev.Promote != nil) != (ev.Type == TypePromote) ||
			(ev.Keyring != nil) != (ev.Type == TypeKeyring) || (ev.Revoke != nil) != (ev.Type == TypeRevoke) ||
			(ev.Quarantine != nil) != (ev.Type == TypeQuarantine || ev.Type == TypeUnquarantine) {
			t.Fatalf("event %+v: type and predicate disagree", ev)
		}
		if len(ev.Subjects) == 0 {
			t.Fatal("event without subjects")
		}
	})
}

func BenchmarkParseEvent(b *testing.B) {
	k, _ := genKey(b, false)
	env, err := SignEnvelope(context.Background(), buildStatement(b), k)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(env)))
	for b.Loop() {
		e, err := ParseEnvelope(env)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ParseStatement(e.Payload); err != nil {
			b.Fatal(err)
		}
	}
}
