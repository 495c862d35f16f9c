package snapshot

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rap-fabric/core/domain"
	"github.com/stretchr/testify/require"
)

// requireFastMatches fails unless the fast path accepts p and decodes it to
// exactly (reflect.DeepEqual: nil vs empty, every byte) what jsonv2 gives.
func requireFastMatches(t testing.TB, p []byte, what string) {
	t.Helper()
	fast, ok := decodeCanonical(p)
	require.True(t, ok, "%s: fast path refused a canonical payload: %s", what, p)
	slow, err := decodeJSON(p)
	require.NoError(t, err, what)
	if !reflect.DeepEqual(fast, slow) {
		require.Equal(t, slow, fast, what) // for the diff
		t.Fatalf("%s: fast and jsonv2 results differ (nil vs empty?)\nfast: %#v\njsonv2: %#v", what, fast, slow)
	}
}

// richState is a generated cluster with every optional section in use: CA
// roots, release roots with desired versions, organizations' published
// endpoints, and names that Encode has to escape.
func richState(seed int64, n int) *State {
	const orgs = 6
	r := rand.New(rand.NewSource(seed))
	st := genState(r, n, orgs)
	addOrgAccess(r, st, orgs)
	st.Cluster.CARoots = []CARoot{{KeyID: "k2", Status: CARootActive, Certificate: []byte("new root certificate")},
		{KeyID: "k1", Status: CARootPrevious, Certificate: []byte("old")}}
	st.Updates = &UpdateState{
		Roots:     ReleaseRoots{Version: 2, Threshold: 1, Keys: [][]byte{bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)}},
		Desired:   map[string][]DesiredVersion{},
		Blocklist: []BlockedVersion{{Product: "rap-node-agent", Version: "1.3.9"}},
	}
	for i := 0; i < n; i += 7 {
		st.Updates.Desired[nodeID(i)] = []DesiredVersion{{Product: "rap-node-agent", Version: "1.4.0",
			ManifestDigest: "sha256:aa", RolloutID: "r1", Wave: i % 3, AllowDowngrade: i%2 == 0, DeadlineSeconds: 60}}
	}
	st.Organizations[1].Name = `R&D <lab> "ü" ` + "\u2028\t\\"
	st.Organizations[2].Name = "Ωmega 😀"
	return st
}

// TestFastDecodeMatchesJSONv2: for the snapshot of every node of several
// generated clusters the fast path accepts Encode's output and gives what
// jsonv2 gives.
func TestFastDecodeMatchesJSONv2(t *testing.T) {
	states := map[string]*State{"bench300": benchState(300), "table": tableState(), "rich": richState(3, 400)}
	seen := map[string]bool{}
	for name, st := range states {
		x, err := NewIndex(st, DefaultConfig())
		require.NoError(t, err, name)
		for _, id := range x.Nodes() {
			s, err := x.Build(id, opts(7))
			require.NoError(t, err)
			p, err := Encode(s)
			require.NoError(t, err)
			requireFastMatches(t, p, name+"/"+id)
			b := s.Body
			for section, present := range map[string]bool{"peers": len(b.Peers) > 0, "uplinks": len(b.Uplinks) > 0,
				"services": len(b.Services) > 0, "updates": b.Updates != nil, "org_access": len(b.OrgAccess) > 0,
				"ca_roots": len(b.CARoots) > 0, "cache_nodes": len(b.CacheNodes) > 0, "entry": b.TokenValidation != nil,
				"escaped": bytes.Contains(p, []byte(`\u0026`)), "mirror": b.Updates != nil && len(b.Updates.Mirror) > 0} {
				seen[section] = seen[section] || present
			}
		}
	}
	for _, section := range []string{"peers", "uplinks", "services", "updates", "org_access", "ca_roots", "cache_nodes", "entry", "escaped"} {
		require.True(t, seen[section], "no generated snapshot has %s", section)
	}

	// Nulls and empty lists where Encode writes them, times with and
	// without fractions, extreme integers.
	for i, s := range []Snapshot{
		{ClusterID: "c", NodeID: "n", Version: 1, Scope: []string{},
			Body: Body{EntryPolicies: []EntryPolicy{{}}, Peers: []Peer{{}}, Updates: &Updates{}, OrgAccess: []OrgAccess{{}}}},
		{ClusterID: "c", NodeID: "n", Version: ^uint64(0), Epoch: 0,
			IssuedAt: time.Date(2024, 2, 29, 23, 59, 59, 100, time.UTC), ExpiresAt: time.Date(9999, 12, 31, 0, 0, 0, 999999999, time.UTC),
			Body: Body{TokenValidation: &TokenValidation{MaxClockSkewSecs: -1 << 63}, Resources: []ResourceRef{{Port: 1<<63 - 1}},
				GossipKey: &GossipKey{Key: []byte{}}, Updates: &Updates{ReleaseRoots: ReleaseRoots{Keys: [][]byte{nil, {}, {1}, {1, 2}, {1, 2, 3}}}}}},
		{ClusterID: "c", NodeID: "n", Version: 1, IssuedAt: time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
			Body: Body{Self: Identity{Organizations: []string{""}}, RoutePolicy: json.RawMessage(`[1,-0.5e+3,"\ud83d\ude00\u00e9\n",{"a":{"b":[]},"c":{}},true,false,null,0]`)}},
	} {
		p, err := Encode(s)
		require.NoError(t, err)
		requireFastMatches(t, p, fmt.Sprintf("special %d", i))
	}
}

