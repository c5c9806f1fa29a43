package storagetest

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	plog "github.com/provlog/provlog/log"
	"github.com/provlog/provlog/storage"
	"golang.org/x/mod/sumdb/note"
)

// Op names a storage operation of an append that a Fault fails.
type Op string

const (
	// OpLookup is the dedup lookup before a round (LookupLeaves).
	OpLookup Op = "LookupLeaves"
	// OpCommit is the round's commit (Commit).
	OpCommit Op = "Commit"
)

// Fault is one row of a backend's fault table, as Sunlight's
// TestSequenceErrors fails each storage step: a way to make the store's
// next Op fail, once.
type Fault struct {
	Name string
	Op   Op
	// Persists says the failed operation's writes are durable nonetheless
	// ("fail but persist": a commit that succeeded but reported an
	// error); otherwise none of them is ("fail and don't persist").
	Persists bool
	// Arm makes st's next Op fail so. st is what the backend's opener
	// returned.
	Arm func(t *testing.T, st Store)
}

// ErrInjected is the error of an Injector's faults.
var ErrInjected = errors.New("injected storage fault")

// Injector wraps a Store and, when armed, fails its next Commit or
// LookupLeaves at the interface: before calling the store (nothing
// persisted) or after the store succeeded (persisted). It serves backends
// whose real faults are tested elsewhere (Pebble's filesystem faults are
// storage's TestAppendFaults).
type Injector struct {
	Store
	armed atomic.Pointer[Fault]
}

// InjectorFaults is the fault table of a backend whose opener returns an
// *Injector.
func InjectorFaults() []Fault {
	arm := func(f Fault) Fault {
		f.Arm = func(t *testing.T, st Store) {
			in, ok := st.(*Injector)
			if !ok {
				t.Fatalf("InjectorFaults on a %T, not an *Injector", st)
			}
			in.armed.Store(&f)
		}
		return f
	}
	return []Fault{
		arm(Fault{Name: "lookup fails", Op: OpLookup}),
		arm(Fault{Name: "commit fails, nothing written", Op: OpCommit}),
		arm(Fault{Name: "commit written, reported failed", Op: OpCommit, Persists: true}),
	}
}

// take disarms and returns the armed fault if it is of op.
func (in *Injector) take(op Op) *Fault {
	f := in.armed.Load()
	if f == nil || f.Op != op || !in.armed.CompareAndSwap(f, nil) {
		return nil
	}
	return f
}

// Commit implements log.Storage.
func (in *Injector) Commit(r *storage.Round) error {
	f := in.take(OpCommit)
	if f == nil {
		return in.Store.Commit(r)
	}
	if f.Persists {
		if err := in.Store.Commit(r); err != nil {
			return err
		}
	}
	return fmt.Errorf("committing round [%d, %d): %w (%s)", r.Start, r.State.Size, ErrInjected, f.Name)
}

// LookupLeaves implements log.Storage.
func (in *Injector) LookupLeaves(hashes [][]byte, indices []uint64, found []bool) error {
	if f := in.take(OpLookup); f != nil {
		return fmt.Errorf("looking up leaves: %w (%s)", ErrInjected, f.Name)
	}
	return in.Store.LookupLeaves(hashes, indices, found)
}

const faultOrigin = "example.com/provlog-storagetest"

// openFaultLog opens a log over st.
func openFaultLog(t *testing.T, st Store, signer note.Signer) *plog.Log {
	t.Helper()
	l, err := plog.Open(context.Background(), plog.Config{
		Origin: faultOrigin, Signer: signer, Admission: TermAdmission{}, Logger: slog.New(slog.DiscardHandler),
	}, st)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// NewKey returns a note key pair named origin, drawn from r.
func NewKey(t *testing.T, r io.Reader, origin string) (skey string, signer note.Signer, v note.Verifier) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(r, origin)
	if err != nil {
		t.Fatal(err)
	}
	if signer, err = note.NewSigner(skey); err != nil {
		t.Fatal(err)
	}
	if v, err = note.NewVerifier(vkey); err != nil {
		t.Fatal(err)
	}
	return skey, signer, v
}

func faultEntry(tag string, i int) []byte {
	return fmt.Appendf(nil, "%s entry %d;%s", tag, i, bytes.Repeat([]byte{byte(i)}, 20+i*37%1200))
}

