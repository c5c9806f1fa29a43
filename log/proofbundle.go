package log

import (
	"bytes"
	"context"
	"fmt"

	"github.com/transparency-dev/formats/proof"
)

// ProofBundle returns a C2SP tlog-proof (c2sp.org/tlog-proof@v1) for entry
// index: the inclusion proof in the latest published checkpoint, that
// checkpoint, and the entry itself as the bundle's extra data, so that the
// bundle verifies offline with only the log's verifier key.
func (l *Log) ProofBundle(ctx context.Context, index uint64) ([]byte, error) {
	cp := l.Checkpoint()
	hashes, err := l.InclusionProof(ctx, index, cp.Size)
	if err != nil {
		return nil, err
	}
	p := proof.TLogProof{Index: index, Checkpoint: cp.Note, Hashes: make([][32]byte, len(hashes))}
	for i, h := range hashes {
		p.Hashes[i] = [32]byte(h)
	}
	err = l.store.Entries(index, 1, func(_ uint64, e []byte) error {
		p.ExtraData = bytes.Clone(e)
		return nil
	})
	if err != nil {
		return nil, l.readErr(fmt.Sprintf("entry %d", index), err)
	}
	return p.Marshal(), nil
}
