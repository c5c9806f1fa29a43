package log

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/provlog/provlog/event"
)

// newReproChain is a chain whose keyring has builder keys ci and ci2,
// promoter alice, and environments dev and prod (from dev, needing two
// independent builds).
func newReproChain(t *testing.T) *chain {
	t.Helper()
	c := newChain(t)
	priv, pub, err := event.GenerateKey(event.KeyEd25519)
	if err != nil {
		t.Fatal(err)
	}
	if c.keys["ci2"], err = event.LoadSigningKey(priv); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.dir, "ci2.pub"), pub, 0o644); err != nil {
		t.Fatal(err)
	}
	c.reopenWith(c.reproKeyring(RoleBuilder))
	return c
}

// reproKeyring is the keyring of newReproChain, ci2 with role ci2Role, or
// left out for "".
func (c *chain) reproKeyring(ci2Role string) *Keyring {
	c.t.Helper()
	keys := `{"name": "ci", "publicKeyFile": "ci.pub", "roles": ["builder"]}, {"name": "alice", "publicKeyFile": "alice.pub", "roles": ["promoter"]}`
	if ci2Role != "" {
		keys += `, {"name": "ci2", "publicKeyFile": "ci2.pub", "roles": ["` + ci2Role + `"]}`
	}
	kr, err := ParseKeyring([]byte(`{"keys": [`+keys+`], "environments": [{"name": "dev"}, {"name": "prod", "from": "dev", "reproducible": 2}]}`), c.dir)
	if err != nil {
		c.t.Fatal(err)
	}
	return kr
}

const reproRepo = "git+https://git.example.com/app"

// buildBy is a build of d by builder from repo at commit (a two-hex-digit
// pattern), signed by signers.
func (c *chain) buildBy(d event.Digest, builder, repo, commit string, signers ...string) []byte {
	c.t.Helper()
	p, err := event.NewProvenance(event.BuildSpec{BuilderID: builder, BuildType: "https://ci.example.com/t",
		SourceRepo: repo, SourceCommit: strings.Repeat(commit, 20)})
	if err != nil {
		c.t.Fatal(err)
	}
	return c.envelope(event.ProvenancePredicateType, d, p, signers...)
}

// refused checks that entry is refused with ErrFailedPrecondition and
// exactly the message want, and that the log did not change.
func (c *chain) refused(name string, entry []byte, want string) {
	c.t.Helper()
	before := c.log.Checkpoint()
	_, err := c.add(entry)
	if !errors.Is(err, ErrFailedPrecondition) || err.Error() != want {
		c.t.Errorf("%s: %v\nwant %s", name, err, want)
	}
	if after := c.log.Checkpoint(); after.Size != before.Size || !bytes.Equal(after.Note, before.Note) {
		c.t.Errorf("%s: the log grew to %d", name, after.Size)
	}
}

// reproMsg is the refusal of a promotion to prod of d citing build b.
func reproMsg(d event.Digest, b uint64, commit string, have []uint64) string {

	return fmt.Sprintf("failed precondition: promotion to prod needs 2 independent builds of %s from the source of build %d (https://git.example.com/app@%s: distinct builder ids, signed by distinct keyring keys); the log has %d %v",
		d, b, strings.Repeat(commit, 20), len(have), have)
}

func TestReproducibleAdmission(t *testing.T) {
	c := newReproChain(t)
	const a, b = "https://ci-a.example.com/runner", "https://ci-b.example.com/runner"
	for _, tc := range []struct {
		name, artifact string
		// second is the other build beside one by a, signed by ci, of
		// reproRepo at c0.
		second   []byte
		admitted bool
		// secondCommit is the commit of the second build, if a promotion
		// citing it is tried too.
		secondCommit string
	}{
		{"another builder and key", "ok", c.buildBy(artifact("ok"), b, "https://git.example.com/app.git", "c0", "ci2"), true, ""},
		{"the same builder", "builder", c.buildBy(artifact("builder"), a, reproRepo, "c0", "ci2"), false, ""},
		{"the same key", "key", c.buildBy(artifact("key"), b, reproRepo, "c0", "ci"), false, ""},
		{"another commit", "commit", c.buildBy(artifact("commit"), b, reproRepo, "d1", "ci2"), false, "d1"},
	} {
		d := artifact(tc.artifact)
		first := c.mustAdd(c.buildBy(d, a, reproRepo, "c0", "ci"))
		c.mustAdd(c.promote(d, first, "", "dev", "alice"))
		c.refused(tc.name+": one build", c.promote(d, first, "dev", "prod", "alice"), reproMsg(d, first, "c0", []uint64{first}))
		second := c.mustAdd(tc.second)
		if tc.admitted {
			if _, err := c.add(c.promote(d, first, "dev", "prod", "alice")); err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		c.refused(tc.name, c.promote(d, first, "dev", "prod", "alice"), reproMsg(d, first, "c0", []uint64{first}))
		if tc.secondCommit != "" {
			c.refused(tc.name+", citing it", c.promote(d, second, "dev", "prod", "alice"), reproMsg(d, second, tc.secondCommit, []uint64{second}))
		}
	}

	// A build counts only while its signatures count: ci2 revoked as
	// compromised since the second build, the pair is one independent
	// build (leaving ci2 out of a later keyring would not do: the builds
	// were authorized when logged).
	d := artifact("ok")
	hits, _, err := c.store.SearchIndex(IndexDigest, d.String(), 0, 10)
	if err != nil || len(hits) < 3 || hits[2].Tag != TagBuild {
		t.Fatal(hits, err)
	}
	first, second := hits[0].Index, hits[2].Index
	c.reopenWith(c.reproKeyring(RoleSigner))
	if _, err := c.add(c.promote(d, first, "dev", "prod", "alice")); err != nil {
		t.Errorf("ci2 no longer a builder, its build logged while it was one: %v", err)
	}
	revoke, err := event.NewRevokeStatement(&event.RevokePredicate{KeyID: c.keyID("ci2"), CompromisedSince: second, Reason: "ci2 leaked"})
	if err != nil {
		t.Fatal(err)
	}
	c.mustAdd(c.byLog(revoke))
	c.refused("ci2 revoked", c.promote(d, first, "dev", "prod", "alice"), reproMsg(d, first, "c0", []uint64{first}))
	c.refused("citing the voided build", c.promote(d, second, "dev", "prod", "alice"), fmt.Sprintf("failed precondition: statement.predicate.buildIndex: build event %d no longer counts: a key that signed it was revoked as compromised since then", second))
	c.verifyTree()
}

func TestKeyringReproducible(t *testing.T) {
	if _, err := ParseKeyring([]byte(`{"keys": [], "environments": [{"name": "prod", "reproducible": -1}]}`), t.TempDir()); err == nil || !strings.Contains(err.Error(), "environments[0].reproducible: -1, want >= 0") {
		t.Errorf("reproducible -1: %v", err)
	}
}
