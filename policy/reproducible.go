package policy

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/provlog/provlog/event"
)

// SignedBuild is a build event as reproducibility counts it: who built it
// and which keys vouch for it.
type SignedBuild struct {
	Index   uint64 // its log index
	Builder string // its SLSA builder id
	// Signers identify the keys that signed its envelope. Equal strings
	// are one key; the caller decides what identifies a key (the gate: a
	// named key's id, or the DSSE key id the log admitted; the log: its
	// keyring key's id).
	Signers []string
}

// Independent returns the log indices, in increasing order, of a largest
// set of builds from distinct builder ids each credited to a distinct one
// of its signers: the largest number of builds no single builder and no
// single key accounts for two of. It is a maximum matching between builder
// ids and keys, an edge for each build signed by the key (Kuhn's
// augmenting paths), so a build signed by several keys is credited to
// whichever leaves the others free.
func Independent(builds []SignedBuild) []uint64 {
	var builders []string
	byBuilder := map[string][]int{}
	for i, b := range builds {
		if _, ok := byBuilder[b.Builder]; !ok {
			builders = append(builders, b.Builder)
		}
		byBuilder[b.Builder] = append(byBuilder[b.Builder], i)
	}
	credited := map[string]int{} // key -> the build credited to it
	var augment func(builder string, seen map[string]bool) bool
	augment = func(builder string, seen map[string]bool) bool {
		for _, i := range byBuilder[builder] {
			for _, k := range builds[i].Signers {
				if seen[k] {
					continue
				}
				seen[k] = true
				if j, ok := credited[k]; !ok || augment(builds[j].Builder, seen) {
					credited[k] = i
					return true
				}
			}
		}
		return false
	}
	for _, b := range builders {
		augment(b, map[string]bool{})
	}
	var out []uint64
	for _, i := range credited {
		out = append(out, builds[i].Index)
	}
	slices.Sort(out)
	return out
}

// Source is a build's source as reproducibility compares it: the
// normalized repository (event.NormalizeRepo) and the commit.
func Source(b *event.Build) string {
	return event.NormalizeRepo(b.SourceRepo) + "@" + b.SourceCommit
}

// reproducible is the reproducible rule of a policy.
type reproducible struct {
	builders   int
	sameSource bool
}

// buildSigners returns the identities of the keys that signed a build
// event's envelope, as the gate counts them: for a signature a named key
// verifies, that key's id; for one whose key id is a named key's that the
// key does not verify, none (the gate does not take the log's word for a
// key it holds); otherwise its DSSE key id, as the log admitted it. Every
// signature without key id that no named key verifies is "": one key, as
// the gate cannot tell such signers apart.
func (p *Policy) buildSigners(ctx context.Context, e Event) []string {
	pae := e.Envelope.PAE()
	var ids []string
	for _, s := range e.Envelope.Signatures {
		id, verified, claimed := s.KeyID, false, false
		for _, k := range p.named {
			if k.pub.Verify(ctx, pae, s.Sig) == nil {
				id, verified = k.id, true
				break
			}
			claimed = claimed || k.id == s.KeyID
		}
		if (verified || !claimed) && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	return ids
}

// checkReproducible denies unless there are at least the rule's number of
// independent accepted builds (see Independent), all from one source if
// the rule says so.
func (p *Policy) checkReproducible(ctx context.Context, d *Decision, events []Event, accepted map[uint64]bool) {
	r := p.reproducible
	if r == nil || len(accepted) == 0 {
		return // no rule, or no build to count (builds denied already)
	}
	var all []uint64
	var sources []string
	groups := map[string][]SignedBuild{}
	for _, e := range events {
		if e.Event.Build == nil || !accepted[e.Index] {
			continue
		}
		all = append(all, e.Index)
		src := ""
		if r.sameSource {
			src = Source(e.Event.Build)
		}
		if _, ok := groups[src]; !ok {
			sources = append(sources, src)
		}
		groups[src] = append(groups[src], SignedBuild{Index: e.Index, Builder: e.Event.Build.BuilderID, Signers: p.buildSigners(ctx, e)})
	}
	var best []uint64
	var each []string
	for _, src := range sources {
		ind := Independent(groups[src])
		if len(ind) > len(best) {
			best = ind
		}
		each = append(each, fmt.Sprintf("%s: builds %v, independent %v", src, indices(groups[src]), ind))
	}
	if len(best) >= r.builders {
		return
	}
	if !r.sameSource {
		d.deny(all, "reproducible: %d independent builds %v among the accepted builds %v, the policy wants %d (distinct builder ids, signed by distinct keys)",
			len(best), best, all, r.builders)
		return
	}
	d.deny(all, "reproducible: at most %d independent builds from one source (%s), the policy wants %d (distinct builder ids, signed by distinct keys, from the same source repository and commit)",
		len(best), strings.Join(each, "; "), r.builders)
}

// indices returns the builds' log indices.
func indices(bs []SignedBuild) []uint64 {
	var out []uint64
	for _, b := range bs {
		out = append(out, b.Index)
	}
	return out
}
