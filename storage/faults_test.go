package storage_test

// Storage fault tests, driving a real log.Log over a real Store:
//
//   - TestAppendFaults fails the k-th filesystem operation (Pebble's
//     errorfs.OnIndex) for k = 0, 1, 2, … until a run completes with no
//     fault injected, once with faults only during two append rounds and
//     once over the whole life of the store (open, recover, append, close).
//     Each run is a child process (this test binary re-executed), because a
//     failed commit makes Pebble call Logger.Fatalf, which panics; the
//     parent then reopens the data on the plain filesystem and re-verifies
//     everything the child acknowledged and published.
//   - TestCrashClones appends with concurrent writers over
//     vfs.NewCrashableMem and, at random points, takes CrashClone copies
//     (synced data plus a random share of unsynced data), then recovers each
//     clone and re-verifies it.
//
// Trees are re-verified with golang.org/x/mod/sumdb/tlog (root, tiles) and
// checkpoints with golang.org/x/mod/sumdb/note, not with provlog's merkle
// package (storagetest.Verify, shared with the storage suite).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	plog "github.com/provlog/provlog/log"
	"github.com/provlog/provlog/storage"
	"github.com/provlog/provlog/storage/storagetest"
	flog "github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
)

var (
	faultsSeed = flag.Uint64("faults.seed", 0, "seed of TestCrashClones and of the fault tests' entries (0: time-based)")
	// A failed Pebble commit calls Logger.Fatalf, and storage's logger
	// panics there, so a write fault during Store.Commit crashes the process
	// instead of returning an error to the sequencer. The crash is
	// crash-consistent (checked below), so by default it is counted and
	// tolerated; -faults.strict makes it fail the test.
	faultsTrace  = flag.Bool("faults.trace", false, "log the fault and outcome of every run of TestAppendFaults")
	faultsStrict = flag.Bool("faults.strict", false, "fail TestAppendFaults when a fault crashes the process instead of returning an error")
)

const (
	faultOrigin = "example.com/provlog-faults"
	// faultChildEnv carries "mode k dir" to a child of TestAppendFaults;
	// faultKeyEnv the note private key.
	faultChildEnv = "PROVLOG_FAULTS_CHILD"
	faultKeyEnv   = "PROVLOG_FAULTS_KEY"
	// faultBaseSize is the number of entries logged before the faulty run.
	faultBaseSize = 300
	// maxFaultIndex bounds k, in case a run never completes cleanly.
	maxFaultIndex = 2000
)

var quietLogger = slog.New(slog.DiscardHandler)

// testSeed returns -faults.seed or a time-based seed, and logs it.
func testSeed(t *testing.T) uint64 {
	seed := *faultsSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (replay with -faults.seed=%d)", seed, seed)
	return seed
}

// openLog opens the store in dir on fs and the log over it.
func openLog(dir string, fs vfs.FS, signer note.Signer, logger *slog.Logger) (*storage.Store, *plog.Log, error) {
	st, err := storage.Open(dir, storage.Options{FS: fs, Logger: logger})
	if err != nil {
		return nil, nil, err
	}
	if st.RebuiltLeafIndex() {
		st.Close()
		return nil, nil, errors.New("Open found the leaf-hash index damaged and rebuilt it: a crash or fault damaged it")
	}
	l, err := plog.Open(context.Background(), plog.Config{
		Origin: faultOrigin, Signer: signer, Admission: storagetest.TermAdmission{}, Logger: logger,
	}, st)
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return st, l, nil
}

// newFaultKey returns a fresh note key pair named faultOrigin.
func newFaultKey(t *testing.T, seed uint64) (string, note.Signer, note.Verifier) {
	t.Helper()
	return storagetest.NewKey(t, rand.NewChaCha8(seedBytes(seed)), faultOrigin)
}

func seedBytes(seed uint64) [32]byte {
	var b [32]byte
	copy(b[:], strconv.AppendUint(nil, seed, 16))
	return b
}

// faultEntry returns a deterministic entry of 20 to ~1.5k bytes, distinct
// for each (tag, i).
func faultEntry(seed uint64, tag string, i int) []byte {
	r := rand.New(rand.NewPCG(seed, uint64(i)))
	b := fmt.Appendf(nil, "%s entry %d;", tag, i)
	for range r.IntN(1500) {
		b = append(b, byte(r.Uint32()))
	}
	return b
}

