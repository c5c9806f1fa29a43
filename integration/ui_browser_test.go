package integration

// Headless Chromium for the tests of the auditor's page (ui_test.go,
// ui_verify_test.go), driven with chromedp.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// chromiumPath is where Debian's chromium package puts the browser.
const chromiumPath = "/usr/bin/chromium"

// browserLife bounds a whole browser session: the browser is killed when
// it ends, so no wait on it can outlast it.
const browserLife = 4 * time.Minute

// browser is a headless Chromium tab.
type browser struct {
	t   *testing.T
	ctx context.Context // the tab's; ends at browserLife
	js  *syncBuffer     // the page's uncaught exceptions and console errors
}

// findChromium returns the browser's path. It skips the test when there
// is none, unless PROVLOG_REQUIRE_CHROMIUM is set (as CI sets it): then it
// fails it.
func findChromium(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err == nil {
		return chromiumPath
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	if os.Getenv("PROVLOG_REQUIRE_CHROMIUM") != "" {
		t.Fatalf("no chromium at %s nor on PATH, and PROVLOG_REQUIRE_CHROMIUM is set", chromiumPath)
	}
	t.Skipf("no chromium at %s nor on PATH (install Debian's chromium package; PROVLOG_REQUIRE_CHROMIUM makes this a failure)", chromiumPath)
	return ""
}

// newBrowser starts headless Chromium with a fresh profile and a window of
// width × height CSS pixels, and stops it when the test ends.
func newBrowser(t *testing.T, width, height int) *browser {
	t.Helper()
	path := findChromium(t)
	// Not t.TempDir: Chromium's helpers can still write in the profile for
	// a moment after the browser exits, which would fail its cleanup.
	profile, err := os.MkdirTemp("", "provlog-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for range 50 {
			if os.RemoveAll(profile) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	life, cancelLife := context.WithTimeout(context.Background(), browserLife)
	alloc, cancelAlloc := chromedp.NewExecAllocator(life,
		chromedp.ExecPath(path), chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(profile), chromedp.WindowSize(width, height))
	ctx, cancelTab := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancelTab(); cancelAlloc(); cancelLife() })
	b := &browser{t: t, ctx: ctx, js: &syncBuffer{}}
	exceptions := chromedp.Events(ctx, runtime.ExceptionThrown)
	console := chromedp.Events(ctx, runtime.ConsoleAPICalled)
	// The first run starts the browser, for the life of its context: so
	// it runs on the tab's context itself, its wait bounded apart.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("starting %s: %v", path, err)
		}
	case <-time.After(time.Minute):
		cancelLife()
		t.Fatalf("%s did not start within a minute", path)
	}
	go func() {
		for ev, err := range exceptions {
			if err != nil {
				return
			}
			fmt.Fprintf(b.js, "exception: %s\n", (&chromedp.ExceptionError{ExceptionDetails: ev.ExceptionDetails}).Error())
		}
	}()
	go func() {
		for ev, err := range console {
			if err != nil {
				return
			}
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeWarning {
				fmt.Fprintf(b.js, "console.%s:", ev.Type)
				for _, a := range ev.Args {
					fmt.Fprintf(b.js, " %s", a.Value)
				}
				fmt.Fprintln(b.js)
			}
		}
	}()
	t.Cleanup(func() {
		if t.Failed() && b.js.String() != "" {
			t.Logf("the page's errors:\n%s", b.js)
		}
	})
	return b
}

// do runs steps within d.
func (b *browser) do(d time.Duration, steps ...chromedp.Action[chromedp.Void]) error {
	_, err := run(b, d, chromedp.Steps(steps...))
	return err
}

// must runs steps within d, failing the test with what on error.
func (b *browser) must(what string, d time.Duration, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := b.do(d, steps...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// run runs the action a within d and returns its value.
func run[T any](b *browser, d time.Duration, a chromedp.Action[T]) (T, error) {
	ctx, cancel := context.WithTimeout(b.ctx, d)
	defer cancel()
	return chromedp.Run(ctx, a)
}

// eval evaluates the JavaScript expression within d, awaiting a promise.
func eval[T any](b *browser, d time.Duration, expr string) (T, error) {
	return run(b, d, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
}

// waitJS waits until the expression is truthy, for at most d, and returns
// its value; on timeout it fails the test, saying what it waited for and
// what probe (an expression) says of the page then.
func waitJS[T any](b *browser, d time.Duration, what, expr, probe string) T {
	b.t.Helper()
	v, err := run(b, d, chromedp.Poll[T](expr, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(d)))
	if err != nil {
		seen, perr := eval[string](b, 5*time.Second, probe)
		b.t.Fatalf("waiting %v for %s: %v\nthe page shows: %s %v", d, what, err, seen, perr)
	}
	return v
}
