package snapshot

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/domain"
)

// The updates section: release roots and the blocklist for every node, each
// node's own desired versions only, absent without release roots.
func TestUpdatesSection(t *testing.T) {
	st := tableState()
	x, err := NewIndex(st, DefaultConfig())
	require.NoError(t, err)
	s, err := x.Build("rdp1", opts(5))
	require.NoError(t, err)
	require.Nil(t, s.Body.Updates, "no release roots, no section")

	roots := ReleaseRoots{Version: 2, Threshold: 2, Keys: [][]byte{bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)}}
	st.Updates = &UpdateState{Roots: roots,
		Desired: map[string][]DesiredVersion{"rdp1": {
			{Product: "rap-node-agent", Version: "1.4.0", ManifestDigest: "sha256:aa", RolloutID: "r1", DeadlineSeconds: 60},
			{Product: "rdp-worker", Version: "2.0.0", ManifestDigest: "sha256:bb", AllowDowngrade: true}}},
		Blocklist: []BlockedVersion{{Product: "rap-node-agent", Version: "1.3.9"}, {Product: "rap-node-agent", Version: "1.3.1"}}}
	x, err = NewIndex(st, DefaultConfig())
	require.NoError(t, err)
	s, err = x.Build("rdp1", opts(6))
	require.NoError(t, err)
	require.NotNil(t, s.Body.Updates)
	require.Equal(t, roots, s.Body.Updates.ReleaseRoots)
	require.Len(t, s.Body.Updates.Desired, 2)
	require.Equal(t, "1.3.1", s.Body.Updates.Blocklist[0].Version, "sorted")
	for _, n := range st.Nodes {
		if n.ID == "rdp1" {
			continue
		}
		o, err := x.Build(n.ID, opts(6))
		if err != nil {
			continue // revoked or non-member nodes get nothing at all
		}
		require.NotNil(t, o.Body.Updates)
		require.Empty(t, o.Body.Updates.Desired, "%s sees another node's desired versions", n.ID)
		require.Len(t, o.Body.Updates.Blocklist, 2)
	}
	// Signed, encoded, verified and decoded: the section survives intact.
	sg, err := Sign(s, testKey(1), 0)
	require.NoError(t, err)
	got, err := DecodeSnapshot(sg.Payload)
	require.NoError(t, err)
	require.Equal(t, s.Body.Updates, got.Body.Updates)

	st.Updates.Desired["rdp1"] = append(st.Updates.Desired["rdp1"], DesiredVersion{Product: "rdp-worker", Version: "2.1.0"})
	_, err = NewIndex(st, DefaultConfig())
	require.ErrorIs(t, err, ErrInvalidState, "two desired versions of one product")
	st.Updates = &UpdateState{Roots: ReleaseRoots{Threshold: 3, Keys: roots.Keys}}
	_, err = NewIndex(st, DefaultConfig())
	require.ErrorIs(t, err, ErrInvalidState)
}

// TestUpdateMirrors: every node's updates section lists the cluster's
// update-cache nodes (nearest region first, never itself); an update-cache
// node also gets the releases desired anywhere in the cluster to mirror,
// and nothing else does.
func TestUpdateMirrors(t *testing.T) {
	st := tableState()
	key := bytes.Repeat([]byte{9}, 32)
	for _, c := range []struct{ id, region string }{{"cacheUS", "us"}, {"cacheEU", "eu"}} {
		st.Nodes = append(st.Nodes, Node{ID: c.id, Region: c.region, Endpoints: []string{"update-cache+https://" + c.id + ":8443"}, NoisePublicKey: key,
			IdentityStatus: domain.IdentityActive, Memberships: []NodeMembership{{ClusterID: "c1", Status: domain.MembershipActive}}})
		st.Assignments = append(st.Assignments, RoleAssignment{NodeID: c.id, Role: domain.RoleUpdateCache})
		key = bytes.Repeat([]byte{10}, 32)
	}
	st.Updates = &UpdateState{Roots: ReleaseRoots{Version: 1, Threshold: 1, Keys: [][]byte{bytes.Repeat([]byte{1}, 32)}},
		Desired: map[string][]DesiredVersion{
			"rdp1":  {{Product: "rap-node-agent", Version: "1.4.0", ManifestDigest: "sha256:aa", RolloutID: "r1"}},
			"mesh2": {{Product: "rap-node-agent", Version: "1.4.0", ManifestDigest: "sha256:aa", RolloutID: "r1"}},
			"mesh1": {{Product: "rap-node-agent", Version: "1.3.0", ManifestDigest: "sha256:bb"}}}}
	x, err := NewIndex(st, DefaultConfig())
	require.NoError(t, err)
	build := func(id string) *Updates {
		s, err := x.Build(id, opts(1))
		require.NoError(t, err)
		require.NotNil(t, s.Body.Updates)
		return s.Body.Updates
	}
	eu, us := build("rdp1"), build("mesh2")
	require.Equal(t, []StorageEndpoint{{NodeID: "cacheEU", Endpoints: []string{"update-cache+https://cacheEU:8443"}},
		{NodeID: "cacheUS", Endpoints: []string{"update-cache+https://cacheUS:8443"}}}, eu.Mirrors, "same region first")
	require.Equal(t, "cacheUS", us.Mirrors[0].NodeID, "same region first")
	require.Empty(t, eu.Mirror, "only update-cache nodes mirror")
	c := build("cacheEU")
	require.Equal(t, []StorageEndpoint{{NodeID: "cacheUS", Endpoints: []string{"update-cache+https://cacheUS:8443"}}}, c.Mirrors, "never itself")
	require.Equal(t, []DesiredVersion{{Product: "rap-node-agent", Version: "1.3.0", ManifestDigest: "sha256:bb"},
		{Product: "rap-node-agent", Version: "1.4.0", ManifestDigest: "sha256:aa"}}, c.Mirror, "each release desired anywhere, once, sorted")
}
