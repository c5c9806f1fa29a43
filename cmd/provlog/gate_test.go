package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/provlog/provlog/policy"
)

// The gate's decisions are tested in policy/; these test the shell: a bad
// policy file is a usage error naming the field, before any connection,
// and the decision is printed as it always was.

func TestGateBadPolicy(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	digest := "sha256:" + strings.Repeat("ab", 32)
	for file, says := range map[string]string{
		"unknown-field.json": `{"builder": []}`,
		"bad-signer.json":    `{"requiredSigners": ["nobody"]}`,
		"bad-witness.json":   `{"witnessPolicy": "missing.policy"}`,
	} {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(says), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for file, says := range map[string]string{
		"unknown-field.json": "policy unknown-field.json: ",
		"bad-signer.json":    "requiredSigners[0]",
		"bad-witness.json":   "witnessPolicy",
		"missing.json":       "policy: ",
	} {
		runCLI(t, "gate", "--digest", digest, "--env", "prod", "--policy", file, "--log", "127.0.0.1:1").want(t, exitUsage, says)
	}
	runCLI(t, "gate", "--digest", digest, "--policy", "unknown-field.json").want(t, exitUsage, "--env and --policy are required")
}

func TestReportDecision(t *testing.T) {
	deny := &policy.Decision{Artifact: "sha256:ab", Environment: "prod", Reasons: []policy.Reason{
		{Text: "event 3 does not verify: bad proof", Entries: []uint64{3}}, {Text: "no promotion into prod"}}}
	allow := &policy.Decision{Artifact: "sha256:ab", Environment: "dev"}
	for _, tc := range []struct {
		dec  *policy.Decision
		json bool
		out  string
		code int
	}{
		{deny, false, "DENY sha256:ab to prod\n  - event 3 does not verify: bad proof\n  - no promotion into prod\n", exitNegative},
		{deny, true, `{
  "decision": "deny",
  "artifact": "sha256:ab",
  "environment": "prod",
  "reasons": [
    "event 3 does not verify: bad proof",
    "no promotion into prod"
  ],
  "events": []
}
`, exitNegative},
		{allow, false, "ALLOW sha256:ab to dev\n", 0},
		{allow, true, `{
  "decision": "allow",
  "artifact": "sha256:ab",
  "environment": "dev",
  "reasons": [],
  "events": []
}
`, 0},
	} {
		var out bytes.Buffer
		err := reportDecision(&globals{stdout: &out, json: tc.json}, tc.dec)
		if out.String() != tc.out {
			t.Errorf("reportDecision(%v, json %v) printed\n%s\nwant\n%s", tc.dec.Reasons, tc.json, out.String(), tc.out)
		}
		var ee *exitError
		switch {
		case tc.code == 0 && err != nil:
			t.Errorf("reportDecision(allow) = %v", err)
		case tc.code != 0 && (!errors.As(err, &ee) || ee.code != tc.code || !strings.Contains(err.Error(), "deny sha256:ab to prod: 2 reason(s)")):
			t.Errorf("reportDecision(deny) = %v, want exit %d", err, tc.code)
		}
	}
}
