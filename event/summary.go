package event

import (
	"fmt"
	"strings"
)

// Summary describes the event's predicate in one line of key=value
// fields, for listings: a build's builder and source (the repository
// normalized), a signature's algorithm, key and build, a promotion's
// environments, an SBOM's format and where it is, a result, a step.
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
	}
	return ""
}
