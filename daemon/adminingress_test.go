package daemon_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/agentapi"
	"github.com/rap-fabric/core/uimanifest"
)

// TestAdminIngressRoute: GET /v1/agent/admin-ingress (mTLS) answers the
// Cluster Admin Endpoint's page definitions only to a node with an active
// admin-ingress assignment that is not a config-storage node; every refusal
// is typed (403 admin_ingress_refused, details.reason). The answer carries
// the role coverage and authority state the agent's preconditions check.
func TestAdminIngressRoute(t *testing.T) {
	e := newAPIEnv(t)
	o := &orgEnv{apiEnv: e}
	node := e.agent.nodeID
	type refusal struct {
		Error struct {
			Code    string         `json:"code"`
			Details map[string]any `json:"details"`
		} `json:"error"`
	}
	refused := func(reason string) {
		t.Helper()
		a := o.call(e.agentCert(), http.MethodGet, agentapi.PathAdminIngress, nil, nil)
		require.Equal(t, http.StatusForbidden, a.status, a.body)
		var r refusal
		require.NoError(t, json.Unmarshal([]byte(a.body), &r))
		require.Equal(t, "admin_ingress_refused", r.Error.Code)
		require.Equal(t, reason, r.Error.Details["reason"], a.body)
	}
	grant := func() agentapi.AdminIngress {
		t.Helper()
		var g agentapi.AdminIngress
		o.must(e.agentCert(), http.MethodGet, agentapi.PathAdminIngress, nil, &g)
		return g
	}

	// No client certificate, an owner credential: not an agent.
	require.Equal(t, http.StatusUnauthorized, o.call(anonymous(), http.MethodGet, agentapi.PathAdminIngress, nil, nil).status)
	require.Equal(t, http.StatusUnauthorized, o.call(e.ownerToken(), http.MethodGet, agentapi.PathAdminIngress, nil, nil).status)
	// Enrolled, no role.
	refused(agentapi.AdminIngressRefusedNoRole)

	hb := map[string]any{"seq": 1, "sent_at": time.Now().UTC(), "agent_version": "1.0.0", "state": "normal",
		"capabilities": []string{"can_accept_client_ingress", "can_run_config_storage", "can_route_mesh"}}
	a := o.call(e.agentCert(), http.MethodPost, agentapi.PathHeartbeat, hb, nil)
	require.Less(t, a.status, 300, a.body)
	type roleView struct {
		ID string `json:"id"`
	}
	assign := func(role string) string {
		var rv roleView
		e.g.Eventually(10*time.Second, "role "+role+" assigned", func() bool {
			return o.call(e.ownerToken(), http.MethodPost, "/v1/clusters/east/nodes/"+node+"/roles", map[string]any{"role": role}, &rv).status < 300
		})
		return rv.ID
	}
	ingress := assign("admin-ingress")
	g := grant()
	require.Equal(t, e.agent.cluster, g.ClusterID)
	require.Equal(t, "east", g.ClusterSlug)
	require.Equal(t, node, g.NodeID)
	require.Equal(t, "normal", g.AuthorityState)
	require.True(t, g.Healthy)
	require.Equal(t, []string{"admin-ingress", "core-mesh"}, g.RequiredRoles)
	require.Equal(t, []string{"core-mesh"}, g.MissingRoles, "nobody holds core-mesh yet")
	require.NotZero(t, g.SnapshotVersion)
	m, err := uimanifest.Decode(g.Manifest)
	require.NoError(t, err, "the served manifest passes the strict decoder")
	require.NotNil(t, m.Page("groups"))

	assign("core-mesh")
	require.Empty(t, grant().MissingRoles)

	// A config-storage node is never an admin entry point, whatever else it holds.
	storage := assign("config-storage")
	refused(agentapi.AdminIngressRefusedStorage)
	o.must(e.ownerToken(), http.MethodDelete, "/v1/clusters/east/roles/"+storage, nil, nil)
	require.True(t, grant().Healthy)

	// A fenced cluster: served, but not healthy (the agent stays down).
	o.must(e.ownerToken(), http.MethodPost, "/v1/clusters/east/partition/fence", map[string]any{"reason": "admin ingress test"}, nil)
	g = grant()
	require.Equal(t, "fenced", g.AuthorityState)
	require.False(t, g.Healthy)
	o.must(e.ownerToken(), http.MethodPost, "/v1/clusters/east/partition/recover", map[string]any{"reason": "admin ingress test"}, nil)

	// The role disabled, then the membership disabled.
	o.must(e.ownerToken(), http.MethodPost, "/v1/clusters/east/roles/"+ingress+"/disable", nil, nil)
	refused(agentapi.AdminIngressRefusedNoRole)
	o.must(e.ownerToken(), http.MethodPost, "/v1/clusters/east/nodes/"+node+"/disable", nil, nil)
	a = o.call(e.agentCert(), http.MethodGet, agentapi.PathAdminIngress, nil, nil)
	require.GreaterOrEqual(t, a.status, 400, a.body)
}
