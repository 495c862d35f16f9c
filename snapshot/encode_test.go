package snapshot

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestEncodeAwkwardValues(t *testing.T) {
	zone := time.FixedZone("X", 3*3600)
	s := Snapshot{ClusterID: "c<1>&\"q\"", NodeID: "nöde\u2028\t", Version: 1, IssuedAt: time.Date(2026, 1, 2, 3, 4, 5, 6, zone),
		ExpiresAt: time.Date(2026, 1, 2, 4, 4, 5, 6, zone), Scope: []string{"z", "a"},
		Body: Body{
			Self:            Identity{NodeID: "nöde\u2028\t"},
			Roles:           []RoleGrant{{Role: "core-mesh", Policy: json.RawMessage(" { \"a\" : \"<b>\" } ")}},
			GossipKey:       &GossipKey{Key: []byte{1}},
			RoutePolicy:     json.RawMessage(`{"k":"\u00e9"}`),
			TokenValidation: &TokenValidation{MaxClockSkewSecs: -3},
		}}
	p, err := Encode(s)
	require.NoError(t, err)
	require.Contains(t, string(p), `"scope":["a","z"]`, "scope sorted")
	require.Contains(t, string(p), `"issued_at":"2026-01-02T00:04:05.000000006Z"`, "times in UTC")
	require.Contains(t, string(p), `"policy":{"a":"\u003cb\u003e"}`, "embedded JSON compacted")
	back, err := DecodeSnapshot(p)
	require.NoError(t, err)
	again, err := Encode(back)
	require.NoError(t, err)
	require.Equal(t, string(p), string(again), "decode then encode is the identity on canonical bytes")

	_, err = Encode(Snapshot{Body: Body{RoutePolicy: json.RawMessage(`{broken`)}})
	require.Error(t, err)
	for _, bad := range []string{`{"format":2,"cluster_id":"c","node_id":"n","version":1}`, `{"format":1,"node_id":"n","version":1}`, `[]`, ``} {
		_, err := DecodeSnapshot([]byte(bad))
		require.ErrorIs(t, err, ErrMalformed, bad)
	}
}

// TestDecodeMatchesEncodingJSON: on Encode's output, DecodeSnapshot (the
// encoding/json v2 prototype) gives exactly what encoding/json gives, for the
// snapshots of every node of a generated cluster.
func TestDecodeMatchesEncodingJSON(t *testing.T) {
	x, err := NewIndex(benchState(300), DefaultConfig())
	require.NoError(t, err)
	n := 0
	for _, id := range x.Nodes() {
		s, err := x.Build(id, opts(1))
		require.NoError(t, err)
		p, err := Encode(s)
		require.NoError(t, err)
		var w wireSnapshot
		require.NoError(t, json.Unmarshal(p, &w))
		w.IssuedAt, w.ExpiresAt = w.IssuedAt.UTC(), w.ExpiresAt.UTC()
		got, err := DecodeSnapshot(p)
		require.NoError(t, err)
		require.Equal(t, w.Snapshot, got, id)
		n++
	}
	require.Greater(t, n, 100)
	// Stricter than encoding/json on what Encode never writes.
	for _, bad := range []string{
		`{"format":1,"cluster_id":"c","cluster_id":"d","node_id":"n","version":1}`, // duplicate member
		"{\"format\":1,\"cluster_id\":\"c\xff\",\"node_id\":\"n\",\"version\":1}",  // invalid UTF-8
	} {
		_, err := DecodeSnapshot([]byte(bad))
		require.ErrorIs(t, err, ErrMalformed, bad)
	}
}
