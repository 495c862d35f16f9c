package daemon_test

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/apiclient"
	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/httpapi"
	"github.com/rap-fabric/core/internal/authtest"
	"github.com/rap-fabric/core/pki"
	"github.com/rap-fabric/core/snapshot"
)

// snapAgent is an enrolled node as far as snapshots are concerned.
type snapAgent struct {
	name    string
	priv    ed25519.PrivateKey
	nodeID  string
	cluster string
	cert    []byte
	caCert  []byte
	c       *apiclient.Client
	applied uint64
	// noise is the node's X25519 key: sealed snapshots open only with it.
	noise *ecdh.PrivateKey
}

// enrollSnapAgent enrolls a node with the given capabilities through an
// auto-approving token and returns it with an mTLS client.
func enrollSnapAgent(t *testing.T, g *authtest.Group, pin, token, name string, caps []string) *snapAgent {
	t.Helper()
	ctx := context.Background()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	nk, _ := ecdh.X25519().GenerateKey(rand.Reader)
	poll := make([]byte, 32)
	_, _ = rand.Read(poll)
	h := sha256.Sum256([]byte("snap-host-" + name))
	var addrs []string
	for _, d := range g.DS {
		if d != nil {
			addrs = append(addrs, d.APIAddr())
		}
	}
	ec, err := apiclient.New(apiclient.Options{Servers: addrs, CAPin: pin, ServerName: httpapi.ServerNameForPin(pin)})
	require.NoError(t, err)
	defer ec.Close()
	var st struct {
		Status      string `json:"status"`
		ClusterID   string `json:"cluster_id"`
		NodeID      string `json:"node_id"`
		Certificate []byte `json:"certificate"`
		CACert      []byte `json:"ca_certificate"`
	}
	body := map[string]any{"token": token, "node_name": name, "host_fingerprint": hex.EncodeToString(h[:]), "public_key": []byte(priv.Public().(ed25519.PublicKey)),
		"noise_public_key": nk.PublicKey().Bytes(), "facts": map[string]any{"region": "eu", "endpoints": []string{name + ".example:51820"}},
		"capabilities": caps, "poll_secret": poll}
	require.NoError(t, ec.Do(ctx, http.MethodPost, "/v1/agent/join", body, &st, nil))
	require.Equal(t, "approved", st.Status)
	a := &snapAgent{name: name, priv: priv, nodeID: st.NodeID, cluster: st.ClusterID, cert: st.Certificate, caCert: st.CACert, noise: nk}
	a.c = a.client(t, addrs...)
	return a
}

func (a *snapAgent) client(t *testing.T, addrs ...string) *apiclient.Client {
	cpin, err := pki.PinDER(a.caCert)
	require.NoError(t, err)
	c, err := apiclient.New(apiclient.Options{Servers: addrs, CAPin: cpin, ServerName: httpapi.ServerNameForCluster(a.cluster), Timeout: 40 * time.Second,
		MaxRedirects: -1, Certificate: &tls.Certificate{Certificate: [][]byte{a.cert}, PrivateKey: a.priv}})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

// fetch long-polls for a snapshot newer than the applied one, verifies it
// with the keys from /v1/agent/ca and applies it. ok is false on 204.
func (a *snapAgent) fetch(t *testing.T, c *apiclient.Client, wait int) (snapshot.Snapshot, bool) {
	t.Helper()
	ctx := context.Background()
	var ca authority.TrustedCA
	require.NoError(t, c.Do(ctx, http.MethodGet, "/v1/agent/ca", nil, &ca, nil))
	var keys []ed25519.PublicKey
	for _, k := range ca.Keys {
		keys = append(keys, k.PublicKey)
	}
	var out httpapi.AgentSnapshot
	require.NoError(t, c.Do(ctx, http.MethodGet, "/v1/agent/snapshot?after_version="+itoa(a.applied)+"&wait="+itoa(uint64(wait)), nil, &out, nil))
	if out.Version == 0 {
		return snapshot.Snapshot{}, false
	}
	s := verifyWire(t, out.Snapshot, a.cluster, a.nodeID, a.applied, keys)
	a.applied = s.Version
	return s, true
}

func verifyWire(t *testing.T, wire []byte, cluster, node string, applied uint64, keys []ed25519.PublicKey) snapshot.Snapshot {
	t.Helper()
	signed, err := snapshot.Decode(bytes.NewReader(wire), snapshot.DefaultMaxSize)
	require.NoError(t, err)
	s, err := snapshot.Verify(signed, snapshot.Expect{ClusterID: cluster, NodeID: node, AppliedVersion: applied, Now: time.Now(), TrustedKeys: snapshot.TrustedKeys(keys...)})
	require.NoError(t, err, "reason %s", snapshot.Reason(err))
	return s
}

func itoa(v uint64) string { return string(appendUint(nil, v)) }

func appendUint(b []byte, v uint64) []byte {
	if v >= 10 {
		b = appendUint(b, v/10)
	}
	return append(b, byte('0'+v%10))
}

func peerIDs(ps []snapshot.Peer) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.NodeID)
	}
	return out
}

