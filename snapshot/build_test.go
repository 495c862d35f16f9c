package snapshot

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"math/rand"
	"slices"
	"strings"
	"testing"

	"github.com/rap-fabric/core/domain"
	"github.com/stretchr/testify/require"
)

func TestCanonicalEncodingDeterministic(t *testing.T) {
	a := genState(rand.New(rand.NewSource(42)), 120, 4)
	b := genState(rand.New(rand.NewSource(42)), 120, 4)
	// Same content, different input order and JSON whitespace/key order.
	slices.Reverse(b.Nodes)
	slices.Reverse(b.Assignments)
	slices.Reverse(b.Services)
	slices.Reverse(b.Resources)
	b.RoutePolicy = json.RawMessage("{\n  \"prefer_region\": true,\n  \"max_hops\": 4\n}")
	for i := range b.Nodes {
		slices.Reverse(b.Nodes[i].Endpoints)
	}
	xa, err := NewIndex(a, DefaultConfig())
	require.NoError(t, err)
	xb, err := NewIndex(b, DefaultConfig())
	require.NoError(t, err)
	require.Equal(t, xa.Nodes(), xb.Nodes())
	key := testKey(1)
	for _, id := range xa.Nodes() {
		sa := mustSigned(t, xa, id, 3, key)
		sb := mustSigned(t, xb, id, 3, key)
		require.Equal(t, sa.Payload, sb.Payload, "node %s", id)
		require.Equal(t, sa.Signature, sb.Signature)
		again := mustSigned(t, xa, id, 3, key)
		require.Equal(t, sa.Payload, again.Payload)
	}
}

// expectedOrgs computes, independently of the builder, the organizations
// whose data node id may see: organizations of its enabled services and
// egress pools that one of its active, non-disabled role assignments allows.
func expectedOrgs(st *State, id string) map[string]bool {
	grants := map[domain.Role][]string{}
	for _, a := range st.Assignments {
		if a.NodeID == id && !a.Disabled {
			grants[a.Role] = append(grants[a.Role], a.OrganizationID)
		}
	}
	allows := func(r domain.Role, org string) bool {
		for _, o := range grants[r] {
			if o == "" || o == org {
				return true
			}
		}
		return false
	}
	out := map[string]bool{}
	for _, s := range st.Services {
		if s.NodeID == id && s.Enabled && allows(domain.Role(s.Type), s.OrganizationID) {
			out[s.OrganizationID] = true
		}
	}
	for _, p := range st.EgressPools {
		if slices.Contains(p.NodeIDs, id) && (allows(domain.RoleEgressNode, p.OrganizationID) || allows(domain.RoleVPNExit, p.OrganizationID)) {
			out[p.OrganizationID] = true
		}
	}
	return out
}