// TestFastDecodeComplete: with every field of every type set (by
// reflection: a field added to model.go is covered without touching this
// test), the fast path accepts Encode's output and gives what jsonv2 gives.
// A field the fast path does not decode makes it refuse the payload, and
// this test fail.
func TestFastDecodeComplete(t *testing.T) {
	for variant := range 3 {
		var s Snapshot
		fill(reflect.ValueOf(&s), variant)
		p, err := Encode(s)
		require.NoError(t, err)
		requireFastMatches(t, p, fmt.Sprintf("filled %d", variant))
		// Every field is set, so every struct's every member is in p: the
		// decoded snapshot re-encodes to the same bytes.
		w, _ := decodeCanonical(p)
		again, err := Encode(w.Snapshot)
		require.NoError(t, err)
		require.Equal(t, string(p), string(again))
	}
}

// TestFastDecodeRefuses: the fast path refuses (leaving them to jsonv2)
// payloads that are not exactly canonical, including ones jsonv2 accepts.
func TestFastDecodeRefuses(t *testing.T) {
	x, err := NewIndex(tableState(), DefaultConfig())
	require.NoError(t, err)
	s, err := x.Build("rdp1", opts(5))
	require.NoError(t, err)
	good, err := Encode(s)
	require.NoError(t, err)
	_, ok := decodeCanonical(good)
	require.True(t, ok)
	head := `{"format":1,"cluster_id":"c","node_id":"n","version":1`
	for _, bad := range []string{
		"", "{}x", " {}", "{} ", `{"format":1 }`, head + `,"epoch":1.0}`, head + `,"epoch":1e2}`, head + `,"epoch":-1}`,
		head + `,"epoch":18446744073709551616}`, head + `,"epoch":01}`, head + `,"format":1}`,
		`{"cluster_id":"c","format":1}`, head + `,"extra":1}`, head + `,}`, `{,"format":1}`,
		head + `,"issued_at":"2026-02-29T00:00:00Z"}`, head + `,"issued_at":"2026-01-01T24:00:00Z"}`,
		head + `,"issued_at":"2026-01-01T00:00:00+00:00"}`, head + `,"issued_at":"2026-01-01T00:00:00.Z"}`,
		head + `,"issued_at":"2026-01-01T00:00:00.1234567890Z"}`, head + `,"issued_at":"2026-01-01t00:00:00Z"}`,
		head + `,"body":{"self":{"noise_public_key":"AQ="}}}`, head + `,"body":{"self":{"noise_public_key":"AR=="}}}`,
		head + `,"body":{"self":{"noise_public_key":"AQ==AQ=="}}}`, head + `,"body":{"self":{"noise_public_key":"A\nQ=="}}}`,
		head + `,"body":{"self":{"name":"\ud800"}}}`, head + `,"body":{"self":{"name":"\x"}}}`, head + ",\"body\":{\"self\":{\"name\":\"\xff\"}}}",
		head + `,"body":{"route_policy":{"a":1,"a":2}}}`, head + `,"body":{"route_policy":{"\u0061":1}}}`,
		head + `,"body":{"route_policy":{"a": 1}}}`, head + `,"body":{"route_policy":01}}`, head + `,"body":{"route_policy":-}}`,
		head + `,"body":{"route_policy":[1,]}}`, head + `,"body":{"route_policy":` + nested(maxRawDepth+2) + `}}`,
		head + `,"body":{"self":null}}`, head + `,"body":{"roles":[{"role":"a"},]}}`, head + `,"body":{"roles":[null]}}`,
		head + `,"body":{"telemetry":[{"enabled":1}]}}`, head + `,"body":{"self":{"name":null}}}`,
		head + `,"body":{"token_validation":{"max_clock_skew_secs":-0}}}`,
		head + `,"body":{"token_validation":{"max_clock_skew_secs":-9223372036854775809}}}`,
	} {
		_, ok := decodeCanonical([]byte(bad))
		require.False(t, ok, bad)
	}
	for i := range good {
		_, ok := decodeCanonical(good[:i])
		require.False(t, ok, "truncated at %d", i)
	}
}

