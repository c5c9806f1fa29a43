package event

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// Fixed public keys (three Ed25519, one ECDSA P-256) and their key ids.
var trustKeys = []struct{ pem, id string }{
	{"-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGIfIJ2qznk+vdXIPJ2RZrwmvdM10TdBx3k6fVdtv3BQ=\n-----END PUBLIC KEY-----\n", "302fd7107aff165ecf89c05b314cd66af7897f668a2056d43e9453cced96bd5f"},
	{"-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAwyM8UVL4wBb7NMUadQ+mVsk2jDkuCsAPVORlhv9lzzI=\n-----END PUBLIC KEY-----\n", "64afa1d53d871dd1465d1e3a842272b69eec84e0db1f8d822d53f4eddbaf0cf4"},
	{"-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAJxvLjhalsWjcGWzhEOQLqXWllne4LmJn/UESe1kBhSY=\n-----END PUBLIC KEY-----\n", "5d093c98a272339bb26500d9971bdf48a471b6611b4e8318e60241641c93bda8"},
	{"-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEJCerxB+5uHb64Nkb47JUsPqki3Z6\ntCubMJ0jE5+J2KiD75lA/1DyukjGKTOIUWiOl7TVeVLa9rSiW4//onynlw==\n-----END PUBLIC KEY-----\n", "4aef97c1de2cacbd70c1bd0f0336a81416d719fe3d6123514424679bb811125b"},
}

// pemJSON is key i's PEM as a JSON string.
func pemJSON(i int) string {
	b, _ := json.Marshal(trustKeys[i].pem)
	return string(b)
}

// keyringPred is a keyring predicate of keys 0 (ci), 1 (root1), 2 (root2)
// and 3 (alice), with edit applied to its JSON text: pairs of old, new.
func keyringPred(edit ...string) string {
	s := `{"keys":[` +
		`{"name":"ci","publicKey":` + pemJSON(0) + `,"roles":["builder","signer"],"notBefore":0,"notAfter":5000},` +
		`{"name":"root1","publicKey":` + pemJSON(1) + `,"roles":[]},` +
		`{"name":"root2","publicKey":` + pemJSON(2) + `,"roles":["security"]},` +
		`{"name":"alice","publicKey":` + pemJSON(3) + `,"roles":["promoter","approver"],"notBefore":10}],` +
		`"environments":[{"name":"dev"},{"name":"staging","from":"dev"},{"name":"prod","from":"staging","approvals":2,"reproducible":2}],` +
		`"roles":{"attester":{"predicateTypes":["https://spdx.dev/Document"]}},` +
		`"admins":{"keys":["root1","root2"],"threshold":2}}`
	return strings.NewReplacer(edit...).Replace(s)
}

// subjectsJSON are subjects with the digests of the given key ids.
func subjectsJSON(ids ...string) string {
	var ss []string
	for i, id := range ids {
		ss = append(ss, fmt.Sprintf(`{"name":"k%d","digest":{"sha256":"%s"}}`, i, id))
	}
	return "[" + strings.Join(ss, ",") + "]"
}

func trustStatement(predType, subjects, pred string) string {
	return `{"_type":"https://in-toto.io/Statement/v1","subject":` + subjects + `,"predicateType":"` + predType + `","predicate":` + pred + `}`
}

var allKeyIDs = []string{trustKeys[0].id, trustKeys[1].id, trustKeys[2].id, trustKeys[3].id}

func keyringStatement(edit ...string) string {
	return trustStatement(KeyringPredicateType, subjectsJSON(allKeyIDs...), keyringPred(edit...))
}

func revokeStatement(pred string) string {
	return trustStatement(RevokePredicateType, subjectsJSON(trustKeys[0].id), pred)
}

func quarantineStatement(pred string) string {
	return trustStatement(QuarantinePredicateType, `[{"name":"app","digest":{"sha256":"`+digest.Hex+`"}}]`, pred)
}

const revokePred = `{"keyId":"302fd7107aff165ecf89c05b314cd66af7897f668a2056d43e9453cced96bd5f","compromisedSince":17,"reason":"laptop stolen"}`

