package snapshot

import (
	"encoding/json"
	"fmt"
	"reflect"
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

// fill sets every field reachable from v (a pointer) to a non-zero value:
// strings, numbers, booleans, one element in every slice, a value behind
// every pointer, "{}"-like documents in raw JSON. variant changes the values.
func fill(v reflect.Value, variant int) {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		fill(v.Elem(), variant)
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Date(2030, 1, 2, 3, 4, 5, 6+variant, time.UTC)))
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), variant+i)
			}
		}
	case reflect.Slice:
		if v.Type() == reflect.TypeFor[json.RawMessage]() {
			v.SetBytes([]byte(fmt.Sprintf(`{"k":[%d,"\u00e9",null,true]}`, variant)))
			return
		}
		if v.Type().Elem().Kind() == reflect.Uint8 {
			v.SetBytes([]byte{byte(variant), 0xff, 0})
			return
		}
		s := reflect.MakeSlice(v.Type(), 2, 2)
		fill(s.Index(0), variant)
		fill(s.Index(1), variant+1)
		v.Set(s)
	case reflect.String:
		v.SetString(fmt.Sprintf("s\"%d\u2028<é>", variant))
	case reflect.Int, reflect.Int64, reflect.Int32:
		v.SetInt(int64(-variant - 1))
	case reflect.Uint64, reflect.Uint32, reflect.Uint:
		v.SetUint(uint64(variant) + 1<<40)
	case reflect.Bool:
		v.SetBool(true)
	default:
		panic("fill: unhandled kind " + v.Kind().String())
	}
}

// TestDecodeMatchesEncodingJSON: on Encode's output, DecodeSnapshot gives
// exactly what encoding/json gives: for a snapshot with every field of every
// type set (by reflection, so fields added to the model are covered), for one
// with nulls where Encode writes them, and for the snapshots of every node of
// a generated cluster; and it refuses malformed input.
func TestDecodeMatchesEncodingJSON(t *testing.T) {
	same := func(p []byte, what string) {
		t.Helper()
		var w wireSnapshot
		require.NoError(t, json.Unmarshal(p, &w), what)
		w.IssuedAt, w.ExpiresAt = w.IssuedAt.UTC(), w.ExpiresAt.UTC()
		got, err := DecodeSnapshot(p)
		require.NoError(t, err, what)
		require.Equal(t, w.Snapshot, got, what)
	}
	for variant := range 3 {
		var s Snapshot
		fill(reflect.ValueOf(&s), variant)
		p, err := Encode(s)
		require.NoError(t, err)
		same(p, fmt.Sprintf("filled %d", variant))
	}
	// Nulls Encode writes (a nil document without omitempty) and empty lists.
	p, err := Encode(Snapshot{ClusterID: "c", NodeID: "n", Version: 1, Scope: []string{},
		Body: Body{EntryPolicies: []EntryPolicy{{}}, Peers: []Peer{{}}, Updates: &Updates{}}})
	require.NoError(t, err)
	require.Contains(t, string(p), `"policy":null`)
	same(p, "nulls")
	x, err := NewIndex(benchState(300), DefaultConfig())
	require.NoError(t, err)
	n := 0
	for _, id := range x.Nodes() {
		s, err := x.Build(id, opts(1))
		require.NoError(t, err)
		p, err := Encode(s)
		require.NoError(t, err)
		same(p, id)
		n++
	}
	require.Greater(t, n, 100)
	// Stricter than encoding/json on what Encode never writes; malformed
	// input is refused.
	for _, bad := range []string{
		`{"format":1,"cluster_id":"c","cluster_id":"d","node_id":"n","version":1}`,   // duplicate member
		"{\"format\":1,\"cluster_id\":\"c\xff\",\"node_id\":\"n\",\"version\":1}",    // invalid UTF-8
		`{"format":1,"cluster_id":"c","node_id":"n","version":1} x`,                  // trailing data
		`{"format":1,"cluster_id":"c","node_id":"n","version":1}{}`,                  // a second value
		`{"format":1,"cluster_id":"c","node_id":"n","version":1.5}`,                  // not an integer
		`{"format":1,"cluster_id":"c","node_id":"n","version":-1}`,                   // negative version
		`{"format":1,"cluster_id":"c","node_id":"n","version":1,"body":{"self":[]}}`, // wrong type
		`{"format":1,"cluster_id":"c","node_id":"n","version":1,"body":{"gossip_key":{"key":"%%%"}}}`,
		`{"format":1,"cluster_id":"c","node_id":"n","version":1,"issued_at":"yesterday"}`,
		`{"format":1,"cluster_id":"c","node_id":"n","version":1`, // truncated
	} {
		_, err := DecodeSnapshot([]byte(bad))
		require.ErrorIs(t, err, ErrMalformed, bad)
	}
	// Unknown members are skipped, escaped names matched.
	s, err := DecodeSnapshot([]byte(`{"format":1,"extra":{"a":[1,{}]},"cluster_id":"c","node\u005fid":"n","version":7}`))
	require.NoError(t, err)
	require.Equal(t, "n", s.NodeID)
	require.Equal(t, uint64(7), s.Version)
}