func apiDetails(err error) map[string]any {
	if ae, ok := err.(*apiclient.Error); ok {
		return ae.Details
	}
	return nil
}

func TestSnapshotsAssignDistributeVerify(t *testing.T) {
	g := authtest.New(t, 3)
	ctx := context.Background()
	g.Leader(10 * time.Second)
	owner := g.Client(g.DS...)
	east, pin := mkClusterSnap(t, owner, "east")
	var acme, globex map[string]any
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/organizations", map[string]any{"name": "Acme"}, &acme, nil))
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/organizations", map[string]any{"name": "Globex"}, &globex, nil))
	acmeID, globexID := acme["id"].(string), globex["id"].(string)
	var tok struct {
		Token string `json:"token"`
	}
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/join-tokens", map[string]any{"cluster": "east", "max_uses": 10, "auto_approve": true, "allowed_roles": []string{"relay-node"}, "description": "snapshots"}, &tok, nil))

	mesh := []string{"can_route_mesh", "can_accept_node_ingress"}
	worker := []string{"can_egress_private_network", "can_run_rdp_worker", "can_run_ssh_worker"}
	m1 := enrollSnapAgent(t, g, pin, tok.Token, "m1", mesh)
	m2 := enrollSnapAgent(t, g, pin, tok.Token, "m2", mesh)
	w1 := enrollSnapAgent(t, g, pin, tok.Token, "w1", worker)
	w2 := enrollSnapAgent(t, g, pin, tok.Token, "w2", worker)
	s1 := enrollSnapAgent(t, g, pin, tok.Token, "s1", []string{"can_run_config_storage"})
	all := []*snapAgent{m1, m2, w1, w2, s1}

	// Enrollment alone gives every member a base snapshot (the rebuild loop
	// acts on the dirty mark the approval wrote).
	for _, a := range all {
		s, ok := a.fetch(t, a.c, 10)
		require.True(t, ok, "%s got a snapshot", a.name)
		require.Equal(t, []string{snapshot.ScopeBase}, s.Scope)
		require.Equal(t, east, s.Body.Membership.ClusterID)
		require.Equal(t, "eu", s.Body.Self.Region)
	}

	// A node without the capability cannot get the role: a clear refusal.
	err := owner.Do(ctx, http.MethodPost, "/v1/clusters/east/nodes/"+w1.nodeID+"/roles", map[string]any{"role": "core-mesh"}, nil, nil)
	require.Equal(t, "invalid_argument", apiCode(err), "err=%v", err)
	require.Equal(t, []any{"can_route_mesh"}, apiDetails(err)["missing_capabilities"])

	// Assigning a mesh role raises the node's version and gives it the peer
	// directory; non-mesh nodes get none.
	before := m1.applied
	var rv struct {
		ID              string `json:"id"`
		SnapshotVersion uint64 `json:"snapshot_version"`
	}
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/clusters/east/nodes/"+m1.nodeID+"/roles", map[string]any{"role": "core-mesh", "policy": map[string]any{"max_hops": 4}}, &rv, nil))
	require.Greater(t, rv.SnapshotVersion, before, "the assignment rebuilt the node's snapshot before answering")
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/clusters/east/nodes/"+m2.nodeID+"/roles", map[string]any{"role": "relay-node"}, nil, nil))
	s, ok := m1.fetch(t, m1.c, 5)
	require.True(t, ok)
	require.Contains(t, s.Scope, snapshot.ScopeMesh)
	require.Equal(t, []string{m2.nodeID}, peerIDs(s.Body.Peers))
	require.Equal(t, snapshot.RelationMesh, s.Body.Peers[0].Relation)
	require.Equal(t, []string{m2.name + ".example:51820"}, s.Body.Peers[0].Endpoints)
	require.JSONEq(t, `{"max_hops":4}`, string(s.Body.Roles[0].Policy))

	// A duplicate assignment is a conflict; disabling and enabling work.
	require.Equal(t, "conflict", apiCode(owner.Do(ctx, http.MethodPost, "/v1/clusters/east/nodes/"+m1.nodeID+"/roles", map[string]any{"role": "core-mesh"}, nil, nil)))
	// A credential inside a policy is refused at the API (references only).
	err = owner.Do(ctx, http.MethodPost, "/v1/clusters/east/nodes/"+w1.nodeID+"/roles", map[string]any{"role": "remote-access", "policy": map[string]any{"password": "x"}}, nil, nil)
	require.Equal(t, "invalid_argument", apiCode(err))

	// Long poll: the agent waits; a role assignment wakes it with a newer,
	// verifiable snapshot.
	type res struct {
		s  snapshot.Snapshot
		ok bool
	}
	got := make(chan res, 1)
	go func() {
		s, ok := w1.fetch(t, w1.c, 20)
		got <- res{s, ok}
	}()
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/clusters/east/nodes/"+w1.nodeID+"/roles", map[string]any{"role": "remote-access", "organization": "acme"}, nil, nil))
	select {
	case r := <-got:
		require.True(t, r.ok)
		require.Equal(t, "remote-access", string(r.s.Body.Roles[0].Role))
		require.Equal(t, acmeID, r.s.Body.Roles[0].OrganizationID)
		require.Empty(t, r.s.Body.Peers, "no peer directory for a non-mesh role")
		require.NotContains(t, r.s.Scope, snapshot.ScopeMesh)
		require.Len(t, r.s.Body.Uplinks, 2, "a non-mesh node learns only its uplinks")
	case <-time.After(15 * time.Second):
		t.Fatal("the long poll did not return after the change")
	}

	// Organization restriction: w1 serves only acme; w2 serves anyone and
	// runs a globex service. Adapters are internal to remote-access.
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/clusters/east/nodes/"+w2.nodeID+"/roles", map[string]any{"role": "remote-access"}, nil, nil))
	var sv struct {
		Config map[string]any `json:"config"`
	}
	require.NoError(t, owner.Do(ctx, http.MethodPut, "/v1/clusters/east/nodes/"+w1.nodeID+"/services/remote-access", map[string]any{"enabled": true, "organization": "acme"}, &sv, nil))
	require.Equal(t, []any{"rdp", "ssh"}, sv.Config["adapters"], "adapters default to what the node can run")
	err = owner.Do(ctx, http.MethodPut, "/v1/clusters/east/nodes/"+w1.nodeID+"/services/remote-access", map[string]any{"enabled": true, "organization": "globex", "instance": "g"}, nil, nil)
	require.Equal(t, "forbidden", apiCode(err), "w1's role is restricted to acme")
	err = owner.Do(ctx, http.MethodPut, "/v1/clusters/east/nodes/"+w2.nodeID+"/services/remote-access", map[string]any{"enabled": true, "organization": "globex", "config": map[string]any{"adapters": []string{"vnc"}}}, nil, nil)
	require.Equal(t, "invalid_argument", apiCode(err))
	require.Equal(t, []any{"can_run_vnc_worker"}, apiDetails(err)["missing_capabilities"])
	require.NoError(t, owner.Do(ctx, http.MethodPut, "/v1/clusters/east/nodes/"+w2.nodeID+"/services/remote-access", map[string]any{"enabled": true, "organization": "globex"}, nil, nil))
	err = owner.Do(ctx, http.MethodPut, "/v1/clusters/east/nodes/"+w2.nodeID+"/services/rdp-worker", map[string]any{"enabled": true}, nil, nil)
	require.Equal(t, "invalid_argument", apiCode(err), "rdp is not an organization-facing service")
	require.NoError(t, owner.Do(ctx, http.MethodPut, "/v1/telemetry-flags", map[string]any{"scope": "organization", "organization": "globex", "name": "trace", "enabled": true}, nil, nil))
	require.NoError(t, owner.Do(ctx, http.MethodPut, "/v1/telemetry-flags", map[string]any{"scope": "node", "cluster": "east", "node": w1.nodeID, "name": "debug", "enabled": true}, nil, nil))

	var w1wire, w2wire httpapi.AgentSnapshot
	require.NoError(t, w1.c.Do(ctx, http.MethodGet, "/v1/agent/snapshot?after_version=0", nil, &w1wire, nil))
	require.NoError(t, w2.c.Do(ctx, http.MethodGet, "/v1/agent/snapshot?after_version=0", nil, &w2wire, nil))
	require.NotContains(t, string(w1wire.Snapshot), globexID, "w1 learns nothing of globex")
	require.Contains(t, string(w1wire.Snapshot), acmeID)
	require.Contains(t, string(w2wire.Snapshot), globexID)
	s, ok = w1.fetch(t, w1.c, 5)
	require.True(t, ok)
	require.Len(t, s.Body.Services, 1)
	require.Equal(t, acmeID, s.Body.Services[0].OrganizationID)
	require.Equal(t, []snapshot.TelemetryFlag{{Scope: "node", TargetID: w1.nodeID, Name: "debug", Enabled: true}}, s.Body.Telemetry)
	s2, ok := w2.fetch(t, w2.c, 5)
	require.True(t, ok)
	require.Contains(t, s2.Body.Telemetry, snapshot.TelemetryFlag{Scope: "organization", TargetID: globexID, Name: "trace", Enabled: true})
	require.NotContains(t, string(w2wire.Snapshot), w1.nodeID, "no other nodes' data")

	// Groups: the group path reaches the node; only empty groups are deleted.
	var dc, rack map[string]any
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/clusters/east/groups", map[string]any{"name": "dc1"}, &dc, nil))
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/clusters/east/groups", map[string]any{"name": "rack1"}, &rack, nil))
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/clusters/east/groups/"+rack["id"].(string)+"/move", map[string]any{"parent": dc["id"]}, nil, nil))
	require.NoError(t, owner.Do(ctx, http.MethodPatch, "/v1/clusters/east/groups/"+rack["id"].(string), map[string]any{"name": "rack-a"}, nil, nil))
	require.NoError(t, owner.Do(ctx, http.MethodPut, "/v1/clusters/east/nodes/"+w1.nodeID+"/group", map[string]any{"group": rack["id"]}, nil, nil))
	err = owner.Do(ctx, http.MethodPost, "/v1/clusters/east/groups/"+dc["id"].(string)+"/move", map[string]any{"parent": rack["id"]}, nil, nil)
	require.Equal(t, "invalid_argument", apiCode(err), "cycles are refused")
	require.Equal(t, "conflict", apiCode(owner.Do(ctx, http.MethodDelete, "/v1/clusters/east/groups/"+dc["id"].(string), nil, nil, nil)))
	s, ok = w1.fetch(t, w1.c, 5)
	require.True(t, ok)
	require.Equal(t, []string{dc["id"].(string), rack["id"].(string)}, s.Body.Membership.GroupPath)

	// config-storage: the storage node fetches the snapshots assigned to it,
	// each sealed to its target's X25519 key: verifiable by the storage node
	// for that target (signature, audience, version) but holding none of the
	// gossip key, peer endpoints or service configs in clear; only the target
	// opens it, to a snapshot it verifies as usual. Members list the storage
	// node.
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/clusters/east/nodes/"+s1.nodeID+"/roles", map[string]any{"role": "config-storage"}, nil, nil))
	err = w1.c.Do(ctx, http.MethodGet, "/v1/agent/storage/snapshots", nil, nil, nil)
	require.Equal(t, "forbidden", apiCode(err))
	var cache struct {
		Items []httpapi.AgentSnapshot `json:"items"`
	}
	require.NoError(t, s1.c.Do(ctx, http.MethodGet, "/v1/agent/storage/snapshots", nil, &cache, nil))
	var cached []string
	caKey := caPublicKey(t, s1.c)
	byID := map[string]*snapAgent{}
	for _, a := range all {
		byID[a.nodeID] = a
	}
	var sawGossip, sawPeers, sawService bool
	for _, it := range cache.Items {
		e := snapshot.Expect{ClusterID: east, NodeID: it.NodeID, Now: time.Now(), TrustedKeys: snapshot.TrustedKeys(caKey)}
		hdr, err := snapshot.VerifySealed(it.Snapshot, e)
		require.NoError(t, err, "the storage node verifies %s's sealed snapshot: %s", it.NodeID, snapshot.Reason(err))
		require.Equal(t, it.Version, hdr.Header.Version)
		_, err = snapshot.OpenSealed(it.Snapshot, e, s1.noise)
		require.Equal(t, snapshot.ReasonMalformed, snapshot.Reason(err), "the storage node cannot open it")
		inner, err := snapshot.OpenSealed(it.Snapshot, e, byID[it.NodeID].noise)
		require.NoError(t, err)
		plain := verifyWire(t, inner, east, it.NodeID, 0, []ed25519.PublicKey{caKey})
		var secrets [][]byte
		if g := plain.Body.GossipKey; g != nil {
			sawGossip = true
			secrets = append(secrets, g.Key, []byte(base64.StdEncoding.EncodeToString(g.Key)))
		}
		for _, p := range append(append([]snapshot.Peer{}, plain.Body.Peers...), plain.Body.Uplinks...) {
			sawPeers = true
			for _, ep := range p.Endpoints {
				secrets = append(secrets, []byte(ep))
			}
		}
		for _, sv := range plain.Body.Services {
			sawService = true
			secrets = append(secrets, sv.Config)
		}
		for _, sec := range secrets {
			require.False(t, bytes.Contains(it.Snapshot, sec), "the storage node holds %q of %s in clear", sec, it.NodeID)
		}
		cached = append(cached, it.NodeID)
	}
	require.True(t, sawGossip && sawPeers && sawService, "the served set carries a gossip key, peers and a service config")
	slices.Sort(cached)
	want := []string{m1.nodeID, m2.nodeID, w1.nodeID, w2.nodeID}
	slices.Sort(want)
	require.Equal(t, want, cached)
	s, ok = w1.fetch(t, w1.c, 5)
	require.True(t, ok)
	require.Equal(t, s1.nodeID, s.Body.ConfigStorage[0].NodeID)

	// Views: desired vs applied (no heartbeats here: everyone lags).
	var lag struct {
		Items []map[string]any `json:"items"`
	}
	require.NoError(t, owner.Do(ctx, http.MethodGet, "/v1/clusters/east/snapshots?lagging=true", nil, &lag, nil))
	require.Len(t, lag.Items, 5)
	var detail struct {
		Status   map[string]any     `json:"status"`
		Versions []map[string]any   `json:"versions"`
		Snapshot *snapshot.Snapshot `json:"snapshot"`
	}
	require.NoError(t, owner.Do(ctx, http.MethodGet, "/v1/clusters/east/nodes/"+w1.nodeID+"/snapshot", nil, &detail, nil))
	require.EqualValues(t, w1.applied, detail.Status["desired_version"])
	require.LessOrEqual(t, len(detail.Versions), 3, "the last three versions are kept")
	require.Equal(t, w1.nodeID, detail.Snapshot.NodeID)

	// Revocation (an existing operation that knows nothing of snapshots)
	// reaches every other node through the dirty mark and the rebuild loop.
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/clusters/east/nodes/"+w2.nodeID+"/revoke", map[string]any{"reason": "test"}, nil, nil))
	for _, a := range []*snapAgent{m1, w1, s1} {
		deadline := time.Now().Add(15 * time.Second)
		for {
			s, ok := a.fetch(t, a.c, 5)
			if ok && slices.Contains(s.Body.Revocations.NodeIDs, w2.nodeID) {
				require.NotContains(t, peerIDs(s.Body.Peers), w2.nodeID)
				require.NotContains(t, peerIDs(s.Body.Uplinks), w2.nodeID)
				break
			}
			require.True(t, time.Now().Before(deadline), "%s did not get the revocation", a.name)
		}
	}
	// The revoked node itself gets nothing more: its certificate is refused.
	require.Error(t, w2.client(t, g.DS[0].APIAddr()).Do(ctx, http.MethodGet, "/v1/agent/snapshot?after_version=0&wait=0", nil, nil, nil))

	// Every mutation is audited.
	var aud struct{ Items []map[string]any }
	require.NoError(t, owner.Do(ctx, http.MethodGet, "/v1/audit?limit=500", nil, &aud, nil))
	seen := map[string]bool{}
	for _, e := range aud.Items {
		seen[e["action"].(string)+"/"+e["outcome"].(string)] = true
	}
	for _, w := range []string{"organization.create/ok", "role.assign/ok", "role.assign/failed", "service.enable/ok", "group.create/ok", "group.move/ok",
		"group.rename/ok", "group.delete/failed", "membership.group/ok", "telemetry_flag.set/ok", "snapshot.publish/ok"} {
		require.True(t, seen[w], "audit has %s", w)
	}

	// Minority: the isolated leader refuses the change; snapshots are still
	// served from PostgreSQL by any authority, the isolated one included.
	l := g.Leader(5 * time.Second)
	g.Isolate(l)
	defer g.Heal()
	onlyOld, err := apiclient.New(apiclient.Options{Servers: []string{l.APIAddr()}, Token: g.Token, CAPin: g.Pin, MaxRedirects: -1})
	require.NoError(t, err)
	defer onlyOld.Close()
	err = onlyOld.Do(ctx, http.MethodPost, "/v1/clusters/east/nodes/"+m2.nodeID+"/roles", map[string]any{"role": "core-mesh"}, nil, nil)
	require.Contains(t, []string{"no_quorum", "not_leader"}, apiCode(err), "err=%v", err)
	fresh := &snapAgent{name: m2.name, nodeID: m2.nodeID, cluster: m2.cluster, cert: m2.cert, caCert: m2.caCert, priv: m2.priv}
	s, ok = fresh.fetch(t, fresh.client(t, l.APIAddr()), 1)
	require.True(t, ok)
	require.Greater(t, s.Version, m2.applied, "the newest version, served by the isolated authority")
	require.Contains(t, s.Scope, snapshot.ScopeMesh)
}

func mkClusterSnap(t *testing.T, c *apiclient.Client, slug string) (string, string) {
	out, err := authtest.CreateCluster(context.Background(), c, slug)
	require.NoError(t, err)
	return out["id"].(string), out["ca_pin"].(string)
}

func caPublicKey(t *testing.T, c *apiclient.Client) ed25519.PublicKey {
	var ca authority.TrustedCA
	require.NoError(t, c.Do(context.Background(), http.MethodGet, "/v1/agent/ca", nil, &ca, nil))
	require.Len(t, ca.Keys, 1)
	require.Equal(t, snapshot.KeyID(ca.Keys[0].PublicKey), ca.Keys[0].KeyID)
	return ca.Keys[0].PublicKey
}