func TestPropertyNeedToKnow(t *testing.T) {
	cfg := Config{MeshFanout: 4, MaxMeshPeers: 6, UplinkFanout: 2, MaxConsumers: 8}
	key := testKey(1)
	for seed := int64(1); seed <= 5; seed++ {
		st := genState(rand.New(rand.NewSource(seed)), 200, 6)
		x, err := NewIndex(st, cfg)
		require.NoError(t, err)
		inCluster := map[string]bool{}
		for _, id := range x.Nodes() {
			inCluster[id] = true
		}
		active := map[string]bool{}
		for _, n := range st.Nodes {
			for _, m := range n.Memberships {
				if m.ClusterID == "c1" && m.Status == domain.MembershipActive && n.IdentityStatus == domain.IdentityActive {
					active[n.ID] = true
				}
			}
			if len(n.Memberships) == 1 && n.Memberships[0].ClusterID == "c2" {
				require.NotContains(t, x.Nodes(), n.ID, "node of another cluster gets a c1 snapshot")
			}
		}
		poolOf := map[string]string{}
		for _, n := range st.Nodes {
			poolOf[n.ID] = n.GossipPool
		}
		poolKey := map[string]GossipKey{}
		for _, k := range st.Cluster.GossipKeys {
			poolKey[k.Pool] = k
		}
		bodies := map[string]Body{}
		var peersTotal, consumersSeen, meshNodes int
		for _, id := range x.Nodes() {
			sg := mustSigned(t, x, id, 1, key)
			wire, err := sg.MarshalBinary()
			require.NoError(t, err)
			s, err := DecodeSnapshot(sg.Payload)
			require.NoError(t, err)
			b := s.Body
			bodies[id] = b

			// 1. no secret values, raw or base64, anywhere in the wire bytes
			for ref, v := range st.Secrets {
				require.False(t, bytes.Contains(wire, v), "node %s: secret %s leaked", id, ref)
				require.False(t, bytes.Contains(wire, []byte(base64.StdEncoding.EncodeToString(v))), "node %s: secret %s leaked (base64)", id, ref)
			}
			// 2. no credential-like keys, no organization users
			var generic any
			require.NoError(t, json.Unmarshal(sg.Payload, &generic))
			walkKeys(generic, func(k string) {
				lk := strings.ToLower(k)
				require.False(t, strings.Contains(lk, "password") && !strings.HasSuffix(lk, "_ref"), "node %s: key %q", id, k)
				require.False(t, strings.Contains(lk, "secret") || strings.Contains(lk, "private"), "node %s: key %q", id, k)
				if strings.Contains(lk, "credential") {
					require.True(t, strings.HasSuffix(lk, "_ref"), "node %s: key %q", id, k)
				}
			})
			for _, o := range st.Organizations {
				for _, u := range o.Users {
					require.False(t, bytes.Contains(sg.Payload, []byte(u)), "node %s: org user %s", id, u)
				}
			}
			// 3. no other organization's resources, connectors, pools or entry policies
			orgs := expectedOrgs(st, id)
			for _, r := range st.Resources {
				if !orgs[r.OrganizationID] {
					require.False(t, bytes.Contains(sg.Payload, []byte(`"`+r.ID+`"`)), "node %s sees %s of %s (allowed %v)", id, r.ID, r.OrganizationID, orgs)
				}
			}
			for _, c := range st.Connectors {
				if !orgs[c.OrganizationID] {
					require.False(t, bytes.Contains(sg.Payload, []byte(`"`+c.ID+`"`)), "node %s sees %s", id, c.ID)
				}
			}
			for _, p := range st.EgressPools {
				if !orgs[p.OrganizationID] {
					require.False(t, bytes.Contains(sg.Payload, []byte(`"`+p.ID+`"`)), "node %s sees %s", id, p.ID)
				}
			}
			for _, r := range b.Resources {
				require.True(t, orgs[r.OrganizationID])
			}
			// 4. no other cluster's data
			require.False(t, bytes.Contains(sg.Payload, []byte(`"c2"`)), "node %s: other cluster id", id)
			require.False(t, bytes.Contains(sg.Payload, []byte("g-other")), "node %s: other cluster group", id)

			mesh := false
			for _, g := range b.Roles {
				mesh = mesh || g.Role.IsMesh()
			}
			if !mesh {
				// 5. no peers, no gossip key, no route policy for non-mesh nodes
				require.Empty(t, b.Peers, "non-mesh node %s has peers", id)
				require.Nil(t, b.GossipKey)
				require.Empty(t, b.RoutePolicy)
				require.LessOrEqual(t, len(b.Uplinks), cfg.UplinkFanout)
			} else {
				meshNodes++
				// 5b. the gossip key of the node's own pool, never another pool's
				require.NotNil(t, b.GossipKey)
				require.Equal(t, poolOf[id], b.GossipKey.Pool)
				require.Equal(t, poolKey[poolOf[id]].Key, b.GossipKey.Key)
				require.Equal(t, poolKey[poolOf[id]].KeyID, b.GossipKey.KeyID)
				for pool, k := range poolKey {
					if pool != poolOf[id] {
						require.False(t, bytes.Contains(sg.Payload, []byte(base64.StdEncoding.EncodeToString(k.Key))), "node %s holds pool %q's key", id, pool)
					}
				}
				require.Empty(t, b.Uplinks)
				var m, c int
				for _, p := range b.Peers {
					require.NotEqual(t, id, p.NodeID)
					switch p.Relation {
					case RelationMesh:
						m++
					case RelationConsumer:
						c++
					default:
						t.Fatalf("relation %q", p.Relation)
					}
				}
				// 6. bounded
				require.LessOrEqual(t, m, cfg.MaxMeshPeers)
				require.LessOrEqual(t, c, cfg.MaxConsumers)
				peersTotal += m
				consumersSeen += c
			}
			// 7. peers and uplinks only active same-cluster nodes
			for _, p := range append(slices.Clone(b.Peers), b.Uplinks...) {
				require.True(t, inCluster[p.NodeID] && active[p.NodeID], "node %s lists %s", id, p.NodeID)
				require.Len(t, p.NoisePublicKey, 32)
				// 7b. every entry carries the identity key gossip records are checked against
				require.Equal(t, identityKeyOf(p.NodeID), p.IdentityPublicKey, "node %s: identity key of %s", id, p.NodeID)
			}
			has := func(r domain.Role) bool {
				return slices.ContainsFunc(b.Roles, func(g RoleGrant) bool { return g.Role == r })
			}
			if !has(domain.RoleEntryNode) {
				require.Empty(t, b.EntryPolicies)
				require.Nil(t, b.TokenValidation)
			}
			if !has(domain.RoleConfigStorage) {
				require.Empty(t, b.CacheNodes)
			}
			for _, s := range b.Services {
				require.True(t, has(s.Role), "service %s without its role", s.ID)
			}
		}
		require.Positive(t, meshNodes)
		require.Positive(t, peersTotal)
		require.Positive(t, consumersSeen)
		// 8. symmetry: a listed peer lists you back; consumer <-> uplink
		for id, b := range bodies {
			for _, p := range b.Peers {
				other := bodies[p.NodeID]
				want := RelationMesh
				list := other.Peers
				if p.Relation == RelationConsumer {
					want, list = RelationUplink, other.Uplinks
				}
				require.True(t, slices.ContainsFunc(list, func(q Peer) bool { return q.NodeID == id && q.Relation == want }),
					"%s lists %s as %s, not vice versa", id, p.NodeID, p.Relation)
			}
			for _, u := range b.Uplinks {
				require.True(t, slices.ContainsFunc(bodies[u.NodeID].Peers, func(q Peer) bool { return q.NodeID == id && q.Relation == RelationConsumer }))
			}
		}
	}
}