func TestKeyringStatement(t *testing.T) {
	ev, err := ParseStatement([]byte(keyringStatement()))
	if err != nil {
		t.Fatal(err)
	}
	k := ev.Keyring
	if ev.Type != TypeKeyring || k == nil || len(k.Keys) != 4 || len(k.Environments) != 3 || len(ev.Subjects) != 4 {
		t.Fatalf("parsed %+v %+v", ev, k)
	}
	for i, key := range k.Keys {
		if key.KeyID != trustKeys[i].id || key.Key == nil {
			t.Errorf("keys[%d]: id %s, want %s", i, key.KeyID, trustKeys[i].id)
		}
		if id, _ := key.Key.KeyID(); id != key.KeyID {
			t.Errorf("keys[%d]: Key's id %s, KeyID %s", i, id, key.KeyID)
		}
	}
	ci := k.Keys[0]
	if ci.Name != "ci" || !reflect.DeepEqual(ci.Roles, []string{"builder", "signer"}) || ci.NotBefore == nil || *ci.NotBefore != 0 || *ci.NotAfter != 5000 {
		t.Errorf("ci: %+v", ci)
	}
	if a := k.Keys[3]; *a.NotBefore != 10 || a.NotAfter != nil {
		t.Errorf("alice: %+v", a)
	}
	if len(k.Keys[1].Roles) != 0 {
		t.Errorf("root1 roles %v", k.Keys[1].Roles)
	}
	if e := k.Environments[2]; e != (KeyringEnvironment{Name: "prod", From: "staging", Approvals: 2, Reproducible: 2}) {
		t.Errorf("prod: %+v", e)
	}
	if !reflect.DeepEqual(k.Roles, map[string]KeyringRole{RoleAttester: {PredicateTypes: []string{SPDXPredicateType}}}) {
		t.Errorf("roles %+v", k.Roles)
	}
	if !reflect.DeepEqual(k.Admins, KeyringAdmins{Keys: []string{"root1", "root2"}, Threshold: 2}) {
		t.Errorf("admins %+v", k.Admins)
	}
	if got, want := ev.Summary(), "keys=4 environments=3 admins=2-of-2"; got != want {
		t.Errorf("summary %q, want %q", got, want)
	}
}

