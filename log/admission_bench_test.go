package log

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/provlog/provlog/event"
	"github.com/provlog/provlog/storage"
)

// BenchmarkAdmission compares, in one run, the rate of signature
// verification alone (the bound for signed events) with the rate of signed
// build events admitted and appended durably, for Ed25519 and P-256 keys.
func BenchmarkAdmission(b *testing.B) {
	for _, kind := range []string{event.KeyEd25519, event.KeyECDSAP256} {
		c := newBenchChain(b, kind)
		envs := c.events(b, 4096)
		parsed := make([]*event.Envelope, len(envs))
		for i, e := range envs {
			parsed[i], _ = event.ParseEnvelope(e)
		}
		b.Run(kind+"/verify-only", func(b *testing.B) {
			var n atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					e := parsed[int(n.Add(1))%len(parsed)]
					if err := c.key.Verify(context.Background(), e.PAE(), e.Signatures[0].Sig); err != nil {
						b.Error(err)
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
		b.Run(kind+"/admit-and-append", func(b *testing.B) {
			l := c.openLog(b)
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for range 64 {
				wg.Go(func() {
					for {
						i := next.Add(1) - 1
						if i >= int64(b.N) {
							return
						}
						// Beyond the prepared events, entries repeat and
						// are admitted (verified) again, then deduplicated.
						if _, err := l.Add(context.Background(), envs[i%int64(len(envs))]); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

type benchChain struct {
	key     event.SigningKey
	keyring *Keyring
}

func newBenchChain(b *testing.B, kind string) *benchChain {
	priv, pub, err := event.GenerateKey(kind)
	if err != nil {
		b.Fatal(err)
	}
	key, err := event.LoadSigningKey(priv)
	if err != nil {
		b.Fatal(err)
	}
	kr, err := ParseKeyring(fmt.Appendf(nil, `{"keys":[{"name":"ci","publicKey":%q,"roles":["builder"]}]}`, pub), "")
	if err != nil {
		b.Fatal(err)
	}
	return &benchChain{key: key, keyring: kr}
}

func (c *benchChain) events(b *testing.B, n int) [][]byte {
	envs := make([][]byte, n)
	for i := range envs {
		p, err := event.NewProvenance(event.BuildSpec{BuilderID: "https://ci.example.com/b", BuildType: "https://ci.example.com/t",
			SourceRepo: "git+https://git.example.com/app", SourceCommit: fmt.Sprintf("%040x", i)})
		if err != nil {
			b.Fatal(err)
		}
		d := artifact(fmt.Sprint(i))
		st, err := event.NewStatement(event.ProvenancePredicateType, []event.Subject{{Name: "a", Digest: d}}, p)
		if err != nil {
			b.Fatal(err)
		}
		if envs[i], err = event.SignEnvelope(context.Background(), st, c.key); err != nil {
			b.Fatal(err)
		}
	}
	return envs
}

func (c *benchChain) openLog(b *testing.B) *Log {
	st, err := storage.Open(b.TempDir(), storage.Options{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	l := benchLogOn(b, st, &AttestationAdmission{Keyring: c.keyring, Index: st})
	return l
}
