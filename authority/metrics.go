package authority

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the authority's own Prometheus series (counted in this
// process). Gauges read from PostgreSQL at scrape time (nodes by health,
// pending joins, snapshot lag, audit head, certificate expiry) are in
// metrics_state.go. Every method is safe on a nil *metrics.
type metrics struct {
	fenced        *prometheus.HistogramVec
	enrollments   *prometheus.CounterVec
	loginFailures *prometheus.CounterVec
	stepUpFails   *prometheus.CounterVec
	snapshotBuild prometheus.Histogram
	hbFlush       prometheus.Histogram
	pollReads     prometheus.Counter
	dirtyRest     prometheus.Counter
	changeWait    prometheus.Counter
}

// latencyBuckets cover 0.25 ms … ~8 s.
var latencyBuckets = prometheus.ExponentialBuckets(0.00025, 2, 16)

func newMetrics() *metrics {
	return &metrics{
		fenced: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "rap_fenced_mutation_duration_seconds",
			Help:    "Fenced mutations by result (ok, or the error code: no_quorum, stale_epoch, not_leader, unavailable, …), from the leader check to commit.",
			Buckets: latencyBuckets}, []string{"result"}),
		enrollments: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rap_enrollments_total",
			Help: "Join requests decided on this authority, by result (approved, rejected)."}, []string{"result"}),
		loginFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rap_login_failures_total",
			Help: "Refused console/API logins by reason code."}, []string{"reason"}),
		stepUpFails: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "rap_step_up_failures_total",
			Help: "Refused step-up grants (reason code) and high-risk requests without a grant (reason missing)."}, []string{"reason"}),
		snapshotBuild: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "rap_snapshot_build_duration_seconds",
			Help: "Time to rebuild and sign one cluster's snapshots (leader).", Buckets: latencyBuckets}),
		hbFlush: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "rap_heartbeat_flush_duration_seconds",
			Help: "Time to write one batch of heartbeats to PostgreSQL.", Buckets: latencyBuckets}),
		pollReads: prometheus.NewCounter(prometheus.CounterOpts{Name: "rap_snapshot_long_poll_reads_total",
			Help: "Snapshot reads made for agents' long polls on this authority (one when a poll starts, one per wake-up; reads of waiters that wake together share batched statements)."}),
		dirtyRest: prometheus.NewCounter(prometheus.CounterOpts{Name: "rap_snapshot_dirty_rest_seconds_total",
			Help: "Time the leader's rebuild loop rested after dirty passes so that rebuilding takes at most SnapshotOptions.DirtyShare of its time."}),
		changeWait: prometheus.NewCounter(prometheus.CounterOpts{Name: "rap_snapshot_change_wait_exceeded_total",
			Help: "Mutations that answered before their own snapshot rebuild ended (it took longer than SnapshotOptions.ChangeWait and went on after the answer)."}),
	}
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.fenced, m.enrollments, m.loginFailures, m.stepUpFails, m.snapshotBuild, m.hbFlush, m.pollReads, m.dirtyRest, m.changeWait}
}

// observeFenced records one fenced mutation of op that started at start.
func (m *metrics) observeFenced(op Op, start time.Time, err error) {
	if m == nil {
		return
	}
	result := "ok"
	if err != nil {
		result = string(asError(err).Code)
	}
	m.fenced.WithLabelValues(result).Observe(time.Since(start).Seconds())
	if err == nil {
		switch op.Action {
		case "join_request.approve":
			m.enrollments.WithLabelValues("approved").Inc()
		case "join_request.reject":
			m.enrollments.WithLabelValues("rejected").Inc()
		}
	}
}

func (m *metrics) loginFailed(reason string) {
	if m != nil {
		m.loginFailures.WithLabelValues(reason).Inc()
	}
}

func (m *metrics) stepUpFailed(reason string) {
	if m != nil {
		m.stepUpFails.WithLabelValues(reason).Inc()
	}
}

func (m *metrics) longPollRead() {
	if m != nil {
		m.pollReads.Inc()
	}
}

func (m *metrics) observeSnapshotBuild(start time.Time) {
	if m != nil {
		m.snapshotBuild.Observe(time.Since(start).Seconds())
	}
}

func (m *metrics) observeDirtyRest(d time.Duration) {
	if m != nil {
		m.dirtyRest.Add(d.Seconds())
	}
}

func (m *metrics) changeWaitExceeded() {
	if m != nil {
		m.changeWait.Inc()
	}
}

func (m *metrics) observeHeartbeatFlush(start time.Time) {
	if m != nil {
		m.hbFlush.Observe(time.Since(start).Seconds())
	}
}

// Collectors returns the authority's Prometheus collectors: its own counters
// and histograms, the heartbeat ingest counters, and the state read from
// PostgreSQL at scrape time (cached for StateMetricsTTL). The daemon
// registers them; nothing here registers itself.
func (a *Authority) Collectors() []prometheus.Collector {
	out := a.metrics.collectors()
	h := a.heartbeats
	counter := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f)
	}
	out = append(out,
		counter("rap_heartbeats_ingested_total", "Heartbeats accepted by this authority's ingest.", func() float64 { return float64(h.ingested.Load()) }),
		counter("rap_heartbeats_flushed_total", "Heartbeat rows written to PostgreSQL.", func() float64 { return float64(h.flushed.Load()) }),
		counter("rap_heartbeat_flushes_total", "Heartbeat batches written.", func() float64 { return float64(h.flushes.Load()) }),
		counter("rap_heartbeat_flush_errors_total", "Heartbeat batches that failed to write.", func() float64 { return float64(h.flushErrors.Load()) }),
		counter("rap_heartbeats_dropped_total", "Heartbeats dropped (ingest full or shutting down).", func() float64 { return float64(h.dropped.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "rap_heartbeats_pending", Help: "Heartbeats waiting in memory for the next flush."},
			func() float64 { return float64(h.Stats().Pending) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "rap_audit_chain_behind_checkpoint",
			Help: "1 while this authority's audit checkpointer refuses to checkpoint because the audit chain is behind the latest Raft checkpoint (PostgreSQL restored from an older backup?): re-anchor with rapctl audit reanchor."},
			func() float64 {
				if a.auditBehind.Load() != nil {
					return 1
				}
				return 0
			}),
		counter("rap_audit_checkpoint_refusals_total", "Audit checkpoints refused because the audit chain is behind the latest Raft checkpoint.",
			func() float64 { return float64(a.auditCheckpointRefusals.Load()) }),
		newStateCollector(a),
	)
	return out
}
