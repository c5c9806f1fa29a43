package client

// The C2SP tlog-proof (c2sp.org/tlog-proof@v1), with provlog's use of it:
//
//	c2sp.org/tlog-proof@v1\n
//	extra <base64 of the entry itself>\n
//	index <decimal, no leading zeros>\n
//	<base64 of a 32-byte hash>\n          zero or more: the RFC 6962
//	...                                   inclusion proof, leaf to root
//	\n
//	<the signed checkpoint, verbatim, with any cosignatures>
//
// The spec makes the extra line optional and leaves its meaning to the
// application; in provlog bundles it is required and holds the entry, so
// a bundle verifies with nothing but the log's verifier key (and, if
// wanted, a witness policy). The extra data is not authenticated by itself:
// it is trusted only because its leaf hash, SHA-256(0x00||entry), is proven
// included in the signed tree.
//
// ParseBundle is stricter than formats/proof.TLogProof.Unmarshal, which it
// builds on: the bundle is capped at MaxBundleSize and the proof at 64
// hashes, and it must be byte-for-byte what TLogProof.Marshal produces from
// the parsed values (canonical base64 and decimal, "\n" line endings, no
// stray lines). Unmarshal reads lines with a bufio.Scanner and so cannot
// read an extra line longer than 64 KiB, which an entry of more than about
// 48 KiB needs; ParseBundle therefore takes the extra line off itself.

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"

	"github.com/transparency-dev/formats/proof"
	"github.com/transparency-dev/formats/witness"
	merkleproof "github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

const (
	// MaxBundleSize caps a tlog-proof bundle: a 65535-byte entry in base64,
	// a full proof and a checkpoint with cosignatures fit well within it.
	MaxBundleSize = 256 << 10
	// maxProofHashes caps an inclusion proof: a tree of 2^64 leaves needs 64.
	maxProofHashes = 64

	bundleHeader = "c2sp.org/tlog-proof@v1\n"
	extraPrefix  = "extra "
)

// ParseBundle parses a tlog-proof strictly, without verifying anything.
// Errors wrap ErrFormat.
func ParseBundle(b []byte) (*proof.TLogProof, error) {
	if len(b) > MaxBundleSize {
		return nil, fmt.Errorf("%w: bundle of %d bytes, want <= %d", ErrFormat, len(b), MaxBundleSize)
	}
	rest, ok := bytes.CutPrefix(b, []byte(bundleHeader))
	if !ok {
		return nil, fmt.Errorf("%w: bundle does not start with %q", ErrFormat, bundleHeader)
	}
	var extra []byte
	if e, ok := bytes.CutPrefix(rest, []byte(extraPrefix)); ok {
		line, after, ok := bytes.Cut(e, []byte("\n"))
		if !ok {
			return nil, fmt.Errorf("%w: bundle extra line not terminated", ErrFormat)
		}
		var err error
		if extra, err = base64.StdEncoding.Strict().DecodeString(string(line)); err != nil {
			return nil, fmt.Errorf("%w: bundle extra data: %w", ErrFormat, err)
		}
		if len(extra) == 0 {
			// "extra " would be a second encoding of no extra data.
			return nil, fmt.Errorf("%w: bundle extra line is empty", ErrFormat)
		}
		rest = after
	}
	var p proof.TLogProof
	if err := p.Unmarshal(append([]byte(bundleHeader), rest...)); err != nil {
		return nil, fmt.Errorf("%w: bundle: %w", ErrFormat, err)
	}
	p.ExtraData = extra
	switch {
	case len(p.Hashes) > maxProofHashes:
		return nil, fmt.Errorf("%w: bundle proof has %d hashes, want <= %d", ErrFormat, len(p.Hashes), maxProofHashes)
	case len(p.Checkpoint) == 0:
		return nil, fmt.Errorf("%w: bundle has no checkpoint", ErrFormat)
	case !bytes.Equal(p.Marshal(), b):
		return nil, fmt.Errorf("%w: bundle is not in canonical form", ErrFormat)
	}
	return &p, nil
}

// BuildBundle returns the tlog-proof for entry at index with the inclusion
// proof hashes (leaf to root, 32 bytes each) in the tree of the signed
// checkpoint. It verifies nothing; see VerifyBundle.
func BuildBundle(entry []byte, index uint64, hashes [][]byte, checkpoint []byte) ([]byte, error) {
	p := proof.TLogProof{Index: index, Checkpoint: checkpoint, ExtraData: entry}
	if len(entry) == 0 {
		return nil, fmt.Errorf("%w: empty entry", ErrFormat)
	}
	if len(hashes) > maxProofHashes {
		return nil, fmt.Errorf("%w: proof has %d hashes, want <= %d", ErrFormat, len(hashes), maxProofHashes)
	}
	for i, h := range hashes {
		if len(h) != sha256.Size {
			return nil, fmt.Errorf("%w: proof hash %d has %d bytes, want %d", ErrFormat, i, len(h), sha256.Size)
		}
		p.Hashes = append(p.Hashes, [sha256.Size]byte(h))
	}
	return p.Marshal(), nil
}

