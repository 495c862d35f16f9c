package channel

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/rap-fabric/core/mesh/netsim"
)

var simStart = time.Unix(1_700_000_000, 0)

// node is one endpoint attached to the simulated network, recording what it
// receives and observes.
type node struct {
	t    testing.TB
	name string
	ep   *Endpoint
	addr netip.AddrPort
	pub  Key

	mu        sync.Mutex
	got       [][]byte
	gotFrom   []Key
	events    []Event
	denied    map[Key]bool
	allowAll  bool
	tapped    [][]byte // copies of every packet this node sent
	tapSends  bool
	sendDrops bool
}

type harness struct {
	t     testing.TB
	net   *netsim.Network
	seed  uint64
	nodes []*node
}

func newHarness(t testing.TB, seed uint64) *harness {
	return &harness{t: t, net: netsim.New(seed, simStart), seed: seed}
}

func seededRand(seed uint64, salt string) *rand.ChaCha8 {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	copy(s[8:], salt)
	return rand.NewChaCha8(s)
}

// add creates a node at 198.18.0.<n>:51820 in cluster "c1" unless mod says otherwise.
func (h *harness) add(name string, mod func(*Config)) *node {
	h.t.Helper()
	n := &node{t: h.t, name: name, denied: map[Key]bool{}, allowAll: true}
	n.addr = netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, 0, byte(len(h.nodes) + 1)}), 51820)
	r := seededRand(h.seed, name)
	priv, pub, err := GenerateKey(r)
	if err != nil {
		h.t.Fatal(err)
	}
	n.pub = pub
	send := h.net.Sender(n.addr)
	cfg := DefaultConfig()
	cfg.ClusterID = "c1"
	cfg.PrivateKey = priv
	cfg.Clock = h.net.Now
	cfg.Rand = r
	cfg.Send = func(pkt []byte, to netip.AddrPort) {
		n.mu.Lock()
		if n.tapSends {
			n.tapped = append(n.tapped, append([]byte(nil), pkt...))
		}
		drop := n.sendDrops
		n.mu.Unlock()
		if !drop {
			send(pkt, to)
		}
	}
	cfg.Deliver = func(peer Key, payload []byte) {
		n.mu.Lock()
		defer n.mu.Unlock()
		n.got = append(n.got, append([]byte(nil), payload...))
		n.gotFrom = append(n.gotFrom, peer)
	}
	cfg.Authorize = func(remote []byte) error {
		n.mu.Lock()
		defer n.mu.Unlock()
		k, _ := KeyFromBytes(remote)
		if n.denied[k] || !n.allowAll {
			return errors.New("not in the signed peer directory")
		}
		return nil
	}
	cfg.Observer = func(ev Event) {
		n.mu.Lock()
		defer n.mu.Unlock()
		n.events = append(n.events, ev)
	}
	if mod != nil {
		mod(&cfg)
	}
	ep, err := NewEndpoint(cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	n.ep = ep
	h.net.Attach(n.addr, func(pkt []byte, from netip.AddrPort) { _ = ep.HandlePacket(pkt, from) })
	h.nodes = append(h.nodes, n)
	return n
}

// run advances virtual time by d in steps, ticking every endpoint each step.
func (h *harness) run(d, step time.Duration) {
	for elapsed := time.Duration(0); elapsed < d; elapsed += step {
		h.net.Advance(step)
		for _, n := range h.nodes {
			n.ep.Tick()
		}
	}
}

// waitFor runs the simulation until cond holds or the virtual deadline passes.
func (h *harness) waitFor(what string, max time.Duration, cond func() bool) {
	h.t.Helper()
	for elapsed := time.Duration(0); elapsed <= max; elapsed += 10 * time.Millisecond {
		if cond() {
			return
		}
		h.run(10*time.Millisecond, 10*time.Millisecond)
	}
	h.t.Fatalf("timed out after %v of virtual time waiting for %s", max, what)
}

// connect makes a dial b and waits until both sides can send.
func (h *harness) connect(a, b *node, persistent bool) {
	h.t.Helper()
	if err := a.ep.AddPeer(b.pub, b.addr, PeerOptions{Persistent: persistent}); err != nil {
		h.t.Fatal(err)
	}
	if err := a.ep.Connect(b.pub); err != nil {
		h.t.Fatal(err)
	}
	h.waitFor(fmt.Sprintf("%s<->%s established", a.name, b.name), 30*time.Second, func() bool {
		return a.ep.PeerState(b.pub) == StateEstablished && b.ep.PeerState(a.pub) == StateEstablished
	})
}

func (n *node) received() [][]byte {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([][]byte(nil), n.got...)
}

func (n *node) eventsOf(kind EventKind) []Event {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []Event
	for _, ev := range n.events {
		if ev.Kind == kind {
			out = append(out, ev)
		}
	}
	return out
}

func (n *node) deny(k Key) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.denied[k] = true
}

func (n *node) tap(on bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.tapSends = on
}

func (n *node) taps() [][]byte {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([][]byte(nil), n.tapped...)
}

// msg builds a numbered payload.
func msg(i int, size int) []byte {
	b := make([]byte, max(size, 8))
	binary.BigEndian.PutUint64(b, uint64(i))
	return b
}

// checkUnique fails if any numbered payload was delivered twice and returns
// the number of distinct payloads.
func checkUnique(t *testing.T, got [][]byte) int {
	t.Helper()
	seen := map[uint64]bool{}
	for _, p := range got {
		id := binary.BigEndian.Uint64(p)
		if seen[id] {
			t.Fatalf("payload %d delivered twice", id)
		}
		seen[id] = true
	}
	return len(seen)
}
