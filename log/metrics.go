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
	if reg != nil {
		reg.MustRegister(m.appends, m.failed, m.batchEntries, m.roundSeconds, m.integrationSeconds, m.treeSize, m.fatal, m.witnessedSize, m.witnessFailures)
	}
	return m
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