func walkKeys(v any, f func(string)) {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			f(k)
			walkKeys(e, f)
		}
	case []any:
		for _, e := range t {
			walkKeys(e, f)
		}
	}
}

// A hand-made cluster for the need-to-know table of docs/snapshots.md.
func tableState() *State {
	key := func(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }
	node := func(id, region string, k byte) Node {
		return Node{ID: id, Region: region, Endpoints: []string{id + ":51820"}, NoisePublicKey: key(k),
			IdentityStatus: domain.IdentityActive, Memberships: []NodeMembership{{ClusterID: "c1", Status: domain.MembershipActive}}}
	}
	st := &State{
		Cluster:     Cluster{ID: "c1", GossipKeys: []GossipKey{{Key: []byte("gk")}}},
		Nodes:       []Node{node("mesh1", "eu", 1), node("mesh2", "us", 2), node("entry1", "eu", 3), node("rdp1", "eu", 4), node("store1", "eu", 5), node("bare1", "eu", 6)},
		RoutePolicy: json.RawMessage(`{"max_hops":3}`),
		EntryPolicies: []EntryPolicy{{Policy: json.RawMessage(`{"default":true}`)},
			{OrganizationID: "orgA", Policy: json.RawMessage(`{"a":1}`)}, {OrganizationID: "orgB", Policy: json.RawMessage(`{"b":1}`)}},
		TokenValidation: &TokenValidation{Issuer: "iss"},
		Assignments: []RoleAssignment{
			{NodeID: "mesh1", Role: domain.RoleCoreMesh}, {NodeID: "mesh2", Role: domain.RoleRelayNode},
			{NodeID: "entry1", Role: domain.RoleEntryNode, OrganizationID: "orgA"},
			{NodeID: "rdp1", Role: domain.RoleRemoteAccess, OrganizationID: "orgA"},
			{NodeID: "store1", Role: domain.RoleConfigStorage},
		},
		Organizations: []Organization{{ID: "orgA", Name: "A", Users: []string{"alice@a"}}, {ID: "orgB", Name: "B"}},
		Resources: []Resource{{ID: "resA", OrganizationID: "orgA", Address: "10.0.0.1", CredentialRef: "vault://a"},
			{ID: "resB", OrganizationID: "orgB", Address: "10.0.0.2", CredentialRef: "vault://b"}},
		Services: []ServiceState{
			{ID: "svcA", NodeID: "rdp1", Type: "remote-access", OrganizationID: "orgA", Enabled: true, ResourceRefs: []string{"resA", "resB"}},
			{ID: "svcB", NodeID: "rdp1", Type: "remote-access", OrganizationID: "orgB", Enabled: true, ResourceRefs: []string{"resB"}},
		},
		StorageAssignments: []StorageAssignment{{StorageNodeID: "store1", NodeIDs: []string{"rdp1", "entry1"}}},
		Secrets:            map[string][]byte{"vault://a": []byte("hunter2"), "vault://b": []byte("hunter3")},
	}
	return st
}

