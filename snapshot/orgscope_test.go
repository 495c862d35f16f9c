package snapshot

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/domain"
)

// Peers and self carry the ids of the organizations a node serves — a role
// restricted to it or a delivered service of it — and nothing else of those
// organizations; shared infrastructure carries none. An enabled service the
// node's role may not serve (svcB of orgB on rdp1, restricted to orgA) does
// not put the node in that organization.
func TestPeersCarryServedOrganizationIDsOnly(t *testing.T) {
	st := tableState()
	st.Assignments = append(st.Assignments, RoleAssignment{NodeID: "bare1", Role: domain.RoleRemoteAccess})
	st.Services = append(st.Services, ServiceState{ID: "svcB2", NodeID: "bare1", Type: "remote-access", OrganizationID: "orgB", Enabled: true})
	x, err := NewIndex(st, DefaultConfig())
	require.NoError(t, err)
	want := map[string][]string{"mesh1": nil, "mesh2": nil, "entry1": {"orgA"}, "rdp1": {"orgA"}, "bare1": {"orgB"}, "store1": nil}
	for id, orgs := range want {
		s, err := x.Build(id, opts(1))
		require.NoError(t, err)
		require.Equal(t, orgs, s.Body.Self.Organizations, "self organizations of %s", id)
	}
	s, err := x.Build("mesh1", opts(1))
	require.NoError(t, err)
	seen := map[string][]string{}
	for _, p := range s.Body.Peers {
		seen[p.NodeID] = p.Organizations
	}
	require.NotEmpty(t, seen)
	for id, orgs := range seen {
		require.Equal(t, want[id], orgs, "peer %s of mesh1", id)
	}
	require.Contains(t, seen, "rdp1")
	raw, err := json.Marshal(s.Body.Peers)
	require.NoError(t, err)
	for _, leak := range []string{`"A"`, `"B"`, "alice@a", "resA", "resB", "svcA", "svcB", "vault://"} {
		require.False(t, strings.Contains(string(raw), leak), "peer directory leaks %s: %s", leak, raw)
	}
	// A consumer's uplinks are mesh nodes: no organizations.
	r, err := x.Build("rdp1", opts(1))
	require.NoError(t, err)
	require.NotEmpty(t, r.Body.Uplinks)
	for _, u := range r.Body.Uplinks {
		require.Empty(t, u.Organizations, "uplink %s", u.NodeID)
		require.False(t, slices.Contains([]string{"entry1", "rdp1", "bare1"}, u.NodeID))
	}
}
