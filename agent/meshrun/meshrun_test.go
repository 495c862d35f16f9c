package meshrun

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rap-fabric/core/domain"
	"github.com/rap-fabric/core/internal/testwait"
	"github.com/rap-fabric/core/mesh/channel"
	"github.com/rap-fabric/core/snapshot"
)

type tnode struct {
	id   string
	priv channel.Key
	pub  channel.Key
	n    *Node
}

func fastTimers() channel.Timers {
	return channel.Timers{RekeyTimeout: 200 * time.Millisecond, MaxBackoff: time.Second, KeepaliveTimeout: 300 * time.Millisecond,
		RekeyAfterTime: 20 * time.Second, RejectAfterTime: 30 * time.Second, RekeyAttemptTime: 5 * time.Second, PersistentKeepalive: time.Second}
}

// startTrio starts a (relay), b and c on loopback UDP; b and c may not link
// directly, so b↔c traffic crosses a.
func startTrio(t testing.TB) map[string]*tnode {
	ids := []string{"a", "b", "c"}
	nodes := map[string]*tnode{}
	for _, id := range ids {
		priv, pub, err := channel.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		nodes[id] = &tnode{id: id, priv: priv, pub: pub}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	for _, id := range ids {
		var nodi []string
		switch id {
		case "b":
			nodi = []string{"c"}
		case "c":
			nodi = []string{"b"}
		}
		n, err := New(Config{ClusterID: "c1", NodeID: id, NoiseKey: nodes[id].priv, Listen: "127.0.0.1:0", NoDirect: nodi, Timers: fastTimers(),
			LinkTick: 20 * time.Millisecond, ProbeInterval: 50 * time.Millisecond, ProbeTimeout: 300 * time.Millisecond, Tick: 20 * time.Millisecond, RouteUpdate: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = n.Close() })
		nodes[id].n = n
	}
	for _, id := range ids {
		if _, err := nodes[id].n.Update(dirFor(nodes, 1)); err != nil {
			t.Fatal(err)
		}
		n := nodes[id].n
		wg.Add(1)
		go func() { defer wg.Done(); _ = n.Run(ctx) }()
	}
	return nodes
}

func dirFor(nodes map[string]*tnode, version uint64, revoked ...string) Directory {
	d := Directory{Version: version, Relay: true}
	for _, id := range []string{"a", "b", "c"} {
		x := nodes[id]
		d.Peers = append(d.Peers, Peer{NodeID: id, NoiseKey: x.pub, Endpoints: ParseEndpoints(x.n.Endpoints()), Relation: snapshot.RelationMesh,
			Roles: []domain.Role{domain.RoleRelayNode}})
	}
	d.RevokedNodes = revoked
	return d
}

func linkState(n *Node, peer string) string {
	for _, l := range n.Status().Links {
		if l.NodeID == peer {
			return l.State
		}
	}
	return ""
}

func TestDirectAndRelayedEchoOverLoopbackUDP(t *testing.T) {
	nodes := startTrio(t)
	testwait.For(t, 10*time.Second, "links a–b and a–c up", func() (bool, string) {
		for _, p := range [][2]string{{"a", "b"}, {"a", "c"}, {"b", "a"}, {"c", "a"}} {
			if linkState(nodes[p[0]].n, p[1]) != "up" {
				return false, fmt.Sprintf("%s→%s %+v", p[0], p[1], nodes[p[0]].n.Status().Links)
			}
		}
		return true, ""
	})
	if s := linkState(nodes["b"].n, "c"); s != "" {
		t.Fatalf("b has a link to c: %s", s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Direct.
	var res ProbeResult
	testwait.For(t, 10*time.Second, "ping b→a", func() (bool, string) {
		pctx, pc := context.WithTimeout(ctx, time.Second)
		defer pc()
		var err error
		res, err = nodes["b"].n.Ping(pctx, "a")
		// On a loaded machine the first setup can use up the second and
		// leave the echo unanswered (EchoRTTMs 0): try again.
		return err == nil && res.EchoRTTMs > 0, fmt.Sprint(err, res)
	})
	if !slices.Equal(res.Path, []string{"b", "a"}) || res.RTTMs <= 0 || res.EchoRTTMs <= 0 {
		t.Fatalf("direct ping: %+v", res)
	}
	// Relayed: b and c are not linked, the route crosses a.
	testwait.For(t, 10*time.Second, "ping b→c via a", func() (bool, string) {
		pctx, pc := context.WithTimeout(ctx, time.Second)
		defer pc()
		var err error
		res, err = nodes["b"].n.Ping(pctx, "c")
		return err == nil && res.EchoRTTMs > 0, fmt.Sprintf("%v %+v routes %+v", err, res, nodes["b"].n.Status().Routes)
	})
	if !slices.Equal(res.Path, []string{"b", "a", "c"}) || res.EchoRTTMs <= 0 {
		t.Fatalf("relayed ping: %+v", res)
	}
	if nodes["a"].n.Status().E2EForwarded == 0 {
		t.Fatal("a forwarded nothing")
	}

	// c is revoked in a's and b's next directory: torn down at once, and b
	// no longer reaches c.
	for _, id := range []string{"a", "b"} {
		r, err := nodes[id].n.Update(dirFor(nodes, 2, "c"))
		if err != nil {
			t.Fatal(err)
		}
		if id == "a" && !slices.Contains(r.Revoked, "c") {
			t.Fatalf("a did not tear down c: %+v", r)
		}
	}
	if s := linkState(nodes["a"].n, "c"); s == "up" {
		t.Fatalf("a→c still %s after revocation", s)
	}
	pctx, pc := context.WithTimeout(ctx, 500*time.Millisecond)
	defer pc()
	if _, err := nodes["b"].n.Ping(pctx, "c"); err == nil {
		t.Fatal("b still reaches revoked c")
	}
}

func TestFromSnapshot(t *testing.T) {
	_, pub, _ := channel.GenerateKey(rand.Reader)
	b := snapshot.Body{Roles: []snapshot.RoleGrant{{Role: domain.RoleRelayNode}},
		Peers:       []snapshot.Peer{{NodeID: "p1", NoisePublicKey: pub[:], Endpoints: []string{"10.0.0.1:7000", "https://10.0.0.1:7443", "junk"}, Relation: snapshot.RelationMesh}},
		Uplinks:     []snapshot.Peer{{NodeID: "p2", NoisePublicKey: []byte{1, 2}}},
		Revocations: snapshot.Revocations{NodeIDs: []string{"x"}}}
	d := FromSnapshot(7, b)
	if !d.Relay || d.Version != 7 || len(d.Peers) != 1 || len(d.Peers[0].Endpoints) != 1 || d.Peers[0].Endpoints[0].String() != "10.0.0.1:7000" || d.RevokedNodes[0] != "x" {
		t.Fatalf("%+v", d)
	}
	if quantize(1234) != 1200 || quantize(7) != 7 || quantize(0) != 1 {
		t.Fatal(quantize(1234), quantize(7))
	}
}
