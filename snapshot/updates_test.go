package snapshot

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
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
