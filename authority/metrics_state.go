package authority

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rap-fabric/core/store"
)

// StateMetricsTTL is how long one read of the fabric state from PostgreSQL
// serves scrapes (several Prometheus servers, or a fast scrape interval, cost
// at most one read per TTL).
const StateMetricsTTL = 2 * time.Second

// stateMetricsTimeout bounds that read.
const stateMetricsTimeout = 2 * time.Second

// stateCollector exports the fabric's state as gauges, read from PostgreSQL
// at scrape time (every authority exports the same values: alert on max), and
// the PostgreSQL pool statistics of this process.
type stateCollector struct {
	a *Authority

	mu                                                                                                 sync.Mutex
	at                                                                                                 time.Time
	st                                                                                                 store.FabricState
	ok                                                                                                 bool
	nodes, roles, pending, lagging, lagMax, queue, auditSeq, auditUnchained, certExpiry, up            *prometheus.Desc
	poolAcquired, poolIdle, poolTotal, poolMax, poolAcquires, poolAcquireSecs, poolEmpty, poolCanceled *prometheus.Desc
}

func newStateCollector(a *Authority) *stateCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &stateCollector{a: a,
		nodes:           d("rap_nodes", "Active cluster memberships by derived heartbeat health (healthy, late, stale, offline, unknown).", "cluster", "health"),
		roles:           d("rap_node_roles", "Active role assignments by role.", "cluster", "role"),
		pending:         d("rap_join_requests_pending", "Pending, unexpired join requests waiting for an owner's decision.", "cluster"),
		lagging:         d("rap_snapshot_lagging_nodes", "Active members whose applied snapshot version is behind the newest signed one.", "cluster"),
		lagMax:          d("rap_snapshot_lag_versions", "Largest gap between a member's newest signed and applied snapshot versions.", "cluster"),
		queue:           d("rap_snapshot_rebuild_queue_depth", "Clusters marked dirty and waiting for the leader's snapshot rebuild."),
		auditSeq:        d("rap_audit_head_sequence", "Sequence number of the audit hash chain's head."),
		auditUnchained:  d("rap_audit_unchained_events", "Audit events committed but not chained yet."),
		certExpiry:      d("rap_node_certificate_earliest_expiry_seconds", "Seconds until the earliest not_after among active node identities' current certificates (+Inf when none; negative when expired)."),
		up:              d("rap_state_metrics_up", "1 when the last read of the fabric state from PostgreSQL succeeded."),
		poolAcquired:    d("rap_pg_pool_acquired_connections", "PostgreSQL pool connections in use."),
		poolIdle:        d("rap_pg_pool_idle_connections", "Idle PostgreSQL pool connections."),
		poolTotal:       d("rap_pg_pool_connections", "PostgreSQL pool connections open."),
		poolMax:         d("rap_pg_pool_max_connections", "PostgreSQL pool size limit."),
		poolAcquires:    d("rap_pg_pool_acquires_total", "Connections acquired from the PostgreSQL pool."),
		poolAcquireSecs: d("rap_pg_pool_acquire_wait_seconds_total", "Time spent acquiring PostgreSQL pool connections."),
		poolEmpty:       d("rap_pg_pool_empty_acquires_total", "Acquires that had to wait because the pool was empty."),
		poolCanceled:    d("rap_pg_pool_canceled_acquires_total", "Acquires canceled by their context."),
	}
}

// Describe implements prometheus.Collector.
func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.nodes, c.roles, c.pending, c.lagging, c.lagMax, c.queue, c.auditSeq, c.auditUnchained, c.certExpiry, c.up,
		c.poolAcquired, c.poolIdle, c.poolTotal, c.poolMax, c.poolAcquires, c.poolAcquireSecs, c.poolEmpty, c.poolCanceled} {
		ch <- d
	}
}

// read returns the cached state, refreshed when older than StateMetricsTTL.
func (c *stateCollector) read() (store.FabricState, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if !c.at.IsZero() && now.Sub(c.at) < StateMetricsTTL {
		return c.st, c.ok
	}
	ctx, cancel := context.WithTimeout(context.Background(), stateMetricsTimeout)
	defer cancel()
	st, err := store.StateMetrics(ctx, c.a.db.Pool)
	c.at, c.ok = now, err == nil
	if err == nil {
		c.st = st
	} else {
		c.a.log.Debug("state metrics read failed", "error", err)
	}
	return c.st, c.ok
}

// Collect implements prometheus.Collector.
func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	if c.a.db == nil {
		return
	}
	g := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	cnt := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	ps := c.a.db.Pool.Stat()
	g(c.poolAcquired, float64(ps.AcquiredConns()))
	g(c.poolIdle, float64(ps.IdleConns()))
	g(c.poolTotal, float64(ps.TotalConns()))
	g(c.poolMax, float64(ps.MaxConns()))
	cnt(c.poolAcquires, float64(ps.AcquireCount()))
	cnt(c.poolAcquireSecs, ps.AcquireDuration().Seconds())
	cnt(c.poolEmpty, float64(ps.EmptyAcquireCount()))
	cnt(c.poolCanceled, float64(ps.CanceledAcquireCount()))

	st, ok := c.read()
	if !ok {
		g(c.up, 0)
		return
	}
	g(c.up, 1)
	for _, n := range st.NodesByHealth {
		g(c.nodes, float64(n.Count), n.Cluster, n.Label)
	}
	for _, r := range st.RolesByRole {
		g(c.roles, float64(r.Count), r.Cluster, r.Label)
	}
	for _, p := range st.PendingJoins {
		g(c.pending, float64(p.Count), p.Cluster)
	}
	for _, l := range st.SnapshotLag {
		g(c.lagging, float64(l.Lagging), l.Cluster)
		g(c.lagMax, float64(l.MaxVersion), l.Cluster)
	}
	g(c.queue, float64(st.DirtyClusters))
	g(c.auditSeq, float64(st.AuditHeadSeq))
	g(c.auditUnchained, float64(st.AuditUnchained))
	g(c.certExpiry, st.CertExpirySeconds)
}