// runFaults runs the backend's fault table. Each row: a log of 151
// entries in three rounds; the fault armed; a batch of 40 new entries,
// copies of three logged ones and a copy of one of its own, which must
// fail with ErrUnavailable and publish nothing; then, after a failed
// lookup, the log still takes an entry, and after a failed commit it
// refuses every write (ErrUnavailable). The store is then reopened and the
// whole tree re-verified (Verify): the logged entries intact, the batch's
// new entries present if and only if the fault persisted them, every
// published checkpoint within the durable tree. A log recovered over it
// dedups the batch against what persisted and takes appends that verify.
func runFaults(t *testing.T, b Backend) {
	if len(b.Faults) == 0 {
		t.Skip("the backend has no fault table")
	}
	_, signer, v := NewKey(t, crand.Reader, faultOrigin)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, f := range b.Faults {
		t.Run(f.Name, func(t *testing.T) {
			o := b.New(t)
			st := o(t)
			l := openFaultLog(t, st, signer)
			var base [][]byte
			for _, n := range []int{1, 50, 100} {
				var batch [][]byte
				for range n {
					batch = append(batch, faultEntry("base", len(base)+len(batch)))
				}
				if _, err := l.AddBatch(ctx, batch); err != nil {
					t.Fatal(err)
				}
				base = append(base, batch...)
			}
			baseSize := uint64(len(base))
			published := [][]byte{l.Checkpoint().Note}

			f.Arm(t, st)
			var batch [][]byte
			for i := range 40 {
				batch = append(batch, faultEntry("fault", i))
			}
			batch = append(batch, base[0], base[len(base)-1], base[77], batch[3])
			_, err := l.AddBatch(ctx, batch)
			if err == nil {
				t.Fatalf("the batch succeeded despite the fault")
			}
			if !errors.Is(err, plog.ErrUnavailable) {
				t.Errorf("batch failed with %v, want ErrUnavailable", err)
			}
			published = append(published, l.Checkpoint().Note)
			if !bytes.Equal(published[1], published[0]) {
				t.Errorf("a checkpoint was published after the failed round:\n%s", published[1])
			}
			healthy := l.Healthy()
			extra := faultEntry("extra", 0)
			r, err := l.Add(ctx, extra)
			published = append(published, l.Checkpoint().Note)
			wantSize := baseSize
			switch f.Op {
			case OpLookup:
				if healthy != nil || err != nil || r.Index != baseSize || r.Duplicate {
					t.Fatalf("after a failed lookup: healthy %v; next add %+v, %v; want index %d", healthy, r, err, baseSize)
				}
				wantSize++
			case OpCommit:
				if healthy == nil {
					t.Error("the log is healthy after a failed commit")
				}
				if !errors.Is(err, plog.ErrUnavailable) {
					t.Errorf("after a failed commit, the next add returned %+v, %v; want ErrUnavailable", r, err)
				}
				if !bytes.Equal(published[2], published[0]) {
					t.Errorf("a stopped log published a checkpoint:\n%s", published[2])
				}
				if f.Persists {
					wantSize += 40
				}
			}
			if err := l.Close(); err != nil {
				t.Logf("closing the failed log: %v", err)
			}
			if err := st.Close(); err != nil {
				t.Logf("closing the failed store: %v", err)
			}

			st = o(t)
			defer st.Close()
			durable, err := Verify(st, faultOrigin, v)
			if err != nil {
				t.Fatalf("after the fault: %v", err)
			}
			if durable.Size != wantSize || !slices.EqualFunc(durable.Entries[:baseSize], base, bytes.Equal) {
				t.Fatalf("tree size %d after the fault, want %d with the %d logged entries first", durable.Size, wantSize, baseSize)
			}
			if f.Op == OpCommit && f.Persists && !slices.EqualFunc(durable.Entries[baseSize:], batch[:40], bytes.Equal) {
				t.Fatalf("the persisted round is not the batch's 40 new entries")
			}
			for _, raw := range published {
				if _, err := CheckPublished(raw, faultOrigin, v, durable); err != nil {
					t.Fatal(err)
				}
			}

			// The recovered log dedups the batch against what persisted.
			l = openFaultLog(t, st, signer)
			res, err := l.AddBatch(ctx, batch)
			if err != nil {
				t.Fatalf("the batch after recovery: %v", err)
			}
			for i, r := range res[:40] {
				if r.Duplicate != (f.Persists && f.Op == OpCommit) || (r.Duplicate && r.Index != baseSize+uint64(i)) || r.Index < baseSize {
					t.Errorf("new entry %d of the batch acknowledged as %+v after recovery", i, r)
				}
			}
			for i, j := range []int{0, len(base) - 1, 77} {
				if r := res[40+i]; !r.Duplicate || r.Index != uint64(j) {
					t.Errorf("copy of logged entry %d acknowledged as %+v", j, r)
				}
			}
			if r := res[43]; !r.Duplicate || r.Index != res[3].Index {
				t.Errorf("second copy of batch entry 3 acknowledged as %+v, first %+v", r, res[3])
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if durable, err = Verify(st, faultOrigin, v); err != nil {
				t.Fatalf("after the batch's recovery: %v", err)
			}
			l = openFaultLog(t, st, signer)
			next := faultEntry("after", 0)
			r, err = l.Add(ctx, next)
			if err != nil {
				t.Fatalf("append after recovery: %v", err)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if err := VerifyAppend(st, faultOrigin, v, durable, r, next); err != nil {
				t.Fatalf("append after recovery: %v", err)
			}
		})
	}
}