func TestNeedToKnowByRole(t *testing.T) {
	x, err := NewIndex(tableState(), DefaultConfig())
	require.NoError(t, err)
	get := func(id string) Snapshot {
		s, err := x.Build(id, opts(1))
		require.NoError(t, err)
		return s
	}
	ids := func(ps []Peer) (out []string) {
		for _, p := range ps {
			out = append(out, p.NodeID+"/"+p.Relation)
		}
		return out
	}

	m1 := get("mesh1")
	require.Equal(t, []string{ScopeBase, ScopeMesh}, m1.Scope)
	require.Equal(t, []byte("gk"), m1.Body.GossipKey.Key)
	require.JSONEq(t, `{"max_hops":3}`, string(m1.Body.RoutePolicy))
	require.Contains(t, ids(m1.Body.Peers), "mesh2/mesh")
	require.Empty(t, m1.Body.Services)
	require.Empty(t, m1.Body.EntryPolicies)

	e := get("entry1")
	require.Equal(t, []string{ScopeBase, ScopeEntry, ScopeUplinks}, e.Scope)
	require.Len(t, e.Body.Uplinks, 2)
	require.Empty(t, e.Body.Peers)
	require.Nil(t, e.Body.GossipKey)
	require.Equal(t, "iss", e.Body.TokenValidation.Issuer)
	var orgs []string
	for _, p := range e.Body.EntryPolicies {
		orgs = append(orgs, p.OrganizationID)
	}
	require.Equal(t, []string{"", "orgA"}, orgs, "org-restricted entry sees only its organization")
	require.Equal(t, []StorageEndpoint{{NodeID: "store1", Endpoints: []string{"store1:51820"}}}, e.Body.ConfigStorage)

	r := get("rdp1")
	require.Equal(t, []string{ScopeBase, ScopeServices, ScopeUplinks}, r.Scope)
	require.Len(t, r.Body.Services, 1)
	require.Equal(t, "svcA", r.Body.Services[0].ID, "svcB of orgB is outside the orgA assignment")
	require.Len(t, r.Body.Resources, 1)
	require.Equal(t, "resA", r.Body.Resources[0].ID, "cross-organization reference resB dropped")
	require.Equal(t, []string{"resA"}, r.Body.Services[0].ResourceRefs, "not even the id of resB")
	require.Equal(t, "vault://a", r.Body.Resources[0].CredentialRef)
	require.Equal(t, []OrgRef{{ID: "orgA", Name: "A"}}, r.Body.Organizations)

	s := get("store1")
	require.Equal(t, []string{"entry1", "rdp1"}, s.Body.CacheNodes)
	require.Empty(t, s.Body.Services)

	b := get("bare1")
	require.Equal(t, []string{ScopeBase}, b.Scope)
	require.Empty(t, b.Body.Uplinks, "a node without roles attaches to nothing")

	for _, id := range []string{"mesh1", "mesh2", "entry1", "rdp1", "store1", "bare1"} {
		p, err := Encode(get(id))
		require.NoError(t, err)
		require.NotContains(t, string(p), "hunter")
		require.NotContains(t, string(p), "alice@a")
	}
}

