package snapshot

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// addOrgAccess gives st's organizations published endpoints backed by
// random nodes (organization 0 none), resources and policies. Every id and
// address names its organization ("oa-<org>-…").
func addOrgAccess(r *rand.Rand, st *State, orgs int) {
	for o := 1; o < orgs; o++ {
		org := orgID(o)
		var eids []string
		for k := 0; k < 3; k++ {
			e := OrgEndpoint{ID: fmt.Sprintf("oa-%02d-ep-%d", o, k), OrganizationID: org, Name: fmt.Sprintf("pool-%d", k),
				Kind: []string{"entry", "egress"}[k%2], Protocol: "tcp"}
			for i := 0; i < 1+r.Intn(6); i++ {
				e.NodeIDs = append(e.NodeIDs, nodeID(r.Intn(len(st.Nodes))))
			}
			st.OrgEndpoints = append(st.OrgEndpoints, e)
			eids = append(eids, e.ID)
		}
		for k := 0; k < 6; k++ {
			st.OrgResources = append(st.OrgResources, OrgResource{ID: fmt.Sprintf("oa-%02d-res-%d", o, k), OrganizationID: org, Protocol: "ssh",
				Address: fmt.Sprintf("oa-%02d-host-%d.lan", o, k), Port: 22, EndpointID: eids[1]})
		}
		for k := 0; k < 4; k++ {
			st.OrgPolicies = append(st.OrgPolicies, OrgPolicy{ID: fmt.Sprintf("oa-%02d-pol-%d", o, k), OrganizationID: org,
				Subjects: []string{fmt.Sprintf("user:oa-%02d-user-%d", o, k)}, ResourceIDs: []string{fmt.Sprintf("oa-%02d-res-%d", o, r.Intn(6))},
				EndpointIDs: []string{eids[r.Intn(3)]}, WindowStart: -1, WindowEnd: -1, RequireMFA: k%2 == 0})
		}
	}
}

// TestPropertyOrgAccessNeedToKnow: a node's snapshot holds the access
// configuration (endpoints, resources, policies) of exactly the
// organizations whose endpoints it backs, only the endpoints it backs, only
// policies that use them, and not one id, name or address of any other
// organization's access configuration.
func TestPropertyOrgAccessNeedToKnow(t *testing.T) {
	const orgs = 6
	for seed := int64(1); seed <= 5; seed++ {
		r := rand.New(rand.NewSource(seed))
		st := genState(r, 200, orgs)
		addOrgAccess(r, st, orgs)
		x, err := NewIndex(st, DefaultConfig())
		require.NoError(t, err)
		backs := map[string]map[string]bool{} // node → endpoint ids
		for _, e := range st.OrgEndpoints {
			for _, n := range e.NodeIDs {
				if backs[n] == nil {
					backs[n] = map[string]bool{}
				}
				backs[n][e.ID] = true
			}
		}
		withAccess := 0
		for _, id := range x.Nodes() {
			s, err := x.Build(id, opts(1))
			require.NoError(t, err)
			raw, err := json.Marshal(s.Body)
			require.NoError(t, err)
			wantOrgs := map[string]bool{}
			for eid := range backs[id] {
				wantOrgs["org-"+eid[3:5]] = true
			}
			gotOrgs := map[string]bool{}
			for _, acc := range s.Body.OrgAccess {
				gotOrgs[acc.OrganizationID] = true
				prefix := "oa-" + strings.TrimPrefix(acc.OrganizationID, "org-") + "-"
				var eids []string
				for _, e := range acc.Endpoints {
					require.True(t, backs[id][e.ID], "seed %d node %s: endpoint %s it does not back", seed, id, e.ID)
					eids = append(eids, e.ID)
				}
				for _, p := range acc.Policies {
					require.True(t, strings.HasPrefix(p.ID, prefix), "policy of another organization")
					require.True(t, slices.ContainsFunc(p.EndpointIDs, func(e string) bool { return slices.Contains(eids, e) }), "policy uses no endpoint of the node")
				}
				for _, res := range acc.Resources {
					require.True(t, strings.HasPrefix(res.ID, prefix), "resource of another organization")
				}
				// Every policy of the organization that uses a backed endpoint is there.
				for _, p := range st.OrgPolicies {
					if p.OrganizationID == acc.OrganizationID && slices.ContainsFunc(p.EndpointIDs, func(e string) bool { return backs[id][e] }) {
						require.True(t, slices.ContainsFunc(acc.Policies, func(q OrgPolicyRef) bool { return q.ID == p.ID }), "policy %s missing", p.ID)
					}
				}
			}
			require.Equal(t, wantOrgs, gotOrgs, "seed %d node %s", seed, id)
			// Nothing of an organization the node does not serve, anywhere in the body.
			for o := 1; o < orgs; o++ {
				if !wantOrgs[orgID(o)] {
					require.NotContains(t, string(raw), fmt.Sprintf("oa-%02d-", o), "seed %d node %s learns of organization %d", seed, id, o)
				}
			}
			if len(s.Body.OrgAccess) > 0 {
				withAccess++
				require.Contains(t, s.Scope, ScopeServices)
			}
		}
		require.Greater(t, withAccess, 5, "seed %d: some nodes serve organizations", seed)
		require.Less(t, withAccess, len(x.Nodes()), "seed %d: most nodes serve none", seed)
	}
}
