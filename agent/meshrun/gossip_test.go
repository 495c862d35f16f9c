package meshrun

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/rap-fabric/core/domain"
	"github.com/rap-fabric/core/internal/testwait"
	"github.com/rap-fabric/core/mesh/channel"
	"github.com/rap-fabric/core/mesh/gossip"
	"github.com/rap-fabric/core/snapshot"
)

type gnode struct {
	tnode
	idPriv ed25519.PrivateKey
	idPub  ed25519.PublicKey
}

func fastGossip() *memberlist.Config {
	c := memberlist.DefaultLocalConfig()
	c.ProbeInterval = 200 * time.Millisecond
	c.ProbeTimeout = 100 * time.Millisecond
	c.GossipInterval = 50 * time.Millisecond
	c.PushPullInterval = time.Second
	return c
}

// gossipDirFor is the signed directory as FromSnapshot would build it once
// every node advertised its gossip endpoint.
func gossipDirFor(nodes map[string]*gnode, version uint64, key []byte) Directory {
	d := Directory{Version: version, Relay: true, GossipKey: key, GossipKeyID: "gk-1"}
	for _, id := range []string{"a", "b", "c"} {
		x := nodes[id]
		eps := x.n.Endpoints()
		d.Peers = append(d.Peers, Peer{NodeID: id, NoiseKey: x.pub, IdentityKey: x.idPub, Endpoints: ParseEndpoints(eps), GossipAddrs: gossipSeeds(eps),
			Relation: snapshot.RelationMesh, Roles: []domain.Role{domain.RoleRelayNode}})
	}
	return d
}

