package policy

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

func TestParseErrors(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "bad.policy"), []byte("not a tlog-policy\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for bad, field := range map[string]string{
		`{"builder": []}`:                 "builder",
		`{"builders": "x"}`:               "builders",
		`{"requiredSigners": ["nobody"]}`: "requiredSigners[0]",
		`{"requiredSigners": ["` + strings.Repeat("AB", 32) + `"]}`:       "requiredSigners[0]",
		`{"promotionPath": ["dev"], "approvals": {"prod": {"count": 1}}}`: "approvals.prod",
		`{"approvals": {"prod": {"count": -1}}}`:                          "approvals.prod.count",
		`{"approvals": {"prod": {"keys": ["bob"]}}}`:                      "approvals.prod.keys[0]",
		`{"promotionPath": ["dev", "dev"]}`:                               "promotionPath[1]",
		`{"promotionPath": [""]}`:                                         "promotionPath[0]",
		`{"keys": {"x": "missing.pub"}}`:                                  "keys.x",
		`{"witnessPolicy": "missing.policy"}`:                             "witnessPolicy",
		`{"witnessPolicy": "bad.policy"}`:                                 "witnessPolicy",
		`{"version": 2}`:                                                  "version: 2, this build reads versions [1]",
		`{"version": 0}`:                                                  "version: 0",
		`{"version": "1"}`:                                                "version",
		`{"namespaces": {"Prod": "prod"}}`:                                "namespaces: \"Prod\"",
		`{"namespaces": {"-app": "prod"}}`:                                "namespaces: \"-app\"",
		`{"namespaces": {"app": ""}}`:                                     "namespaces.app",
		`{"promotionPath": ["dev"], "namespaces": {"app": "prod"}}`:       "namespaces.app",
		`{} {}`: "line 1",
		`[]`:    "line 1",
	} {
		_, err := Parse([]byte(bad), dir)
		if err == nil {
			t.Errorf("Parse(%s) succeeded, want an error", bad)
		} else if !strings.Contains(err.Error(), field) {
			t.Errorf("Parse(%s) = %v, want it to name %s", bad, err, field)
		}
	}
}

func TestParseVersionAndNamespaces(t *testing.T) {
	for _, raw := range []string{`{}`, `{"version": 1}`} {
		if _, err := Parse([]byte(raw), ""); err != nil {
			t.Errorf("Parse(%s) = %v, want version 1", raw, err)
		}
	}
	p, err := Parse([]byte(`{"promotionPath": ["staging", "prod"], "namespaces": {"app": "prod", "app-staging": "staging", "`+strings.Repeat("a", 63)+`": "prod"}}`), "")
	if err != nil {
		t.Fatal(err)
	}
	for ns, want := range map[string]string{"app": "prod", "app-staging": "staging", strings.Repeat("a", 63): "prod", "other": "", "": ""} {
		env, ok := p.EnvironmentOf(ns)
		if env != want || ok != (want != "") {
			t.Errorf("EnvironmentOf(%q) = %q, %v; want %q", ns, env, ok, want)
		}
	}
	if _, err := Parse([]byte(`{"namespaces": {"`+strings.Repeat("a", 64)+`": "prod"}}`), ""); err == nil {
		t.Error("Parse accepted a 64-character namespace name")
	}
	if p, err := Parse([]byte(`{"namespaces": {"app": "anywhere"}}`), ""); err != nil {
		t.Errorf("Parse without promotionPath = %v, want any environment accepted", err)
	} else if env, ok := p.EnvironmentOf("app"); env != "anywhere" || !ok {
		t.Errorf("EnvironmentOf(app) = %q, %v", env, ok)
	}
}

func TestParseWitnessPolicy(t *testing.T) {
	dir := t.TempDir()
	_, vkey, err := note.GenerateKey(rand.Reader, "example.com/w1")
	if err != nil {
		t.Fatal(err)
	}
	w := "witness w1 " + vkey + " https://w1.example.com\nquorum w1\n"
	if err := os.WriteFile(filepath.Join(dir, "w.policy"), []byte(w), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := Parse([]byte(`{"witnessPolicy": "w.policy"}`), dir)
	if err != nil {
		t.Fatal(err)
	}
	if string(p.Witness) != w {
		t.Errorf("Witness = %q, want %q", p.Witness, w)
	}
	if p, err := Parse([]byte(`{}`), dir); err != nil || p.Witness != nil {
		t.Errorf("Parse({}) = %v, %v; want no witness policy", p, err)
	}
}

func TestAllowed(t *testing.T) {
	pats := []string{"git+https://git.example.com/app", "git+https://git.example.com/libs/", "https://ci.example.com/*"}
	for v, want := range map[string]bool{
		"git+https://git.example.com/app":      true,
		"git+https://git.example.com/app-evil": false,
		"git+https://git.example.com/libs/x":   true,
		"git+https://git.example.com/libs":     false,
		"https://ci.example.com/runner@v2":     true,
		"https://ci.example.com.evil/":         false,
	} {
		if allowed(v, pats) != want {
			t.Errorf("allowed(%q) = %v, want %v", v, !want, want)
		}
	}
}

// FuzzParse: Parse never panics on any input.
func FuzzParse(f *testing.F) {
	for _, s := range []string{`{}`, `{"builders": ["a*"], "promotionPath": ["dev", "prod"], "approvals": {"prod": {"count": 2}}}`,
		`{"requiredSigners": ["` + strings.Repeat("ab", 32) + `"]}`, `{"keys": {"x": "x.pub"}}`,
		`{"version": 1, "promotionPath": ["prod"], "namespaces": {"app": "prod"}, "reproducible": {"builders": 2, "sameSource": true}}`} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, raw []byte) {
		_, _ = Parse(raw, dir) // only a panic fails

	})
}
