package log

import (
	"context"
	"fmt"
	"slices"

	"github.com/provlog/provlog/policy"
)

// Submitter is the authenticated identity submitting entries, as the
// transport (mTLS client certificate or bearer token) established it.
type Submitter struct {
	// Name names the identity in logs and errors.
	Name string
	// Roles are the identity's roles: RoleWriter for opaque entries (open
	// admission), and RoleBuilder, RoleSigner, RolePromoter, RoleApprover,
	// RoleAttester, RoleVerifier for the events of those roles.
	Roles []string
}

// RoleWriter lets an identity submit entries to a log with open admission.
const RoleWriter = "writer"

type submitterKey struct{}

// WithSubmitter returns ctx carrying the submitter. A Log given such a
// context refuses entries the submitter's roles do not allow; without one
// (no transport authentication configured), it checks nothing here.
func WithSubmitter(ctx context.Context, s Submitter) context.Context {
	return context.WithValue(ctx, submitterKey{}, s)
}

// SubmitterFrom returns the submitter in ctx, if any.
func SubmitterFrom(ctx context.Context) (Submitter, bool) {
	s, ok := ctx.Value(submitterKey{}).(Submitter)
	return s, ok
}

// rolesFor returns the roles any of which allows an entry of the event
// type ("" for an opaque entry). Events that need the keyring's admins
// (keyring changes, revocations, unquarantines) need no role of the
// transport identity, as an admin key holds none: their signatures decide.
func rolesFor(eventType string) []string {
	if eventType == "" {
		return []string{RoleWriter}
	}
	return policy.RolesFor(eventType)
}

// checkSubmitter refuses an admitted entry the submitter in ctx may not
// submit.
func checkSubmitter(ctx context.Context, a Admitted) error {
	s, ok := SubmitterFrom(ctx)
	if !ok {
		return nil
	}
	allowed := rolesFor(a.Type)
	if policy.AdminEvent(a.Type) || slices.ContainsFunc(s.Roles, func(r string) bool { return slices.Contains(allowed, r) }) {
		return nil
	}
	what := a.Type + " events"
	if a.Type == "" {
		what = "entries"
	}
	return fmt.Errorf("%w: identity %s may not submit %s (needs one of the roles %v)", ErrPermissionDenied, s.Name, what, allowed)
}