// publishedSizes returns the tree sizes of checkpoints (verified by
// storagetest.CheckPublished).
func publishedSizes(t *testing.T, raws [][]byte, v note.Verifier) []uint64 {
	t.Helper()
	var sizes []uint64
	for _, raw := range raws {
		cp, _, _, err := flog.ParseCheckpoint(raw, faultOrigin, v)
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, cp.Size)
	}
	return sizes
}

// faultRound is the batch of a faulty run: new entries, copies of logged
// ones, and an entry twice.
func faultRound(seed uint64, k int, base [][]byte) [][]byte {
	var b [][]byte
	for i := range 40 {
		b = append(b, faultEntry(seed, fmt.Sprintf("fault k=%d", k), i))
	}
	b = append(b, base[0], base[len(base)-1], base[257], b[3])
	return b
}

func faultExtra(seed uint64, k int) []byte {
	return faultEntry(seed, fmt.Sprintf("fault k=%d extra", k), 0)
}

// childOutcome is what a child of TestAppendFaults reported.
type childOutcome struct {
	crashed    bool   // exited with a panic
	crashLine  string // its panic line
	crashText  string // its panic and stack, shortened
	crashWhere string // the function that panicked
	done       bool   // ran to the end
	injected   []string
	openErr    string
	published  [][]byte
	// batch and extra: "" until reported; then "ok" with results, or the error.
	batch, extra       string
	batchRes, extraRes []plog.AddResult
	batchUnavailable   bool // the batch error wraps ErrUnavailable
	extraUnavailable   bool
	healthyAfterBatch  bool
}

// TestAppendFaults injects a filesystem error at the k-th operation of a
// run, for every k until a run sees no fault, and checks each run: every
// operation succeeds or fails (a process crash is tolerated, and counted,
// unless -faults.strict); an acknowledged entry is durable; after a failed
// commit the sequencer stops, refuses writes and publishes nothing more;
// every published checkpoint is within the durable tree; and reopening on
// the plain filesystem recovers a tree that re-verifies and takes appends.
func TestAppendFaults(t *testing.T) {
	// Runs of the leaf-hash index every 32 entries, in the children and in
	// the parent's reopens, so that faults also land in its flushes,
	// merges and manifest commits.
	defer storage.SetLeafFlushEntries(32)()
	if spec := os.Getenv(faultChildEnv); spec != "" {
		runFaultChild(spec, os.Getenv(faultKeyEnv))
		return
	}
	seed := testSeed(t)
	skey, signer, v := newFaultKey(t, seed)
	baseDir := filepath.Join(t.TempDir(), "base")
	base := makeFaultBase(t, seed, baseDir, signer, v)

	for _, mode := range []string{"round", "lifecycle"} {
		t.Run(mode, func(t *testing.T) {
			counts := map[string]int{}
			k := 0
			for ; k < maxFaultIndex; k++ {
				dir := filepath.Join(t.TempDir(), strconv.Itoa(k))
				if err := os.CopyFS(dir, os.DirFS(baseDir)); err != nil {
					t.Fatal(err)
				}
				began := time.Now()
				o := runChild(t, mode, k, dir, skey, seed)
				ran := time.Since(began)
				kind := checkFaultRun(t, seed, k, dir, base, signer, v, o)
				checked := time.Since(began) - ran
				counts[kind]++
				if *faultsTrace {
					t.Logf("k=%d: %s; fault %v; batch %q; second round %q; open %q; run %v, check %v", k, kind, o.injected, o.batch, o.extra, o.openErr, ran.Round(time.Millisecond), checked.Round(time.Millisecond))
				}
				os.RemoveAll(dir)
				if t.Failed() {
					t.Fatalf("k=%d (%s): faults %v, batch %q, extra %q", k, kind, o.injected, o.batch, o.extra)
				}
				if len(o.injected) == 0 {
					break
				}
			}
			if k == maxFaultIndex {
				t.Fatalf("a fault was still injected at operation %d", k)
			}
			t.Logf("%s: %d runs, %d faults injected; outcomes %v", mode, k+1, k, counts)
		})
	}
}

