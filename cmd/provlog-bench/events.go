package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/provlog/provlog/event"
	"golang.org/x/sync/errgroup"
)

// eventSet is a batch of signed build events by one builder key.
type eventSet struct {
	envs   [][]byte
	pubPEM []byte
	key    event.Key
	parsed []*event.Envelope
}

// makeEvents signs n distinct build events (SLSA provenance in an in-toto
// statement in a DSSE envelope) with a new Ed25519 builder key, on every
// core.
func makeEvents(ctx context.Context, n int) (*eventSet, error) {
	priv, pub, err := event.GenerateKey(event.KeyEd25519)
	if err != nil {
		return nil, fmt.Errorf("generating builder key: %w", err)
	}
	sk, err := event.LoadSigningKey(priv)
	if err != nil {
		return nil, fmt.Errorf("loading builder key: %w", err)
	}
	s := &eventSet{envs: make([][]byte, n), parsed: make([]*event.Envelope, n), pubPEM: pub, key: sk}
	run := time.Now().UnixNano()
	g, ctx := errgroup.WithContext(ctx)
	var next atomic.Int64
	for range runtime.GOMAXPROCS(0) {
		g.Go(func() error {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				if err := s.make(ctx, sk, run, i); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return s, g.Wait()
}

func (s *eventSet) make(ctx context.Context, sk event.SigningKey, run int64, i int) error {
	p, err := event.NewProvenance(event.BuildSpec{
		BuilderID:    "https://ci.example.com/builders/bench",
		BuildType:    "https://ci.example.com/buildtypes/make@v1",
		SourceRepo:   "git+https://git.example.com/app",
		SourceCommit: fmt.Sprintf("%040x", uint64(run)+uint64(i)),
		InvocationID: fmt.Sprintf("bench-%d-%d", run, i),
	})
	if err != nil {
		return fmt.Errorf("provenance: %w", err)
	}
	h := sha256.Sum256(fmt.Appendf(nil, "artifact %d %d", run, i))
	st, err := event.NewStatement(event.ProvenancePredicateType,
		[]event.Subject{{Name: "app.tar.gz", Digest: event.Digest{Alg: "sha256", Hex: hex.EncodeToString(h[:])}}}, p)
	if err != nil {
		return fmt.Errorf("statement: %w", err)
	}
	env, err := event.SignEnvelope(ctx, st, sk)
	if err != nil {
		return fmt.Errorf("signing: %w", err)
	}
	parsed, err := event.ParseEnvelope(env)
	if err != nil {
		return fmt.Errorf("parsing own envelope: %w", err)
	}
	s.envs[i], s.parsed[i] = env, parsed
	return nil
}

// writeKeyring writes a keyring naming the set's key as a builder.
func (s *eventSet) writeKeyring(dir string) (string, error) {
	kr := map[string]any{
		"keys":         []map[string]any{{"name": "bench-ci", "publicKey": string(s.pubPEM), "roles": []string{"builder"}}},
		"environments": []map[string]any{{"name": "dev"}},
	}
	b, err := json.Marshal(kr)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "keyring.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return "", fmt.Errorf("writing keyring: %w", err)
	}
	return path, nil
}

// verifyRate measures DSSE signature verification alone (PAE encoding and
// Ed25519 verification of each envelope, the work admission cannot skip)
// on every core for d, in verifications per second.
func (s *eventSet) verifyRate(ctx context.Context, d time.Duration) (float64, error) {
	var n atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Pointer[error]
	start := time.Now()
	for w := range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := w; time.Since(start) < d && ctx.Err() == nil; i++ {
				e := s.parsed[i%len(s.parsed)]
				if err := s.key.Verify(ctx, e.PAE(), e.Signatures[0].Sig); err != nil {
					failed.Store(&err)
					return
				}
				n.Add(1)
			}
		})
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		return 0, fmt.Errorf("verifying: %w", *err)
	}
	return float64(n.Load()) / time.Since(start).Seconds(), nil
}

// eventsProfile is the length of the profiles of a signed-events load
// (-profile): 60,000 events take about 2.2 s on the machines of
// BENCHMARKS.md.
const eventsProfile = 2 * time.Second

// events measures signed build events admitted through AppendBatch by a
// provlogd running with --admission attestations, beside the rate of
// signature verification alone on the same machine, measured just before.
func (b *bench) events(ctx context.Context, round int) error {
	if b.cfg.GRPCAddr != "" {
		slog.Warn("skipping signed events: they need a provlogd started by the bench (its keyring)")
		return nil
	}
	slog.Info("signing events", "n", b.cfg.Events)
	set, err := makeEvents(ctx, b.cfg.Events)
	if err != nil {
		return err
	}
	bound, err := set.verifyRate(ctx, b.cfg.ReadDuration)
	if err != nil {
		return err
	}
	slog.Info("result", "verify_only/s", int(bound))
	dir := b.phaseDir("events")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("phase directory: %w", err)
	}
	keyring, err := set.writeKeyring(dir)
	if err != nil {
		return err
	}
	args, err := b.profiledArgs(dir, keyring)
	if err != nil {
		return err
	}
	p, _, err := startProvlogd(ctx, args)
	if err != nil {
		return err
	}
	defer p.Close()
	spec := b.spec(modeEvents, 0)
	spec.Entries = int64(len(set.envs))
	spec.Source = func(i int64) []byte { return set.envs[i] }
	// The load is bounded by count: profile its first eventsProfile.
	stopProfile := b.profile(ctx, p, fmt.Sprintf("round%d-provlog-events", round), eventsProfile)
	ph, err := b.phase(ctx, p, spec, round, "peak")
	stopProfile()
	if err != nil {
		return fmt.Errorf("events round %d: %w", round, err)
	}
	b.res.Events = append(b.res.Events, &EventsResult{Round: round, VerifyPerSec: bound,
		EventBytes: len(set.envs[0]), Phase: ph, Fraction: ph.PerSec / bound})
	return nil
}
