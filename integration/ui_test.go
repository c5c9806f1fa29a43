package integration

// End-to-end tests of the auditor's page (log/server/ui) in headless
// Chromium against a real provlogd, and the screenshots of docs/ui/.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/provlog/provlog/event"
)

var uiScreenshots = flag.String("ui.screenshots", "", "`dir`ectory where TestUIScreenshots writes the page's screenshots (docs/ui); off if empty")

// uiStory is a real provlogd holding one artifact's life, logged with the
// provlog CLI: build, sign, promotions into dev, staging and prod (with a
// second approval, bob's), at consecutive indices after the genesis
// keyring (which names two admins, root1 and root2, 2 of 2, and sec, of
// the security role); then the admins revoke bob as compromised since the
// prod promotion, and sec quarantines the artifact.
//
// The log is witnessed by the three witnesses of a witnessedSetup (a
// quorum of two).
type uiStory struct {
	d         *provlogd
	w         *witnessedSetup
	c         cli    // provlog with --log and --log-key of d
	dir       string // the artifact's file is dir/app.tar.gz
	digest    string
	builderID string
	indices   []uint64 // build, sign, dev, staging, prod
	// revocation and quarantine are the indices of bob's revocation and
	// of the artifact's quarantine.
	revocation, quarantine uint64
}

// quarantineReason is why the story quarantines its artifact.
const quarantineReason = "CVE-2026-0001 in a dependency"

// last is the index of the story's last entry.
func (s *uiStory) last() uint64 { return s.quarantine }

func newUIStory(t *testing.T) *uiStory {
	t.Helper()
	dir := t.TempDir()
	local := cli{t: t, dir: dir}
	for _, k := range []string{"builder", "signer", "alice", "bob", "sec", "root1", "root2"} {
		local.ok("keygen", "--type", "submitter", "--name", k, "--out", k)
	}
	writeFile(t, dir, "keyring.json", `{"keys": [
  {"name": "builder", "publicKeyFile": "builder.pub", "roles": ["builder"]},
  {"name": "signer", "publicKeyFile": "signer.pub", "roles": ["signer"]},
  {"name": "alice", "publicKeyFile": "alice.pub", "roles": ["promoter"]},
  {"name": "bob", "publicKeyFile": "bob.pub", "roles": ["approver"]},
  {"name": "sec", "publicKeyFile": "sec.pub", "roles": ["security"]},
  {"name": "root1", "publicKeyFile": "root1.pub", "roles": []},
  {"name": "root2", "publicKeyFile": "root2.pub", "roles": []}],
 "environments": [{"name": "dev"}, {"name": "staging", "from": "dev"}, {"name": "prod", "from": "staging", "approvals": 2}],
 "admins": {"keys": ["root1", "root2"], "threshold": 2}}`)
	s := &uiStory{dir: dir, builderID: "https://ci.example.com/runner@v3", w: newWitnessedSetup(t)}
	s.d = mustStartProvlogd(t, filepath.Join(dir, "data"), "--origin", s.w.origin, "--key", s.w.keyFile,
		"--witness-policy", s.w.policyFile, "--witness-interval", "50ms",
		"--admission", "attestations", "--keyring", filepath.Join(dir, "keyring.json"))
	c := cli{t: t, dir: dir, global: []string{"--log", s.d.GRPCAddr, "--log-key", s.d.VerifierKey}}
	s.c = c
	const content = "the contents of app 2.0.0"
	writeFile(t, dir, "app.tar.gz", content)
	writeFile(t, dir, "app.sig", "a release signature")
	sum := sha256.Sum256([]byte(content))
	s.digest = "sha256:" + hex.EncodeToString(sum[:])
	var got []uint64
	for _, args := range [][]string{
		{"attest", "build", "--builder-id", s.builderID, "--build-type", "https://ci.example.com/go@v1",
			"--source-repo", "git+https://git.example.com/app", "--source-commit", strings.Repeat("c0", 20),
			"--started", "2026-03-04T10:00:00Z", "--finished", "2026-03-04T10:06:30Z", "--sign-key", "builder.key"},
		{"attest", "sign", "--algorithm", "ecdsa-p256-sha256", "--signature-key-id", "release", "--signature-file", "app.sig", "--sign-key", "signer.key"},
		{"attest", "promote", "--to", "dev", "--sign-key", "alice.key"},
		{"attest", "promote", "--from", "dev", "--to", "staging", "--sign-key", "alice.key"},
	} {
		if len(got) > 0 { // named, as the witnessed log may not have published the build yet
			args = append(args, "--build-index", fmt.Sprint(got[0]))
		}
		got = append(got, index(t, c.ok(append(args, "--artifact", "app.tar.gz", "--submit")...)))
	}
	c.ok("attest", "promote", "--artifact", "app.tar.gz", "--from", "staging", "--to", "prod", "--build-index", fmt.Sprint(got[0]),
		"--rationale", "release 2.0.0", "--change-ref", "CHG-7", "--sign-key", "alice.key", "--out", "prod.json")
	c.ok("approve", "--envelope", "prod.json", "--sign-key", "bob.key", "--out", "prod.json")
	got = append(got, index(t, c.ok("submit", "--wait", "prod.json")))
	for i := range got {
		if got[i] != got[0]+uint64(i) {
			t.Fatalf("indices %v, want consecutive ones", got)
		}
	}
	s.indices = got

	// The admins revoke bob, compromised since the prod promotion, which
	// then no longer counts; sec quarantines the artifact. Built here
	// (not with provlog keyring, which is newer) and submitted as entries.
	s.revocation = s.submitTrustEvent(t, "revoke.json", func() ([]byte, error) {
		return event.NewRevokeStatement(&event.RevokePredicate{KeyID: s.keyID(t, "bob"), CompromisedSince: got[4], Reason: "bob's laptop was stolen"})
	}, "root1", "root2")
	s.quarantine = s.submitTrustEvent(t, "quarantine.json", func() ([]byte, error) {
		d, err := event.ParseDigest(s.digest)
		if err != nil {
			return nil, err
		}
		return event.NewQuarantineStatement([]event.Subject{{Name: "app.tar.gz", Digest: d}}, &event.QuarantinePredicate{Action: event.TypeQuarantine, Reason: quarantineReason})
	}, "sec")
	if s.revocation != got[4]+1 || s.quarantine != got[4]+2 {
		t.Fatalf("revocation at %d, quarantine at %d, want %d and %d", s.revocation, s.quarantine, got[4]+1, got[4]+2)
	}
	return s
}

