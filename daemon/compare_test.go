package daemon_test

import (
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
	hb := map[string]any{"seq": 1, "sent_at": time.Now().UTC(), "agent_version": "1.2.3", "state": "normal", "facts": map[string]any{"cpu_count": 4}}
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
	require.Equal(t, "normal", east.PartitionState)
	require.Equal(t, 1, east.SnapshotsLagging+east.SnapshotsCurrent)
	require.Equal(t, map[string]int{"active": 1}, north.Members)
	require.Equal(t, map[string]int{"none": 1}, north.Health)
	require.Equal(t, map[string]int{"unknown": 1}, north.AgentVersions)
	require.Zero(t, north.CPUs)
	require.Equal(t, "fenced", north.PartitionState)
	require.NotZero(t, list.FenceEpoch)

	// The console page shows the same, side by side.
	e.enableSession()
	page := e.serve(e.session(), http.MethodGet, "/console/compare", nil, "", nil)
	require.Equal(t, http.StatusOK, page.status, page.body)
	for _, want := range []string{`id="compare-east"`, `id="compare-north"`, "1.2.3: 1", "relay-node: 1", "fenced", "none: 1"} {
		require.True(t, strings.Contains(page.body, want), "console compare page shows %q", want)
	}
}
