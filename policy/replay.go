package policy

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"github.com/provlog/provlog/event"
)

// Replay decides, from a log's entries alone, read in order from index 0,
// whether each entry should have been admitted: by the same rules as the
// log's admission ([History.Admit]), against the history and the lineage
// the entries before it make. It trusts nothing of the server but the
// entries, which the caller has verified against a checkpoint (client's
// Follower does). Its memory holds the trust history and the build and
// promotion events (for lineage), not the other entries.
type Replay struct {
	h    *History
	led  *memLedger
	next uint64
}

// Verdict is what Replay found of one entry.
type Verdict struct {
	Index uint64
	// Type is the event type; "" for an entry that is no event.
	Type string
	// Err is why the entry should not have been admitted; nil if it
	// should have been.
	Err error
	// Signers are the keyring keys that signed it (nil for an event the
	// log key signed).
	Signers []*Key
	// BeforeHistory is true for an entry logged before the log's first
	// keyring event (a log that ran before provlog logged its keyring):
	// there is no logged keyring to check it against, so it is taken as
	// admitted.
	BeforeHistory bool
}

// NewReplay starts a replay of a log whose checkpoint key is logKey (see
// LogKey).
func NewReplay(logKey event.Key) *Replay {
	return &Replay{h: NewHistory(logKey), led: newMemLedger()}
}

// History returns the trust history replayed so far.
func (r *Replay) History() *History { return r.h }

// Next returns the index of the next entry to replay.
func (r *Replay) Next() uint64 { return r.next }

// Entry replays the entry at index Next(): it decides it, and if it should
// have been admitted, applies it (to the history for a trust event, to
// the lineage for a build or promotion). An entry that should not have
// been admitted changes nothing, so later entries are decided as the log
// should have decided them.
func (r *Replay) Entry(ctx context.Context, entry []byte) Verdict {
	i := r.next
	r.next++
	v := Verdict{Index: i}
	env, err := event.ParseEnvelope(entry)
	if err == nil {
		var ev *event.Event
		if ev, err = event.ParseStatement(env.Payload); err == nil {
			return r.event(ctx, v, env, ev)
		}
		err = fmt.Errorf("not an event: %w", err)
	} else {
		err = fmt.Errorf("not a canonical DSSE envelope: %w", err)
	}
	// Before the first keyring event there is nothing to check an entry
	// against, event or not (a log that ran with open admission holds
	// any bytes): it is taken as admitted.
	v.Err, v.BeforeHistory = err, r.h.Empty()
	if v.BeforeHistory {
		v.Err = nil
	}
	return v
}

// event replays the event at v.Index.
func (r *Replay) event(ctx context.Context, v Verdict, env *event.Envelope, ev *event.Event) Verdict {
	i := v.Index
	v.Type = ev.Type
	if r.h.Empty() && ev.Type != event.TypeKeyring {
		v.BeforeHistory = true
		r.led.add(i, env, ev)
		return v
	}
	d, err := r.h.Admit(ctx, r.led, i, env, ev)
	if err != nil {
		v.Err = err
		return v
	}
	v.Signers = d.Signers
	if err := r.h.Apply(i, ev, d); err != nil {
		v.Err = err
		return v
	}
	r.led.add(i, env, ev)
	return v
}

// Check decides an entry as if it were logged at index Next(), changing
// nothing: what the log's admission should answer to it now.
func (r *Replay) Check(ctx context.Context, entry []byte) error {
	env, err := event.ParseEntry(entry)
	if err != nil {
		return err
	}
	ev, err := event.ParseStatement(env.Payload)
	if err != nil {
		return err
	}
	_, err = r.h.Admit(ctx, r.led, r.next, env, ev)
	return err
}

// memLedger is the Ledger of a replay: the build and promotion events
// replayed so far.
type memLedger struct {
	events map[uint64]loggedEvent
	// byTerm lists indices by "type digest" and "promote digest@env".
	byTerm map[string][]uint64
}

type loggedEvent struct {
	env *event.Envelope
	ev  *event.Event
}

func newMemLedger() *memLedger {
	return &memLedger{events: map[uint64]loggedEvent{}, byTerm: map[string][]uint64{}}
}

func (l *memLedger) add(i uint64, env *event.Envelope, ev *event.Event) {
	if ev.Build == nil && ev.Promote == nil {
		return
	}
	l.events[i] = loggedEvent{env, ev}
	for _, d := range ev.Subjects {
		l.byTerm[ev.Type+" "+d.String()] = append(l.byTerm[ev.Type+" "+d.String()], i)
		if ev.Promote != nil {
			t := ev.Type + " " + d.String() + "@" + ev.Promote.To
			l.byTerm[t] = append(l.byTerm[t], i)
		}
	}
}

// Event implements Ledger.
func (l *memLedger) Event(_ context.Context, index uint64) (*event.Envelope, *event.Event, error) {
	e, ok := l.events[index]
	if !ok {
		return nil, nil, fmt.Errorf("entry %d is no build or promotion replayed", index)
	}
	return e.env, e.ev, nil
}

// HasEvent implements Ledger.
func (l *memLedger) HasEvent(_ context.Context, digest string, index uint64, eventType string) (bool, error) {
	e, ok := l.events[index]
	if !ok || e.ev.Type != eventType {
		return false, nil
	}
	return e.ev.HasSubject(mustDigest(digest)), nil
}

// Events implements Ledger.
func (l *memLedger) Events(_ context.Context, digest, eventType, env string, from uint64, limit int) ([]uint64, bool, error) {
	t := eventType + " " + digest
	if env != "" {
		t += "@" + env
	}
	var out []uint64
	for _, i := range l.byTerm[t] {
		if i < from {
			continue
		}
		if len(out) == limit {
			return out, true, nil
		}
		out = append(out, i)
	}
	return out, false, nil
}

func mustDigest(s string) event.Digest {
	alg, hex, _ := strings.Cut(s, ":")
	return event.Digest{Alg: alg, Hex: hex}
}

// ErrLogKey is returned for a note verifier key that is not an Ed25519
// one.
var ErrLogKey = errors.New("not an Ed25519 note verifier key")

// LogKey returns the DSSE form of a log's checkpoint key, from its note
// verifier key ("origin+hash+base64(0x01 || public key)", as DATA/log.pub
// holds it): the key that signs the log's genesis keyring.
func LogKey(verifierKey string) (event.Key, error) {
	parts := strings.SplitN(strings.TrimSpace(verifierKey), "+", 3) // base64 may hold "+"
	if len(parts) != 3 {
		return nil, fmt.Errorf("%w: want name+hash+key", ErrLogKey)
	}
	raw, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(raw) != 1+ed25519.PublicKeySize || raw[0] != 1 {
		return nil, fmt.Errorf("%w: its key is not 0x01 and 32 bytes", ErrLogKey)
	}
	der, err := x509.MarshalPKIXPublicKey(ed25519.PublicKey(raw[1:]))
	if err != nil {
		return nil, err
	}
	return event.LoadKey(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}