// keyID is the key id of the story's key name (its public key dir/name.pub).
func (s *uiStory) keyID(t *testing.T, name string) string {
	t.Helper()
	pub, err := os.ReadFile(filepath.Join(s.dir, name+".pub"))
	if err != nil {
		t.Fatal(err)
	}
	k, err := event.LoadKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	id, err := k.KeyID()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// submitTrustEvent signs the statement with the named keys (dir/name.key),
// writes the envelope to dir/file, submits it with provlog submit --wait
// and returns its index.
func (s *uiStory) submitTrustEvent(t *testing.T, file string, statement func() ([]byte, error), signers ...string) uint64 {
	t.Helper()
	st, err := statement()
	if err != nil {
		t.Fatal(err)
	}
	var keys []event.SigningKey
	for _, name := range signers {
		priv, err := os.ReadFile(filepath.Join(s.dir, name+".key"))
		if err != nil {
			t.Fatal(err)
		}
		k, err := event.LoadSigningKey(priv)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	env, err := event.SignEnvelope(context.Background(), st, keys...)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, s.dir, file, string(env))
	return index(t, s.c.ok("submit", "--wait", file))
}

// buildOther logs the build of another artifact, and returns its digest.
func (s *uiStory) buildOther(t *testing.T, name string) string {
	t.Helper()
	writeFile(t, s.dir, name, "the contents of "+name)
	s.c.ok("attest", "build", "--artifact", name, "--builder-id", "https://ci.example.com/nightly@v1", "--build-type", "https://ci.example.com/go@v1",
		"--source-repo", "git+https://git.example.com/app", "--source-commit", strings.Repeat("d1", 20), "--sign-key", "builder.key", "--submit")
	sum := sha256.Sum256([]byte("the contents of " + name))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// tamperProxy serves the log of upstream, but for what mode names:
// "inclusion" or "consistency" flips a bit of the first hash of every
// such proof, "checkpoint" a bit of the checkpoint's signature.
func tamperProxy(t *testing.T, upstream string, mode *atomic.Value) *httptest.Server {
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	p := httputil.NewSingleHostReverseProxy(u)
	p.ModifyResponse = func(r *http.Response) error {
		m, _ := mode.Load().(string)
		path := r.Request.URL.Path
		if r.StatusCode != 200 || !(path == "/api/v1/proofs/"+m || m == "checkpoint" && path == "/checkpoint") {
			return nil
		}
		body, err := io.ReadAll(r.Body)
		r.Body.Close()
		if err != nil {
			return err
		}
		if m != "checkpoint" {
			var resp map[string]any
			if err := json.Unmarshal(body, &resp); err != nil {
				return err
			}
			if hashes, _ := resp["proof"].([]any); len(hashes) > 0 {
				h, _ := base64.StdEncoding.DecodeString(hashes[0].(string))
				h[0] ^= 0x01
				hashes[0] = base64.StdEncoding.EncodeToString(h)
			}
			body, _ = json.Marshal(resp)
		} else {
			// A bit of the log's signature (on the line of the origin's
			// key, not a witness's), its key ID left alone.
			lines := strings.Split(string(body), "\n")
			for i, l := range lines {
				if b64, ok := strings.CutPrefix(l, "— "+lines[0]+" "); ok {
					sig, err := base64.StdEncoding.DecodeString(b64)
					if err != nil {
						return err
					}
					sig[10] ^= 0x01
					lines[i] = "— " + lines[0] + " " + base64.StdEncoding.EncodeToString(sig)
				}
			}
			body = []byte(strings.Join(lines, "\n"))
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		r.Header.Set("Content-Length", strconv.Itoa(len(body)))
		return nil
	}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return srv
}

// uiPage is the page open in a browser, with the log key at hand to pin.
type uiPage struct {
	*browser
	shots string // where to save screenshots, or ""
}

// text is what the element with the CSS selector sel says (innerText).
func (p *uiPage) text(sel string) string {
	p.t.Helper()
	s, err := eval[string](p.browser, 10*time.Second, fmt.Sprintf(`document.querySelector(%q)?.innerText ?? ''`, sel))
	if err != nil {
		p.t.Fatalf("reading %s: %v", sel, err)
	}
	return s
}

// wait waits for the CSS selector sel to match, for at most 30 s.
func (p *uiPage) wait(what, sel string) {
	p.t.Helper()
	waitJS[bool](p.browser, 30*time.Second, what, fmt.Sprintf(`document.querySelector(%q) !== null`, sel), `document.querySelector('main').innerText`)
}

// open loads the page afresh at u (by way of about:blank, so that a URL
// differing only in its fragment loads too).
func (p *uiPage) open(u string) {
	p.t.Helper()
	p.must("opening "+u, 30*time.Second, chromedp.Navigate("about:blank"), chromedp.Navigate(u))
	p.wait("the page to start", `body[data-ready]`)
}

// route goes to the page's fragment route, as a link would.
func (p *uiPage) route(hash string) {
	p.t.Helper()
	if _, err := eval[chromedp.Void](p.browser, 10*time.Second, fmt.Sprintf(`location.hash = %q`, hash)); err != nil {
		p.t.Fatalf("going to %s: %v", hash, err)
	}
}

// waitText waits for the element sel to say each of want, for at most 30 s.
func (p *uiPage) waitText(what, sel string, want ...string) {
	p.t.Helper()
	js, _ := json.Marshal(want)
	waitJS[bool](p.browser, 30*time.Second, what, fmt.Sprintf(`((t) => t !== undefined && %s.every((w) => t.includes(w)))(document.querySelector(%q)?.innerText)`, js, sel),
		fmt.Sprintf(`document.querySelector(%q)?.innerText ?? 'nothing at %s'`, sel, sel))
}

func (p *uiPage) pin(key string) {
	p.t.Helper()
	p.must("pinning the log key", 10*time.Second, chromedp.SetValue(chromedp.ID("log-key"), key), chromedp.Click(chromedp.ID("pin")))
	p.wait("the pinned key's verification", `#trust-status.ok`)
}

// fitsWidth checks that nothing on the page is wider than the viewport:
// it reads at that width without scrolling sideways.
func (p *uiPage) fitsWidth(what string) {
	p.t.Helper()
	w, err := eval[[]int](p.browser, 10*time.Second, `[document.documentElement.scrollWidth, window.innerWidth]`)
	if err != nil {
		p.t.Fatal(err)
	}
	if w[0] > w[1] {
		p.t.Errorf("%s at %d px wide: the page is %d px wide", what, w[1], w[0])
	}
}

func (p *uiPage) screenshot(name string) {
	p.t.Helper()
	if p.shots == "" {
		return
	}
	png, err := run(p.browser, 30*time.Second, chromedp.FullScreenshot(100))
	if err != nil {
		p.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(p.shots, name), png, 0o644); err != nil {
		p.t.Fatal(err)
	}
	p.t.Logf("wrote %s (%d bytes)", filepath.Join(p.shots, name), len(png))
}

// TestUIEndToEnd opens the page of a real provlogd holding an artifact's
// build, signature and three promotions, an approver's revocation and the
// artifact's quarantine in headless Chromium: it trusts only the server
// until the log key is pinned, then verifies the checkpoint; the keyring
// panel shows the keyring in force (names, ids, roles, admins, the
// revoked key) and its history, each entry's inclusion verified; search
// by digest, by a dropped file (hashed in the browser) and by builder id;
// the timeline shows every event with its proof verified and its signers
// by name, the chain from the keyring (a typed one overriding it), the
// prod promotion that no longer counts (its approver revoked) as a gap,
// and the quarantine as a red gap naming its entry; an entry shows its
// statement, envelope, signers and a verified proof; all of it reads at a
// phone's width. Through a proxy serving a tampered inclusion proof, then
// a tampered checkpoint, the page shows the verification failed and what
// failed.
func TestUIEndToEnd(t *testing.T) {
	findChromium(t)
	runUIStory(t, "")
}

// TestUIScreenshots regenerates docs/ui/*.png from the story of
// TestUIEndToEnd; it runs only with -ui.screenshots:
//
//	go test ./integration -run TestUIScreenshots -ui.screenshots=../docs/ui
func TestUIScreenshots(t *testing.T) {
	if *uiScreenshots == "" {
		t.Skip("regenerates docs/ui only with -ui.screenshots=DIR")
	}
	findChromium(t)
	if err := os.MkdirAll(*uiScreenshots, 0o755); err != nil {
		t.Fatal(err)
	}
	runUIStory(t, *uiScreenshots)
}

func runUIStory(t *testing.T, shots string) {
	s := newUIStory(t)
	p := &uiPage{browser: newBrowser(t, 1280, 900), shots: shots}

	// Before a key is pinned, the page says it trusts only the server.
	p.open(s.d.HTTPURL)
	p.wait("the checkpoint", `#cp-status.warn`)
	if got := p.text("#trust-status"); !strings.Contains(got, "Trusting only the server") {
		t.Errorf("trust status with no key pinned: %q", got)
	}
	p.pin(s.d.VerifierKey)
	p.wait("the checkpoint verified", `#cp-status.ok`)
	if got, want := p.text("#cp-size"), strconv.FormatUint(s.last()+1, 10); got != want {
		t.Errorf("tree size shown: %q, want %s", got, want)
	}
	if got := p.text("#cp-status"); !strings.Contains(got, "verified in this browser") {
		t.Errorf("checkpoint status %q", got)
	}
	// The witnesses' cosignatures, verified once their keys are pinned.
	p.wait("the cosignatures", `#witnesses tbody tr`)
	p.must("pinning the witness keys", 10*time.Second, chromedp.Click(chromedp.CSS("#trust summary")),
		chromedp.SetValue(chromedp.ID("witness-keys"), strings.Join(s.w.vkeys, "\n")), chromedp.Click(chromedp.CSS("#witness-form button")))
	p.waitText("two witnesses verified", "#witnesses", "verified\n")
	rows := strings.Split(p.text("#witnesses tbody"), "\n")
	if len(rows) < 2 {
		t.Errorf("witness rows %q, want two or three", rows)
	}
	for _, r := range rows {
		if !strings.Contains(r, ".example") || !strings.Contains(r, "s ago") || !strings.Contains(r, "verified") || strings.Contains(r, "not verified") {
			t.Errorf("witness row %q: want the witness, its cosignature's age and verified", r)
		}
	}
	if got := p.text("#cp-age"); !strings.Contains(got, "newest cosignature") {
		t.Errorf("age: %q", got)
	}
	p.checkKeyring(s)
	p.screenshot("overview.png")

	// Search by digest: the timeline, each event's inclusion verified.
	p.must("searching", 10*time.Second, chromedp.SetValue(chromedp.ID("search-q"), s.digest), chromedp.Click(chromedp.CSS("#search-form button")))
	p.checkTimeline(s)
	p.screenshot("timeline.png")

	// The log grows: the page proves its new checkpoint consistent with
	// the one it verified, and measures the rate.
	other := s.buildOther(t, "other.tar.gz")
	p.waitText("the new checkpoint proven consistent", "#cp-consistency.ok", fmt.Sprintf("size %d → %d: proven consistent", s.last()+1, s.last()+2))
	p.waitText("the append rate", "#cp-rate", "entries/s over the last")

	// Gaps: other was built but neither signed nor promoted, along the
	// keyring's chain; a chain typed here overrides it until cleared.
	p.route("#/search/digest/" + other)
	p.waitText("the gaps", "#timeline", "no signature event in the log", "not promoted into dev", "not promoted into staging", "not promoted into prod")
	if got := p.text("#chain-source"); !strings.Contains(got, "Chain from the keyring in force (entry #0): dev → staging → prod") {
		t.Errorf("chain source: %q", got)
	}
	if got := p.text("#timeline .node.gap"); !strings.Contains(got, "no signature event in the log") {
		t.Errorf("gap node: %q", got)
	}
	setChain := func(chain string) {
		t.Helper()
		p.must("setting the chain", 10*time.Second, chromedp.WaitVisible(chromedp.ID("chain")),
			chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.getElementById('chain').value = %q`, chain)), chromedp.Click(chromedp.CSS("#chain-form button")))
	}
	setChain("dev, qa")
	p.waitText("the typed chain", "#timeline", "not promoted into dev", "not promoted into qa")
	if got := p.text("#timeline"); strings.Contains(got, "staging") {
		t.Errorf("with the chain typed as dev, qa, the timeline names staging:\n%s", got)
	}
	setChain("")
	p.waitText("the keyring's chain again", "#timeline", "not promoted into staging")

	// A file dropped (here: chosen) is hashed in the browser.
	p.open(s.d.HTTPURL)
	p.must("choosing the file", 10*time.Second, chromedp.SetUploadFiles(chromedp.ID("file"), []string{filepath.Join(s.dir, "app.tar.gz")}))
	p.checkTimeline(s)
	if got := p.text("#timeline-subject"); got != s.digest {
		t.Errorf("the file hashed in the browser to %q, want %q", got, s.digest)
	}

	// By builder id: the build event.
	p.route("#/search/builderId/" + url.PathEscape(s.builderID))
	p.wait("the builder's events", fmt.Sprintf(`#results li a[href="#/entry/%d"]`, s.indices[0]))
	if got := p.text("#results"); strings.Count(got, "\n") != 0 || !strings.Contains(got, "build") {
		t.Errorf("search by builder id lists %q, want the one build", got)
	}

	// The entry: statement, envelope, its proof verified.
	prod := fmt.Sprint(s.indices[4])
	p.route("#/entry/" + prod)
	p.wait("the prod promotion's verification", `#verdict[data-result="ok"]`)
	if got := p.text("#statement"); !strings.Contains(got, "https://provlog.dev/attestation/promote/v1") || !strings.Contains(got, "CHG-7") {
		t.Errorf("statement of entry 4: %q", got)
	}
	if got := p.text("#envelope"); !strings.Contains(got, `"payloadType": "application/vnd.in-toto+json"`) {
		t.Errorf("envelope of entry 4: %q", got)
	}
	if got := p.text("#verdict"); !strings.Contains(got, "inclusion proof") || !strings.Contains(got, "signature verified") {
		t.Errorf("verification of entry 4: %q", got)
	}
	if got, want := p.text("#entry-facts"), fmt.Sprintf("alice (%s…), bob (%s…)", s.keyID(t, "alice")[:12], s.keyID(t, "bob")[:12]); !strings.Contains(got, want) {
		t.Errorf("the prod promotion's signers: %q, want %q", got, want)
	}

	// A phone's width.
	p.must("narrowing to a phone", 10*time.Second, chromedp.EmulateViewport(390, 844))
	p.fitsWidth("entry 4")
	p.route("#/search/digest/" + s.digest)
	p.wait("the timeline on a phone", `.proof.ok[data-index="`+prod+`"]`)
	p.fitsWidth("the timeline")
	p.must("widening again", 10*time.Second, chromedp.EmulateViewport(1280, 900))

	// Tampered: a proof, then the checkpoint.
	var mode atomic.Value
	mode.Store("inclusion")
	proxy := tamperProxy(t, s.d.HTTPURL, &mode)
	p.open(proxy.URL + "/#/entry/" + prod)
	p.pin(s.d.VerifierKey) // another origin: another localStorage
	p.waitText("entry 4's failed verification", `#verdict[data-result="bad"]`,
		"Verification FAILED", "signature verified in this browser", "inclusion proof: FAILED: inclusion proof: computed root")
	p.waitText("the trust events' failed proofs", "#keyring-status.bad", "3 of 3 trust events FAILED verification and are left out")
	p.screenshot("failed-verification.png")
	mode.Store("consistency")
	s.buildOther(t, "third.tar.gz")
	p.waitText("a tampered consistency proof refused", "#cp-consistency.bad", "FAILED from size")
	mode.Store("checkpoint")
	p.open(proxy.URL + "/#/entry/" + prod)
	p.waitText("the tampered checkpoint refused", `#cp-status.bad`, "Checkpoint verification FAILED", "does not verify")
	p.waitText("entry 4's failed verification", `#verdict[data-result="bad"]`, "checkpoint signature: FAILED")
}

// checkTimeline waits for the timeline of s's artifact with every event's
// inclusion verified, and checks its nodes: the events with their signers
// by name, the prod promotion marked as no longer counting (bob revoked)
// and the gap it leaves, the quarantine and its red gap.
func (p *uiPage) checkTimeline(s *uiStory) {
	p.t.Helper()
	p.wait("every event's inclusion verified", fmt.Sprintf(`.proof.ok[data-index="%d"]`, s.quarantine))
	nodes, err := eval[[]string](p.browser, 10*time.Second, `[...document.querySelectorAll('#timeline > li')].map((n) => (n.dataset.type ?? n.dataset.kind) + ':' + (n.dataset.index ?? '') + ':' + (n.dataset.counts ?? '') + ':' + (n.querySelector('.proof')?.className ?? ''))`)
	if err != nil {
		p.t.Fatal(err)
	}
	var want []string
	for i, typ := range []string{"build", "sign", "promote", "promote", "promote"} {
		counts := i != 4
		want = append(want, fmt.Sprintf("%s:%d:%v:proof ok", typ, s.indices[i], counts))
		if !counts {
			want = append(want, "gap:::")
		}
	}
	want = append(want, fmt.Sprintf("quarantine:%d:true:proof ok", s.quarantine), "gap:::")
	if fmt.Sprint(nodes) != fmt.Sprint(want) {
		p.t.Errorf("timeline nodes %q, want %q", nodes, want)
	}
	id := func(name string) string { return s.keyID(p.t, name)[:12] + "…" }
	tl := p.text("#timeline")
	for _, w := range []string{s.builderID, "git+https://git.example.com/app@" + strings.Repeat("c0", 20), "2026-03-04T10:06:30Z",
		"ecdsa-p256-sha256, key release", "(first environment) → dev", "dev → staging", "staging → prod", "CHG-7",
		"builder (" + id("builder") + ")", "signer (" + id("signer") + ")", "approvers\n2: alice (" + id("alice") + "), bob (" + id("bob") + ")",
		fmt.Sprintf("no longer counts: signer revoked by #%d (bob)", s.revocation),
		fmt.Sprintf("no promotion into prod that still counts: #%d's signer bob revoked by #%d", s.indices[4], s.revocation),
		"sec (" + id("sec") + ")", quarantineReason,
		fmt.Sprintf("quarantined by #%d: %s — may not be promoted", s.quarantine, quarantineReason)} {
		if !strings.Contains(tl, w) {
			p.t.Errorf("the timeline lacks %q:\n%s", w, tl)
		}
	}
	if got := p.text("#chain-source"); !strings.Contains(got, "from the keyring in force") {
		p.t.Errorf("chain source: %q", got)
	}
}

// checkKeyring checks the keyring panel: the genesis keyring in force,
// its keys by name and id with roles and admin marks, bob revoked, the
// admins' threshold, and the history of trust events, each verified (the
// badges are upper case, as innerText reads them).
func (p *uiPage) checkKeyring(s *uiStory) {
	p.t.Helper()
	p.waitText("the keyring verified", "#keyring-status.ok", "3 trust events, each proven included in the checkpoint verified here")
	keys := p.text("#keyring-keys tbody")
	for _, k := range []struct{ name, roles, rest string }{
		{"builder", "builder", ""}, {"signer", "signer", ""}, {"alice", "promoter", ""},
		{"bob", "approver", fmt.Sprintf("revoked by #%d", s.revocation)}, {"sec", "security", ""}, {"root1", "–", "admin"}, {"root2", "–", "admin"},
	} {
		row := ""
		for _, r := range strings.Split(keys, "\n") {
			if strings.HasPrefix(r, k.name) {
				row = r
			}
		}
		id := s.keyID(p.t, k.name)[:16]
		if !strings.Contains(row, id) || !strings.Contains(row, k.roles) || !strings.Contains(row, k.rest) {
			p.t.Errorf("keyring row of %s: %q, want its id %s…, roles %s and %q", k.name, row, id, k.roles, k.rest)
		}
	}
	if got := p.text("#keyring-section"); strings.Contains(got, "null") || strings.Contains(got, "undefined") {
		p.t.Errorf("the keyring panel shows a JavaScript nothing:\n%s", got)
	}
	if got := p.text("#keyring-admins"); !strings.Contains(got, "2 of root1, root2") {
		p.t.Errorf("admins: %q", got)
	}
	if got := p.text("#keyring-envs"); !strings.Contains(got, "prod (from staging, 2 approvals)") {
		p.t.Errorf("environments: %q", got)
	}
	hist := strings.Split(p.text("#keyring-history"), "\n")
	want := []string{"#0 KEYRING 7 keys, 3 environments, admins 2 of 2 — by the log key ✓ inclusion verified",
		fmt.Sprintf("#%d REVOKE bob (%s…) compromised since #%d: bob's laptop was stolen — by root1 (%s…), root2 (%s…) ✓ inclusion verified",
			s.revocation, s.keyID(p.t, "bob")[:12], s.indices[4], s.keyID(p.t, "root1")[:12], s.keyID(p.t, "root2")[:12]),
		fmt.Sprintf("#%d QUARANTINE %s…: %s (in force) — by sec (%s…) ✓ inclusion verified", s.quarantine, s.digest[:20], quarantineReason, s.keyID(p.t, "sec")[:12])}
	if fmt.Sprint(hist) != fmt.Sprint(want) {
		p.t.Errorf("keyring history:\n%s\nwant:\n%s", strings.Join(hist, "\n"), strings.Join(want, "\n"))
	}
}
