package link

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/rap-fabric/core/internal/testwait"
	"github.com/rap-fabric/core/mesh/channel"
	"github.com/rap-fabric/core/mesh/gossip"
)

type udpNode struct {
	id    string
	m     *Manager
	g     *gossip.Gossip
	pub   channel.Key
	ident ed25519.PrivateKey
	mu    sync.Mutex
	got   map[string][]string
}

func (n *udpNode) deliver(_, from string, p []byte) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.got[from] = append(n.got[from], string(p))
}

func (n *udpNode) count(from string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.got[from])
}

func (n *udpNode) state(peer string) LinkState {
	for _, s := range n.m.Status() {
		if s.NodeID == peer {
			return s.State
		}
	}
	return ""
}

// TestUDPLoopbackWithGossip runs three managers on real loopback sockets.
// The directory carries keys only: endpoints are proposed by real
// memberlist gossip, authorization comes from the directory.
func TestUDPLoopbackWithGossip(t *testing.T) {
	ids := []string{"u0", "u1", "u2"}
	gkey := bytes.Repeat([]byte{7}, gossip.GossipKeyLen)
	timers := channel.Timers{RekeyTimeout: 200 * time.Millisecond, MaxBackoff: time.Second, KeepaliveTimeout: 300 * time.Millisecond,
		RekeyAfterTime: 20 * time.Second, RejectAfterTime: 30 * time.Second, RekeyAttemptTime: 5 * time.Second, PersistentKeepalive: time.Second}
	nodes := map[string]*udpNode{}
	var list []*udpNode
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	for _, id := range ids {
		priv, pub, err := channel.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		_, ident, _ := ed25519.GenerateKey(rand.Reader)
		n := &udpNode{id: id, pub: pub, ident: ident, got: map[string][]string{}}
		pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		n.m, err = New(Config{NodeID: id, NoiseKey: priv, PacketConn: pc, Deliver: n.deliver, Timers: timers,
			TickInterval: 20 * time.Millisecond, ProbeInterval: 50 * time.Millisecond, ProbeTimeout: 300 * time.Millisecond,
			Candidates: func(string) []gossip.Candidate { return n.g.Candidates() }})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = n.m.Close() })
		base := memberlist.DefaultLocalConfig()
		base.ProbeInterval, base.ProbeTimeout, base.GossipInterval, base.PushPullInterval = 100*time.Millisecond, 50*time.Millisecond, 20*time.Millisecond, 300*time.Millisecond
		n.g, err = gossip.New(gossip.Config{NodeID: id, ClusterID: "c1", IdentityKey: ident, GossipKey: gkey,
			Directory: n.m.GossipDirectory("c1"), Endpoints: []netip.AddrPort{n.m.LocalAddr()},
			BindAddr: "127.0.0.1", BindPort: 0, Base: base})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = n.g.Shutdown() })
		nodes[id] = n
		list = append(list, n)
	}
	dir := func(version uint64, revoked ...string) Directory {
		d := Directory{ClusterID: "c1", Version: version, RevokedNodes: revoked}
		for _, n := range list {
			d.Peers = append(d.Peers, PeerEntry{NodeID: n.id, NoiseKey: n.pub, IdentityKey: n.ident.Public().(ed25519.PublicKey)})
		}
		return d
	}
	for _, n := range list {
		if _, err := n.m.UpdateDirectory(dir(1)); err != nil {
			t.Fatal(err)
		}
	}
	for i, n := range list[1:] {
		seeds := []string{list[0].g.Addr()}
		if i > 0 {
			seeds = append(seeds, list[1].g.Addr())
		}
		if _, err := n.g.Join(seeds); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range list {
		wg.Add(1)
		go func() { defer wg.Done(); _ = n.m.Run(ctx) }()
	}

	testwait.For(t, 15*time.Second, "all links up", func() (bool, string) {
		for _, a := range list {
			for _, b := range ids {
				if b != a.id && a.state(b) != LinkUp {
					return false, fmt.Sprintf("%s→%s %v", a.id, b, a.m.Status())
				}
			}
			for _, s := range a.m.Status() {
				if s.RTT <= 0 {
					return false, fmt.Sprintf("%s→%s: no RTT yet", a.id, s.NodeID)
				}
			}
		}
		return true, ""
	})
	for _, s := range nodes["u0"].m.Status() {
		if !s.InGossip || !s.Endpoint.Addr().IsLoopback() || s.RTT <= 0 {
			t.Errorf("u0→%s: %+v", s.NodeID, s)
		}
	}
	// Data both ways on every link.
	testwait.For(t, 5*time.Second, "data delivered", func() (bool, string) {
		for _, a := range list {
			for _, b := range ids {
				if b != a.id && nodes[b].count(a.id) == 0 {
					if err := a.m.Send(b, []byte("hi "+b)); err != nil && !errors.Is(err, channel.ErrNoSession) {
						t.Fatal(err)
					}
					return false, a.id + "→" + b
				}
			}
		}
		return true, ""
	})

	// Revoke u2 on u0 and u1: torn down at once, later handshakes refused,
	// and gossip stops proposing it.
	for _, n := range list[:2] {
		if _, err := n.m.UpdateDirectory(dir(2, "u2")); err != nil {
			t.Fatal(err)
		}
		if st := n.m.clusters["c1"].ep.PeerState(nodes["u2"].pub); st != channel.StateClosed {
			t.Errorf("%s: channel to u2 %v after revocation", n.id, st)
		}
		for _, c := range n.g.Candidates() {
			if c.NodeID == "u2" {
				t.Errorf("%s: gossip still proposes u2", n.id)
			}
		}
	}
	before := nodes["u0"].count("u2")
	testwait.For(t, 10*time.Second, "u0 refuses u2", func() (bool, string) {
		_ = nodes["u2"].m.Send("u0", []byte("after revocation"))
		st, _ := nodes["u0"].m.ChannelStats("c1")
		return st.RefusedRevoked > 0, fmt.Sprintf("%+v", st)
	})
	if got := nodes["u0"].count("u2"); got != before {
		t.Errorf("u0 delivered %d payloads from revoked u2", got-before)
	}
	if s := nodes["u0"].state("u1"); s != LinkUp {
		t.Errorf("u0→u1 %v", s)
	}
}