// nested returns n nested JSON arrays.
func nested(n int) string {
	return string(bytes.Repeat([]byte("["), n)) + string(bytes.Repeat([]byte("]"), n))
}

// TestFastDecodeNoAliasing: decoded lists share backing arrays but are
// capped, so appending to one never changes another.
func TestFastDecodeNoAliasing(t *testing.T) {
	p, err := Encode(Snapshot{ClusterID: "c", NodeID: "n", Version: 1, Scope: []string{"a"},
		Body: Body{Self: Identity{Endpoints: []string{"e"}, NoisePublicKey: []byte{1}, IdentityPublicKey: []byte{2}},
			Peers: []Peer{{RoleHints: []domain.Role{"r1"}}, {RoleHints: []domain.Role{"r2"}}}}})
	require.NoError(t, err)
	w, ok := decodeCanonical(p)
	require.True(t, ok)
	_ = append(w.Scope, "x")
	_ = append(w.Body.Self.NoisePublicKey, 9)
	_ = append(w.Body.Peers[0].RoleHints, "x")
	require.Equal(t, []string{"e"}, w.Body.Self.Endpoints)
	require.Equal(t, []byte{2}, w.Body.Self.IdentityPublicKey)
	require.Equal(t, []domain.Role{"r2"}, w.Body.Peers[1].RoleHints)
}

// FuzzFastDecodeMatchesJSONv2: on any input, whatever the fast path accepts
// jsonv2 accepts too, with the identical result; what jsonv2 refuses, the
// fast path refuses. Seeds live in testdata/fuzz/FuzzFastDecodeMatchesJSONv2.
func FuzzFastDecodeMatchesJSONv2(f *testing.F) {
	sg, err := Unmarshal(fuzzWire(f), 0)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sg.Payload)
	var s Snapshot
	fill(reflect.ValueOf(&s), 1)
	p, err := Encode(s)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(p)
	f.Fuzz(func(t *testing.T, payload []byte) { requireFastAgrees(t, payload) })
}

// requireFastAgrees fails if the fast path accepts payload and jsonv2
// refuses it or decodes it to something else.
func requireFastAgrees(t testing.TB, payload []byte) (accepted bool) {
	t.Helper()
	fast, ok := decodeCanonical(payload)
	if !ok {
		return false
	}
	slow, err := decodeJSON(payload)
	if err != nil {
		t.Fatalf("fast path accepted what jsonv2 refuses (%v): %q", err, payload)
	}
	if !reflect.DeepEqual(fast, slow) {
		t.Fatalf("fast path and jsonv2 differ on %q:\nfast:   %#v\njsonv2: %#v", payload, fast, slow)
	}
	return true
}

// TestFastDecodeTimesAndNumbers: on times and integers, valid or not,
// written by Encode or not, whatever the fast path accepts it decodes as
// jsonv2 does; and it accepts every time Encode writes.
func TestFastDecodeTimesAndNumbers(t *testing.T) {
	head := `{"format":1,"cluster_id":"c","node_id":"n","version":1,`
	r := rand.New(rand.NewSource(1))
	for range 2000 {
		tm := time.Date(r.Intn(10000), time.Month(1+r.Intn(12)), 1+r.Intn(31), r.Intn(24), r.Intn(60), r.Intn(60), 0, time.UTC)
		switch r.Intn(3) {
		case 1:
			tm = tm.Add(time.Duration(r.Intn(1000)) * time.Millisecond)
		case 2:
			tm = tm.Add(time.Duration(r.Int63n(int64(time.Second))))
		}
		p := []byte(head + `"issued_at":"` + tm.Format(time.RFC3339Nano) + `"}`)
		require.True(t, requireFastAgrees(t, p), "%s", p)
	}
	for _, ts := range []string{"0000-02-29T00:00:00Z", "1900-02-29T00:00:00Z", "2000-02-29T00:00:00Z", "2100-02-29T00:00:00Z",
		"2026-04-31T00:00:00Z", "2026-12-31T23:59:60Z", "2026-00-01T00:00:00Z", "2026-01-00T00:00:00Z", "2026-01-01T00:60:00Z",
		"2026-01-01T00:00:00.000000000Z", "2026-01-01T00:00:00.1Z", "2026-01-01T00:00:00,1Z", "2026-1-01T00:00:00Z",
		"2026-01-01T00:00:00z", "2026-01-01 00:00:00Z", "+2026-01-01T00:00:00Z", "2026-01-01T00:00:00.-1Z", "2026-01-01T0:00:00Z"} {
		requireFastAgrees(t, []byte(head+`"issued_at":"`+ts+`"}`))
	}
	accepted := map[string]int{}
	for _, n := range []string{"0", "1", "-1", "9223372036854775807", "9223372036854775808", "-9223372036854775808",
		"-9223372036854775809", "18446744073709551615", "18446744073709551616", "-0", "00", "1.0", "1e3", "+1", "0x1"} {
		for _, member := range []string{`"epoch":`, `"body":{"resources":[{"port":`} {
			p := head + member + n + "}"
			if strings.HasPrefix(member, `"body"`) {
				p += "]}}"
			}
			if requireFastAgrees(t, []byte(p)) {
				accepted[n]++
			}
		}
	}
	require.Equal(t, map[string]int{"0": 2, "1": 2, "-1": 1, "9223372036854775807": 2, "9223372036854775808": 1,
		"-9223372036854775808": 1, "18446744073709551615": 1}, accepted)
}