func TestBuildErrors(t *testing.T) {
	st := tableState()
	st.Nodes = append(st.Nodes, Node{ID: "foreign", Memberships: []NodeMembership{{ClusterID: "c2", Status: domain.MembershipActive}}},
		Node{ID: "gone", IdentityStatus: domain.IdentityRevoked, Memberships: []NodeMembership{{ClusterID: "c1", Status: domain.MembershipActive}}})
	x, err := NewIndex(st, DefaultConfig())
	require.NoError(t, err)
	_, err = x.Build("nope", opts(1))
	require.ErrorIs(t, err, ErrUnknownNode)
	_, err = x.Build("foreign", opts(1))
	require.ErrorIs(t, err, ErrNotMember)
	_, err = x.Build("gone", opts(1))
	require.ErrorIs(t, err, ErrNodeRevoked)
	_, err = x.Build("mesh1", BuildOptions{IssuedAt: t0, TTL: 1})
	require.ErrorIs(t, err, ErrInvalidOptions)
	s, err := x.Build("mesh1", opts(1))
	require.NoError(t, err)
	require.Contains(t, s.Body.Revocations.NodeIDs, "gone")

	for _, doc := range []string{`{"password":"x"}`, `{"nested":[{"client_secret":"x"}]}`, `{"PrivateKey":"x"}`, `{"credential":"x"}`, `{broken`} {
		bad := tableState()
		bad.Services[0].Config = json.RawMessage(doc)
		_, err := NewIndex(bad, DefaultConfig())
		require.ErrorIs(t, err, ErrInvalidState, doc)
	}
	ok := tableState()
	ok.Services[0].Config = json.RawMessage(`{"password_ref":"vault://x","credential_refs":["a"]}`)
	_, err = NewIndex(ok, DefaultConfig())
	require.NoError(t, err)
	_, err = NewIndex(&State{}, DefaultConfig())
	require.ErrorIs(t, err, ErrInvalidState)
	require.ErrorIs(t, Config{MeshFanout: 9, MaxMeshPeers: 4}.Validate(), ErrInvalidOptions)
}

func TestAffected(t *testing.T) {
	cfg := DefaultConfig()
	base := func() *State { return genState(rand.New(rand.NewSource(11)), 200, 5) }
	x, err := NewIndex(base(), cfg)
	require.NoError(t, err)
	bodyOf := func(id string) Body { s, err := x.Build(id, opts(1)); require.NoError(t, err); return s.Body }
	// find a service node with an uplink, and a mesh node
	var svcNode, meshNode string
	for _, id := range x.Nodes() {
		b := bodyOf(id)
		if svcNode == "" && len(b.Services) > 0 && len(b.Uplinks) > 0 {
			svcNode = id
		}
		if meshNode == "" && b.GossipKey != nil && len(b.Peers) > 3 {
			meshNode = id
		}
	}
	require.NotEmpty(t, svcNode)
	require.NotEmpty(t, meshNode)

	t.Run("service config change rebuilds one node", func(t *testing.T) {
		after := base()
		svcID := bodyOf(svcNode).Services[0].ID
		for i := range after.Services {
			if after.Services[i].ID == svcID {
				after.Services[i].Config = json.RawMessage(`{"listen":":9999"}`)
			}
		}
		d, err := Affected(base(), after, cfg)
		require.NoError(t, err)
		require.Equal(t, []string{svcNode}, d.Rebuild)
		require.Empty(t, d.Withdraw)
	})
	t.Run("role change rebuilds the node and the mesh nodes listing it", func(t *testing.T) {
		after := base()
		after.Assignments = append(after.Assignments, RoleAssignment{NodeID: svcNode, Role: domain.RoleVideoRelay})
		d, err := Affected(base(), after, cfg)
		require.NoError(t, err)
		want := []string{svcNode}
		for _, u := range bodyOf(svcNode).Uplinks {
			want = append(want, u.NodeID)
		}
		slices.Sort(want)
		require.Equal(t, want, d.Rebuild)
	})
	t.Run("route policy change rebuilds mesh nodes only", func(t *testing.T) {
		after := base()
		after.RoutePolicy = json.RawMessage(`{"max_hops":5}`)
		d, err := Affected(base(), after, cfg)
		require.NoError(t, err)
		var want []string
		for _, id := range x.Nodes() {
			if bodyOf(id).GossipKey != nil {
				want = append(want, id)
			}
		}
		require.Equal(t, want, d.Rebuild)
	})
	t.Run("revocation rebuilds every node that listed the revoked one", func(t *testing.T) {
		after := base()
		after.Revocations.NodeIDs = append(after.Revocations.NodeIDs, meshNode)
		d, err := Affected(base(), after, cfg)
		require.NoError(t, err)
		require.Equal(t, []string{meshNode}, d.Withdraw)
		for _, id := range x.Nodes() {
			b := bodyOf(id)
			if slices.ContainsFunc(append(b.Peers, b.Uplinks...), func(p Peer) bool { return p.NodeID == meshNode }) {
				require.Contains(t, d.Rebuild, id)
			}
		}
		xa, err := NewIndex(after, cfg)
		require.NoError(t, err)
		for _, id := range d.Rebuild {
			s, err := xa.Build(id, opts(2))
			require.NoError(t, err)
			require.Contains(t, s.Body.Revocations.NodeIDs, meshNode)
			for _, p := range append(s.Body.Peers, s.Body.Uplinks...) {
				require.NotEqual(t, meshNode, p.NodeID)
			}
		}
	})
	t.Run("group change rebuilds that node", func(t *testing.T) {
		after := base()
		for i := range after.Nodes {
			if after.Nodes[i].ID == svcNode {
				after.Nodes[i].Memberships[0].GroupID = "g-new"
			}
		}
		after.Groups = append(after.Groups, Group{ID: "g-new"})
		d, err := Affected(base(), after, cfg)
		require.NoError(t, err)
		require.Equal(t, []string{svcNode}, d.Rebuild)
	})
	t.Run("nodes outside Rebuild have identical bodies", func(t *testing.T) {
		r := rand.New(rand.NewSource(5))
		for k := 0; k < 10; k++ {
			after := base()
			i := r.Intn(len(after.Assignments))
			after.Assignments[i].Disabled = !after.Assignments[i].Disabled
			xa, err := NewIndex(after, cfg)
			require.NoError(t, err)
			d := x.Diff(xa)
			for _, id := range xa.Nodes() {
				if slices.Contains(d.Rebuild, id) {
					continue
				}
				sa, err := xa.Build(id, opts(1))
				require.NoError(t, err)
				require.Equal(t, bodyOf(id), sa.Body)
			}
		}
	})
}