// makeFaultBase logs faultBaseSize entries in a few rounds into dir and
// returns them.
func makeFaultBase(t *testing.T, seed uint64, dir string, signer note.Signer, v note.Verifier) [][]byte {
	t.Helper()
	st, l, err := openLog(filepath.Join(dir, "db"), vfs.Default, signer, quietLogger)
	if err != nil {
		t.Fatal(err)
	}
	var base [][]byte
	for _, n := range []int{1, 50, 100, 149} {
		var batch [][]byte
		for range n {
			batch = append(batch, faultEntry(seed, "base", len(base)+len(batch)))
		}
		if _, err := l.AddBatch(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
		base = append(base, batch...)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := storagetest.Verify(st, faultOrigin, v)
	if err != nil {
		t.Fatalf("base log: %v", err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if got.Size != faultBaseSize || !slices.EqualFunc(got.Entries, base, bytes.Equal) {
		t.Fatalf("base log has %d entries, want the %d added", got.Size, faultBaseSize)
	}
	return base
}

// runChild runs one faulty run in a child process and parses its report.
func runChild(t *testing.T, mode string, k int, dir, skey string, seed uint64) childOutcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestAppendFaults$", "-test.count=1",
		"-faults.seed="+strconv.FormatUint(seed, 10))
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d %s", faultChildEnv, mode, k, dir), faultKeyEnv+"="+skey,
		// Under the race detector a process sleeps a second before it
		// exits, unless told not to.
		"GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("k=%d: child did not finish within a minute:\n%s\n%s", k, stdout.Bytes(), stderr.Bytes())
	}
	var o childOutcome
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "fault: ")
		if !ok {
			continue
		}
		word, rest, _ := strings.Cut(line, " ")
		switch word {
		case "injected":
			o.injected = append(o.injected, rest)
		case "open-error":
			o.openErr = rest
		case "published":
			b, err := base64.StdEncoding.DecodeString(rest)
			if err != nil {
				t.Fatalf("k=%d: child line %q: %v", k, line, err)
			}
			o.published = append(o.published, b)
		case "batch", "extra":
			res, unavailable, text := parseAddLine(t, rest)
			if word == "batch" {
				o.batch, o.batchRes, o.batchUnavailable = text, res, unavailable
			} else {
				o.extra, o.extraRes, o.extraUnavailable = text, res, unavailable
			}
		case "healthy-after-batch":
			o.healthyAfterBatch = rest == "ok"
		case "done":
			o.done = true
		}
	}
	if runErr != nil {
		errText := stderr.String()
		if i := strings.Index(errText, "panic: "); i >= 0 {
			o.crashed = true
			o.crashLine, _, _ = strings.Cut(errText[i:], "\n")
			o.crashText = errText[i:min(len(errText), i+3000)]
			o.crashWhere = panicFunc(errText[i:])
		} else if where, ok := pebbleRace(errText); ok {
			// Under -race, a race between two of Pebble's own functions
			// (seen: Open's error path closing its file cache while a
			// table-stats job its recovery started still reads it, on an
			// injected fault writing the OPTIONS file) is Pebble's, like
			// its panics on that path; recovery is still checked.
			o.crashed, o.crashWhere, o.crashLine = true, where, "data race in "+where
			o.crashText = errText[:min(len(errText), 3000)]
		} else {
			t.Fatalf("k=%d: child failed without a panic (%v):\n%s\n%s", k, runErr, stdout.Bytes(), errText)
		}
	} else if !o.done {
		t.Fatalf("k=%d: child exited without finishing:\n%s\n%s", k, stdout.Bytes(), stderr.Bytes())
	}
	return o
}

