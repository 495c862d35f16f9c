package daemon_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/httpapi"
)

// TestClusterComparison (spec C8): the platform API and console show every
// cluster side by side — members by status, heartbeat health, active roles,
// agent versions and CPUs from heartbeats, partition state, snapshot lag —
// each from that cluster's own rows.
func TestClusterComparison(t *testing.T) {
	e := newAPIEnv(t)
	owner := e.g.Client(e.l)
	_, pin := mkCluster(t, owner, "north")
	enrollAgent(t, e.g, owner, pin, "north", "edge-2")
	o := &orgEnv{apiEnv: e}
	hb := map[string]any{"seq": 1, "sent_at": time.Now().UTC(), "agent_version": "1.2.3", "state": "normal",
		"facts": map[string]any{"cpu_count": 4, "memory_total_bytes": 8 << 30},
		"load":  map[string]any{"load1": 1.5, "mem_used_bytes": 2 << 30, "mem_total_bytes": 8 << 30, "links": 3}}
	a := o.call(e.agentCert(), http.MethodPost, "/v1/agent/heartbeat", hb, nil)
	require.Less(t, a.status, 300, a.body)
	o.must(e.ownerToken(), http.MethodPost, "/v1/clusters/east/nodes/"+e.agent.nodeID+"/roles", map[string]any{"role": "relay-node"}, nil)
	o.must(e.ownerToken(), http.MethodPost, "/v1/clusters/north/partition/fence", map[string]any{"reason": "comparison test"}, nil)

	var list httpapi.ClusterComparisonList
	e.g.Eventually(10*time.Second, "the heartbeat is stored", func() bool {
		list = httpapi.ClusterComparisonList{} // decoding into a used value would merge the maps
		o.must(e.ownerToken(), http.MethodGet, "/v1/cluster-comparison", nil, &list)
		for _, c := range list.Items {
			if c.Slug == "east" && c.AgentVersions["1.2.3"] == 1 {
				return true
			}
		}
		return false
	})
	by := map[string]httpapi.ClusterComparison{}
	for _, c := range list.Items {
		by[c.Slug] = c
	}
	require.Len(t, by, 2)
	east, north := by["east"], by["north"]
	require.Equal(t, map[string]int{"active": 1}, east.Members)
	require.Equal(t, map[string]int{"healthy": 1}, east.Health)
	require.Equal(t, 1, east.Roles["relay-node"])
	require.Equal(t, 4, east.CPUs)
	require.Equal(t, int64(8<<30), east.MemoryBytes)
	require.Equal(t, 1, east.LoadReporting)
	require.InDelta(t, 1.5, east.Load1, 1e-9)
	require.InDelta(t, 0.375, east.LoadPerCPU, 1e-9)
	require.Equal(t, int64(2<<30), east.MemUsedBytes)
	require.Equal(t, 3, east.LinksUp)
	require.Equal(t, "normal", east.PartitionState)
	require.Equal(t, 1, east.SnapshotsLagging+east.SnapshotsCurrent)
	require.Equal(t, map[string]int{"active": 1}, north.Members)
	require.Equal(t, map[string]int{"none": 1}, north.Health)
	require.Equal(t, map[string]int{"unknown": 1}, north.AgentVersions)
	require.Zero(t, north.CPUs)
	require.Zero(t, north.LoadReporting)
	require.Zero(t, north.Load1)
	require.Equal(t, "fenced", north.PartitionState)
	require.NotZero(t, list.FenceEpoch)

	// Load moves with the heartbeats: the next one reports more.
	hb["seq"], hb["sent_at"] = 2, time.Now().UTC()
	hb["load"] = map[string]any{"load1": 3.25, "mem_used_bytes": 5 << 30, "mem_total_bytes": 8 << 30, "links": 7}
	delete(hb, "facts")
	a = o.call(e.agentCert(), http.MethodPost, "/v1/agent/heartbeat", hb, nil)
	require.Less(t, a.status, 300, a.body)
	e.g.Eventually(10*time.Second, "the new load is shown", func() bool {
		list = httpapi.ClusterComparisonList{}
		o.must(e.ownerToken(), http.MethodGet, "/v1/cluster-comparison", nil, &list)
		for _, c := range list.Items {
			if c.Slug == "east" && c.Load1 == 3.25 {
				east = c
				return true
			}
		}
		return false
	})
	require.Equal(t, int64(5<<30), east.MemUsedBytes)
	require.Equal(t, 7, east.LinksUp)
	require.Equal(t, 4, east.CPUs, "capacity from the facts sent before")
	// An implausible load report is refused, typed.
	hb["seq"], hb["load"] = 3, map[string]any{"load1": -1}
	a = o.call(e.agentCert(), http.MethodPost, "/v1/agent/heartbeat", hb, nil)
	require.Equal(t, http.StatusBadRequest, a.status, a.body)

	// The console page shows the same, side by side.
	e.enableSession()
	page := e.serve(e.session(), http.MethodGet, "/console/compare", nil, "", nil)
	require.Equal(t, http.StatusOK, page.status, page.body)
	for _, want := range []string{`id="compare-east"`, `id="compare-north"`, "1.2.3: 1", "relay-node: 1", "fenced", "none: 1", "/ 3.25 /"} {
		require.True(t, strings.Contains(page.body, want), "console compare page shows %q", want)
	}
}

