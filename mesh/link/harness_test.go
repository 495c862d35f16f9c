package link

import (
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/rap-fabric/core/mesh/channel"
	"github.com/rap-fabric/core/mesh/gossip"
	"github.com/rap-fabric/core/mesh/netsim"
	"github.com/rap-fabric/core/mesh/wire"
)

var simStart = time.Unix(1_700_000_000, 0)

// simPC is a net.PacketConn whose writes go into a netsim network; reads
// are never used (the Manager runs with ExternalReceive).
type simPC struct {
	net  *netsim.Network
	addr netip.AddrPort
	done chan struct{}
	once sync.Once

	mu          sync.Mutex
	initiations map[netip.AddrPort]int
}

func (s *simPC) ReadFrom([]byte) (int, net.Addr, error) { <-s.done; return 0, nil, net.ErrClosed }
func (s *simPC) WriteTo(b []byte, a net.Addr) (int, error) {
	to := a.(*net.UDPAddr).AddrPort()
	if len(b) > 0 && wire.Type(b[0]) == wire.TypeInitiation {
		s.mu.Lock()
		s.initiations[to]++
		s.mu.Unlock()
	}
	s.net.Send(s.addr, to, b)
	return len(b), nil
}
func (s *simPC) Close() error {
	s.once.Do(func() { close(s.done); s.net.Detach(s.addr) })
	return nil
}
func (s *simPC) LocalAddr() net.Addr              { return net.UDPAddrFromAddrPort(s.addr) }
func (s *simPC) SetDeadline(time.Time) error      { return nil }
func (s *simPC) SetReadDeadline(time.Time) error  { return nil }
func (s *simPC) SetWriteDeadline(time.Time) error { return nil }

func (s *simPC) initiationsTo(a netip.AddrPort) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.initiations[a]
}

type delivery struct{ cluster, from, payload string }

type testNode struct {
	id    string
	m     *Manager
	addr  netip.AddrPort
	pub   channel.Key
	ident ed25519.PrivateKey
	pc    *simPC

	mu    sync.Mutex
	got   []delivery
	cands []gossip.Candidate
}

func (n *testNode) deliver(cluster, from string, p []byte) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.got = append(n.got, delivery{cluster, from, string(p)})
}

func (n *testNode) received(from, payload string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := 0
	for _, d := range n.got {
		if d.from == from && (payload == "" || d.payload == payload) {
			c++
		}
	}
	return c
}

func (n *testNode) status(peer string) (PeerStatus, bool) {
	for _, s := range n.m.Status() {
		if s.NodeID == peer {
			return s, true
		}
	}
	return PeerStatus{}, false
}

func (n *testNode) entry() PeerEntry {
	return PeerEntry{NodeID: n.id, NoiseKey: n.pub, IdentityKey: n.ident.Public().(ed25519.PublicKey),
		Endpoints: []netip.AddrPort{n.addr}, Region: "eu"}
}

func seeded(seed uint64, salt string) *rand.ChaCha8 {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	copy(s[8:], salt)
	return rand.NewChaCha8(s)
}

type world struct {
	t     *testing.T
	net   *netsim.Network
	nodes map[string]*testNode
	order []*testNode
	tick  time.Duration
}

func newWorld(t *testing.T, seed uint64, ids ...string) *world {
	w := &world{t: t, net: netsim.New(seed, simStart), nodes: map[string]*testNode{}, tick: 250 * time.Millisecond}
	w.net.SetDefault(netsim.LinkConfig{Delay: 10 * time.Millisecond})
	for i, id := range ids {
		r := seeded(seed, id)
		priv, pub, err := channel.GenerateKey(r)
		if err != nil {
			t.Fatal(err)
		}
		var s [32]byte
		copy(s[:], "ident-"+id)
		n := &testNode{id: id, pub: pub, ident: ed25519.NewKeyFromSeed(s[:]),
			addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, 0, byte(i + 1)}), 51820)}
		n.pc = &simPC{net: w.net, addr: n.addr, done: make(chan struct{}), initiations: map[netip.AddrPort]int{}}
		m, err := New(Config{
			NodeID: id, NoiseKey: priv, PacketConn: n.pc, ExternalReceive: true,
			Clock: w.net.Now, Rand: r, Deliver: n.deliver, Region: "eu",
			Candidates: func(string) []gossip.Candidate {
				n.mu.Lock()
				defer n.mu.Unlock()
				return n.cands
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		n.m = m
		w.net.Attach(n.addr, m.HandleDatagram)
		t.Cleanup(func() { _ = m.Close() })
		w.nodes[id] = n
		w.order = append(w.order, n)
	}
	return w
}

// dir builds a directory of the given members.
func (w *world) dir(version uint64, members []string, revoked ...string) Directory {
	d := Directory{ClusterID: "c1", Version: version, RevokedNodes: revoked}
	for _, id := range members {
		d.Peers = append(d.Peers, w.nodes[id].entry())
	}
	return d
}

func (w *world) apply(d Directory, to ...string) {
	w.t.Helper()
	for _, id := range to {
		if _, err := w.nodes[id].m.UpdateDirectory(d); err != nil {
			w.t.Fatal(err)
		}
	}
}

// step advances virtual time by one tick and ticks every manager.
func (w *world) step() {
	w.net.Advance(w.tick)
	for _, n := range w.order {
		n.m.Tick()
	}
}

func (w *world) run(d time.Duration) {
	for end := w.net.Now().Add(d); w.net.Now().Before(end); {
		w.step()
	}
}

// until steps until cond holds, failing after max virtual time.
func (w *world) until(max time.Duration, what string, cond func() (bool, string)) time.Duration {
	w.t.Helper()
	start := w.net.Now()
	for {
		ok, detail := cond()
		if ok {
			return w.net.Now().Sub(start)
		}
		if w.net.Now().Sub(start) > max {
			w.t.Fatalf("after %v (virtual): %s: %s", max, what, detail)
		}
		w.step()
	}
}

// linksUp reports whether every pair among ids has an up link both ways.
func (w *world) linksUp(ids ...string) (bool, string) {
	for _, a := range ids {
		for _, b := range ids {
			if a == b {
				continue
			}
			s, ok := w.nodes[a].status(b)
			if !ok || s.State != LinkUp {
				return false, fmt.Sprintf("%s→%s: %+v", a, b, s)
			}
		}
	}
	return true, ""
}