// TestKeyringChecks: each check of a keyring, refused naming the field,
// and its nearest accepted neighbour.
func TestKeyringChecks(t *testing.T) {
	const f = "statement.predicate."
	long := strings.Repeat("n", MaxKeyringName)
	for name, tc := range map[string]struct {
		in    string
		field string // "" for accepted
	}{
		"as is":                          {keyringStatement(), ""},
		"no key name":                    {keyringStatement(`"name":"ci"`, `"name":""`), f + "keys[0].name"},
		"key name at the cap":            {keyringStatement(`"name":"ci"`, `"name":"`+long+`"`), ""},
		"key name over the cap":          {keyringStatement(`"name":"ci"`, `"name":"`+long+`n"`), f + "keys[0].name"},
		"key name twice":                 {keyringStatement(`"name":"alice"`, `"name":"ci"`), f + "keys[3].name"},
		"no public key":                  {keyringStatement(`"publicKey":`+pemJSON(0), `"publicKey":null`), f + "keys[0].publicKey"},
		"public key not PEM":             {keyringStatement(`"publicKey":`+pemJSON(0), `"publicKey":"x"`), f + "keys[0].publicKey"},
		"public key over the cap":        {keyringStatement(`"publicKey":`+pemJSON(0), `"publicKey":"`+strings.Repeat("x", MaxKeyringPEM+1)+`"`), f + "keys[0].publicKey"},
		"public key file":                {keyringStatement(`"publicKey":`+pemJSON(0), `"publicKeyFile":"ci.pub"`), f + "keys[0].publicKey"},
		"the same key twice":             {keyringStatement(`"publicKey":`+pemJSON(3), `"publicKey":`+pemJSON(0)), f + "keys[3].publicKey"},
		"unknown role":                   {keyringStatement(`"roles":["builder","signer"]`, `"roles":["builder","deployer"]`), f + "keys[0].roles[1]"},
		"role twice":                     {keyringStatement(`"roles":["builder","signer"]`, `"roles":["signer","signer"]`), f + "keys[0].roles[1]"},
		"role null":                      {keyringStatement(`"roles":["builder","signer"]`, `"roles":[null]`), f + "keys[0].roles[0]"},
		"every role":                     {keyringStatement(`"roles":["builder","signer"]`, `"roles":["builder","signer","promoter","approver","attester","verifier","security"]`), ""},
		"no roles, not an admin":         {keyringStatement(`"roles":["builder","signer"]`, `"roles":[]`), f + "keys[0].roles"},
		"roles null, not an admin":       {keyringStatement(`"roles":["builder","signer"]`, `"roles":null`), f + "keys[0].roles"},
		"no roles, an admin":             {keyringStatement(`"roles":["security"]`, `"roles":[]`), ""},
		"window of one index":            {keyringStatement(`"notAfter":5000`, `"notAfter":0`), ""},
		"window backwards":               {keyringStatement(`"notBefore":0,`, `"notBefore":5001,`), f + "keys[0].notAfter"},
		"window null":                    {keyringStatement(`"notBefore":0,"notAfter":5000`, `"notBefore":null,"notAfter":null`), ""},
		"notBefore negative":             {keyringStatement(`"notBefore":0,`, `"notBefore":-1,`), f[:len(f)-1]},
		"notAfter too large":             {keyringStatement(`"notAfter":5000`, `"notAfter":18446744073709551616`), f[:len(f)-1]},
		"notAfter largest":               {keyringStatement(`"notAfter":5000`, `"notAfter":18446744073709551615`), ""},
		"no environment name":            {keyringStatement(`{"name":"dev"}`, `{"name":""}`), f + "environments[0].name"},
		"environment name over cap":      {keyringStatement(`{"name":"dev"}`, `{"name":"`+long+`x"}`), f + "environments[0].name"},
		"environment twice":              {keyringStatement(`{"name":"staging"`, `{"name":"dev"`), f + "environments[1].name"},
		"environment from itself":        {keyringStatement(`"from":"dev"`, `"from":"staging"`), f + "environments[1].from"},
		"environment from unknown":       {keyringStatement(`"from":"dev"`, `"from":"qa"`), f + "environments[1].from"},
		"environment from later":         {keyringStatement(`{"name":"dev"}`, `{"name":"dev","from":"prod"}`), ""},
		"approvals negative":             {keyringStatement(`"approvals":2`, `"approvals":-1`), f + "environments[2].approvals"},
		"approvals zero":                 {keyringStatement(`"approvals":2`, `"approvals":0`), ""},
		"approvals minus zero":           {keyringStatement(`"approvals":2`, `"approvals":-0`), ""},
		"approvals not an integer":       {keyringStatement(`"approvals":2`, `"approvals":1.5`), f[:len(f)-1]},
		"reproducible negative":          {keyringStatement(`"reproducible":2`, `"reproducible":-2`), f + "environments[2].reproducible"},
		"no environments":                {keyringStatement(`{"name":"dev"},{"name":"staging","from":"dev"},{"name":"prod","from":"staging","approvals":2,"reproducible":2}`, ``), ""},
		"unknown role in roles":          {keyringStatement(`"roles":{"attester"`, `"roles":{"deployer"`), f + "roles"},
		"empty predicate types":          {keyringStatement(`{"predicateTypes":["https://spdx.dev/Document"]}`, `{"predicateTypes":[]}`), f + "roles.attester.predicateTypes"},
		"null role":                      {keyringStatement(`{"predicateTypes":["https://spdx.dev/Document"]}`, `null`), f + "roles.attester.predicateTypes"},
		"empty predicate type":           {keyringStatement(`["https://spdx.dev/Document"]`, `["https://spdx.dev/Document",""]`), f + "roles.attester.predicateTypes[1]"},
		"security narrowed":              {keyringStatement(`"roles":{"attester"`, `"roles":{"security":{"predicateTypes":["x"]},"attester"`), ""},
		"roles empty":                    {keyringStatement(`{"attester":{"predicateTypes":["https://spdx.dev/Document"]}}`, `{}`), ""},
		"no admins, a key without roles": {keyringStatement(`"admins":{"keys":["root1","root2"],"threshold":2}`, `"admins":null`), f + "keys[1].roles"},
		"no admins":                      {keyringStatement(`"admins":{"keys":["root1","root2"],"threshold":2}`, `"admins":{}`, `"roles":[]`, `"roles":["verifier"]`), ""},
		"a threshold, no admins":         {keyringStatement(`"keys":["root1","root2"],"threshold":2`, `"keys":[],"threshold":1`), f + "admins.keys"},
		"no keys":                        {trustStatement(KeyringPredicateType, `[{"name":"no keys","digest":{"sha256":"`+NoKeysSubject.Digest.Hex+`"}}]`, `{"keys":[],"environments":[{"name":"dev"}]}`), ""},
		"no keys, a key's subject":       {trustStatement(KeyringPredicateType, subjectsJSON(allKeyIDs[0]), `{"keys":null}`), "statement.subject"},
		"no keys, but admins":            {trustStatement(KeyringPredicateType, `[{"digest":{"sha256":"`+NoKeysSubject.Digest.Hex+`"}}]`, `{"admins":{"keys":["root1"],"threshold":1}}`), f + "admins.keys[0]"},
		"no admin keys":                  {keyringStatement(`"keys":["root1","root2"]`, `"keys":[]`), f + "admins.keys"},
		"admin not a key":                {keyringStatement(`"keys":["root1","root2"]`, `"keys":["root1","root3"]`), f + "admins.keys[1]"},
		"admin twice":                    {keyringStatement(`"keys":["root1","root2"]`, `"keys":["root2","root2"]`), f + "admins.keys[1]"},
		"threshold zero":                 {keyringStatement(`"threshold":2`, `"threshold":0`), f + "admins.threshold"},
		"threshold missing":              {keyringStatement(`,"threshold":2`, ``), f + "admins.threshold"},
		"threshold over the admins":      {keyringStatement(`"threshold":2`, `"threshold":3`), f + "admins.threshold"},
		"threshold one":                  {keyringStatement(`"threshold":2`, `"threshold":1`), ""},
		"threshold a string":             {keyringStatement(`"threshold":2`, `"threshold":"2"`), f[:len(f)-1]},
		"keys not a list":                {keyringStatement(`"keys":[{"name":"ci"`, `"keys":{"x":[{"name":"ci"`, `-----END PUBLIC KEY-----\n","roles":["promoter","approver"],"notBefore":10}]`, `-----END PUBLIC KEY-----\n","roles":["promoter","approver"],"notBefore":10}]}`), f[:len(f)-1]},
		"key null":                       {keyringStatement(`"keys":[`, `"keys":[null,`), f + "keys[0].name"},
		"extensions":                     {keyringStatement(`"admins":{`, `"x":{"y":[1]},"admins":{"x":1,`, `{"name":"dev"}`, `{"name":"dev","x":null}`, `"name":"ci"`, `"name":"ci","publicKeyFile":"ignored","x":[]`, `{"predicateTypes"`, `{"x":true,"predicateTypes"`), ""},
		"duplicate key member":           {keyringStatement(`"name":"ci"`, `"name":"ci","name":"ci"`), "statement"},
		"duplicate role member":          {keyringStatement(`"roles":{"attester"`, `"roles":{"attester":{},"attester"`), "statement"},
		"duplicate environment field":    {keyringStatement(`"approvals":2`, `"approvals":2,"approvals":2`), "statement"},
		"subject missing":                {trustStatement(KeyringPredicateType, subjectsJSON(allKeyIDs[:3]...), keyringPred()), "statement.subject"},
		"subject extra":                  {trustStatement(KeyringPredicateType, subjectsJSON(append(allKeyIDs, digest.Hex)...), keyringPred()), "statement.subject"},
		"subject sha512":                 {trustStatement(KeyringPredicateType, subjectsJSON(allKeyIDs...)[:len(subjectsJSON(allKeyIDs...))-1]+`,{"digest":{"sha512":"`+strings.Repeat("a", 128)+`"}}]`, keyringPred()), "statement.subject"},
		"subject twice":                  {trustStatement(KeyringPredicateType, subjectsJSON(append(allKeyIDs, allKeyIDs[0])...), keyringPred()), ""},
		"subjects in another order":      {trustStatement(KeyringPredicateType, subjectsJSON(allKeyIDs[3], allKeyIDs[1], allKeyIDs[0], allKeyIDs[2]), keyringPred()), ""},
	} {
		checkParsed(t, name, tc.in, tc.field)
	}
}

