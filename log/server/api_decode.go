package server

import (
	"context"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/provlog/provlog/event"
	provlogv1 "github.com/provlog/provlog/proto/provlog/v1"
)

// decodeEntry reads a stored entry as an event, as admission parsed it
// (event.ParseEntry, then event.ParseStatement): what GetEntries and
// Search return when asked to decode. Its signers are l's reading of the
// envelope's signatures (Log.Signers: verified against the keyring in
// force at index, some 50 to 100 µs an entry, under the read slots the
// decode already holds). An entry that is not an event (a log with open
// admission holds any bytes) is no error of the request: its
// DecodedEntry says why in decode_error. Every string it returns is a
// copy, so entry may be reused once it returns.
func decodeEntry(ctx context.Context, l Log, index uint64, entry []byte) *provlogv1.DecodedEntry {
	d := &provlogv1.DecodedEntry{Index: index}
	env, err := event.ParseEntry(entry)
	if err != nil {
		d.DecodeError = strings.ToValidUTF8(err.Error(), "\uFFFD")
		return d
	}
	for _, s := range env.Signatures {
		d.Signatures = append(d.Signatures, &provlogv1.DecodedSignature{KeyId: validUTF8(s.KeyID)})
	}
	keys, byLog := l.Signers(ctx, index, env)
	d.LogKey = byLog
	for _, k := range keys {
		// Names and ids come from a keyring the log parsed: valid UTF-8.
		d.Signers = append(d.Signers, &provlogv1.DecodedSigner{KeyId: validUTF8(k.ID), Name: validUTF8(k.Name)})
	}
	if !utf8.Valid(env.Payload) {
		// Every string below comes from the statement: valid UTF-8 JSON
		// keeps them valid, as a proto string must be.
		d.DecodeError = "statement: not UTF-8"
		return d
	}
	d.Statement = string(env.Payload)
	ev, err := event.ParseStatement(env.Payload)
	if err != nil {
		d.DecodeError = strings.ToValidUTF8(err.Error(), "\uFFFD")
		return d
	}
	d.EventType, d.StatementType, d.PredicateType = ev.Type, ev.StatementType, ev.PredicateType
	for _, s := range ev.Subjects {
		d.Subjects = append(d.Subjects, s.String())
	}
	d.Summary = ev.Summary()
	setPredicate(d, ev)
	return d
}

// setPredicate sets d's predicate fields from the one ev has.
func setPredicate(d *provlogv1.DecodedEntry, ev *event.Event) {
	switch {
	case ev.Build != nil:
		b := ev.Build
		d.Predicate = &provlogv1.DecodedEntry_Build{Build: &provlogv1.BuildPredicate{
			BuilderId: b.BuilderID, BuildType: b.BuildType, SourceRepo: b.SourceRepo, SourceCommit: b.SourceCommit,
			InvocationId: b.InvocationID, StartedOn: timestamp(b.StartedOn), FinishedOn: timestamp(b.FinishedOn),
		}}
	case ev.Sign != nil:
		s := ev.Sign
		d.Predicate = &provlogv1.DecodedEntry_Sign{Sign: &provlogv1.SignPredicate{Algorithm: s.Algorithm, KeyId: s.KeyID, BuildIndex: s.BuildIndex}}
	case ev.Promote != nil:
		p := ev.Promote
		d.Predicate = &provlogv1.DecodedEntry_Promote{Promote: &provlogv1.PromotePredicate{
			From: p.From, To: p.To, BuildIndex: p.BuildIndex, Decision: p.Decision, Rationale: p.Rationale, ChangeRef: p.ChangeRef,
		}}
	case ev.SBOM != nil:
		s := ev.SBOM
		sb := &provlogv1.SBOMPredicate{Format: s.Format, SpecVersion: s.SpecVersion, Inline: s.Inline, MediaType: s.MediaType, Size: s.Size, Uri: s.URI}
		if !s.Inline {
			sb.Digest = s.Digest.String()
		}
		d.Predicate = &provlogv1.DecodedEntry_Sbom{Sbom: sb}
	case ev.TestResult != nil:
		t := ev.TestResult
		d.Predicate = &provlogv1.DecodedEntry_TestResult{TestResult: &provlogv1.TestResultPredicate{
			Result: t.Result, Url: t.URL, PassedTests: t.PassedTests, WarnedTests: t.WarnedTests, FailedTests: t.FailedTests,
		}}
	case ev.VSA != nil:
		v := ev.VSA
		d.Predicate = &provlogv1.DecodedEntry_Vsa{Vsa: &provlogv1.VSAPredicate{
			VerifierId: v.VerifierID, TimeVerified: timestamp(v.TimeVerified), ResourceUri: v.ResourceURI, PolicyUri: v.PolicyURI,
			Result: v.Result, VerifiedLevels: v.VerifiedLevels, SlsaVersion: v.SLSAVersion,
		}}
	case ev.Link != nil:
		d.Predicate = &provlogv1.DecodedEntry_Link{Link: &provlogv1.LinkPredicate{Name: ev.Link.Name, Command: ev.Link.Command}}
	case ev.Keyring != nil:
		d.Predicate = &provlogv1.DecodedEntry_Keyring{Keyring: keyringPredicate(ev.Keyring)}
	case ev.Revoke != nil:
		r := ev.Revoke
		d.Predicate = &provlogv1.DecodedEntry_Revoke{Revoke: &provlogv1.RevokePredicate{KeyId: r.KeyID, CompromisedSince: r.CompromisedSince, Reason: r.Reason}}
	case ev.Quarantine != nil:
		q := ev.Quarantine
		d.Predicate = &provlogv1.DecodedEntry_Quarantine{Quarantine: &provlogv1.QuarantinePredicate{Action: q.Action, Reason: q.Reason, QuarantineIndex: q.QuarantineIndex}}
	}
}

// keyringPredicate is what a keyring event's decoding shows of it.
func keyringPredicate(p *event.KeyringPredicate) *provlogv1.KeyringPredicate {
	kp := &provlogv1.KeyringPredicate{AdminThreshold: uint32(p.Admins.Threshold)}
	for _, k := range p.Keys {
		kp.Keys = append(kp.Keys, &provlogv1.KeyringPredicate_Key{Name: k.Name, KeyId: k.KeyID, Roles: k.Roles,
			NotBefore: k.NotBefore, NotAfter: k.NotAfter, Admin: slices.Contains(p.Admins.Keys, k.Name)})
	}
	for _, e := range p.Environments {
		kp.Environments = append(kp.Environments, &provlogv1.KeyringPredicate_Environment{Name: e.Name, From: e.From,
			Approvals: uint32(e.Approvals), Reproducible: uint32(e.Reproducible)})
	}
	return kp
}

// timestamp is t as a Timestamp, nil if t is zero (absent) or outside
// the years 1 to 9999 that a Timestamp holds (the JSON mapping refuses
// one outside them).
func timestamp(t time.Time) *timestamppb.Timestamp {
	ts := timestamppb.New(t)
	if t.IsZero() || ts.CheckValid() != nil {
		return nil
	}
	return ts
}

// validUTF8 is s if it is valid UTF-8 (a proto string must be), else "".
func validUTF8(s string) string {
	if !utf8.ValidString(s) {
		return ""
	}
	return s
}