// TestSeedRemovalGuard (spec: split/seed workflow): a node that joined a new
// cluster while keeping its older membership seeds it; disabling it there is
// refused with the unmet conditions listed until the new cluster stands on
// its own, and an owner override (step-up route, reason) is audited. Its
// older membership is not guarded.
func TestSeedRemovalGuard(t *testing.T) {
	e := newAPIEnv(t)
	o := &orgEnv{apiEnv: e}
	owner := e.g.Client(e.l)
	_, pin := mkCluster(t, owner, "fresh")
	seed := enrollAgent(t, e.g, owner, pin, "fresh", "edge-1") // the same host as east's edge-1
	require.Equal(t, e.agent.nodeID, seed.nodeID, "one physical node in two clusters")
	o.must(e.ownerToken(), http.MethodPost, "/v1/clusters/fresh/nodes/"+seed.nodeID+"/roles", map[string]any{"role": "relay-node"}, nil)

	a := o.call(e.ownerToken(), http.MethodPost, "/v1/clusters/fresh/nodes/"+seed.nodeID+"/disable", nil, nil)
	require.Equal(t, http.StatusConflict, a.status, a.body)
	for _, want := range []string{"healthy_node_set", "role_coverage: only the seed node holds relay-node", "admin_ingress"} {
		require.Contains(t, a.body, want)
	}
	a = o.call(e.ownerToken(), http.MethodPost, "/v1/clusters/fresh/nodes/"+seed.nodeID+"/disable-seed", map[string]any{}, nil)
	require.Equal(t, http.StatusBadRequest, a.status, "an override needs a reason: %s", a.body)
	var m map[string]any
	o.must(e.ownerToken(), http.MethodPost, "/v1/clusters/fresh/nodes/"+seed.nodeID+"/disable-seed", map[string]any{"reason": "fresh is abandoned"}, &m)
	require.Equal(t, "disabled", m["membership_status"])
	var details string
	require.NoError(t, e.l.DB.Pool.QueryRow(context.Background(), `SELECT details::text FROM cluster_audit_events
		WHERE action = 'membership.disable' AND outcome = 'ok' AND target_id = $1 ORDER BY id DESC LIMIT 1`, seed.nodeID).Scan(&details))
	require.Contains(t, details, "fresh is abandoned")
	require.Contains(t, details, "seed_override")
	// In another new cluster that stands on its own — a second healthy
	// member, current snapshots, the seed's roles covered, admin ingress —
	// the seed leaves without an override.
	_, gpin := mkCluster(t, owner, "grown")
	seed2 := enrollAgent(t, e.g, owner, gpin, "grown", "edge-1")
	require.Equal(t, e.agent.nodeID, seed2.nodeID)
	o.must(e.ownerToken(), http.MethodPost, "/v1/clusters/grown/nodes/"+seed2.nodeID+"/roles", map[string]any{"role": "relay-node"}, nil)
	ag := newFakeAgent("edge-9", "host-edge-9")
	tok := mkToken(t, owner, "grown", 1)
	body := ag.joinBody(tok.Token)
	body["capabilities"] = []string{"can_route_mesh", "can_accept_node_ingress", "can_accept_client_ingress"}
	var st joinStatus
	require.NoError(t, enrollClient(t, e.g, gpin).Do(context.Background(), http.MethodPost, "/v1/agent/join", body, &st, nil))
	require.NoError(t, owner.Do(context.Background(), http.MethodPost, "/v1/join-requests/"+st.RequestID+"/approve", nil, nil, nil))
	require.NoError(t, enrollClient(t, e.g, gpin).Do(context.Background(), http.MethodPost, "/v1/agent/join/"+st.RequestID+"/poll", map[string]any{"poll_secret": ag.poll}, &st, nil))
	ag.cert, ag.caCert, ag.nodeID, ag.cluster = st.Certificate, st.CACert, st.NodeID, st.ClusterID
	for _, role := range []string{"relay-node", "admin-ingress"} {
		o.must(e.ownerToken(), http.MethodPost, "/v1/clusters/grown/nodes/"+ag.nodeID+"/roles", map[string]any{"role": role}, nil)
	}
	a = o.call(e.ownerToken(), http.MethodPost, "/v1/clusters/grown/nodes/"+seed2.nodeID+"/disable", nil, nil)
	require.Equal(t, http.StatusConflict, a.status, "edge-9 has not reported yet: %s", a.body)
	require.Contains(t, a.body, "healthy_node_set")
	require.NotContains(t, a.body, "role_coverage")
	require.NotContains(t, a.body, "admin_ingress")
	cert, err := x509.ParseCertificate(ag.cert)
	require.NoError(t, err)
	nine := credential{"edge-9", func(r *http.Request) {
		r.TLS = &tls.ConnectionState{HandshakeComplete: true, PeerCertificates: []*x509.Certificate{cert}}
	}}
	seq := 0
	e.g.Eventually(20*time.Second, "the grown cluster stands on its own", func() bool {
		var head int64
		_ = e.l.DB.Pool.QueryRow(context.Background(), `SELECT version FROM node_snapshot_heads WHERE cluster_id = $1 AND node_id = $2`, ag.cluster, ag.nodeID).Scan(&head)
		seq++
		o.call(nine, http.MethodPost, "/v1/agent/heartbeat", map[string]any{"seq": seq, "sent_at": time.Now().UTC(), "agent_version": "1.0.0",
			"state": "normal", "applied_version": head}, nil)
		a := o.call(e.ownerToken(), http.MethodPost, "/v1/clusters/grown/nodes/"+seed2.nodeID+"/disable", nil, &m)
		return a.status == http.StatusOK && m["membership_status"] == "disabled"
	})

	// The older membership is no seed: disabling it is not guarded.
	o.must(e.ownerToken(), http.MethodPost, "/v1/clusters/east/nodes/"+e.agent.nodeID+"/disable", nil, &m)
	require.Equal(t, "disabled", m["membership_status"])
}
