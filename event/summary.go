package event

import (
	"fmt"
	"strings"
)

// Summary describes the event's predicate in one line of key=value
// fields, for listings: a build's builder and source (the repository
// normalized), a signature's algorithm, key and build, a promotion's
// environments, an SBOM's format and where it is, a result, a step, a
// keyring's size and admin rule, a revoked key, a quarantine's action.
func (e *Event) Summary() string {
	switch {
	case e.Build != nil:
		return fmt.Sprintf("builder=%s source=%s@%s", e.Build.BuilderID, NormalizeRepo(e.Build.SourceRepo), e.Build.SourceCommit)
	case e.Sign != nil:
		return fmt.Sprintf("algorithm=%s key=%s build=%d", e.Sign.Algorithm, e.Sign.KeyID, e.Sign.BuildIndex)
	case e.Promote != nil:
		from := e.Promote.From
		if from == "" {
			from = "(none)"
		}
		return fmt.Sprintf("%s -> %s build=%d", from, e.Promote.To, e.Promote.BuildIndex)
	case e.SBOM != nil && e.SBOM.Inline:
		return fmt.Sprintf("%s %s inline", e.SBOM.Format, e.SBOM.SpecVersion)
	case e.SBOM != nil:
		return fmt.Sprintf("%s %s by reference %s (%d bytes) %s", e.SBOM.Format, e.SBOM.SpecVersion, e.SBOM.Digest, e.SBOM.Size, e.SBOM.URI)
	case e.TestResult != nil:
		t := e.TestResult
		return fmt.Sprintf("result=%s passed=%d warned=%d failed=%d", t.Result, len(t.PassedTests), len(t.WarnedTests), len(t.FailedTests))
	case e.VSA != nil:
		return fmt.Sprintf("verifier=%s result=%s levels=%s", e.VSA.VerifierID, e.VSA.Result, strings.Join(e.VSA.VerifiedLevels, ","))
	case e.Link != nil:
		return fmt.Sprintf("step=%s command=%q", e.Link.Name, strings.Join(e.Link.Command, " "))
	case e.Keyring != nil:
		k := e.Keyring
		return fmt.Sprintf("keys=%d environments=%d admins=%d-of-%d", len(k.Keys), len(k.Environments), k.Admins.Threshold, len(k.Admins.Keys))
	case e.Revoke != nil:
		return fmt.Sprintf("key=%s compromisedSince=%d reason=%q", e.Revoke.KeyID, e.Revoke.CompromisedSince, clip(e.Revoke.Reason))
	case e.Quarantine != nil:
		s := fmt.Sprintf("action=%s reason=%q", e.Quarantine.Action, clip(e.Quarantine.Reason))
		if i := e.Quarantine.QuarantineIndex; i != nil {
			s += fmt.Sprintf(" lifts=%d", *i)
		}
		return s
	}
	return ""
}
