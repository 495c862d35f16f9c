package e2e

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/rap-fabric/core/mesh/channel"
	"github.com/rap-fabric/core/mesh/netsim"
	"github.com/rap-fabric/core/mesh/routing"
)

const cluster = "cluster-test"

// seeded is a deterministic io.Reader for keys, flow ids and ephemerals.
type seeded struct{ r *rand.ChaCha8 }

func newSeeded(seed byte) *seeded {
	var s [32]byte
	s[0] = seed
	return &seeded{rand.NewChaCha8(s)}
}
func (s *seeded) Read(p []byte) (int, error) { return s.r.Read(p) }

type node struct {
	id     string
	addr   netip.AddrPort
	router *routing.Router
	fwd    *Forwarder
	priv   channel.Key
	pub    channel.Key
	// tap, if set, sees every packet this node receives.
	tap func(pkt []byte)
}

// mesh is a set of nodes on a netsim network: each node runs a Router and a
// Forwarder over one demultiplexed "link" per neighbour (routing messages
// start with routing.Magic, frames with Magic).
type mesh struct {
	t      testing.TB
	net    *netsim.Network
	nodes  map[string]*node
	byAddr map[netip.AddrPort]*node
	order  []string
	cost   map[[2]string]routing.Metric
	step   time.Duration
	tick   time.Duration
	since  time.Duration
}

func newMesh(t testing.TB, ids []string, policy func(id string) routing.Policy) *mesh {
	m := &mesh{
		t: t, net: netsim.New(1, time.Unix(1_700_000_000, 0)),
		nodes: map[string]*node{}, byAddr: map[netip.AddrPort]*node{}, cost: map[[2]string]routing.Metric{},
		step: time.Millisecond, tick: 100 * time.Millisecond,
	}
	m.net.SetDefault(netsim.LinkConfig{Delay: 2 * time.Millisecond})
	rnd := newSeeded(42)
	keys := map[string]channel.Key{}
	for i, id := range ids {
		n := &node{id: id, addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i / 250), byte(i%250 + 1)}), 7000)}
		var err error
		n.priv, n.pub, err = channel.GenerateKey(rnd)
		if err != nil {
			t.Fatal(err)
		}
		keys[id] = n.pub
		m.nodes[id], m.byAddr[n.addr] = n, n
		m.order = append(m.order, id)
	}
	for i, id := range ids {
		n := m.nodes[id]
		var pol routing.Policy = routing.AllowAll{}
		if policy != nil {
			pol = policy(id)
		}
		r, err := routing.New(routing.Config{
			Self: id, Clock: m.net.Now, Policy: pol,
			Send:           func(to string, msg []byte) { m.net.Send(n.addr, m.nodes[to].addr, msg) },
			UpdateInterval: time.Second, RequestInterval: 100 * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		f, err := New(Config{
			Self: id, ClusterID: cluster, PrivateKey: n.priv, Routes: r, Policy: pol, Clock: m.net.Now,
			Rand:    newSeeded(byte(100 + i)),
			PeerKey: func(x string) (channel.Key, bool) { k, ok := keys[x]; return k, ok },
			Send: func(to string, frame []byte) error {
				m.net.Send(n.addr, m.nodes[to].addr, frame)
				return nil
			},
			HandshakeRetry: 300 * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		n.router, n.fwd = r, f
		ServeEcho(f)
		m.net.Attach(n.addr, func(pkt []byte, from netip.AddrPort) {
			src := m.byAddr[from]
			if n.tap != nil {
				n.tap(pkt)
			}
			if src == nil || len(pkt) == 0 {
				return
			}
			switch pkt[0] {
			case routing.Magic:
				_ = n.router.HandleMessage(src.id, pkt)
			case Magic:
				_ = n.fwd.HandleFrame(src.id, pkt)
			}
		})
	}
	return m
}

func lk(a, b string) [2]string {
	if a > b {
		a, b = b, a
	}
	return [2]string{a, b}
}

func (m *mesh) link(a, b string, c routing.Metric) {
	m.cost[lk(a, b)] = c
	m.net.Heal(m.nodes[a].addr, m.nodes[b].addr)
	if err := m.nodes[a].router.SetLink(b, c, true); err != nil {
		m.t.Fatal(err)
	}
	if err := m.nodes[b].router.SetLink(a, c, true); err != nil {
		m.t.Fatal(err)
	}
}

// cut partitions a–b and reports the link down on both ends (probes failed).
func (m *mesh) cut(a, b string) {
	m.net.Partition(m.nodes[a].addr, m.nodes[b].addr)
	_ = m.nodes[a].router.SetLink(b, m.cost[lk(a, b)], false)
	_ = m.nodes[b].router.SetLink(a, m.cost[lk(a, b)], false)
}

func (m *mesh) heal(a, b string) { m.link(a, b, m.cost[lk(a, b)]) }

// kill detaches a node; its neighbours' link managers report it down.
func (m *mesh) kill(id string) {
	m.net.Detach(m.nodes[id].addr)
	for k := range m.cost {
		if k[0] == id {
			_ = m.nodes[k[1]].router.SetLink(id, m.cost[k], false)
		}
		if k[1] == id {
			_ = m.nodes[k[0]].router.SetLink(id, m.cost[k], false)
		}
	}
}

// run advances virtual time by d in 1 ms steps, ticking routers and
// forwarders every 100 ms.
func (m *mesh) run(d time.Duration) {
	for el := time.Duration(0); el < d; el += m.step {
		m.net.Advance(m.step)
		m.since += m.step
		if m.since >= m.tick {
			m.since = 0
			for _, id := range m.order {
				m.nodes[id].router.Tick()
				m.nodes[id].fwd.Tick()
			}
		}
	}
}

func (m *mesh) runUntil(cond func() bool, limit time.Duration) bool {
	for el := time.Duration(0); el < limit; el += m.step {
		if cond() {
			return true
		}
		m.run(m.step)
	}
	return cond()
}

// converge waits until every node routes to every other node.
func (m *mesh) converge() {
	m.t.Helper()
	ok := m.runUntil(func() bool {
		for _, a := range m.order {
			for _, b := range m.order {
				if _, _, _, err := m.nodes[a].router.Lookup(b); err != nil {
					return false
				}
			}
		}
		return true
	}, 2*time.Second)
	if !ok {
		m.t.Fatal("routes did not converge")
	}
}

func (m *mesh) probe(src, dst string) ProbeResult {
	m.t.Helper()
	op, err := m.nodes[src].fwd.StartProbe(dst)
	if err != nil {
		m.t.Fatal(err)
	}
	if !m.runUntil(func() bool {
		select {
		case <-op.Done():
			return true
		default:
			return false
		}
	}, 2*time.Second) {
		m.t.Fatalf("probe %s→%s did not finish", src, dst)
	}
	res, err := op.Result()
	if err != nil {
		m.t.Fatal(err)
	}
	return res
}

func seqMsg(i int) []byte { return []byte(fmt.Sprintf("seq-%06d", i)) }