// BenchmarkDecodeSnapshot is DecodeSnapshot alone on BenchmarkVerify's
// payload: the fast path, and jsonv2 (the fallback) for comparison.
func BenchmarkDecodeSnapshot(b *testing.B) {
	x, err := NewIndex(benchState(1000), DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	var p []byte
	for _, n := range x.Nodes() {
		s, _ := x.Build(n, opts(1))
		if len(s.Body.Services) > 0 && len(s.Body.Uplinks) > 0 {
			p, _ = Encode(s)
			break
		}
	}
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := decodeCanonical(p); !ok {
				b.Fatal("not canonical")
			}
		}
	})
	b.Run("jsonv2", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeJSON(p); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// FuzzFastDecodeEncoded: for snapshots holding arbitrary values (strings
// with any bytes, integers, times, keys, embedded documents), the fast path
// accepts Encode's output and decodes it as jsonv2 does. Embedded documents
// may hold what it leaves to jsonv2 (duplicate names, lone surrogates), so
// with one it only has to agree with jsonv2.
func FuzzFastDecodeEncoded(f *testing.F) {
	f.Add("c1", int64(3389), uint64(7), int64(1767225600), int64(0), []byte(`{"a":[1,"x"]}`), []byte{1, 2, 3})
	f.Add("<&>\"\\\u2028\xff\x00é😀", int64(-1), ^uint64(0), int64(-62135596800), int64(999999999), []byte(` { "a" : "\u00e9\ud83d\ude00" } `), []byte{})
	f.Add("", int64(0), uint64(0), int64(253402300799), int64(1), []byte(`{"a":1,"a":2}`), []byte(nil))
	f.Fuzz(func(t *testing.T, str string, n int64, u uint64, sec, nsec int64, raw, key []byte) {
		at := time.Unix(sec, nsec)
		s := Snapshot{ClusterID: str, NodeID: str + "n", Version: u, Epoch: u / 3, IssuedAt: at, ExpiresAt: at.Add(time.Hour),
			Scope: []string{str, "base"},
			Body: Body{
				Self:       Identity{NodeID: str, Name: str, NoisePublicKey: key, Organizations: []string{str}},
				Membership: Membership{ClusterID: str, Status: domain.MembershipStatus(str)},
				Peers:      []Peer{{NodeID: str, NoisePublicKey: key, IdentityPublicKey: key, RoleHints: []domain.Role{domain.Role(str)}}},
				Resources:  []ResourceRef{{ID: str, Port: int(n)}},
				Updates: &Updates{ReleaseRoots: ReleaseRoots{Version: u, Threshold: int(n), Keys: [][]byte{key, nil}},
					Desired: []DesiredVersion{{Product: str, Wave: int(n), DeadlineSeconds: -int(n)}}},
				OrgAccess: []OrgAccess{{OrganizationID: str, Policies: []OrgPolicyRef{{WindowStart: int(n), RequireMFA: n%2 == 0}}}},
			}}
		p, err := Encode(s)
		if err != nil {
			return // a time JSON cannot carry
		}
		requireFastMatches(t, p, "encoded")
		s.Body.RoutePolicy = raw
		s.Body.Roles = []RoleGrant{{Role: domain.Role(str), Policy: raw}}
		if p, err = Encode(s); err == nil {
			requireFastAgrees(t, p)
		}
	})
}