// pebbleRace reports whether every race the race detector reported in a
// child's stderr is between two accesses made by Pebble's own functions
// (the first frame of each access's stack is Pebble's), and names the
// first such function.
func pebbleRace(stderr string) (where string, ok bool) {
	const pebble = "github.com/cockroachdb/pebble/"
	reports := strings.Split(stderr, "WARNING: DATA RACE")
	if len(reports) < 2 {
		return "", false
	}
	for _, r := range reports[1:] {
		accesses := 0
		lines := strings.Split(r, "\n")
		for i, line := range lines {
			l := strings.TrimSpace(line)
			if !strings.HasSuffix(l, ":") || !(strings.HasPrefix(l, "Read at") || strings.HasPrefix(l, "Write at") ||
				strings.HasPrefix(l, "Previous read at") || strings.HasPrefix(l, "Previous write at")) {
				continue
			}
			if i+1 >= len(lines) {
				return "", false
			}
			fn := strings.TrimSpace(lines[i+1])
			if !strings.HasPrefix(fn, pebble) {
				return "", false
			}
			if where == "" {
				where, _, _ = strings.Cut(fn, "(")
			}
			accesses++
		}
		if accesses != 2 {
			return "", false
		}
	}
	return where, where != ""
}

// TestPebbleRace: a race report between two Pebble functions (as CI's
// race run printed one) is Pebble's; one with an access of ours is not.
func TestPebbleRace(t *testing.T) {
	report := `
==================
WARNING: DATA RACE
Read at 0x00c00032e7c8 by goroutine 28:
  github.com/cockroachdb/pebble/v2/internal/genericcache.(*Cache[go.shape.struct {}]).Get()
      /root/go/pkg/mod/github.com/cockroachdb/pebble/v2@v2.1.7/internal/genericcache/cache.go:140 +0x95
  github.com/cockroachdb/pebble/v2.(*DB).loadTableStats()
      /root/go/pkg/mod/github.com/cockroachdb/pebble/v2@v2.1.7/table_stats.go:308 +0x2a4

Previous write at 0x00c00032e7c8 by goroutine 11:
  github.com/cockroachdb/pebble/v2/internal/genericcache.(*Cache[go.shape.struct {}]).Unref()
      /root/go/pkg/mod/github.com/cockroachdb/pebble/v2@v2.1.7/internal/genericcache/cache.go:76 +0xf2
  github.com/provlog/provlog/storage.Open()
      /work/main/storage/storage.go:202 +0x285

Goroutine 28 (running) created at:
  github.com/provlog/provlog/storage.Open()
      /work/main/storage/storage.go:202 +0x285
==================
`
	if where, ok := pebbleRace(report); !ok || !strings.HasPrefix(where, "github.com/cockroachdb/pebble/v2/internal/genericcache.") {
		t.Errorf("pebbleRace(a race inside Pebble) = %q, %v", where, ok)
	}
	ours := strings.Replace(report, "  github.com/cockroachdb/pebble/v2/internal/genericcache.(*Cache[go.shape.struct {}]).Unref()", "  github.com/provlog/provlog/storage.(*Store).Commit()", 1)
	if where, ok := pebbleRace(ours); ok {
		t.Errorf("pebbleRace(a race with a write of ours) = %q, true", where)
	}
	if _, ok := pebbleRace("exit status 1"); ok {
		t.Error("pebbleRace(no race report) = true")
	}
}

// pebbleFatalf is storage's Pebble logger's Fatalf, which panics.
const pebbleFatalf = "github.com/provlog/provlog/storage.pebbleLogger.Fatalf"

// panicFunc returns the function that panicked, from a goroutine trace:
// the first frame that is not the runtime's or the testing package's,
// which re-panics a test's panic ("[recovered, repanicked]") from its own
// frames above the panicking one.
func panicFunc(trace string) string {
	_, stack, _ := strings.Cut(trace, "[running]:\n")
	for line := range strings.Lines(stack) {
		if strings.HasPrefix(line, "\t") || strings.HasPrefix(line, "panic(") || strings.HasPrefix(line, "runtime.") || strings.HasPrefix(line, "testing.") {
			continue
		}
		fn, _, _ := strings.Cut(strings.TrimSpace(line), "(")
		return fn
	}
	return ""
}