// checkParsed parses a statement, wanting it accepted (field "") or
// refused with a FieldError on field, and the reference to agree.
func checkParsed(t *testing.T, name, in, field string) {
	t.Helper()
	ev, err := ParseStatement([]byte(in))
	if field == "" {
		if err != nil {
			t.Errorf("%s: %v", name, err)
		} else if ev.Summary() == "" {
			t.Errorf("%s: no summary", name)
		}
	} else {
		var fe *FieldError
		if !errors.As(err, &fe) || !errors.Is(err, ErrInvalid) || fe.Field != field {
			t.Errorf("%s: %v, want a FieldError on %s", name, err, field)
		}
	}
	checkStatementMatchesReference(t, []byte(in))
}

func TestRevokeChecks(t *testing.T) {
	ev, err := ParseStatement([]byte(revokeStatement(revokePred)))
	if err != nil {
		t.Fatal(err)
	}
	if want := (RevokePredicate{KeyID: trustKeys[0].id, CompromisedSince: 17, Reason: "laptop stolen"}); ev.Type != TypeRevoke || *ev.Revoke != want {
		t.Errorf("parsed %+v %+v", ev, ev.Revoke)
	}
	const f = "statement.predicate."
	edit := func(pairs ...string) string {
		return revokeStatement(strings.NewReplacer(pairs...).Replace(revokePred))
	}
	id := trustKeys[0].id
	for name, tc := range map[string]struct{ in, field string }{
		"as is":                       {revokeStatement(revokePred), ""},
		"no key id":                   {edit(`"keyId":"`+id+`",`, ``), f + "keyId"},
		"key id uppercase":            {edit(`"keyId":"`+id, `"keyId":"`+strings.ToUpper(id)), f + "keyId"},
		"key id short":                {edit(`"keyId":"`+id, `"keyId":"`+id[:63]), f + "keyId"},
		"no compromisedSince":         {edit(`"compromisedSince":17,`, ``), f + "compromisedSince"},
		"compromisedSince null":       {edit(`17`, `null`), f + "compromisedSince"},
		"compromisedSince zero":       {edit(`17`, `0`), ""},
		"compromisedSince largest":    {edit(`17`, `18446744073709551615`), ""},
		"compromisedSince overflow":   {edit(`17`, `18446744073709551616`), "statement.predicate"},
		"compromisedSince negative":   {edit(`17`, `-1`), "statement.predicate"},
		"compromisedSince fraction":   {edit(`17`, `1.5`), "statement.predicate"},
		"compromisedSince exponent":   {edit(`17`, `1e2`), "statement.predicate"},
		"compromisedSince string":     {edit(`17`, `"17"`), "statement.predicate"},
		"no reason":                   {edit(`,"reason":"laptop stolen"`, ``), f + "reason"},
		"empty reason":                {edit(`"laptop stolen"`, `""`), f + "reason"},
		"reason at the cap":           {edit(`"laptop stolen"`, `"`+strings.Repeat("r", MaxReason)+`"`), ""},
		"reason over the cap":         {edit(`"laptop stolen"`, `"`+strings.Repeat("r", MaxReason+1)+`"`), f + "reason"},
		"extension":                   {edit(`"reason"`, `"x":{"reason":1},"reason"`), ""},
		"duplicate":                   {edit(`"reason"`, `"compromisedSince":1,"reason"`), "statement"},
		"subject another key":         {trustStatement(RevokePredicateType, subjectsJSON(trustKeys[1].id), revokePred), "statement.subject"},
		"two subjects":                {trustStatement(RevokePredicateType, subjectsJSON(id, trustKeys[1].id), revokePred), "statement.subject"},
		"the subject twice":           {trustStatement(RevokePredicateType, subjectsJSON(id, id), revokePred), "statement.subject"},
		"subject with a second alg":   {trustStatement(RevokePredicateType, `[{"digest":{"sha256":"`+id+`","sha512":"`+strings.Repeat("a", 128)+`"}}]`, revokePred), "statement.subject"},
		"subject sha512":              {trustStatement(RevokePredicateType, `[{"digest":{"sha512":"`+id+id+`"}}]`, revokePred), "statement.subject"},
		"predicate before its type":   {`{"predicate":` + revokePred + `,"subject":` + subjectsJSON(id) + `,"_type":"https://in-toto.io/Statement/v1","predicateType":"` + RevokePredicateType + `"}`, ""},
		"bad predicate, bad subjects": {trustStatement(RevokePredicateType, subjectsJSON(trustKeys[1].id), `{"keyId":"x"}`), f + "keyId"},
	} {
		checkParsed(t, name, tc.in, tc.field)
	}
}