func TestBuildAll(t *testing.T) {
	st := genState(rand.New(rand.NewSource(3)), 150, 4)
	key := testKey(1)
	res, err := BuildAll(st, DefaultConfig(), opts(7), key, 3)
	require.NoError(t, err)
	x, err := NewIndex(st, DefaultConfig())
	require.NoError(t, err)
	require.Len(t, res, len(x.Nodes()))
	trusted := TrustedKeys(key.Public().(ed25519.PublicKey))
	for i, r := range res {
		require.NoError(t, r.Err)
		require.Equal(t, x.Nodes()[i], r.NodeID)
		_, err := Verify(r.Signed, Expect{ClusterID: "c1", NodeID: r.NodeID, AppliedVersion: 6, Now: t0, TrustedKeys: trusted})
		require.NoError(t, err)
		require.Equal(t, mustSigned(t, x, r.NodeID, 7, key).Payload, r.Signed.Payload)
		// The payload is the envelope's tail, not a second copy.
		require.Same(t, &r.Wire[len(r.Wire)-1], &r.Signed.Payload[len(r.Signed.Payload)-1])
		w, err := Unmarshal(r.Wire, 0)
		require.NoError(t, err)
		require.Equal(t, r.Signed, w)
	}
	_, err = BuildAll(st, DefaultConfig(), BuildOptions{}, key, 2)
	require.ErrorIs(t, err, ErrInvalidOptions)
}

// TestRebuildSkipsUnchanged: the pipeline the authority runs digests every
// node, skips the ones the caller reports unchanged and builds, signs and
// encodes the others.
func TestRebuildSkipsUnchanged(t *testing.T) {
	st := genState(rand.New(rand.NewSource(5)), 60, 3)
	key := testKey(1)
	x, err := NewIndex(st, DefaultConfig())
	require.NoError(t, err)
	ids := x.Nodes()
	skip := map[string]bool{ids[0]: true, ids[len(ids)/2]: true}
	res := x.Rebuild(nil, opts(9), key, 2, func(id string, d [32]byte) bool {
		want, err := x.Digest(id)
		return err == nil && want == d && skip[id]
	})
	require.Len(t, res, len(ids))
	for i, r := range res {
		require.NoError(t, r.Err)
		require.Equal(t, ids[i], r.NodeID)
		d, err := x.Digest(r.NodeID)
		require.NoError(t, err)
		require.Equal(t, d, r.Digest)
		if skip[r.NodeID] {
			require.True(t, r.Skipped)
			require.Empty(t, r.Wire)
			continue
		}
		require.False(t, r.Skipped)
		require.Equal(t, uint64(9), r.Header.Version)
		require.Equal(t, Body{}, r.Header.Body, "results keep the header only")
		dec, err := Unmarshal(r.Wire, 0)
		require.NoError(t, err)
		require.Equal(t, r.Signed, dec)
		require.Equal(t, mustSigned(t, x, r.NodeID, 9, key).Payload, r.Signed.Payload)
	}
}
