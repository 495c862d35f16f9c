package integration

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

// agentScrape GETs an agent's loopback metrics listener; nil when it does not
// answer (yet).
func agentScrape(addr string) map[string]*dto.MetricFamily {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil
	}
	return mfs
}

// metricSum adds the values of family name's series whose labels include
// want (pairs).
func metricSum(mfs map[string]*dto.MetricFamily, name string, want ...string) float64 {
	total := 0.0
	for _, m := range mfs[name].GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		ok := true
		for i := 0; i+1 < len(want); i += 2 {
			ok = ok && labels[want[i]] == want[i+1]
		}
		if ok {
			total += m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
		}
	}
	return total
}

// requireAgentMeshMetrics checks a relay agent's metrics after traffic went
// through it: two links up with RTT and loss per peer, handshakes, forwarded
// frames (relay use), the applied snapshot and its age, acknowledged
// heartbeats, not degraded; and the whole scrape is promlint clean.
func requireAgentMeshMetrics(t *testing.T, relayAddr, viaRelayAddr, peer1, peer2 string, eventually func(what string, cond func() bool)) {
	t.Helper()
	var m map[string]*dto.MetricFamily
	eventually("the relay's metrics show the mesh", func() bool {
		m = agentScrape(relayAddr)
		return m != nil && metricSum(m, "rap_agent_mesh_links", "state", "up") == 2 && metricSum(m, "rap_agent_mesh_forwarded_frames_total") > 0
	})
	for _, p := range []string{peer1, peer2} {
		require.Greater(t, metricSum(m, "rap_agent_mesh_link_rtt_seconds", "peer", p), 0.0, "RTT to %s", p)
		require.Contains(t, m, "rap_agent_mesh_link_loss_ratio")
	}
	require.Greater(t, metricSum(m, "rap_agent_mesh_handshakes_total"), 0.0)
	require.Greater(t, metricSum(m, "rap_agent_mesh_sessions_established_total"), 0.0)
	require.Len(t, m["rap_agent_mesh_e2e_dropped_frames_total"].GetMetric(), 8, "one end-to-end drop series per reason")
	require.Greater(t, metricSum(m, "rap_agent_snapshot_version"), 0.0)
	require.Contains(t, m, "rap_agent_snapshot_age_seconds")
	require.Greater(t, metricSum(m, "rap_agent_heartbeats_acked_total"), 0.0)
	require.Equal(t, 0.0, metricSum(m, "rap_agent_degraded"))
	require.Equal(t, 1.0, metricSum(m, "rap_agent_mode", "mode", "normal"))
	require.Greater(t, metricSum(m, "rap_agent_certificate_expiry_seconds"), 0.0)
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes", "go_build_info", "rap_agent_heartbeat_failures_total"} {
		require.Contains(t, m, name)
	}
	// The agent whose traffic to one peer goes through the relay counts a
	// relayed route.
	eventually("the relayed route is counted", func() bool {
		v := agentScrape(viaRelayAddr)
		return v != nil && metricSum(v, "rap_agent_mesh_relayed_routes") >= 1
	})
	var all []*dto.MetricFamily
	for _, mf := range m {
		all = append(all, mf)
	}
	problems, err := promlint.NewWithMetricFamilies(all).Lint()
	require.NoError(t, err)
	require.Empty(t, problems)
}

// requireJSONLogLines checks a process's output under --log-format json:
// every non-empty line is one JSON object with hclog's fields.
func requireJSONLogLines(t *testing.T, out string) {
	t.Helper()
	n := 0
	for _, line := range strings.Split(out, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m), "not a JSON log line: %q", line)
		require.Contains(t, m, "@message")
		require.Contains(t, m, "@level")
		n++
	}
	require.Positive(t, n)
}