// VerifyOptions are the optional checks of VerifyBundle. The zero value
// checks the bundle against the log's key alone.
type VerifyOptions struct {
	// Origin is the origin the checkpoint must name. If empty, it is the
	// name of the log's verifier key, which in provlog equals the origin.
	Origin string
	// WitnessPolicy, if not nil, is a witness policy in the tlog-policy
	// text format ("witness <name> <vkey> <url>", "group <name> <n|any|all>
	// <members...>", "quorum <name|none>"; "log" lines are ignored) that the
	// checkpoint's cosignatures (C2SP tlog-cosignature, cosignature/v1)
	// must satisfy. It is parsed by formats/witness.ParsePolicy, which
	// wants the URL on each witness line although it is not used here. If
	// nil, no cosignature is required.
	WitnessPolicy []byte
	// Entry, if not nil, is the entry the bundle must be for.
	Entry []byte
}

// VerifiedBundle is what a bundle proves.
type VerifiedBundle struct {
	// Entry is the logged entry (the bundle's extra data).
	Entry []byte
	// Index is the entry's index in the log.
	Index uint64
	// Checkpoint is the verified checkpoint whose tree includes the entry.
	Checkpoint *Checkpoint
}

// VerifyBundle verifies a tlog-proof bundle offline: it parses it strictly
// (ParseBundle), opens its checkpoint with logVerifierKey (a note verifier
// key) and the origin, checks that the inclusion proof binds the leaf
// hash of the extra data, SHA-256(0x00||entry), at the index to the
// checkpoint's root, and applies the options. Errors wrap ErrFormat,
// ErrLogSignature, ErrInclusionProof, ErrPolicyNotSatisfied or
// ErrEntryMismatch; an unusable key or policy is reported without them.
func VerifyBundle(bundle []byte, logVerifierKey string, opts VerifyOptions) (*VerifiedBundle, error) {
	v, err := newLogVerifier(logVerifierKey)
	if err != nil {
		return nil, err
	}
	var policy *witness.Group
	if opts.WitnessPolicy != nil {
		g, err := witness.ParsePolicy(opts.WitnessPolicy)
		if err != nil {
			return nil, fmt.Errorf("witness policy: %w", err)
		}
		policy = &g
	}
	p, err := ParseBundle(bundle)
	if err != nil {
		return nil, err
	}
	if len(p.ExtraData) == 0 {
		return nil, fmt.Errorf("%w: bundle has no extra data (the entry)", ErrFormat)
	}
	cp, err := OpenCheckpoint(p.Checkpoint, v, opts.Origin)
	if err != nil {
		return nil, err
	}
	if err := verifyInclusion(p.ExtraData, p.Index, p.Hashes, cp); err != nil {
		return nil, err
	}
	if policy != nil && !policy.Satisfied(p.Checkpoint) {
		return nil, fmt.Errorf("%w: by the cosignatures of the checkpoint of size %d", ErrPolicyNotSatisfied, cp.Size)
	}
	if opts.Entry != nil && !bytes.Equal(opts.Entry, p.ExtraData) {
		return nil, fmt.Errorf("%w: bundle is for another entry (at index %d)", ErrEntryMismatch, p.Index)
	}
	return &VerifiedBundle{Entry: p.ExtraData, Index: p.Index, Checkpoint: cp}, nil
}

// verifyInclusion checks the RFC 6962 inclusion proof of entry at index in
// the tree of cp. Errors wrap ErrInclusionProof.
func verifyInclusion(entry []byte, index uint64, hashes [][sha256.Size]byte, cp *Checkpoint) error {
	if index >= cp.Size {
		return fmt.Errorf("%w: index %d is not in the tree of size %d", ErrInclusionProof, index, cp.Size)
	}
	p := make([][]byte, len(hashes))
	for i := range hashes {
		p[i] = hashes[i][:]
	}
	leaf := rfc6962.DefaultHasher.HashLeaf(entry)
	if err := merkleproof.VerifyInclusion(rfc6962.DefaultHasher, index, cp.Size, leaf, p, cp.Hash); err != nil {
		return fmt.Errorf("%w: entry %d in the tree of size %d: %w", ErrInclusionProof, index, cp.Size, err)
	}
	return nil
}
