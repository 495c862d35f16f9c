package runtime

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/rap-fabric/core/agent/meshrun"
	"github.com/rap-fabric/core/agent/state"
	"github.com/rap-fabric/core/loopback"
	"github.com/rap-fabric/core/promsink"
)

// agentCollector exports the agent's status (the same report as the status
// socket) as Prometheus series at scrape time: per membership the mode,
// heartbeats, snapshot version and age, certificate expiry, workload states;
// per mesh the links (state, RTT, loss), handshakes, sessions, refusals and
// relay use.
type agentCollector struct {
	a *Agent

	degraded, mode, acked, hbFailures, hbConsecutive, snapVersion, snapAge, snapRejected, snapStale, certExpiry, workloads *prometheus.Desc
	links, rtt, loss, handshakes, sessions, refused, relayed, forwarded, delivered, dirPeers, e2eDropped                   *prometheus.Desc
}

func newAgentCollector(a *Agent) *agentCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, append([]string{"cluster"}, labels...), nil)
	}
	return &agentCollector{a: a,
		degraded:      d("rap_agent_degraded", "1 while the membership runs degraded (no authority answers) or revoked."),
		mode:          d("rap_agent_mode", "The membership's mode (normal, degraded, revoked): 1 for the current one.", "mode"),
		acked:         d("rap_agent_heartbeats_acked_total", "Heartbeats acknowledged by an authority."),
		hbFailures:    d("rap_agent_heartbeat_failures_total", "Failed heartbeat rounds (no authority answered)."),
		hbConsecutive: d("rap_agent_heartbeat_consecutive_failures", "Failed heartbeat rounds since the last acknowledged one."),
		snapVersion:   d("rap_agent_snapshot_version", "Version of the applied signed snapshot."),
		snapAge:       d("rap_agent_snapshot_age_seconds", "Seconds since the applied snapshot was issued."),
		snapRejected:  d("rap_agent_snapshots_rejected_total", "Snapshots refused (signature, audience, version, expiry, size)."),
		snapStale:     d("rap_agent_snapshot_stale", "1 when the applied snapshot expired (the node keeps running on it)."),
		certExpiry:    d("rap_agent_certificate_expiry_seconds", "Seconds until the node certificate expires."),
		workloads:     d("rap_agent_workloads", "Supervised workloads by state.", "state"),
		links:         d("rap_agent_mesh_links", "Mesh links by state.", "state"),
		rtt:           d("rap_agent_mesh_link_rtt_seconds", "Smoothed round-trip time of a mesh link.", "peer"),
		loss:          d("rap_agent_mesh_link_loss_ratio", "Probe loss of a mesh link (0..1).", "peer"),
		handshakes:    d("rap_agent_mesh_handshakes_total", "Completed Noise handshakes by role (initiator, responder).", "role"),
		sessions:      d("rap_agent_mesh_sessions_established_total", "Noise sessions established (first handshakes and rekeys)."),
		refused:       d("rap_agent_mesh_handshakes_refused_total", "Refused handshake initiations by reason.", "reason"),
		relayed:       d("rap_agent_mesh_relayed_routes", "Destinations reached through a relay (more than one hop)."),
		forwarded:     d("rap_agent_mesh_forwarded_frames_total", "End-to-end frames this node forwarded for others (relay use)."),
		delivered:     d("rap_agent_mesh_delivered_frames_total", "End-to-end frames delivered to this node."),
		dirPeers:      d("rap_agent_mesh_directory_peers", "Peers in the signed peer directory."),
		e2eDropped:    d("rap_agent_mesh_e2e_dropped_frames_total", "End-to-end frames dropped by reason (ttl, no_route, policy, replay, auth, malformed, no_session, queue).", "reason"),
	}
}