// parseAddLine parses "ok i:dup,i:dup…" or "err <unavailable> <message>".
func parseAddLine(t *testing.T, s string) ([]plog.AddResult, bool, string) {
	t.Helper()
	if rest, ok := strings.CutPrefix(s, "ok "); ok {
		var res []plog.AddResult
		for f := range strings.SplitSeq(rest, ",") {
			is, ds, _ := strings.Cut(f, ":")
			i, err := strconv.ParseUint(is, 10, 64)
			if err != nil {
				t.Fatalf("child result %q: %v", s, err)
			}
			res = append(res, plog.AddResult{Index: i, Duplicate: ds == "true"})
		}
		return res, false, "ok"
	}
	rest, _ := strings.CutPrefix(s, "err ")
	u, msg, _ := strings.Cut(rest, " ")
	return nil, u == "true", "err " + msg
}

// runFaultChild is the child side of TestAppendFaults: one run with the
// fault at operation k, reported on stdout as "fault: …" lines. It exits
// the process.
func runFaultChild(spec, skey string) {
	var mode, dir string
	var k int32
	if _, err := fmt.Sscan(spec, &mode, &k, &dir); err != nil {
		panic(fmt.Sprintf("child spec %q: %v", spec, err))
	}
	seed := *faultsSeed
	report := func(format string, args ...any) { fmt.Printf("fault: "+format+"\n", args...) }
	signer, err := note.NewSigner(skey)
	if err != nil {
		panic(err)
	}
	at := errorfs.OnIndex(k)
	toggle := &errorfs.Toggle{Injector: errorfs.InjectorFunc(func(op errorfs.Op) error {
		err := at.MaybeError(op)
		if err != nil {
			report("injected %s %s", opName(op.Kind), op.Path)
		}
		return err
	})}
	fs := errorfs.Wrap(vfs.Default, toggle)
	if mode == "lifecycle" {
		toggle.On()
	}
	finish := func() {
		report("done")
		os.Exit(0)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	st, l, err := openLog(filepath.Join(dir, "db"), fs, signer, logger)
	if err != nil {
		report("open-error %s", oneLine(err))
		finish()
	}
	published := func() { report("published %s", base64.StdEncoding.EncodeToString(l.Checkpoint().Note)) }
	published()
	if mode == "round" {
		toggle.On()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// Read the base back for the round's copies of logged entries.
	var base [][]byte
	for i := range faultBaseSize {
		base = append(base, faultEntry(seed, "base", i))
	}
	res, err := l.AddBatch(ctx, faultRound(seed, int(k), base))
	report("batch %s", addLine(res, err))
	published()
	if err := l.Healthy(); err != nil {
		report("healthy-after-batch %s", oneLine(err))
	} else {
		report("healthy-after-batch ok")
	}
	r, err := l.Add(ctx, faultExtra(seed, int(k)))
	report("extra %s", addLine([]plog.AddResult{r}, err))
	published()
	if mode == "round" {
		toggle.Off()
	}
	report("log-close %v", l.Close())
	report("store-close %v", st.Close())
	finish()
}

func addLine(res []plog.AddResult, err error) string {
	if err != nil {
		return fmt.Sprintf("err %t %s", errors.Is(err, plog.ErrUnavailable), oneLine(err))
	}
	var f []string
	for _, r := range res {
		f = append(f, fmt.Sprintf("%d:%t", r.Index, r.Duplicate))
	}
	return "ok " + strings.Join(f, ",")
}

func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", " ") }

var opNames = map[errorfs.OpKind]string{
	errorfs.OpCreate: "create", errorfs.OpLink: "link", errorfs.OpOpen: "open", errorfs.OpOpenDir: "opendir",
	errorfs.OpRemove: "remove", errorfs.OpRemoveAll: "removeall", errorfs.OpRename: "rename",
	errorfs.OpReuseForWrite: "reuseforwrite", errorfs.OpMkdirAll: "mkdirall", errorfs.OpLock: "lock",
	errorfs.OpList: "list", errorfs.OpFilePreallocate: "preallocate", errorfs.OpStat: "stat",
	errorfs.OpGetDiskUsage: "diskusage", errorfs.OpFileClose: "close", errorfs.OpFileRead: "read",
	errorfs.OpFileReadAt: "readat", errorfs.OpFileWrite: "write", errorfs.OpFileWriteAt: "writeat",
	errorfs.OpFileStat: "fstat", errorfs.OpFileSync: "sync", errorfs.OpFileSyncData: "syncdata",
	errorfs.OpFileSyncTo: "syncto", errorfs.OpFileFlush: "flush",
}

func opName(k errorfs.OpKind) string {
	if n, ok := opNames[k]; ok {
		return n
	}
	return fmt.Sprintf("op%d", k)
}

// checkFaultRun checks one faulty run against the data it left, reopened on
// the plain filesystem, and returns the kind of outcome.
func checkFaultRun(t *testing.T, seed uint64, k int, dir string, base [][]byte, signer note.Signer, v note.Verifier, o childOutcome) string {
	t.Helper()
	kind := "ok"
	switch {
	case o.crashed:
		kind = "crashed: " + o.crashWhere
		if !strings.HasPrefix(o.crashWhere, "github.com/cockroachdb/pebble/") && o.crashWhere != pebbleFatalf || *faultsStrict {
			t.Errorf("k=%d: the run crashed instead of returning an error (fault %v):\n%s", k, o.injected, o.crashText)
		}
		// A fault in the commit path must come back as an error that stops
		// the sequencer, never as a crash (Store.Commit recovers Pebble's
		// Fatalf); only Pebble's background work may end the process.
		if strings.Contains(o.crashText, "storage.(*Store).Commit") {
			t.Errorf("k=%d: a commit fault crashed the process (fault %v):\n%s", k, o.injected, o.crashText)
		}
		if o.crashWhere == pebbleFatalf {
			kind = "crashed: Pebble Fatalf"
		} else if strings.HasPrefix(o.crashWhere, "github.com/cockroachdb/pebble/") {
			kind = "crashed: Pebble panic"
		}
	case o.openErr != "":
		kind = "open failed"
	case o.batch != "ok" && !o.healthyAfterBatch:
		kind = "commit failed, sequencer stopped"
	case o.batch != "ok":
		kind = "batch failed, log healthy"
	case o.extra != "ok":
		kind = "second round failed"
	}
	if len(o.injected) > 1 {
		t.Errorf("k=%d: %d faults injected, want at most 1: %v", k, len(o.injected), o.injected)
	}
	if len(o.injected) == 0 && kind != "ok" {
		t.Errorf("k=%d: outcome %q without a fault", k, kind)
	}

	// Reopen on the plain filesystem: recovery must succeed.
	st, l, err := openLog(filepath.Join(dir, "db"), vfs.Default, signer, quietLogger)
	if err != nil {
		t.Fatalf("k=%d: reopening after %s (fault %v): %v", k, kind, o.injected, err)
	}
	defer st.Close()
	durable, err := storagetest.Verify(st, faultOrigin, v)
	if err != nil {
		t.Fatalf("k=%d: after %s (fault %v): %v", k, kind, o.injected, err)
	}
	if durable.Size < faultBaseSize || !slices.EqualFunc(durable.Entries[:faultBaseSize], base, bytes.Equal) {
		t.Fatalf("k=%d: the %d logged entries did not survive %s (tree size %d)", k, faultBaseSize, kind, durable.Size)
	}
	// No checkpoint beyond the durable tree was ever published.
	last := uint64(0)
	for _, raw := range o.published {
		n, err := storagetest.CheckPublished(raw, faultOrigin, v, durable)
		if err != nil {
			t.Fatalf("k=%d: after %s (fault %v): %v", k, kind, o.injected, err)
		}
		if n < last {
			t.Fatalf("k=%d: published tree size went back from %d to %d", k, last, n)
		}
		last = n
	}

	round := faultRound(seed, k, base)
	wantRound := func(res []plog.AddResult) {
		if len(res) != len(round) {
			t.Fatalf("k=%d: %d results for %d entries", k, len(res), len(round))
		}
		for i, r := range res {
			switch j := slices.IndexFunc(base, func(b []byte) bool { return bytes.Equal(b, round[i]) }); {
			case j >= 0 && (!r.Duplicate || r.Index != uint64(j)):
				t.Errorf("k=%d: copy of logged entry %d acknowledged as %+v", k, j, r)
			case j < 0 && i == len(round)-1 && (!r.Duplicate || r.Index != res[3].Index):
				t.Errorf("k=%d: second copy of batch entry 3 acknowledged as %+v, first %+v", k, r, res[3])
			case j < 0 && i < 40 && (r.Duplicate || r.Index < faultBaseSize):
				t.Errorf("k=%d: new entry acknowledged as %+v", k, r)
			}
		}
	}
	checkAcked := func(what string, entries [][]byte, res []plog.AddResult) {
		for i, r := range res {
			if r.Index >= durable.Size || !bytes.Equal(durable.Entries[r.Index], entries[i]) {
				t.Errorf("k=%d: %s entry %d acknowledged at index %d is lost after %s (tree size %d)", k, what, i, r.Index, kind, durable.Size)
			}
		}
	}
	present := func(e []byte) bool {
		return slices.ContainsFunc(durable.Entries, func(d []byte) bool { return bytes.Equal(d, e) })
	}
	switch {
	case o.batch == "ok":
		wantRound(o.batchRes)
		checkAcked("batch", round, o.batchRes)
	case o.batch != "":
		if !o.batchUnavailable {
			t.Errorf("k=%d: batch failed with %q, want ErrUnavailable", k, o.batch)
		}
		// published[0] is from before the batch, [1] after it, [2] after
		// the second round: a failed round publishes nothing, and a stopped
		// sequencer nothing more.
		sizes := publishedSizes(t, o.published, v)
		if len(sizes) >= 2 && sizes[1] != sizes[0] {
			t.Errorf("k=%d: checkpoint of size %d published after a failed round from size %d", k, sizes[1], sizes[0])
		}
		if len(sizes) >= 3 && !o.healthyAfterBatch && sizes[2] != sizes[0] {
			t.Errorf("k=%d: sequencer stopped at size %d but then published size %d", k, sizes[0], sizes[2])
		}
		if o.healthyAfterBatch {
			// A failure before the commit (the dedup lookup) writes nothing.
			for i, e := range round[:40] {
				if present(e) {
					t.Errorf("k=%d: entry %d of a batch that failed before its commit is in the log", k, i)
				}
			}
		} else if o.extra == "ok" || (o.extra != "" && !o.extraUnavailable) {
			t.Errorf("k=%d: after a failed commit, the next add returned %q, want ErrUnavailable", k, o.extra)
		}
	}
	if o.extra == "ok" {
		checkAcked("second round", [][]byte{faultExtra(seed, k)}, o.extraRes)
		if o.extraRes[0].Duplicate {
			t.Errorf("k=%d: new entry of the second round acknowledged as a duplicate", k)
		}
	}
	if t.Failed() {
		return kind
	}

	// The recovered log takes appends and still verifies.
	next := faultEntry(seed, fmt.Sprintf("fault k=%d after", k), 0)
	r, err := l.Add(context.Background(), next)
	if err != nil {
		t.Fatalf("k=%d: append after recovery: %v", k, err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := storagetest.VerifyAppend(st, faultOrigin, v, durable, r, next); err != nil {
		t.Fatalf("k=%d: append after recovery: %v", k, err)
	}
	return kind
}

// TestCrashClones appends with concurrent writers over a crashable
// in-memory filesystem and takes crash clones at random moments: synced
// data plus a random share of unsynced data. Each clone must recover to a
// tree that re-verifies, holds every entry acknowledged before the clone at
// its index, extends every checkpoint published before the clone, and takes
// appends.
func TestCrashClones(t *testing.T) {
	// Runs of the leaf-hash index every 64 entries, so that clones catch
	// its flushes and merges part way.
	defer storage.SetLeafFlushEntries(64)()
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 1))
	_, signer, v := newFaultKey(t, seed)
	mem := vfs.NewCrashableMem()
	st, l, err := openLog("db", mem, signer, quietLogger)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	const writers, perWriter, clones = 4, 600, 16
	var mu sync.Mutex
	acked := map[uint64][]byte{} // index → entry
	var nAcked atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wr := rand.New(rand.NewPCG(seed, uint64(100+w)))
		wg.Go(func() {
			for i := 0; i < perWriter; {
				n := min(1+wr.IntN(24), perWriter-i)
				batch := make([][]byte, n)
				for j := range batch {
					batch[j] = faultEntry(seed, fmt.Sprintf("clone w=%d", w), i+j)
				}
				res, err := l.AddBatch(ctx, batch)
				if err != nil {
					errc <- err
					cancel()
					return
				}
				mu.Lock()
				for j, r := range res {
					if prev, ok := acked[r.Index]; ok || r.Duplicate {
						mu.Unlock()
						errc <- fmt.Errorf("new entry acknowledged as %+v; index held %.20q", r, prev)
						cancel()
						return
					}
					acked[r.Index] = batch[j]
				}
				mu.Unlock()
				nAcked.Add(int64(n))
				i += n
			}
		})
	}

	// Clone at random ack counts, including before the first ack.
	points := []int64{0}
	for range clones - 1 {
		points = append(points, rng.Int64N(writers*perWriter))
	}
	slices.Sort(points)
	checked := 0
	for i, p := range points {
		for nAcked.Load() < p && ctx.Err() == nil {
			time.Sleep(50 * time.Microsecond)
		}
		if ctx.Err() != nil {
			break
		}
		// What was acknowledged or published before the clone is durable.
		mu.Lock()
		snap := maps(acked)
		mu.Unlock()
		pub := l.Checkpoint().Note
		cfg := vfs.CrashCloneCfg{UnsyncedDataPercent: rng.IntN(101)}
		cfg.RNG = rand.New(rand.NewPCG(seed, uint64(1000+i)))
		clone := mem.CrashClone(cfg)
		checked += checkClone(t, i, clone, cfg.UnsyncedDataPercent, signer, v, snap, pub)
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	final, err := storagetest.Verify(st, faultOrigin, v)
	if err != nil {
		t.Fatalf("after the appends: %v", err)
	}
	if final.Size != writers*perWriter {
		t.Fatalf("final tree size %d, want %d", final.Size, writers*perWriter)
	}
	t.Logf("%d crash clones, %d acknowledged entries checked in them, 0 lost; final tree size %d", len(points), checked, final.Size)
}

func maps(m map[uint64][]byte) map[uint64][]byte {
	c := make(map[uint64][]byte, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// checkClone recovers a crash clone and checks it; it returns the number of
// acknowledged entries checked.
func checkClone(t *testing.T, i int, clone *vfs.MemFS, unsynced int, signer note.Signer, v note.Verifier, acked map[uint64][]byte, pub []byte) int {
	t.Helper()
	st, l, err := openLog("db", clone, signer, quietLogger)
	if err != nil {
		t.Fatalf("clone %d (%d%% unsynced data): recovery: %v", i, unsynced, err)
	}
	defer st.Close()
	durable, err := storagetest.Verify(st, faultOrigin, v)
	if err == nil {
		_, err = storagetest.CheckPublished(pub, faultOrigin, v, durable)
	}
	if err != nil {
		t.Fatalf("clone %d (%d%% unsynced data): %v", i, unsynced, err)
	}
	var again [][]byte
	var at []uint64
	for idx, e := range acked {
		if idx >= durable.Size || !bytes.Equal(durable.Entries[idx], e) {
			t.Fatalf("clone %d (%d%% unsynced data): entry acknowledged at index %d lost (tree size %d)", i, unsynced, idx, durable.Size)
		}
		again, at = append(again, e), append(at, idx)
	}
	// Dedup after recovery: every acknowledged entry submitted again is a
	// duplicate at its index (the leaf-hash index rebuilt from its runs
	// and journal).
	if len(again) > 0 {
		res, err := l.AddBatch(context.Background(), again)
		if err != nil {
			t.Fatalf("clone %d: resubmitting %d acknowledged entries: %v", i, len(again), err)
		}
		for j, r := range res {
			if !r.Duplicate || r.Index != at[j] {
				t.Fatalf("clone %d (%d%% unsynced data): entry acknowledged at %d resubmitted: %+v, want a duplicate at %d", i, unsynced, at[j], r, at[j])
			}
		}
	}
	next := []byte("after the crash")
	r, err := l.Add(context.Background(), next)
	if err != nil {
		t.Fatalf("clone %d: append after recovery: %v", i, err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := storagetest.VerifyAppend(st, faultOrigin, v, durable, r, next); err != nil {
		t.Fatalf("clone %d: append after recovery: %v", i, err)
	}
	return len(acked)
}