func TestQuarantineChecks(t *testing.T) {
	ev, err := ParseStatement([]byte(quarantineStatement(`{"action":"quarantine","reason":"CVE-2024-0001"}`)))
	if err != nil || ev.Type != TypeQuarantine || ev.Quarantine.Action != ActionQuarantine || ev.Quarantine.QuarantineIndex != nil || !ev.HasSubject(digest) {
		t.Fatalf("quarantine: %+v, %v", ev, err)
	}
	ev, err = ParseStatement([]byte(quarantineStatement(`{"action":"unquarantine","reason":"fixed","quarantineIndex":42}`)))
	if err != nil || ev.Type != TypeUnquarantine || ev.Quarantine.QuarantineIndex == nil || *ev.Quarantine.QuarantineIndex != 42 {
		t.Fatalf("unquarantine: %+v, %v", ev, err)
	}
	if got, want := ev.Summary(), `action=unquarantine reason="fixed" lifts=42`; got != want {
		t.Errorf("summary %q, want %q", got, want)
	}
	const f = "statement.predicate."
	for name, tc := range map[string]struct{ pred, field string }{
		"quarantine":                   {`{"action":"quarantine","reason":"r"}`, ""},
		"unquarantine without index":   {`{"action":"unquarantine","reason":"r"}`, ""},
		"unquarantine with index 0":    {`{"action":"unquarantine","reason":"r","quarantineIndex":0}`, ""},
		"unquarantine index null":      {`{"action":"unquarantine","reason":"r","quarantineIndex":null}`, ""},
		"quarantine with an index":     {`{"action":"quarantine","reason":"r","quarantineIndex":3}`, f + "quarantineIndex"},
		"quarantine with index null":   {`{"action":"quarantine","reason":"r","quarantineIndex":null}`, ""},
		"index negative":               {`{"action":"unquarantine","reason":"r","quarantineIndex":-3}`, "statement.predicate"},
		"no action":                    {`{"reason":"r"}`, f + "action"},
		"unknown action":               {`{"action":"Quarantine","reason":"r"}`, f + "action"},
		"no reason":                    {`{"action":"quarantine"}`, f + "reason"},
		"reason over the cap":          {`{"action":"quarantine","reason":"` + strings.Repeat("r", MaxReason+1) + `"}`, f + "reason"},
		"extension":                    {`{"action":"quarantine","reason":"r","Action":"x","severity":{"cvss":9.8}}`, ""},
		"duplicate":                    {`{"action":"quarantine","action":"quarantine","reason":"r"}`, "statement"},
		"not an object":                {`[]`, "statement.predicate"},
		"action a number":              {`{"action":1,"reason":"r"}`, "statement.predicate"},
		"reason before bad action":     {`{"reason":"","action":"x"}`, f + "action"},
		"quarantined index, no reason": {`{"action":"quarantine","quarantineIndex":1}`, f + "reason"},
	} {
		checkParsed(t, name, quarantineStatement(tc.pred), tc.field)
	}
}