// Describe implements prometheus.Collector.
func (c *agentCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.degraded, c.mode, c.acked, c.hbFailures, c.hbConsecutive, c.snapVersion, c.snapAge, c.snapRejected,
		c.snapStale, c.certExpiry, c.workloads, c.links, c.rtt, c.loss, c.handshakes, c.sessions, c.refused, c.relayed, c.forwarded, c.delivered, c.dirPeers, c.e2eDropped} {
		ch <- d
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Collect implements prometheus.Collector.
func (c *agentCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	now := c.a.o.Now()
	st := c.a.Status()
	for _, m := range st.Memberships {
		cl := m.ClusterID
		gauge(c.degraded, b2f(m.Mode == string(state.ModeDegraded) || m.Mode == string(state.ModeRevoked)), cl)
		for _, mode := range []state.Mode{state.ModeNormal, state.ModeDegraded, state.ModeRevoked} {
			gauge(c.mode, b2f(m.Mode == string(mode)), cl, string(mode))
		}
		counter(c.acked, float64(m.HeartbeatsAcked), cl)
		counter(c.hbFailures, float64(m.HeartbeatFailures), cl)
		gauge(c.hbConsecutive, float64(m.ConsecutiveErrors), cl)
		gauge(c.snapVersion, float64(m.AppliedVersion), cl)
		if s := m.Snapshot; s != nil {
			if !s.IssuedAt.IsZero() {
				gauge(c.snapAge, now.Sub(s.IssuedAt).Seconds(), cl)
			}
			counter(c.snapRejected, float64(s.Rejected), cl)
			gauge(c.snapStale, b2f(s.Stale), cl)
		}
		if !m.CertificateNotAfter.IsZero() {
			gauge(c.certExpiry, m.CertificateNotAfter.Sub(now).Seconds(), cl)
		}
		byState := map[string]int{}
		for _, w := range m.Workloads {
			byState[string(w.State)]++
		}
		for s, n := range byState {
			gauge(c.workloads, float64(n), cl, s)
		}
	}
	for _, ms := range c.a.meshMembers("") {
		n := ms.meshNode()
		if n == nil {
			continue
		}
		cl, s := ms.cluster, n.Status()
		byState := map[string]int{}
		for _, l := range s.Links {
			byState[l.State]++
			if l.State == "up" || l.RTTMs > 0 {
				gauge(c.rtt, l.RTTMs/1000, cl, l.NodeID)
				gauge(c.loss, l.Loss, cl, l.NodeID)
			}
		}
		for st, k := range byState {
			gauge(c.links, float64(k), cl, st)
		}
		relayed := 0
		for _, r := range s.Routes {
			if r.Hops > 1 {
				relayed++
			}
		}
		gauge(c.relayed, float64(relayed), cl)
		gauge(c.dirPeers, float64(s.DirectoryPeers), cl)
		counter(c.forwarded, float64(s.E2EForwarded), cl)
		counter(c.delivered, float64(s.E2EDelivered), cl)
		for _, reason := range meshrun.E2EDropReasons { // every one, zero included, so a rate is defined from the start
			counter(c.e2eDropped, float64(s.E2EDropped[reason]), cl, reason)
		}
		if cs, ok := n.ChannelStats(); ok {
			counter(c.handshakes, float64(cs.HandshakesCompleted), cl, "initiator")
			counter(c.handshakes, float64(cs.HandshakesResponded), cl, "responder")
			counter(c.sessions, float64(cs.SessionsEstablished), cl)
			for reason, v := range map[string]uint64{"replay": cs.RefusedReplay, "unauthorized": cs.RefusedUnauthorized, "revoked": cs.RefusedRevoked,
				"rate_limited": cs.RateLimited, "bad_mac": cs.BadMAC, "failed": cs.HandshakeFailed} {
				counter(c.refused, float64(v), cl, reason)
			}
		}
	}
}

// Registry returns a registry with the agent's series, Go runtime, process and
// build information, and the go-metrics bridge (memberlist internals).
func (a *Agent) Registry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewBuildInfoCollector(), promsink.Install(), newAgentCollector(a))
	return reg
}

// observers are the agent's loopback metrics and pprof listeners.
type observers struct{ metrics, debug *loopback.Server }

func (o *observers) close() {
	for _, s := range []*loopback.Server{o.metrics, o.debug} {
		if s != nil {
			_ = s.Close()
		}
	}
}

// serveObservers starts the listeners RunOptions asks for.
func (a *Agent) serveObservers() (*observers, error) {
	o := &observers{}
	if a.o.MetricsListen != "" {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(a.Registry(), promhttp.HandlerOpts{}))
		s, err := loopback.Listen(a.o.MetricsListen, mux)
		if err != nil {
			return nil, err
		}
		o.metrics = s
		a.log.Info("metrics listener", "url", "http://"+s.Addr()+"/metrics")
	}
	if a.o.DebugListen != "" {
		s, err := loopback.Listen(a.o.DebugListen, loopback.Pprof())
		if err != nil {
			o.close()
			return nil, err
		}
		o.debug = s
		a.log.Info("pprof listener", "url", "http://"+s.Addr()+"/debug/pprof/")
	}
	return o, nil
}
