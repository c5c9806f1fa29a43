package log

import (
	"context"
	"fmt"
	"time"

	"github.com/provlog/provlog/merkle"
)

// Witnesser gathers witness cosignatures for a signed checkpoint (the log
// side of C2SP tlog-witness). It returns the checkpoint with the verified
// cosignature lines appended and whether they satisfy the witness policy.
// proof returns consistency proofs between sizes of the log, up to the
// checkpoint's.
type Witnesser interface {
	Witness(ctx context.Context, checkpoint []byte, proof func(ctx context.Context, from, to uint64) ([][]byte, error)) (cosigned []byte, satisfied bool, err error)
}

// Witnessing. With Config.Witness set, the sequencer still signs and
// commits a checkpoint every round and answers adds once durable, but
// readers are served only the latest checkpoint whose cosignatures meet the
// policy. One goroutine, the witness loop, owns witnessing: at most once per
// Config.WitnessInterval it sends the latest signed checkpoint to the
// witnesses, records the cosigned checkpoint durably (storage SetPublished)
// and only then publishes it. Sequencing never waits for witnesses.
//
// If the policy is not met, nothing new is published (fail closed) unless
// Config.WitnessFailOpen, which publishes the log-signed checkpoint alone,
// recorded durably first like a cosigned one. A log that has never
// published a witnessed checkpoint starts from its latest log-signed one
// (see openPublished), so adding a witness policy never shrinks the
// published tree. Reads (tiles, entries, proofs) serve the whole
// integrated tree, as tlog-tiles requires; only the checkpoint waits.
// The loop retries every interval until the latest checkpoint is witnessed.

// witnessLoop runs until ctx ends.
func (l *Log) witnessLoop(ctx context.Context) {
	defer close(l.witnessDone)
	var retry <-chan time.Time
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.witnessKick:
		case <-retry:
		}
		if wait := l.cfg.WitnessInterval - time.Since(last); wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		last, retry = time.Now(), nil
		if !l.witnessLatest(ctx) {
			retry = time.After(l.cfg.WitnessInterval)
		}
	}
}

// witnessLatest witnesses and publishes the latest signed checkpoint; it
// reports whether the published checkpoint is now the latest.
func (l *Log) witnessLatest(ctx context.Context) bool {
	cp := l.latest.Load()
	if pub := l.published.Load(); pub.Size == cp.Size && pub.witnessed {
		return true
	}
	cosigned, ok, err := l.cfg.Witness.Witness(ctx, cp.Note, l.witnessProof)
	if err == nil && !ok {
		err = fmt.Errorf("witness policy not satisfied at tree size %d", cp.Size)
	}
	if err == nil {
		err = l.store.SetPublished(cosigned)
	}
	if err != nil {
		l.metrics.witnessFailures.Inc()
		l.cfg.Logger.WarnContext(ctx, "checkpoint not witnessed", "size", cp.Size, "err", err)
		if l.cfg.WitnessFailOpen && l.published.Load().Size < cp.Size {
			l.publishFailOpen(ctx, cp)
		}
		return false
	}
	l.publish(&Checkpoint{Size: cp.Size, Root: cp.Root, Note: cosigned, witnessed: true})
	l.metrics.witnessedSize.Set(float64(cp.Size))
	return true
}

// publishFailOpen publishes the log-signed checkpoint cp without
// cosignatures, after recording it durably: what was published once is
// published again after a restart, never a smaller tree.
func (l *Log) publishFailOpen(ctx context.Context, cp *Checkpoint) {
	if err := l.store.SetPublished(cp.Note); err != nil {
		l.cfg.Logger.WarnContext(ctx, "fail-open checkpoint not published", "size", cp.Size, "err", err)
		return
	}
	l.publish(cp)
}

// witnessProof returns a consistency proof up to the latest signed tree,
// which witnessing may publish.
func (l *Log) witnessProof(ctx context.Context, from, to uint64) ([][]byte, error) {
	if latest := l.latest.Load().Size; to > latest || from > to {
		return nil, fmt.Errorf("%w: consistency proof %d to %d, latest size %d", ErrOutOfRange, from, to, latest)
	}
	return merkle.ConsistencyProofVisiting(from, to, l.treeVisitor(to))
}
