package log

import (
	"context"

	"github.com/provlog/provlog/event"
	"github.com/provlog/provlog/policy"
)

// Signers returns who signed env, the envelope of the entry at index, as
// the log's trust history reads it now: the keys of the keyring in force
// at index (policy.History.KeyringAt) that verify its signatures
// (policy.Keyring.Verify, the key ids only a hint), or byLog if every
// signature is the log key's (the genesis keyring; changes made while the
// keyring named no admins). It returns neither for a log without a trust
// history (open admission), or for an envelope that neither verifies.
//
// It is a reading for display (the JSON API's decoded entries), not an
// admission decision: roles, windows and revocations are not checked
// here, and a reader who trusts the log no further than its entries
// replays them itself (policy.Replay).
func (l *Log) Signers(ctx context.Context, index uint64, env *event.Envelope) (keys []*policy.Key, byLog bool) {
	a, ok := l.cfg.Admission.(*AttestationAdmission)
	if !ok || len(env.Signatures) == 0 {
		return nil, false
	}
	h := a.History()
	if h == nil {
		return nil, false
	}
	if kr := h.KeyringAt(index); kr != nil {
		if keys, err := kr.Verify(ctx, env); err == nil {
			return keys, false
		}
	}
	pae, key := env.PAE(), signerKey{l.cfg.Signer}
	for _, s := range env.Signatures {
		if key.Verify(ctx, pae, s.Sig) != nil {
			return nil, false
		}
	}
	return nil, true
}
