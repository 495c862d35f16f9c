package snapshot

import (
	"math/rand"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCARootsInEveryBody: the cluster's CA roots reach every node's body
// (base scope), sorted, and change the digest, so a rotation re-signs every
// node.
func TestCARootsInEveryBody(t *testing.T) {
	st := genState(rand.New(rand.NewSource(7)), 40, 2)
	x0, err := NewIndex(st, DefaultConfig())
	require.NoError(t, err)
	ids := x0.Nodes()
	require.NotEmpty(t, ids)
	before, err := x0.Digest(ids[0])
	require.NoError(t, err)

	st.Cluster.CARoots = []CARoot{{KeyID: "k2", Status: CARootActive, Certificate: []byte("new")}, {KeyID: "k1", Status: CARootPrevious, Certificate: []byte("old")}}
	x, err := NewIndex(st, DefaultConfig())
	require.NoError(t, err)
	after, err := x.Digest(ids[0])
	require.NoError(t, err)
	require.NotEqual(t, before, after)
	for _, id := range ids {
		s, err := x.Build(id, opts(1))
		require.NoError(t, err)
		require.Equal(t, []CARoot{{KeyID: "k1", Status: CARootPrevious, Certificate: []byte("old")}, {KeyID: "k2", Status: CARootActive, Certificate: []byte("new")}}, s.Body.CARoots, id)
		signed, err := Sign(s, testKey(1), 0)
		require.NoError(t, err)
		back, err := DecodeSnapshot(signed.Payload)
		require.NoError(t, err)
		require.Equal(t, s.Body.CARoots, back.Body.CARoots)
	}
}

// TestCARootsRefused: malformed root sets are refused when indexing.
func TestCARootsRefused(t *testing.T) {
	for name, roots := range map[string][]CARoot{
		"no active":    {{KeyID: "k1", Status: CARootPrevious, Certificate: []byte("a")}},
		"two active":   {{KeyID: "k1", Status: CARootActive, Certificate: []byte("a")}, {KeyID: "k2", Status: CARootActive, Certificate: []byte("b")}},
		"duplicate":    {{KeyID: "k1", Status: CARootActive, Certificate: []byte("a")}, {KeyID: "k1", Status: CARootPrevious, Certificate: []byte("b")}},
		"no cert":      {{KeyID: "k1", Status: CARootActive}},
		"bad status":   {{KeyID: "k1", Status: CARootActive, Certificate: []byte("a")}, {KeyID: "k2", Status: "retired", Certificate: []byte("b")}},
		"empty key id": {{Status: CARootActive, Certificate: []byte("a")}},
	} {
		t.Run(name, func(t *testing.T) {
			st := genState(rand.New(rand.NewSource(7)), 5, 1)
			st.Cluster.CARoots = roots
			_, err := NewIndex(st, DefaultConfig())
			require.ErrorIs(t, err, ErrInvalidState)
		})
	}
}