// TestKeyringCaps: the caps on keys, environments, subjects and the
// statement's size, at and over each.
func TestKeyringCaps(t *testing.T) {
	// Environments: at and over the cap.
	for _, n := range []int{MaxKeyringEnvironments, MaxKeyringEnvironments + 1} {
		var envs []string
		for i := range n {
			envs = append(envs, fmt.Sprintf(`{"name":"e%d"}`, i))
		}
		in := keyringStatement(`{"name":"dev"},{"name":"staging","from":"dev"},{"name":"prod","from":"staging","approvals":2,"reproducible":2}`, strings.Join(envs, ","))
		field := ""
		if n > MaxKeyringEnvironments {
			field = "statement.predicate.environments"
		}
		checkParsed(t, fmt.Sprintf("%d environments", n), in, field)
	}
	// Keys: more than MaxKeyringKeys are refused before they are parsed;
	// MaxKeyringKeys subjects are allowed on a keyring (which the keys
	// then refuse), MaxSubjects elsewhere.
	var keys []string
	var ids []string
	for i := range MaxKeyringKeys + 1 {
		keys = append(keys, fmt.Sprintf(`{"name":"k%d","publicKey":"x","roles":["builder"]}`, i))
		ids = append(ids, fmt.Sprintf("%064x", i))
	}
	over := `{"keys":[` + strings.Join(keys, ",") + `],"admins":{"keys":["k0"],"threshold":1}}`
	checkParsed(t, "too many keys", trustStatement(KeyringPredicateType, subjectsJSON(ids[:MaxKeyringKeys]...), over), "statement.predicate.keys")
	checkParsed(t, "too many subjects", trustStatement(KeyringPredicateType, subjectsJSON(ids...), over), "statement.subject")
	at := `{"keys":[` + strings.Join(keys[:MaxKeyringKeys], ",") + `],"admins":{"keys":["k0"],"threshold":1}}`
	checkParsed(t, "keys at the cap", trustStatement(KeyringPredicateType, subjectsJSON(ids[:MaxKeyringKeys]...), at), "statement.predicate.keys[0].publicKey")
	checkParsed(t, "subjects of a quarantine", trustStatement(QuarantinePredicateType, subjectsJSON(ids[:MaxSubjects+1]...), `{"action":"quarantine","reason":"r"}`), "statement.subject")

	// The statement's size: padded with an extension member of strings
	// (each within MaxString) and white space.
	base := keyringStatement()
	for _, size := range []int{MaxKeyringStatement, MaxKeyringStatement + 1} {
		n := size - len(base) - 100
		var parts []string
		for n > 0 {
			m := min(n, MaxString-100)
			parts = append(parts, strings.Repeat("p", m))
			n -= m + 3
		}
		in := keyringStatement(`"admins":{`, `"pad":["`+strings.Join(parts, `","`)+`"],"admins":{`)
		in = in[:len(in)-1] + strings.Repeat(" ", size-len(in)) + "}"
		if len(in) != size {
			t.Fatalf("padded to %d bytes, want %d", len(in), size)
		}
		field := ""
		if size > MaxKeyringStatement {
			field = "statement"
		}
		checkParsed(t, fmt.Sprintf("%d bytes", size), in, field)
	}
}

