package log

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the log's Prometheus metrics.
type metrics struct {
	appends            *prometheus.CounterVec // by result
	failed             prometheus.Counter
	batchEntries       prometheus.Histogram
	roundSeconds       prometheus.Histogram
	integrationSeconds prometheus.Histogram
	treeSize           prometheus.Gauge
	fatal              prometheus.Gauge
	witnessedSize      prometheus.Gauge
	witnessFailures    prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		appends: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "provlog_appends_total",
			Help: "Entries submitted, by result: new, duplicate, invalid, pushback, unavailable.",
		}, []string{"result"}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "provlog_append_failures_total",
			Help: "Queued entries whose round failed (storage error or shutdown).",
		}),
		batchEntries: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "provlog_batch_entries",
			Help:    "New entries committed per sequencing round.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8),
		}),
		roundSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "provlog_round_seconds",
			Help:    "Duration of a sequencing round: dedup, hashing, signing, synced commit.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 12),
		}),
		integrationSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "provlog_integration_seconds",
			Help:    "Time from queueing an add to its durable index and published checkpoint.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 12),
		}),
		treeSize: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "provlog_tree_size",
			Help: "Size of the tree of the latest published checkpoint.",
		}),
		fatal: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "provlog_sequencer_stopped",
			Help: "1 if a storage fault stopped the sequencer (restart to recover).",
		}),
		witnessedSize: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "provlog_witnessed_tree_size",
			Help: "Size of the latest checkpoint published with cosignatures meeting the witness policy.",
		}),
		witnessFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "provlog_witness_failures_total",
			Help: "Witnessing attempts that did not meet the witness policy.",
		}),
	}
	m.appends = register(reg, m.appends)
	m.failed = register(reg, m.failed)
	m.batchEntries = register(reg, m.batchEntries)
	m.roundSeconds = register(reg, m.roundSeconds)
	m.integrationSeconds = register(reg, m.integrationSeconds)
	m.treeSize = register(reg, m.treeSize)
	m.fatal = register(reg, m.fatal)
	m.witnessedSize = register(reg, m.witnessedSize)
	m.witnessFailures = register(reg, m.witnessFailures)
	return m
}

// register registers c with reg (if not nil) and returns it, or the
// collector already registered under its name: the logs a replica opens
// one after another (Replica) count into the same metrics.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if old, ok := are.ExistingCollector.(C); ok {
				return old
			}
		}
		panic(err)
	}
	return c
}

// appended counts the entries a round answered.
func (m *metrics) appended(added, duplicates int) {
	m.appends.WithLabelValues("new").Add(float64(added))
	m.appends.WithLabelValues("duplicate").Add(float64(duplicates))
}

func (m *metrics) rejected(err error) {
	switch {
	case errors.Is(err, ErrInvalidEntry):
		m.appends.WithLabelValues("invalid").Inc()
	case errors.Is(err, ErrPushback):
		m.appends.WithLabelValues("pushback").Inc()
	default:
		m.appends.WithLabelValues("unavailable").Inc()
	}
}