// TestGossipInMeshNodes: three nodes with identity keys and the cluster's
// gossip key start memberlist on the first directory, join through the
// gossip endpoints of the second, verify each other's records against the
// directory's identity keys, and ignore a forged record (D6 at the meshrun
// level: an intruder holding the gossip key but not b's identity key cannot
// pose as b). A numbered echo stream over the relay sees no duplicates.
func TestGossipInMeshNodes(t *testing.T) {
	key := make([]byte, gossip.GossipKeyLen)
	_, _ = rand.Read(key)
	nodes := map[string]*gnode{}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	for _, id := range []string{"a", "b", "c"} {
		priv, pub, err := channel.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		ipub, ipriv, _ := ed25519.GenerateKey(rand.Reader)
		var nodi []string
		switch id {
		case "b":
			nodi = []string{"c"}
		case "c":
			nodi = []string{"b"}
		}
		n, err := New(Config{ClusterID: "c1", NodeID: id, NoiseKey: priv, IdentityKey: ipriv, Listen: "127.0.0.1:0", NoDirect: nodi, Timers: fastTimers(),
			GossipBase: fastGossip(), LinkTick: 20 * time.Millisecond, ProbeInterval: 50 * time.Millisecond, ProbeTimeout: 300 * time.Millisecond,
			Tick: 20 * time.Millisecond, RouteUpdate: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = n.Close() })
		nodes[id] = &gnode{tnode: tnode{id: id, priv: priv, pub: pub, n: n}, idPriv: ipriv, idPub: ipub}
	}
	if s := nodes["a"].n.Status(); s.GossipDetail.On || !strings.HasPrefix(s.Gossip, "off") {
		t.Fatalf("gossip on before any directory: %+v", s.Gossip)
	}
	// v1: no gossip endpoints known yet; gossip starts and is advertised.
	for _, id := range []string{"a", "b", "c"} {
		if _, err := nodes[id].n.Update(gossipDirFor(nodes, 1, key)); err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(nodes[id].n.Endpoints(), func(e string) bool { return strings.HasPrefix(e, GossipEndpointPrefix) }) {
			t.Fatalf("%s advertises no gossip endpoint: %v", id, nodes[id].n.Endpoints())
		}
		n := nodes[id].n
		wg.Add(1)
		go func() { defer wg.Done(); _ = n.Run(ctx) }()
	}
	// v2: the directory carries the gossip endpoints (seeds).
	for _, id := range []string{"a", "b", "c"} {
		if _, err := nodes[id].n.Update(gossipDirFor(nodes, 2, key)); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"a", "b", "c"} {
		testwait.For(t, 15*time.Second, id+" gossips with 2 verified peers", func() (bool, string) {
			s := nodes[id].n.Status()
			return s.GossipDetail.On && s.GossipDetail.Verified == 2 && s.GossipDetail.Members == 3, s.Gossip
		})
		if s := nodes[id].n.Status().Gossip; !strings.HasPrefix(s, "on: 3 members, 2 verified peers") {
			t.Fatalf("%s status: %q", id, s)
		}
	}

	// An intruder with the gossip key poses as b with its own identity key.
	_, fake, _ := ed25519.GenerateKey(rand.Reader)
	rogue, err := gossip.New(gossip.Config{NodeID: "b", ClusterID: "c1", IdentityKey: fake, GossipKey: key, Directory: dirView{nodes["a"].n},
		Endpoints: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:9")}, BindAddr: "127.0.0.1", Base: fastGossip()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rogue.Shutdown() })
	_, _ = rogue.Join([]string{strings.TrimPrefix(nodes["a"].n.gossipEndpoint(), GossipEndpointPrefix)})
	testwait.For(t, 10*time.Second, "a rejects the forged record", func() (bool, string) {
		s := nodes["a"].n.Status().GossipDetail
		return s.Rejected > 0, fmt.Sprintf("%+v", s)
	})
	for _, c := range nodes["a"].n.gossipPtr.Load().Candidates() {
		if c.NodeID == "b" && slices.Contains(c.Endpoints, netip.MustParseAddrPort("127.0.0.1:9")) {
			t.Fatalf("forged endpoint accepted: %+v", c)
		}
	}
	if s := nodes["a"].n.Status(); s.GossipDetail.Verified != 2 || linkState(nodes["a"].n, "b") != "up" {
		t.Fatalf("forged record changed a's view: %+v %+v", s.GossipDetail, s.Links)
	}

	// A numbered echo stream b→c crosses a; nothing is delivered twice.
	testwait.For(t, 10*time.Second, "route b→c", func() (bool, string) {
		_, _, _, err := nodes["b"].n.r.Lookup("c")
		return err == nil, fmt.Sprint(err)
	})
	sctx, sc := context.WithTimeout(ctx, 10*time.Second)
	defer sc()
	rep, err := nodes["b"].n.EchoStream(sctx, "c", 20, 10*time.Millisecond, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// Loss is allowed for (this test's fast probes can take a CPU-starved
	// link down for a moment when the machine is loaded); duplicates,
	// unknown numbers and another path are not.
	if rep.Sent != 20 || rep.Received < 10 || rep.Duplicates != 0 || rep.Unexpected != 0 {
		t.Fatalf("stream: sent %d received %d dup %d unexpected %d", rep.Sent, rep.Received, rep.Duplicates, rep.Unexpected)
	}
	for _, e := range rep.Echoes {
		if e.RecvUnixNs != 0 && !slices.Equal(e.Relays, []string{"a"}) {
			t.Fatalf("echo %d crossed %v, want [a]", e.Seq, e.Relays)
		}
	}

	// A directory without the gossip key stops gossip (and its endpoint).
	d := gossipDirFor(nodes, 3, nil)
	if _, err := nodes["c"].n.Update(d); err != nil {
		t.Fatal(err)
	}
	if s := nodes["c"].n.Status(); s.GossipDetail.On || slices.ContainsFunc(nodes["c"].n.Endpoints(), func(e string) bool { return strings.HasPrefix(e, GossipEndpointPrefix) }) {
		t.Fatalf("gossip still on without a key: %q", s.Gossip)
	}
}
