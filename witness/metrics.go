package witness

import (
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the witness's Prometheus metrics. The origin label takes
// only configured origins, so its cardinality is bounded by the config.
type metrics struct {
	requests     *prometheus.CounterVec // by HTTP status code
	cosignatures *prometheus.CounterVec // by origin
	size         *prometheus.GaugeVec   // by origin
	evidence     *prometheus.CounterVec // by origin, kind
	// evidenceDropped counts evidence not stored past Config.MaxEvidence.
	evidenceDropped *prometheus.CounterVec // by origin
	polls           *prometheus.CounterVec // by origin, result
	polledSize      *prometheus.GaugeVec   // by origin
}

func newMetrics(r prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "provlog_witness_add_checkpoint_requests_total",
			Help: "add-checkpoint requests, by HTTP status code.",
		}, []string{"code"}),
		cosignatures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "provlog_witness_cosignatures_total",
			Help: "Checkpoints cosigned, by log origin.",
		}, []string{"origin"}),
		size: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "provlog_witness_cosigned_tree_size",
			Help: "Size of the latest cosigned checkpoint, by log origin.",
		}, []string{"origin"}),
		evidence: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "provlog_witness_fork_evidence_total",
			Help: "Fork evidence records stored (checkpoints refused as provably inconsistent with the cosigned one, each distinct one counted once), by log origin and kind.",
		}, []string{"origin", "kind"}),
		evidenceDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "provlog_witness_evidence_dropped_total",
			Help: "Fork evidence not stored because the log already has the most evidence records kept (the first are kept), by log origin.",
		}, []string{"origin"}),
		polls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "provlog_witness_polls_total",
			Help: "Polls of tlog-tiles logs, by log origin and result (cosigned, unchanged, stale, error, inconsistent).",
		}, []string{"origin", "result"}),
		polledSize: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "provlog_witness_polled_tree_size",
			Help: "Size of the checkpoint the log served at the latest poll that verified its signature, by log origin; below provlog_witness_cosigned_tree_size, the log serves a stale checkpoint.",
		}, []string{"origin"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.cosignatures, m.size, m.evidence, m.evidenceDropped, m.polls, m.polledSize} {
		if err := r.Register(c); err != nil {
			return nil, fmt.Errorf("registering witness metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) cosigned(origin string, size uint64) {
	m.cosignatures.WithLabelValues(origin).Inc()
	m.size.WithLabelValues(origin).Set(float64(size))
}

// cappedClient returns a copy of c whose response bodies fail after max
// bytes, so that a misbehaving log cannot make the witness read without
// bound.
func cappedClient(c *http.Client, max int64) *http.Client {
	cc := *c
	rt := cc.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	cc.Transport = cappedTransport{rt: rt, max: max}
	return &cc
}

type cappedTransport struct {
	rt  http.RoundTripper
	max int64
}

func (t cappedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.rt.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = &cappedBody{rc: resp.Body, left: t.max}
	return resp, nil
}

type cappedBody struct {
	rc   io.ReadCloser
	left int64
}

func (b *cappedBody) Read(p []byte) (int, error) {
	// Read at most one byte past the cap: reading it means the cap is
	// exceeded.
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.rc.Read(p)
	if b.left -= int64(n); b.left < 0 {
		return 0, errBodyTooLarge
	}
	return n, err
}

var errBodyTooLarge = errors.New("response body too large")

func (b *cappedBody) Close() error { return b.rc.Close() }
