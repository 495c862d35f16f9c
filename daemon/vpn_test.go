package daemon_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/apiclient"
	"github.com/rap-fabric/core/httpapi"
	"github.com/rap-fabric/core/internal/authtest"
	"github.com/rap-fabric/core/pki"
)

// vpnClient is an mTLS client of an enrolled agent that follows not_leader.
func vpnClient(t *testing.T, g *authtest.Group, a *snapAgent) *apiclient.Client {
	t.Helper()
	var addrs []string
	for _, d := range g.DS {
		if d != nil {
			addrs = append(addrs, d.APIAddr())
		}
	}
	cpin, err := pki.PinDER(a.caCert)
	require.NoError(t, err)
	c, err := apiclient.New(apiclient.Options{Servers: addrs, CAPin: cpin, ServerName: httpapi.ServerNameForCluster(a.cluster),
		Certificate: &tls.Certificate{Certificate: [][]byte{a.cert}, PrivateKey: a.priv}})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

type leaseGrant struct {
	ConnectionID string    `json:"connection_id"`
	Generation   int64     `json:"generation"`
	Epoch        int64     `json:"epoch"`
	ExpiresAt    time.Time `json:"expires_at"`
	AlreadyHeld  bool      `json:"already_held"`
}

type assignments struct {
	Items []map[string]any `json:"items"`
}

func auditSeen(t *testing.T, owner *apiclient.Client) map[string]int {
	t.Helper()
	// Page through the whole log: a polling test can write hundreds of
	// refused acquires, and one page would hide the newest events.
	seen := map[string]int{}
	after := int64(0)
	for {
		var aud struct{ Items []map[string]any }
		require.NoError(t, owner.Do(context.Background(), http.MethodGet, fmt.Sprintf("/v1/audit?limit=500&after_id=%d", after), nil, &aud, nil))
		for _, e := range aud.Items {
			seen[e["action"].(string)+"/"+e["outcome"].(string)]++
			after = int64(e["id"].(float64))
		}
		if len(aud.Items) < 500 {
			return seen
		}
	}
}

// TestVPNConnectionsLeasesAndAssignments drives the VPN control plane over
// HTTP on three authorities and real PostgreSQL: validation, allowed-node
// normalization, route policies, scoped agent assignments without
// credential_ref, eligibility (wrong cluster, not allowed, missing role,
// disabled connection), concurrent acquirers, idempotent acquire / release /
// fence, renewal after expiry refused, stale lease reclaimed with audit,
// status reports, and a minority leader that cannot grant a lease.
func TestVPNConnectionsLeasesAndAssignments(t *testing.T) {
	g := authtest.New(t, 3)
	ctx := context.Background()
	g.Leader(10 * time.Second)
	owner := g.Client(g.DS...)
	_, pin := mkClusterSnap(t, owner, "vpn")
	_, westPin := mkClusterSnap(t, owner, "west")
	var tok, westTok struct {
		Token string `json:"token"`
	}
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/join-tokens", map[string]any{"cluster": "vpn", "max_uses": 10, "auto_approve": true, "allowed_roles": []string{"relay-node"}, "description": "vpn"}, &tok, nil))
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/join-tokens", map[string]any{"cluster": "west", "max_uses": 2, "auto_approve": true, "allowed_roles": []string{"relay-node"}, "description": "west"}, &westTok, nil))
	caps := []string{"can_run_vpn_exit", "can_run_vpn_connector"}
	var agents []*snapAgent
	for _, name := range []string{"x1", "x2", "x3", "x4", "x5"} {
		agents = append(agents, enrollSnapAgent(t, g, pin, tok.Token, name, caps))
	}
	noRole := enrollSnapAgent(t, g, pin, tok.Token, "norole", caps)
	west := enrollSnapAgent(t, g, westPin, westTok.Token, "w1", caps)
	for i, a := range agents {
		role := "vpn-exit"
		if i%2 == 1 {
			role = "vpn-connector"
		}
		require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/clusters/vpn/nodes/"+a.nodeID+"/roles", map[string]any{"role": role}, nil, nil))
	}
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/clusters/west/nodes/"+west.nodeID+"/roles", map[string]any{"role": "vpn-exit"}, nil, nil))
	clients := make([]*apiclient.Client, len(agents))
	for i, a := range agents {
		clients[i] = vpnClient(t, g, a)
	}
	noRoleC, westC := vpnClient(t, g, noRole), vpnClient(t, g, west)

	// Validation: typed refusals, nothing written.
	for _, bad := range []map[string]any{
		{"name": "corp", "address_family": "ipx"},
		{"name": "Corp!", "address_family": "ipv4"},
		{"name": "corp"},
		{"name": "corp", "address_family": "ipv4", "client_prefixes": []string{"10.0.0.1/8"}},
		{"name": "corp", "address_family": "ipv4", "remote_prefixes": []string{"fd00::/8"}},
		{"name": "corp", "address_family": "ipv4", "client_prefixes": []string{"10.1.0.0/16"}, "remote_prefixes": []string{"10.0.0.0/8"}},
		{"name": "corp", "address_family": "ipv4", "mtu": 100},
		{"name": "corp", "address_family": "ipv4", "lease_ttl_seconds": 1},
		{"name": "corp", "address_family": "ipv4", "dns_servers": []string{"dns.example"}},
	} {
		err := owner.Do(ctx, http.MethodPost, "/v1/clusters/vpn/vpn-connections", bad, nil, nil)
		require.Equal(t, "invalid_argument", apiCode(err), "%v: %v", bad, err)
	}
	var conn struct {
		ID           string   `json:"id"`
		AllowedNodes []string `json:"allowed_nodes"`
		Health       string   `json:"health"`
	}
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/clusters/vpn/vpn-connections", map[string]any{"name": "corp", "address_family": "ipv4",
		"client_prefixes": []string{"100.64.0.0/16"}, "remote_prefixes": []string{"10.0.0.0/8"}, "dns_servers": []string{"10.0.0.53"},
		"mtu": 1400, "credential_ref": "vault:kv/vpn/corp-secret-ref", "lease_ttl_seconds": 6}, &conn, nil))
	require.Equal(t, "disabled", conn.Health)
	require.Equal(t, "conflict", apiCode(owner.Do(ctx, http.MethodPost, "/v1/clusters/vpn/vpn-connections", map[string]any{"name": "corp", "address_family": "ipv4"}, nil, nil)))
	base := "/v1/clusters/vpn/vpn-connections/" + conn.ID

	// Allowed nodes: normalized (deduplicated, sorted); other clusters' nodes refused.
	err := owner.Do(ctx, http.MethodPut, base+"/allowed-nodes", map[string]any{"node_ids": []string{agents[0].nodeID, west.nodeID}}, nil, nil)
	require.Equal(t, "invalid_argument", apiCode(err), "err=%v", err)
	require.Contains(t, err.Error(), west.nodeID)
	allowed := []string{agents[3].nodeID, agents[0].nodeID, strings.ToUpper(agents[1].nodeID), agents[2].nodeID, agents[0].nodeID, noRole.nodeID}
	require.NoError(t, owner.Do(ctx, http.MethodPut, base+"/allowed-nodes", map[string]any{"node_ids": allowed}, &conn, nil))
	want := []string{agents[0].nodeID, agents[1].nodeID, agents[2].nodeID, agents[3].nodeID, noRole.nodeID}
	sortStrings(want)
	require.Equal(t, want, conn.AllowedNodes)

	// Route policies.
	for _, bad := range []map[string]any{
		{"name": "all", "prefixes": []string{"0.0.0.0/0"}},
		{"name": "dup", "prefixes": []string{"10.0.0.0/8", "10.1.0.0/16"}},
		{"name": "loop", "prefixes": []string{"100.64.1.0/24"}},
		{"name": "v6", "prefixes": []string{"fd00::/8"}},
		{"name": "nothing", "prefixes": []string{}},
	} {
		err := owner.Do(ctx, http.MethodPost, base+"/route-policies", bad, nil, nil)
		require.Equal(t, "invalid_argument", apiCode(err), "%v: %v", bad, err)
	}
	require.NoError(t, owner.Do(ctx, http.MethodPost, base+"/route-policies", map[string]any{"name": "corp-net", "prefixes": []string{"10.0.0.0/8"}, "allow_overlap": true}, nil, nil))
	err = owner.Do(ctx, http.MethodPost, base+"/route-policies", map[string]any{"name": "lab", "prefixes": []string{"10.9.0.0/16"}}, nil, nil)
	require.Equal(t, "invalid_argument", apiCode(err), "overlap refused: %v", err)
	require.NoError(t, owner.Do(ctx, http.MethodPost, base+"/route-policies", map[string]any{"name": "everything", "prefixes": []string{"0.0.0.0/0"},
		"allow_default_route": true, "allow_overlap": true, "priority": 1000}, nil, nil))
	err = owner.Do(ctx, http.MethodPost, base+"/route-policies", map[string]any{"name": "everything2", "prefixes": []string{"0.0.0.0/0"}, "allow_default_route": true}, nil, nil)
	require.Equal(t, "invalid_argument", apiCode(err), "overlap with a policy that forbids it: %v", err)

	// Disabled connection: no lease.
	require.Equal(t, "connection_disabled", apiCode(clients[0].Do(ctx, http.MethodPost, "/v1/agent/vpn/connections/"+conn.ID+"/lease", nil, nil, nil)))
	require.NoError(t, owner.Do(ctx, http.MethodPost, base+"/enable", nil, &conn, nil))
	require.Equal(t, "no_owner", conn.Health)

	// Assignments: only eligible candidates see the connection, never the
	// credential reference.
	var raw json.RawMessage
	require.NoError(t, clients[0].Do(ctx, http.MethodGet, "/v1/agent/vpn/assignments", nil, &raw, nil))
	require.NotContains(t, string(raw), `"credential_ref"`)
	require.NotContains(t, string(raw), "corp-secret-ref")
	var as assignments
	require.NoError(t, json.Unmarshal(raw, &as))
	require.Len(t, as.Items, 1)
	require.Equal(t, true, as.Items[0]["has_credential_ref"])
	require.Equal(t, true, as.Items[0]["eligible"])
	require.Len(t, as.Items[0]["route_policies"], 2)
	for _, c := range []*apiclient.Client{westC, noRoleC, clients[4]} { // other cluster, no role, not allowed
		var none assignments
		require.NoError(t, c.Do(ctx, http.MethodGet, "/v1/agent/vpn/assignments", nil, &none, nil))
		require.Empty(t, none.Items)
	}

	// Eligibility refusals.
	require.Equal(t, "not_found", apiCode(westC.Do(ctx, http.MethodPost, "/v1/agent/vpn/connections/"+conn.ID+"/lease", nil, nil, nil)), "a node of another cluster")
	err = noRoleC.Do(ctx, http.MethodPost, "/v1/agent/vpn/connections/"+conn.ID+"/lease", nil, nil, nil)
	require.Equal(t, "not_eligible", apiCode(err), "missing role: %v", err)
	err = clients[4].Do(ctx, http.MethodPost, "/v1/agent/vpn/connections/"+conn.ID+"/lease", nil, nil, nil)
	require.Equal(t, "not_eligible", apiCode(err), "not allowed: %v", err)

	// Four eligible agents acquire at once: exactly one wins.
	var wg sync.WaitGroup
	grants := make([]leaseGrant, 4)
	errs := make([]error, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			errs[i] = clients[i].Do(ctx, http.MethodPost, "/v1/agent/vpn/connections/"+conn.ID+"/lease", nil, &grants[i], nil)
		}(i)
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		if err == nil {
			require.Equal(t, -1, winner, "two acquirers won")
			winner = i
			continue
		}
		require.Equal(t, "lease_held", apiCode(err), "err=%v", err)
	}
	require.NotEqual(t, -1, winner)
	g1 := grants[winner]
	require.EqualValues(t, 1, g1.Generation)
	require.Positive(t, g1.Epoch)
	holder := clients[winner]
	other := clients[(winner+1)%4]

	// Data-path roles (issue 20): vpn-exit nodes (0, 2) are exit candidates
	// and learn the connectors (1, 3: vpn-connector only); connectors learn
	// only the current exit. Every allowed node sees the holder.
	conns := []string{agents[1].nodeID, agents[3].nodeID}
	sortStrings(conns)
	for i := 0; i < 4; i++ {
		var a assignments
		require.NoError(t, clients[i].Do(ctx, http.MethodGet, "/v1/agent/vpn/assignments", nil, &a, nil))
		require.Len(t, a.Items, 1)
		require.Equal(t, agents[winner].nodeID, a.Items[0]["exit_node_id"], "agent %d sees the holder", i)
		if i%2 == 0 {
			require.Equal(t, "exit", a.Items[0]["role"])
			require.ElementsMatch(t, conns, a.Items[0]["connector_node_ids"])
		} else {
			require.Equal(t, "connector", a.Items[0]["role"])
			require.NotContains(t, a.Items[0], "connector_node_ids", "connectors do not learn the other connectors")
		}
	}

	// Same owner: idempotent. Status reports.
	var again leaseGrant
	require.NoError(t, holder.Do(ctx, http.MethodPost, "/v1/agent/vpn/connections/"+conn.ID+"/lease", nil, &again, nil))
	require.True(t, again.AlreadyHeld)
	require.Equal(t, g1.Generation, again.Generation)
	require.NoError(t, holder.Do(ctx, http.MethodPost, "/v1/agent/vpn/connections/"+conn.ID+"/status", map[string]any{"status": "assigned", "lease_generation": 1}, nil, nil))
	require.NoError(t, other.Do(ctx, http.MethodPost, "/v1/agent/vpn/connections/"+conn.ID+"/status", map[string]any{"status": "lease_required"}, nil, nil))
	for _, bad := range []string{"running", "", "ASSIGNED"} {
		require.Equal(t, "invalid_argument", apiCode(holder.Do(ctx, http.MethodPost, "/v1/agent/vpn/connections/"+conn.ID+"/status", map[string]any{"status": bad}, nil, nil)), bad)
	}
	require.Equal(t, "not_found", apiCode(westC.Do(ctx, http.MethodPost, "/v1/agent/vpn/connections/"+conn.ID+"/status", map[string]any{"status": "unknown"}, nil, nil)))
	var list struct {
		Items []struct {
			Health string `json:"health"`
			Lease  *struct {
				OwnerNodeID string `json:"owner_node_id"`
				Epoch       int64  `json:"epoch"`
			} `json:"lease"`
		} `json:"items"`
	}
	require.NoError(t, owner.Do(ctx, http.MethodGet, "/v1/clusters/vpn/vpn-connections", nil, &list, nil))
	require.Len(t, list.Items, 1)
	require.Equal(t, "healthy", list.Items[0].Health)
	require.Equal(t, agents[winner].nodeID, list.Items[0].Lease.OwnerNodeID)

	// Renewal: the holder with its generation only.
	var ren leaseGrant
	require.NoError(t, holder.Do(ctx, http.MethodPost, "/v1/agent/vpn/connections/"+conn.ID+"/lease/renew", map[string]any{"generation": 1}, &ren, nil))
	require.False(t, ren.ExpiresAt.Before(g1.ExpiresAt))
	require.Equal(t, "lease_lost", apiCode(other.Do(ctx, http.MethodPost, "/v1/agent/vpn/connections/"+conn.ID+"/lease/renew", map[string]any{"generation": 1}, nil, nil)))

	// The holder stops renewing: the reclaimer expires the lease (audited),
	// a late renewal is refused, and another eligible node takes over.
	g.Eventually(30*time.Second, "lease expired by the reclaimer", func() bool {
		var lv struct {
			Active  *map[string]any  `json:"active"`
			History []map[string]any `json:"history"`
		}
		if err := owner.Do(ctx, http.MethodGet, base+"/lease", nil, &lv, nil); err != nil {
			return false
		}
		return lv.Active == nil && len(lv.History) == 1 && lv.History[0]["status"] == "expired"
	})
	require.Equal(t, "lease_lost", apiCode(holder.Do(ctx, http.MethodPost, "/v1/agent/vpn/connections/"+conn.ID+"/lease/renew", map[string]any{"generation": 1}, nil, nil)))
	var g2 leaseGrant
	require.NoError(t, other.Do(ctx, http.MethodPost, "/v1/agent/vpn/connections/"+conn.ID+"/lease", nil, &g2, nil))
	require.EqualValues(t, 2, g2.Generation)
	seen := auditSeen(t, owner)
	require.GreaterOrEqual(t, seen["vpn_lease.expire/ok"], 1, "stale lease expiry audited")
	require.GreaterOrEqual(t, seen["vpn_lease.renew/ok"], 1, "renewal audited")
	require.GreaterOrEqual(t, seen["vpn_lease.acquire/failed"], 3, "refused acquires audited")

	// Release is idempotent.
	var rel struct {
		Released bool `json:"released"`
	}
	require.NoError(t, other.Do(ctx, http.MethodPost, "/v1/agent/vpn/connections/"+conn.ID+"/lease/release", map[string]any{"generation": 2}, &rel, nil))
	require.True(t, rel.Released)
	require.NoError(t, other.Do(ctx, http.MethodPost, "/v1/agent/vpn/connections/"+conn.ID+"/lease/release", map[string]any{"generation": 2}, &rel, nil))
	require.False(t, rel.Released)

	// Fence (owner recovery action): idempotent, and no new lease while the
	// fenced holder's term runs.
	var g3 leaseGrant
	require.NoError(t, holder.Do(ctx, http.MethodPost, "/v1/agent/vpn/connections/"+conn.ID+"/lease", nil, &g3, nil))
	require.EqualValues(t, 3, g3.Generation)
	var fr struct {
		Fenced bool `json:"fenced"`
	}
	require.Equal(t, "invalid_argument", apiCode(owner.Do(ctx, http.MethodPost, base+"/lease/fence", map[string]any{}, nil, nil)), "a reason is required")
	require.NoError(t, owner.Do(ctx, http.MethodPost, base+"/lease/fence", map[string]any{"reason": "holder misbehaves"}, &fr, nil))
	require.True(t, fr.Fenced)
	require.NoError(t, owner.Do(ctx, http.MethodPost, base+"/lease/fence", map[string]any{"reason": "holder misbehaves"}, &fr, nil))
	require.False(t, fr.Fenced)
	require.Equal(t, "lease_lost", apiCode(holder.Do(ctx, http.MethodPost, "/v1/agent/vpn/connections/"+conn.ID+"/lease/renew", map[string]any{"generation": 3}, nil, nil)))
	err = other.Do(ctx, http.MethodPost, "/v1/agent/vpn/connections/"+conn.ID+"/lease", nil, nil, nil)
	require.Equal(t, "lease_held", apiCode(err), "the fenced holder's term has not ended: %v", err)
	var g4 leaseGrant
	g.Eventually(20*time.Second, "lease granted after the fenced term", func() bool {
		return other.Do(ctx, http.MethodPost, "/v1/agent/vpn/connections/"+conn.ID+"/lease", nil, &g4, nil) == nil
	})
	require.EqualValues(t, 4, g4.Generation)

	// Disabling revokes the lease; the holder learns it at its next renewal.
	require.NoError(t, owner.Do(ctx, http.MethodPost, base+"/disable", nil, nil, nil))
	require.Equal(t, "lease_lost", apiCode(other.Do(ctx, http.MethodPost, "/v1/agent/vpn/connections/"+conn.ID+"/lease/renew", map[string]any{"generation": 4}, nil, nil)))
	var detail struct {
		LeaseHistory []struct {
			Generation int64      `json:"generation"`
			Status     string     `json:"status"`
			AcquiredAt time.Time  `json:"acquired_at"`
			ExpiresAt  time.Time  `json:"expires_at"`
			EndedAt    *time.Time `json:"ended_at"`
		} `json:"lease_history"`
		Statuses []map[string]any `json:"statuses"`
	}
	require.NoError(t, owner.Do(ctx, http.MethodGet, base, nil, &detail, nil))
	require.Len(t, detail.LeaseHistory, 4)
	require.Equal(t, []string{"revoked", "fenced", "released", "expired"},
		[]string{detail.LeaseHistory[0].Status, detail.LeaseHistory[1].Status, detail.LeaseHistory[2].Status, detail.LeaseHistory[3].Status})
	require.Len(t, detail.Statuses, 2)
	// No two holders overlap: each lease starts after the previous one's end
	// (its expiry, or its release).
	for i := len(detail.LeaseHistory) - 1; i > 0; i-- {
		prev, next := detail.LeaseHistory[i], detail.LeaseHistory[i-1]
		end := prev.ExpiresAt
		if prev.Status == "released" && prev.EndedAt != nil {
			end = *prev.EndedAt
		}
		require.False(t, next.AcquiredAt.Before(end), "generation %d starts before generation %d ended", next.Generation, prev.Generation)
	}
	seen = auditSeen(t, owner)
	for _, k := range []string{"vpn_connection.create/ok", "vpn_connection.allowed_nodes/ok", "vpn_route_policy.create/ok", "vpn_connection.enable/ok",
		"vpn_connection.disable/ok", "vpn_lease.fence/ok", "vpn_lease.release/ok", "vpn_lease.acquire/ok", "vpn_status.change/ok"} {
		require.Positive(t, seen[k], "%s in %v", k, seen)
	}

	// A minority leader grants nothing.
	require.NoError(t, owner.Do(ctx, http.MethodPost, base+"/enable", nil, nil, nil))
	l := g.Leader(5 * time.Second)
	g.Isolate(l)
	defer g.Heal()
	cpin, err := pki.PinDER(agents[0].caCert)
	require.NoError(t, err)
	onlyOld, err := apiclient.New(apiclient.Options{Servers: []string{l.APIAddr()}, CAPin: cpin, ServerName: httpapi.ServerNameForCluster(agents[0].cluster),
		MaxRedirects: -1, Certificate: &tls.Certificate{Certificate: [][]byte{agents[0].cert}, PrivateKey: agents[0].priv}})
	require.NoError(t, err)
	defer onlyOld.Close()
	err = onlyOld.Do(ctx, http.MethodPost, "/v1/agent/vpn/connections/"+conn.ID+"/lease", nil, nil, nil)
	require.Contains(t, []string{"no_quorum", "not_leader"}, apiCode(err), "err=%v", err)
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}