// TestTrustStatementBuilders: what the builders write parses back to what
// they were given, signed, through the canonical envelope.
func TestTrustStatementBuilders(t *testing.T) {
	since, idx := uint64(0), uint64(1<<63+1) // beyond float64's exact integers
	kr := &KeyringPredicate{
		Keys: []KeyringKey{
			{Name: "ci", PublicKey: trustKeys[0].pem, Roles: []string{RoleBuilder}, NotBefore: &since, NotAfter: &idx},
			{Name: "root", PublicKey: trustKeys[3].pem},
		},
		Environments: []KeyringEnvironment{{Name: "dev"}, {Name: "prod", From: "dev", Approvals: 2}},
		Roles:        map[string]KeyringRole{RoleSecurity: {PredicateTypes: []string{QuarantinePredicateType}}},
		Admins:       KeyringAdmins{Keys: []string{"root"}, Threshold: 1},
	}
	st, err := NewKeyringStatement(kr)
	if err != nil {
		t.Fatal(err)
	}
	st2, err := NewKeyringStatement(kr)
	if err != nil || string(st) != string(st2) {
		t.Errorf("not deterministic:\n%s\n%s", st, st2)
	}
	if !strings.Contains(string(st), `"roles":[]`) {
		t.Errorf("a key without roles not written with []: %s", st)
	}
	ev := signAndParse(t, st)
	got := ev.Keyring
	want := *kr
	want.Keys = []KeyringKey{kr.Keys[0], kr.Keys[1]}
	want.Keys[0].KeyID, want.Keys[1].KeyID = trustKeys[0].id, trustKeys[3].id
	for i := range got.Keys {
		want.Keys[i].Key = got.Keys[i].Key
	}
	if !reflect.DeepEqual(*got, want) {
		t.Errorf("keyring round trip:\n%+v\nwant\n%+v", *got, want)
	}
	subjects, err := KeyringSubjects(kr.Keys)
	if err != nil || len(subjects) != 2 || subjects[1] != (Subject{Name: "root", Digest: Digest{Alg: "sha256", Hex: trustKeys[3].id}}) {
		t.Errorf("KeyringSubjects: %+v, %v", subjects, err)
	}
	bad := *kr
	bad.Keys = []KeyringKey{kr.Keys[0], {Name: "root", PublicKey: trustKeys[3].pem, KeyID: trustKeys[1].id}}
	if _, err := KeyringSubjects(bad.Keys); err == nil {
		t.Error("KeyringSubjects: a wrong KeyID accepted")
	}
	if st, err := NewKeyringStatement(&KeyringPredicate{}); err != nil || !strings.Contains(string(st), NoKeysSubject.Digest.Hex) {
		t.Errorf("NewKeyringStatement of no keys: %s, %v", st, err)
	}
	bad.Keys = kr.Keys[:1] // the admin is gone
	if _, err := NewKeyringStatement(&bad); !errors.Is(err, ErrInvalid) {
		t.Errorf("NewKeyringStatement without its admin key: %v", err)
	}

	rv := &RevokePredicate{KeyID: trustKeys[2].id, CompromisedSince: 1<<64 - 1, Reason: "leaked <in> CI & logs"}
	st, err = NewRevokeStatement(rv)
	if err != nil {
		t.Fatal(err)
	}
	if ev := signAndParse(t, st); *ev.Revoke != *rv || !ev.HasSubject(Digest{Alg: "sha256", Hex: rv.KeyID}) {
		t.Errorf("revoke round trip: %+v", ev.Revoke)
	}
	if _, err := NewRevokeStatement(&RevokePredicate{KeyID: "k", Reason: "r"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("NewRevokeStatement with a bad key id: %v", err)
	}

	q := &QuarantinePredicate{Action: ActionUnquarantine, Reason: "fixed", QuarantineIndex: &idx}
	st, err = NewQuarantineStatement([]Subject{{Name: "app", Digest: digest}}, q)
	if err != nil {
		t.Fatal(err)
	}
	if ev := signAndParse(t, st); ev.Type != TypeUnquarantine || !reflect.DeepEqual(ev.Quarantine, q) || !ev.HasSubject(digest) {
		t.Errorf("quarantine round trip: %+v", ev.Quarantine)
	}
}

func signAndParse(t *testing.T, st []byte) *Event {
	t.Helper()
	k, _ := genKey(t, false)
	envelope, err := SignEnvelope(context.Background(), st, k)
	if err != nil {
		t.Fatal(err)
	}
	env, err := ParseEnvelope(envelope)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := ParseStatement(env.Payload)
	if err != nil {
		t.Fatalf("%v\n%s", err, st)
	}
	checkStatementMatchesReference(t, env.Payload)
	return ev
}

// The fuzz targets of the trust predicates: whatever is accepted agrees
// with the reference parser, holds the format's invariants, and comes
// back the same through its statement builder.

func FuzzKeyringStatement(f *testing.F) {
	f.Add([]byte(keyringStatement()))
	f.Add([]byte(keyringStatement(`"roles":["security"]`, `"roles":[]`, `"threshold":2`, `"threshold":1`)))
	f.Add([]byte(trustStatement(KeyringPredicateType, subjectsJSON(trustKeys[3].id), `{"keys":[{"name":"r","publicKey":`+pemJSON(3)+`}],"admins":{"keys":["r"],"threshold":1}}`)))
	f.Add([]byte(trustStatement(KeyringPredicateType, subjectsJSON(trustKeys[3].id), `{"keys":[{"name":"r","publicKey":`+pemJSON(3)+`,"roles":["builder"]}]}`)))
	f.Add([]byte(trustStatement(KeyringPredicateType, `[{"digest":{"sha256":"`+NoKeysSubject.Digest.Hex+`"}}]`, `{"keys":[]}`)))
	f.Fuzz(func(t *testing.T, b []byte) {
		checkStatementMatchesReference(t, b)
		ev, err := ParseStatement(b)
		if err != nil || ev.Keyring == nil {
			return
		}
		k := ev.Keyring
		noAdmins := len(k.Admins.Keys) == 0 && k.Admins.Threshold == 0
		if len(ev.Subjects) != max(len(k.Keys), 1) || !noAdmins && (k.Admins.Threshold < 1 || k.Admins.Threshold > len(k.Admins.Keys)) {
			t.Fatalf("keyring %+v about %v", k, ev.Subjects)
		}
		for _, key := range k.Keys {
			if !isKeyID(key.KeyID) || !ev.HasSubject(Digest{Alg: "sha256", Hex: key.KeyID}) {
				t.Fatalf("key %+v: id not a subject", key)
			}
		}
		st, err := NewKeyringStatement(k)
		if err != nil {
			t.Fatalf("rebuilding: %v", err)
		}
		if ev2, err := ParseStatement(st); err != nil || !equalKeyrings(ev2.Keyring, k) {
			t.Fatalf("rebuilt %s: %v", st, err)
		}
	})
}

func FuzzRevokeStatement(f *testing.F) {
	f.Add([]byte(revokeStatement(revokePred)))
	f.Add([]byte(`{"predicate":` + revokePred + `,"subject":` + subjectsJSON(trustKeys[0].id) + `,"_type":"https://in-toto.io/Statement/v0.1","predicateType":"` + RevokePredicateType + `"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		checkStatementMatchesReference(t, b)
		ev, err := ParseStatement(b)
		if err != nil || ev.Revoke == nil {
			return
		}
		r := ev.Revoke
		if !isKeyID(r.KeyID) || r.Reason == "" || len(r.Reason) > MaxReason || len(ev.Subjects) != 1 || ev.Subjects[0].Hex != r.KeyID {
			t.Fatalf("revoke %+v about %v", r, ev.Subjects)
		}
		st, err := NewRevokeStatement(r)
		if err != nil {
			t.Fatalf("rebuilding: %v", err)
		}
		if ev2, err := ParseStatement(st); err != nil || *ev2.Revoke != *r {
			t.Fatalf("rebuilt %s: %v", st, err)
		}
	})
}

func FuzzQuarantineStatement(f *testing.F) {
	f.Add([]byte(quarantineStatement(`{"action":"quarantine","reason":"CVE-2024-0001"}`)))
	f.Add([]byte(quarantineStatement(`{"action":"unquarantine","reason":"fixed","quarantineIndex":42}`)))
	f.Fuzz(func(t *testing.T, b []byte) {
		checkStatementMatchesReference(t, b)
		ev, err := ParseStatement(b)
		if err != nil || ev.Quarantine == nil {
			return
		}
		q := ev.Quarantine
		if ev.Type != q.Action || q.Reason == "" || len(q.Reason) > MaxReason || q.Action == ActionQuarantine && q.QuarantineIndex != nil {
			t.Fatalf("%s event %+v", ev.Type, q)
		}
		var subjects []Subject
		for _, d := range ev.Subjects {
			subjects = append(subjects, Subject{Digest: d})
		}
		st, err := NewQuarantineStatement(subjects, q)
		if err != nil {
			t.Fatalf("rebuilding: %v", err)
		}
		if ev2, err := ParseStatement(st); err != nil || !reflect.DeepEqual(ev2.Quarantine, q) || !slices.Equal(ev2.Subjects, ev.Subjects) {
			t.Fatalf("rebuilt %s: %v", st, err)
		}
	})
}
