package daemon_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/apiclient"
	"github.com/rap-fabric/core/internal/authtest"
	"github.com/rap-fabric/core/snapshot"
)

func TestRouteIntentsAndQoSPolicies(t *testing.T) {
	g := authtest.New(t, 3)
	ctx := context.Background()
	g.Leader(10 * time.Second)
	owner := g.Client(g.DS...)
	_, pin := mkClusterSnap(t, owner, "east")
	var tok struct {
		Token string `json:"token"`
	}
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/join-tokens", map[string]any{"cluster": "east", "max_uses": 5, "auto_approve": true, "allowed_roles": []string{"relay-node"}, "description": "intents"}, &tok, nil))
	m1 := enrollSnapAgent(t, g, pin, tok.Token, "m1", []string{"can_route_mesh", "can_accept_node_ingress"})
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/clusters/east/nodes/"+m1.nodeID+"/roles", map[string]any{"role": "core-mesh"}, nil, nil))

	// Validation: clear invalid_argument refusals.
	for _, bad := range []map[string]any{
		{"name": "eu-out", "source": "region:eu", "destination": "*", "action": "drop"},
		{"name": "eu-out", "source": "planet:earth", "destination": "*", "action": "allow"},
		{"name": "Bad Name", "source": "*", "destination": "*", "action": "allow"},
		{"name": "eu-out", "source": "*", "destination": "*", "action": "allow", "priority": -1},
	} {
		err := owner.Do(ctx, http.MethodPost, "/v1/clusters/east/route-intents", bad, nil, nil)
		require.Equal(t, "invalid_argument", apiCode(err), "%v: %v", bad, err)
	}
	err := owner.Do(ctx, http.MethodPost, "/v1/clusters/east/qos-policies", map[string]any{"name": "voice", "traffic_class": "platinum"}, nil, nil)
	require.Equal(t, "invalid_argument", apiCode(err), "err=%v", err)

	// Create through the owner API.
	var ri, qp map[string]any
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/clusters/east/route-intents",
		map[string]any{"name": "eu-via-relay", "source": "region:eu", "destination": "node:" + m1.nodeID, "action": "prefer-relay", "priority": 10}, &ri, nil))
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/clusters/east/qos-policies",
		map[string]any{"name": "voice", "traffic_class": "interactive", "priority": 1, "max_bandwidth_kbps": 2048, "latency_target_ms": 40}, &qp, nil))
	iid, qid := ri["id"].(string), qp["id"].(string)
	require.Equal(t, "conflict", apiCode(owner.Do(ctx, http.MethodPost, "/v1/clusters/east/route-intents",
		map[string]any{"name": "eu-via-relay", "source": "*", "destination": "*", "action": "deny"}, nil, nil)))

	// Listed.
	var il, ql struct {
		Items []map[string]any `json:"items"`
	}
	require.NoError(t, owner.Do(ctx, http.MethodGet, "/v1/clusters/east/route-intents", nil, &il, nil))
	require.Len(t, il.Items, 1)
	require.Equal(t, "prefer-relay", il.Items[0]["action"])
	require.NoError(t, owner.Do(ctx, http.MethodGet, "/v1/clusters/east/qos-policies", nil, &ql, nil))
	require.Len(t, ql.Items, 1)
	require.EqualValues(t, 2048, ql.Items[0]["max_bandwidth_kbps"])

	// The mesh node's snapshot carries them (rebuilt before the answer).
	type policies struct {
		RouteIntents []map[string]any `json:"route_intents"`
		QoSPolicies  []map[string]any `json:"qos_policies"`
	}
	nodeSnap := func() (policies, policies) {
		var detail struct {
			Snapshot *snapshot.Snapshot `json:"snapshot"`
		}
		require.NoError(t, owner.Do(ctx, http.MethodGet, "/v1/clusters/east/nodes/"+m1.nodeID+"/snapshot", nil, &detail, nil))
		require.NotNil(t, detail.Snapshot)
		var rp, qp policies
		if len(detail.Snapshot.Body.RoutePolicy) > 0 {
			require.NoError(t, json.Unmarshal(detail.Snapshot.Body.RoutePolicy, &rp))
		}
		if len(detail.Snapshot.Body.QoSPolicy) > 0 {
			require.NoError(t, json.Unmarshal(detail.Snapshot.Body.QoSPolicy, &qp))
		}
		return rp, qp
	}
	rp, qpol := nodeSnap()
	require.Len(t, rp.RouteIntents, 1)
	require.Equal(t, iid, rp.RouteIntents[0]["id"])
	require.Equal(t, "region:eu", rp.RouteIntents[0]["source"])
	require.NotContains(t, rp.RouteIntents[0], "created_by", "authorship is not need-to-know")
	// The authority resolves the attribute selector (region:eu) to the
	// members it names, so relays decide for nodes outside their directory;
	// node:ID needs no resolution.
	require.Equal(t, []any{m1.nodeID}, rp.RouteIntents[0]["source_nodes"])
	require.NotContains(t, rp.RouteIntents[0], "destination_nodes")
	require.Len(t, qpol.QoSPolicies, 1)
	require.Equal(t, "interactive", qpol.QoSPolicies[0]["traffic_class"])
	// The agent verifies and receives it as well.
	s, ok := m1.fetch(t, m1.c, 5)
	require.True(t, ok)
	require.Contains(t, s.Scope, snapshot.ScopeMesh)
	require.Contains(t, string(s.Body.RoutePolicy), iid)
	require.Contains(t, string(s.Body.QoSPolicy), qid)

	// Audited.
	var aud struct{ Items []map[string]any }
	require.NoError(t, owner.Do(ctx, http.MethodGet, "/v1/audit?limit=500", nil, &aud, nil))
	seen := map[string]bool{}
	for _, e := range aud.Items {
		seen[e["action"].(string)+"/"+e["outcome"].(string)] = true
	}
	require.True(t, seen["route_intent.create/ok"], "audit has route_intent.create")
	require.True(t, seen["qos_policy.create/ok"], "audit has qos_policy.create")

	// Delete works and the snapshot drops them.
	require.NoError(t, owner.Do(ctx, http.MethodDelete, "/v1/clusters/east/route-intents/"+iid, nil, nil, nil))
	require.NoError(t, owner.Do(ctx, http.MethodDelete, "/v1/clusters/east/qos-policies/"+qid, nil, nil, nil))
	require.Equal(t, "not_found", apiCode(owner.Do(ctx, http.MethodDelete, "/v1/clusters/east/route-intents/"+iid, nil, nil, nil)))
	require.NoError(t, owner.Do(ctx, http.MethodGet, "/v1/clusters/east/route-intents", nil, &il, nil))
	require.Empty(t, il.Items)
	rp, qpol = nodeSnap()
	require.Empty(t, rp.RouteIntents)
	require.Empty(t, qpol.QoSPolicies)
	require.NoError(t, owner.Do(ctx, http.MethodGet, "/v1/audit?limit=500", nil, &aud, nil))
	seen = map[string]bool{}
	for _, e := range aud.Items {
		seen[e["action"].(string)+"/"+e["outcome"].(string)] = true
	}
	require.True(t, seen["route_intent.delete/ok"])
	require.True(t, seen["qos_policy.delete/ok"])

	// Minority: an isolated leader refuses both writes.
	l := g.Leader(5 * time.Second)
	g.Isolate(l)
	defer g.Heal()
	onlyOld, err := apiclient.New(apiclient.Options{Servers: []string{l.APIAddr()}, Token: g.Token, CAPin: g.Pin, MaxRedirects: -1})
	require.NoError(t, err)
	defer onlyOld.Close()
	err = onlyOld.Do(ctx, http.MethodPost, "/v1/clusters/east/route-intents", map[string]any{"name": "minority", "source": "*", "destination": "*", "action": "deny"}, nil, nil)
	require.Contains(t, []string{"no_quorum", "not_leader"}, apiCode(err), "err=%v", err)
	err = onlyOld.Do(ctx, http.MethodPost, "/v1/clusters/east/qos-policies", map[string]any{"name": "minority", "traffic_class": "bulk"}, nil, nil)
	require.Contains(t, []string{"no_quorum", "not_leader"}, apiCode(err), "err=%v", err)
}
